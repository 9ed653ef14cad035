//! Dynamic values and bounded queues in cross-process shared memory.
//!
//! A named pool is created once ([`ShmMain`](sides::ShmMain)); named pipes in it are
//! created by a [`ServerSide`](sides::ServerSide) and found by
//! [`ClientSide`](sides::ClientSide)s, in any process and any start order; values (dicts,
//! lists, strings, numbers, numeric arrays) live in the pool with process-shared reference
//! counts, so a whole table moves between processes as a handle, without a copy.
//!
//! # Quick start
//!
//! ```
//! use shmval::sides::{ClientSide, ServerSide, ShmMain};
//! use shmval::{val, PoolExt};
//! # let region = format!("shmval-doc-quick-{}", std::process::id());
//! # let region = region.as_str();
//!
//! // One process creates the pool; keep it while the others work.
//! let main = ShmMain::new(region, 1 << 20).start()?;
//!
//! // A server makes a pipe and sends a dict holding a 1000-element f64 array.
//! let server = ServerSide::new(region, "samples", 4).start()?;
//! let mut packet = server.pool().share(&val!({"scale": 2.5, "name": "probe"}))?;
//! let xs: Vec<f64> = (0..1000).map(f64::from).collect();
//! packet.insert("xs", server.pool().array_from(&xs)?)?; // written in place: still unique
//! server.pipe().enq(packet)?; // moves the handle: no copy
//!
//! // A client (usually in another process) attaches by name and reads in place.
//! let client = ClientSide::new(region, "samples").start()?;
//! let got = client.pipe().deq()?;
//! let scale = got.field("scale")?.as_f64()?; // a missing key is an error naming it
//! let sum: f64 = got.field("xs")?.as_slice::<f64>()?.iter().sum();
//! assert_eq!((scale, sum), (2.5, 499_500.0));
//! assert_eq!(got.field("name")?.as_str()?, "probe");
//! # drop((got, client, server));
//! # drop(main);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Where to start
//!
//! - [`sides`]: [`ShmMain`](sides::ShmMain), [`ServerSide`](sides::ServerSide),
//!   [`ClientSide`](sides::ClientSide): the pool and its named pipes;
//!   [`Names`](sides::Names) and [`Lookup`](sides::Lookup): values published by name.
//! - [`queue`]: [`Pipe`](queue::Pipe), what a side gives you to send and receive with,
//!   and its errors.
//! - [`val`](mod@val) and [`val::shared`](mod@val::shared): [`Val`] (a value on the heap,
//!   printed and parsed as a Python literal) and [`ShmVal`] (a handle to one in the pool),
//!   built with [`PoolExt`].
//!
//! Beneath them, each a layer that uses only the ones before it: [`sync`] (process-shared
//! locks that survive a dead owner), [`region`] (named regions with a validated header
//! and a registry of the processes attached), [`alloc`] (the pool allocator), [`ledger`]
//! (what each process holds, given back when it dies).
//!
//! # Lifetimes and waits
//!
//! What keeps what, and which calls can wait for how long: the rules a program relies on.
//!
//! - **The region's name** stands while the [`ShmMain`](sides::ShmMain) that created it
//!   lives (or for good, with `.persist(true)`). Processes attached keep their mapping
//!   after the name goes; late ones can no longer find it. Call
//!   [`wait_idle`](sides::ShmMain::wait_idle) before dropping the `ShmMain`.
//! - **A pipe** stays listed in the region while a side uses it, while it holds values,
//!   or for good if persisted; [`remove_pipe`](sides::ShmMain::remove_pipe) removes it
//!   (dropping what it holds). Its memory lives while any handle to it, in any process,
//!   lives. Dropping things never destroys a queued value.
//! - **A value** lives while a handle or a container holds it, in any process; sending
//!   moves the handle (no copy, no count change), and the last drop frees it. What a
//!   process that dies held (handles, values it had received, its pipe ends) is given
//!   back by the survivors ([`ledger`]); a pipe made with
//!   [`redeliver(true)`](sides::ServerSideBuilder::redeliver) puts an item its dead
//!   receiver still held back in the pipe instead.
//! - **A named value** lives while it is published ([`Names`](sides::Names)), whoever
//!   published it and whether that process still runs; unpublishing hands its reference
//!   back to the caller.
//! - **A receive ends** with a value; with `Closed` once the pipe was
//!   [`close`](queue::Pipe::close)d and drained; with `Disconnected` once every sender has
//!   gone and it is drained (never for a persisted pipe, whose senders may come back).
//!
//! | call | waits for | at most |
//! |---|---|---|
//! | `ServerSide`/`ClientSide` `start` | the region, the pipe, their locks | its timeout ([`DEFAULT_START_TIMEOUT`](sides::DEFAULT_START_TIMEOUT), 60 s), saying so on stderr after 5 s |
//! | `enqueue(v, t)`, `dequeue(t)`, `dequeue_batch` | room, a value, the pipe's lock | `t` (plus the 20 ms liveness poll) |
//! | `try_enqueue`, `try_dequeue` | nothing, not even a held lock | no wait |
//! | `enq`, `deq` | room or a value, close, disconnection, the break checker | no limit; says so on stderr after 10 s |
//! | `Names::lookup(name, t)`, `Lookup` `start` | the name (and the region), the names lock | `t` (`Lookup`: its timeout, 60 s by default) |
//! | `publish`, `replace`, `unpublish`, `get`, `list` of [`Names`](sides::Names) | the names lock | while a live process holds it, or its `lock_timeout` |
//! | `ShmLocked::lock(t)`, `lock_deadline` | the table's lock | `t` (plus the 20 ms liveness poll) |
//! | `ShmLocked::snapshot(t)` | the table's lock, then the pool lock for the copy | `t` for the first; the second while a live process holds it |
//! | `ShmLocked::try_lock` | nothing | no wait |
//! | writes through a [`LockedGuard`] | the pool lock, when they allocate | while a live process holds it |
//! | `share`, `alloc`, building values | the pool lock | while a live process holds it |
//! | `close` | the pipe's lock | while a live process holds it |
//! | dropping anything | the pool or directory lock, briefly | 200 us, then the work is deferred |
//!
//! A lock whose holder died is taken over within about 20 ms; one whose holder is stopped
//! (SIGSTOP, a debugger) is waited for only within the bounds above.

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
#[cfg(not(shmval_loom))]
pub mod ledger;
pub mod queue;
#[cfg(not(shmval_loom))]
pub mod region;
#[cfg(not(shmval_loom))]
pub mod sides;
pub mod sync;
pub mod val;

#[cfg(not(shmval_loom))]
pub use val::shared::{LockedGuard, LockedMut, LockedStatus, PoolExt, ShmLocked, ShmVal};
pub use val::{Arr, Array, Elem, ElemType, FixedState, OTab, Tab, Tag, Tup, Val, ValError};
