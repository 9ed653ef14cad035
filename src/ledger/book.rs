//! [`Ledger`]: this process's entries in a region: chunks of them in the pool, listed
//! from the process's registry slot, and a free list of the unused ones.

use std::any::Any;
use std::sync::Mutex;

use super::entry::{Entry, Kind, ENTRY_BYTES, E_NEXT};
use crate::alloc::Pool;
use crate::region::{ExtLayer, Offset, Region, RegionExt};
use crate::sync::atomic::{AtomicU64, Ordering};

/// Bytes of a chunk: a header line, then [`PER_CHUNK`] entries.
pub(crate) const CHUNK_BYTES: u64 = 1024;
/// Entries in a chunk.
pub(crate) const PER_CHUNK: u64 = CHUNK_BYTES / ENTRY_BYTES - 1;
/// "SHMLEDG1", little-endian: the second word of every chunk.
pub(crate) const CHUNK_MAGIC: u64 = u64::from_le_bytes(*b"SHMLEDG1");

/// Chunk header words: the next chunk of the process (0: the last), the magic.
pub(crate) const C_NEXT: usize = 0;
pub(crate) const C_MAGIC: usize = 1;

/// How often at most a process looks for dead processes on its own (besides when it
/// takes a lock over from one, attaches, or wakes from a wait).
const SCAN_EVERY_NS: u64 = 50_000_000;

/// The low bits of the free list's head: an entry's offset / 64; the rest count pops, so
/// that a head seen before a pop and a push of the same entry no longer matches.
const IDX_BITS: u32 = 40;
const IDX_MASK: u64 = (1 << IDX_BITS) - 1;

/// This process's entries in one region (kept with the region handle).
///
/// Entries are taken and given back only by this process, without a lock: a free list
/// whose head carries a counter against the ABA problem. Growing (a new chunk from the
/// pool) takes a process-local mutex.
pub(crate) struct Ledger {
    free: AtomicU64,
    grow: Mutex<()>,
    next_scan: AtomicU64,
    /// Nonzero while a thread of this process reclaims (no nested reclaiming).
    pub(super) reaping: AtomicU64,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").finish_non_exhaustive()
    }
}

/// The coarse monotonic clock, in ns: a few ns to read, precise to a few ms.
pub(crate) fn coarse_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given; CLOCK_MONOTONIC_COARSE exists
    // on every Linux since 2.6.32.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

impl Ledger {
    fn new() -> Ledger {
        Ledger {
            free: AtomicU64::new(0),
            grow: Mutex::new(()),
            next_scan: AtomicU64::new(0),
            reaping: AtomicU64::new(0),
        }
    }

    /// This process's ledger for `region`, if the handle is registered in its registry
    /// (and was made in this process: a forked child's copy records nothing).
    #[inline]
    pub(crate) fn of(region: &Region) -> Option<&Ledger> {
        region.process_slot()?;
        region
            .ext_or_init(ExtLayer::Ledger, || Box::new(Ledger::new()))
            .as_any()
            .downcast_ref::<Ledger>()
    }

    /// A free entry (recording [`Kind::Free`]), or `None` if the pool has no room for
    /// another chunk. Looks for dead processes first when it is time to.
    #[inline]
    pub(crate) fn take<'a>(&self, pool: &'a Pool) -> Option<Entry<'a>> {
        self.maybe_reap(pool);
        loop {
            if let Some(e) = self.pop(pool.region()) {
                return Some(e);
            }
            if !self.grow(pool) {
                return None;
            }
        }
    }

    /// A free entry without looking for dead processes first: for callers that hold a
    /// lock a reclaimer may need.
    pub(crate) fn take_quiet<'a>(&self, pool: &'a Pool) -> Option<Entry<'a>> {
        loop {
            if let Some(e) = self.pop(pool.region()) {
                return Some(e);
            }
            if !self.grow(pool) {
                return None;
            }
        }
    }

    /// Gives back an entry this process took, which records [`Kind::Free`] again.
    #[inline]
    pub(crate) fn put(&self, e: Entry<'_>) {
        debug_assert_eq!(e.kind(), Some(Kind::Free));
        let idx = e.offset().get() / ENTRY_BYTES;
        let mut head = self.free.load(Ordering::Relaxed);
        loop {
            e.set(E_NEXT, (head & IDX_MASK) * ENTRY_BYTES);
            let new = idx | (head & !IDX_MASK);
            // SYNC POINT: release, so a thread that pops the entry (acquire) reads its
            // link and sees it free.
            match self
                .free
                .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    fn pop<'a>(&self, region: &'a Region) -> Option<Entry<'a>> {
        // SYNC POINT: acquire, pairing with the release push.
        let mut head = self.free.load(Ordering::Acquire);
        loop {
            let idx = head & IDX_MASK;
            if idx == 0 {
                return None;
            }
            let e = Entry::at(region, Offset::new(idx * ENTRY_BYTES))?;
            // Another thread may pop this entry meanwhile and write its link: the counter in
            // the head then makes the swap below fail.
            let next = e.get(E_NEXT) / ENTRY_BYTES;
            let new = (next & IDX_MASK) | ((head >> IDX_BITS).wrapping_add(1) << IDX_BITS);
            match self
                .free
                .compare_exchange_weak(head, new, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => return Some(e),
                Err(now) => head = now,
            }
        }
    }

    /// Adds a chunk (unless another thread just did). Returns whether there may be a free
    /// entry now.
    #[cold]
    fn grow(&self, pool: &Pool) -> bool {
        let _g = self.grow.lock().unwrap_or_else(|p| p.into_inner());
        if self.free.load(Ordering::Acquire) & IDX_MASK != 0 {
            return true;
        }
        let region = pool.region();
        let Some(list) = region.own_slot_data() else {
            return false;
        };
        // The slot's second word records the chunk from its allocation until it is listed
        // (see `Pool::alloc_recorded`): a death between gives it back.
        let Some(pending_at) = region.offset_of(&list[1]) else {
            return false;
        };
        let Ok(chunk) = pool.alloc_recorded(CHUNK_BYTES, 64, false, (pending_at, &list[1]), None)
        else {
            return false;
        };
        crate::fault::pause_point("ledger.chunk.allocated");
        let Ok(words) = region.at_slice::<AtomicU64>(chunk, CHUNK_BYTES / 8) else {
            return false;
        };
        for w in words {
            w.store(0, Ordering::Relaxed);
        }
        words[C_MAGIC].store(CHUNK_MAGIC, Ordering::Relaxed);
        words[C_NEXT].store(list[0].load(Ordering::Relaxed), Ordering::Relaxed);
        // SYNC POINT: release, so a reclaimer that reads the list (acquire) sees the chunk
        // formatted: all entries free.
        list[0].store(chunk.get(), Ordering::Release);
        crate::fault::pause_point("ledger.chunk.listed");
        list[1].store(0, Ordering::Release);
        for i in 1..=PER_CHUNK {
            if let Some(e) = Entry::at(region, Offset::new(chunk.get() + i * ENTRY_BYTES)) {
                self.put(e);
            }
        }
        true
    }

    /// Looks for dead processes if one was noted, or if the last look was long enough ago.
    #[inline]
    pub(crate) fn maybe_reap(&self, pool: &Pool) {
        let now = coarse_now();
        if now >= self.next_scan.load(Ordering::Relaxed) || pool.region().take_death_note() {
            self.next_scan
                .store(now.saturating_add(SCAN_EVERY_NS), Ordering::Relaxed);
            super::reap::reap_quick(pool);
        }
    }
}

/// The chunks listed from `head`, at most as many as fit in `region`, each checked for the
/// chunk magic; stops at the first that does not check out (returned as `Err`).
pub(crate) fn chunks(region: &Region, head: u64) -> Result<Vec<Offset>, Offset> {
    let mut out = Vec::new();
    let mut at = head;
    let budget = region.len() / CHUNK_BYTES;
    while at != 0 {
        let off = Offset::new(at);
        let ok = out.len() as u64 <= budget
            && at % 64 == 0
            && region
                .at_slice::<AtomicU64>(off, CHUNK_BYTES / 8)
                .is_ok_and(|w| w[C_MAGIC].load(Ordering::Relaxed) == CHUNK_MAGIC);
        if !ok {
            return Err(off);
        }
        out.push(off);
        at = region
            .at::<AtomicU64>(off)
            .map_or(0, |w| w.load(Ordering::Acquire));
    }
    Ok(out)
}

/// What the ledgers of this process keep in a pool: their chunks, which each keeps until
/// its region handle goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kept {
    /// Pool bytes of the chunks (as the pool counts them in `PoolStats::used`).
    pub bytes: u64,
    /// The chunks: blocks of the pool.
    pub blocks: u64,
}

/// What the ledgers of this process keep in `pool`'s region, over all its region handles:
/// for accounting that compares a pool's use before and after some work of this process
/// (the chunks grow with the values it holds at once, and stay).
pub fn kept(pool: &Pool) -> Kept {
    kept_by(pool, std::process::id())
}

/// What the ledgers of the live process `pid` (as it sees itself) keep in `pool`'s region;
/// see [`kept`].
pub fn kept_by(pool: &Pool, pid: u32) -> Kept {
    let region = pool.region();
    let mut k = Kept::default();
    for c in region
        .slots()
        .iter()
        .filter(|s| s.pid == pid && s.alive)
        .filter_map(|s| chunks(region, s.data[0]).ok())
        .flatten()
    {
        k.bytes += pool
            .usable_size_unlocked(c)
            .map_or(0, |n| n + crate::alloc::BLOCK_HEADER);
        k.blocks += 1;
    }
    k
}

/// The entries of a chunk.
pub(crate) fn entries_of(region: &Region, chunk: Offset) -> impl Iterator<Item = Entry<'_>> {
    (1..=PER_CHUNK)
        .filter_map(move |i| Entry::at(region, Offset::new(chunk.get() + i * ENTRY_BYTES)))
}

impl RegionExt for Ledger {
    fn as_any(&self) -> &dyn Any {
        self
    }

    /// Frees this process's chunks if every entry is free (nothing is held through this
    /// handle any more, which is so once no value or pipe handle of it is left); otherwise
    /// leaves them listed, and the slot to be reclaimed once the region file closes.
    fn detach(&self, region: &Region) {
        let Some(list) = region.own_slot_data() else {
            return;
        };
        let Ok(all) = chunks(region, list[0].load(Ordering::Acquire)) else {
            return;
        };
        let busy = all
            .iter()
            .any(|&c| entries_of(region, c).any(|e| e.kind() != Some(Kind::Free)));
        if busy {
            return;
        }
        list[0].store(0, Ordering::Release);
        for c in all {
            // SAFETY: the chunk was allocated by this process for its ledger and is
            // unlisted now: nobody else refers to it, and it is freed once.
            let _ = unsafe { crate::alloc::defer_free_in(region, c) };
        }
    }
}
