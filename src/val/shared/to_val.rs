//! Copying a shared value out to the heap.
//!
//! A value whose containers are each linked once (a tree: what sharing a heap value makes)
//! is copied in one walk that counts what it builds against the caller's limit. A value
//! that links one container from several places may expand far past its size in the pool,
//! so the copy is measured first ([`Measure`]): one past the caller's limit is refused with
//! [`ValError::TooLarge`] before anything is built, and a small graph sharing its children
//! cannot make a copy (or a print, which copies) take exponential time or memory. Either
//! walk uses an explicit stack, so any depth up to [`MAX_NESTING`] takes constant native
//! stack, and a graph linking back to itself ends in [`ValError::TooDeep`].

use num_bigint::{BigInt, BigUint};
use num_complex::Complex64;

use super::expand::{leaf_size, Measure, Size, VAL_BYTES};
use super::layout::{boxed_cell, scalar_val, Cell, Kind, Obj, W_CAP, W_LEN};
use super::plain::{cast, with_elem};
use super::views::{array_data, byte_payload};
use super::walk::{container_link, Children};
use super::{corrupt, MAX_NESTING};
use crate::alloc::Pool;
use crate::sync::atomic::Ordering;
use crate::val::hash::with_known_hash;
use crate::val::{Elem, OTab, Tab, Val, ValError};

/// The heap copy of the value `cell` holds, if its copy takes at most `limit` bytes (see
/// [`Size`]).
///
/// # Errors
///
/// [`ValError::TooLarge`] past `limit`, [`ValError::TooDeep`], [`ValError::Corrupt`].
pub(crate) fn copy_out(pool: &Pool, cell: &Cell, limit: u64) -> Result<Val, ValError> {
    let mut tree = Tree {
        pool,
        bytes: 0,
        limit,
    };
    if let Some(v) = copy_with(pool, cell, &mut tree)? {
        return Ok(v);
    }
    // Shared containers, or past the limit: measured first (which also says how large).
    let size = Measure::new(pool).cell(cell)?.within(limit)?;
    copy_measured(pool, cell, size)
}

/// Copies a value measured to be `size`. Counts what it builds against `size`, so even a
/// value changed since it was measured (by a writer breaking the protocol) cannot make the
/// copy larger.
pub(crate) fn copy_measured(pool: &Pool, cell: &Cell, size: Size) -> Result<Val, ValError> {
    let mut measured = Measured {
        at: cell_offset(cell),
        made: 0,
        values: size.values,
    };
    copy_with(pool, cell, &mut measured)?
        .ok_or_else(|| corrupt(cell_offset(cell), "a measured copy gave up"))
}

/// What a copy checks before each value it builds; `Ok(false)` gives the copy up.
trait Guard {
    /// Before copying the container `obj` (the value copied itself if `root`).
    fn container(&mut self, obj: &Obj<'_>, root: bool) -> Result<bool, ValError>;
    /// Before copying the leaf `c`.
    fn leaf(&mut self, c: &Cell) -> Result<bool, ValError>;
}

/// A copy in one walk: gives up at a container linked from elsewhere too (its count above
/// one), or once what it built passes `limit` bytes (counted as [`Measure`] counts).
struct Tree<'p> {
    pool: &'p Pool,
    bytes: u64,
    limit: u64,
}

impl Tree<'_> {
    fn add(&mut self, bytes: u64) -> bool {
        self.bytes = self.bytes.saturating_add(bytes);
        self.bytes <= self.limit
    }
}

impl Guard for Tree<'_> {
    fn container(&mut self, obj: &Obj<'_>, root: bool) -> Result<bool, ValError> {
        // The root's count is its handles'; below it, a count above one is a link from
        // elsewhere (or a handle), which a copy may expand many times.
        if !root && obj.rc().load(Ordering::Relaxed) > 1 {
            return Ok(false);
        }
        Ok(self.add(VAL_BYTES))
    }

    fn leaf(&mut self, c: &Cell) -> Result<bool, ValError> {
        let bytes = leaf_size(self.pool, c)?.bytes;
        Ok(self.add(bytes))
    }
}

/// A copy measured first: at most the values measured.
struct Measured {
    at: u64,
    made: u64,
    values: u64,
}

impl Measured {
    fn count(&mut self) -> Result<bool, ValError> {
        self.made = self.made.saturating_add(1);
        if self.made > self.values {
            return Err(corrupt(self.at, "the value grew while it was copied"));
        }
        Ok(true)
    }
}

impl Guard for Measured {
    fn container(&mut self, _: &Obj<'_>, _: bool) -> Result<bool, ValError> {
        self.count()
    }

    fn leaf(&mut self, _: &Cell) -> Result<bool, ValError> {
        self.count()
    }
}

/// A container being copied: its children still to copy, and the copy so far.
struct Level<'a> {
    children: Children<'a>,
    out: Out,
}

/// A container's copy under construction; a table's key waits for its value with the
/// hash its entry stored.
enum Out {
    Seq {
        items: Vec<Val>,
        tuple: bool,
    },
    Tab {
        tab: Tab,
        key: Option<(Val, Option<u64>)>,
    },
    OTab {
        tab: OTab,
        key: Option<(Val, Option<u64>)>,
    },
}

impl Out {
    fn new(children: &Children<'_>) -> Out {
        // A length read from the region: reserve no more than the measure allowed.
        let n = usize::try_from(children.len.min(1 << 16)).unwrap_or(0);
        match children.kind {
            Kind::Tab => Out::Tab {
                tab: Tab::with_capacity_and_hasher(n, Default::default()),
                key: None,
            },
            Kind::OTab => Out::OTab {
                tab: OTab::with_capacity_and_hasher(n, Default::default()),
                key: None,
            },
            kind => Out::Seq {
                items: Vec::with_capacity(n),
                tuple: kind == Kind::Tup,
            },
        }
    }

    /// Adds the next child: an element, or a key (with the hash its entry stored) and then
    /// its value.
    fn add(&mut self, v: Val, hash: Option<u64>) {
        match self {
            Out::Seq { items, .. } => items.push(v),
            Out::Tab { key, .. } | Out::OTab { key, .. } => match key.take() {
                Some((k, h)) => self.insert(k, v, h),
                None => *key = Some((v, hash)),
            },
        }
    }

    /// Inserts a table's entry; the hash its key's entry stored, if given, spares the
    /// insert hashing the key again.
    #[inline]
    fn insert(&mut self, k: Val, v: Val, hash: Option<u64>) {
        match self {
            Out::Tab { tab, .. } => with_known_hash(k, hash, |k| {
                tab.insert(k, v);
            }),
            Out::OTab { tab, .. } => with_known_hash(k, hash, |k| {
                tab.insert(k, v);
            }),
            // Only a table's children come as entries.
            Out::Seq { items, .. } => {
                items.push(k);
                items.push(v);
            }
        }
    }

    fn finish(self) -> Val {
        match self {
            Out::Seq { items, tuple: true } => Val::Tup(items),
            Out::Seq { items, .. } => Val::Arr(items),
            Out::Tab { tab, .. } => Val::Tab(tab),
            Out::OTab { tab, .. } => Val::OTab(tab),
        }
    }
}

/// Copies the value `cell` holds, asking `guard` before each value; `None` if it gave up.
fn copy_with(pool: &Pool, cell: &Cell, guard: &mut impl Guard) -> Result<Option<Val>, ValError> {
    let Some(root) = container_link(cell) else {
        if !guard.leaf(cell)? {
            return Ok(None);
        }
        return leaf_to_val(pool, cell).map(Some);
    };
    let mut stack: Vec<Level<'_>> = Vec::new();
    let mut next = Some((root, true));
    loop {
        if let Some(((tag, off), is_root)) = next.take() {
            if stack.len() >= MAX_NESTING {
                return Err(ValError::TooDeep { limit: MAX_NESTING });
            }
            let obj = Obj::open_linked(pool.region(), tag, off)?;
            if !guard.container(&obj, is_root)? {
                return Ok(None);
            }
            let children = Children::open(pool, obj)?;
            stack.push(Level {
                out: Out::new(&children),
                children,
            });
        }
        let Some(top) = stack.last_mut() else {
            return Err(corrupt(0, "a copy without a value"));
        };
        // A table's entries of leaves, the common case, go straight in.
        while let Some((key, value, hash)) = top.children.next_leaf_entry()? {
            if !guard.leaf(&key)? || !guard.leaf(&value)? {
                return Ok(None);
            }
            let k = leaf_to_val(pool, &key)?;
            top.out.insert(k, leaf_to_val(pool, &value)?, Some(hash));
        }
        match top.children.next_cell()? {
            Some(c) => match container_link(&c) {
                Some(link) => next = Some((link, false)),
                None => {
                    if !guard.leaf(&c)? {
                        return Ok(None);
                    }
                    let hash = top.children.key_hash();
                    top.out.add(leaf_to_val(pool, &c)?, hash)
                }
            },
            None => {
                let Some(done) = stack.pop() else { continue };
                let v = done.out.finish();
                match stack.last_mut() {
                    Some(top) => {
                        let hash = top.children.key_hash();
                        top.out.add(v, hash)
                    }
                    None => return Ok(Some(v)),
                }
            }
        }
    }
}

fn cell_offset(cell: &Cell) -> u64 {
    match cell {
        Cell::Obj(_, off) => off.get(),
        _ => 0,
    }
}

/// The heap copy of a value that is not a container (a scalar, a short string, or an
/// object holding a string, big integer, complex or typed array).
pub(crate) fn leaf_to_val(pool: &Pool, cell: &Cell) -> Result<Val, ValError> {
    match *cell {
        Cell::Empty => Err(corrupt(0, "an empty cell where a value belongs")),
        Cell::Locked(_) => Err(ValError::Locked),
        Cell::Scalar(tag, bits) => Ok(scalar_val(tag, bits)),
        Cell::Short(s) => s
            .as_str()
            .map(|x| Val::Str(x.to_owned()))
            .ok_or_else(|| corrupt(0, "an inline string is not UTF-8")),
        Cell::Obj(tag, off) => obj_leaf(pool, Obj::open_linked(pool.region(), tag, off)?),
    }
}

/// The heap copy of the value an object that is not a container holds.
pub(crate) fn obj_leaf(pool: &Pool, obj: Obj<'_>) -> Result<Val, ValError> {
    let at = obj.off.get();
    Ok(match obj.kind {
        Kind::Boxed => return leaf_to_val(pool, &boxed_cell(&obj)?),
        Kind::Locked => return Err(ValError::Locked),
        Kind::Str => Val::Str(
            std::str::from_utf8(byte_payload(pool, &obj)?)
                .map_err(|_| corrupt(at, "a string is not UTF-8"))?
                .to_owned(),
        ),
        Kind::BigInt => Val::BigInt(BigInt::from_signed_bytes_le(byte_payload(pool, &obj)?)),
        Kind::BigUint => Val::BigUint(BigUint::from_bytes_le(byte_payload(pool, &obj)?)),
        Kind::C64 => Val::C64(Complex64::new(
            f64::from_bits(obj.load(W_LEN)),
            f64::from_bits(obj.load(W_CAP)),
        )),
        Kind::Array => {
            let (et, bytes) = array_data(pool, &obj)?;
            Val::Array(with_elem!(et, T => T::into_array(cast::<T>(bytes, at)?.to_vec())))
        }
        Kind::Arr | Kind::Tup | Kind::Tab | Kind::OTab => {
            return Err(corrupt(at, "a container where a leaf was expected"))
        }
    })
}
