//! Dynamic values and bounded queues in cross-process shared memory.
//!
//! The crate is built in layers, each a module that only uses the ones before it:
//!
//! - [`sync`]: process-shared locks and condition variables that survive a dead owner.
//! - [`region`]: named shared-memory regions with a validated header.
//! - [`alloc`]: the pool allocator inside a region.
//! - [`val`](mod@val): dynamic values ([`Val`]) and their Python-literal text.
//!
//! Values in a pool are [`ShmVal`] handles, built with [`PoolExt`] (see
//! [`val::shared`](mod@val::shared)).

#[cfg(not(shmval_loom))]
pub mod alloc;
#[cfg(all(not(shmval_loom), feature = "fault-injection"))]
pub mod fault;
/// Without the `fault-injection` feature a pause point is nothing at all.
#[cfg(all(not(shmval_loom), not(feature = "fault-injection")))]
mod fault {
    #[inline(always)]
    pub(crate) fn pause_point(_name: &'static str) {}
}
pub mod queue;
#[cfg(not(shmval_loom))]
pub mod region;
#[cfg(not(shmval_loom))]
pub mod sides;
pub mod sync;
pub mod val;

#[cfg(not(shmval_loom))]
pub use val::shared::{PoolExt, ShmVal};
pub use val::{Arr, Array, Elem, ElemType, FixedState, OTab, Tab, Tag, Tup, Val, ValError};
