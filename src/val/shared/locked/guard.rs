//! [`LockedGuard`]: a locked value's lock held, and [`LockedMut`]: writing its container
//! or a container nested in it, one committed operation per call.

use std::marker::PhantomData;

use super::super::build::IntoShm;
use super::super::journal::LockedObj;
use super::super::layout::{
    elem_size, load_cell, mul, words, Cell, Kind, Obj, CELL_BYTES, ENTRY_BYTES, W_DATA,
};
use super::super::plain::cast_mut;
use super::super::share::share_child;
use super::super::table::{self, TableRef};
use super::super::views::{Key, ShmRef};
use super::super::writes::Writes;
use super::super::{corrupt, ops, too_large, tracked};
use super::write::Journal;
use super::ShmLocked;
use crate::alloc::Pool;
use crate::region::Offset;
use crate::sync::ShmMutexGuard;
use crate::val::{Elem, Tag, Val, ValError};

fn is_table(t: Tag) -> bool {
    matches!(t, Tag::Tab | Tag::OTab)
}

fn is_seq(t: Tag) -> bool {
    matches!(t, Tag::Arr | Tag::Tup)
}

/// Byte offset of the value cell in a table entry.
const VALUE_AT: u64 = 24;

/// The lock of a [`ShmLocked`] value, held: reads and writes of the value go through it,
/// and what they borrow cannot outlive it. Dropping it unlocks.
///
/// Each write is one operation, committed before the call returns: a holder killed at any
/// point of it leaves the value as before the call or as after it, and the next holder
/// finds it so ([`owner_died`](Self::owner_died) tells it a holder died). Writes and reads
/// follow [`ShmValMut`](crate::val::shared::ShmValMut)'s and [`ShmRef`]'s; nested containers are
/// written through [`child_mut`](Self::child_mut) and [`item_mut`](Self::item_mut).
pub struct LockedGuard<'a> {
    pub(super) h: &'a ShmLocked,
    pub(super) l: LockedObj<'a>,
    pub(super) _lock: ShmMutexGuard<'a>,
    pub(super) owner_died: bool,
}

impl std::fmt::Debug for LockedGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockedGuard")
            .field("value", &self.l.obj.off)
            .field("owner_died", &self.owner_died)
            .finish()
    }
}

impl Drop for LockedGuard<'_> {
    fn drop(&mut self) {
        // Then the mutex guard, a field, unlocks.
        self.h.set_holding(false);
    }
}

impl<'a> LockedGuard<'a> {
    /// Whether a previous holder died holding the lock (or in the middle of an operation).
    /// The value was repaired before this guard was made: its last operation is either
    /// whole or undone.
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Write access to the value's container.
    pub fn root(&mut self) -> LockedMut<'_> {
        LockedMut {
            pool: self.h.pool(),
            l: self.l,
            link: self.l.root_at().unwrap_or(Offset::NULL),
            parent: self.l.obj.off,
            _guard: PhantomData,
        }
    }

    /// A view of the value's container, borrowed from the guard.
    pub fn view(&self) -> ShmRef<'_> {
        ShmRef::new(
            self.h.pool(),
            Cell::decode(load_cell(self.l.root()), 0).unwrap_or(Cell::Empty),
        )
    }

    /// The value under `key` of a `Tab` or `OTab`, if any.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`], [`ValError::Corrupt`].
    pub fn get(&self, key: impl Key) -> Result<Option<ShmRef<'_>>, ValError> {
        self.view().as_tab()?.get(key)
    }

    /// A heap copy of the value (see [`ShmRef::to_val`]).
    ///
    /// # Errors
    ///
    /// As [`ShmRef::to_val`].
    pub fn to_val(&self) -> Result<Val, ValError> {
        self.view().to_val()
    }

    /// Inserts `value` under `key` in a `Tab` or `OTab`; returns whether it replaced one.
    ///
    /// # Errors
    ///
    /// As [`LockedMut::insert`].
    pub fn insert(&mut self, key: impl Into<Val>, value: impl IntoShm) -> Result<bool, ValError> {
        self.root().insert(key, value)
    }

    /// Removes `key`'s entry from a `Tab` or `OTab`; returns whether there was one.
    ///
    /// # Errors
    ///
    /// As [`LockedMut::remove`].
    pub fn remove(&mut self, key: impl Key) -> Result<bool, ValError> {
        self.root().remove(key)
    }

    /// Adds `by` to the integer under `key` (0 if absent); returns the new value.
    ///
    /// # Errors
    ///
    /// As [`LockedMut::increment`].
    pub fn increment(&mut self, key: impl Into<Val>, by: i64) -> Result<i64, ValError> {
        self.root().increment(key, by)
    }

    /// Appends `value` to an `Arr`, `Tup` or `Array`.
    ///
    /// # Errors
    ///
    /// As [`LockedMut::push`].
    pub fn push(&mut self, value: impl IntoShm) -> Result<(), ValError> {
        self.root().push(value)
    }

    /// Replaces element `i` of an `Arr` or `Tup`.
    ///
    /// # Errors
    ///
    /// As [`LockedMut::set`].
    pub fn set(&mut self, i: usize, value: impl IntoShm) -> Result<(), ValError> {
        self.root().set(i, value)
    }

    /// Write access to the container under `key` of the value's table.
    ///
    /// # Errors
    ///
    /// As [`LockedMut::child_mut`].
    pub fn child_mut(&mut self, key: impl Key) -> Result<LockedMut<'_>, ValError> {
        let mut r = self.root();
        let at = r.child_link(key)?;
        Ok(r.at(at))
    }

    /// Write access to element `i` of the value's sequence, a container.
    ///
    /// # Errors
    ///
    /// As [`LockedMut::item_mut`].
    pub fn item_mut(&mut self, i: usize) -> Result<LockedMut<'_>, ValError> {
        let mut r = self.root();
        let at = r.item_link(i)?;
        Ok(r.at(at))
    }

    /// Lets `f` change the elements of a typed array of `T` in place, as one operation.
    ///
    /// # Errors
    ///
    /// As [`LockedMut::update_slice`].
    pub fn update_slice<T: Elem, R>(
        &mut self,
        f: impl FnOnce(&mut [T]) -> R,
    ) -> Result<R, ValError> {
        self.root().update_slice(f)
    }
}

/// Write access to a container of a locked value (its own, or one nested in it), borrowed
/// from the [`LockedGuard`]. Each method is one operation, committed before it returns or
/// rolled back on error.
///
/// A container that a handle outside the value also holds (taken out with
/// [`ShmRef::to_handle`]) is read-only to that handle's holders, so it is copied first
/// and the copy written, the handle keeping what it saw. The same holds for every
/// container on the way down to the one written, so no handle leads to a container above
/// it, and a handle put in cannot close a cycle.
pub struct LockedMut<'g> {
    pool: &'g Pool,
    l: LockedObj<'g>,
    /// The cell linking the container.
    link: Offset,
    /// The object holding that cell (the locked value, or a container in it).
    parent: Offset,
    _guard: PhantomData<&'g mut ()>,
}

impl std::fmt::Debug for LockedMut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockedMut")
            .field("link", &self.link)
            .finish()
    }
}

impl<'g> LockedMut<'g> {
    /// Write access to the container linked from the cell `link` of the object `parent`:
    /// for the callers that borrow this access mutably for as long as it lives.
    fn at(&self, (link, parent): (Offset, Offset)) -> LockedMut<'g> {
        LockedMut {
            pool: self.pool,
            l: self.l,
            link,
            parent,
            _guard: PhantomData,
        }
    }

    fn cell(&self) -> Result<(Cell, &'g [crate::sync::atomic::AtomicU64]), ValError> {
        let w = words(self.pool.region(), self.link, 2)?;
        Ok((Cell::decode(load_cell(w), self.link.get())?, w))
    }

    /// A view of the container, borrowed from this access.
    pub fn view(&self) -> ShmRef<'_> {
        ShmRef::new(self.pool, self.cell().map_or(Cell::Empty, |(c, _)| c))
    }

    /// The container, made writable: copied first if anything outside the value holds it.
    fn writable(&self, j: &Journal<'g>) -> Result<Obj<'g>, ValError> {
        let region = self.pool.region();
        let (cell, w) = self.cell()?;
        let Cell::Obj(tag, off) = cell else {
            return Err(ValError::WrongType {
                expected: "a container",
                found: cell.tag().unwrap_or(Tag::None),
            });
        };
        let obj = Obj::open_linked(region, tag, off)?;
        if obj.rc().load(crate::sync::atomic::Ordering::Acquire) == 1 {
            return Ok(obj);
        }
        let mut copy = share_child(self.pool, &ShmRef::new(self.pool, cell).to_val()?)?;
        copy.moving_into(self.parent);
        let new = copy.cell();
        j.place(copy, |c| j.store_cell(w, c))?;
        j.drop_cell(self.pool, cell)?;
        match new {
            Cell::Obj(tag, off) => Obj::open_linked(region, tag, off),
            _ => Err(corrupt(self.link.get(), "a container copied to a scalar")),
        }
    }

    /// Runs `f` on the writable container as one operation.
    fn op<R>(
        &mut self,
        f: impl FnOnce(&Journal<'g>, Obj<'g>) -> Result<R, ValError>,
    ) -> Result<R, ValError> {
        let j = Journal::begin(self.pool, self.l)?;
        let r = self.writable(&j).and_then(|obj| f(&j, obj))?;
        j.commit();
        Ok(r)
    }

    fn wrong(&self, expected: &'static str) -> ValError {
        ValError::WrongType {
            expected,
            found: self.view().tag(),
        }
    }

    /// Inserts `value` under `key` in a `Tab` or `OTab`; returns whether it replaced a
    /// value (which is dropped). Keys are copied; values are copied, or moved in if they
    /// are handles.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`], [`ValError::Locked`] for a locked value as `value`,
    /// [`ValError::ForeignRegion`], [`ValError::OutOfMemory`], [`ValError::Corrupt`].
    pub fn insert(&mut self, key: impl Into<Val>, value: impl IntoShm) -> Result<bool, ValError> {
        let key = key.into();
        let pool = self.pool;
        if !is_table(self.view().tag()) {
            return Err(self.wrong("Tab or OTab"));
        }
        self.op(|j, obj| ops::tab_insert(pool, j, obj, &key, value.into_shm()))
    }

    /// Removes `key`'s entry from a `Tab` or `OTab`; returns whether there was one.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`], [`ValError::Corrupt`].
    pub fn remove(&mut self, key: impl Key) -> Result<bool, ValError> {
        let key = key.key();
        let pool = self.pool;
        if !is_table(self.view().tag()) {
            return Err(self.wrong("Tab or OTab"));
        }
        self.op(|j, obj| table::remove(pool, j, obj, &key))
    }

    /// Adds `by` to the integer under `key` of a `Tab` or `OTab` (0 if absent), stored as
    /// an `i64`; returns the new value.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`] for a value that is not an integer,
    /// [`ValError::OutOfRange`] on overflow, and as [`insert`](Self::insert).
    pub fn increment(&mut self, key: impl Into<Val>, by: i64) -> Result<i64, ValError> {
        let key = key.into();
        let pool = self.pool;
        if !is_table(self.view().tag()) {
            return Err(self.wrong("Tab or OTab"));
        }
        let sum = |now: i64| {
            now.checked_add(by).ok_or_else(|| ValError::OutOfRange {
                value: format!("{now} + {by}"),
                target: "i64",
            })
        };
        let done = self.op(|j, obj| {
            let t = TableRef::open(pool, obj)?;
            let Some(e) = t.find(pool, &key, key.stable_hash(), 0)? else {
                return Ok(None);
            };
            // In place: the value cell's words, one operation.
            let now = ShmRef::new(pool, t.value_of(e)?).as_i64()?;
            let new = sum(now)?;
            let words = t.entry_words(e)?;
            j.store_cell(&words[3..5], &Cell::Scalar(Tag::I64, new as u64))?;
            Ok(Some(new))
        })?;
        match done {
            Some(new) => Ok(new),
            None => {
                let new = sum(0)?;
                self.insert(key, new)?;
                Ok(new)
            }
        }
    }

    /// Appends `value` to an `Arr` or `Tup`, or to an `Array` when it is a scalar of exactly
    /// its element type.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`], [`ValError::Locked`], [`ValError::ForeignRegion`],
    /// [`ValError::OutOfMemory`], [`ValError::Corrupt`].
    pub fn push(&mut self, value: impl IntoShm) -> Result<(), ValError> {
        let pool = self.pool;
        let tag = self.view().tag();
        if !is_seq(tag) && tag != Tag::Array {
            return Err(self.wrong("Arr, Tup or Array"));
        }
        self.op(|j, obj| ops::push(pool, j, obj, value.into_shm()))
    }

    /// Replaces element `i` of an `Arr` or `Tup` (the old one is dropped).
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`], [`ValError::OutOfRange`], and as [`push`](Self::push).
    pub fn set(&mut self, i: usize, value: impl IntoShm) -> Result<(), ValError> {
        let pool = self.pool;
        if !is_seq(self.view().tag()) {
            return Err(self.wrong("Arr or Tup"));
        }
        self.op(|j, obj| ops::set(pool, j, obj, i, value.into_shm()))
    }

    /// Makes this container writable now (copying it if anything outside the value holds
    /// it), so that a container reached through it is reached only through the value: no
    /// handle then leads to an ancestor of what is written, and a handle put in cannot
    /// close a cycle.
    fn ensure_unique(&mut self) -> Result<(), ValError> {
        if let (Cell::Obj(tag, off), _) = self.cell()? {
            let obj = Obj::open_linked(self.pool.region(), tag, off)?;
            if obj.rc().load(crate::sync::atomic::Ordering::Acquire) == 1 {
                return Ok(());
            }
        }
        self.op(|_, _| Ok(()))
    }

    /// Where the container under `key` is linked from: its cell, and this container
    /// (made writable first).
    fn child_link(&mut self, key: impl Key) -> Result<(Offset, Offset), ValError> {
        self.ensure_unique()?;
        let (cell, _) = self.cell()?;
        let Cell::Obj(tag, off) = cell else {
            return Err(self.wrong("Tab or OTab"));
        };
        let obj = Obj::open_linked(self.pool.region(), tag, off)?;
        if !obj.kind.is_table() {
            return Err(self.wrong("Tab or OTab"));
        }
        let key = key.key();
        let t = TableRef::open(self.pool, obj)?;
        let e = t
            .find(self.pool, &key, key.stable_hash(), 0)?
            .ok_or_else(|| ValError::MissingKey {
                key: key.to_string(),
            })?;
        let at = mul(e, ENTRY_BYTES, off.get())?
            .checked_add(t.c.data.get())
            .and_then(|x| x.checked_add(VALUE_AT))
            .ok_or_else(too_large)?;
        Ok((Offset::new(at), off))
    }

    /// Where element `i` of this sequence is linked from: its cell, and this sequence
    /// (made writable first).
    fn item_link(&mut self, i: usize) -> Result<(Offset, Offset), ValError> {
        self.ensure_unique()?;
        let (cell, _) = self.cell()?;
        let Cell::Obj(tag, off) = cell else {
            return Err(self.wrong("Arr or Tup"));
        };
        let obj = Obj::open_linked(self.pool.region(), tag, off)?;
        if !obj.kind.is_seq() {
            return Err(self.wrong("Arr or Tup"));
        }
        let c = obj.container(self.pool)?;
        if i as u64 >= c.len {
            return Err(ValError::OutOfRange {
                value: i.to_string(),
                target: "an index of the sequence",
            });
        }
        let at = mul(i as u64, CELL_BYTES, off.get())?
            .checked_add(c.data.get())
            .ok_or_else(too_large)?;
        Ok((Offset::new(at), off))
    }

    /// Write access to the container under `key` of this table.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`] unless this is a `Tab` or `OTab`,
    /// [`ValError::MissingKey`], [`ValError::Corrupt`]. Whether the child is a container
    /// is checked by each write.
    pub fn child_mut(&mut self, key: impl Key) -> Result<LockedMut<'_>, ValError> {
        let at = self.child_link(key)?;
        Ok(self.at(at))
    }

    /// Write access to element `i` of this sequence.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`] unless this is an `Arr` or `Tup`, [`ValError::OutOfRange`],
    /// [`ValError::Corrupt`].
    pub fn item_mut(&mut self, i: usize) -> Result<LockedMut<'_>, ValError> {
        let at = self.item_link(i)?;
        Ok(self.at(at))
    }

    /// Lets `f` change the elements of this typed array of `T`, as one operation: `f`
    /// writes a copy, which replaces the elements when it returns, so a holder killed
    /// meanwhile leaves them as they were.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`] unless this is an array of `T`, [`ValError::OutOfMemory`],
    /// [`ValError::Corrupt`].
    pub fn update_slice<T: Elem, R>(
        &mut self,
        f: impl FnOnce(&mut [T]) -> R,
    ) -> Result<R, ValError> {
        let pool = self.pool;
        let found = self.view().tag();
        self.op(|j, obj| {
            if obj.kind != Kind::Array || obj.elem_type() != Some(T::TYPE) {
                return Err(ValError::WrongType {
                    expected: "an array of the slice's element type",
                    found,
                });
            }
            let c = obj.container(pool)?;
            let bytes = mul(c.cap, elem_size(T::TYPE), obj.off.get())?;
            let len = mul(c.len, elem_size(T::TYPE), obj.off.get())?;
            let rec = j.new_block(pool, obj.off)?;
            let data = tracked::alloc_block(pool, rec.as_ref(), bytes.max(16), 16, false);
            let data = match data {
                Ok(d) => d,
                Err(e) => {
                    j.done_block(pool, rec, Offset::NULL);
                    return Err(e.into());
                }
            };
            j.done_block(pool, rec, data);
            let map = |e: crate::region::RegionError| corrupt(obj.off.get(), e.to_string());
            // SAFETY: the old elements are read under the value's lock, which every writer
            // of them holds; the new block was just allocated for this operation and is
            // linked by nothing yet, so this slice is the only access to it.
            let r = unsafe {
                let src = obj.region.bytes(c.data, len).map_err(map)?;
                let dst = obj.region.bytes_mut(data, len).map_err(map)?;
                dst.copy_from_slice(src);
                f(cast_mut::<T>(dst, obj.off.get())?)
            };
            if !c.inline {
                j.old_block(pool, obj.off, c.data)?;
            }
            j.store(&obj.words[W_DATA], data.get())?;
            Ok(r)
        })
    }
}
