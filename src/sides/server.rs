//! [`ServerSide`]: creates a named pipe in a region and sends (or receives) through it.

use super::directory::PipeSpec;
use super::error::SidesError;
use super::side::{side_accessors, wait_options, Side};
use super::wait::WaitPolicy;

/// Builder for [`ServerSide`]: `ServerSide::new(region, pipe, capacity)`, options, then
/// [`start`](ServerSideBuilder::start).
#[derive(Clone, Debug)]
#[must_use = "nothing happens until start()"]
pub struct ServerSideBuilder {
    region: String,
    pipe: String,
    capacity: u64,
    wait: WaitPolicy,
    persist: bool,
    reattach: bool,
    redeliver: bool,
    one_to_one: bool,
}

wait_options!(ServerSideBuilder);

impl ServerSideBuilder {
    /// Keep the pipe (and what is in it) when its last user goes (default: remove it).
    pub fn persist(mut self, persist: bool) -> Self {
        self.persist = persist;
        self
    }

    /// Whether a value its receiver held when it died goes back into the pipe for another
    /// receiver (default: no, it is dropped, as the original does): delivery at least once,
    /// with duplicates only of values a dead process had received. A value counts as held
    /// until its handles are dropped, sent on, or moved into a container, or
    /// [`ShmVal::acknowledge`](crate::ShmVal::acknowledge)d (a send on that its process
    /// dies in before it commits leaves it held), and is sent back only while the dead
    /// process still had a handle of the pipe, even into a closed pipe: a receiver that
    /// finds the pipe closed and drained first waits for such a recovery (at most 1 s).
    /// Set when the pipe is made.
    pub fn redeliver(mut self, redeliver: bool) -> Self {
        self.redeliver = redeliver;
        self
    }

    /// Whether the pipe is one-to-one (default: no): one side sends on it and one receives
    /// from it at a time, and a hand-off takes no lock, so it runs at about the speed of
    /// the cache line moving between the two processes. Another side that sends (or
    /// receives) while a live one does gets a `Taken` error; the side of a process that
    /// died is taken over by the next, after its half-done send or receive is completed.
    /// Threads sharing one side's handle take turns, one call at a time: built for one
    /// thread per side, a thread that finds another's call in progress polls for its turn
    /// (every 0.1 ms within a timeout, backing off to every 1 ms without one; a call
    /// without one says on standard error when it has waited its notice time, as a wait
    /// on the pipe does).
    /// Cannot be combined with [`redeliver`](Self::redeliver). Set when the pipe is made.
    pub fn one_to_one(mut self, one_to_one: bool) -> Self {
        self.one_to_one = one_to_one;
        self
    }

    /// If a live pipe of this name exists, use it instead of failing with
    /// [`SidesError::PipeExists`] (its capacity stays what it was).
    pub fn reattach(mut self, reattach: bool) -> Self {
        self.reattach = reattach;
        self
    }

    /// Waits for the region (created by [`ShmMain`](super::ShmMain), in any process, before
    /// or after this call), then creates the pipe in its directory.
    ///
    /// # Errors
    ///
    /// [`SidesError::Timeout`] or [`SidesError::Broken`] while waiting,
    /// [`SidesError::PipeExists`], [`SidesError::DirectoryFull`], a bad name or capacity,
    /// [`SidesError::Alloc`] if the pool has no room for the pipe.
    #[must_use = "dropping a side releases its pipe"]
    pub fn start(self) -> Result<ServerSide, SidesError> {
        let spec = PipeSpec {
            capacity: self.capacity,
            reattach: self.reattach,
            persist: self.persist,
            redeliver: self.redeliver,
            one_to_one: self.one_to_one,
        };
        let side = Side::start(
            &self.region,
            &self.pipe,
            &self.wait,
            |dir, name, by, user| dir.create_pipe(name, spec, by, user).map(Some),
        )?;
        Ok(ServerSide { side })
    }
}

/// The side that creates a pipe: the seed's `ServerSide`. Dropping it releases the pipe;
/// the last user of a pipe that is not persisted removes it.
#[derive(Debug)]
#[must_use = "dropping a side releases its pipe"]
pub struct ServerSide {
    side: Side,
}

impl ServerSide {
    /// Starts building a server side for pipe `pipe` of `capacity` slots in region
    /// `region`.
    // The seed's vocabulary: `new(...)` takes the required arguments, options follow,
    // `start()` makes the thing.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(
        region: impl Into<String>,
        pipe: impl Into<String>,
        capacity: u64,
    ) -> ServerSideBuilder {
        ServerSideBuilder {
            region: region.into(),
            pipe: pipe.into(),
            capacity,
            wait: WaitPolicy {
                sends: true,
                ..WaitPolicy::default()
            },
            persist: false,
            reattach: false,
            redeliver: false,
            one_to_one: false,
        }
    }
}

side_accessors!(ServerSide);
