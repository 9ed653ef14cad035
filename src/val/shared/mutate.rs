//! [`ShmValMut`]: writing a value through its unique handle.

use super::build::IntoShm;
use super::handle::ShmVal;
use super::layout::{elem_size, mul, Kind, Obj};
use super::plain::cast_mut;
use super::views::{Key, ShmRef};
use super::writes::Direct;
use super::{corrupt, ops, table};
use crate::alloc::Pool;
use crate::val::{Elem, Val, ValError};

/// Write access to a shared value through its only handle, from
/// [`ShmVal::get_mut`] or [`ShmVal::try_mut`].
///
/// The methods follow [`Val`]'s: each works on the kinds it names and answers
/// [`ValError::WrongType`] for the others. Values put in are [`IntoShm`]: a heap value is
/// copied into the pool, a handle is moved in (its reference now belongs to the
/// container). If a method fails, the container is unchanged and the value given is
/// dropped.
///
/// Every write first checks again that the count is 1, and otherwise fails with
/// [`ValError::NotUnique`]: a handle made from [`view`](Self::view) (by
/// [`ShmRef::to_handle`]) is a second reference, and while it lives the value is
/// read-only, as after a clone. See the [module docs](super#mutability-and-cycles) for why
/// nothing can raise the count between that check and the write.
#[derive(Debug)]
pub struct ShmValMut<'a> {
    h: &'a mut ShmVal,
}

impl<'a> ShmValMut<'a> {
    pub(crate) fn new(h: &'a mut ShmVal) -> ShmValMut<'a> {
        ShmValMut { h }
    }

    fn parts(&self) -> Result<(&Pool, Obj<'_>), ValError> {
        Ok((self.h.pool(), self.h.obj()?))
    }

    /// [`ValError::NotUnique`] unless the handle is still the only reference (an acquire
    /// load, as [`ShmVal::is_unique`]): a view of this writer may have been turned into a
    /// handle since it was made. Every write calls this first.
    fn still_unique(&mut self) -> Result<(), ValError> {
        if self.h.is_unique() {
            Ok(())
        } else {
            Err(ValError::NotUnique)
        }
    }

    fn wrong(&self, expected: &'static str) -> ValError {
        ValError::WrongType {
            expected,
            found: self.h.tag(),
        }
    }

    /// A read-only view of the value as it is now. Making a handle from it
    /// ([`ShmRef::to_handle`]) adds a reference, so writes fail until that handle drops.
    pub fn view(&self) -> ShmRef<'_> {
        self.h.view()
    }

    /// Inserts `value` under `key` in a `Tab` or `OTab`; returns whether it replaced a
    /// value (which is dropped). An `OTab` keeps a replaced key at its first position.
    ///
    /// Keys are heap values, copied into the pool; they hash with
    /// [`Val::stable_hash`], so `1` and `1.0` are the same key, as in a heap table.
    ///
    /// # Errors
    ///
    /// [`ValError::NotUnique`], [`ValError::WrongType`], [`ValError::ForeignRegion`],
    /// [`ValError::OutOfMemory`], [`ValError::Corrupt`].
    pub fn insert(&mut self, key: impl Into<Val>, value: impl IntoShm) -> Result<bool, ValError> {
        self.still_unique()?;
        if !self.h.kind().is_table() {
            return Err(self.wrong("Tab or OTab"));
        }
        let key = key.into();
        let (pool, obj) = self.parts()?;
        ops::tab_insert(pool, &Direct, obj, &key, value.into_shm())
    }

    /// Removes `key`'s entry from a `Tab` or `OTab`; returns whether there was one. An
    /// `OTab` keeps the order of the others.
    ///
    /// # Errors
    ///
    /// [`ValError::NotUnique`], [`ValError::WrongType`], [`ValError::Corrupt`].
    pub fn remove(&mut self, key: impl Key) -> Result<bool, ValError> {
        self.still_unique()?;
        if !self.h.kind().is_table() {
            return Err(self.wrong("Tab or OTab"));
        }
        let (pool, obj) = self.parts()?;
        table::remove(pool, &Direct, obj, &key.key())
    }

    /// Appends `value` to an `Arr` or `Tup`, or to an `Array` when it is a scalar of exactly
    /// its element type.
    ///
    /// # Errors
    ///
    /// [`ValError::NotUnique`], [`ValError::WrongType`], [`ValError::ForeignRegion`],
    /// [`ValError::OutOfMemory`], [`ValError::Corrupt`].
    pub fn push(&mut self, value: impl IntoShm) -> Result<(), ValError> {
        self.still_unique()?;
        let kind = self.h.kind();
        if !kind.is_seq() && kind != Kind::Array {
            return Err(self.wrong("Arr, Tup or Array"));
        }
        let (pool, obj) = self.parts()?;
        ops::push(pool, &Direct, obj, value.into_shm())
    }

    /// Replaces element `i` of an `Arr` or `Tup` (the old one is dropped).
    ///
    /// # Errors
    ///
    /// [`ValError::NotUnique`], [`ValError::WrongType`], [`ValError::OutOfRange`] if `i` is
    /// not below the length, [`ValError::ForeignRegion`], [`ValError::OutOfMemory`],
    /// [`ValError::Corrupt`].
    pub fn set(&mut self, i: usize, value: impl IntoShm) -> Result<(), ValError> {
        self.still_unique()?;
        if !self.h.kind().is_seq() {
            return Err(self.wrong("Arr or Tup"));
        }
        let (pool, obj) = self.parts()?;
        ops::set(pool, &Direct, obj, i, value.into_shm())
    }

    /// The elements of a typed array of `T`, writable in place. The slice borrows this
    /// writer mutably, so no handle can be made while it lives.
    ///
    /// # Errors
    ///
    /// [`ValError::NotUnique`], [`ValError::WrongType`] unless the value is an array of `T`,
    /// [`ValError::Corrupt`].
    pub fn as_mut_slice<T: Elem>(&mut self) -> Result<&mut [T], ValError> {
        self.still_unique()?;
        let (pool, obj) = self.parts()?;
        if obj.kind != Kind::Array || obj.elem_type() != Some(T::TYPE) {
            return Err(ValError::WrongType {
                expected: "an array of the slice's element type",
                found: self.h.tag(),
            });
        }
        let c = obj.container(pool)?;
        let len = mul(c.len, elem_size(T::TYPE), obj.off.get())?;
        // SAFETY: the handle is the only reference to the array (`still_unique` just read a
        // count of 1) and this writer, which borrows it, is borrowed mutably for the slice's
        // lifetime, so no view or handle can be made meanwhile and no process holds one:
        // nobody reads or writes these bytes while the slice lives. `container` checked
        // they lie in the data block.
        let bytes = unsafe { obj.region.bytes_mut(c.data, len) }
            .map_err(|e| corrupt(c.data.get(), e.to_string()))?;
        cast_mut::<T>(bytes, obj.off.get())
    }
}
