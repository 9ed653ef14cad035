//! Typed numeric arrays: one contiguous `Vec<T>` per element type.
//!
//! An [`Array`] holds plain numbers, never values, so arrays of arrays cannot be built, as in
//! the original. The [`Elem`] trait gives generic access (`Array::from(vec![1.0f64])`,
//! `array.as_slice::<f64>()`).

use num_complex::{Complex32, Complex64};

use super::{ElemType, Val};

/// A typed numeric array: the original's `Array<T>` for every numeric `T`.
#[derive(Debug, Clone)]
pub enum Array {
    /// `i8` elements.
    I8(Vec<i8>),
    /// `u8` elements.
    U8(Vec<u8>),
    /// `i16` elements.
    I16(Vec<i16>),
    /// `u16` elements.
    U16(Vec<u16>),
    /// `i32` elements.
    I32(Vec<i32>),
    /// `u32` elements.
    U32(Vec<u32>),
    /// `i64` elements.
    I64(Vec<i64>),
    /// `u64` elements.
    U64(Vec<u64>),
    /// `f32` elements.
    F32(Vec<f32>),
    /// `f64` elements.
    F64(Vec<f64>),
    /// Complex elements of two `f32`.
    C32(Vec<Complex32>),
    /// Complex elements of two `f64`.
    C64(Vec<Complex64>),
    /// `bool` elements.
    Bool(Vec<bool>),
}

mod sealed {
    pub trait Sealed {}
}

/// A type that can be the element of an [`Array`]: the thirteen numeric scalars.
///
/// The trait is sealed; its methods move between `Vec<Self>` and the matching [`Array`]
/// variant.
pub trait Elem: sealed::Sealed + Copy + PartialEq + std::fmt::Debug + 'static {
    /// The element type code.
    const TYPE: ElemType;
    /// Wraps a vector in its [`Array`] variant.
    fn into_array(v: Vec<Self>) -> Array;
    /// The elements, if `a` holds this element type.
    fn slice(a: &Array) -> Option<&[Self]>;
    /// The vector, if `a` holds this element type.
    fn vec_mut(a: &mut Array) -> Option<&mut Vec<Self>>;
    /// The element as a scalar value of the same type.
    fn to_val(self) -> Val;
    /// The value as an element, if it holds exactly this scalar type.
    fn from_val(v: &Val) -> Option<Self>;
}

macro_rules! elem {
    ($t:ty, $variant:ident) => {
        impl sealed::Sealed for $t {}
        impl Elem for $t {
            const TYPE: ElemType = ElemType::$variant;
            fn into_array(v: Vec<Self>) -> Array {
                Array::$variant(v)
            }
            fn slice(a: &Array) -> Option<&[Self]> {
                match a {
                    Array::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn vec_mut(a: &mut Array) -> Option<&mut Vec<Self>> {
                match a {
                    Array::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn to_val(self) -> Val {
                Val::$variant(self)
            }
            fn from_val(v: &Val) -> Option<Self> {
                match v {
                    Val::$variant(x) => Some(*x),
                    _ => None,
                }
            }
        }
        impl From<Vec<$t>> for Array {
            fn from(v: Vec<$t>) -> Array {
                Array::$variant(v)
            }
        }
    };
}

elem!(i8, I8);
elem!(u8, U8);
elem!(i16, I16);
elem!(u16, U16);
elem!(i32, I32);
elem!(u32, U32);
elem!(i64, I64);
elem!(u64, U64);
elem!(f32, F32);
elem!(f64, F64);
elem!(Complex32, C32);
elem!(Complex64, C64);
elem!(bool, Bool);

/// Runs `$body` with `$v` bound to the inner vector of any [`Array`] variant.
macro_rules! with_vec {
    ($a:expr, $v:ident => $body:expr) => {
        match $a {
            Array::I8($v) => $body,
            Array::U8($v) => $body,
            Array::I16($v) => $body,
            Array::U16($v) => $body,
            Array::I32($v) => $body,
            Array::U32($v) => $body,
            Array::I64($v) => $body,
            Array::U64($v) => $body,
            Array::F32($v) => $body,
            Array::F64($v) => $body,
            Array::C32($v) => $body,
            Array::C64($v) => $body,
            Array::Bool($v) => $body,
        }
    };
}
pub(crate) use with_vec;

impl Array {
    /// An empty array of element type `ty`.
    pub fn new(ty: ElemType) -> Array {
        match ty {
            ElemType::I8 => Array::I8(Vec::new()),
            ElemType::U8 => Array::U8(Vec::new()),
            ElemType::I16 => Array::I16(Vec::new()),
            ElemType::U16 => Array::U16(Vec::new()),
            ElemType::I32 => Array::I32(Vec::new()),
            ElemType::U32 => Array::U32(Vec::new()),
            ElemType::I64 => Array::I64(Vec::new()),
            ElemType::U64 => Array::U64(Vec::new()),
            ElemType::F32 => Array::F32(Vec::new()),
            ElemType::F64 => Array::F64(Vec::new()),
            ElemType::C32 => Array::C32(Vec::new()),
            ElemType::C64 => Array::C64(Vec::new()),
            ElemType::Bool => Array::Bool(Vec::new()),
        }
    }

    /// The element type.
    pub fn elem_type(&self) -> ElemType {
        match self {
            Array::I8(_) => ElemType::I8,
            Array::U8(_) => ElemType::U8,
            Array::I16(_) => ElemType::I16,
            Array::U16(_) => ElemType::U16,
            Array::I32(_) => ElemType::I32,
            Array::U32(_) => ElemType::U32,
            Array::I64(_) => ElemType::I64,
            Array::U64(_) => ElemType::U64,
            Array::F32(_) => ElemType::F32,
            Array::F64(_) => ElemType::F64,
            Array::C32(_) => ElemType::C32,
            Array::C64(_) => ElemType::C64,
            Array::Bool(_) => ElemType::Bool,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        with_vec!(self, v => v.len())
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as `&[T]`, if the array holds `T`.
    pub fn as_slice<T: Elem>(&self) -> Option<&[T]> {
        T::slice(self)
    }

    /// The vector of `T`, if the array holds `T`.
    pub fn as_vec_mut<T: Elem>(&mut self) -> Option<&mut Vec<T>> {
        T::vec_mut(self)
    }

    /// Element `i` as a scalar value of the element type, if in bounds.
    pub fn get(&self, i: usize) -> Option<Val> {
        with_vec!(self, v => v.get(i).map(|x| x.to_val()))
    }

    /// The elements as scalar values, in order.
    pub fn iter(&self) -> impl Iterator<Item = Val> + '_ {
        (0..self.len()).filter_map(move |i| self.get(i))
    }

    /// Appends a scalar of exactly the element type.
    ///
    /// Fails with [`ValError::WrongType`](super::ValError::WrongType) for any other value:
    /// no numeric conversion is made, since it could lose digits silently.
    pub fn push(&mut self, x: &Val) -> Result<(), super::ValError> {
        fn put<T: Elem>(v: &mut Vec<T>, x: &Val) -> Result<(), super::ValError> {
            let e = T::from_val(x).ok_or(super::ValError::WrongType {
                expected: "a scalar of the array's element type",
                found: x.tag(),
            })?;
            v.push(e);
            Ok(())
        }
        with_vec!(self, v => put(v, x))
    }
}

impl<T: Elem> FromIterator<T> for Array {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Array {
        T::into_array(iter.into_iter().collect())
    }
}
