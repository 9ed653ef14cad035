//! [`Ring`]: a bounded multi-producer multi-consumer queue of 64-bit items in shared
//! memory, guarded by a [`ShmMutex`] and two [`ShmCondvar`]s.
//!
//! The ring holds items, not values: the pipe above stores value handles (offsets) in it.
//! It is written against references to its header and slots, so the same code runs in a
//! region and, under loom, on the heap.
//!
//! # Protocol
//!
//! `head` and `tail` count items ever dequeued and enqueued; the live items sit in slots
//! `head % capacity .. tail % capacity`. Both change only under the lock. A sender waits on
//! `not_full` while `tail - head == capacity`, a receiver on `not_empty` while
//! `head == tail`; each notifies one waiter of the other side after a change, and the
//! condvar skips the system call when nobody waits. Before taking the lock, a caller spins
//! briefly watching `head` and `tail`, so a busy pipeline hands over without sleeping; a
//! `try_` receive that finds the ring empty answers from them without taking the lock.
//!
//! # A holder that dies
//!
//! Every store keeps the ring valid. A send writes the slot, then advances `tail` (the
//! commit: before it the item was never sent, and the sender never heard otherwise). A
//! receive reads the slot, advances `head` (the commit: before it the item is still there
//! for another receiver; after it the dead receiver had taken it), then clears the slot. So
//! an item whose send returned `Ok` is received exactly once unless its receiver dies after
//! the commit. When the lock reports [`Acquired::OwnerDied`], the ring checks
//! `head <= tail <= head + capacity`; if that fails it is poisoned and every call returns
//! `Corrupted`.

use std::fmt;
use std::time::Duration;

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::pause;
use crate::sync::{
    DefaultPlatform, Owner, Platform, ShmCondvar, ShmMutex, ShmMutexGuard, WaitRecord,
};

mod transfer;

/// How long a dropping end waits for the lock (see `Ring::drop_sender`).
const DROP_WAIT: Duration = Duration::from_micros(200);

/// Spins (checking `head` and `tail`) before taking the lock to wait.
pub(super) const SPINS: u32 = if cfg!(shmval_loom) { 0 } else { 200 };

/// The CPU the calling thread runs on, plus one (0: unknown).
#[cfg(not(shmval_loom))]
pub(super) fn current_cpu() -> u32 {
    // SAFETY: sched_getcpu has no preconditions; it returns -1 on failure.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).map_or(0, |c| c.saturating_add(1))
}

#[cfg(shmval_loom)]
pub(super) fn current_cpu() -> u32 {
    0
}

/// Records the calling thread's CPU in `word`, and returns it. The loom model neither
/// spins nor records: the words only steer spinning, never correctness, and leaving them
/// out keeps the model's state space small.
#[cfg(not(shmval_loom))]
pub(super) fn note_cpu(word: &AtomicU32) -> u32 {
    // Stored only when it changes: a store would take the line from a peer polling it.
    let cpu = current_cpu();
    if word.load(Ordering::Relaxed) != cpu {
        word.store(cpu, Ordering::Relaxed);
    }
    cpu
}

#[cfg(shmval_loom)]
pub(super) fn note_cpu(_word: &AtomicU32) -> u32 {
    0
}

/// A side notes its CPU (for the other side's choice to spin) once every this many
/// items, and whenever it waits: asking the CPU costs as much as a quarter of a lane's
/// own work per item, and a side that moves to another CPU without ever waiting only
/// makes the other side spin where it could sleep, for a few items.
const CPU_NOTE_EVERY: u64 = 16;

/// Whether the items of positions `from..from + n` include one that notes the CPU.
pub(super) fn cpu_note_due(from: u64, n: u64) -> bool {
    from.wrapping_neg() % CPU_NOTE_EVERY < n
}

/// Whether to spin for a peer that last ran on `peer_cpu` from a thread on `my_cpu` (both
/// plus one, 0 unknown): not when both are known and equal.
pub(super) fn worth_spinning(peer_cpu: u32, my_cpu: u32) -> bool {
    peer_cpu == 0 || my_cpu == 0 || peer_cpu != my_cpu
}

/// How long a call may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Not at all (`try_` calls).
    No,
    /// Until this time on [`Platform::now_ns`]'s clock.
    Until(u64),
    /// Until this time, one slice of a longer wait: reaching it is not counted as a
    /// timeout in the stats (the caller counts the final one).
    Slice(u64),
    /// As long as it takes (until the queue is closed).
    Forever,
}

impl Wait {
    /// A deadline `d` from now, on platform `P`'s clock.
    #[cfg(test)]
    pub fn after<P: Platform>(d: Duration) -> Wait {
        Wait::Until(P::now_ns().saturating_add(d.as_nanos().min(u64::MAX as u128) as u64))
    }

    /// Whether the wait is over: never begun ([`Wait::No`]) or past its deadline.
    pub(super) fn over<P: Platform>(self) -> bool {
        match self {
            Wait::No => true,
            Wait::Forever => false,
            Wait::Until(d) | Wait::Slice(d) => P::now_ns() >= d,
        }
    }

    pub(super) fn deadline(self) -> Option<u64> {
        match self {
            Wait::Until(d) | Wait::Slice(d) => Some(d),
            _ => None,
        }
    }
}

/// Why [`Ring::lock`] gave no guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Locked {
    /// The ring was found inconsistent (poisoned).
    Corrupted,
    /// The deadline passed while a live thread held the lock.
    TimedOut,
    /// A live thread holds the lock and the caller does not wait ([`Wait::No`]).
    Busy,
}

/// The ring's shared state, `#[repr(C)]`; all-zero bytes then [`RingHeader::init`] make
/// an empty ring.
///
/// Every word a hand-off touches (lock, condvars, counts, flags) sits in the first 64
/// bytes, so a header placed on a cache-line boundary moves between CPUs as one line.
#[repr(C)]
pub struct RingHeader<P: Platform = DefaultPlatform> {
    pub(super) lock: ShmMutex<P>,
    not_empty: ShmCondvar<P>,
    not_full: ShmCondvar<P>,
    head: AtomicU64,
    tail: AtomicU64,
    /// The operation in progress under the lock, as its [`OpRecord`] named it (0: none):
    /// a holder that dies leaves it for the next to [`resolve`](OpResolver::resolve).
    op: AtomicU64,
    closed: AtomicU32,
    poisoned: AtomicU32,
    capacity: AtomicU64,
    timeouts: AtomicU64,
    /// CPU (plus one; 0 unknown) the last sender ran on, for receivers deciding to spin.
    sender_cpu: AtomicU32,
    /// CPU (plus one; 0 unknown) the last receiver ran on, for senders deciding to spin.
    receiver_cpu: AtomicU32,
    /// Sending ends now: handles that have sent and are not dropped.
    senders: AtomicU32,
    /// Receiving ends now: handles that have received and are not dropped.
    receivers: AtomicU32,
    /// [`SENT_EVER`], [`RECEIVED_EVER`], [`KEPT`].
    ends: AtomicU32,
}

/// `ends` flag: some handle has sent (so a ring with no sender left has lost them all).
const SENT_EVER: u32 = 1;
/// `ends` flag: some handle has received.
const RECEIVED_EVER: u32 = 2;
/// `ends` flag: the ring is kept for senders that come and go; it never disconnects.
const KEPT: u32 = 4;
/// `ends` flag: a value its receiver held when it died goes back into the ring.
const REDELIVER: u32 = 8;

/// The [`WaitRecord`](crate::sync::WaitRecord) tag of a wait on `not_empty` (a receiver).
pub(crate) const WAIT_NOT_EMPTY: u64 = 1;
/// The tag of a wait on `not_full` (a sender).
pub(crate) const WAIT_NOT_FULL: u64 = 2;

/// A send or receive in progress, recorded where the survivors of its process look (the
/// ledger): the ring tells it the position it commits at, and names it in its operation
/// word until the commit is done, so that a process that takes the lock over from a dead
/// holder learns whether the commit happened ([`OpResolver`]).
pub trait OpRecord {
    /// Under the lock, just before the commit at position `at` (`tail` for a send, `head`
    /// for a receive): records `at`, and returns the nonzero word naming the record.
    fn begin(&self, at: u64) -> u64;
    /// Under the lock, just after the commit.
    fn committed(&self);
    /// Where a wait of this operation is recorded, if anywhere.
    fn wait_word(&self) -> Option<&AtomicU64> {
        None
    }
}

/// Whether the operation that recorded position `at` ([`OpRecord::begin`]: `tail` for a
/// send, `head` for a receive) had committed when its holder died, given that count as
/// the holder left it. Counts only grow, and only under the lock, which the holder kept
/// from `begin` to its death: the count is past `at` exactly when its own commit store
/// happened.
pub(crate) fn op_committed(at: u64, count_now: u64) -> bool {
    count_now > at
}

/// Resolves the operation a dead holder of the ring's lock left in the operation word.
pub trait OpResolver {
    /// `op` (as [`OpRecord::begin`] returned it) was in progress when its process died
    /// holding the lock; `head` and `tail` are the ring's counts now, exactly as the dead
    /// holder left them. Records whether its commit happened.
    fn resolve(&self, op: u64, head: u64, tail: u64);
}

impl<P: Platform> fmt::Debug for RingHeader<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingHeader")
            .field("head", &self.head.load(Ordering::Relaxed))
            .field("tail", &self.tail.load(Ordering::Relaxed))
            .field("capacity", &self.capacity.load(Ordering::Relaxed))
            .finish()
    }
}

impl<P: Platform> Default for RingHeader<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> RingHeader<P> {
    /// A header with capacity 0; [`init`](Self::init) sets the capacity.
    pub fn new() -> Self {
        RingHeader {
            lock: ShmMutex::new(),
            not_empty: ShmCondvar::new(),
            not_full: ShmCondvar::new(),
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            op: AtomicU64::new(0),
            closed: AtomicU32::new(0),
            poisoned: AtomicU32::new(0),
            capacity: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            sender_cpu: AtomicU32::new(0),
            receiver_cpu: AtomicU32::new(0),
            senders: AtomicU32::new(0),
            receivers: AtomicU32::new(0),
            ends: AtomicU32::new(0),
        }
    }

    /// Sets the capacity of a fresh (zeroed) header before anyone else sees it.
    pub fn init(&self, capacity: u64) {
        self.capacity.store(capacity, Ordering::Relaxed);
    }

    /// The capacity as stored (untrusted until [`Ring::new`] checks it).
    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Relaxed)
    }

    /// Marks a fresh ring as kept: it never reports its senders gone.
    pub fn keep(&self) {
        self.ends.fetch_or(KEPT, Ordering::Relaxed);
    }

    /// Marks a fresh ring as redelivering (see [`Ring::redelivers`]).
    pub fn redeliver(&self) {
        self.ends.fetch_or(REDELIVER, Ordering::Relaxed);
    }

    /// Whether the pipe redelivers a dead receiver's values (see [`Ring::redelivers`]).
    pub(crate) fn redelivers(&self) -> bool {
        self.ends.load(Ordering::Relaxed) & REDELIVER != 0
    }

    /// Whether every end that ever sent has gone, on a ring that is not kept (see
    /// [`Ring::senders_gone`]).
    pub(crate) fn senders_gone(&self) -> bool {
        let ends = self.ends.load(Ordering::Acquire);
        ends & SENT_EVER != 0 && ends & KEPT == 0 && self.senders.load(Ordering::Acquire) == 0
    }

    /// Counts a new sending end.
    pub(crate) fn add_sender(&self) {
        self.senders.fetch_add(1, Ordering::Relaxed);
        self.ends.fetch_or(SENT_EVER, Ordering::Release);
    }

    /// A sending end went; returns whether it was the last. Release: a receiver that sees
    /// the count at zero (acquire) also sees every item the end sent.
    pub(crate) fn take_sender(&self) -> bool {
        self.senders
            .fetch_update(Ordering::Release, Ordering::Relaxed, |n| n.checked_sub(1))
            == Ok(1)
    }

    /// Counts a new receiving end.
    pub(crate) fn add_receiver(&self) {
        self.receivers.fetch_add(1, Ordering::Relaxed);
        self.ends.fetch_or(RECEIVED_EVER, Ordering::Relaxed);
    }

    /// A receiving end went.
    pub(crate) fn take_receiver(&self) {
        let _ = self
            .receivers
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Sending and receiving ends now, and timeouts counted.
    pub(crate) fn ends_now(&self) -> (u32, u32, u64) {
        (
            self.senders.load(Ordering::Relaxed),
            self.receivers.load(Ordering::Relaxed),
            self.timeouts.load(Ordering::Relaxed),
        )
    }

    /// Counts a timeout in the stats.
    pub(crate) fn count_timeout(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of a ring's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipeStats {
    /// Slots in the ring.
    pub capacity: u64,
    /// Items in it now.
    pub len: u64,
    /// Items ever sent.
    pub enqueued: u64,
    /// Items ever received.
    pub dequeued: u64,
    /// Sends and receives that gave up at their deadline.
    pub timeouts: u64,
    /// Receivers sleeping now.
    pub receivers_waiting: u32,
    /// Senders sleeping now.
    pub senders_waiting: u32,
    /// Handles that have sent and are still open.
    pub senders: u32,
    /// Handles that have received and are still open.
    pub receivers: u32,
    /// Whether every handle that sent has gone (on a pipe not kept): once empty, its
    /// receivers get `Disconnected`.
    pub disconnected: bool,
    /// Whether the ring is closed.
    pub closed: bool,
    /// Whether the ring was found inconsistent and refuses traffic.
    pub poisoned: bool,
}

/// The ring's shared state did not check out: capacity 0 or not matching the slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ring header declares capacity {declared}, {slots} slots given")]
pub struct BadRing {
    /// Capacity in the header.
    pub declared: u64,
    /// Slots supplied.
    pub slots: u64,
}

/// A view of a ring: its header and its slots.
pub struct Ring<'a, P: Platform = DefaultPlatform> {
    hdr: &'a RingHeader<P>,
    slots: &'a [AtomicU64],
    cap: u64,
    resolver: Option<&'a dyn OpResolver>,
}

impl<P: Platform> fmt::Debug for Ring<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("stats", &self.stats())
            .finish()
    }
}

impl<'a, P: Platform> Ring<'a, P> {
    /// Views `hdr` and `slots` as a ring, checking the header's capacity against the
    /// slots (the header may come from an untrusted region).
    ///
    /// # Errors
    ///
    /// [`BadRing`] if the capacity is 0 or differs from `slots.len()`.
    pub fn new(hdr: &'a RingHeader<P>, slots: &'a [AtomicU64]) -> Result<Self, BadRing> {
        let cap = hdr.capacity();
        if cap == 0 || cap != slots.len() as u64 {
            return Err(BadRing {
                declared: cap,
                slots: slots.len() as u64,
            });
        }
        Ok(Ring {
            hdr,
            slots,
            cap,
            resolver: None,
        })
    }

    /// This ring, resolving the operations of dead lock holders with `resolver`. A ring
    /// whose senders or receivers record their operations must have one: without it, a
    /// dead holder's operation word is left for a ring view that has.
    pub fn with_resolver(mut self, resolver: &'a dyn OpResolver) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Whether a value its receiver held when it died goes back into the ring.
    pub fn redelivers(&self) -> bool {
        self.hdr.redelivers()
    }

    /// Takes back the waiter count of a process that died waiting on the condition
    /// variable `tag` ([`WAIT_NOT_EMPTY`] or [`WAIT_NOT_FULL`]).
    pub(crate) fn forget_waiter(&self, tag: u64) {
        match tag {
            WAIT_NOT_EMPTY => self.hdr.not_empty.forget_waiter(),
            WAIT_NOT_FULL => self.hdr.not_full.forget_waiter(),
            _ => {}
        }
    }

    /// Takes the lock as `wait` allows, for a survivor's look at what a dead process left:
    /// the lock's repair resolves a dead holder's operation. `None` if a live thread holds
    /// it meanwhile, or the ring is poisoned. (With [`Wait::No`], a lock whose holder is
    /// dead is still taken.)
    pub(crate) fn lock_for_recovery(&self, wait: Wait) -> Option<ShmMutexGuard<'a, P>> {
        self.lock(wait).ok()
    }

    /// Items in the ring at one instant: `tail - head` from a `tail` read between two reads
    /// of `head` that agree (retried otherwise, as crossbeam does), so a count moving
    /// under the reads never makes a ring look fuller or emptier than it ever was.
    pub fn len(&self) -> u64 {
        loop {
            let head = self.hdr.head.load(Ordering::Acquire);
            let tail = self.hdr.tail.load(Ordering::Acquire);
            if self.hdr.head.load(Ordering::Acquire) == head {
                return tail.saturating_sub(head).min(self.cap);
            }
        }
    }

    /// Whether the ring has been closed.
    pub fn is_closed(&self) -> bool {
        self.hdr.closed.load(Ordering::Acquire) != 0
    }

    /// The thread holding the ring's lock now, if any (a snapshot, for diagnostics and
    /// crash tests).
    pub fn lock_owner(&self) -> Option<Owner> {
        self.hdr.lock.owner()
    }

    /// The counters, read without the lock (each is exact; together they are a snapshot).
    pub fn stats(&self) -> PipeStats {
        let h = self.hdr;
        PipeStats {
            capacity: self.cap,
            len: self.len(),
            // `tail` and `head` count exactly that: no counter of their own.
            enqueued: h.tail.load(Ordering::Relaxed),
            dequeued: h.head.load(Ordering::Relaxed),
            timeouts: h.timeouts.load(Ordering::Relaxed),
            receivers_waiting: h.not_empty.waiters(),
            senders_waiting: h.not_full.waiters(),
            senders: h.senders.load(Ordering::Relaxed),
            receivers: h.receivers.load(Ordering::Relaxed),
            disconnected: self.senders_gone(),
            closed: self.is_closed(),
            poisoned: h.poisoned.load(Ordering::Relaxed) != 0,
        }
    }

    /// Takes the lock as `wait` allows and repairs after a dead holder.
    ///
    /// [`Wait::No`] never waits for the lock: it takes a free lock (or one whose holder
    /// is dead), spinning at most [`SPINS`] polls for a holder that is only passing
    /// through, and otherwise reports [`Locked::Busy`].
    fn lock(&self, wait: Wait) -> Result<ShmMutexGuard<'a, P>, Locked> {
        // A free lock is taken with one CAS, before any deadline is computed.
        let fast = self.hdr.lock.try_lock_free();
        let mut g = match (fast, wait) {
            (Some(g), _) => g,
            (None, Wait::No) => self.try_lock_briefly().ok_or(Locked::Busy)?,
            (None, Wait::Until(d) | Wait::Slice(d)) => {
                let left = d.saturating_sub(P::now_ns());
                self.hdr
                    .lock
                    .lock_timeout(Duration::from_nanos(left))
                    .map_err(|_| Locked::TimedOut)?
            }
            (None, Wait::Forever) => self.hdr.lock.lock(),
        };
        self.repair(&mut g).map_err(|()| Locked::Corrupted)?;
        Ok(g)
    }

    /// The lock without waiting for it: free within a few polls, or held by a dead thread.
    fn try_lock_briefly(&self) -> Option<ShmMutexGuard<'a, P>> {
        for _ in 0..SPINS {
            if !self.hdr.lock.is_locked() {
                if let Some(g) = self.hdr.lock.try_lock_free() {
                    return Some(g);
                }
            }
            std::hint::spin_loop();
        }
        self.hdr.lock.try_lock()
    }

    /// After a dead holder: check the ring's invariant, poison it if broken.
    fn repair(&self, g: &mut ShmMutexGuard<'a, P>) -> Result<(), ()> {
        if g.owner_died() {
            // Every store leaves the ring valid, so the check only catches a state no
            // sequence of our stores produces; `counts` poisons the ring then.
            if let Ok((head, tail)) = self.counts() {
                let op = self.hdr.op.load(Ordering::Relaxed);
                if op != 0 {
                    if let Some(r) = self.resolver {
                        r.resolve(op, head, tail);
                        self.hdr.op.store(0, Ordering::Relaxed);
                    }
                }
            }
            g.mark_consistent();
        }
        if self.hdr.poisoned.load(Ordering::Relaxed) != 0 {
            return Err(());
        }
        Ok(())
    }

    /// `head` and `tail`, read under the lock and checked: a ring whose counts break
    /// `head <= tail <= head + capacity` (written by a buggy or hostile process) is
    /// poisoned.
    fn counts(&self) -> Result<(u64, u64), ()> {
        let head = self.hdr.head.load(Ordering::Relaxed);
        let tail = self.hdr.tail.load(Ordering::Relaxed);
        if tail < head || tail - head > self.cap {
            self.hdr.poisoned.store(1, Ordering::Relaxed);
            return Err(());
        }
        Ok((head, tail))
    }

    /// Spins while `cond` is false, a bounded number of times.
    ///
    /// Spinning only helps while the peer runs elsewhere: `peer_cpu` is the CPU the other
    /// side last ran on, and when that is this thread's CPU the peer cannot act until this
    /// thread sleeps, so the spin is skipped.
    ///
    /// A waiting side notes its own CPU in `own_cpu` first.
    fn spin(&self, (own_cpu, peer_cpu): (&AtomicU32, &AtomicU32), cond: impl Fn(u64, u64) -> bool) {
        let me = note_cpu(own_cpu);
        if SPINS == 0 || !worth_spinning(peer_cpu.load(Ordering::Relaxed), me) {
            return;
        }
        for _ in 0..SPINS {
            let head = self.hdr.head.load(Ordering::Relaxed);
            let tail = self.hdr.tail.load(Ordering::Relaxed);
            if cond(head, tail) || self.hdr.closed.load(Ordering::Relaxed) != 0 {
                return;
            }
            std::hint::spin_loop();
        }
    }

    /// Counts a new sending end (a handle's first send).
    pub fn add_sender(&self) {
        self.hdr.add_sender();
    }

    /// A sending end went away. The last one wakes the receivers, so that they see the
    /// ring disconnected once it is empty.
    ///
    /// The count drops under the lock when the lock comes within a short bound, so a
    /// receiver that checked it before sleeping cannot miss the wake-up; a drop never
    /// waits longer than that, and without the lock the receivers' liveness poll (20 ms)
    /// notices instead.
    pub fn drop_sender(&self) {
        let g = self.lock_for_drop();
        // SYNC POINT: release, so a receiver that sees the count at zero (acquire) also
        // sees every item this end sent.
        let last = self.hdr.take_sender();
        drop(g);
        if last {
            self.hdr.not_empty.notify_all();
        }
    }

    /// The lock, for a drop: within [`DROP_WAIT`], or not at all. (The loom model waits:
    /// its untimed waits have no liveness poll to fall back on.)
    fn lock_for_drop(&self) -> Option<ShmMutexGuard<'a, P>> {
        if cfg!(shmval_loom) {
            return Some(self.hdr.lock.lock());
        }
        self.hdr
            .lock
            .try_lock_free()
            .or_else(|| self.hdr.lock.lock_timeout(DROP_WAIT).ok())
    }

    /// Counts a new receiving end (a handle's first receive).
    pub fn add_receiver(&self) {
        self.hdr.add_receiver();
    }

    /// A receiving end went away.
    pub fn drop_receiver(&self) {
        self.hdr.take_receiver();
    }

    /// Whether every end that ever sent has gone, on a ring that is not kept. Read under
    /// the lock with the ring empty, it means nothing more will come: a sender's items
    /// commit under the lock before its end is dropped (a release that this acquires).
    fn senders_gone(&self) -> bool {
        self.hdr.senders_gone()
    }

    /// Whether the ring was empty (and open and sound) when `tail` was read, without the
    /// lock, so that polling an empty ring does not write the lock word: a busy `try_`
    /// receiver would otherwise take the lock's cache line from the sender on every poll.
    /// `head` is read first; both counts only grow and `head <= tail`, so if the `tail`
    /// read equals the earlier `head`, then at the `tail` read `tail == head` held.
    pub(crate) fn looks_empty(&self) -> bool {
        let head = self.hdr.head.load(Ordering::Acquire);
        let tail = self.hdr.tail.load(Ordering::Acquire);
        head == tail
            && self.hdr.closed.load(Ordering::Acquire) == 0
            && self.hdr.poisoned.load(Ordering::Relaxed) == 0
            && !self.senders_gone()
    }

    /// Counts a timeout in the stats (for callers that wait in [`Wait::Slice`]s).
    pub fn record_timeout(&self) {
        self.hdr.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Closes the ring: blocked and later senders get [`SendFail::Closed`] with their
    /// item back; receivers drain what is left, then get [`RecvFail::Closed`]. Wakes
    /// every waiter. Closing twice is harmless.
    pub fn close(&self) {
        {
            let mut g = self.hdr.lock.lock();
            // A dead holder: the closed flag is set either way; record the check.
            let _ = self.repair(&mut g);
            self.hdr.closed.store(1, Ordering::Release);
        }
        self.hdr.not_empty.notify_all();
        self.hdr.not_full.notify_all();
    }

    /// Removes every item left (for example after close, to release what they hold),
    /// calling `f` on each.
    pub fn drain(&self, mut f: impl FnMut(u64)) {
        while let Ok(item) = self.recv(Wait::No) {
            f(item);
        }
    }
}

/// A ring on the heap, for the tests, the loom models and the hop rig.
#[cfg(any(test, feature = "fault-injection"))]
pub(crate) struct HeapRing<P: Platform> {
    pub(crate) hdr: RingHeader<P>,
    pub(crate) slots: Vec<AtomicU64>,
}

#[cfg(any(test, feature = "fault-injection"))]
impl<P: Platform> HeapRing<P> {
    /// An empty ring of `cap` slots, shared.
    #[cfg(test)]
    pub(crate) fn new(cap: u64) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self::make(cap))
    }

    /// An empty ring of `cap` slots.
    pub(crate) fn make(cap: u64) -> Self {
        let h = HeapRing {
            hdr: RingHeader::new(),
            slots: (0..cap).map(|_| AtomicU64::new(0)).collect(),
        };
        h.hdr.init(cap);
        h
    }

    /// The ring view.
    pub(crate) fn ring(&self) -> Ring<'_, P> {
        Ring::new(&self.hdr, &self.slots).expect("capacity matches the slots")
    }
}

#[cfg(all(test, not(shmval_loom)))]
mod tests;
