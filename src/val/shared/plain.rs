//! Plain numbers in place: byte payloads viewed as `&[T]` for the array element types.
//!
//! These two casts, the region's `bytes`/`bytes_mut` and the bytes of a short string read
//! from its cell (in `views`) are the only unsafe code of the shared values. Everything
//! else is read and written through atomics.

use super::corrupt;
use crate::val::{Elem, ElemType, ValError};

/// Runs `$body` with the type `$t` standing for the element type `$e`'s Rust type.
macro_rules! with_elem {
    ($e:expr, $t:ident => $body:expr) => {
        match $e {
            $crate::val::ElemType::I8 => {
                type $t = i8;
                $body
            }
            $crate::val::ElemType::U8 => {
                type $t = u8;
                $body
            }
            $crate::val::ElemType::I16 => {
                type $t = i16;
                $body
            }
            $crate::val::ElemType::U16 => {
                type $t = u16;
                $body
            }
            $crate::val::ElemType::I32 => {
                type $t = i32;
                $body
            }
            $crate::val::ElemType::U32 => {
                type $t = u32;
                $body
            }
            $crate::val::ElemType::I64 => {
                type $t = i64;
                $body
            }
            $crate::val::ElemType::U64 => {
                type $t = u64;
                $body
            }
            $crate::val::ElemType::F32 => {
                type $t = f32;
                $body
            }
            $crate::val::ElemType::F64 => {
                type $t = f64;
                $body
            }
            $crate::val::ElemType::C32 => {
                type $t = $crate::val::Complex32;
                $body
            }
            $crate::val::ElemType::C64 => {
                type $t = $crate::val::Complex64;
                $body
            }
            $crate::val::ElemType::Bool => {
                type $t = bool;
                $body
            }
        }
    };
}
pub(crate) use with_elem;

/// Checks that `bytes` can be viewed as `[T]`: alignment, a whole number of elements, and
/// for `bool` that every byte is 0 or 1 (the one element type not valid for every bit
/// pattern). `at` names the array for the error.
// Divides by a type's size and alignment, never 0.
#[allow(clippy::arithmetic_side_effects)]
fn check<T: Elem>(bytes: &[u8], at: u64) -> Result<usize, ValError> {
    let size = std::mem::size_of::<T>();
    if bytes.as_ptr() as usize % std::mem::align_of::<T>() != 0 || bytes.len() % size != 0 {
        return Err(corrupt(at, "misaligned array data"));
    }
    if T::TYPE == ElemType::Bool && bytes.iter().any(|&b| b > 1) {
        return Err(corrupt(at, "a bool element is neither 0 nor 1"));
    }
    Ok(bytes.len() / size)
}

/// `bytes` as a slice of `T`.
pub(crate) fn cast<T: Elem>(bytes: &[u8], at: u64) -> Result<&[T], ValError> {
    let n = check::<T>(bytes, at)?;
    // SAFETY: `Elem` is sealed and implemented exactly for i8..u64, f32, f64, Complex32,
    // Complex64 (repr(C) pairs of floats, no padding) and bool: plain types without
    // padding or pointers, valid for every bit pattern except bool, whose bytes were just
    // checked to be 0 or 1. `check` verified alignment and that `n` elements fill the
    // slice exactly, so the new slice covers the same bytes with the same lifetime and
    // the same (shared, no writer) access.
    Ok(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), n) })
}

/// `bytes` as a mutable slice of `T`.
pub(crate) fn cast_mut<T: Elem>(bytes: &mut [u8], at: u64) -> Result<&mut [T], ValError> {
    let n = check::<T>(bytes, at)?;
    // SAFETY: as in `cast`; the new slice takes over the unique borrow of the same bytes,
    // and every value a caller may store through it is a valid `T`, so the bytes stay
    // valid for `T` (and for `u8`) afterwards.
    Ok(unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<T>(), n) })
}
