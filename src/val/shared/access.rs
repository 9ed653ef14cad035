//! Reading a shared value the short way: a field by key or position that is an error when
//! absent ([`ShmRef::field`], [`ShmRef::at`]), typed getters that convert as [`Val`]'s
//! `TryFrom` does ([`ShmRef::as_f64`] and its siblings), and typed copies
//! ([`ShmRef::to_vec`]); the same on [`ShmVal`], for the value its handle holds.
//!
//! Every read is checked as the views' are: a corrupt value is [`ValError::Corrupt`].

use super::containers::{ShmSeq, ShmTab};
use super::corrupt;
use super::handle::ShmVal;
use super::layout::{scalar_val, Cell};
use super::leaves::ShmArray;
use super::plain::with_elem;
use super::to_val::leaf_to_val;
use super::views::{Key, ShmRef};
use crate::val::{Array, Complex32, Complex64, Elem, OTab, Tab, Tag, Val, ValError};

impl<'a> ShmRef<'a> {
    /// The entry under `key` of a table, or the element at position `key` (an integer) of
    /// a sequence, as Python's `v[key]`: [`get`](Self::get), with absence an error that
    /// says what was missing.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use shmval::{alloc::Pool, region::{Region, RegionName}, val, PoolExt};
    /// # let name = RegionName::new(format!("shmval-doc-field-{}", std::process::id())).unwrap();
    /// # let pool = Pool::create(Arc::new(Region::create(&name, 1 << 20)?))?;
    /// let packet = pool.share(&val!({"scale": 2.5, "xs": [1, 2, 3]}))?;
    /// let v = packet.view();
    /// assert_eq!(v.field("scale")?.as_f64()?, 2.5);
    /// assert_eq!(v.field("xs")?.field(1)?.as_i64()?, 2);
    /// assert_eq!(v.field("gain").unwrap_err().to_string(), "missing key 'gain'");
    /// assert_eq!(
    ///     v.field("xs")?.field(3).unwrap_err().to_string(),
    ///     "index 3 is out of range for a sequence of 3 elements"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ValError::MissingKey`] naming the key, [`ValError::IndexOutOfRange`] naming the
    /// index and the length, [`ValError::WrongType`] for a value that is neither (or a
    /// sequence given a key that is not an integer), [`ValError::Corrupt`].
    pub fn field(&self, key: impl Key) -> Result<ShmRef<'a>, ValError> {
        match self.tag() {
            Tag::Tab | Tag::OTab => self.as_tab()?.field(key),
            Tag::Arr | Tag::Tup => {
                let seq = self.as_seq()?;
                let key = key.key();
                match usize::try_from(&*key) {
                    Ok(i) => seq.at(i),
                    Err(ValError::OutOfRange { value, .. }) => Err(ValError::IndexOutOfRange {
                        index: value,
                        len: seq.len(),
                    }),
                    Err(_) => Err(ValError::WrongType {
                        expected: "an integer index",
                        found: key.tag(),
                    }),
                }
            }
            _ => Err(self.wrong("a table or sequence")),
        }
    }

    /// Element `i` of an `Arr` or `Tup`.
    ///
    /// # Errors
    ///
    /// [`ValError::IndexOutOfRange`] past the end, [`ValError::WrongType`] for other
    /// values, [`ValError::Corrupt`].
    pub fn at(&self, i: usize) -> Result<ShmRef<'a>, ValError> {
        self.as_seq()?.at(i)
    }

    /// The value converted to `T` as `T::try_from(&Val)` does: any integer type, `f64`,
    /// `f32`, the complex types, `bool`, `String`, `BigInt`, `BigUint`, or a type of your
    /// own. A scalar is read from its cell; anything else is copied first, within
    /// [`MAX_COPY_BYTES`](super::MAX_COPY_BYTES). The getters ([`as_f64`](Self::as_f64)
    /// and the like) refuse strings, containers and arrays without copying them.
    ///
    /// # Errors
    ///
    /// What the conversion answers ([`ValError::WrongType`], [`ValError::OutOfRange`]),
    /// what copying does ([`ValError::TooLarge`], [`ValError::TooDeep`]),
    /// [`ValError::Corrupt`].
    pub fn to<T>(&self) -> Result<T, ValError>
    where
        T: for<'v> TryFrom<&'v Val, Error = ValError>,
    {
        match self.cell {
            Cell::Scalar(tag, bits) => T::try_from(&scalar_val(tag, bits)),
            _ => T::try_from(&self.to_val()?),
        }
    }

    /// The elements of an `Arr`, `Tup` or typed array, each converted to `T` as
    /// [`to`](Self::to) does (`to_vec::<f64>()` reads `[1, 2.5]` and `array('d')` alike).
    /// [`as_slice`](Self::as_slice) reads an array of exactly `T` in place instead.
    ///
    /// # Errors
    ///
    /// [`ValError::Element`] naming the first element that does not convert and why,
    /// [`ValError::WrongType`] for other values, [`ValError::Corrupt`].
    pub fn to_vec<T>(&self) -> Result<Vec<T>, ValError>
    where
        T: for<'v> TryFrom<&'v Val, Error = ValError>,
    {
        match self.tag() {
            Tag::Arr | Tag::Tup => self.as_seq()?.to_vec(),
            Tag::Array => self.as_array()?.converted(),
            _ => Err(self.wrong("Arr, Tup or Array")),
        }
    }

    /// The value as one of the types the getters give, which take only numbers (or only
    /// bools): every string, container and array is refused by its type alone, so an
    /// empty one of the same type gets the same answer without this one being copied.
    fn number<T>(&self) -> Result<T, ValError>
    where
        T: for<'v> TryFrom<&'v Val, Error = ValError>,
    {
        let v = match self.cell {
            Cell::Scalar(tag, bits) => scalar_val(tag, bits),
            Cell::Obj(Tag::BigInt | Tag::BigUint | Tag::C64, _) => {
                leaf_to_val(self.pool, &self.cell)?
            }
            Cell::Empty => return Err(corrupt(0, "an empty cell")),
            _ => empty_of(self.tag()),
        };
        T::try_from(&v)
    }
}

/// An empty value of `tag`, one of the types that are neither scalars nor big numbers.
fn empty_of(tag: Tag) -> Val {
    match tag {
        Tag::Tab => Val::Tab(Tab::default()),
        Tag::OTab => Val::OTab(OTab::default()),
        Tag::Arr => Val::Arr(Vec::new()),
        Tag::Tup => Val::Tup(Vec::new()),
        Tag::Array => Val::Array(Array::U8(Vec::new())),
        _ => Val::Str(String::new()),
    }
}

/// `error`, from converting element `index`, as [`ValError::Element`]; a corrupt element
/// stays [`ValError::Corrupt`], which names its offset.
fn element(index: usize, error: ValError) -> ValError {
    match error {
        e @ ValError::Corrupt { .. } => e,
        e => ValError::Element {
            index,
            error: Box::new(e),
        },
    }
}

/// The typed getters, on [`ShmRef`] and (through its view) on [`ShmVal`].
macro_rules! getters {
    ($($name:ident -> $t:ty: $what:literal;)*) => {
        impl ShmRef<'_> {$(
            #[doc = concat!("The value as ", $what, ".")]
            ///
            /// # Errors
            ///
            /// [`ValError::WrongType`] for a value of another kind (naming its type, read
            /// from its cell: nothing is copied), [`ValError::OutOfRange`] for an integer
            /// that does not fit, [`ValError::Corrupt`].
            pub fn $name(&self) -> Result<$t, ValError> {
                self.number()
            }
        )*}

        impl ShmVal {$(
            #[doc = concat!("The value as ", $what, "; see [`ShmRef::", stringify!($name), "`].")]
            ///
            /// # Errors
            ///
            /// [`ValError::WrongType`], [`ValError::OutOfRange`], [`ValError::Corrupt`].
            pub fn $name(&self) -> Result<$t, ValError> {
                self.view().$name()
            }
        )*}
    };
}

getters! {
    as_bool -> bool: "a `bool`, if it is a `Bool` (no number is taken for one)";
    as_i8 -> i8: "an `i8`: any integer (of any type, `Bool` excluded) that fits";
    as_u8 -> u8: "a `u8`: any integer that fits";
    as_i16 -> i16: "an `i16`: any integer that fits";
    as_u16 -> u16: "a `u16`: any integer that fits";
    as_i32 -> i32: "an `i32`: any integer that fits";
    as_u32 -> u32: "a `u32`: any integer that fits";
    as_i64 -> i64: "an `i64`: any integer that fits";
    as_u64 -> u64: "a `u64`: any integer that fits";
    as_usize -> usize: "a `usize`: any integer that fits";
    as_f32 -> f32: "an `f32`: any real number (integers and big integers too), rounded to \
                    nearest";
    as_f64 -> f64: "an `f64`: any real number (integers and big integers too), rounded to \
                    nearest as Python's `float()`";
    as_c32 -> Complex32: "a `Complex32`: any number (a real one with no imaginary part)";
    as_c64 -> Complex64: "a `Complex64`: any number (a real one with no imaginary part)";
}

impl<'a> ShmTab<'a> {
    /// The value under `key`, as [`get`](Self::get) finds it, with absence an error naming
    /// the key.
    ///
    /// # Errors
    ///
    /// [`ValError::MissingKey`] (the key printed as a Python literal, `'scale'`),
    /// [`ValError::Corrupt`].
    pub fn field(&self, key: impl Key) -> Result<ShmRef<'a>, ValError> {
        let key = key.key();
        match self.get(&*key)? {
            Some(r) => Ok(r),
            None => Err(ValError::MissingKey {
                key: key.to_string(),
            }),
        }
    }
}

impl<'a> ShmSeq<'a> {
    /// Element `i`, with an index past the end an error naming it and the length.
    ///
    /// # Errors
    ///
    /// [`ValError::IndexOutOfRange`], [`ValError::Corrupt`].
    pub fn at(&self, i: usize) -> Result<ShmRef<'a>, ValError> {
        self.get(i)?.ok_or_else(|| ValError::IndexOutOfRange {
            index: i.to_string(),
            len: self.len(),
        })
    }

    /// The elements, each converted to `T` as [`ShmRef::to`] does.
    ///
    /// # Errors
    ///
    /// [`ValError::Element`] naming the first element that does not convert and why,
    /// [`ValError::Corrupt`].
    pub fn to_vec<T>(&self) -> Result<Vec<T>, ValError>
    where
        T: for<'v> TryFrom<&'v Val, Error = ValError>,
    {
        let mut out = Vec::with_capacity(self.len());
        for (i, e) in self.iter().enumerate() {
            out.push(e?.to::<T>().map_err(|err| element(i, err))?);
        }
        Ok(out)
    }
}

impl ShmArray<'_> {
    /// A copy of the elements, which must be of exactly type `T` (as
    /// [`as_slice`](Self::as_slice)); [`ShmRef::to_vec`] converts instead.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`] unless the elements are `T`s, [`ValError::Corrupt`].
    pub fn to_vec<T: Elem>(&self) -> Result<Vec<T>, ValError> {
        Ok(self.as_slice::<T>()?.to_vec())
    }

    /// The elements, each converted to `T` as `T::try_from(&Val)` does.
    fn converted<T>(&self) -> Result<Vec<T>, ValError>
    where
        T: for<'v> TryFrom<&'v Val, Error = ValError>,
    {
        with_elem!(self.elem_type(), E => {
            let xs = self.as_slice::<E>()?;
            let mut out = Vec::with_capacity(xs.len());
            for (i, x) in xs.iter().enumerate() {
                out.push(T::try_from(&x.to_val()).map_err(|err| element(i, err))?);
            }
            Ok(out)
        })
    }
}

impl ShmVal {
    /// The entry under `key` of a table, or the element at position `key` of a sequence;
    /// `None` when absent. See [`ShmRef::get`].
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`] for other values, [`ValError::Corrupt`].
    pub fn get(&self, key: impl Key) -> Result<Option<ShmRef<'_>>, ValError> {
        self.view().get(key)
    }

    /// The entry under `key` of a table, or the element at position `key` of a sequence,
    /// with absence an error naming the key or index: `packet.field("scale")?.as_f64()?`.
    /// See [`ShmRef::field`].
    ///
    /// # Errors
    ///
    /// [`ValError::MissingKey`], [`ValError::IndexOutOfRange`], [`ValError::WrongType`],
    /// [`ValError::Corrupt`].
    pub fn field(&self, key: impl Key) -> Result<ShmRef<'_>, ValError> {
        self.view().field(key)
    }

    /// Element `i` of an `Arr` or `Tup`. See [`ShmRef::at`].
    ///
    /// # Errors
    ///
    /// [`ValError::IndexOutOfRange`], [`ValError::WrongType`], [`ValError::Corrupt`].
    pub fn at(&self, i: usize) -> Result<ShmRef<'_>, ValError> {
        self.view().at(i)
    }

    /// Python's `len` of the value. See [`ShmRef::len`].
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`].
    pub fn len(&self) -> Result<usize, ValError> {
        self.view().len()
    }

    /// Whether [`len`](Self::len) is 0.
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`].
    pub fn is_empty(&self) -> Result<bool, ValError> {
        self.view().is_empty()
    }

    /// The value converted to `T` as `T::try_from(&Val)` does. See [`ShmRef::to`].
    ///
    /// # Errors
    ///
    /// As for [`ShmRef::to`].
    pub fn to<T>(&self) -> Result<T, ValError>
    where
        T: for<'v> TryFrom<&'v Val, Error = ValError>,
    {
        self.view().to()
    }

    /// The elements of an `Arr`, `Tup` or typed array, each converted to `T`. See
    /// [`ShmRef::to_vec`].
    ///
    /// # Errors
    ///
    /// As for [`ShmRef::to_vec`].
    pub fn to_vec<T>(&self) -> Result<Vec<T>, ValError>
    where
        T: for<'v> TryFrom<&'v Val, Error = ValError>,
    {
        self.view().to_vec()
    }
}
