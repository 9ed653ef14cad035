//! [`Pipe`]: a [`Ring`] living in a pool block, counted like an `Arc`.
//!
//! A pipe block holds a small head (the ring header, magic, a generation and a reference
//! count) followed by the slots. Items are 64-bit words; the value layer stores handle
//! offsets in them, one reference each, so a handle moves through a pipe without its
//! refcount changing.
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

use super::error::{
    PipeError, RecvError, RecvFail, RecvTimeoutError, SendError, SendFail, SendTimeoutError,
    TryRecvError, TrySendError,
};
use super::recorded;
use super::ring::{PipeStats, Ring, RingHeader};
use crate::alloc::Pool;
use crate::ledger::flags;
use crate::region::{Offset, Shared};
use crate::sync::atomic::{fence, AtomicU64, AtomicU8, Ordering};
use crate::sync::{MadeIn, Os, Owner, Platform};
use crate::val::shared::{tracked, ShmVal};

mod transfer;

use transfer::{timeout_error, try_error, Limit};

/// "SHMPIPE3", little-endian: marks a formatted pipe block of this layout.
const PIPE_MAGIC: u64 = u64::from_le_bytes(*b"SHMPIPE3");

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
}

// SAFETY: repr(C) of atomics and a RingHeader (itself repr(C) atomics, a ShmMutex and two
// ShmCondvars, all valid for any bits and mutated only atomically).
unsafe impl Shared for PipeHead {}
// SAFETY: as above: repr(C) atomics, locks and condvars only.
unsafe impl Shared for RingHeader {}

const HEAD: u64 = size_of::<PipeHead>() as u64;

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
}

/// [`Pipe::ends`]: this handle has sent.
const SENT: u8 = 1;
/// [`Pipe::ends`]: this handle has received.
const RECEIVED: u8 = 2;

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
        Self::create_by(pool, capacity, false, false, None)
    }

    /// [`create`](Self::create), giving up at `deadline` (if any) while a live thread
    /// holds the pool lock ([`AllocError::TimedOut`](crate::alloc::AllocError::TimedOut)).
    /// A `kept` pipe is one whose senders come and go: its receivers are never told that
    /// every sender has gone ([`RecvFail::Disconnected`]).
    pub(crate) fn create_by(
        pool: &Pool,
        capacity: u64,
        kept: bool,
        redeliver: bool,
        deadline: Option<Instant>,
    ) -> Result<Pipe, PipeError> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(PipeError::BadCapacity(capacity));
        }
        let len = HEAD + capacity * 8;
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
        if HEAD + cap * 8 > usable {
            return Err(PipeError::BadPipe("capacity larger than the block"));
        }
        let refs = head.refs.load(Ordering::Relaxed);
        if refs == 0 || refs > MAX_REFS {
            return Err(PipeError::BadPipe("reference count out of range"));
        }
        let entry = Self::count_new_ref(pool, off, head);
        let generation = head.generation.load(Ordering::Relaxed);
        let pipe = Pipe::handle(pool, off, cap, generation, entry);
        pipe.ring()?;
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
    /// pipe is empty, they get `Disconnected` ([`RecvTimeoutError::Disconnected`]).
    pub fn count_as_sender(&self) {
        if let Ok(ring) = self.ring() {
            self.count_as_sender_in(&ring);
        }
    }

    fn count_as_sender_in(&self, ring: &Ring<'_>) {
        if self.ends.load(Ordering::Relaxed) & SENT == 0
            && self.ends.fetch_or(SENT, Ordering::Relaxed) & SENT == 0
        {
            recorded::count_change(self.entry(), flags::HELD_SENDER, true, || ring.add_sender());
        }
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

    /// The ring view, resolved through the region's bounds check.
    ///
    /// # Errors
    ///
    /// [`PipeError::BadPipe`] if the block no longer checks out.
    #[inline(always)]
    pub(crate) fn ring(&self) -> Result<Ring<'_>, PipeError> {
        let head = self.head()?;
        let slots = self.pool.region().at_slice::<AtomicU64>(
            self.off
                .checked_add(HEAD)
                .ok_or(PipeError::BadPipe("offset overflows"))?,
            self.cap,
        )?;
        Ring::new(&head.ring, slots)
            .map(|r| r.with_resolver(&**self.pool.region()))
            .map_err(|_| PipeError::BadPipe("capacity changed"))
    }

    /// References to the pipe now: handles in every process and directory entries (a
    /// snapshot).
    pub fn ref_count(&self) -> u64 {
        self.head().map_or(0, |h| h.refs.load(Ordering::Relaxed))
    }

    /// The last reference went: drop what is queued, then free the block.
    fn destroy(&self) -> Result<(), PipeError> {
        let head = self.head()?;
        if let Ok(ring) = self.ring() {
            ring.close();
            ring.drain(|item| {
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

/// The ring of the pipe block at `off` whose generation is `generation`, checked as a
/// handle's: magic, generation, capacity within the block.
///
/// # Errors
///
/// [`PipeError::BadPipe`] if the block does not hold that pipe.
pub(crate) fn ring_of(pool: &Pool, off: Offset, generation: u64) -> Result<Ring<'_>, PipeError> {
    let region = pool.region();
    let head: &PipeHead = region.at(off)?;
    if head.magic.load(Ordering::Acquire) != PIPE_MAGIC
        || head.generation.load(Ordering::Relaxed) != generation
    {
        return Err(PipeError::BadPipe("the pipe's block no longer holds it"));
    }
    let cap = head.ring.capacity();
    if cap == 0 || cap > MAX_CAPACITY {
        return Err(PipeError::BadPipe("capacity out of range"));
    }
    let slots = region.at_slice::<AtomicU64>(
        off.checked_add(HEAD)
            .ok_or(PipeError::BadPipe("offset overflows"))?,
        cap,
    )?;
    Ring::new(&head.ring, slots)
        .map(|r| r.with_resolver(&**region))
        .map_err(|_| PipeError::BadPipe("capacity changed"))
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
            if let Ok(ring) = self.ring() {
                if ends & SENT != 0 {
                    recorded::count_change(entry, flags::HELD_SENDER, false, || ring.drop_sender());
                }
                if ends & RECEIVED != 0 {
                    recorded::count_change(entry, flags::HELD_RECEIVER, false, || {
                        ring.drop_receiver()
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
    /// live process holds its lock now), `Closed`, `WrongRegion`, `Corrupted`.
    pub fn try_enqueue(&self, v: ShmVal) -> Result<(), TrySendError<ShmVal>> {
        self.send_val(v, Limit::Once).map_err(|e| match e {
            SendFail::Full(v) | SendFail::Timeout(v) => TrySendError::Full(v),
            SendFail::Closed(v) => TrySendError::Closed(v),
            SendFail::WrongRegion(v) => TrySendError::WrongRegion(v),
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
    /// [`TryRecvError::Empty`] (empty, or a live process holds its lock now), `Closed`,
    /// `Disconnected`, `Corrupted`.
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
        self.ring().map_or(0, |r| r.len())
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
        self.ring()?.close();
        Ok(())
    }

    /// Whether the pipe has been closed.
    pub fn is_closed(&self) -> bool {
        match self.ring() {
            Ok(r) => r.is_closed(),
            Err(_) => true,
        }
    }

    /// The thread holding the pipe's lock now, if any (a snapshot, for diagnostics and
    /// crash tests: its [`tid`](Owner::tid) is the pid of a single-threaded holder).
    pub fn lock_owner(&self) -> Option<Owner> {
        self.ring().ok()?.lock_owner()
    }

    /// Counters: items sent and received, timeouts, waiters on each side, depth.
    ///
    /// # Errors
    ///
    /// [`PipeError::BadPipe`] if the block no longer checks out.
    pub fn stats(&self) -> Result<PipeStats, PipeError> {
        Ok(self.ring()?.stats())
    }
}
