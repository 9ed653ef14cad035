//! Process-shared synchronisation: the atomics shim, futex wait/wake, [`ShmMutex`] and
//! [`ShmCondvar`].
//!
//! Every atomic and `UnsafeCell` the crate uses comes from here; under `--cfg shmval_loom` they
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
//! - `generation`: a word counting changes that waiters sleep on, woken only when some do.
//! - `undo`: an undo journal that makes a lock holder's stores all or nothing when it dies.

mod condvar;
// Under loom only the model uses it (the directories are not built).
#[cfg_attr(shmval_loom, allow(dead_code))]
pub(crate) mod generation;
mod mutex;
mod owner;
mod platform;
// Under loom only the models use the slot protocol (the registry is not built).
#[cfg_attr(shmval_loom, allow(dead_code))]
pub(crate) mod slots;
// Under loom only the models use the journal (the values are not built).
#[cfg_attr(shmval_loom, allow(dead_code))]
pub(crate) mod undo;

#[cfg(not(shmval_loom))]
mod futex;
#[cfg(not(shmval_loom))]
mod os;
#[cfg(not(shmval_loom))]
mod std_shim;

#[cfg(shmval_loom)]
mod model;

#[cfg(all(test, shmval_loom))]
mod loom_slots;
#[cfg(all(test, shmval_loom))]
mod loom_tests;
#[cfg(all(test, shmval_loom))]
mod loom_undo;

/// A crash-test pause point of a protocol (see `crate::fault`); under loom, where a model
/// thread may die (`Model::die_at`).
#[cfg(not(shmval_loom))]
pub(crate) fn pause(name: &'static str) {
    crate::fault::pause_point(name);
}

/// A crash-test pause point of a protocol: under loom, where a model thread may die.
#[cfg(shmval_loom)]
pub(crate) fn pause(name: &'static str) {
    Model::pause(name);
}

pub(crate) use condvar::WaitRecord;
pub use condvar::{ShmCondvar, WaitTimeoutResult};
pub use mutex::{Acquired, LockTimeout, ShmMutex, ShmMutexGuard};
pub use owner::Owner;
pub use platform::{Platform, Wake};

#[cfg(not(shmval_loom))]
#[allow(unused_imports)] // used by the fault hooks
pub(crate) use futex::{wait as futex_wait, wake as futex_wake};
#[cfg(not(shmval_loom))]
pub(crate) use os::{
    add_liveness_veto, monotonic_ns, process_owner, process_owner_of, unique_id, LivenessVeto,
};
#[cfg(not(shmval_loom))]
pub use os::{process_alive, process_start_key, MadeIn, Os};
#[cfg(not(shmval_loom))]
#[allow(unused_imports)] // `cell` is used by the layers above
pub(crate) use std_shim::{atomic, cell};

#[cfg(shmval_loom)]
pub use model::Model;
#[cfg(shmval_loom)]
#[allow(unused_imports)] // `cell` is used by the layers above
pub(crate) use model::{atomic, cell};

/// The platform the crate's shared structures use by default: [`Os`] in a normal build,
/// `Model` under `--cfg shmval_loom`.
#[cfg(not(shmval_loom))]
pub type DefaultPlatform = Os;
/// The platform the crate's shared structures use by default: [`Os`] in a normal build,
/// `Model` under `--cfg shmval_loom`.
#[cfg(shmval_loom)]
pub type DefaultPlatform = Model;
