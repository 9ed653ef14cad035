//! Refcounts: increment, decrement, and freeing a graph whose last reference went away.
//!
//! The orderings are `Arc`'s: an increment is relaxed (a new reference is made from an
//! existing one, which already keeps the object alive); a decrement is a release, so every
//! use of the object by this reference happens before the decrement; the decrement that
//! reaches zero is followed by an acquire fence, so the freeing process sees every other
//! process's uses (and writes, for the last unique owner) before it frees.

use super::corrupt;
use super::layout::{load_cell, mul, words, Cell, Kind, Obj, ENTRY_WORDS, W_KIND};
use crate::alloc::Pool;
use crate::region::Offset;
use crate::sync::atomic::{fence, AtomicU64, Ordering};
use crate::val::ValError;

/// Adds a reference (relaxed, as `Arc::clone`).
pub(crate) fn inc(rc: &AtomicU64) {
    rc.fetch_add(1, Ordering::Relaxed);
}

/// Drops a reference; `Ok(true)` if it was the last (after an acquire fence). A count of 0
/// is never decremented: it means the memory is not a live object (or its count was
/// corrupted), and is an error.
pub(crate) fn dec(rc: &AtomicU64, at: Offset) -> Result<bool, ValError> {
    let mut cur = rc.load(Ordering::Relaxed);
    loop {
        let Some(less) = cur.checked_sub(1) else {
            return Err(corrupt(at.get(), "refcount 0 on a linked object"));
        };
        // SYNC POINT: release, so this reference's uses happen before the object is freed
        // by whoever drops the last one.
        match rc.compare_exchange_weak(cur, less, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    if cur == 1 {
        // SYNC POINT: pairs with the release decrements of every other reference.
        fence(Ordering::Acquire);
    }
    Ok(cur == 1)
}

/// Drops one reference to the object at `off` and, if it was the last, frees it and every
/// object only it kept alive. Iterative: a work list replaces recursion, so any nesting
/// depth is freed in constant stack. Each object is freed at most once: it joins the list
/// only when its count goes from 1 to 0.
///
/// A corrupt object stops the walk below it (its children leak) and the first error is
/// returned after everything else reachable has been freed.
pub(crate) fn release(pool: &Pool, off: Offset) -> Result<(), ValError> {
    let obj = Obj::open(pool.region(), off, None)?;
    if !dec(obj.rc(), off)? {
        return Ok(());
    }
    free_graph(pool, off)
}

/// Frees the object at `off`, whose count just reached zero, and every object only it
/// kept alive (see [`release`]).
pub(crate) fn free_graph(pool: &Pool, off: Offset) -> Result<(), ValError> {
    // The work list allocates only when a child's count reaches zero too: freeing a leaf
    // (the common case) costs no heap allocation.
    let mut work = Vec::new();
    let mut freer = Freer { pool, hurry: false };
    let mut first_err = free_one(&mut freer, off, &mut work).err();
    while let Some(o) = work.pop() {
        if let Err(e) = free_one(&mut freer, o, &mut work) {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Gives the blocks of objects whose last reference went back to the pool, without
/// blocking behind a stopped or slow holder of the pool lock: what cannot be freed at once
/// is deferred (see `Pool::free_soon`), and once one free was deferred the rest of the walk
/// does not wait at all.
struct Freer<'a> {
    pool: &'a Pool,
    hurry: bool,
}

impl Freer<'_> {
    /// Frees the block at `off`, which belonged to an object whose count reached zero.
    fn free(&mut self, off: Offset) -> Result<(), ValError> {
        // SAFETY: the block belongs to an object whose last reference this walk dropped
        // (its count went from 1 to 0 here, once): no handle, container or view refers to
        // it any more, and no one else frees it.
        let deferred = unsafe { self.pool.free_soon(off, self.hurry) }?;
        self.hurry |= deferred;
        Ok(())
    }
}

/// Drops the reference a cell holds, if it links to an object.
pub(crate) fn release_cell(pool: &Pool, cell: &Cell) -> Result<(), ValError> {
    match *cell {
        Cell::Obj(tag, off) => {
            Kind::of_tag(tag).ok_or_else(|| corrupt(off.get(), "scalar linked"))?;
            release(pool, off)
        }
        _ => Ok(()),
    }
}

/// Frees the object at `o`, whose count reached zero: drops its children's references
/// (pushing those that reach zero on `work`), then its data block and its own block.
fn free_one(freer: &mut Freer<'_>, o: Offset, work: &mut Vec<Offset>) -> Result<(), ValError> {
    let pool = freer.pool;
    let region = pool.region();
    let obj = Obj::open(region, o, None)?;
    let mut first_err = None;
    if obj.kind.is_seq() || obj.kind.is_table() {
        let c = obj.container(pool)?;
        // Per element or entry: its words, and where its cells lie among them.
        let (n, stride, cells_at): (u64, usize, &[(usize, usize)]) = if obj.kind.is_seq() {
            (c.len, 2, &[(0, 2)])
        } else {
            (c.used, ENTRY_WORDS, &[(1, 3), (3, 5)])
        };
        let cells = words(region, c.data, mul(n, stride as u64, o.get())?)?;
        for chunk in cells.chunks_exact(stride) {
            for &(from, to) in cells_at {
                let at = Offset::new(c.data.get());
                let cell = match Cell::decode(load_cell(&chunk[from..to]), at.get()) {
                    Ok(cell) => cell,
                    Err(e) => {
                        first_err.get_or_insert(e);
                        continue;
                    }
                };
                if let Cell::Obj(tag, child) = cell {
                    match Obj::open_linked(region, tag, child).and_then(|ch| dec(ch.rc(), child)) {
                        Ok(true) => work.push(child),
                        Ok(false) => {}
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
            }
        }
        if !c.inline {
            if let Err(e) = freer.free(c.data) {
                first_err.get_or_insert(e);
            }
        }
    } else if obj.kind == Kind::Locked {
        // Nobody holds the lock any more (every handle is gone, and a dead holder's
        // journal was settled by its recovery before its reference was dropped): the
        // container is dropped like a child.
        let root = &obj.words[super::journal::W_ROOT..super::journal::W_ROOT + 2];
        if let Ok(Cell::Obj(tag, child)) = Cell::decode(load_cell(root), o.get()) {
            match Obj::open_linked(region, tag, child).and_then(|ch| dec(ch.rc(), child)) {
                Ok(true) => work.push(child),
                Ok(false) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    } else if obj.kind == Kind::Array {
        let c = obj.container(pool)?;
        if !c.inline {
            if let Err(e) = freer.free(c.data) {
                first_err.get_or_insert(e);
            }
        }
    }
    // A freed object no longer carries the magic, so a stale offset to it is refused even
    // before the pool reuses the block.
    obj.store(W_KIND, 0);
    if let Err(e) = freer.free(o) {
        first_err.get_or_insert(e);
    }
    first_err.map_or(Ok(()), Err)
}
