//! Typed read-only views of shared values, borrowed from a handle: no copy, no lock.
//!
//! Every view checks what it reads: a view is made only after its object's header, lengths
//! and data block have been checked, and each element is checked as it is read, so a
//! corrupt value gives [`ValError::Corrupt`] (from the method that met it), never a panic.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use super::build::new_box;
use super::corrupt;
use super::handle::ShmVal;
use super::layout::{
    add, at, elem_size, load_cell, mul, words, Cell, Kind, Obj, Short, CELL_BYTES, W_LEN,
};
use super::plain::{cast, with_elem};
use super::release::inc;
use super::table::TableRef;
use super::to_val::{cell_eq_val, cell_to_val};
use crate::alloc::Pool;
use crate::region::Offset;
use crate::sync::atomic::AtomicU64;
use crate::val::{Array, Elem, ElemType, Tag, Val, ValError};

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
    pool: &'a Pool,
    cell: Cell,
}

impl<'a> ShmRef<'a> {
    pub(crate) fn new(pool: &'a Pool, cell: Cell) -> ShmRef<'a> {
        ShmRef { pool, cell }
    }

    /// The kind of value.
    pub fn tag(&self) -> Tag {
        self.cell.tag().unwrap_or(Tag::None)
    }

    fn wrong(&self, expected: &'static str) -> ValError {
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

    /// A heap copy of the value.
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`], [`ValError::TooDeep`].
    pub fn to_val(&self) -> Result<Val, ValError> {
        cell_to_val(self.pool, &self.cell, 0)
    }

    /// Whether the value equals the heap value `v`, by [`Val`]'s `==` (numbers by value
    /// across types, tables in any order).
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`], [`ValError::TooDeep`].
    pub fn eq_val(&self, v: &Val) -> Result<bool, ValError> {
        cell_eq_val(self.pool, &self.cell, v, 0)
    }

    /// The value as a number of type `T` (any integer type, `f64`, ...), converted as
    /// [`Val`]'s `TryFrom` does.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`], [`ValError::OutOfRange`], [`ValError::Corrupt`].
    pub fn to<T>(&self) -> Result<T, ValError>
    where
        T: for<'v> TryFrom<&'v Val, Error = ValError>,
    {
        match self.cell {
            Cell::Scalar(..) | Cell::Obj(Tag::BigInt | Tag::BigUint | Tag::C64, _) => {
                T::try_from(&self.to_val()?)
            }
            _ => Err(self.wrong("a number")),
        }
    }

    /// The value as a string.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`], [`ValError::Corrupt`] (also for invalid UTF-8).
    pub fn as_str(&self) -> Result<ShmStr<'a>, ValError> {
        match self.cell {
            Cell::Short(s) => {
                std::str::from_utf8(s.as_bytes())
                    .map_err(|_| corrupt(0, "an inline string is not UTF-8"))?;
                Ok(ShmStr(StrRepr::Short(s)))
            }
            _ => {
                let obj = self.obj("a Str", |k| k == Kind::Str)?;
                let s = std::str::from_utf8(byte_payload(self.pool, &obj)?)
                    .map_err(|_| corrupt(obj.off.get(), "a string is not UTF-8"))?;
                Ok(ShmStr(StrRepr::Ref(s)))
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
        Ok(ShmTab {
            pool: self.pool,
            t: TableRef::open(self.pool, obj)?,
        })
    }

    /// The value as a sequence (`Arr` or `Tup`).
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`], [`ValError::Corrupt`].
    pub fn as_seq(&self) -> Result<ShmSeq<'a>, ValError> {
        let obj = self.obj("Arr or Tup", Kind::is_seq)?;
        let (data, cells) = seq_cells(self.pool, &obj)?;
        Ok(ShmSeq {
            pool: self.pool,
            tuple: obj.kind == Kind::Tup,
            data,
            cells,
        })
    }

    /// The value as a typed array.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`], [`ValError::Corrupt`].
    pub fn as_array(&self) -> Result<ShmArray<'a>, ValError> {
        let obj = self.obj("an Array", |k| k == Kind::Array)?;
        let (et, bytes) = array_data(self.pool, &obj)?;
        Ok(ShmArray {
            at: obj.off,
            et,
            bytes,
        })
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
    /// [`ValError::Corrupt`]; [`ValError::OutOfMemory`] for a scalar's box.
    pub fn to_handle(&self) -> Result<ShmVal, ValError> {
        match self.cell {
            Cell::Obj(tag, off) => {
                let obj = Obj::open_linked(self.pool.region(), tag, off)?;
                inc(obj.rc());
                Ok(ShmVal::adopt(self.pool, off, obj.kind, self.cell))
            }
            Cell::Empty => Err(corrupt(0, "an empty cell")),
            _ => new_box(self.pool, self.cell),
        }
    }
}

impl PartialEq<Val> for ShmRef<'_> {
    /// [`eq_val`](ShmRef::eq_val); a value that cannot be read equals nothing.
    fn eq(&self, other: &Val) -> bool {
        self.eq_val(other).unwrap_or(false)
    }
}

impl fmt::Debug for ShmRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_val() {
            Ok(v) => write!(f, "ShmRef({v:?})"),
            Err(e) => write!(f, "ShmRef(<{e}>)"),
        }
    }
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

#[derive(Clone, Copy)]
enum StrRepr<'a> {
    Ref(&'a str),
    Short(Short),
}

/// A shared string, read in place (short strings are copied out of their cell). Derefs to
/// `str`; its UTF-8 was checked when the view was made.
#[derive(Clone, Copy)]
pub struct ShmStr<'a>(StrRepr<'a>);

impl ShmStr<'_> {
    /// The string.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            StrRepr::Ref(s) => s,
            // Checked to be UTF-8 when the view was made; the copy cannot change since.
            StrRepr::Short(s) => std::str::from_utf8(s.as_bytes()).unwrap_or_default(),
        }
    }
}

impl Deref for ShmStr<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for ShmStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ShmStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for ShmStr<'_> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ShmStr<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A shared `Arr` or `Tup`, read in place.
#[derive(Clone, Copy)]
pub struct ShmSeq<'a> {
    pool: &'a Pool,
    tuple: bool,
    data: Offset,
    cells: &'a [AtomicU64],
}

impl<'a> ShmSeq<'a> {
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.cells.len() / 2
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Whether this is a `Tup` (else an `Arr`).
    pub fn is_tuple(&self) -> bool {
        self.tuple
    }

    /// Element `i`, or `None` past the end.
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`] if its cell is.
    pub fn get(&self, i: usize) -> Result<Option<ShmRef<'a>>, ValError> {
        // An index past the end, however large, is absent: its cell would start past the
        // cells (or past the address space).
        let Some(w) = i
            .checked_mul(2)
            .and_then(|w| self.cells.get(w..w.checked_add(2)?))
        else {
            return Ok(None);
        };
        let cell_at = at(self.data.get(), (i as u64).saturating_mul(CELL_BYTES));
        let cell = Cell::decode(load_cell(w), cell_at)?;
        if cell == Cell::Empty {
            return Err(corrupt(cell_at, "an empty element"));
        }
        Ok(Some(ShmRef::new(self.pool, cell)))
    }

    /// The elements in order, each checked as it is read.
    pub fn iter(&self) -> SeqIter<'a> {
        SeqIter { seq: *self, i: 0 }
    }

    /// Whether an element equals `x` (by value, as [`Val`]'s `==`).
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`], [`ValError::TooDeep`].
    pub fn contains(&self, x: impl Key) -> Result<bool, ValError> {
        let x = x.key();
        for e in self.iter() {
            if e?.eq_val(&x)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl fmt::Debug for ShmSeq<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over a [`ShmSeq`]'s elements.
#[derive(Clone, Debug)]
pub struct SeqIter<'a> {
    seq: ShmSeq<'a>,
    i: usize,
}

impl<'a> Iterator for SeqIter<'a> {
    type Item = Result<ShmRef<'a>, ValError>;
    fn next(&mut self) -> Option<Self::Item> {
        let r = self.seq.get(self.i).transpose()?;
        self.i = if r.is_ok() {
            self.i.saturating_add(1)
        } else {
            usize::MAX
        };
        Some(r)
    }
}

/// A shared `Tab` or `OTab`, read in place. Entries iterate in insertion order for both
/// (a `Tab`'s order is unspecified, as on the heap).
#[derive(Clone, Copy)]
pub struct ShmTab<'a> {
    pool: &'a Pool,
    t: TableRef<'a>,
}

impl<'a> ShmTab<'a> {
    /// The number of entries.
    pub fn len(&self) -> usize {
        // At most the capacity, whose entries were checked to fit their block.
        usize::try_from(self.t.c.len).unwrap_or(usize::MAX)
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.t.c.len == 0
    }

    /// Whether this is an `OTab` (else a `Tab`).
    pub fn is_ordered(&self) -> bool {
        self.t.obj.kind == Kind::OTab
    }

    /// The value under `key`, if any. The key is hashed with [`Val::stable_hash`] as the
    /// table's keys were, so `get(1)` finds the key `1.0`.
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`] if an entry or slot met on the way is.
    pub fn get(&self, key: impl Key) -> Result<Option<ShmRef<'a>>, ValError> {
        let key = key.key();
        match self.t.find(self.pool, &key, key.stable_hash(), 0)? {
            Some(e) => Ok(Some(ShmRef::new(self.pool, self.t.value_of(e)?))),
            None => Ok(None),
        }
    }

    /// Whether `key` has an entry.
    ///
    /// # Errors
    ///
    /// As for [`get`](Self::get).
    pub fn contains(&self, key: impl Key) -> Result<bool, ValError> {
        Ok(self.get(key)?.is_some())
    }

    /// The `(key, value)` entries in insertion order, each checked as it is read.
    pub fn iter(&self) -> TabIter<'a> {
        TabIter { tab: *self, e: 0 }
    }
}

impl fmt::Debug for ShmTab<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over a [`ShmTab`]'s entries.
#[derive(Clone, Debug)]
pub struct TabIter<'a> {
    tab: ShmTab<'a>,
    e: u64,
}

impl<'a> Iterator for TabIter<'a> {
    type Item = Result<(ShmRef<'a>, ShmRef<'a>), ValError>;
    fn next(&mut self) -> Option<Self::Item> {
        let t = &self.tab.t;
        while self.e < t.c.used {
            let e = self.e;
            self.e = e.saturating_add(1);
            match t.entry(e) {
                Ok(en) if en.key == Cell::Empty => continue,
                Ok(en) => {
                    let p = self.tab.pool;
                    return Some(Ok((ShmRef::new(p, en.key), ShmRef::new(p, en.value))));
                }
                Err(err) => {
                    self.e = u64::MAX;
                    return Some(Err(err));
                }
            }
        }
        None
    }
}

/// A shared typed array, read in place.
#[derive(Clone, Copy)]
pub struct ShmArray<'a> {
    at: Offset,
    et: ElemType,
    bytes: &'a [u8],
}

impl<'a> ShmArray<'a> {
    /// The element type.
    pub fn elem_type(&self) -> ElemType {
        self.et
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        let size = usize::try_from(elem_size(self.et)).unwrap_or(usize::MAX);
        self.bytes.len().checked_div(size).unwrap_or(0)
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The elements as `&[T]`, in place.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`] unless the elements are `T`s; [`ValError::Corrupt`] (a
    /// bool array holding another byte than 0 or 1).
    pub fn as_slice<T: Elem>(&self) -> Result<&'a [T], ValError> {
        if T::TYPE != self.et {
            return Err(ValError::WrongType {
                expected: "an array of the slice's element type",
                found: self.et.tag(),
            });
        }
        cast::<T>(self.bytes, self.at.get())
    }

    /// Element `i` as a scalar value of the element type, or `None` past the end.
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`] (a bool element neither 0 nor 1).
    pub fn get(&self, i: usize) -> Result<Option<Val>, ValError> {
        with_elem!(self.et, T => Ok(self.as_slice::<T>()?.get(i).map(|x| x.to_val())))
    }

    /// A heap copy.
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`].
    pub fn to_array(&self) -> Result<Array, ValError> {
        with_elem!(self.et, T => Ok(T::into_array(self.as_slice::<T>()?.to_vec())))
    }

    /// Whether an element equals `x` by value.
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`].
    pub fn contains(&self, x: impl Key) -> Result<bool, ValError> {
        let x = x.key();
        with_elem!(self.et, T => Ok(self.as_slice::<T>()?.iter().any(|e| e.to_val() == *x)))
    }
}

impl fmt::Debug for ShmArray<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_array() {
            Ok(a) => write!(f, "ShmArray({a:?})"),
            Err(e) => write!(f, "ShmArray(<{e}>)"),
        }
    }
}
