//! Views of the values that are not containers: strings and typed arrays, read in place.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::ops::Deref;

use super::layout::elem_size;
use super::plain::{cast, with_elem};
use super::views::Key;
use crate::region::Offset;
use crate::val::{Array, Elem, ElemType, Val, ValError};

/// A shared string, read in place: a `&'a str` borrowed from the handle the view came
/// from (short strings too, from the cell that holds them). Its UTF-8 was checked when the
/// view was made.
///
/// It derefs to `str` and compares, hashes and orders as one, so it can be used where a
/// `&str` is expected (`&*s`, [`as_str`](Self::as_str), `s.as_ref()`), compared with
/// `&str` and `String` either way round, printed with `Display`, and looked up in a
/// `HashMap<String, _>` through `Borrow<str>`.
///
/// ```
/// # use std::sync::Arc;
/// # use shmval::{alloc::Pool, region::{Region, RegionName}, val, PoolExt};
/// # let name = RegionName::new(format!("shmval-doc-str-{}", std::process::id())).unwrap();
/// # let pool = Pool::create(Arc::new(Region::create(&name, 1 << 20)?))?;
/// let packet = pool.share(&val!({"name": "probe", "unit": "mV"}))?;
/// let name: &str = packet.field("name")?.as_str()?.as_str(); // lives as long as `packet`
/// assert_eq!(name, "probe");
/// let unit = packet.field("unit")?.as_str()?;
/// assert_eq!(unit, "mV");
/// assert_eq!(String::from("mV"), unit);
/// assert_eq!(format!("{unit}/s"), "mV/s");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShmStr<'a>(&'a str);

impl<'a> ShmStr<'a> {
    pub(super) fn borrowed(s: &'a str) -> ShmStr<'a> {
        ShmStr(s)
    }

    /// The string, borrowed for `'a`: as long as the handle the view came from.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

impl Deref for ShmStr<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        self.0
    }
}

impl AsRef<str> for ShmStr<'_> {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl AsRef<[u8]> for ShmStr<'_> {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl Borrow<str> for ShmStr<'_> {
    fn borrow(&self) -> &str {
        self.0
    }
}

impl fmt::Display for ShmStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)
    }
}

impl<'a> From<ShmStr<'a>> for &'a str {
    fn from(s: ShmStr<'a>) -> &'a str {
        s.0
    }
}

impl From<ShmStr<'_>> for String {
    fn from(s: ShmStr<'_>) -> String {
        s.0.to_owned()
    }
}

impl From<ShmStr<'_>> for Val {
    /// A heap `Str` (so a shared string can be put into another container, copied).
    fn from(s: ShmStr<'_>) -> Val {
        Val::from(s.0)
    }
}

impl Key for ShmStr<'_> {
    fn key(&self) -> Cow<'_, Val> {
        Cow::Owned(Val::from(self.0))
    }
}

/// `==` between a [`ShmStr`] and the string types, both ways round.
macro_rules! str_eq {
    ($($t:ty),*) => {$(
        impl PartialEq<$t> for ShmStr<'_> {
            fn eq(&self, other: &$t) -> bool {
                self.0 == AsRef::<str>::as_ref(other)
            }
        }
        impl PartialEq<ShmStr<'_>> for $t {
            fn eq(&self, other: &ShmStr<'_>) -> bool {
                AsRef::<str>::as_ref(self) == other.0
            }
        }
    )*};
}
str_eq!(str, &str, String, Cow<'_, str>);

impl PartialEq<Val> for ShmStr<'_> {
    /// Whether `other` is a `Str` holding the same text.
    fn eq(&self, other: &Val) -> bool {
        other.as_str() == Some(self.0)
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
