//! Container writes shared by a unique handle's [`ShmValMut`](super::ShmValMut) and a
//! locked value's guard: each takes the [`Writes`] that says how its steps reach the pool.

use super::build::Child;
use super::build::{child_of, ShmItem};
use super::layout::{
    elem_size, load_cell, mul, nth, words, Cell, Container, Kind, Obj, CELL_BYTES, W_CAP, W_DATA,
    W_LEN,
};
use super::plain::cast_mut;
use super::share::share_child;
use super::tracked;
use super::writes::Writes;
use super::{corrupt, table, too_large};
use crate::alloc::Pool;
use crate::region::Offset;
use crate::sync::atomic::Ordering::Relaxed;
use crate::val::{Elem, Val, ValError};

/// Inserts `value` under `key` in the table `obj`; returns whether it replaced a value.
pub(crate) fn tab_insert(
    pool: &Pool,
    w: &impl Writes,
    obj: Obj<'_>,
    key: &Val,
    value: ShmItem,
) -> Result<bool, ValError> {
    let child = child_of(pool, value, obj.off)?;
    table::insert(pool, w, obj, key, child, || {
        let mut k = share_child(pool, key)?;
        k.moving_into(obj.off);
        Ok(k)
    })
}

/// Appends `value` to the sequence or array `obj`.
pub(crate) fn push(
    pool: &Pool,
    w: &impl Writes,
    obj: Obj<'_>,
    value: ShmItem,
) -> Result<(), ValError> {
    if obj.kind.is_seq() {
        let child = child_of(pool, value, obj.off)?;
        return seq_push(pool, w, obj, child);
    }
    let x = match value {
        ShmItem::Val(v) => v,
        ShmItem::Shared(h) => h.view().to_val()?,
    };
    let et = obj
        .elem_type()
        .ok_or_else(|| corrupt(obj.off.get(), "array without element type"))?;
    super::plain::with_elem!(et, T => array_push::<T>(pool, w, obj, &x))
}

/// Replaces element `i` of the sequence `obj` (the old one is dropped).
pub(crate) fn set(
    pool: &Pool,
    w: &impl Writes,
    obj: Obj<'_>,
    i: usize,
    value: ShmItem,
) -> Result<(), ValError> {
    let c = obj.container(pool)?;
    if i as u64 >= c.len {
        return Err(ValError::OutOfRange {
            value: i.to_string(),
            target: "an index of the sequence",
        });
    }
    let child = child_of(pool, value, obj.off)?;
    let at = nth(c.data, i as u64, CELL_BYTES)?;
    let cell_words = words(obj.region, at, 2)?;
    let old = Cell::decode(load_cell(cell_words), at.get())?;
    w.place(child, |cell| w.store_cell(cell_words, cell))?;
    // The new value is in; a corrupt old one can only leak.
    let _ = w.drop_cell(pool, old);
    Ok(())
}

/// Appends a child to a sequence, growing its data if full. On success the sequence holds
/// the child's reference; on error it is given back.
fn seq_push(pool: &Pool, w: &impl Writes, obj: Obj<'_>, child: Child) -> Result<(), ValError> {
    let c = room_for_one(pool, w, obj)?;
    let at = nth(c.data, c.len, CELL_BYTES)?;
    let len = one_more(obj, c.len)?;
    let cell_words = words(obj.region, at, 2)?;
    // The cell is past the length: nobody reads it until the length says so.
    w.place(child, |cell| {
        super::layout::store_cell(cell_words, cell);
        w.store(&obj.words[W_LEN], len)
    })
}

/// `len + 1`, or a corruption error: a length at `u64::MAX` cannot be real.
fn one_more(obj: Obj<'_>, len: u64) -> Result<u64, ValError> {
    len.checked_add(1)
        .ok_or_else(|| corrupt(obj.off.get(), format!("length {len}")))
}

/// The container's geometry once it has room for one more element (grown if full).
fn room_for_one(pool: &Pool, w: &impl Writes, obj: Obj<'_>) -> Result<Container, ValError> {
    let c = obj.container(pool)?;
    if c.len < c.cap {
        return Ok(c);
    }
    grow(pool, w, obj, c, one_more(obj, c.len)?)?;
    obj.container(pool)
}

/// Moves a sequence's or array's data to a new block with room for at least `need`
/// elements (doubling), and frees the old block unless it was the object's own.
fn grow(
    pool: &Pool,
    w: &impl Writes,
    obj: Obj<'_>,
    c: Container,
    need: u64,
) -> Result<(), ValError> {
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
    let rec = w.new_block(pool, obj.off)?;
    let data = match tracked::alloc_block(pool, rec.as_ref(), bytes, 16, false) {
        Ok(d) => d,
        Err(e) => {
            w.done_block(pool, rec, Offset::NULL);
            return Err(e.into());
        }
    };
    let copied = (|| {
        let at = obj.off.get();
        if obj.kind == Kind::Array {
            let n = mul(c.len, size, at)?;
            // SAFETY: the caller holds the array uniquely (a fresh object or a
            // `ShmValMut`) or under its lock; the old and new blocks are distinct live blocks, so the two
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
        w.done_block(pool, rec, Offset::NULL);
        return Err(e);
    }
    let old = if c.inline {
        None
    } else {
        Some(w.old_block(pool, obj.off, c.data)?)
    };
    let switched = w
        .store(&obj.words[W_DATA], data.get())
        .and_then(|()| w.store(&obj.words[W_CAP], cap));
    w.done_block(pool, rec, data);
    switched?;
    crate::fault::pause_point("val.grow.linked");
    if let Some(old) = old {
        // SAFETY: the old data block belonged to this container alone, which the caller
        // holds uniquely or under its lock (no view of it lives), and the container now
        // links to the new one.
        unsafe { w.drop_block(pool, old, c.data) }?;
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
    // checked the count is 1) or under its lock, write only elements no reader reaches
    // yet (past the length, or in a block not linked yet), and hold no other slice over its data, which `container`
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
fn array_push<T: Elem>(
    pool: &Pool,
    w: &impl Writes,
    obj: Obj<'_>,
    x: &Val,
) -> Result<(), ValError> {
    let e = T::from_val(x).ok_or_else(|| ValError::WrongType {
        expected: "a scalar of the array's element type",
        found: x.tag(),
    })?;
    let c = room_for_one(pool, w, obj)?;
    let at = nth(c.data, c.len, elem_size(T::TYPE))?;
    // The element is past the length: nobody reads it until the length says so.
    write_elems::<T>(obj, at, 1, false, |d| d.fill(e))?;
    w.store(&obj.words[W_LEN], one_more(obj, c.len)?)
}
