//! Freeing a graph whose last reference a recorded handle dropped, so that a death at any
//! step is finished by a survivor rather than leaked.
//!
//! Once the count of the root reached zero (the entry says [`Kind::Freeing`]), every
//! object the walk reaches with a count of zero is the walker's alone: no handle,
//! container or pipe links it. The walk keeps its progress in those objects themselves,
//! so that it can be run again from the root by whoever finds the entry:
//!
//! - Before a linked child's count is decremented, its cell is marked `RELEASED` (the
//!   child is named in the entry's `E_AUX` meanwhile); if the decrement was the last, the
//!   cell is marked `ZERO` too: the child is then the walker's to free.
//! - Every block is freed with the pool's record ([`Pool::free_recorded`]): the word that
//!   links it (the data word of its object, the `ZERO` cell's link, or the entry's
//!   `E_OBJ` for the root) is cleared under the pool lock with the free, exactly.
//! - An object whose data block is gone has its header cleared before its own block goes.
//!
//! The one step left uncertain is the decrement in flight: a death between marking a
//! cell and marking it `ZERO` leaves the child counted (a suspect in recovery's tally),
//! never freed twice. If the pool lock cannot be had quickly (a stopped or slow holder),
//! the walk goes on without records, deferring its frees, and its entry says `Releasing`:
//! a death then leaves what is left of the graph counted, as a drop did before.

use super::layout::{
    load_cell, may_link, mul, words, Cell, Kind, Obj, ENTRY_WORDS, W_DATA, W_KIND,
};
use super::release::dec;
use crate::alloc::{AllocError, Pool};
use crate::ledger::{Entry, Kind as EntryKind, Tally, E_AUX, E_OBJ};
use crate::region::Offset;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::val::ValError;
use std::time::Instant;

/// Marks a cell of an object being freed whose child's count this walk decrements. A link
/// cell's first word is its tag byte alone, so these bits are free in it (an inline
/// string's are not, and it is never marked).
const RELEASED: u64 = 1 << 62;
/// Marks a `RELEASED` cell whose decrement was the last: the child is the walker's.
const ZERO: u64 = 1 << 61;

/// Who walks: the process that dropped the last reference, or a survivor finishing a dead
/// process's walk.
pub(crate) enum Walker<'t> {
    /// The dropping process: waits briefly for the pool lock, then defers.
    Owner,
    /// A survivor: waits until `deadline` (if any) for the pool lock, then leaves the
    /// entry for later; counts an uncertain decrement in `tally`.
    Survivor {
        deadline: Option<Instant>,
        tally: &'t mut Tally,
    },
}

/// Why a walk stopped before the end.
pub(crate) enum Stop {
    /// A survivor could not have the pool lock in time: the entry stays as it is.
    Later,
    /// A corrupt object: what lies below it is left.
    Corrupt(ValError),
}

/// One object on the walk's path, and the region offset of the word that links it.
struct Frame {
    node: Offset,
    link: Offset,
    /// The element, and the cell of it, to go on from.
    elem: usize,
    which: usize,
}

/// The walk over the graph rooted at entry `e`'s `E_OBJ`.
struct Walk<'a, 't> {
    pool: &'a Pool,
    e: &'a Entry<'a>,
    walker: Walker<'t>,
    /// Recording frees (false once the pool lock was not had in time).
    exact: bool,
}

/// Frees the graph rooted at `e`'s `E_OBJ`, whose count reached zero ([`Kind::Freeing`]
/// entries). Leaves `E_OBJ` cleared once the root's block is freed. Rerunnable on an
/// entry a dead walker left half done.
pub(crate) fn free_rooted(pool: &Pool, e: &Entry<'_>, walker: Walker<'_>) -> Result<(), Stop> {
    let root = Offset::new(e.get(E_OBJ));
    if root.is_null() {
        return Ok(());
    }
    let link = word_at(e.offset(), E_OBJ as u64);
    let mut w = Walk {
        pool,
        e,
        walker,
        exact: true,
    };
    // The path above the object in hand: no allocation for a graph of one object.
    let mut stack: Vec<Frame> = Vec::new();
    let mut cur = Frame {
        node: root,
        link,
        elem: 0,
        which: 0,
    };
    let mut first_err = None;
    loop {
        match w.step(&mut cur) {
            Ok(Some(child)) => stack.push(std::mem::replace(&mut cur, child)),
            Ok(None) => match stack.pop() {
                Some(parent) => cur = parent,
                None => break,
            },
            Err(Stop::Later) => return Err(Stop::Later),
            Err(Stop::Corrupt(err)) => {
                first_err.get_or_insert(err);
                // What lies below a corrupt object is left; its parent goes on past it.
                match stack.pop() {
                    Some(mut parent) => {
                        parent.which = parent.which.saturating_add(1);
                        cur = parent;
                    }
                    None => break,
                }
            }
        }
    }
    first_err.map_or(Ok(()), |e| Err(Stop::Corrupt(e)))
}

/// The cells of an object that may link children: the words they lie in, the words per
/// element, and where each element's cells lie among them.
type Cells<'a> = (Offset, &'a [AtomicU64], usize, &'static [(usize, usize)]);

impl<'a> Walk<'a, '_> {
    /// Goes on with the object of `f`: decrements its children's counts from cell
    /// `f.elem`, returning the first child it must free first; or, all children done,
    /// frees the object's blocks.
    fn step(&mut self, f: &mut Frame) -> Result<Option<Frame>, Stop> {
        let region = self.pool.region();
        let header = words(region, f.node, 1).map_err(Stop::Corrupt)?[0].load(Ordering::Relaxed);
        if header != 0 {
            let obj = Obj::open(region, f.node, None).map_err(Stop::Corrupt)?;
            if let Some((base, cells, stride, at)) = self.cells(&obj)? {
                for (k, chunk) in cells.chunks_exact(stride).enumerate().skip(f.elem) {
                    let skip = if k == f.elem { f.which } else { 0 };
                    for (j, &(from, to)) in at.iter().enumerate().skip(skip) {
                        let word = (k as u64)
                            .saturating_mul(stride as u64)
                            .saturating_add(from as u64);
                        let link = word_at(base, word.saturating_add(1));
                        if let Some(child) = self.release_cell(&chunk[from..to], link)? {
                            (f.elem, f.which) = (k, j);
                            return Ok(Some(child));
                        }
                    }
                }
            }
            self.free_data(&obj)?;
            // The header goes before the block: a stale offset to it is refused even
            // before the pool reuses the block, and a rerun knows the data is gone.
            obj.store(W_KIND, 0);
        }
        let record = words(region, f.link, 1).map_err(Stop::Corrupt)?;
        self.free(f.node, f.link, &record[0])?;
        Ok(None)
    }

    /// The cells of `obj` whose links it holds a reference through; `None` for a kind
    /// without links or a container whose data block this walk already freed.
    fn cells(&self, obj: &Obj<'a>) -> Result<Option<Cells<'a>>, Stop> {
        if obj.kind.is_seq() || obj.kind.is_table() {
            if obj.load(W_DATA) == 0 {
                return Ok(None);
            }
            let c = obj.container(self.pool).map_err(Stop::Corrupt)?;
            let (n, stride, at): (u64, usize, &'static [(usize, usize)]) = if obj.kind.is_seq() {
                (c.len, 2, &[(0, 2)])
            } else {
                (c.used, ENTRY_WORDS, &[(1, 3), (3, 5)])
            };
            let count = mul(n, stride as u64, obj.off.get()).map_err(Stop::Corrupt)?;
            let cells = words(self.pool.region(), c.data, count).map_err(Stop::Corrupt)?;
            return Ok(Some((c.data, cells, stride, at)));
        }
        if obj.kind == Kind::Locked {
            let w = super::journal::W_ROOT;
            let base = word_at(obj.off, w as u64);
            return Ok(Some((base, &obj.words[w..w + 2], 2, &[(0, 2)])));
        }
        Ok(None)
    }

    /// Drops the reference the cell `w` (whose link word is at `link`) holds, unless a
    /// run before this one did; the child to free first if the reference was its last.
    fn release_cell(&mut self, w: &[AtomicU64], link: Offset) -> Result<Option<Frame>, Stop> {
        let [w0, w1] = load_cell(w);
        let frame = |child: u64| Frame {
            node: Offset::new(child),
            link,
            elem: 0,
            which: 0,
        };
        if !may_link(w0) {
            // A scalar, or an inline string, whose bits the marks' would be: never a link.
            return Ok(None);
        }
        if w0 & RELEASED != 0 {
            if w0 & ZERO != 0 {
                // A child this walk must free, unless its block is already freed.
                return Ok((w1 != 0).then(|| frame(w1)));
            }
            if w1 != 0 && self.e.get(E_AUX) == w1 {
                // The decrement a dead walker was in: done or not, nobody can tell.
                if let Walker::Survivor { tally, .. } = &mut self.walker {
                    tally.suspects = tally.suspects.saturating_add(1);
                }
                self.e.set(E_AUX, 0);
            }
            return Ok(None);
        }
        let Cell::Obj(tag, child) = Cell::decode([w0, w1], link.get()).map_err(Stop::Corrupt)?
        else {
            return Ok(None);
        };
        let ch = Obj::open_linked(self.pool.region(), tag, child).map_err(Stop::Corrupt)?;
        self.e.set(E_AUX, child.get());
        w[0].store(w0 | RELEASED, Ordering::Relaxed);
        crate::fault::pause_point("val.free.released");
        let last = dec(ch.rc(), child);
        let last = match last {
            Ok(last) => last,
            Err(err) => {
                self.e.set(E_AUX, 0);
                return Err(Stop::Corrupt(err));
            }
        };
        if last {
            w[0].store(w0 | RELEASED | ZERO, Ordering::Relaxed);
            crate::fault::pause_point("val.free.zero");
        }
        self.e.set(E_AUX, 0);
        Ok(last.then(|| frame(child.get())))
    }

    /// Frees `obj`'s data block, if it has one of its own still.
    fn free_data(&mut self, obj: &Obj<'a>) -> Result<(), Stop> {
        if !(obj.kind.is_seq() || obj.kind.is_table() || obj.kind == Kind::Array) {
            return Ok(());
        }
        let data = obj.load(W_DATA);
        if data == 0 || Offset::new(data) == obj.inline_data().map_err(Stop::Corrupt)? {
            return Ok(());
        }
        let link = word_at(obj.off, W_DATA as u64);
        self.free(Offset::new(data), link, &obj.words[W_DATA])?;
        crate::fault::pause_point("val.free.data");
        Ok(())
    }

    /// Frees `block`, clearing `record` (the word at `at` that links it) with it.
    fn free(&mut self, block: Offset, at: Offset, record: &AtomicU64) -> Result<(), Stop> {
        if self.exact {
            // SAFETY: `block` belongs to an object whose count this walk saw reach zero
            // (the root by the entry's own drop, a child by the decrement its `ZERO` cell
            // records); the object is the walker's alone, and `record` names the block
            // until this free clears it, so no run frees it twice.
            let freed = match &self.walker {
                // SAFETY: as above.
                Walker::Owner => unsafe { self.pool.free_recorded_soon(block, at, record) },
                Walker::Survivor { deadline, .. } => {
                    // SAFETY: as above.
                    match unsafe { self.pool.free_recorded(block, at, record, *deadline) } {
                        Err(AllocError::TimedOut) => Ok(false),
                        other => other.map(|()| true),
                    }
                }
            };
            match freed {
                Ok(true) => return Ok(()),
                Ok(false) => match self.walker {
                    Walker::Survivor { .. } => return Err(Stop::Later),
                    // From here on a death leaves the rest counted, as an unrecorded
                    // drop does: the walk does not wait behind a stopped holder.
                    Walker::Owner => {
                        self.e.set_kind(EntryKind::Releasing);
                        self.exact = false;
                    }
                },
                Err(err) => return Err(Stop::Corrupt(err.into())),
            }
        }
        // SAFETY: as above; the record is cleared by hand, after the free.
        let freed = unsafe { self.pool.free_soon(block, true) };
        record.store(0, Ordering::Relaxed);
        freed.map(|_| ()).map_err(|err| Stop::Corrupt(err.into()))
    }
}

/// The region offset of word `i` of the words at `base`.
fn word_at(base: Offset, i: u64) -> Offset {
    Offset::new(base.get().saturating_add(i.saturating_mul(8)))
}
