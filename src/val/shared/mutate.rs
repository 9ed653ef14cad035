//! [`ShmValMut`]: writing a value through its unique handle, and the container writes it
//! and [`share`](super::PoolExt::share) use.

use super::build::{child_of, IntoShm, ShmItem};
use super::handle::ShmVal;
use super::layout::{
    elem_size, load_cell, mul, nth, store_cell, words, Cell, Container, Kind, Obj, CELL_BYTES,
    W_CAP, W_DATA, W_LEN,
};
use super::plain::cast_mut;
use super::release::release_cell;
use super::share::share_child;
use super::tracked;
use super::views::{Key, ShmRef};
use super::{corrupt, table, too_large};
use crate::alloc::Pool;
use crate::region::Offset;
use crate::sync::atomic::Ordering::Relaxed;
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
        let child = child_of(pool, value.into_shm(), obj.off)?;
        let replaced = table::insert(pool, obj, &key, &child.cell(), || share_child(pool, &key))?;
        child.commit();
        Ok(replaced)
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
        table::remove(pool, obj, &key.key())
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
        let (pool, obj) = self.parts()?;
        if kind.is_seq() {
            let child = child_of(pool, value.into_shm(), obj.off)?;
            seq_push(pool, obj, &child.cell())?;
            child.commit();
            return Ok(());
        }
        if kind != Kind::Array {
            return Err(self.wrong("Arr, Tup or Array"));
        }
        let x = match value.into_shm() {
            ShmItem::Val(v) => v,
            ShmItem::Shared(h) => h.view().to_val()?,
        };
        let et = obj
            .elem_type()
            .ok_or_else(|| corrupt(obj.off.get(), "array without element type"))?;
        super::plain::with_elem!(et, T => array_push::<T>(pool, obj, &x))
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
        let c = obj.container(pool)?;
        if i as u64 >= c.len {
            return Err(ValError::OutOfRange {
                value: i.to_string(),
                target: "an index of the sequence",
            });
        }
        let child = child_of(pool, value.into_shm(), obj.off)?;
        let at = nth(c.data, i as u64, CELL_BYTES)?;
        let w = words(obj.region, at, 2)?;
        let old = Cell::decode(load_cell(w), at.get())?;
        store_cell(w, &child.cell());
        child.commit();
        // The new value is in; a corrupt old one can only leak.
        let _ = release_cell(pool, &old);
        Ok(())
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

/// Appends a cell to a sequence, growing its data if full. On success the sequence holds
/// the reference the cell carries; on error nothing changed.
pub(crate) fn seq_push(pool: &Pool, obj: Obj<'_>, cell: &Cell) -> Result<(), ValError> {
    let c = room_for_one(pool, obj)?;
    let at = nth(c.data, c.len, CELL_BYTES)?;
    store_cell(words(obj.region, at, 2)?, cell);
    obj.store(W_LEN, one_more(obj, c.len)?);
    Ok(())
}

/// `len + 1`, or a corruption error: a length at `u64::MAX` cannot be real.
fn one_more(obj: Obj<'_>, len: u64) -> Result<u64, ValError> {
    len.checked_add(1)
        .ok_or_else(|| corrupt(obj.off.get(), format!("length {len}")))
}

/// The container's geometry once it has room for one more element (grown if full).
fn room_for_one(pool: &Pool, obj: Obj<'_>) -> Result<Container, ValError> {
    let c = obj.container(pool)?;
    if c.len < c.cap {
        return Ok(c);
    }
    grow(pool, obj, c, one_more(obj, c.len)?)?;
    obj.container(pool)
}

/// Moves a sequence's or array's data to a new block with room for at least `need`
/// elements (doubling), and frees the old block unless it was the object's own.
fn grow(pool: &Pool, obj: Obj<'_>, c: Container, need: u64) -> Result<(), ValError> {
    let size = match obj.kind {
        Kind::Arr | Kind::Tup => CELL_BYTES,
        Kind::Array => elem_size(
            obj.elem_type()
                .ok_or_else(|| corrupt(obj.off.get(), "array without element type"))?,
        ),
        _ => return Err(corrupt(obj.off.get(), "not a sequence")),
    };
    let cap = c.cap.saturating_mul(2).max(need).max(4);
    let bytes = cap.checked_mul(size).ok_or_else(too_large)?;
    // Both blocks are recorded while the container moves from one to the other: a death
    // at any step gives back whichever the container does not link to.
    let rec = tracked::begin_block(pool, obj.off, Offset::NULL);
    let data = match tracked::alloc_block(pool, rec.as_ref(), bytes, 16, false) {
        Ok(d) => d,
        Err(e) => {
            tracked::end_block(pool, rec);
            return Err(e.into());
        }
    };
    let copied = (|| {
        let at = obj.off.get();
        if obj.kind == Kind::Array {
            let n = mul(c.len, size, at)?;
            // SAFETY: the caller holds the array uniquely (a fresh object or a
            // `ShmValMut`); the old and new blocks are distinct live blocks, so the two
            // slices do not overlap, and nobody else touches either.
            let (src, dst) =
                unsafe { (obj.region.bytes(c.data, n), obj.region.bytes_mut(data, n)) };
            let map = |e: crate::region::RegionError| corrupt(obj.off.get(), e.to_string());
            dst.map_err(map)?.copy_from_slice(src.map_err(map)?);
        } else {
            let n = mul(c.len, 2, at)?;
            let src = words(obj.region, c.data, n)?;
            let dst = words(obj.region, data, n)?;
            for (d, s) in dst.iter().zip(src) {
                d.store(s.load(Relaxed), Relaxed);
            }
        }
        Ok::<(), ValError>(())
    })();
    if let Err(e) = copied {
        // SAFETY: the new block was allocated above and never linked: nothing refers to it.
        let _ = unsafe { tracked::free_block(pool, rec.as_ref(), data) };
        tracked::end_block(pool, rec);
        return Err(e);
    }
    let old = (!c.inline).then(|| tracked::begin_block(pool, obj.off, c.data));
    obj.store(W_DATA, data.get());
    obj.store(W_CAP, cap);
    tracked::end_block(pool, rec);
    crate::fault::pause_point("val.grow.linked");
    if let Some(old) = old {
        // SAFETY: the old data block belonged to this container alone, which the caller
        // holds uniquely (no view of it lives), and the container now links to the new one.
        unsafe { tracked::free_block(pool, old.as_ref(), c.data) }?;
        tracked::end_block(pool, old);
    }
    Ok(())
}

/// Sets an array's length to `len` (within its capacity) and lets `f` write the elements
/// in place; `zero` fills them with zeros first (bool arrays always are, since their bytes
/// must be 0 or 1 before they are viewed as `bool`).
pub(crate) fn write_array<T: Elem>(
    pool: &Pool,
    obj: Obj<'_>,
    len: u64,
    zero: bool,
    f: impl FnOnce(&mut [T]),
) -> Result<(), ValError> {
    if obj.elem_type() != Some(T::TYPE) {
        return Err(corrupt(obj.off.get(), "array of another element type"));
    }
    let c = obj.container(pool)?;
    if len > c.cap {
        return Err(corrupt(obj.off.get(), "array written past its capacity"));
    }
    write_elems::<T>(obj, c.data, len, zero, f)?;
    obj.store(W_LEN, len);
    Ok(())
}

fn write_elems<T: Elem>(
    obj: Obj<'_>,
    at: Offset,
    n: u64,
    zero: bool,
    f: impl FnOnce(&mut [T]),
) -> Result<(), ValError> {
    let len = mul(n, elem_size(T::TYPE), at.get())?;
    // SAFETY: callers hold the array uniquely (a fresh object, or a `ShmValMut` that just
    // checked the count is 1) and hold no other slice over its data, which `container`
    // checked lies in its block.
    let bytes =
        unsafe { obj.region.bytes_mut(at, len) }.map_err(|e| corrupt(at.get(), e.to_string()))?;
    if zero || T::TYPE == crate::val::ElemType::Bool {
        bytes.fill(0);
    }
    f(cast_mut::<T>(bytes, obj.off.get())?);
    Ok(())
}

/// Appends a scalar of exactly type `T` to an array of `T`.
fn array_push<T: Elem>(pool: &Pool, obj: Obj<'_>, x: &Val) -> Result<(), ValError> {
    let e = T::from_val(x).ok_or_else(|| ValError::WrongType {
        expected: "a scalar of the array's element type",
        found: x.tag(),
    })?;
    let c = room_for_one(pool, obj)?;
    let at = nth(c.data, c.len, elem_size(T::TYPE))?;
    write_elems::<T>(obj, at, 1, false, |d| d.fill(e))?;
    obj.store(W_LEN, one_more(obj, c.len)?);
    Ok(())
}
