//! [`Offset`]: a position inside a region, and [`Shared`]: the types that may be viewed
//! there.

use std::fmt;

/// A byte offset from the start of a region. Links inside a region are offsets, never
/// pointers, so every process may map the region at a different address. Offset 0 is the
/// region header, so it never names an allocation and serves as "none".
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(transparent)]
pub struct Offset(u64);

impl Offset {
    /// No object.
    pub const NULL: Offset = Offset(0);

    /// The offset `n` bytes from the region's start.
    pub const fn new(n: u64) -> Offset {
        Offset(n)
    }

    /// The byte count.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Whether this is [`Offset::NULL`].
    pub const fn is_null(self) -> bool {
        self.0 == 0
    }

    /// `self + n`, or `None` on overflow.
    pub const fn checked_add(self, n: u64) -> Option<Offset> {
        match self.0.checked_add(n) {
            Some(v) => Some(Offset(v)),
            None => None,
        }
    }
}

impl fmt::Debug for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Offset({:#x})", self.0)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A type that may be viewed in place in shared memory, through
/// [`Region::resolve`](super::Region::resolve).
///
/// # Safety
///
/// Implementors promise that:
/// - the type is `#[repr(C)]` or `#[repr(transparent)]` with a fixed layout;
/// - every bit pattern is a valid value (another process may have written anything);
/// - it holds no pointers or references (another process maps memory elsewhere);
/// - all mutation through `&Self` goes through atomics or the crate's `UnsafeCell`, so
///   concurrent access from other processes is not a data race on plain memory.
pub unsafe trait Shared: Sync {}

use crate::sync::atomic::{AtomicU32, AtomicU64, AtomicU8};

// SAFETY: atomics are repr(transparent) over integers, valid for any bits, and
// synchronise their own accesses.
unsafe impl Shared for AtomicU8 {}
// SAFETY: as for AtomicU8.
unsafe impl Shared for AtomicU32 {}
// SAFETY: as for AtomicU8.
unsafe impl Shared for AtomicU64 {}
// SAFETY: repr(C) of two atomics and a zero-sized marker; any bits are a valid state (an
// unknown owner is checked for liveness like any other).
unsafe impl<P: crate::sync::Platform> Shared for crate::sync::ShmMutex<P> {}
// SAFETY: repr(C) of two atomic words; any bits are a valid state.
unsafe impl<P: crate::sync::Platform> Shared for crate::sync::ShmCondvar<P> {}
// SAFETY: an array of Shared elements has no padding and inherits their guarantees.
unsafe impl<T: Shared, const N: usize> Shared for [T; N] {}
