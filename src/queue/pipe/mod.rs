//! [`Pipe`]: a [`Ring`](super::Ring) (or a lane, for a one-to-one pipe) living in a pool
//! block, counted like an `Arc`.
//!
//! A pipe block holds a small head (the ring header, magic, a generation, a reference
//! count and the kind) followed by the slots, or by the lane's header and its slots. Items
//! are 64-bit words; the value layer stores handle offsets in them, one reference each, so
//! a handle moves through a pipe without its refcount changing.
//!
//! Every [`Pipe`] handle, in any process, holds one count of the block, and so does a
//! directory entry that lists it; the last to let go drops the values still queued and
//! frees the block (as crossbeam-channel's counted channel ends do). So no handle can
//! outlive its block, and every use also checks the block's magic and generation: a block
//! freed and reused by someone else (only a bug or a hostile writer can arrange that) is
//! an error, never a write into someone else's memory.

use std::mem::size_of;
use std::sync::Arc;
use std::time::Duration;

use std::time::Instant;

use super::error::PipeError;
use super::lane::role::{Claim, Side};
use super::lane::{Lane, LaneHeader, LaneSlot};
use super::recorded;
use super::ring::RingHeader;
use crate::alloc::Pool;
use crate::ledger::flags;
use crate::region::{Offset, Shared};
use crate::sync::atomic::{fence, AtomicU64, AtomicU8, Ordering};
use crate::sync::{MadeIn, Os, Platform};
use crate::val::shared::{tracked, ShmVal};

mod calls;
mod transfer;
mod turn;
mod view;

use view::{lane_parts, queue_in};
pub(crate) use view::{queue_of, Queue};

/// "SHMPIPE4", little-endian: marks a formatted pipe block of this layout.
const PIPE_MAGIC: u64 = u64::from_le_bytes(*b"SHMPIPE4");

/// [`PipeHead::kind`]: the items are in the ring.
const KIND_RING: u64 = 0;
/// [`PipeHead::kind`]: the items are in a lane (one sending and one receiving handle).
const KIND_LANE: u64 = 1;

/// How often blocking calls ask the break checker unless told otherwise.
const DEFAULT_MICRO_SLEEP: Duration = Duration::from_millis(100);

/// Largest capacity accepted: 2^24 slots (128 MiB of slots).
pub const MAX_CAPACITY: u64 = 1 << 24;

/// The start of a pipe block (64-byte aligned): the ring header first, so its hot words
/// fill the block's first cache line; the slots start on a line of their own.
#[repr(C, align(64))]
struct PipeHead {
    ring: RingHeader,
    magic: AtomicU64,
    /// Chosen at random when the block is formatted: a handle checks it on every use.
    generation: AtomicU64,
    /// Handles (in every process) and directory entries holding the block.
    refs: AtomicU64,
    /// [`KIND_RING`] or [`KIND_LANE`].
    kind: AtomicU64,
}

// SAFETY: repr(C) of atomics and a RingHeader (itself repr(C) atomics, a ShmMutex and two
// ShmCondvars, all valid for any bits and mutated only atomically).
unsafe impl Shared for PipeHead {}
// SAFETY: as above: repr(C) atomics, locks and condvars only.
unsafe impl Shared for RingHeader {}

// SAFETY: repr(C) of atomics only (in cache-line-aligned groups), valid for any bits and
// mutated only atomically.
unsafe impl Shared for LaneHeader {}
// SAFETY: repr(C) of two atomics.
unsafe impl Shared for LaneSlot {}

const HEAD: u64 = size_of::<PipeHead>() as u64;
/// The lane's header, after the pipe's head in a lane pipe's block.
const LANE_HEAD: u64 = size_of::<LaneHeader>() as u64;

/// Bytes of a pipe block of `capacity` slots, of the kind `lane` says.
fn block_len(lane: bool, capacity: u64) -> u64 {
    if lane {
        HEAD + LANE_HEAD + capacity * size_of::<LaneSlot>() as u64
    } else {
        HEAD + capacity * 8
    }
}

/// A function asked every `micro_sleep` while a blocking call waits; `true` stops the
/// wait with a `Broken` error.
pub type BreakChecker = Arc<dyn Fn() -> bool + Send + Sync>;

/// A bounded queue of value handles in a pool block.
///
/// A counted handle: cloning adds a reference to the block (in shared memory, so it
/// counts across processes), dropping removes one, and the last reference, whichever
/// process drops it, drops the values still queued and frees the block. Every operation
/// resolves the block through the region's bounds check and checks its magic and
/// generation.
#[must_use = "dropping a pipe handle gives up its reference"]
pub struct Pipe {
    pool: Pool,
    off: Offset,
    cap: u64,
    generation: u64,
    brk: Option<BreakChecker>,
    micro_sleep: Duration,
    /// What a wait notice calls the pipe (`pipe NAME in region NAME`).
    label: Option<Arc<str>>,
    /// After how long an unbounded wait says so on standard error (`None`: never).
    notice_after: Option<Duration>,
    /// Whether this handle has sent ([`SENT`]) or received ([`RECEIVED`]): it is then one
    /// of the pipe's sending or receiving ends until it is dropped.
    ends: AtomicU8,
    /// A child forked from the process that made this handle does not drop its count.
    made_in: MadeIn,
    /// The ledger entry recording this handle's counts (null: not recorded).
    entry: Offset,
    /// Whether the pipe is a lane (one-to-one).
    lane: bool,
    /// This handle, among the process's (a lane's side names the handle holding it).
    id: u64,
    /// A lane has one sender and one receiver: threads sharing this handle take turns.
    send_turn: turn::Turn,
    recv_turn: turn::Turn,
}

/// [`Pipe::ends`]: this handle has sent.
const SENT: u8 = 1;
/// [`Pipe::ends`]: this handle has received.
const RECEIVED: u8 = 2;
/// [`Pipe::ends`]: this handle holds a lane's sending side.
const SENDS: u8 = 4;
/// [`Pipe::ends`]: this handle holds a lane's receiving side.
const RECEIVES: u8 = 8;

/// After how long an unbounded `enq` or `deq` says on standard error what it waits for.
pub const DEFAULT_NOTICE_AFTER: Duration = Duration::from_secs(10);

impl std::fmt::Debug for Pipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipe")
            .field("offset", &self.off)
            .field("capacity", &self.cap)
            .field("break_checker", &self.brk.is_some())
            .finish()
    }
}

/// A generation no earlier pipe block at the same offset is likely to have had.
fn random_generation(pool: &Pool) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    pool.region().id().hash(&mut h);
    Os::now_ns().hash(&mut h);
    h.finish() | 1
}

impl Pipe {
    /// Allocates and formats a pipe of `capacity` slots in `pool`; the handle returned
    /// holds its only reference. Waits for the pool lock as long as a live thread holds it.
    ///
    /// # Errors
    ///
    /// [`PipeError::BadCapacity`] for 0 or more than [`MAX_CAPACITY`];
    /// [`PipeError::Alloc`] if the pool has no room.
    pub fn create(pool: &Pool, capacity: u64) -> Result<Pipe, PipeError> {
        Self::create_by(pool, capacity, PipeKind::default(), None)
    }

    /// [`create`](Self::create) of a one-to-one pipe: one handle at a time sends on it
    /// and one receives from it (another gets `Taken`), and a hand-off takes no lock.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create).
    pub fn create_one_to_one(pool: &Pool, capacity: u64) -> Result<Pipe, PipeError> {
        let kind = PipeKind {
            one_to_one: true,
            ..PipeKind::default()
        };
        Self::create_by(pool, capacity, kind, None)
    }

    /// [`create`](Self::create), giving up at `deadline` (if any) while a live thread
    /// holds the pool lock ([`AllocError::TimedOut`](crate::alloc::AllocError::TimedOut)).
    pub(crate) fn create_by(
        pool: &Pool,
        capacity: u64,
        kind: PipeKind,
        deadline: Option<Instant>,
    ) -> Result<Pipe, PipeError> {
        let PipeKind {
            kept,
            redeliver,
            one_to_one,
        } = kind;
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(PipeError::BadCapacity(capacity));
        }
        if one_to_one && redeliver {
            return Err(PipeError::BadPipe(
                "a one-to-one pipe cannot redeliver: the dead receiver's values would need a \
                 second sender",
            ));
        }
        let len = block_len(one_to_one, capacity);
        // Recorded from before the allocation (see `tracked::begin_block`): a death before
        // the pipe's first reference is recorded frees the bare block.
        let rec = tracked::begin_block(pool, Offset::NULL, Offset::NULL);
        let off = match tracked::alloc_block_by(pool, rec.as_ref(), len, 64, false, deadline) {
            Ok(off) => off,
            Err(e) => {
                tracked::end_block(pool, rec);
                return Err(e.into());
            }
        };
        let formatted = (|| {
            let region = pool.region();
            let head: &PipeHead = region.at(off)?;
            for w in region.at_slice::<AtomicU64>(off, len / 8)? {
                w.store(0, Ordering::Relaxed);
            }
            head.ring.init(capacity);
            if kept {
                head.ring.keep();
            }
            if redeliver {
                head.ring.redeliver();
            }
            head.kind.store(
                if one_to_one { KIND_LANE } else { KIND_RING },
                Ordering::Relaxed,
            );
            if one_to_one {
                let (lane_hdr, slots) = lane_parts(pool, off, capacity)?;
                lane_hdr.init(capacity);
                Lane::new(lane_hdr, slots)
                    .map_err(|_| PipeError::BadPipe("capacity changed"))?
                    .format();
            }
            let generation = random_generation(pool);
            head.generation.store(generation, Ordering::Relaxed);
            head.refs.store(1, Ordering::Relaxed);
            // SYNC POINT: the release store publishes the formatted block to whoever reads
            // the magic with acquire (Pipe::open).
            head.magic.store(PIPE_MAGIC, Ordering::Release);
            Ok::<u64, PipeError>(generation)
        })();
        let generation = match formatted {
            Ok(g) => g,
            Err(e) => {
                // SAFETY: the block was allocated above and its offset has not left this
                // function: nothing refers to it.
                let _ = unsafe { tracked::free_block(pool, rec.as_ref(), off) };
                tracked::end_block(pool, rec);
                return Err(e);
            }
        };
        crate::fault::pause_point("pipe.create.formatted");
        // The same entry now records the pipe's first reference (it names the block until
        // then, so a death at any step gives the block back).
        let entry = rec.map_or(Offset::NULL, |e| {
            recorded::record_pipe(e, off, generation, true);
            e.offset()
        });
        Ok(Pipe::handle(pool, off, capacity, generation, entry))
    }

    /// A handle of the pipe at `off` for the reference `entry` records (or none), with
    /// the default options.
    fn handle(pool: &Pool, off: Offset, cap: u64, generation: u64, entry: Offset) -> Pipe {
        let lane = pool
            .region()
            .at::<PipeHead>(off)
            .is_ok_and(|h| h.kind.load(Ordering::Relaxed) == KIND_LANE);
        Pipe {
            pool: pool.clone(),
            off,
            cap,
            generation,
            brk: None,
            micro_sleep: DEFAULT_MICRO_SLEEP,
            label: None,
            notice_after: Some(DEFAULT_NOTICE_AFTER),
            ends: AtomicU8::new(0),
            made_in: MadeIn::this_process(),
            entry,
            lane,
            id: crate::sync::unique_id(),
            send_turn: turn::Turn::default(),
            recv_turn: turn::Turn::default(),
        }
    }

    /// Makes and records one more reference to the pipe block at `off` (whose head is
    /// `head`), for a new handle: the entry says the count is moving while it goes up.
    fn count_new_ref(pool: &Pool, off: Offset, head: &PipeHead) -> Offset {
        let generation = head.generation.load(Ordering::Relaxed);
        let Some(e) = recorded::ledger_of(pool).and_then(|l| l.take(pool)) else {
            head.refs.fetch_add(1, Ordering::Relaxed);
            return Offset::NULL;
        };
        recorded::record_pipe(e, off, generation, false);
        // As `Arc::clone`: a new reference made from one that keeps the block alive.
        head.refs.fetch_add(1, Ordering::Relaxed);
        e.set(crate::ledger::E_INDEX, crate::ledger::flags::HELD_REF);
        e.offset()
    }

    /// The ledger entry of this handle, if recorded.
    fn entry(&self) -> Option<crate::ledger::Entry<'_>> {
        crate::ledger::Entry::at(self.pool.region(), self.entry)
    }

    /// Drops a reference a dead process's handle held to the pipe at `off` (a reclaimer,
    /// which checked that the dead process's handle kept it alive), destroying the pipe
    /// if it was the last.
    pub(crate) fn drop_dead_ref(pool: &Pool, off: Offset, generation: u64) {
        let Ok(head) = pool.region().at::<PipeHead>(off) else {
            return;
        };
        let cap = head.ring.capacity();
        if head.magic.load(Ordering::Acquire) != PIPE_MAGIC
            || head.generation.load(Ordering::Relaxed) != generation
            || cap == 0
            || cap > MAX_CAPACITY
        {
            return;
        }
        // A handle that takes the dead reference over, and lets it go.
        drop(Pipe::handle(pool, off, cap, generation, Offset::NULL));
    }

    /// A new handle to the pipe at `off`: one more reference to it.
    ///
    /// # Errors
    ///
    /// [`PipeError::BadPipe`] if the block is not a formatted pipe or its capacity does
    /// not fit the block.
    ///
    /// # Safety
    ///
    /// The pipe at `off` is kept alive meanwhile by a reference that cannot go away during
    /// the call (a handle, or a directory entry read under the directory's lock), so its
    /// block is not freed and reused (its bytes then written as another value's payload)
    /// while this reads it.
    pub unsafe fn open(pool: &Pool, off: Offset) -> Result<Pipe, PipeError> {
        let head: &PipeHead = pool.region().at(off)?;
        if head.magic.load(Ordering::Acquire) != PIPE_MAGIC {
            return Err(PipeError::BadPipe("no pipe magic at the offset"));
        }
        let cap = head.ring.capacity();
        if cap == 0 || cap > MAX_CAPACITY {
            return Err(PipeError::BadPipe("capacity out of range"));
        }
        let usable = pool.usable_size_unlocked(off)?;
        if block_len(head.kind.load(Ordering::Relaxed) == KIND_LANE, cap) > usable {
            return Err(PipeError::BadPipe("capacity larger than the block"));
        }
        let refs = head.refs.load(Ordering::Relaxed);
        if refs == 0 || refs > MAX_REFS {
            return Err(PipeError::BadPipe("reference count out of range"));
        }
        let entry = Self::count_new_ref(pool, off, head);
        let generation = head.generation.load(Ordering::Relaxed);
        let pipe = Pipe::handle(pool, off, cap, generation, entry);
        pipe.queue()?;
        Ok(pipe)
    }

    /// Gives up this handle's reference for a directory entry to hold instead, and returns
    /// the block's offset.
    pub(crate) fn into_listed(mut self) -> Offset {
        if let Some(e) = self.entry() {
            // The reference is the listing's now (a death until it is listed leaves it
            // counted: the pipe is kept, never freed under a listing).
            e.set_kind(crate::ledger::Kind::Free);
            if let Some(l) = crate::ledger::Ledger::of(self.pool.region()) {
                l.put(e);
            }
        }
        self.entry = Offset::NULL;
        // A capacity of 0 tells `drop` that the reference was given up.
        self.cap = 0;
        self.off
    }

    /// Drops a reference held by a directory entry for the pipe at `off` (the entry no
    /// longer lists it), destroying the pipe if it was the last.
    ///
    /// # Safety
    ///
    /// The caller held one of the pipe's references (the entry's), and gives it up here.
    pub(crate) unsafe fn release_listed(pool: &Pool, off: Offset) -> Result<(), PipeError> {
        // SAFETY: the entry's reference keeps the pipe alive until it is given up below.
        let pipe = unsafe { Pipe::open(pool, off) }?;
        let head = pipe.head()?;
        // Hand the entry's reference to `pipe`, whose drop lets go of it.
        head.refs.fetch_sub(1, Ordering::Relaxed);
        drop(pipe);
        Ok(())
    }

    /// This pipe with a break checker: blocking calls wake every `micro_sleep` to ask it,
    /// and end with a `Broken` error when it says so.
    pub fn with_break_checker(mut self, brk: Option<BreakChecker>, micro_sleep: Duration) -> Pipe {
        self.brk = brk;
        self.micro_sleep = micro_sleep.max(Duration::from_micros(100));
        self
    }

    /// Counts this handle as one of the pipe's sending ends from now until it is dropped
    /// (a handle that sends is counted from its first send anyway). While a pipe that is not
    /// kept has sending ends, its receivers wait for more; once the last has gone and the
    /// pipe is empty, they get `Disconnected`
    /// ([`RecvTimeoutError::Disconnected`](super::RecvTimeoutError::Disconnected)).
    ///
    /// On a one-to-one pipe it does not take the sending side: the first send does.
    pub fn count_as_sender(&self) {
        if let Ok(q) = self.queue() {
            self.count_as_sender_in(&q);
        }
    }

    fn count_as_sender_in(&self, q: &Queue<'_>) {
        if self.ends.load(Ordering::Relaxed) & SENT == 0
            && self.ends.fetch_or(SENT, Ordering::Relaxed) & SENT == 0
        {
            recorded::count_change(self.entry(), flags::HELD_SENDER, true, || q.add_sender());
        }
    }

    /// Whether this handle holds `side` of the pipe's lane, taking it if it is free (or
    /// its holder's process is dead); always `true` on a ring.
    fn take_side(&self, q: &Queue<'_>, side: Side) -> bool {
        let Some(lane) = q.lane() else {
            return true;
        };
        let bit = match side {
            Side::Sender => SENDS,
            Side::Receiver => RECEIVES,
        };
        if self.ends.load(Ordering::Relaxed) & bit != 0 {
            return true;
        }
        let region = &**self.pool.region();
        match lane.claim(side, crate::sync::process_owner(), self.id, Some(region)) {
            Claim::Mine => {
                self.ends.fetch_or(bit, Ordering::Relaxed);
                true
            }
            Claim::Held => false,
        }
    }

    /// Whether the pipe is one-to-one (a lane: one sending and one receiving handle at a
    /// time, hand-offs without a lock).
    pub fn is_one_to_one(&self) -> bool {
        self.lane
    }

    /// This pipe with a name for its wait notices, and when they come: an `enq` or `deq`
    /// that has waited `after` says on standard error what it waits for, once (`None`:
    /// never).
    pub fn with_notice(mut self, label: impl Into<Arc<str>>, after: Option<Duration>) -> Pipe {
        self.label = Some(label.into());
        self.notice_after = after;
        self
    }

    /// The pool the pipe lives in.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The pipe block's offset: how other processes find it.
    pub fn offset(&self) -> Offset {
        self.off
    }

    /// Slots in the pipe.
    pub fn capacity(&self) -> u64 {
        self.cap
    }

    /// The block's head, checked to still be this pipe's (magic and generation).
    #[inline]
    fn head(&self) -> Result<&PipeHead, PipeError> {
        let head: &PipeHead = self.pool.region().at(self.off)?;
        if head.magic.load(Ordering::Acquire) != PIPE_MAGIC
            || head.generation.load(Ordering::Relaxed) != self.generation
        {
            return Err(PipeError::BadPipe("the pipe's block no longer holds it"));
        }
        Ok(head)
    }

    /// The queue view, resolved through the region's bounds check.
    ///
    /// # Errors
    ///
    /// [`PipeError::BadPipe`] if the block no longer checks out.
    #[inline(always)]
    pub(crate) fn queue(&self) -> Result<Queue<'_>, PipeError> {
        let head = self.head()?;
        queue_in(&self.pool, self.off, head, self.cap, self.lane)
    }

    /// References to the pipe now: handles in every process and directory entries (a
    /// snapshot).
    pub fn ref_count(&self) -> u64 {
        self.head().map_or(0, |h| h.refs.load(Ordering::Relaxed))
    }

    /// The last reference went: drop what is queued, then free the block.
    fn destroy(&self) -> Result<(), PipeError> {
        let head = self.head()?;
        if let Ok(q) = self.queue() {
            q.close();
            q.drain(|item| {
                // SAFETY: each item is a reference a sender gave up into the pipe, and
                // nobody else can take it: no other reference to the pipe remains.
                drop(unsafe { ShmVal::from_raw_unrecorded(&self.pool, Offset::new(item)) });
            });
        }
        head.magic.store(0, Ordering::Release);
        head.generation.store(0, Ordering::Relaxed);
        // SAFETY: the count reached zero: no handle or entry refers to the block.
        unsafe { self.pool.free_soon(self.off, false) }?;
        Ok(())
    }
}

/// How [`Pipe::create_by`] makes a pipe.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PipeKind {
    /// Senders come and go: receivers are never told that every sender has gone
    /// ([`RecvFail::Disconnected`]).
    pub(crate) kept: bool,
    /// A dead receiver's values go back into the pipe.
    pub(crate) redeliver: bool,
    /// One sending and one receiving handle at a time: a lane instead of the ring.
    pub(crate) one_to_one: bool,
}

/// Counts above this are not plausible (no process holds 2^48 handles).
const MAX_REFS: u64 = 1 << 48;

impl Clone for Pipe {
    /// Another handle to the same pipe: one more reference (a relaxed increment).
    fn clone(&self) -> Pipe {
        let entry = match self.head() {
            Ok(head) => Self::count_new_ref(&self.pool, self.off, head),
            Err(_) => Offset::NULL,
        };
        Pipe {
            pool: self.pool.clone(),
            off: self.off,
            cap: self.cap,
            generation: self.generation,
            brk: self.brk.clone(),
            micro_sleep: self.micro_sleep,
            label: self.label.clone(),
            notice_after: self.notice_after,
            ends: AtomicU8::new(0),
            made_in: MadeIn::this_process(),
            entry,
            lane: self.lane,
            id: crate::sync::unique_id(),
            send_turn: turn::Turn::default(),
            recv_turn: turn::Turn::default(),
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        if !self.made_in.is_this_process() || self.cap == 0 {
            return;
        }
        let Ok(head) = self.head() else { return };
        let entry = self.entry();
        let ends = self.ends.load(Ordering::Relaxed);
        if ends != 0 {
            if let Ok(q) = self.queue() {
                if let Some(lane) = q.lane() {
                    // The sides first: a receiver told that every sender has gone may then
                    // find the sending side free.
                    let me = crate::sync::process_owner();
                    if ends & SENDS != 0 {
                        lane.release(Side::Sender, me, self.id);
                    }
                    if ends & RECEIVES != 0 {
                        lane.release(Side::Receiver, me, self.id);
                    }
                }
                if ends & SENT != 0 {
                    recorded::count_change(entry, flags::HELD_SENDER, false, || q.drop_sender());
                }
                if ends & RECEIVED != 0 {
                    recorded::count_change(entry, flags::HELD_RECEIVER, false, || {
                        q.drop_receiver()
                    });
                }
            }
        }
        let mut last = false;
        recorded::count_change(entry, flags::HELD_REF, false, || {
            // SYNC POINT: release, so this handle's uses happen before the destroy; the
            // last decrement acquires everyone else's (as `Arc`'s drop).
            last = head.refs.fetch_sub(1, Ordering::Release) == 1;
        });
        if let Some(e) = entry {
            e.set_kind(crate::ledger::Kind::Free);
            if let Some(l) = crate::ledger::Ledger::of(self.pool.region()) {
                l.put(e);
            }
        }
        if last {
            fence(Ordering::Acquire);
            let _ = self.destroy();
        }
    }
}
