//! The std side of the shim: real atomics and an `UnsafeCell` with loom's closure API.
//!
//! The atomics are type aliases rather than re-exports so that `clippy.toml`'s ban on
//! naming std's atomics directly applies everywhere else.

#![allow(clippy::disallowed_types)] // the one place allowed to name std's atomics

pub(crate) mod atomic {
    #[allow(unused_imports)] // the full set is the shim's contract; not every build uses each
    pub(crate) use std::sync::atomic::{fence, Ordering};

    /// std's `AtomicU8` (loom's under `--cfg shmval_loom`).
    pub(crate) type AtomicU8 = std::sync::atomic::AtomicU8;
    /// std's `AtomicU32` (loom's under `--cfg shmval_loom`).
    pub(crate) type AtomicU32 = std::sync::atomic::AtomicU32;
    /// std's `AtomicU64` (loom's under `--cfg shmval_loom`).
    pub(crate) type AtomicU64 = std::sync::atomic::AtomicU64;
}

pub(crate) mod cell {
    /// `std::cell::UnsafeCell` with the `with` / `with_mut` accessors of loom's, so code
    /// using it is the same in both builds.
    #[derive(Debug, Default)]
    #[repr(transparent)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    #[allow(dead_code)] // used by the layers above and the tests
    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(v: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(v))
        }

        /// Runs `f` with a shared pointer to the contents.
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with a mutable pointer to the contents.
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}
