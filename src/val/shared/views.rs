//! Typed read-only views of shared values, borrowed from a handle: no copy, no lock.
//!
//! Every view checks what it reads: a view is made only after its object's header, lengths
//! and data block have been checked, and each element is checked as it is read, so a
//! corrupt value gives [`ValError::Corrupt`] (from the method that met it), never a panic.

use std::borrow::Cow;

use super::build::new_box;
use super::containers::{ShmSeq, ShmTab};
use super::eq::cell_eq_val;
use super::handle::ShmVal;
use super::layout::{add, elem_size, mul, words, Cell, Kind, Obj, MAX_REFCOUNT, SHORT_MAX, W_LEN};
use super::leaves::{ShmArray, ShmStr};
use super::table::TableRef;
use super::to_val::copy_out;
use super::{corrupt, MAX_COPY_BYTES};
use crate::alloc::Pool;
use crate::region::Offset;
use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};
use crate::val::{Elem, ElemType, Tag, Val, ValError};

/// A key or element to look up in a shared value: a [`Val`], `&Val`, `&str`, `String` or
/// a number. Lookups hash it with [`Val::stable_hash`], the hash the table was built with,
/// so numerically equal keys of other types find each other (`1`, `1.0`, `true`).
pub trait Key {
    /// The key as a value.
    fn key(&self) -> Cow<'_, Val>;
}

impl Key for Val {
    fn key(&self) -> Cow<'_, Val> {
        Cow::Borrowed(self)
    }
}

impl Key for str {
    fn key(&self) -> Cow<'_, Val> {
        Cow::Owned(Val::from(self))
    }
}

impl Key for String {
    fn key(&self) -> Cow<'_, Val> {
        Cow::Owned(Val::from(self.as_str()))
    }
}

impl<K: Key + ?Sized> Key for &K {
    fn key(&self) -> Cow<'_, Val> {
        (**self).key()
    }
}

macro_rules! scalar_key {
    ($($t:ty),*) => {$(
        impl Key for $t {
            fn key(&self) -> Cow<'_, Val> {
                Cow::Owned(Val::from(*self))
            }
        }
    )*};
}
scalar_key!(bool, i8, u8, i16, u16, i32, u32, i64, u64, isize, usize, f32, f64, char);

/// A read-only view of one shared value: a scalar read from its cell, or a link to an
/// object, viewed through the typed `as_*` methods.
#[derive(Clone, Copy)]
pub struct ShmRef<'a> {
    pub(super) pool: &'a Pool,
    pub(super) cell: Cell,
    /// The two words `cell` was decoded from, when it lies in the region (every cell of a
    /// container or box does; a handle's link to its own object does not): an inline
    /// string is read from them in place.
    words: Option<&'a [AtomicU64; 2]>,
}

impl<'a> ShmRef<'a> {
    /// The view of a value that is not stored in a cell of the region: a handle's link to
    /// its object.
    pub(crate) fn new(pool: &'a Pool, cell: Cell) -> ShmRef<'a> {
        ShmRef {
            pool,
            cell,
            words: None,
        }
    }

    /// The view of the cell decoded from `words`, two words of a container's data or a box,
    /// borrowed from a reference that keeps them alive.
    pub(crate) fn in_cell(pool: &'a Pool, cell: Cell, words: &'a [AtomicU64]) -> ShmRef<'a> {
        ShmRef {
            pool,
            cell,
            words: words.try_into().ok(),
        }
    }

    /// The kind of value.
    pub fn tag(&self) -> Tag {
        self.cell.tag().unwrap_or(Tag::None)
    }

    pub(super) fn wrong(&self, expected: &'static str) -> ValError {
        ValError::WrongType {
            expected,
            found: self.tag(),
        }
    }

    fn obj(&self, want: &'static str, ok: impl Fn(Kind) -> bool) -> Result<Obj<'a>, ValError> {
        match self.cell {
            Cell::Obj(tag, off) if Kind::of_tag(tag).is_some_and(&ok) => {
                Obj::open_linked(self.pool.region(), tag, off)
            }
            _ => Err(self.wrong(want)),
        }
    }

    /// A heap copy of the value, if it takes at most [`MAX_COPY_BYTES`]; see
    /// [`to_val_within`](Self::to_val_within).
    ///
    /// # Errors
    ///
    /// [`ValError::TooLarge`], [`ValError::TooDeep`], [`ValError::Corrupt`].
    pub fn to_val(&self) -> Result<Val, ValError> {
        self.to_val_within(MAX_COPY_BYTES)
    }

    /// A heap copy of the value, if it takes at most `limit` bytes. A value that shares
    /// its children is measured first, in time proportional to the objects in the pool,
    /// and refused before anything is built (see
    /// [shared children](super#shared-children-and-copies)).
    ///
    /// # Errors
    ///
    /// [`ValError::TooLarge`] (saying how large the copy would be),
    /// [`ValError::TooDeep`] past [`MAX_NESTING`](super::MAX_NESTING) nested containers,
    /// [`ValError::Corrupt`].
    pub fn to_val_within(&self, limit: u64) -> Result<Val, ValError> {
        copy_out(self.pool, &self.cell, limit)
    }

    /// Whether the value equals the heap value `v`, by [`Val`]'s `==` (numbers by value
    /// across types, tables in any order). Compares in place, following `v`: the work is
    /// bounded by `v`'s size, whatever the shared value expands to.
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`], [`ValError::TooDeep`].
    pub fn eq_val(&self, v: &Val) -> Result<bool, ValError> {
        cell_eq_val(self.pool, &self.cell, v, 0)
    }

    /// The value as a string, read in place: [`ShmStr::as_str`] gives a `&'a str` that
    /// lives as long as the handle this view borrows, short strings held inline in a cell
    /// included.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`], [`ValError::Corrupt`] (also for invalid UTF-8).
    pub fn as_str(&self) -> Result<ShmStr<'a>, ValError> {
        match self.cell {
            Cell::Short(s) => {
                let words = self
                    .words
                    .ok_or_else(|| corrupt(0, "an inline string outside a cell"))?;
                let bytes = short_bytes(words, s.as_bytes().len());
                // The words were decoded into `s`; reading them again gives the same bytes
                // (nobody writes them while this view lives) on a little-endian platform,
                // the only layout the format has.
                if bytes != s.as_bytes() {
                    return Err(corrupt(0, "an inline string changed while it was read"));
                }
                let s = std::str::from_utf8(bytes)
                    .map_err(|_| corrupt(0, "an inline string is not UTF-8"))?;
                Ok(ShmStr::borrowed(s))
            }
            _ => {
                let obj = self.obj("a Str", |k| k == Kind::Str)?;
                let s = std::str::from_utf8(byte_payload(self.pool, &obj)?)
                    .map_err(|_| corrupt(obj.off.get(), "a string is not UTF-8"))?;
                Ok(ShmStr::borrowed(s))
            }
        }
    }

    /// The value as a table (`Tab` or `OTab`).
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`], [`ValError::Corrupt`].
    pub fn as_tab(&self) -> Result<ShmTab<'a>, ValError> {
        let obj = self.obj("Tab or OTab", Kind::is_table)?;
        Ok(ShmTab::new(self.pool, TableRef::open(self.pool, obj)?))
    }

    /// The value as a sequence (`Arr` or `Tup`).
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`], [`ValError::Corrupt`].
    pub fn as_seq(&self) -> Result<ShmSeq<'a>, ValError> {
        let obj = self.obj("Arr or Tup", Kind::is_seq)?;
        ShmSeq::open(self.pool, obj)
    }

    /// The value as a typed array.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`], [`ValError::Corrupt`].
    pub fn as_array(&self) -> Result<ShmArray<'a>, ValError> {
        let obj = self.obj("an Array", |k| k == Kind::Array)?;
        let (et, bytes) = array_data(self.pool, &obj)?;
        Ok(ShmArray::new(obj.off, et, bytes))
    }

    /// The elements of a typed array of `T`, in place.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`] unless the value is an array of `T`, [`ValError::Corrupt`].
    pub fn as_slice<T: Elem>(&self) -> Result<&'a [T], ValError> {
        self.as_array()?.as_slice()
    }

    /// The entry under `key` of a table, or the element at position `key` of a sequence
    /// (an integer); `None` when absent.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`] for other values, [`ValError::Corrupt`].
    pub fn get(&self, key: impl Key) -> Result<Option<ShmRef<'a>>, ValError> {
        match self.tag() {
            Tag::Tab | Tag::OTab => self.as_tab()?.get(key),
            Tag::Arr | Tag::Tup => match usize::try_from(&*key.key()) {
                Ok(i) => self.as_seq()?.get(i),
                Err(_) => Ok(None),
            },
            _ => Err(self.wrong("a table or sequence")),
        }
    }

    /// Python's `len`: entries of a table, elements of a sequence or array, characters of
    /// a string; 0 for other values.
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`].
    pub fn len(&self) -> Result<usize, ValError> {
        Ok(match self.tag() {
            Tag::Tab | Tag::OTab => self.as_tab()?.len(),
            Tag::Arr | Tag::Tup => self.as_seq()?.len(),
            Tag::Array => self.as_array()?.len(),
            Tag::Str => self.as_str()?.chars().count(),
            _ => 0,
        })
    }

    /// Whether [`len`](Self::len) is 0.
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`].
    pub fn is_empty(&self) -> Result<bool, ValError> {
        Ok(self.len()? == 0)
    }

    /// A new handle to this value: one more reference to its object (a scalar gets a new
    /// box). The handle is read-only while the container holding the value keeps it.
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`] (also for an object whose count is 0 or implausibly large,
    /// which is not counted up); [`ValError::OutOfMemory`] for a scalar's box.
    pub fn to_handle(&self) -> Result<ShmVal, ValError> {
        match self.cell {
            Cell::Obj(tag, off) => {
                let obj = Obj::open_linked(self.pool.region(), tag, off)?;
                let rc = obj.rc().load(Relaxed);
                if rc == 0 || rc >= MAX_REFCOUNT {
                    return Err(corrupt(off.get(), format!("refcount {rc}")));
                }
                let entry = super::tracked::acquire(self.pool, &obj);
                Ok(ShmVal::adopt(self.pool, off, obj.kind, self.cell).with_entry(entry))
            }
            Cell::Empty => Err(corrupt(0, "an empty cell")),
            _ => new_box(self.pool, self.cell).map(ShmVal::tracked),
        }
    }
}

impl PartialEq<Val> for ShmRef<'_> {
    /// [`eq_val`](ShmRef::eq_val); a value that cannot be read equals nothing.
    fn eq(&self, other: &Val) -> bool {
        self.eq_val(other).unwrap_or(false)
    }
}

/// The first `len` bytes of the inline string held in the cell `words` (at most
/// [`SHORT_MAX`]): bytes 2 to `2 + len` of the cell, which the format lays out little-endian
/// (the tag byte, the length byte, then the string).
fn short_bytes(words: &[AtomicU64; 2], len: usize) -> &[u8] {
    let len = len.min(SHORT_MAX);
    let cell: *const u8 = words.as_ptr().cast();
    // SAFETY: `AtomicU64` has the size, alignment and bit validity of `u64`, so the two
    // words are 16 initialised bytes, and the pointer, taken from the reference to both,
    // covers them; `2 + len <= 16`. Reading them as plain bytes races only with a write,
    // and none comes while the slice lives (it has the view's lifetime). The cell is in a
    // box, never written after it is made, or in a container's data, written only while
    // the container is built (before its first reference leaves the building process) or
    // through `ShmValMut`, which holds the only handle mutably borrowed and checks before
    // each write that the count is 1. The view borrows a reference reaching the cell:
    // either the container's only handle or its writer, borrowed shared, so no write
    // method can run; or a handle of a value holding the container, whose link makes the
    // container's count at least 2 for any handle to it, so every write is refused. So no
    // process following the refcount protocol writes these words while the slice lives.
    unsafe { std::slice::from_raw_parts(cell.add(2), len) }
}

/// The bytes of a string or big integer, checked against the object's block.
pub(crate) fn byte_payload<'a>(pool: &Pool, obj: &Obj<'a>) -> Result<&'a [u8], ValError> {
    let len = obj.load(W_LEN);
    let head = Kind::Str.header_bytes();
    let usable = pool
        .usable_size_unlocked(obj.off)
        .map_err(|e| corrupt(obj.off.get(), e.to_string()))?;
    if len > usable.saturating_sub(head) {
        return Err(corrupt(
            obj.off.get(),
            format!("{len} bytes in a block of {usable}"),
        ));
    }
    let at = add(obj.off, head)?;
    // SAFETY: strings and big integers are written once, before their first reference
    // leaves the process that made them, and never again until they are freed; this view
    // is borrowed from a reference (a handle, or a container a handle keeps alive), so the
    // bytes stay allocated and unwritten while the slice lives. They lie inside the
    // object's block (checked above).
    unsafe { obj.region.bytes(at, len) }.map_err(|e| corrupt(at.get(), e.to_string()))
}

/// The cell words of a sequence (two per element) and where they start.
pub(crate) fn seq_cells<'a>(
    pool: &Pool,
    obj: &Obj<'a>,
) -> Result<(Offset, &'a [AtomicU64]), ValError> {
    let c = obj.container(pool)?;
    let n = mul(c.len, 2, obj.off.get())?;
    Ok((c.data, words(obj.region, c.data, n)?))
}

/// An array's element type and element bytes, checked against its data block.
pub(crate) fn array_data<'a>(pool: &Pool, obj: &Obj<'a>) -> Result<(ElemType, &'a [u8]), ValError> {
    let et = obj
        .elem_type()
        .ok_or_else(|| corrupt(obj.off.get(), "array without element type"))?;
    let c = obj.container(pool)?;
    let n = mul(c.len, elem_size(et), obj.off.get())?;
    // SAFETY: an array is written only before its first handle exists, or through
    // `ShmValMut`, which holds the one handle mutably borrowed and checks before each write
    // that the count is 1. This view is borrowed from a reference to the array or its
    // container (a handle, or a writer's view), so while it lives either that reference
    // is borrowed by the view and cannot be written through, or it is another reference
    // and the count stays above 1, so every write is refused. `container` checked the
    // bytes lie in the data block.
    let bytes =
        unsafe { obj.region.bytes(c.data, n) }.map_err(|e| corrupt(c.data.get(), e.to_string()))?;
    Ok((et, bytes))
}
