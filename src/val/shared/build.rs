//! Building shared values: [`PoolExt`] (deep copy of a heap [`Val`], empty containers to
//! fill in place) and [`IntoShm`], what may be put into a shared container.

use super::handle::ShmVal;
use super::layout::{
    add, data_bytes, kind_word, store_cell, words, Cell, Kind, Obj, PAIR_WORDS, W_CAP, W_DATA,
    W_KIND, W_LEN, W_RC, W_USED,
};
use super::ops::write_array;
use super::share::share_child;
use super::tracked;
use super::{region_id, table, too_large};
use crate::alloc::Pool;
use crate::region::Offset;
use crate::sync::atomic::Ordering::Relaxed;
use crate::val::{Elem, ElemType, Tag, Val, ValError};

/// Shared-value constructors on a [`Pool`].
///
/// `Pool` belongs to the allocator, a lower layer that knows nothing of values, so the
/// values layer adds its constructors with this extension trait (re-exported at the crate
/// root): `use shmval::PoolExt;` and then `pool.share(&v)`, `pool.tab()`.
///
/// Every constructor returns a unique handle (refcount 1), writable through
/// [`ShmVal::get_mut`] until it is cloned or moved into a container or a queue. On
/// [`ValError::OutOfMemory`] (or any error) whatever was partly built is freed: the pool
/// is as before the call.
///
/// ```
/// # use std::sync::Arc;
/// # use shmval::{alloc::Pool, region::{Region, RegionName}, val, PoolExt, Val};
/// # let name = RegionName::new(format!("shmval-doc-build-{}", std::process::id())).unwrap();
/// # let pool = Pool::create(Arc::new(Region::create(&name, 1 << 20)?))?;
/// let v = val!({"a": 1, "b": [1, 2.5, "x"]});
/// let shared = pool.share(&v)?;
/// assert_eq!(shared.to_val()?, v);
///
/// let mut t = pool.tab()?;
/// let mut w = t.try_mut()?;
/// w.insert("k", 7)?;
/// w.insert("list", pool.share(&val!([1, 2]))?)?; // a handle is moved in
/// assert_eq!(t.as_tab()?.get("k")?.unwrap().to_val()?, 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait PoolExt {
    /// A deep copy of `v` in the pool: every container, string, big integer and array,
    /// with the same types. A scalar gets an object of its own (a box).
    ///
    /// # Errors
    ///
    /// [`ValError::OutOfMemory`], [`ValError::Pool`].
    fn share(&self, v: &Val) -> Result<ShmVal, ValError>;

    /// A new empty `Tab`.
    ///
    /// # Errors
    ///
    /// As for [`share`](Self::share).
    fn tab(&self) -> Result<ShmVal, ValError>;

    /// A new empty `OTab`.
    ///
    /// # Errors
    ///
    /// As for [`share`](Self::share).
    fn otab(&self) -> Result<ShmVal, ValError>;

    /// A new empty `Arr`.
    ///
    /// # Errors
    ///
    /// As for [`share`](Self::share).
    fn arr(&self) -> Result<ShmVal, ValError>;

    /// A new empty `Tup`, to be filled with [`push`](super::ShmValMut::push) before it is
    /// shared.
    ///
    /// # Errors
    ///
    /// As for [`share`](Self::share).
    fn tup(&self) -> Result<ShmVal, ValError>;

    /// A new empty container of kind `tag` (`Tab`, `OTab`, `Arr` or `Tup`) with room for
    /// `capacity` entries or elements before it grows.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`] for another tag; as for [`share`](Self::share).
    fn with_capacity(&self, tag: Tag, capacity: usize) -> Result<ShmVal, ValError>;

    /// A new typed array of `len` zeros (`false`, `0`, `0.0`).
    ///
    /// # Errors
    ///
    /// As for [`share`](Self::share).
    fn array<T: Elem>(&self, len: usize) -> Result<ShmVal, ValError>;

    /// A new typed array holding a copy of `data`.
    ///
    /// # Errors
    ///
    /// As for [`share`](Self::share).
    fn array_from<T: Elem>(&self, data: &[T]) -> Result<ShmVal, ValError>;
}

impl PoolExt for Pool {
    fn share(&self, v: &Val) -> Result<ShmVal, ValError> {
        match share_child(self, v)? {
            Child::Obj(h) => Ok(h.tracked()),
            Child::Inline(cell) => new_box(self, cell).map(ShmVal::tracked),
        }
    }

    fn tab(&self) -> Result<ShmVal, ValError> {
        self.with_capacity(Tag::Tab, 0)
    }

    fn otab(&self) -> Result<ShmVal, ValError> {
        self.with_capacity(Tag::OTab, 0)
    }

    fn arr(&self) -> Result<ShmVal, ValError> {
        self.with_capacity(Tag::Arr, 0)
    }

    fn tup(&self) -> Result<ShmVal, ValError> {
        self.with_capacity(Tag::Tup, 0)
    }

    fn with_capacity(&self, tag: Tag, capacity: usize) -> Result<ShmVal, ValError> {
        match Kind::of_tag(tag) {
            Some(kind) if kind.is_table() || kind.is_seq() => {
                new_container(self, kind, None, capacity as u64).map(ShmVal::tracked)
            }
            _ => Err(ValError::WrongType {
                expected: "Tab, OTab, Arr or Tup",
                found: tag,
            }),
        }
    }

    fn array<T: Elem>(&self, len: usize) -> Result<ShmVal, ValError> {
        let h = new_container(self, Kind::Array, Some(T::TYPE), len as u64)?;
        write_array::<T>(self, h.obj()?, len as u64, true, |_| {})?;
        Ok(h.tracked())
    }

    fn array_from<T: Elem>(&self, data: &[T]) -> Result<ShmVal, ValError> {
        let h = new_container(self, Kind::Array, Some(T::TYPE), data.len() as u64)?;
        write_array::<T>(self, h.obj()?, data.len() as u64, false, |dst| {
            dst.copy_from_slice(data)
        })?;
        Ok(h.tracked())
    }
}

/// What can be put into a shared container: a heap value (anything `Into<Val>`, copied
/// into the pool) or a [`ShmVal`] handle (moved in: the container takes over its
/// reference, no copy and no refcount change).
///
/// A handle of another region is refused with [`ValError::ForeignRegion`].
pub trait IntoShm {
    /// The item, ready to be placed.
    fn into_shm(self) -> ShmItem;
}

/// A value on its way into a shared container; see [`IntoShm`].
#[derive(Debug)]
pub enum ShmItem {
    /// A heap value, to be copied in.
    Val(Val),
    /// A shared value, to be moved in.
    Shared(ShmVal),
}

impl IntoShm for ShmVal {
    fn into_shm(self) -> ShmItem {
        ShmItem::Shared(self)
    }
}

impl IntoShm for ShmItem {
    fn into_shm(self) -> ShmItem {
        self
    }
}

impl<T: Into<Val>> IntoShm for T {
    fn into_shm(self) -> ShmItem {
        ShmItem::Val(self.into())
    }
}

/// A value about to be written into a cell: inline, or an object whose one reference the
/// cell will take over when [`commit`](Child::commit)ted. Dropped uncommitted, it frees
/// what it holds.
#[derive(Debug)]
pub(crate) enum Child {
    Inline(Cell),
    Obj(ShmVal),
}

impl Child {
    /// The cell to write.
    pub(crate) fn cell(&self) -> Cell {
        match self {
            Child::Inline(c) => *c,
            Child::Obj(h) => h.cell(),
        }
    }

    /// Records that the object's reference is moving into the container at `into`: from
    /// here until [`commit`](Self::commit), a death is resolved by looking in the
    /// container (see [`crate::ledger`]).
    pub(crate) fn moving_into(&mut self, into: Offset) {
        if let Child::Obj(h) = self {
            if let Some(e) = h.sole_entry() {
                e.set(crate::ledger::E_AUX, into.get());
                e.set_kind(crate::ledger::Kind::Moving);
                crate::fault::pause_point("val.move.marked");
            }
        }
    }

    /// The cell to write and, for an object, its offset and the entry recording its
    /// reference (null if none), the handle given up: for a locked value's journal, which
    /// settles the reference once the operation's outcome is known.
    pub(crate) fn into_journal(self) -> (Cell, Option<(Offset, Offset)>) {
        match self {
            Child::Inline(c) => (c, None),
            Child::Obj(h) => {
                let cell = h.cell();
                (cell, Some(h.into_parts()))
            }
        }
    }

    /// The cell was written: its reference now belongs to the container.
    pub(crate) fn commit(self) {
        if let Child::Obj(h) = self {
            crate::fault::pause_point("val.move.stored");
            h.into_moved();
        }
    }
}

/// Turns an item into a child for the container at `into` in `pool`'s region. A recorded
/// handle's entry says from now on that its reference moves into the container (see
/// [`crate::ledger`]).
pub(crate) fn child_of(pool: &Pool, item: ShmItem, into: Offset) -> Result<Child, ValError> {
    match item {
        ShmItem::Val(v) => {
            let mut child = share_child(pool, &v)?;
            child.moving_into(into);
            Ok(child)
        }
        ShmItem::Shared(h) => {
            let (expected, found) = (region_id(pool), region_id(h.pool()));
            if expected != found {
                return Err(ValError::ForeignRegion { expected, found });
            }
            // A boxed scalar is stored inline; the box itself is dropped.
            if h.kind() == Kind::Boxed {
                return Ok(Child::Inline(h.cell()));
            }
            // A locked value is reached only through handles, never through a cell: so
            // no reader of a container meets it, and no cycle goes through one.
            if h.kind() == Kind::Locked {
                return Err(ValError::Locked);
            }
            let mut child = Child::Obj(h);
            child.moving_into(into);
            Ok(child)
        }
    }
}

/// Allocates an object of `kind` with `extra` bytes after its header, writes its first
/// word and a refcount of 1, zeroes the rest of the header (a box gets `cell`), lets
/// `finish` complete it, and adopts it. The object is counted (its entry says `Value`)
/// only once it is whole, so that a death before frees the bare block and a death after
/// drops a value whose every word is readable.
pub(crate) fn new_obj(
    pool: &Pool,
    kind: Kind,
    elem: Option<ElemType>,
    extra: u64,
    cell: Cell,
    finish: impl FnOnce(Obj<'_>) -> Result<(), ValError>,
) -> Result<ShmVal, ValError> {
    let size = kind
        .header_bytes()
        .checked_add(extra)
        .ok_or_else(too_large)?;
    // Recorded from before the allocation (see `tracked::begin_block`): a death at any
    // step gives the block back.
    let entry = tracked::begin_block(pool, Offset::NULL, Offset::NULL);
    let off = match tracked::alloc_block(pool, entry.as_ref(), size, 16, true) {
        Ok(off) => off,
        Err(e) => {
            tracked::end_block(pool, entry);
            return Err(e.into());
        }
    };
    let init = words(pool.region(), off, kind.header_words() as u64).map(|w| {
        w[W_KIND].store(kind_word(kind, elem.map_or(0, |e| e as u8)), Relaxed);
        w[W_RC].store(1, Relaxed);
        for x in &w[W_RC + 1..] {
            x.store(0, Relaxed);
        }
        if kind == Kind::Boxed {
            store_cell(&w[W_LEN..W_LEN + 2], &cell);
        }
    });
    // A box is whole with its header (it has nothing to finish).
    let init = init.and_then(|()| match kind {
        Kind::Boxed => Ok(()),
        _ => Obj::open(pool.region(), off, Some(kind)).and_then(finish),
    });
    match init {
        Ok(()) => {
            crate::fault::pause_point("val.build.allocated");
            let h = ShmVal::adopt(pool, off, kind, cell);
            Ok(match entry {
                // The object is whole: the entry holds its one reference from now on.
                Some(e) => {
                    e.set(crate::ledger::E_LOCAL, 1);
                    e.set_kind(crate::ledger::Kind::Value);
                    h.with_entry(e.offset())
                }
                None => h,
            })
        }
        Err(err) => {
            // SAFETY: the block was allocated just above and its offset has not left this
            // function: nothing else refers to it.
            let _ = unsafe { tracked::free_block(pool, entry.as_ref(), off) };
            tracked::end_block(pool, entry);
            Err(err)
        }
    }
}

/// A box holding one inline cell: what a handle to a scalar points at.
pub(crate) fn new_box(pool: &Pool, cell: Cell) -> Result<ShmVal, ValError> {
    new_obj(pool, Kind::Boxed, None, 0, cell, |_| Ok(()))
}

/// A string or big integer: its bytes after a three-word header.
pub(crate) fn new_bytes(pool: &Pool, kind: Kind, bytes: &[u8]) -> Result<ShmVal, ValError> {
    let len = bytes.len() as u64;
    new_obj(pool, kind, None, len, Cell::Empty, |obj| {
        obj.store(W_LEN, len);
        let at = add(obj.off, kind.header_bytes())?;
        // SAFETY: the block was just allocated for this object and no reference to it has
        // left `new_obj`: nobody else reads or writes these bytes.
        let dst = unsafe { pool.region().bytes_mut(at, len) }
            .map_err(|e| super::corrupt(at.get(), e.to_string()))?;
        dst.copy_from_slice(bytes);
        Ok(())
    })
}

/// A complex of two `f64`: the bits of its parts after the refcount.
pub(crate) fn new_pair(pool: &Pool, kind: Kind, parts: [u64; 2]) -> Result<ShmVal, ValError> {
    debug_assert_eq!(kind.header_words(), PAIR_WORDS);
    new_obj(pool, kind, None, 0, Cell::Empty, |obj| {
        obj.store(W_LEN, parts[0]);
        obj.store(W_CAP, parts[1]);
        Ok(())
    })
}

/// An empty container of `kind` with inline room for `cap` elements or entries.
pub(crate) fn new_container(
    pool: &Pool,
    kind: Kind,
    elem: Option<ElemType>,
    cap: u64,
) -> Result<ShmVal, ValError> {
    let bytes = data_bytes(kind, elem, cap).ok_or_else(too_large)?;
    new_obj(pool, kind, elem, bytes, Cell::Empty, |obj| {
        let data = obj.inline_data()?;
        obj.store(W_CAP, cap);
        obj.store(W_DATA, data.get());
        obj.store(W_USED, 0);
        if kind.is_table() {
            table::clear_index(pool, data, cap)?;
        }
        Ok(())
    })
}
