//! Bounded queues in shared memory.
//!
//! - [`Pipe`]: a bounded multi-producer multi-consumer queue of value handles in a pool
//!   block, counted like an `Arc`, with deadlines, close, stats, and repair after a dead
//!   lock holder. Inside it, a ring of 64-bit items under a
//!   [`ShmMutex`](crate::sync::ShmMutex) and two condvars, or for a one-to-one pipe a
//!   lane of stamped slots without a lock (both crate-internal).
//! - One error type per way of sending and receiving ([`TrySendError`],
//!   [`SendTimeoutError`], [`SendError`]; [`TryRecvError`], [`RecvTimeoutError`],
//!   [`RecvError`]), as crossbeam-channel has: a failed send hands its value back.

mod error;
#[cfg(all(feature = "fault-injection", not(shmval_loom)))]
#[doc(hidden)]
pub mod hop;
// Under loom only the models use the lane.
#[cfg_attr(shmval_loom, allow(dead_code))]
mod lane;
#[cfg(not(shmval_loom))]
mod pipe;
#[cfg(not(shmval_loom))]
mod recorded;
// Under loom only the models use the ring.
#[cfg_attr(shmval_loom, allow(dead_code))]
mod ring;

#[cfg(all(test, shmval_loom))]
mod loom_lane;
#[cfg(all(test, shmval_loom))]
mod loom_records;
#[cfg(all(test, shmval_loom))]
mod loom_tests;

#[cfg(not(shmval_loom))]
pub use error::PipeError;
pub use error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
#[cfg(not(shmval_loom))]
pub(crate) use pipe::PipeKind;
#[cfg(not(shmval_loom))]
pub use pipe::{BreakChecker, Pipe, DEFAULT_NOTICE_AFTER, MAX_CAPACITY};
#[cfg(not(shmval_loom))]
pub(crate) use recorded::{count_change, install_resolvers};
pub use ring::PipeStats;
#[allow(unused_imports)] // the loom build uses a part
pub(crate) use ring::{Ring, RingHeader, Wait};
