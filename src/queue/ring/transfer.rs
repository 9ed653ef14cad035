//! Sending and receiving: the two critical sections of the protocol (see the parent
//! module), with their operation records.

use super::{
    cpu_note_due, note_cpu, pause, Locked, OpRecord, Ring, Wait, WaitRecord, WAIT_NOT_EMPTY,
    WAIT_NOT_FULL,
};
use crate::queue::error::{RecvFail, SendFail};
use crate::sync::atomic::Ordering;
use crate::sync::Platform;

impl<'a, P: Platform> Ring<'a, P> {
    /// [`send_recorded`](Self::send_recorded) without a record.
    ///
    /// # Errors
    ///
    /// As [`send_recorded`](Self::send_recorded).
    #[cfg(test)]
    pub fn send(&self, item: u64, wait: Wait) -> Result<(), SendFail<u64>> {
        self.send_recorded(item, wait, None)
    }

    /// Appends `item`, waiting as `wait` allows while the ring is full, keeping `record`
    /// of the operation if given (see [`OpRecord`]).
    ///
    /// # Errors
    ///
    /// The item comes back in [`SendFail::Full`] (with [`Wait::No`]),
    /// [`SendFail::Timeout`], [`SendFail::Closed`] or [`SendFail::Corrupted`].
    pub fn send_recorded(
        &self,
        item: u64,
        wait: Wait,
        record: Option<&dyn OpRecord>,
    ) -> Result<(), SendFail<u64>> {
        self.send_inner(item, wait, record, false)
    }

    /// [`send_recorded`](Self::send_recorded) even into a closed ring: recovery putting
    /// back an item a dead receiver had taken, which the receivers still draining the
    /// ring must get.
    pub(crate) fn send_back(
        &self,
        item: u64,
        wait: Wait,
        record: Option<&dyn OpRecord>,
    ) -> Result<(), SendFail<u64>> {
        self.send_inner(item, wait, record, true)
    }

    fn send_inner(
        &self,
        item: u64,
        wait: Wait,
        record: Option<&dyn OpRecord>,
        even_closed: bool,
    ) -> Result<(), SendFail<u64>> {
        if wait != Wait::No {
            self.spin(
                (&self.hdr.sender_cpu, &self.hdr.receiver_cpu),
                |head, tail| tail.wrapping_sub(head) < self.cap,
            );
        }
        let mut g = match self.lock(wait) {
            Ok(g) => g,
            Err(Locked::Corrupted) => return Err(SendFail::Corrupted(item)),
            Err(Locked::Busy) => return Err(SendFail::Full(item)),
            Err(Locked::TimedOut) => return Err(self.timed_out(wait, SendFail::Timeout(item))),
        };
        let tail = loop {
            if !even_closed && self.hdr.closed.load(Ordering::Relaxed) != 0 {
                return Err(SendFail::Closed(item));
            }
            let Ok((head, tail)) = self.counts() else {
                return Err(SendFail::Corrupted(item));
            };
            if tail - head < self.cap {
                break tail;
            }
            if wait == Wait::No {
                return Err(SendFail::Full(item));
            }
            if wait.over::<P>() {
                return Err(self.timed_out(wait, SendFail::Timeout(item)));
            }
            let rec = record.and_then(|r| r.wait_word()).map(|word| WaitRecord {
                word,
                tag: WAIT_NOT_FULL,
            });
            g = match self
                .hdr
                .not_full
                .wait_polling_recorded(g, wait.deadline(), rec)
            {
                Ok((g, _)) => g,
                Err(_) => return Err(self.timed_out(wait, SendFail::Timeout(item))),
            };
            if self.repair(&mut g).is_err() {
                return Err(SendFail::Corrupted(item));
            }
        };
        self.slots[(tail % self.cap) as usize].store(item, Ordering::Relaxed);
        if let Some(r) = record {
            self.hdr.op.store(r.begin(tail), Ordering::Relaxed);
        }
        pause("ring.send.slot_written");
        // The commit: from here the item is in the ring.
        self.hdr.tail.store(tail + 1, Ordering::Release);
        if cpu_note_due(tail, 1) {
            note_cpu(&self.hdr.sender_cpu);
        }
        pause("ring.send.committed");
        if let Some(r) = record {
            r.committed();
            pause("ring.send.recorded");
            self.hdr.op.store(0, Ordering::Relaxed);
        }
        drop(g);
        self.hdr.not_empty.notify_one();
        Ok(())
    }

    /// Removes the oldest item, waiting as `wait` allows while the ring is empty.
    ///
    /// # Errors
    ///
    /// [`RecvFail::Empty`] (with [`Wait::No`]), [`RecvFail::Timeout`],
    /// [`RecvFail::Closed`] once the ring is closed and drained, or
    /// [`RecvFail::Corrupted`].
    pub fn recv(&self, wait: Wait) -> Result<u64, RecvFail> {
        let mut item = 0;
        self.recv_many(wait, 1, |i| item = i)?;
        Ok(item)
    }

    /// Removes up to `max` of the oldest items in one critical section, passing each to
    /// `f` in order, waiting as `wait` allows while the ring is empty; returns how many
    /// (at least one, unless `max` is 0). A busy consumer takes the lock once per batch
    /// instead of once per item.
    ///
    /// `f` sees the items before the receive commits: if the process dies in between,
    /// they stay in the ring for another receiver.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_many(&self, wait: Wait, max: usize, f: impl FnMut(u64)) -> Result<usize, RecvFail> {
        self.recv_many_recorded(wait, max, f, None)
    }

    /// [`recv_many`](Self::recv_many), keeping `record` of the operation (see
    /// [`OpRecord`]). `f` sees each item under the lock before the commit, and may
    /// record it.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_many_recorded(
        &self,
        wait: Wait,
        max: usize,
        mut f: impl FnMut(u64),
        record: Option<&dyn OpRecord>,
    ) -> Result<usize, RecvFail> {
        if max == 0 {
            return Ok(0);
        }
        if wait == Wait::No {
            if self.looks_empty() {
                return Err(RecvFail::Empty);
            }
        } else {
            self.spin(
                (&self.hdr.receiver_cpu, &self.hdr.sender_cpu),
                |head, tail| tail != head,
            );
        }
        let mut g = match self.lock(wait) {
            Ok(g) => g,
            Err(Locked::Corrupted) => return Err(RecvFail::Corrupted),
            Err(Locked::Busy) => return Err(RecvFail::Empty),
            Err(Locked::TimedOut) => return Err(self.timed_out(wait, RecvFail::Timeout)),
        };
        let (head, n) = loop {
            let Ok((head, tail)) = self.counts() else {
                return Err(RecvFail::Corrupted);
            };
            if tail != head {
                break (head, (tail - head).min(max as u64));
            }
            if self.hdr.closed.load(Ordering::Relaxed) != 0 {
                return Err(RecvFail::Closed);
            }
            if self.senders_gone() {
                return Err(RecvFail::Disconnected);
            }
            if wait == Wait::No {
                return Err(RecvFail::Empty);
            }
            if wait.over::<P>() {
                return Err(self.timed_out(wait, RecvFail::Timeout));
            }
            let rec = record.and_then(|r| r.wait_word()).map(|word| WaitRecord {
                word,
                tag: WAIT_NOT_EMPTY,
            });
            g = match self
                .hdr
                .not_empty
                .wait_polling_recorded(g, wait.deadline(), rec)
            {
                Ok((g, _)) => g,
                Err(_) => return Err(self.timed_out(wait, RecvFail::Timeout)),
            };
            if self.repair(&mut g).is_err() {
                return Err(RecvFail::Corrupted);
            }
        };
        // One division per receive: the slots taken follow each other, wrapping at the end.
        let first = (head % self.cap) as usize;
        let taken = || {
            let (before, from) = self.slots.split_at(first);
            from.iter().chain(before).take(n as usize)
        };
        for slot in taken() {
            f(slot.load(Ordering::Relaxed));
        }
        if let Some(r) = record {
            self.hdr.op.store(r.begin(head), Ordering::Relaxed);
        }
        pause("ring.recv.read");
        // The commit: from here the items are the caller's.
        self.hdr.head.store(head + n, Ordering::Release);
        if cpu_note_due(head, n) {
            note_cpu(&self.hdr.receiver_cpu);
        }
        pause("ring.recv.committed");
        if let Some(r) = record {
            r.committed();
            pause("ring.recv.recorded");
            self.hdr.op.store(0, Ordering::Relaxed);
        }
        // The slots keep no reference to what left them.
        for slot in taken() {
            slot.store(0, Ordering::Relaxed);
        }
        drop(g);
        // One waiting sender per slot freed (the condvar skips the call without waiters).
        if n == 1 {
            self.hdr.not_full.notify_one();
        } else {
            self.hdr.not_full.notify_all();
        }
        Ok(n as usize)
    }

    fn timed_out<E>(&self, wait: Wait, e: E) -> E {
        if let Wait::Until(_) = wait {
            self.record_timeout();
        }
        e
    }
}
