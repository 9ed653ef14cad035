//! [`Fanout`]: one input pipe copied to several output pipes, with a policy for an output
//! that is full.
//!
//! A value is copied by handle: every output gets a clone of the handle (one more
//! reference), never a copy of the value, so the value is read-only once fanned out. What
//! an output cannot take is dropped under the [`Policy`] and counted for that output, so a
//! slow reader costs the others nothing unless the policy is [`Policy::Block`].
//!
//! ```no_run
//! # use std::time::Duration;
//! # use shmval::sides::{ClientSide, Fanout, Policy, ServerSide};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let input = ClientSide::new("mempool", "ticks").start()?;
//! let fast = ServerSide::new("mempool", "ticks.fast", 64).start()?;
//! let slow = ServerSide::new("mempool", "ticks.slow", 8).start()?;
//! let mut fanout = Fanout::new(
//!     input.pipe().clone(),
//!     vec![fast.pipe().clone(), slow.pipe().clone()],
//!     Policy::DropAfter(Duration::from_millis(5)),
//! );
//! let stats = fanout.run()?; // until `ticks` is closed and drained
//! println!("dropped for the slow reader: {}", stats.outputs[1].dropped);
//! # Ok(()) }
//! ```

use std::time::Duration;

use crate::queue::{Pipe, RecvTimeoutError, SendTimeoutError, TrySendError};
use crate::val::shared::ShmVal;

/// How many times [`Policy::DropOldest`] makes room before it drops the new item instead
/// (other senders may refill the output meanwhile).
const DROP_OLDEST_TRIES: u32 = 4;

/// What a [`Fanout`] does with an item for an output that is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Wait as long as the output stays full: no item is lost, and the slowest reader sets
    /// the pace for all of them.
    Block,
    /// Wait up to this long, then drop the item for that output.
    DropAfter(Duration),
    /// Remove the oldest item waiting in the output to make room: readers that fall behind
    /// see the newest items.
    DropOldest,
}

/// What one output got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputStats {
    /// Items put into the output.
    pub sent: u64,
    /// Items dropped for it: refused under the policy, removed by
    /// [`Policy::DropOldest`], or offered after the output was closed.
    pub dropped: u64,
}

/// A fan-out's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FanoutStats {
    /// Items taken from the input.
    pub received: u64,
    /// Per output, in the order the outputs were given.
    pub outputs: Vec<OutputStats>,
}

/// What one [`Fanout::forward`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarded {
    /// An item was taken from the input and offered to every output.
    Item,
    /// Nothing arrived before the timeout.
    Nothing,
    /// The input is closed and drained: nothing more will come.
    InputClosed,
}

/// Why a fan-out stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FanoutError {
    /// Receiving from the input failed (other than by its closing or its senders going).
    #[error("fan-out input: {0}")]
    Recv(#[source] RecvTimeoutError),
    /// An output refused an item for a reason no policy covers (a corrupted pipe, a value
    /// of another region, a break checker).
    #[error("fan-out output {output}: {error}")]
    Send {
        /// The output's index.
        output: usize,
        /// What went wrong (the item, already counted as dropped, is not kept).
        #[source]
        error: SendTimeoutError<()>,
    },
}

/// One input pipe copied to several output pipes, with a [`Policy`] for a full output.
#[derive(Debug)]
pub struct Fanout {
    input: Pipe,
    outputs: Vec<Pipe>,
    policy: Policy,
    stats: FanoutStats,
}

impl Fanout {
    /// A fan-out from `input` to `outputs` (in one region) under `policy`.
    pub fn new(input: Pipe, outputs: Vec<Pipe>, policy: Policy) -> Fanout {
        let stats = FanoutStats {
            received: 0,
            outputs: vec![OutputStats::default(); outputs.len()],
        };
        Fanout {
            input,
            outputs,
            policy,
            stats,
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> &FanoutStats {
        &self.stats
    }

    /// The policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Forwards items until the input is closed and drained, then closes the outputs.
    ///
    /// # Errors
    ///
    /// As [`forward`](Self::forward); the outputs are closed either way.
    pub fn run(&mut self) -> Result<&FanoutStats, FanoutError> {
        let result = loop {
            match self.forward(None) {
                Ok(Forwarded::Item | Forwarded::Nothing) => {}
                Ok(Forwarded::InputClosed) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.close_outputs();
        result.map(|()| &self.stats)
    }

    /// Takes one item from the input, waiting up to `timeout` (`None`: as long as the
    /// input is open), and sends it to every output.
    ///
    /// # Errors
    ///
    /// [`FanoutError::Recv`] for an input that fails, [`FanoutError::Send`] as
    /// [`send`](Self::send).
    pub fn forward(&mut self, timeout: Option<Duration>) -> Result<Forwarded, FanoutError> {
        let got = match timeout {
            Some(t) => self.input.dequeue(t),
            None => self.input.deq().map_err(RecvTimeoutError::from),
        };
        match got {
            Ok(v) => {
                self.stats.received += 1;
                self.send(v)?;
                Ok(Forwarded::Item)
            }
            Err(RecvTimeoutError::Timeout) => Ok(Forwarded::Nothing),
            Err(RecvTimeoutError::Closed | RecvTimeoutError::Disconnected) => {
                Ok(Forwarded::InputClosed)
            }
            Err(e) => Err(FanoutError::Recv(e)),
        }
    }

    /// Sends `v` to every output under the policy: the last output gets the handle, the
    /// others a clone.
    ///
    /// # Errors
    ///
    /// [`FanoutError::Send`] when an output fails for a reason the policy does not cover
    /// (the other outputs still get the item).
    pub fn send(&mut self, v: ShmVal) -> Result<(), FanoutError> {
        let n = self.outputs.len();
        let mut first_error = None;
        let mut v = Some(v);
        for i in 0..n {
            let item = if i + 1 == n { v.take() } else { v.clone() };
            let Some(item) = item else { break };
            match self.send_one(i, item) {
                Ok(true) => self.stats.outputs[i].sent += 1,
                Ok(false) => self.stats.outputs[i].dropped += 1,
                Err(error) => {
                    self.stats.outputs[i].dropped += 1;
                    first_error.get_or_insert(FanoutError::Send { output: i, error });
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Closes every output: their readers drain what is left, then see them closed.
    pub fn close_outputs(&self) {
        for o in &self.outputs {
            let _ = o.close();
        }
    }

    /// Sends one item to output `i`: `Ok(true)` sent, `Ok(false)` dropped by the policy.
    fn send_one(&mut self, i: usize, item: ShmVal) -> Result<bool, SendTimeoutError<()>> {
        let out = &self.outputs[i];
        let sent = match self.policy {
            Policy::Block => out.enq(item).map_err(SendTimeoutError::from),
            Policy::DropAfter(d) => out.enqueue(item, d),
            Policy::DropOldest => return self.send_dropping_oldest(i, item),
        };
        match sent {
            Ok(()) => Ok(true),
            Err(SendTimeoutError::Timeout(_) | SendTimeoutError::Closed(_)) => Ok(false),
            Err(e) => Err(strip(e)),
        }
    }

    /// [`Policy::DropOldest`]: makes room by dropping the oldest items (a few times, since
    /// other senders may refill the output), else drops `item`.
    fn send_dropping_oldest(
        &mut self,
        i: usize,
        item: ShmVal,
    ) -> Result<bool, SendTimeoutError<()>> {
        let out = &self.outputs[i];
        let mut item = item;
        for attempt in 0..=DROP_OLDEST_TRIES {
            match out.try_enqueue(item) {
                Ok(()) => return Ok(true),
                Err(TrySendError::Full(_)) if attempt == DROP_OLDEST_TRIES => break,
                Err(TrySendError::Full(back)) => {
                    item = back;
                    if let Ok(old) = out.try_dequeue() {
                        drop(old);
                        self.stats.outputs[i].dropped += 1;
                    }
                }
                Err(TrySendError::Closed(_)) => return Ok(false),
                Err(TrySendError::WrongRegion(_)) => return Err(SendTimeoutError::WrongRegion(())),
                Err(TrySendError::Taken(_)) => return Err(SendTimeoutError::Taken(())),
                Err(_) => return Err(SendTimeoutError::Corrupted(())),
            }
        }
        // Still full after the tries: the new item is the one dropped.
        Ok(false)
    }
}

/// The error without the item (already counted as dropped).
fn strip<T>(e: SendTimeoutError<T>) -> SendTimeoutError<()> {
    match e {
        SendTimeoutError::Timeout(_) => SendTimeoutError::Timeout(()),
        SendTimeoutError::Closed(_) => SendTimeoutError::Closed(()),
        SendTimeoutError::Broken(_) => SendTimeoutError::Broken(()),
        SendTimeoutError::WrongRegion(_) => SendTimeoutError::WrongRegion(()),
        SendTimeoutError::Taken(_) => SendTimeoutError::Taken(()),
        _ => SendTimeoutError::Corrupted(()),
    }
}
