//! The queue inside a pipe block, behind one set of calls: the ring (any number of
//! sending and receiving handles, one lock) or the lane (one sending and one receiving
//! handle at a time, no lock). A lane pipe keeps its ends' counts and flags in the ring
//! header it also has, and its items in the lane.

use super::super::error::{PipeError, RecvFail, SendFail};
use super::super::lane::{Lane, LaneHeader, LaneSlot};
use super::super::ring::{OpRecord, PipeStats, Ring, RingHeader, Wait};
use super::{block_len, PipeHead, HEAD, KIND_LANE, MAX_CAPACITY, PIPE_MAGIC};
use crate::alloc::Pool;
use crate::region::Offset;
use crate::sync::atomic::{AtomicU64, Ordering};

/// A pipe's queue, as a view of its block.
pub(crate) enum Queue<'a> {
    Ring(Ring<'a>),
    Lane {
        lane: Lane<'a>,
        ends: &'a RingHeader,
    },
}

impl<'a> Queue<'a> {
    /// The ring, if the pipe has one (recovery takes its lock).
    pub(crate) fn ring(&self) -> Option<&Ring<'a>> {
        match self {
            Queue::Ring(r) => Some(r),
            Queue::Lane { .. } => None,
        }
    }

    /// The lane, if the pipe is one.
    pub(crate) fn lane(&self) -> Option<&Lane<'a>> {
        match self {
            Queue::Ring(_) => None,
            Queue::Lane { lane, .. } => Some(lane),
        }
    }

    pub(crate) fn send(
        &self,
        item: u64,
        wait: Wait,
        rec: Option<&dyn OpRecord>,
    ) -> Result<(), SendFail<u64>> {
        match self {
            Queue::Ring(r) => r.send_recorded(item, wait, rec),
            Queue::Lane { lane, ends } => {
                let r = lane.send(item, wait, rec);
                if matches!(r, Err(SendFail::Timeout(_))) {
                    ends.count_timeout();
                }
                r
            }
        }
    }

    pub(crate) fn recv_many(
        &self,
        wait: Wait,
        max: usize,
        f: impl FnMut(u64),
        rec: Option<&dyn OpRecord>,
    ) -> Result<usize, RecvFail> {
        match self {
            Queue::Ring(r) => r.recv_many_recorded(wait, max, f, rec),
            Queue::Lane { lane, ends } => {
                let gone = || ends.senders_gone();
                let r = (*lane).with_gone(&gone).recv_many(wait, max, f, rec);
                if r == Err(RecvFail::Timeout) {
                    ends.count_timeout();
                }
                r
            }
        }
    }

    /// Whether the queue looked empty (open, sound, with senders), without waiting.
    pub(crate) fn looks_empty(&self) -> bool {
        match self {
            Queue::Ring(r) => r.looks_empty(),
            Queue::Lane { lane, ends } => {
                let gone = || ends.senders_gone();
                (*lane).with_gone(&gone).looks_empty()
            }
        }
    }

    pub(crate) fn redelivers(&self) -> bool {
        match self {
            Queue::Ring(r) => r.redelivers(),
            Queue::Lane { ends, .. } => ends.redelivers(),
        }
    }

    pub(crate) fn len(&self) -> u64 {
        match self {
            Queue::Ring(r) => r.len(),
            Queue::Lane { lane, .. } => lane.len(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Queue::Ring(r) => r.is_closed(),
            Queue::Lane { lane, .. } => lane.is_closed(),
        }
    }

    pub(crate) fn close(&self) {
        match self {
            Queue::Ring(r) => r.close(),
            Queue::Lane { lane, .. } => lane.close(),
        }
    }

    /// Removes every item left, calling `f` on each (the last reference's drop).
    pub(crate) fn drain(&self, mut f: impl FnMut(u64)) {
        match self {
            Queue::Ring(r) => r.drain(f),
            Queue::Lane { lane, .. } => {
                while let Ok(item) = lane.recv(Wait::No, None) {
                    f(item)
                }
            }
        }
    }

    pub(crate) fn add_sender(&self) {
        match self {
            Queue::Ring(r) => r.add_sender(),
            Queue::Lane { ends, .. } => ends.add_sender(),
        }
    }

    /// A sending end went: the last one wakes the receivers, which then see the pipe
    /// without senders once it is empty.
    pub(crate) fn drop_sender(&self) {
        match self {
            Queue::Ring(r) => r.drop_sender(),
            Queue::Lane { lane, ends } => {
                if ends.take_sender() {
                    lane.wake_receiver();
                }
            }
        }
    }

    pub(crate) fn add_receiver(&self) {
        match self {
            Queue::Ring(r) => r.add_receiver(),
            Queue::Lane { ends, .. } => ends.add_receiver(),
        }
    }

    pub(crate) fn drop_receiver(&self) {
        match self {
            Queue::Ring(r) => r.drop_receiver(),
            Queue::Lane { ends, .. } => ends.take_receiver(),
        }
    }

    pub(crate) fn stats(&self) -> PipeStats {
        match self {
            Queue::Ring(r) => r.stats(),
            Queue::Lane { lane, ends } => {
                let (tail, head) = lane.counts();
                let (senders, receivers, timeouts) = ends.ends_now();
                let (receiver_sleeps, sender_sleeps) = lane.sleepers();
                PipeStats {
                    capacity: ends.capacity(),
                    len: lane.len(),
                    enqueued: tail,
                    dequeued: head,
                    timeouts,
                    receivers_waiting: u32::from(receiver_sleeps),
                    senders_waiting: u32::from(sender_sleeps),
                    senders,
                    receivers,
                    disconnected: ends.senders_gone(),
                    closed: lane.is_closed(),
                    poisoned: lane.is_poisoned(),
                }
            }
        }
    }
}

/// The queue of the pipe block at `off` whose generation is `generation`, checked as a
/// handle's: magic, generation, capacity within the block.
///
/// # Errors
///
/// [`PipeError::BadPipe`] if the block does not hold that pipe.
pub(crate) fn queue_of(pool: &Pool, off: Offset, generation: u64) -> Result<Queue<'_>, PipeError> {
    let head: &PipeHead = pool.region().at(off)?;
    if head.magic.load(Ordering::Acquire) != PIPE_MAGIC
        || head.generation.load(Ordering::Relaxed) != generation
    {
        return Err(PipeError::BadPipe("the pipe's block no longer holds it"));
    }
    let cap = head.ring.capacity();
    if cap == 0 || cap > MAX_CAPACITY {
        return Err(PipeError::BadPipe("capacity out of range"));
    }
    let lane = head.kind.load(Ordering::Relaxed) == KIND_LANE;
    // As a handle's open checks it: the kind and capacity fit the block, so a view never
    // reaches into the next one.
    if block_len(lane, cap) > pool.usable_size_unlocked(off)? {
        return Err(PipeError::BadPipe("capacity larger than the block"));
    }
    queue_in(pool, off, head, cap, lane)
}

/// The queue of the pipe block at `off` (whose head is `head`) of `cap` slots, a lane if
/// `lane`: its parts resolved through the region's bounds check.
#[inline(always)]
pub(super) fn queue_in<'a>(
    pool: &'a Pool,
    off: Offset,
    head: &'a PipeHead,
    cap: u64,
    lane: bool,
) -> Result<Queue<'a>, PipeError> {
    const CHANGED: PipeError = PipeError::BadPipe("capacity changed");
    if lane {
        let (hdr, slots) = lane_parts(pool, off, cap)?;
        return Ok(Queue::Lane {
            lane: Lane::new(hdr, slots).map_err(|_| CHANGED)?,
            ends: &head.ring,
        });
    }
    let region = pool.region();
    let slots = region.at_slice::<AtomicU64>(
        off.checked_add(HEAD)
            .ok_or(PipeError::BadPipe("offset overflows"))?,
        cap,
    )?;
    Ring::new(&head.ring, slots)
        .map(|r| Queue::Ring(r.with_resolver(&**region)))
        .map_err(|_| CHANGED)
}

/// The lane header and slots of the lane pipe block at `off` of `cap` slots.
#[inline(always)]
pub(super) fn lane_parts(
    pool: &Pool,
    off: Offset,
    cap: u64,
) -> Result<(&LaneHeader, &[LaneSlot]), PipeError> {
    let at = off
        .checked_add(HEAD)
        .ok_or(PipeError::BadPipe("offset overflows"))?;
    Ok(pool
        .region()
        .at_then_slice::<LaneHeader, LaneSlot>(at, cap)?)
}
