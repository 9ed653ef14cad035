//! The user-facing API of the seed: [`ShmMain`] creates the named pool once,
//! [`ServerSide`] creates a named pipe in it, [`ClientSide`] finds one.
//!
//! The sides are thin: they wait (for the region, for the pipe) with a timeout and a break
//! checker, and hold a pipe through the region's [`Directory`]; everything else lives in the
//! layers below. Beside the pipes, the region holds named values ([`Names`]): where a set
//! of processes finds its shared tables by name.
//!
//! - [`ShmMain`], [`ShmMainBuilder`]: create, publish, unlink on drop.
//! - [`ServerSide`], [`ClientSide`] and their builders.
//! - [`Directory`]: pipe name to pipe, inside the region.
//! - [`Names`]: value name to a shared value, inside the region; [`Lookup`] waits for one
//!   from a process that has only the names.
//! - [`Fanout`]: one input pipe copied to several outputs, with a [`Policy`] for a full one.
//! - [`PipeName`], [`ValueName`], [`SidesError`].

mod client;
mod directory;
mod error;
mod fanout;
mod name;
mod names;
mod recover;
mod server;
mod shm_main;
mod side;
mod wait;

pub use client::{ClientSide, ClientSideBuilder};
pub use directory::{DirEntry, Directory, MAX_PIPES};
pub use error::SidesError;
pub use fanout::{Fanout, FanoutError, FanoutStats, Forwarded, OutputStats, Policy};
pub use name::{PipeName, ValueName, MAX_PIPE_NAME, MAX_VALUE_NAME};
pub use names::{Lookup, NamedEntry, Names, MAX_NAMES};
pub use recover::recover;
pub use server::{ServerSide, ServerSideBuilder};
pub use shm_main::{ShmMain, ShmMainBuilder};
pub use wait::{BreakChecker, DEFAULT_NOTICE_AFTER, DEFAULT_START_TIMEOUT};
