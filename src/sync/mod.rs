//! Process-shared synchronisation: the atomics shim, futex wait/wake, [`ShmMutex`] and
//! [`ShmCondvar`].
//!
//! Every atomic and `UnsafeCell` the crate uses comes from here; under `--cfg loom` they
//! are loom's, so the same lock, condvar and queue code is model-checked. This layer knows
//! nothing of regions: its types are plain `#[repr(C)]` words that work wherever they are
//! placed, in a shared mapping or on the heap.
//!
//! - `atomic`, `cell`: the shim (std or loom).
//! - [`Platform`]: the operations a lock needs from its environment (wait while a word
//!   holds a value, wake waiters, read a monotonic clock, name the current thread, tell a
//!   live thread from a dead one). [`Os`] binds them to futexes and `/proc`; under loom
//!   `Model` binds them to yields and a model of thread death.
//! - [`ShmMutex`]: a lock whose word names its owner, so a dead owner is detected and the
//!   lock taken over ([`Acquired::OwnerDied`]).
//! - [`ShmCondvar`]: a condition variable on a sequence word, with deadlines.

mod condvar;
mod mutex;
mod owner;
mod platform;

#[cfg(not(loom))]
mod futex;
#[cfg(not(loom))]
mod os;
#[cfg(not(loom))]
mod std_shim;

#[cfg(loom)]
mod model;

#[cfg(all(test, loom))]
mod loom_tests;

pub use condvar::{ShmCondvar, WaitTimeoutResult};
pub use mutex::{Acquired, LockTimeout, ShmMutex, ShmMutexGuard};
pub use owner::Owner;
pub use platform::{Platform, Wake};

#[cfg(not(loom))]
pub use os::{process_alive, process_start_key, Os};
#[cfg(not(loom))]
#[allow(unused_imports)] // `cell` is used by the layers above
pub(crate) use std_shim::{atomic, cell};

#[cfg(loom)]
pub use model::Model;
#[cfg(loom)]
#[allow(unused_imports)] // `cell` is used by the layers above
pub(crate) use model::{atomic, cell};

/// The platform the crate's shared structures use by default: [`Os`] in a normal build,
/// `Model` under `--cfg loom`.
#[cfg(not(loom))]
pub type DefaultPlatform = Os;
/// The platform the crate's shared structures use by default: [`Os`] in a normal build,
/// `Model` under `--cfg loom`.
#[cfg(loom)]
pub type DefaultPlatform = Model;
