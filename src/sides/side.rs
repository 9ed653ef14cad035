//! What [`ServerSide`](super::ServerSide) and [`ClientSide`](super::ClientSide) share: the
//! wait options, and a pipe held through the directory and released on drop.

use std::sync::Arc;

use super::directory::Directory;
use super::error::SidesError;
use super::name::PipeName;
use super::wait::{attach_region, WaitPolicy, Waiting};
use crate::alloc::Pool;
use crate::ledger::Entry as LedgerEntry;
use crate::queue::Pipe;
use crate::region::{Offset, Region, RegionName};
use crate::sync::MadeIn;
use std::time::Instant;

/// The wait options both sides take, as builder methods.
macro_rules! wait_options {
    ($builder:ty) => {
        impl $builder {
            /// A function asked every `micro_sleep` while the side waits (for the region,
            /// the pipe, or in a blocking `deq`/`enq`); returning `true` ends the wait with
            /// a `Broken` error.
            pub fn break_checker(mut self, f: impl Fn() -> bool + Send + Sync + 'static) -> Self {
                self.wait.brk = Some(std::sync::Arc::new(f));
                self
            }

            /// How often a waiting side wakes to run the break checker (default 100 ms).
            pub fn micro_sleep(mut self, d: std::time::Duration) -> Self {
                self.wait.micro_sleep = d.max(std::time::Duration::from_micros(100));
                self
            }

            /// How long `start` waits for the region (and the pipe) before giving up
            /// with a `Timeout` error saying what was missing (default
            /// [`DEFAULT_START_TIMEOUT`](crate::sides::DEFAULT_START_TIMEOUT), 60 s).
            pub fn timeout(mut self, d: std::time::Duration) -> Self {
                self.wait.timeout = Some(d);
                self
            }

            /// Lets `start` wait for the region and the pipe as long as it takes (the
            /// break checker still runs, and the wait still says so on standard error).
            pub fn wait_forever(mut self) -> Self {
                self.wait.timeout = None;
                self
            }

            /// After how long a waiting `start` says on standard error what it waits for
            /// (default [`DEFAULT_NOTICE_AFTER`](crate::sides::DEFAULT_NOTICE_AFTER), 5 s),
            /// and whether the pipe's unbounded `enq`/`deq` do likewise (after twice as
            /// long, at most 10 s); `None` keeps them quiet.
            pub fn notice_after(mut self, d: Option<std::time::Duration>) -> Self {
                self.wait.notice_after = d;
                self
            }

            /// Whether this side counts as one of the pipe's senders from the start
            /// (default: a `ServerSide` does, a `ClientSide` not until it first sends).
            /// While a pipe that is not persisted has senders, its receivers wait for more;
            /// once the last has gone and the pipe is empty, a receive says
            /// `Disconnected`. Persist a pipe whose senders come and go.
            pub fn sends(mut self, sends: bool) -> Self {
                self.wait.sends = sends;
                self
            }

            /// Reports each step (attaching, waiting, creating) on standard error, as the
            /// original's `debug` flag does.
            pub fn debug(mut self, debug: bool) -> Self {
                self.wait.debug = debug;
                self
            }
        }
    };
}
pub(crate) use wait_options;

/// What both sides give access to: the pipe, the pool, the region, the pipe's name, the
/// region's named values.
macro_rules! side_accessors {
    ($side:ty) => {
        impl $side {
            /// The pipe.
            pub fn pipe(&self) -> &$crate::queue::Pipe {
                self.side.pipe()
            }

            /// The pool, to share values in.
            pub fn pool(&self) -> &$crate::alloc::Pool {
                self.side.pool()
            }

            /// The region.
            pub fn region(&self) -> &std::sync::Arc<$crate::region::Region> {
                self.side.region()
            }

            /// The pipe's name.
            pub fn pipe_name(&self) -> &str {
                self.side.name().as_str()
            }

            /// The region's named values: publish a value under a name, find one by name.
            ///
            /// # Errors
            ///
            /// [`SidesError::NamesCorrupted`](crate::sides::SidesError::NamesCorrupted) or
            /// a region error if the directory does not check out.
            pub fn names(&self) -> Result<$crate::sides::Names, $crate::sides::SidesError> {
                $crate::sides::Names::open(self.side.pool())
            }
        }
    };
}
pub(crate) use side_accessors;

/// A side's hold on a pipe: one of its users, released through the directory on drop.
#[derive(Debug)]
pub(crate) struct Side {
    region: Arc<Region>,
    pool: Pool,
    dir: Directory,
    pipe: Pipe,
    slot: usize,
    name: PipeName,
    /// A child forked from the process that started the side does not release it.
    made_in: MadeIn,
    /// The ledger entry recording the side's user count (null: not recorded).
    user: Offset,
}

impl Side {
    /// Waits for region `region`, then runs `get` on its directory (with the wait's
    /// deadline) until it yields a pipe.
    pub(crate) fn start(
        region: &str,
        pipe: &str,
        wait: &WaitPolicy,
        mut get: impl FnMut(
            &Directory,
            &PipeName,
            Option<Instant>,
            Option<LedgerEntry<'_>>,
        ) -> Result<Option<(Pipe, usize)>, SidesError>,
    ) -> Result<Side, SidesError> {
        let region_name = RegionName::new(region)?;
        let name = PipeName::new(pipe)?;
        let what = || format!("pipe {name} in region {region_name}");
        let waiting = Waiting::new(wait, &what);
        let mut seen_region = false;
        'region: loop {
            let region = attach_region(&region_name, wait, seen_region)?;
            seen_region = true;
            let pool = Pool::attach(region.clone())?;
            // A process attaching gives back what dead ones held.
            super::recover::reclaim(&pool);
            let dir = Directory::open(&pool)?;
            let user = super::recover::user_entry(&pool);
            loop {
                let seen = dir.generation()?;
                let got = match get(
                    &dir,
                    &name,
                    waiting.deadline(),
                    LedgerEntry::at(pool.region(), user),
                ) {
                    Ok(got) => got,
                    Err(e) => {
                        super::recover::put_entry(&pool, user);
                        return Err(e);
                    }
                };
                if let Some((pipe, slot)) = got {
                    wait.log(format_args!(
                        "attached to pipe {name} in region {region_name}"
                    ));
                    if wait.sends {
                        pipe.count_as_sender();
                    }
                    let pipe = pipe
                        .with_break_checker(wait.brk.clone(), wait.micro_sleep)
                        .with_notice(
                            // Not `format!`: this runs once per side started.
                            ["pipe ", name.as_str(), " in region ", region_name.as_str()].concat(),
                            wait.notice_after
                                .map(|a| (a * 2).min(crate::queue::DEFAULT_NOTICE_AFTER).max(a)),
                        );
                    return Ok(Side {
                        region,
                        pool,
                        dir,
                        pipe,
                        slot,
                        name,
                        made_in: MadeIn::this_process(),
                        user,
                    });
                }
                let slice = waiting.next_slice(|| {
                    if dir.was_removed(&name).unwrap_or(false) {
                        "the pipe was removed (its last user left it empty, or it was removed \
                         explicitly), and none of that name is back"
                            .into()
                    } else {
                        "the region has no pipe of that name (a ServerSide creates it)".into()
                    }
                });
                let slice = match slice {
                    Ok(s) => s,
                    Err(e) => {
                        super::recover::put_entry(&pool, user);
                        return Err(e);
                    }
                };
                // A blocked call that wakes gives back what dead processes held.
                super::recover::reclaim(&pool);
                if !region.is_current() {
                    // A newer region replaced this one under the name: wait on that.
                    super::recover::put_entry(&pool, user);
                    continue 'region;
                }
                if let Err(e) = dir.wait_change(seen, slice) {
                    super::recover::put_entry(&pool, user);
                    return Err(e);
                }
            }
        }
    }

    pub(crate) fn pipe(&self) -> &Pipe {
        &self.pipe
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) fn region(&self) -> &Arc<Region> {
        &self.region
    }

    pub(crate) fn name(&self) -> &PipeName {
        &self.name
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        if self.made_in.is_this_process() {
            // One user fewer; the pipe's own handle lets go of its reference after this.
            let user = LedgerEntry::at(self.pool.region(), self.user);
            let _ = self.dir.release(self.slot, &self.pipe, user);
            super::recover::put_entry(&self.pool, self.user);
        }
    }
}
