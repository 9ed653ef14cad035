//! Equality, ordering and hashing of values.
//!
//! - Numbers compare by value after promotion, exactly: `1 == 1.0 == 1u8 == True ==
//!   BigInt 1 == (1+0j)`, and `BigInt 10**47 == BigUint 10**47`.
//! - NaN equals NaN (so a NaN key can be found again and `Eq` is a true equivalence), and
//!   `-0.0 == 0.0`. This departs from IEEE and Python, where `nan != nan`.
//! - A `Tab` equals an `OTab` with the same entries, and two `OTab`s are equal when their
//!   entries are, in any order (Python's `OrderedDict ==` also checks order; the original
//!   compared tables by entries, and mixing both rules would not be transitive).
//! - A list never equals a tuple, nor a typed array (as in Python); typed arrays of
//!   different element types are equal when their elements are.
//! - Ordering: values of different kinds order as None < numbers < Str < Tup < Arr < Array <
//!   tables; within a kind numbers order by value, strings by code point, sequences
//!   lexicographically, tables by their entries sorted by key. [`PartialOrd`] answers `None`
//!   where a non-real complex or a NaN decides the comparison; [`Val::total_cmp`] orders
//!   everything (complex by real then imaginary part, NaN above all numbers) and sorts keys.
//! - [`Hash`] feeds a canonical byte encoding to the hasher, so equal values hash alike
//!   whatever their types, and [`Val::stable_hash`] is the same in every process.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use super::array::with_vec;
use super::hash::ValHasher;
use super::num::{self, num, AsNum, Num};
use super::{Array, Val};

/// The rank of a value's kind in the cross-kind order.
fn rank(v: &Val) -> u8 {
    match v {
        Val::None => 0,
        Val::Str(_) => 2,
        Val::Tup(_) => 3,
        Val::Arr(_) => 4,
        Val::Array(_) => 5,
        Val::Tab(_) | Val::OTab(_) => 6,
        _ => 1,
    }
}

fn array_num(a: &Array, i: usize) -> Num<'static> {
    with_vec!(a, v => v[i].as_num())
}

fn cmp_nums(a: &Num<'_>, b: &Num<'_>, partial: bool) -> Option<Ordering> {
    if partial {
        num::partial_cmp(a, b)
    } else {
        Some(num::total_cmp(a, b))
    }
}

fn cmp_seq(a: &[Val], b: &[Val], partial: bool) -> Option<Ordering> {
    for (x, y) in a.iter().zip(b) {
        let c = cmp_impl(x, y, partial)?;
        if c != Ordering::Equal {
            return Some(c);
        }
    }
    Some(a.len().cmp(&b.len()))
}

fn cmp_arrays(a: &Array, b: &Array, partial: bool) -> Option<Ordering> {
    for i in 0..a.len().min(b.len()) {
        let c = cmp_nums(&array_num(a, i), &array_num(b, i), partial)?;
        if c != Ordering::Equal {
            return Some(c);
        }
    }
    Some(a.len().cmp(&b.len()))
}

fn cmp_maps(a: &Val, b: &Val, partial: bool) -> Option<Ordering> {
    let (ia, ib) = (a.sorted_items(), b.sorted_items());
    for ((ka, va), (kb, vb)) in ia.iter().zip(&ib) {
        let c = cmp_impl(ka, kb, partial)?;
        if c != Ordering::Equal {
            return Some(c);
        }
        let c = cmp_impl(va, vb, partial)?;
        if c != Ordering::Equal {
            return Some(c);
        }
    }
    Some(ia.len().cmp(&ib.len()))
}

fn cmp_impl(a: &Val, b: &Val, partial: bool) -> Option<Ordering> {
    let (ra, rb) = (rank(a), rank(b));
    if ra != rb {
        return Some(ra.cmp(&rb));
    }
    match (a, b) {
        (Val::None, Val::None) => Some(Ordering::Equal),
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        (Val::Arr(x), Val::Arr(y)) | (Val::Tup(x), Val::Tup(y)) => cmp_seq(x, y, partial),
        (Val::Array(x), Val::Array(y)) => cmp_arrays(x, y, partial),
        (Val::Tab(_) | Val::OTab(_), _) => cmp_maps(a, b, partial),
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => cmp_nums(&x, &y, partial),
            // Same rank 1 means both are numbers.
            _ => Some(Ordering::Equal),
        },
    }
}

fn maps_eq<'a>(a: impl ExactSizeIterator<Item = (&'a Val, &'a Val)>, b: &Val, blen: usize) -> bool {
    a.len() == blen && {
        let mut a = a;
        a.all(|(k, v)| b.get(k) == Some(v))
    }
}

impl PartialEq for Val {
    fn eq(&self, other: &Val) -> bool {
        match (self, other) {
            (Val::None, Val::None) => true,
            (Val::I64(x), Val::I64(y)) => x == y,
            (Val::Str(x), Val::Str(y)) => x == y,
            (Val::Arr(x), Val::Arr(y)) | (Val::Tup(x), Val::Tup(y)) => x == y,
            (Val::Array(x), Val::Array(y)) => {
                x.len() == y.len()
                    && (0..x.len()).all(|i| {
                        num::total_cmp(&array_num(x, i), &array_num(y, i)) == Ordering::Equal
                    })
            }
            (Val::Tab(x), Val::Tab(_) | Val::OTab(_)) => maps_eq(x.iter(), other, other.len()),
            (Val::OTab(x), Val::Tab(_) | Val::OTab(_)) => maps_eq(x.iter(), other, other.len()),
            _ => match (num(self), num(other)) {
                (Some(x), Some(y)) => num::total_cmp(&x, &y) == Ordering::Equal,
                _ => false,
            },
        }
    }
}

impl Eq for Val {}

impl PartialOrd for Val {
    fn partial_cmp(&self, other: &Val) -> Option<Ordering> {
        cmp_impl(self, other, true)
    }
}

impl Val {
    /// A total order consistent with `==`: the order [`PartialOrd`] gives where it answers,
    /// with complex numbers ordered by real then imaginary part and NaN above every other
    /// number. The text forms sort table keys with it.
    pub fn total_cmp(&self, other: &Val) -> Ordering {
        cmp_impl(self, other, false).unwrap_or(Ordering::Equal)
    }

    /// The value's SipHash-1-3 with the fixed keys (see [`FixedState`](super::FixedState)):
    /// the same in every process and on every run.
    ///
    /// Equal values have equal hashes, whatever their types (`1`, `1.0` and `True` hash
    /// alike). Shared tables place keys by this hash.
    pub fn stable_hash(&self) -> u64 {
        if let Val::Str(s) = self {
            return super::hash::str_stable_hash(s);
        }
        let mut h = ValHasher::new();
        self.hash_into(&mut h);
        h.finish()
    }

    /// Feeds the value's canonical encoding to `h`. Containers are framed by
    /// [`hash_seq_head`] and [`hash_table`], which the in-place hash of shared values uses
    /// too.
    pub(crate) fn hash_into(&self, h: &mut ValHasher) {
        fn len(h: &mut ValHasher, n: usize) {
            h.write(&(n as u64).to_le_bytes());
        }
        match self {
            Val::None => h.write(b"Z"),
            Val::Str(s) => {
                h.write(b"a");
                len(h, s.len());
                h.write(s.as_bytes());
            }
            Val::Arr(a) | Val::Tup(a) => {
                hash_seq_head(h, matches!(self, Val::Tup(_)), a.len() as u64);
                for x in a {
                    x.hash_into(h);
                }
            }
            Val::Array(a) => {
                h.write(b"N");
                len(h, a.len());
                for i in 0..a.len() {
                    num::hash_num(h, &array_num(a, i));
                }
            }
            Val::Tab(_) | Val::OTab(_) => {
                // Entry order differs between equal tables: combine per-entry hashes with
                // a commutative sum.
                let mut sum = 0u64;
                for (k, v) in self.items() {
                    let mut e = ValHasher::new();
                    k.hash_into(&mut e);
                    v.hash_into(&mut e);
                    sum = sum.wrapping_add(e.finish());
                }
                hash_table(h, self.len() as u64, sum);
            }
            _ => {
                if let Some(n) = num(self) {
                    num::hash_num(h, &n);
                }
            }
        }
    }
}

/// The start of a list's (or a tuple's) encoding: its kind and length; the elements follow.
pub(crate) fn hash_seq_head(h: &mut ValHasher, tuple: bool, len: u64) {
    h.write(if tuple { b"u" } else { b"n" });
    h.write(&len.to_le_bytes());
}

/// A table's encoding: its length and the wrapping sum of its entries' hashes, each the
/// finished hash of the key's encoding followed by the value's.
pub(crate) fn hash_table(h: &mut ValHasher, len: u64, sum: u64) {
    h.write(b"t");
    h.write(&len.to_le_bytes());
    h.write(&sum.to_le_bytes());
}

impl Hash for Val {
    /// Feeds [`Val::stable_hash`] as 8 little-endian bytes, so any hasher sees the same
    /// bytes for equal values.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let known = match self {
            Val::Str(s) => super::hash::known_hash(s),
            _ => None,
        };
        let hash = known.unwrap_or_else(|| self.stable_hash());
        state.write(&hash.to_le_bytes());
    }
}

macro_rules! eq_scalar {
    ($($t:ty),*) => {$(
        impl PartialEq<$t> for Val {
            /// Compares by value, as `==` between values does.
            fn eq(&self, other: &$t) -> bool {
                num(self).is_some_and(|n| num::total_cmp(&n, &other.as_num()) == Ordering::Equal)
            }
        }
        impl PartialEq<Val> for $t {
            fn eq(&self, other: &Val) -> bool {
                other == self
            }
        }
    )*};
}
eq_scalar!(bool, i8, u8, i16, u16, i32, u32, i64, u64, f32, f64);

impl PartialEq<str> for Val {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for Val {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl PartialEq<String> for Val {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == Some(other.as_str())
    }
}
