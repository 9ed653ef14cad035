//! The TLSF algorithm over the heap: free lists, bitmaps, alloc and free.
//!
//! A [`Heap`] is a view of one pool for the duration of one critical section: the caller
//! holds the pool lock, so every access here is a relaxed atomic (the lock orders them).
//! Every offset read from memory (list links, footers, sizes) is checked before use; a bad
//! one is [`AllocError::Corrupted`].

use super::error::AllocError;
use super::layout::{
    align_slack, block_size, cached_check, class_of, free_check, gap_for, is_used_check,
    round_to_class, tombstone, used_check, word, Geometry, BLOCK_HEADER, FLAGS, LOCK_BYTES,
    MIN_BLOCK, OBJECT, POOL_MAGIC, PREV_FREE, SL_COUNT, USED,
};
use crate::fault::pause_point;
use crate::region::{Offset, Region};
use crate::sync::atomic::{AtomicU64, Ordering, Ordering::Relaxed};
use crate::sync::ShmMutex;

/// One pool, viewed under its lock.
pub(crate) struct Heap<'a> {
    region: &'a Region,
    /// The pool's geometry, computed from the region's size (never read from memory).
    pub geo: Geometry,
    /// The check-word salt, read once when the pool was created or attached.
    pub salt: u64,
    /// The pool header's words after the lock.
    words: &'a [AtomicU64],
}

impl<'a> Heap<'a> {
    pub fn new(region: &'a Region, geo: Geometry, salt: u64, words: &'a [AtomicU64]) -> Self {
        Heap {
            region,
            geo,
            salt,
            words,
        }
    }

    /// The region the pool lives in.
    pub fn region(&self) -> &'a Region {
        self.region
    }

    /// This view with the heap ending at `end`.
    pub fn with_end(&self, end: u64) -> Heap<'a> {
        Heap {
            region: self.region,
            geo: Geometry {
                heap_end: end,
                ..self.geo
            },
            salt: self.salt,
            words: self.words,
        }
    }

    /// This view with the heap's end as the header says now (under the lock), checked: on
    /// a granule, past a first block and the end block, within what the region's file
    /// holds.
    pub fn current(&self) -> Result<Heap<'a>, AllocError> {
        let end = self.load(word::HEAP_END)?;
        let ok = end % super::layout::GRANULE == 0
            && self
                .geo
                .heap_start
                .checked_add(2 * MIN_BLOCK)
                .is_some_and(|m| m <= end)
            // What this process knows the file holds first: the header only past it.
            && (end <= self.region.len() || end <= self.region.committed_now());
        if !ok {
            return Err(AllocError::corrupted(format!(
                "pool header says heap end {end:#x}; the region holds {} bytes (of at most {})",
                self.region.committed_now(),
                self.region.max_len()
            )));
        }
        Ok(self.with_end(end))
    }

    // ---- header words ----

    #[inline(always)]
    pub fn word(&self, i: usize) -> Result<&'a AtomicU64, AllocError> {
        self.words
            .get(i)
            .ok_or_else(|| AllocError::corrupted(format!("pool word {i} out of range")))
    }

    #[inline(always)]
    pub fn load(&self, i: usize) -> Result<u64, AllocError> {
        Ok(self.word(i)?.load(Relaxed))
    }

    #[inline(always)]
    pub fn store(&self, i: usize, v: u64) -> Result<(), AllocError> {
        self.word(i)?.store(v, Relaxed);
        Ok(())
    }

    // ---- blocks ----

    /// The header words (size, check) of the block at `b`.
    #[inline(always)]
    pub fn header(&self, b: u64) -> Result<&'a [AtomicU64; 2], AllocError> {
        self.block_words(b)
    }

    /// The header words and the first payload word of the block at `b` (the link of a
    /// block in a cache).
    #[inline(always)]
    pub fn header_and_link(&self, b: u64) -> Result<&'a [AtomicU64; 3], AllocError> {
        self.block_words(b)
    }

    /// The first `N` words of the block at `b`, which must be a block start.
    #[inline(always)]
    fn block_words<const N: usize>(&self, b: u64) -> Result<&'a [AtomicU64; N], AllocError> {
        if !self.geo.is_block_start(b) {
            return Err(AllocError::corrupted(format!(
                "block offset {b:#x} outside the heap"
            )));
        }
        self.resolve(b)
    }

    /// The free-list links (next, prev) of the free block at `b`.
    #[inline(always)]
    pub fn links(&self, b: u64) -> Result<&'a [AtomicU64; 2], AllocError> {
        self.resolve(b + BLOCK_HEADER)
    }

    /// The footer of the free block at `b` of `size` bytes: its last word, a copy of its
    /// size, so the next block can find it. Blocks of [`MIN_BLOCK`] have none (their last
    /// word is a link); their start is found from the next block directly.
    #[inline(always)]
    pub fn footer(&self, b: u64, size: u64) -> Result<&'a AtomicU64, AllocError> {
        self.resolve(b + size - 8)
    }

    #[inline(always)]
    pub fn resolve<T: crate::region::Shared>(&self, at: u64) -> Result<&'a T, AllocError> {
        self.region
            .at::<T>(Offset::new(at))
            .map_err(|e| AllocError::corrupted(format!("heap access: {e}")))
    }

    /// The size of the free block at `b`, after checking that `b` is one.
    #[inline]
    pub fn expect_free(&self, b: u64) -> Result<u64, AllocError> {
        let h = self.header(b)?;
        let (w0, w1) = (h[0].load(Relaxed), h[1].load(Relaxed));
        let size = w0 & !FLAGS;
        if w0 & USED != 0 || w1 != free_check(self.salt, b) || !self.geo.fits(b, size) {
            return Err(AllocError::corrupted(format!(
                "free list names {b:#x}, which is not a free block"
            )));
        }
        Ok(size)
    }

    /// Sets or clears the [`PREV_FREE`] flag of the block at `b`, if `b` is inside the heap
    /// (the heap's end has no block to flag).
    fn set_prev_free(&self, b: u64, free: bool) -> Result<(), AllocError> {
        if b >= self.geo.heap_end {
            return Ok(());
        }
        let h = self.header(b)?;
        let w = h[0].load(Relaxed);
        // A read-modify-write: the block may sit in a process's cache, whose owner changes
        // its object flag without the lock (see `cache`).
        if free && w & PREV_FREE == 0 {
            h[0].fetch_or(PREV_FREE, Relaxed);
        } else if !free && w & PREV_FREE != 0 {
            h[0].fetch_and(!PREV_FREE, Relaxed);
        }
        Ok(())
    }

    /// The start and size of the used block whose payload is at `off`: the check that
    /// makes `free` and `usable_size` safe against offsets the pool never handed out.
    pub fn used_block(&self, off: Offset) -> Result<(u64, u64), AllocError> {
        used_block_in(self.region, &self.geo, self.salt, off)
    }

    // ---- free lists ----

    /// Links the free block at `b` of `size` bytes (header already written) at the head of
    /// its class's list and writes its footer.
    pub fn insert(&self, b: u64, size: u64) -> Result<(), AllocError> {
        let (fl, sl) = class_of(size);
        let hi = self.geo.head(fl, sl);
        let head = self.load(hi)?;
        if head != 0 {
            self.expect_free(head)?;
        }
        let l = self.links(b)?;
        l[0].store(head, Relaxed);
        l[1].store(0, Relaxed);
        if size > MIN_BLOCK {
            self.footer(b, size)?.store(size, Relaxed);
        }
        if head != 0 {
            self.links(head)?[1].store(b, Relaxed);
        }
        self.store(hi, b)?;
        let sli = self.geo.sl_bitmap(fl);
        self.store(sli, self.load(sli)? | 1 << sl)?;
        self.store(word::FL_BITMAP, self.load(word::FL_BITMAP)? | 1 << fl)?;
        self.store(word::FREE_BLOCKS, self.load(word::FREE_BLOCKS)? + 1)
    }

    /// Unlinks the free block at `b` of `size` bytes from its list.
    pub fn remove(&self, b: u64, size: u64) -> Result<(), AllocError> {
        let (fl, sl) = class_of(size);
        let l = self.links(b)?;
        let (next, prev) = (l[0].load(Relaxed), l[1].load(Relaxed));
        let broken = || AllocError::corrupted(format!("free list links of {b:#x} are broken"));
        if next != 0 {
            self.expect_free(next)?;
            if self.links(next)?[1].load(Relaxed) != b {
                return Err(broken());
            }
        }
        if prev != 0 {
            self.expect_free(prev)?;
            let pl = self.links(prev)?;
            if pl[0].load(Relaxed) != b {
                return Err(broken());
            }
            pl[0].store(next, Relaxed);
        } else {
            let hi = self.geo.head(fl, sl);
            if self.load(hi)? != b {
                return Err(broken());
            }
            self.store(hi, next)?;
            if next == 0 {
                let sli = self.geo.sl_bitmap(fl);
                let slmap = self.load(sli)? & !(1 << sl);
                self.store(sli, slmap)?;
                if slmap == 0 {
                    let flmap = self.load(word::FL_BITMAP)? & !(1 << fl);
                    self.store(word::FL_BITMAP, flmap)?;
                }
            }
        }
        if next != 0 {
            self.links(next)?[1].store(prev, Relaxed);
        }
        let n = self.load(word::FREE_BLOCKS)?;
        self.store(word::FREE_BLOCKS, n.saturating_sub(1))
    }

    /// The first non-empty list at class `(fl, sl)` or above, by the bitmaps.
    fn next_nonempty(&self, fl: usize, sl: usize) -> Result<Option<(usize, usize)>, AllocError> {
        let fl_count = self.geo.fl_count as usize;
        if fl >= fl_count {
            return Ok(None);
        }
        let slmap = self.load(self.geo.sl_bitmap(fl))? & (u64::MAX << sl);
        if slmap != 0 {
            return Ok(Some((fl, slmap.trailing_zeros() as usize)));
        }
        let valid = (1u64 << fl_count) - 1;
        let flmap = self.load(word::FL_BITMAP)? & valid & !((2u64 << fl) - 1);
        if flmap == 0 {
            return Ok(None);
        }
        let f = flmap.trailing_zeros() as usize;
        let slmap = self.load(self.geo.sl_bitmap(f))?;
        if slmap == 0 {
            return Err(AllocError::corrupted(format!(
                "first-level bitmap marks class {f}, whose lists are all empty"
            )));
        }
        Ok(Some((f, slmap.trailing_zeros() as usize)))
    }

    /// The head of the non-empty list `(fl, sl)`.
    fn head_of(&self, fl: usize, sl: usize) -> Result<u64, AllocError> {
        match self.load(self.geo.head(fl, sl))? {
            0 => Err(AllocError::corrupted(format!(
                "bitmap marks list ({fl}, {sl}), which is empty"
            ))),
            b => Ok(b),
        }
    }

    /// Most list entries a walk may visit: more than the heap can hold means a loop.
    fn walk_budget(&self) -> u64 {
        self.geo.capacity() / MIN_BLOCK + 1
    }

    /// A free block that holds `needed` bytes with its payload aligned to `align`.
    ///
    /// First the O(1) good fit of TLSF: round the request (plus the worst-case alignment
    /// gap) up to a class start, take the head of the first non-empty list from there; any
    /// block in it fits. If that finds nothing, scan the few lists between the request's
    /// own class and that class, whose blocks may or may not fit, so that a request fails
    /// only when no free block could hold it.
    fn find_fit(&self, needed: u64, align: u64) -> Result<Option<(u64, u64)>, AllocError> {
        let worst = needed.checked_add(align_slack(align));
        if let Some(search) = worst.and_then(round_to_class) {
            let (fl, sl) = class_of(search);
            if let Some((fl, sl)) = self.next_nonempty(fl, sl)? {
                let b = self.head_of(fl, sl)?;
                let size = self.expect_free(b)?;
                // Always true unless the lists are corrupted; then the scan below decides.
                if gap_for(b, align) + needed <= size {
                    return Ok(Some((b, size)));
                }
            }
        }
        let mut budget = self.walk_budget();
        let (mut fl, mut sl) = class_of(needed);
        while let Some((f, s)) = self.next_nonempty(fl, sl)? {
            let mut b = self.head_of(f, s)?;
            while b != 0 {
                budget = budget
                    .checked_sub(1)
                    .ok_or_else(|| AllocError::corrupted("a free list loops"))?;
                let size = self.expect_free(b)?;
                if gap_for(b, align) + needed <= size {
                    return Ok(Some((b, size)));
                }
                b = self.links(b)?[0].load(Relaxed);
            }
            (fl, sl) = if s + 1 < SL_COUNT as usize {
                (f, s + 1)
            } else {
                (f + 1, 0)
            };
        }
        Ok(None)
    }

    /// The payload size of the largest free block (0 if none): the largest request at
    /// alignment 16 or less that succeeds now.
    pub fn largest_free(&self) -> Result<u64, AllocError> {
        let valid = (1u64 << self.geo.fl_count) - 1;
        let flmap = self.load(word::FL_BITMAP)? & valid;
        if flmap == 0 {
            return Ok(0);
        }
        let fl = 63 - flmap.leading_zeros() as usize;
        let slmap = self.load(self.geo.sl_bitmap(fl))?;
        if slmap == 0 {
            return Err(AllocError::corrupted(format!(
                "first-level bitmap marks class {fl}, whose lists are all empty"
            )));
        }
        let sl = 63 - slmap.leading_zeros() as usize;
        let mut b = self.head_of(fl, sl)?;
        let mut best = 0;
        let mut budget = self.walk_budget();
        while b != 0 {
            budget = budget
                .checked_sub(1)
                .ok_or_else(|| AllocError::corrupted("a free list loops"))?;
            best = best.max(self.expect_free(b)?);
            b = self.links(b)?[0].load(Relaxed);
        }
        Ok(best - BLOCK_HEADER)
    }

    // ---- alloc and free ----

    /// Splits the free, unlinked block at `b` of `size` bytes into `b` of `first` bytes
    /// (with size-word flags `b_flags`) and a free remainder after it (flags `r_flags`),
    /// left unlinked.
    ///
    /// Crash order: the remainder's size word first (inside `b`, invisible to a chain walk),
    /// then `b` shrinks with one store (the chain now steps onto the remainder), then the
    /// remainder's check word. A valid free check word thus never appears before its block
    /// is real.
    fn split(
        &self,
        b: u64,
        size: u64,
        first: u64,
        b_flags: u64,
        r_flags: u64,
    ) -> Result<(), AllocError> {
        let r = b + first;
        let hr = self.header(r)?;
        hr[0].store((size - first) | r_flags, Relaxed);
        pause_point("alloc.split.remainder");
        self.header(b)?[0].store(first | b_flags, Relaxed);
        pause_point("alloc.split.shrunk");
        hr[1].store(free_check(self.salt, r), Relaxed);
        Ok(())
    }

    /// [`alloc`](Self::alloc) with `record`, the word at region offset `at`, named in the
    /// operation word meanwhile, so that the repair after a holder that died inside keeps
    /// the block in the record only if it was marked used (see `Pool::alloc_recorded`).
    pub fn alloc_recorded(
        &self,
        size: u64,
        align: u64,
        object: bool,
        (at, record): (Offset, &AtomicU64),
    ) -> Result<Offset, AllocError> {
        self.store(word::OP, at.get())?;
        let r = self.alloc(size, align, object, Some(record));
        self.store(word::OP, 0)?;
        r
    }

    /// Allocates a block for `size` bytes at `align` (already checked: a power of two of at
    /// most 64) and returns its payload's offset. `object` marks a block whose first payload
    /// word is only ever accessed atomically ([`OBJECT`]).
    pub fn alloc(
        &self,
        size: u64,
        align: u64,
        object: bool,
        record: Option<&AtomicU64>,
    ) -> Result<Offset, AllocError> {
        let most = self
            .max_end()
            .saturating_sub(self.geo.heap_start + MIN_BLOCK);
        let needed = match block_size(size) {
            Some(n) if n <= most => n,
            _ => return Err(AllocError::TooLarge { size }),
        };
        let Some((mut b, mut avail)) = self.find_fit(needed, align)? else {
            // No room: grow the heap (up to the region's maximum) and try again there.
            if let Some(grown) = self.grow_for(size, needed)? {
                return grown.alloc(size, align, object, record);
            }
            return Err(AllocError::OutOfMemory {
                requested: size,
                largest_free: self.largest_free()?,
            });
        };
        self.remove(b, avail)?;
        pause_point("alloc.unlinked");
        // Whether the block before `b` is free (normally not: free blocks are merged).
        let mut prev_free = self.header(b)?[0].load(Relaxed) & PREV_FREE;
        let gap = gap_for(b, align);
        if gap > 0 {
            // The gap stays free: the block after it follows a free block.
            self.split(b, avail, gap, prev_free, PREV_FREE)?;
            self.insert(b, gap)?;
            b += gap;
            avail -= gap;
            prev_free = PREV_FREE;
        }
        if avail - needed >= MIN_BLOCK {
            // The remainder follows `b`, which is about to be used.
            self.split(b, avail, needed, prev_free, 0)?;
            self.insert(b + needed, avail - needed)?;
            avail = needed;
        }
        // The record names the block before it is used: a holder that dies from here on
        // leaves the repair to tell whether the block was marked used.
        if let Some(r) = record {
            r.store(b + BLOCK_HEADER, Relaxed);
        }
        // The check word before the used bit: a crash between leaves a free block.
        let h = self.header(b)?;
        h[1].store(used_check(self.salt, b, avail), Relaxed);
        pause_point("alloc.mark_used");
        let kind = if object { OBJECT } else { 0 };
        h[0].store(avail | USED | prev_free | kind, Relaxed);
        pause_point("alloc.used");
        // The block after it now follows a used block.
        self.set_prev_free(b + avail, false)?;
        let used = self.load(word::USED)? + avail;
        self.store(word::USED, used)?;
        self.store(word::LIVE, self.load(word::LIVE)? + 1)?;
        if used > self.load(word::HIGH_WATER)? {
            self.store(word::HIGH_WATER, used)?;
        }
        Ok(Offset::new(b + BLOCK_HEADER))
    }

    /// Frees the block whose payload is at `off`, merging it with free neighbours.
    pub fn free(&self, off: Offset) -> Result<(), AllocError> {
        let (mut b, mut size) = self.used_block(off)?;
        let h = self.header(b)?;
        let prev_free = h[0].load(Relaxed) & PREV_FREE;
        // The used bit before the check word: a crash between leaves a free block.
        h[0].store(size | prev_free, Relaxed);
        pause_point("free.cleared");
        h[1].store(free_check(self.salt, b), Relaxed);
        self.store(word::USED, self.load(word::USED)?.saturating_sub(size))?;
        self.store(word::LIVE, self.load(word::LIVE)?.saturating_sub(1))?;

        let n = b + size;
        if n < self.geo.heap_end {
            let hn = self.header(n)?;
            let (w0, w1) = (hn[0].load(Relaxed), hn[1].load(Relaxed));
            let ns = w0 & !FLAGS;
            let valid = if w0 & USED == 0 {
                w1 == free_check(self.salt, n)
            } else {
                is_used_check(self.salt, n, ns, w1)
            };
            if !valid || !self.geo.fits(n, ns) {
                return Err(AllocError::corrupted(format!(
                    "the header of block {n:#x} (after {b:#x}) is overwritten"
                )));
            }
            if w0 & USED == 0 {
                // Tombstone before the size store: a crash between leaves the next
                // block real (free, its check rewritten by recovery).
                self.remove(n, ns)?;
                hn[1].store(tombstone(self.salt, n), Relaxed);
                pause_point("free.merge_next");
                size += ns;
                h[0].store(size | prev_free, Relaxed);
            }
        }
        if prev_free != 0 {
            let (p, ps) = self.free_prev(b)?;
            self.remove(p, ps)?;
            h[1].store(tombstone(self.salt, b), Relaxed);
            pause_point("free.merge_prev");
            size += ps;
            let hp = self.header(p)?;
            let p_flags = hp[0].load(Relaxed) & PREV_FREE;
            hp[0].store(size | p_flags, Relaxed);
            b = p;
        }
        self.insert(b, size)?;
        pause_point("free.linked");
        // The block after the freed one now follows a free block.
        self.set_prev_free(b + size, true)
    }

    /// The free block just before `b`, whose [`PREV_FREE`] flag says there is one.
    ///
    /// A 32-byte free block starts 32 bytes before; a larger one is found from its footer,
    /// the word before `b`. Either candidate is accepted only if it has a valid free check
    /// word and its size reaches exactly `b`. Only the flag makes reading those words safe:
    /// while the block before `b` is used, its last words are its owner's payload, written
    /// with plain stores and never to be read here; while it is free, every word of it is
    /// written only by the allocator, through atomics, under the lock.
    fn free_prev(&self, b: u64) -> Result<(u64, u64), AllocError> {
        let start = self.geo.heap_start;
        let candidate = |p: u64, size: u64| -> Result<bool, AllocError> {
            let h = self.header(p)?;
            let w0 = h[0].load(Relaxed);
            Ok(w0 & USED == 0
                && w0 & !FLAGS == size
                && h[1].load(Relaxed) == free_check(self.salt, p))
        };
        if b >= start + MIN_BLOCK && candidate(b - MIN_BLOCK, MIN_BLOCK)? {
            return Ok((b - MIN_BLOCK, MIN_BLOCK));
        }
        if b >= start + MIN_BLOCK + 16 {
            let f = self.resolve::<AtomicU64>(b - 8)?.load(Relaxed);
            if f > MIN_BLOCK && f % 16 == 0 && f <= b - start && candidate(b - f, f)? {
                return Ok((b - f, f));
            }
        }
        Err(AllocError::corrupted(format!(
            "block {b:#x} says the block before it is free; none is"
        )))
    }
}

/// The pool lock and header of the pool in `region`, given only the region (for a handle
/// that is going away). The heap's end is the geometry's: call `current` under the lock.
///
/// # Errors
///
/// [`AllocError::BadMagic`] if the region holds no pool.
pub(super) fn region_view(region: &Region) -> Result<(&ShmMutex, Heap<'_>), AllocError> {
    let geo = Geometry::new(region.data_start().get(), region.len(), region.max_len())?;
    let lock = region.at::<ShmMutex>(Offset::new(geo.base))?;
    let words =
        region.at_slice::<AtomicU64>(Offset::new(geo.base + LOCK_BYTES), geo.words() as u64)?;
    if words[word::MAGIC].load(Ordering::Acquire) != POOL_MAGIC {
        return Err(AllocError::BadMagic {
            found: words[word::MAGIC].load(Ordering::Relaxed),
        });
    }
    let salt = words[word::SALT].load(Ordering::Relaxed);
    Ok((lock, Heap::new(region, geo, salt, words)))
}

/// Frees `off` under the pool lock with its record: the operation word names `at` (the
/// word `record`, which names the block) until the record is cleared, so that the repair
/// after a holder that died here keeps the record only if the block is still used.
pub(super) fn free_with_record(
    h: &Heap<'_>,
    off: Offset,
    at: Offset,
    record: &AtomicU64,
) -> Result<(), AllocError> {
    h.store(word::OP, at.get())?;
    h.free(off)?;
    pause_point("alloc.free_recorded");
    record.store(0, Ordering::Relaxed);
    h.store(word::OP, 0)
}

/// [`Heap::used_block`] in `region` of geometry `geo` and check-word salt `salt`, for a
/// caller without the lock (which needs no view of the pool header's words).
#[inline]
pub(crate) fn used_block_in(
    region: &Region,
    geo: &Geometry,
    salt: u64,
    off: Offset,
) -> Result<(u64, u64), AllocError> {
    let o = off.get();
    let invalid = || AllocError::InvalidOffset { offset: o };
    let Some(b) = o.checked_sub(BLOCK_HEADER) else {
        return Err(invalid());
    };
    if !geo.is_block_start(b) {
        return Err(invalid());
    }
    let h: &[AtomicU64; 2] = region
        .at(Offset::new(b))
        .map_err(|e| AllocError::corrupted(format!("heap access: {e}")))?;
    let (w0, w1) = (h[0].load(Relaxed), h[1].load(Relaxed));
    let size = w0 & !FLAGS;
    if w0 & USED != 0 && w1 == used_check(salt, b, size) {
        if !geo.fits(b, size) {
            return Err(AllocError::corrupted(format!(
                "used block at {b:#x} has a valid check but size {size}"
            )));
        }
        Ok((b, size))
    } else if w1 == free_check(salt, b)
        || w1 == tombstone(salt, b)
        || w1 == cached_check(salt, b, size)
    {
        Err(AllocError::DoubleFree { offset: o })
    } else {
        Err(invalid())
    }
}
