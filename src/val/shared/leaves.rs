//! Views of the values that are not containers: strings and typed arrays, read in place.

use std::fmt;
use std::ops::Deref;

use super::layout::{elem_size, Short};
use super::plain::{cast, with_elem};
use super::views::Key;
use crate::region::Offset;
use crate::val::{Array, Elem, ElemType, Val, ValError};

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

impl<'a> ShmStr<'a> {
    pub(super) fn short(s: Short) -> ShmStr<'a> {
        ShmStr(StrRepr::Short(s))
    }

    pub(super) fn borrowed(s: &'a str) -> ShmStr<'a> {
        ShmStr(StrRepr::Ref(s))
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
    pub(super) fn new(at: Offset, et: ElemType, bytes: &'a [u8]) -> ShmArray<'a> {
        ShmArray { at, et, bytes }
    }

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
