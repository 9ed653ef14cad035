//! Numbers seen as one kind: every numeric value promoted to an exact common form.
//!
//! Comparison and hashing both go through [`Num`], so `1 == 1.0 == 1u8 == BigInt 1` and the
//! three hash alike. Nothing is rounded: an integer and a float compare exactly, however
//! large the integer.

use std::borrow::Cow;
use std::cmp::Ordering;

use num_bigint::BigInt;
use num_complex::{Complex32, Complex64};
use num_traits::{FromPrimitive, ToPrimitive};

use super::hash::ValHasher;
use super::Val;
use std::hash::Hasher;

/// The real part of a number. A `Big` is always outside the `i128` range, so each integer
/// value has exactly one form.
#[derive(Debug, Clone)]
pub(crate) enum Real<'a> {
    Int(i128),
    Big(Cow<'a, BigInt>),
    Float(f64),
}

/// A number promoted to a complex with an exact real part; `im` is 0 for reals.
#[derive(Debug, Clone)]
pub(crate) struct Num<'a> {
    pub(crate) re: Real<'a>,
    pub(crate) im: f64,
}

impl Num<'_> {
    fn real(re: Real<'_>) -> Num<'_> {
        Num { re, im: 0.0 }
    }

    /// Whether the number is complex with a non-zero (or NaN) imaginary part.
    pub(crate) fn is_complex(&self) -> bool {
        self.im != 0.0
    }

    /// Whether the real part is a NaN.
    pub(crate) fn is_nan(&self) -> bool {
        matches!(self.re, Real::Float(f) if f.is_nan())
    }
}

fn big<'a>(b: Cow<'a, BigInt>) -> Real<'a> {
    match b.to_i128() {
        Some(i) => Real::Int(i),
        None => Real::Big(b),
    }
}

/// A scalar that promotes to a [`Num`]: the element types of arrays.
pub(crate) trait AsNum {
    fn as_num(&self) -> Num<'static>;
}

macro_rules! int_as_num {
    ($($t:ty),*) => {$(
        impl AsNum for $t {
            fn as_num(&self) -> Num<'static> {
                Num::real(Real::Int(i128::from(*self)))
            }
        }
    )*};
}
int_as_num!(i8, u8, i16, u16, i32, u32, i64, u64, bool);

impl AsNum for f32 {
    fn as_num(&self) -> Num<'static> {
        Num::real(Real::Float(f64::from(*self)))
    }
}
impl AsNum for f64 {
    fn as_num(&self) -> Num<'static> {
        Num::real(Real::Float(*self))
    }
}
impl AsNum for Complex32 {
    fn as_num(&self) -> Num<'static> {
        Num {
            re: Real::Float(f64::from(self.re)),
            im: f64::from(self.im),
        }
    }
}
impl AsNum for Complex64 {
    fn as_num(&self) -> Num<'static> {
        Num {
            re: Real::Float(self.re),
            im: self.im,
        }
    }
}

/// The number `v` holds, or `None` for a non-number.
pub(crate) fn num(v: &Val) -> Option<Num<'_>> {
    Some(match v {
        Val::Bool(x) => x.as_num(),
        Val::I8(x) => x.as_num(),
        Val::U8(x) => x.as_num(),
        Val::I16(x) => x.as_num(),
        Val::U16(x) => x.as_num(),
        Val::I32(x) => x.as_num(),
        Val::U32(x) => x.as_num(),
        Val::I64(x) => x.as_num(),
        Val::U64(x) => x.as_num(),
        Val::BigInt(b) => Num::real(big(Cow::Borrowed(b))),
        Val::BigUint(b) => Num::real(big(Cow::Owned(BigInt::from(b.clone())))),
        Val::F32(x) => x.as_num(),
        Val::F64(x) => x.as_num(),
        Val::C32(x) => x.as_num(),
        Val::C64(x) => x.as_num(),
        _ => return None,
    })
}

/// Total order on floats: NaN above everything and equal to itself, `-0.0 == 0.0`.
fn float_cmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        // Neither is NaN, so partial_cmp answers.
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Compares a float with an integer exactly. The integer is given as an `i128` or, outside
/// that range, as a `BigInt`.
fn float_int_cmp(f: f64, int: &Real<'_>) -> Ordering {
    if f.is_nan() {
        return Ordering::Greater;
    }
    if f.is_infinite() {
        return if f > 0.0 {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    let fl = f.floor();
    // `fl` is finite and integral, so both conversions are exact.
    let c = match int {
        Real::Int(i) => {
            if (-TWO_127..TWO_127).contains(&fl) {
                (fl as i128).cmp(i)
            } else if fl > 0.0 {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        Real::Big(b) => match BigInt::from_f64(fl) {
            Some(x) => x.cmp(b),
            None => Ordering::Equal,
        },
        Real::Float(_) => Ordering::Equal,
    };
    if c != Ordering::Equal || f == fl {
        c
    } else {
        Ordering::Greater
    }
}

fn real_cmp(a: &Real<'_>, b: &Real<'_>) -> Ordering {
    use Real::*;
    match (a, b) {
        (Int(x), Int(y)) => x.cmp(y),
        (Big(x), Big(y)) => x.cmp(y),
        // A Big lies outside the i128 range: its sign decides.
        (Int(_), Big(y)) => {
            if y.sign() == num_bigint::Sign::Minus {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        (Big(_), Int(_)) => real_cmp(b, a).reverse(),
        (Float(x), Float(y)) => float_cmp(*x, *y),
        (Float(x), _) => float_int_cmp(*x, b),
        (_, Float(y)) => float_int_cmp(*y, a).reverse(),
    }
}

/// The total order on numbers: by real part, then imaginary part, NaN above all.
pub(crate) fn total_cmp(a: &Num<'_>, b: &Num<'_>) -> Ordering {
    real_cmp(&a.re, &b.re).then_with(|| float_cmp(a.im, b.im))
}

/// The partial order on numbers: `None` when a non-real complex or a NaN decides.
pub(crate) fn partial_cmp(a: &Num<'_>, b: &Num<'_>) -> Option<Ordering> {
    let t = total_cmp(a, b);
    if t == Ordering::Equal {
        return Some(t);
    }
    if a.is_complex() || b.is_complex() || a.is_nan() || b.is_nan() {
        None
    } else {
        Some(t)
    }
}

/// A float's bits with every NaN folded into one.
fn canonical_bits(f: f64) -> u64 {
    if f.is_nan() {
        0x7ff8_0000_0000_0000
    } else {
        f.to_bits()
    }
}

const TWO_63: f64 = 9_223_372_036_854_775_808.0;
const TWO_127: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;

fn hash_int_i64(h: &mut ValHasher, i: i64) {
    h.write(b"i");
    h.write(&i.to_le_bytes());
}

fn hash_int_big(h: &mut ValHasher, b: &BigInt) {
    let bytes = b.to_signed_bytes_le();
    h.write(b"I");
    h.write(&(bytes.len() as u64).to_le_bytes());
    h.write(&bytes);
}

fn hash_real(h: &mut ValHasher, r: &Real<'_>) {
    match r {
        Real::Int(i) => match i64::try_from(*i) {
            Ok(x) => hash_int_i64(h, x),
            Err(_) => hash_int_big(h, &BigInt::from(*i)),
        },
        Real::Big(b) => hash_int_big(h, b),
        Real::Float(f) => {
            if f.is_finite() && f.fract() == 0.0 {
                if (-TWO_63..TWO_63).contains(f) {
                    hash_int_i64(h, *f as i64);
                } else if let Some(b) = BigInt::from_f64(*f) {
                    hash_int_big(h, &b);
                }
            } else {
                h.write(b"f");
                h.write(&canonical_bits(*f).to_le_bytes());
            }
        }
    }
}

/// Feeds the canonical encoding of a number: an integral value (whatever its type) as an
/// integer (`'i'` + 8 bytes when it fits `i64`, else `'I'` + length + two's complement
/// bytes), any other real as `'f'` + its `f64` bits, a non-real complex as `'C'` + its real
/// part's encoding + its imaginary part's bits. All little-endian; NaNs share one encoding.
pub(crate) fn hash_num(h: &mut ValHasher, n: &Num<'_>) {
    if n.is_complex() {
        h.write(b"C");
        hash_real(h, &n.re);
        h.write(&canonical_bits(n.im).to_le_bytes());
    } else {
        hash_real(h, &n.re);
    }
}
