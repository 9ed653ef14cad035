//! [`Lane`]: a bounded single-producer single-consumer queue of 64-bit items in shared
//! memory, without a lock, for one sender and one receiver.
//!
//! The ring ([`Ring`](super::Ring)) serves any number of senders and receivers under one
//! lock, so its lock word crosses between the CPUs on every hand-off, with the counts and
//! the slot. A lane has exactly one sending end and one receiving end at a time (the layer
//! above enforces it), and a hand-off moves only the slot's cache line: each slot carries
//! a stamp saying whose turn it is, as crossbeam's array channel does, so neither side
//! reads the other's counter on the common path.
//!
//! # Protocol
//!
//! Slot `p % capacity` serves position `p`. Its stamp is `2p` while it waits for the item
//! of position `p` (empty) and `2p + 1` once that item is in it (full). Positions count
//! from 0; `tail` (the sender's) and `head` (the receiver's) count items ever sent and ever
//! received, each on a cache line of its own that only its side writes.
//!
//! - A send at `tail = t` finds the stamp `2t` (else the lane is full), writes the item,
//!   then stores the stamp `2t + 1`: the commit. Then `tail = t + 1`.
//! - A receive at `head = h` finds the stamp `2h + 1` (else the lane is empty), reads the
//!   items of up to `max` full positions, then stores `head = h + n`: the commit. Then it
//!   stamps each slot empty for its next round, `2(p + capacity)`.
//!
//! A side that finds nothing to do sleeps on a futex word of the other side's (an event
//! count), after raising its flag; the other side, after its commit, wakes it only when the
//! flag is up (a `SeqCst` fence on each side orders the flag against the commit, so no
//! wake-up is lost). The flags and event words sit on a line of their own that is written
//! only around a sleep, so the common path reads it from its own cache.
//!
//! # A side that dies
//!
//! No lock is held, so a side that dies or stops never blocks the other beyond the
//! lane being full or empty. Every store keeps the lane valid. Its operation records
//! ([`OpRecord`]) are resolved with the ring's rule, [`op_committed`](super::ring::op_committed),
//! against counts the lane reconstructs once the side is known dead: a send committed when
//! its slot's stamp moved past `2t` (its `tail` store may not have followed), a receive
//! when `head` moved past `h` (its empty stamps may not have followed; recovery stores
//! them). [`Lane::recover_sender`] and [`Lane::recover_receiver`] do this; the layer above
//! calls them once it knows the side's process is dead, before another takes its place.

use std::fmt;

use super::error::{RecvFail, SendFail};
use super::ring::{cpu_note_due, note_cpu, OpRecord, Wait};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::{pause, DefaultPlatform, Platform};

/// One slot: the stamp saying whose turn it is, and the item.
#[repr(C)]
#[derive(Debug)]
pub struct LaneSlot {
    stamp: AtomicU64,
    item: AtomicU64,
}

impl LaneSlot {
    /// The empty slot for position `p` (all-zero bytes are the slot of position 0).
    #[cfg(any(test, feature = "fault-injection"))]
    fn fresh(p: u64) -> LaneSlot {
        LaneSlot {
            stamp: AtomicU64::new(p.wrapping_mul(2)),
            item: AtomicU64::new(0),
        }
    }
}

/// The words one side writes on every operation, on a cache line of their own.
#[repr(C, align(64))]
#[derive(Debug)]
struct SideWords {
    /// Items this side has ever moved (`tail` for the sender, `head` for the receiver).
    count: AtomicU64,
    /// The operation in progress, as its [`OpRecord`] named it (0: none).
    op: AtomicU64,
}

/// The words written only around a sleep, on a close, or when a side changes CPU.
#[repr(C, align(64))]
#[derive(Debug)]
struct RareWords {
    capacity: AtomicU64,
    /// The receiver is asleep, or about to be, on `not_empty`.
    receiver_sleeps: AtomicU32,
    /// The sender is asleep, or about to be, on `not_full`.
    sender_sleeps: AtomicU32,
    /// Event count the receiver sleeps on; a sender bumps it to wake it.
    not_empty: AtomicU32,
    /// Event count the sender sleeps on; a receiver bumps it to wake it.
    not_full: AtomicU32,
    closed: AtomicU32,
    poisoned: AtomicU32,
    /// CPU (plus one; 0 unknown) the sender last ran on, for a receiver deciding to spin.
    sender_cpu: AtomicU32,
    /// CPU (plus one; 0 unknown) the receiver last ran on, for a sender deciding to spin.
    receiver_cpu: AtomicU32,
}

/// Who holds each side of the lane (see [`role`]), on a line of its own: written when a
/// handle takes or leaves a side.
#[repr(C, align(64))]
#[derive(Debug)]
struct RoleWords {
    /// The sending side's holder: a process identity, [`role::RECOVERING`] while a dead
    /// holder's operation is completed (0: free).
    sender: AtomicU64,
    /// Which handle of that process holds it.
    sender_handle: AtomicU64,
    /// The receiving side's holder, as `sender`.
    receiver: AtomicU64,
    /// Which handle of that process holds it.
    receiver_handle: AtomicU64,
}

/// A lane's shared state, `#[repr(C)]`; all-zero bytes then [`LaneHeader::init`] make an
/// empty lane (with slots made by [`LaneSlot::default`] or [`Lane::format`]).
#[repr(C)]
pub struct LaneHeader<P: Platform = DefaultPlatform> {
    sender: SideWords,
    receiver: SideWords,
    rare: RareWords,
    roles: RoleWords,
    _platform: std::marker::PhantomData<P>,
}

impl<P: Platform> fmt::Debug for LaneHeader<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LaneHeader")
            .field("head", &self.receiver.count.load(Ordering::Relaxed))
            .field("tail", &self.sender.count.load(Ordering::Relaxed))
            .field("capacity", &self.rare.capacity.load(Ordering::Relaxed))
            .finish()
    }
}

impl<P: Platform> Default for LaneHeader<P> {
    fn default() -> Self {
        let z32 = || AtomicU32::new(0);
        let side = || SideWords {
            count: AtomicU64::new(0),
            op: AtomicU64::new(0),
        };
        LaneHeader {
            sender: side(),
            receiver: side(),
            rare: RareWords {
                capacity: AtomicU64::new(0),
                receiver_sleeps: z32(),
                sender_sleeps: z32(),
                not_empty: z32(),
                not_full: z32(),
                closed: z32(),
                poisoned: z32(),
                sender_cpu: z32(),
                receiver_cpu: z32(),
            },
            roles: RoleWords {
                sender: AtomicU64::new(0),
                sender_handle: AtomicU64::new(0),
                receiver: AtomicU64::new(0),
                receiver_handle: AtomicU64::new(0),
            },
            _platform: std::marker::PhantomData,
        }
    }
}

impl<P: Platform> LaneHeader<P> {
    /// Sets the capacity of a fresh header before anyone else sees it.
    pub fn init(&self, capacity: u64) {
        self.rare.capacity.store(capacity, Ordering::Relaxed);
    }
}

/// The lane's shared state did not check out: capacity 0 or not matching the slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("lane header declares capacity {declared}, {slots} slots given")]
pub struct BadLane {
    /// Capacity in the header.
    pub declared: u64,
    /// Slots supplied.
    pub slots: u64,
}

/// What a look at a slot found.
enum Turn {
    /// The slot is this side's to use.
    Ready,
    /// Not yet: the other side has not got there.
    NotYet,
    /// A stamp no sequence of our stores produces.
    Corrupt,
}

/// A view of a lane: its header and its slots.
#[derive(Clone, Copy)]
pub struct Lane<'a, P: Platform = DefaultPlatform> {
    hdr: &'a LaneHeader<P>,
    slots: &'a [LaneSlot],
    cap: u64,
    /// Whether every sender has gone for good (asked when the lane is empty).
    gone: Option<&'a dyn Fn() -> bool>,
}

impl<P: Platform> fmt::Debug for Lane<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lane").field("hdr", self.hdr).finish()
    }
}

impl<'a, P: Platform> Lane<'a, P> {
    /// Views `hdr` and `slots` as a lane, checking the capacity against the slots (the
    /// header may come from an untrusted region).
    ///
    /// # Errors
    ///
    /// [`BadLane`] if the capacity is 0 or differs from `slots.len()`.
    pub fn new(hdr: &'a LaneHeader<P>, slots: &'a [LaneSlot]) -> Result<Self, BadLane> {
        let cap = hdr.rare.capacity.load(Ordering::Relaxed);
        if cap == 0 || cap != slots.len() as u64 {
            return Err(BadLane {
                declared: cap,
                slots: slots.len() as u64,
            });
        }
        Ok(Lane {
            hdr,
            slots,
            cap,
            gone: None,
        })
    }

    /// This lane, whose receives on an empty lane end with [`RecvFail::Disconnected`] once
    /// `gone` says every sender has gone for good (the layer above counts its ends). A
    /// sender's going must then [`wake_receiver`](Self::wake_receiver).
    pub fn with_gone(mut self, gone: &'a dyn Fn() -> bool) -> Self {
        self.gone = Some(gone);
        self
    }

    /// Stamps fresh slots empty for their first round (slot `i` waits for position `i`).
    /// For a lane nobody uses yet.
    pub fn format(&self) {
        for (i, s) in self.slots.iter().enumerate() {
            s.stamp.store((i as u64).wrapping_mul(2), Ordering::Relaxed);
            s.item.store(0, Ordering::Relaxed);
        }
    }

    fn slot(&self, p: u64) -> &LaneSlot {
        &self.slots[(p % self.cap) as usize]
    }

    /// Items sent and not yet received (a snapshot).
    pub fn len(&self) -> u64 {
        let head = self.hdr.receiver.count.load(Ordering::Acquire);
        let tail = self.hdr.sender.count.load(Ordering::Acquire);
        tail.saturating_sub(head).min(self.cap)
    }

    /// Items ever sent and ever received.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hdr.sender.count.load(Ordering::Relaxed),
            self.hdr.receiver.count.load(Ordering::Relaxed),
        )
    }

    /// Whether the lane has been closed.
    pub fn is_closed(&self) -> bool {
        self.hdr.rare.closed.load(Ordering::Acquire) != 0
    }

    /// Whether the lane was empty (and open, sound, and not left by every sender) when
    /// looked at, without waiting: what a busy `try_` receiver polls.
    pub fn looks_empty(&self) -> bool {
        let h = self.hdr.receiver.count.load(Ordering::Relaxed);
        matches!(self.recv_turn(h), Turn::NotYet)
            && !self.is_closed()
            && !self.poisoned()
            && !self.gone.is_some_and(|g| g())
    }

    /// Whether the receiver and the sender sleep now (a snapshot of their flags).
    pub fn sleepers(&self) -> (bool, bool) {
        let rare = &self.hdr.rare;
        (
            rare.receiver_sleeps.load(Ordering::Relaxed) != 0,
            rare.sender_sleeps.load(Ordering::Relaxed) != 0,
        )
    }

    /// Whether the lane was found inconsistent and refuses traffic.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned()
    }

    fn poisoned(&self) -> bool {
        self.hdr.rare.poisoned.load(Ordering::Relaxed) != 0
    }

    fn poison(&self) {
        self.hdr.rare.poisoned.store(1, Ordering::Relaxed);
    }

    /// Whether the sender may use the slot of position `t`: stamped empty for it, or
    /// still full from the round before (or received, with its empty stamp not yet
    /// stored).
    fn send_turn(&self, t: u64) -> Turn {
        let stamp = self.slot(t).stamp.load(Ordering::Acquire);
        if stamp == t.wrapping_mul(2) {
            Turn::Ready
        } else if t >= self.cap && stamp == t.wrapping_sub(self.cap).wrapping_mul(2).wrapping_add(1)
        {
            Turn::NotYet
        } else {
            Turn::Corrupt
        }
    }

    /// Whether the receiver may take the item of position `h`: stamped full for it, or
    /// still empty waiting for it.
    fn recv_turn(&self, h: u64) -> Turn {
        let stamp = self.slot(h).stamp.load(Ordering::Acquire);
        if stamp == h.wrapping_mul(2).wrapping_add(1) {
            Turn::Ready
        } else if stamp == h.wrapping_mul(2) {
            Turn::NotYet
        } else {
            Turn::Corrupt
        }
    }

    /// Appends `item`, waiting as `wait` allows while the lane is full, keeping `record` of
    /// the operation if given. Only the lane's one sender calls this.
    ///
    /// # Errors
    ///
    /// The item comes back in [`SendFail::Full`] (with [`Wait::No`]),
    /// [`SendFail::Timeout`], [`SendFail::Closed`] or [`SendFail::Corrupted`].
    pub fn send(
        &self,
        item: u64,
        wait: Wait,
        record: Option<&dyn OpRecord>,
    ) -> Result<(), SendFail<u64>> {
        let s = &self.hdr.sender;
        let t = s.count.load(Ordering::Relaxed);
        let rare = &self.hdr.rare;
        let ready = || match self.send_turn(t) {
            Turn::Ready => Some(Ok(())),
            Turn::NotYet => None,
            Turn::Corrupt => Some(Err(())),
        };
        let outcome = self.wait_for(
            wait,
            (&rare.sender_cpu, &rare.receiver_cpu),
            (&rare.sender_sleeps, &rare.not_full),
            true,
            ready,
        );
        match outcome {
            Waited::Ready(Ok(())) => {}
            Waited::Ready(Err(())) => {
                self.poison();
                return Err(SendFail::Corrupted(item));
            }
            Waited::Closed => return Err(SendFail::Closed(item)),
            Waited::Gone => return Err(SendFail::Corrupted(item)),
            Waited::Poisoned => return Err(SendFail::Corrupted(item)),
            Waited::Over if wait == Wait::No => return Err(SendFail::Full(item)),
            Waited::Over => return Err(SendFail::Timeout(item)),
        }
        let slot = self.slot(t);
        slot.item.store(item, Ordering::Relaxed);
        if let Some(r) = record {
            s.op.store(r.begin(t), Ordering::Relaxed);
        }
        pause("lane.send.slot_written");
        // The commit: from here the item is in the lane.
        slot.stamp
            .store(t.wrapping_mul(2).wrapping_add(1), Ordering::Release);
        pause("lane.send.committed");
        s.count.store(t.wrapping_add(1), Ordering::Release);
        if cpu_note_due(t, 1) {
            note_cpu(&rare.sender_cpu);
        }
        if let Some(r) = record {
            r.committed();
            pause("lane.send.recorded");
            s.op.store(0, Ordering::Relaxed);
        }
        Self::wake(&rare.receiver_sleeps, &rare.not_empty);
        Ok(())
    }

    /// Removes up to `max` of the oldest items, passing each to `f` in order, waiting as
    /// `wait` allows while the lane is empty; returns how many (at least one, unless `max`
    /// is 0). Only the lane's one receiver calls this.
    ///
    /// `f` sees the items before the receive commits: if the process dies in between, they
    /// stay in the lane for the next receiver.
    ///
    /// # Errors
    ///
    /// [`RecvFail::Empty`] (with [`Wait::No`]), [`RecvFail::Timeout`],
    /// [`RecvFail::Closed`] once the lane is closed and drained, or
    /// [`RecvFail::Corrupted`].
    pub fn recv_many(
        &self,
        wait: Wait,
        max: usize,
        mut f: impl FnMut(u64),
        record: Option<&dyn OpRecord>,
    ) -> Result<usize, RecvFail> {
        if max == 0 {
            return Ok(0);
        }
        let r = &self.hdr.receiver;
        let h = r.count.load(Ordering::Relaxed);
        let rare = &self.hdr.rare;
        let ready = || match self.recv_turn(h) {
            Turn::Ready => Some(Ok(())),
            Turn::NotYet => None,
            Turn::Corrupt => Some(Err(())),
        };
        let outcome = self.wait_for(
            wait,
            (&rare.receiver_cpu, &rare.sender_cpu),
            (&rare.receiver_sleeps, &rare.not_empty),
            false,
            ready,
        );
        match outcome {
            Waited::Ready(Ok(())) => {}
            Waited::Ready(Err(())) => {
                self.poison();
                return Err(RecvFail::Corrupted);
            }
            // Closed and empty: the ready check came first, so nothing was left.
            Waited::Closed => return Err(RecvFail::Closed),
            Waited::Gone => return Err(RecvFail::Disconnected),
            Waited::Poisoned => return Err(RecvFail::Corrupted),
            Waited::Over if wait == Wait::No => return Err(RecvFail::Empty),
            Waited::Over => return Err(RecvFail::Timeout),
        }
        // The first item is there; take the ones after it that are there too.
        let mut n: u64 = 0;
        while n < max as u64 && n < self.cap {
            let p = h.wrapping_add(n);
            if n > 0 && !matches!(self.recv_turn(p), Turn::Ready) {
                break;
            }
            f(self.slot(p).item.load(Ordering::Relaxed));
            n = n.wrapping_add(1);
        }
        if let Some(rec) = record {
            r.op.store(rec.begin(h), Ordering::Relaxed);
        }
        pause("lane.recv.read");
        // The commit: from here the items are the caller's.
        r.count.store(h.wrapping_add(n), Ordering::Release);
        pause("lane.recv.committed");
        if let Some(rec) = record {
            rec.committed();
            pause("lane.recv.recorded");
            r.op.store(0, Ordering::Relaxed);
        }
        self.stamp_empty(h, h.wrapping_add(n));
        if cpu_note_due(h, n) {
            note_cpu(&rare.receiver_cpu);
        }
        Self::wake(&rare.sender_sleeps, &rare.not_full);
        Ok(n as usize)
    }

    /// [`recv_many`](Self::recv_many) of one item.
    ///
    /// # Errors
    ///
    /// As [`recv_many`](Self::recv_many).
    pub fn recv(&self, wait: Wait, record: Option<&dyn OpRecord>) -> Result<u64, RecvFail> {
        let mut item = 0;
        self.recv_many(wait, 1, |i| item = i, record)?;
        Ok(item)
    }

    /// Stamps the slots of positions `from..to` (received) empty for their next round.
    fn stamp_empty(&self, from: u64, to: u64) {
        let mut p = from;
        while p < to {
            let slot = self.slot(p);
            slot.item.store(0, Ordering::Relaxed);
            slot.stamp
                .store(p.wrapping_add(self.cap).wrapping_mul(2), Ordering::Release);
            p = p.wrapping_add(1);
        }
    }
}

/// A lane on the heap, for the tests, the loom models and the hop rig.
#[cfg(any(test, feature = "fault-injection"))]
pub(crate) struct HeapLane<P: Platform> {
    pub(crate) hdr: LaneHeader<P>,
    pub(crate) slots: Vec<LaneSlot>,
}

#[cfg(any(test, feature = "fault-injection"))]
impl<P: Platform> HeapLane<P> {
    /// An empty lane of `cap` slots, shared.
    #[cfg(test)]
    pub(crate) fn new(cap: u64) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self::make(cap))
    }

    /// An empty lane of `cap` slots.
    pub(crate) fn make(cap: u64) -> Self {
        let h = HeapLane {
            hdr: LaneHeader::default(),
            slots: (0..cap).map(LaneSlot::fresh).collect(),
        };
        h.hdr.init(cap);
        h
    }

    /// The lane view.
    pub(crate) fn lane(&self) -> Lane<'_, P> {
        Lane::new(&self.hdr, &self.slots).expect("capacity matches the slots")
    }
}

mod recover;
pub(crate) mod role;
mod wait;

use wait::Waited;

#[cfg(all(test, not(shmval_loom)))]
mod tests;
