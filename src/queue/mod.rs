//! Bounded queues in shared memory.
//!
//! - [`Ring`]: the multi-producer multi-consumer ring of 64-bit items under a
//!   [`ShmMutex`](crate::sync::ShmMutex) and two condvars, with deadlines, close, stats,
//!   and repair after a dead lock holder.
//! - [`Pipe`]: a ring in a pool block, found by offset, created and destroyed in the pool.
//! - [`SendError`], [`RecvError`]: what a send or receive can fail with; a failed send
//!   hands its item back.

mod error;
#[cfg(not(shmval_loom))]
mod pipe;
mod ring;

#[cfg(all(test, shmval_loom))]
mod loom_tests;

#[cfg(not(shmval_loom))]
pub use error::PipeError;
pub use error::{RecvError, SendError};
#[cfg(not(shmval_loom))]
pub use pipe::{BreakChecker, Pipe, MAX_CAPACITY};
pub use ring::{BadRing, PipeStats, Ring, RingHeader, Wait};
