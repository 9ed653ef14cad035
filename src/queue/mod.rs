//! Bounded queues in shared memory.
//!
//! - [`Ring`]: the multi-producer multi-consumer ring of 64-bit items under a
//!   [`ShmMutex`](crate::sync::ShmMutex) and two condvars, with deadlines, close, stats,
//!   and repair after a dead lock holder.
//! - [`SendError`], [`RecvError`]: what a send or receive can fail with; a failed send
//!   hands its item back.

mod error;
mod ring;

#[cfg(all(test, loom))]
mod loom_tests;

pub use error::{RecvError, SendError};
pub use ring::{BadRing, Ring, RingHeader, RingStats, Wait};
