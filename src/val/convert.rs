//! Conversions into and out of [`Val`].
//!
//! Into: every scalar, strings, `Vec<T>` of an array element type (a typed [`Array`]),
//! `Vec<Val>` and vectors of strings (an `Arr`), maps (a `Tab`, or an `OTab` from an
//! `IndexMap`), tuples (a `Tup`) and `Option` (`None` or the value).
//!
//! Out, with `TryFrom`: an integer type accepts any integer value (`Bool` excluded) that
//! fits it, else [`ValError::OutOfRange`]; `f64` and `f32` accept any real number, rounding
//! to nearest as Python's `float()` does; the complex types accept any number; containers
//! and strings accept exactly their variant. Anything else is [`ValError::WrongType`].

use std::collections::{BTreeMap, HashMap};

use indexmap::IndexMap;
use num_bigint::{BigInt, BigUint};
use num_complex::{Complex32, Complex64};
use num_traits::ToPrimitive;

use super::{Arr, Array, Elem, OTab, Tab, Val, ValError};

macro_rules! from_scalar {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for Val {
            fn from(x: $t) -> Val {
                Val::$variant(x)
            }
        }
    )*};
}
from_scalar!(
    bool => Bool, i8 => I8, u8 => U8, i16 => I16, u16 => U16, i32 => I32, u32 => U32,
    i64 => I64, u64 => U64, f32 => F32, f64 => F64, Complex32 => C32, Complex64 => C64,
    BigInt => BigInt, BigUint => BigUint, String => Str, Array => Array,
);

impl From<isize> for Val {
    fn from(x: isize) -> Val {
        Val::I64(x as i64)
    }
}

impl From<usize> for Val {
    fn from(x: usize) -> Val {
        Val::U64(x as u64)
    }
}

impl From<char> for Val {
    fn from(c: char) -> Val {
        Val::Str(c.to_string())
    }
}

impl From<&str> for Val {
    fn from(s: &str) -> Val {
        Val::Str(s.to_owned())
    }
}

impl From<&String> for Val {
    fn from(s: &String) -> Val {
        Val::Str(s.clone())
    }
}

impl From<&Val> for Val {
    fn from(v: &Val) -> Val {
        v.clone()
    }
}

impl<T: Elem> From<Vec<T>> for Val {
    /// A typed [`Array`].
    fn from(v: Vec<T>) -> Val {
        Val::Array(T::into_array(v))
    }
}

impl From<Vec<Val>> for Val {
    /// An `Arr`.
    fn from(v: Vec<Val>) -> Val {
        Val::Arr(v)
    }
}

impl From<Vec<&str>> for Val {
    /// An `Arr` of strings.
    fn from(v: Vec<&str>) -> Val {
        Val::Arr(v.into_iter().map(Val::from).collect())
    }
}

impl From<Vec<String>> for Val {
    /// An `Arr` of strings.
    fn from(v: Vec<String>) -> Val {
        Val::Arr(v.into_iter().map(Val::from).collect())
    }
}

impl<K: Into<Val>, V: Into<Val>, S> From<HashMap<K, V, S>> for Val {
    /// A `Tab`. A [`Tab`] itself is rehashed; wrap it with `Val::Tab` to move it.
    fn from(m: HashMap<K, V, S>) -> Val {
        Val::Tab(m.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl<K: Into<Val>, V: Into<Val>> From<BTreeMap<K, V>> for Val {
    /// A `Tab`.
    fn from(m: BTreeMap<K, V>) -> Val {
        Val::Tab(m.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl<K: Into<Val>, V: Into<Val>, S> From<IndexMap<K, V, S>> for Val {
    /// An `OTab` in the map's order. An [`OTab`] itself is rehashed; wrap it with
    /// `Val::OTab` to move it.
    fn from(m: IndexMap<K, V, S>) -> Val {
        Val::OTab(m.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl<T: Into<Val>> From<Option<T>> for Val {
    /// `None` for `None`, else the value.
    fn from(o: Option<T>) -> Val {
        o.map_or(Val::None, Into::into)
    }
}

macro_rules! from_tuple {
    ($($name:ident),+) => {
        impl<$($name: Into<Val>),+> From<($($name,)+)> for Val {
            /// A `Tup`.
            #[allow(non_snake_case)]
            fn from(($($name,)+): ($($name,)+)) -> Val {
                Val::Tup(vec![$($name.into()),+])
            }
        }
    };
}
from_tuple!(A);
from_tuple!(A, B);
from_tuple!(A, B, C);
from_tuple!(A, B, C, D);
from_tuple!(A, B, C, D, E);
from_tuple!(A, B, C, D, E, F);

impl FromIterator<Val> for Val {
    /// An `Arr`.
    fn from_iter<I: IntoIterator<Item = Val>>(iter: I) -> Val {
        Val::Arr(iter.into_iter().collect())
    }
}

impl FromIterator<(Val, Val)> for Val {
    /// A `Tab`.
    fn from_iter<I: IntoIterator<Item = (Val, Val)>>(iter: I) -> Val {
        Val::Tab(iter.into_iter().collect())
    }
}

impl Val {
    /// The value as a `BigInt` if it is an integer of any type (`Bool` excluded).
    pub fn as_bigint(&self) -> Option<BigInt> {
        Some(match self {
            Val::I8(x) => BigInt::from(*x),
            Val::U8(x) => BigInt::from(*x),
            Val::I16(x) => BigInt::from(*x),
            Val::U16(x) => BigInt::from(*x),
            Val::I32(x) => BigInt::from(*x),
            Val::U32(x) => BigInt::from(*x),
            Val::I64(x) => BigInt::from(*x),
            Val::U64(x) => BigInt::from(*x),
            Val::BigInt(x) => x.clone(),
            Val::BigUint(x) => BigInt::from(x.clone()),
            _ => return None,
        })
    }

    /// The value as an `i64` if it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        i64::try_from(self).ok()
    }

    /// The value as an `f64` if it is a real number (rounded to nearest).
    pub fn as_f64(&self) -> Option<f64> {
        f64::try_from(self).ok()
    }

    /// The value if it is a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Val::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

fn wrong(expected: &'static str, v: &Val) -> ValError {
    ValError::WrongType {
        expected,
        found: v.tag(),
    }
}

macro_rules! try_int {
    ($($t:ty),*) => {$(
        impl TryFrom<&Val> for $t {
            type Error = ValError;
            fn try_from(v: &Val) -> Result<$t, ValError> {
                let fits = match v {
                    Val::I8(x) => <$t>::try_from(*x).ok(),
                    Val::U8(x) => <$t>::try_from(*x).ok(),
                    Val::I16(x) => <$t>::try_from(*x).ok(),
                    Val::U16(x) => <$t>::try_from(*x).ok(),
                    Val::I32(x) => <$t>::try_from(*x).ok(),
                    Val::U32(x) => <$t>::try_from(*x).ok(),
                    Val::I64(x) => <$t>::try_from(*x).ok(),
                    Val::U64(x) => <$t>::try_from(*x).ok(),
                    Val::BigInt(x) => <$t>::try_from(x).ok(),
                    Val::BigUint(x) => <$t>::try_from(x).ok(),
                    _ => return Err(wrong("an integer", v)),
                };
                fits.ok_or_else(|| ValError::OutOfRange {
                    value: v.to_string(),
                    target: stringify!($t),
                })
            }
        }
        impl TryFrom<Val> for $t {
            type Error = ValError;
            fn try_from(v: Val) -> Result<$t, ValError> {
                <$t>::try_from(&v)
            }
        }
    )*};
}
try_int!(i8, u8, i16, u16, i32, u32, i64, u64, i128, u128, isize, usize);

impl TryFrom<&Val> for f64 {
    type Error = ValError;
    fn try_from(v: &Val) -> Result<f64, ValError> {
        match v {
            Val::F64(x) => Ok(*x),
            Val::F32(x) => Ok(f64::from(*x)),
            Val::BigInt(x) => Ok(x.to_f64().unwrap_or(f64::NAN)),
            Val::BigUint(x) => Ok(x.to_f64().unwrap_or(f64::NAN)),
            Val::Bool(_) | Val::C32(_) | Val::C64(_) => Err(wrong("a real number", v)),
            _ => match v.as_bigint() {
                // Fixed-size integers convert to f64 without failing.
                Some(b) => Ok(b.to_f64().unwrap_or(f64::NAN)),
                None => Err(wrong("a real number", v)),
            },
        }
    }
}

impl TryFrom<&Val> for f32 {
    type Error = ValError;
    fn try_from(v: &Val) -> Result<f32, ValError> {
        match v {
            Val::F32(x) => Ok(*x),
            _ => f64::try_from(v).map(|x| x as f32),
        }
    }
}

impl TryFrom<&Val> for Complex64 {
    type Error = ValError;
    fn try_from(v: &Val) -> Result<Complex64, ValError> {
        match v {
            Val::C64(c) => Ok(*c),
            Val::C32(c) => Ok(Complex64::new(f64::from(c.re), f64::from(c.im))),
            _ => f64::try_from(v)
                .map(|re| Complex64::new(re, 0.0))
                .map_err(|_| wrong("a number", v)),
        }
    }
}

impl TryFrom<&Val> for Complex32 {
    type Error = ValError;
    fn try_from(v: &Val) -> Result<Complex32, ValError> {
        match v {
            Val::C32(c) => Ok(*c),
            _ => Complex64::try_from(v).map(|c| Complex32::new(c.re as f32, c.im as f32)),
        }
    }
}

impl TryFrom<&Val> for bool {
    type Error = ValError;
    fn try_from(v: &Val) -> Result<bool, ValError> {
        v.as_bool().ok_or_else(|| wrong("a Bool", v))
    }
}

impl TryFrom<&Val> for BigInt {
    type Error = ValError;
    fn try_from(v: &Val) -> Result<BigInt, ValError> {
        v.as_bigint().ok_or_else(|| wrong("an integer", v))
    }
}

impl TryFrom<&Val> for BigUint {
    type Error = ValError;
    fn try_from(v: &Val) -> Result<BigUint, ValError> {
        BigInt::try_from(v)?
            .to_biguint()
            .ok_or_else(|| ValError::OutOfRange {
                value: v.to_string(),
                target: "BigUint",
            })
    }
}

macro_rules! try_by_ref {
    ($($t:ty),*) => {$(
        impl TryFrom<Val> for $t {
            type Error = ValError;
            fn try_from(v: Val) -> Result<$t, ValError> {
                <$t>::try_from(&v)
            }
        }
    )*};
}
try_by_ref!(f64, f32, Complex64, Complex32, bool, BigInt, BigUint);

impl<'a> TryFrom<&'a Val> for &'a str {
    type Error = ValError;
    fn try_from(v: &'a Val) -> Result<&'a str, ValError> {
        v.as_str().ok_or_else(|| wrong("a Str", v))
    }
}

impl TryFrom<&Val> for String {
    type Error = ValError;
    fn try_from(v: &Val) -> Result<String, ValError> {
        <&str>::try_from(v).map(str::to_owned)
    }
}

macro_rules! try_move {
    ($($t:ty => $pat:ident, $what:literal);* $(;)?) => {$(
        impl TryFrom<Val> for $t {
            type Error = ValError;
            fn try_from(v: Val) -> Result<$t, ValError> {
                match v {
                    Val::$pat(x) => Ok(x),
                    other => Err(wrong($what, &other)),
                }
            }
        }
    )*};
}
try_move!(
    String => Str, "a Str";
    Tab => Tab, "a Tab";
    OTab => OTab, "an OTab";
    Array => Array, "an Array";
);

impl TryFrom<Val> for Arr {
    type Error = ValError;
    /// The elements of an `Arr` or a `Tup`.
    fn try_from(v: Val) -> Result<Arr, ValError> {
        match v {
            Val::Arr(x) | Val::Tup(x) => Ok(x),
            other => Err(wrong("an Arr or a Tup", &other)),
        }
    }
}

/// The elements of a typed array of exactly `T`.
///
/// A function rather than `TryFrom<Val> for Vec<T>`, which would overlap the conversion to
/// `Vec<Val>`.
pub fn array_vec<T: Elem>(v: Val) -> Result<Vec<T>, ValError> {
    match v {
        Val::Array(a) => {
            let found = a.elem_type().tag();
            let mut a = a;
            match T::vec_mut(&mut a) {
                Some(vec) => Ok(std::mem::take(vec)),
                None => Err(ValError::WrongType {
                    expected: "an Array of the requested element type",
                    found,
                }),
            }
        }
        other => Err(wrong("an Array", &other)),
    }
}
