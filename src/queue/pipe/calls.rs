//! The handle API: sending and receiving [`ShmVal`]s, with a timeout, without waiting, or
//! until the pipe closes, and the pipe's state as its users see it.

use std::time::{Duration, Instant};

use super::super::error::{
    PipeError, RecvError, RecvFail, RecvTimeoutError, SendError, SendFail, SendTimeoutError,
    TryRecvError, TrySendError,
};
use super::super::ring::PipeStats;
use super::transfer::{timeout_error, try_error, Limit};
use super::Pipe;
use crate::sync::Owner;
use crate::val::shared::ShmVal;

/// The handle API: what a pipe carries are [`ShmVal`]s. A sent handle moves into the pipe
/// with its reference (no refcount change); a received one leaves its slot at once.
impl Pipe {
    /// Sends `v`, waiting up to `timeout` while the pipe is full.
    ///
    /// # Errors
    ///
    /// The value comes back in the error: [`SendTimeoutError::Timeout`] (the pipe stayed
    /// full, or its lock held, until the deadline), `Closed`, `Broken`, `WrongRegion`,
    /// `Corrupted`.
    pub fn enqueue(&self, v: ShmVal, timeout: Duration) -> Result<(), SendTimeoutError<ShmVal>> {
        self.send_val(v, Limit::Within(timeout))
            .map_err(|e| match e {
                SendFail::Timeout(v) | SendFail::Full(v) => SendTimeoutError::Timeout(v),
                SendFail::Closed(v) => SendTimeoutError::Closed(v),
                SendFail::Broken(v) => SendTimeoutError::Broken(v),
                SendFail::WrongRegion(v) => SendTimeoutError::WrongRegion(v),
                SendFail::Taken(v) => SendTimeoutError::Taken(v),
                SendFail::Corrupted(v) => SendTimeoutError::Corrupted(v),
            })
    }

    /// Sends `v`, waiting until `deadline` while the pipe is full.
    ///
    /// # Errors
    ///
    /// As [`enqueue`](Self::enqueue).
    pub fn enqueue_deadline(
        &self,
        v: ShmVal,
        deadline: Instant,
    ) -> Result<(), SendTimeoutError<ShmVal>> {
        self.enqueue(v, deadline.saturating_duration_since(Instant::now()))
    }

    /// Sends `v` if there is room now. Never waits, not even for the pipe's lock.
    ///
    /// # Errors
    ///
    /// The value comes back in the error: [`TrySendError::Full`] (the pipe is full, or a
    /// live process holds its lock now, or another thread of this handle sends on its lane
    /// now), `Closed`, `WrongRegion`, `Taken` (another handle sends on the one-to-one pipe),
    /// `Corrupted`.
    pub fn try_enqueue(&self, v: ShmVal) -> Result<(), TrySendError<ShmVal>> {
        self.send_val(v, Limit::Once).map_err(|e| match e {
            SendFail::Full(v) | SendFail::Timeout(v) => TrySendError::Full(v),
            SendFail::Closed(v) => TrySendError::Closed(v),
            SendFail::WrongRegion(v) => TrySendError::WrongRegion(v),
            SendFail::Taken(v) => TrySendError::Taken(v),
            SendFail::Corrupted(v) | SendFail::Broken(v) => TrySendError::Corrupted(v),
        })
    }

    /// Sends `v`, waiting as long as the pipe is full: until there is room, the pipe is
    /// closed, or the break checker says stop. A wait that goes on says so on standard
    /// error (see [`with_notice`](Self::with_notice)).
    ///
    /// # Errors
    ///
    /// The value comes back in the error: [`SendError::Closed`], `Broken`, `WrongRegion`,
    /// `Corrupted`.
    pub fn enq(&self, v: ShmVal) -> Result<(), SendError<ShmVal>> {
        self.send_val(v, Limit::Forever).map_err(|e| match e {
            SendFail::Closed(v) => SendError::Closed(v),
            SendFail::Broken(v) => SendError::Broken(v),
            SendFail::WrongRegion(v) => SendError::WrongRegion(v),
            SendFail::Taken(v) => SendError::Taken(v),
            SendFail::Corrupted(v) | SendFail::Timeout(v) | SendFail::Full(v) => {
                SendError::Corrupted(v)
            }
        })
    }

    /// Receives the oldest value, waiting up to `timeout` while the pipe is empty.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`], `Closed` (closed and drained), `Disconnected`
    /// (every sender gone and drained), `Broken`, `Corrupted`.
    pub fn dequeue(&self, timeout: Duration) -> Result<ShmVal, RecvTimeoutError> {
        self.recv_val(Limit::Within(timeout)).map_err(timeout_error)
    }

    /// Receives the oldest value, waiting until `deadline` while the pipe is empty.
    ///
    /// # Errors
    ///
    /// As [`dequeue`](Self::dequeue).
    pub fn dequeue_deadline(&self, deadline: Instant) -> Result<ShmVal, RecvTimeoutError> {
        self.dequeue(deadline.saturating_duration_since(Instant::now()))
    }

    /// Receives the oldest value if there is one now. Never waits, not even for the pipe's
    /// lock.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] (empty, or a live process holds its lock now, or another
    /// thread of this handle receives from its lane now), `Closed`, `Disconnected`, `Taken`
    /// (another handle receives from the one-to-one pipe), `Corrupted`.
    pub fn try_dequeue(&self) -> Result<ShmVal, TryRecvError> {
        self.recv_val(Limit::Once).map_err(try_error)
    }

    /// Receives the oldest value, waiting as long as the pipe is empty: until a value
    /// comes, the pipe is closed and drained, every sender has gone, or the break checker
    /// says stop. A wait that goes on says so on standard error (see
    /// [`with_notice`](Self::with_notice)).
    ///
    /// # Errors
    ///
    /// [`RecvError::Closed`], `Disconnected`, `Broken`, `Corrupted`.
    pub fn deq(&self) -> Result<ShmVal, RecvError> {
        self.recv_val(Limit::Forever).map_err(|e| match e {
            RecvFail::Closed => RecvError::Closed,
            RecvFail::Disconnected => RecvError::Disconnected,
            RecvFail::Broken => RecvError::Broken,
            RecvFail::Taken => RecvError::Taken,
            RecvFail::Corrupted | RecvFail::Timeout | RecvFail::Empty => RecvError::Corrupted,
        })
    }

    /// Receives up to `max` of the oldest values into `out`, in order, in one critical
    /// section, waiting up to `timeout` while the pipe is empty; returns how many (at
    /// least one, unless `max` is 0). A consumer that keeps up with a fast producer takes
    /// the pipe's lock once per batch instead of once per value.
    ///
    /// # Errors
    ///
    /// As [`dequeue`](Self::dequeue). A slot holding something that is not a value
    /// handle gives `Corrupted` after the good values of the batch are in `out`.
    pub fn dequeue_batch(
        &self,
        out: &mut Vec<ShmVal>,
        max: usize,
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        self.recv_vals(Limit::Within(timeout), max, out)
            .map_err(timeout_error)
    }

    /// Receives up to `max` of the oldest values into `out` if there are any now.
    ///
    /// # Errors
    ///
    /// As [`try_dequeue`](Self::try_dequeue), and corruption as in
    /// [`dequeue_batch`](Self::dequeue_batch).
    pub fn try_dequeue_batch(
        &self,
        out: &mut Vec<ShmVal>,
        max: usize,
    ) -> Result<usize, TryRecvError> {
        self.recv_vals(Limit::Once, max, out).map_err(try_error)
    }

    /// Items in the pipe now (0 if its block no longer checks out).
    pub fn len(&self) -> u64 {
        self.queue().map_or(0, |q| q.len())
    }

    /// Whether the pipe is empty now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the pipe is full now (a consistent snapshot, as [`len`](Self::len)).
    pub fn is_full(&self) -> bool {
        self.len() >= self.cap
    }

    /// Closes the pipe: blocked and later senders get their value back in `Closed`
    /// ([`SendTimeoutError::Closed`]); receivers drain what is left, then get `Closed`
    /// ([`RecvTimeoutError::Closed`]). Waits for the pipe's lock as long as a live thread holds it
    /// (one killed inside it is taken over).
    ///
    /// # Errors
    ///
    /// [`PipeError::BadPipe`] if the block no longer checks out.
    pub fn close(&self) -> Result<(), PipeError> {
        self.queue()?.close();
        Ok(())
    }

    /// Whether the pipe has been closed.
    pub fn is_closed(&self) -> bool {
        match self.queue() {
            Ok(q) => q.is_closed(),
            Err(_) => true,
        }
    }

    /// The thread holding the pipe's lock now, if any (a snapshot, for diagnostics and
    /// crash tests: its [`tid`](Owner::tid) is the pid of a single-threaded holder).
    pub fn lock_owner(&self) -> Option<Owner> {
        self.queue().ok()?.ring()?.lock_owner()
    }

    /// Counters: items sent and received, timeouts, waiters on each side, depth.
    ///
    /// # Errors
    ///
    /// [`PipeError::BadPipe`] if the block no longer checks out.
    pub fn stats(&self) -> Result<PipeStats, PipeError> {
        Ok(self.queue()?.stats())
    }
}
