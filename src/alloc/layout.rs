//! The pool's format: block sizes, size classes, check words, and where the pool header's
//! words lie. Everything here is pure arithmetic, shared by the algorithm and recovery.

use std::mem::size_of;

use super::error::AllocError;
use crate::region::header::fnv1a;
use crate::sync::ShmMutex;

/// Block sizes and offsets are multiples of this.
pub const GRANULE: u64 = 16;
/// Bytes of a block header (size word and check word); the payload follows it.
pub const BLOCK_HEADER: u64 = 16;
/// The smallest block: a header and room for two free-list links.
pub const MIN_BLOCK: u64 = 32;
/// The largest alignment `alloc` accepts.
pub const MAX_ALIGN: u64 = 64;

/// Size-word flag: the block is handed out.
pub(crate) const USED: u64 = 1;
/// Size-word flag: the block just before this one is free, so the word before this block
/// is that block's footer (or a free block's header or link), never payload.
pub(crate) const PREV_FREE: u64 = 2;
/// Size-word flag of a used block: its first payload word is only ever accessed through
/// atomics (a value object's header word), so diagnostics may read it under the pool lock.
pub(crate) const OBJECT: u64 = 4;
/// Size-word flag of the used block that ends the heap (see `grow`): never handed out.
pub(crate) const END: u64 = 8;
/// The flag bits of a size word (below the granule; sizes are multiples of it).
pub(crate) const FLAGS: u64 = GRANULE - 1;

/// log2 of the lists per first-level class.
pub(crate) const SL_LOG2: u32 = 5;
/// Lists per first-level class.
pub(crate) const SL_COUNT: u64 = 1 << SL_LOG2;
/// Blocks below this size have exact classes, one per granule.
pub(crate) const SMALL_LIMIT: u64 = GRANULE * SL_COUNT;
/// log2 of [`SMALL_LIMIT`].
const SMALL_LOG2: u32 = SMALL_LIMIT.trailing_zeros();

/// Bumped whenever the meaning of any pool word changes (3: the heap ends with an end
/// block, and grows; 4: processes cache small blocks; 5: caches left behind, flagged in
/// `FLAGS` and marked in the cache table).
const POOL_VERSION: u64 = 5;
/// The pool magic: `b"SHMPOOL\x01"` read as a little-endian word.
pub(crate) const POOL_MAGIC: u64 = u64::from_le_bytes(*b"SHMPOOL\x01");

/// Indices of the pool header's words (after the lock) and what they hold.
pub(crate) mod word {
    /// [`POOL_MAGIC`](super::POOL_MAGIC), stored last when the pool is formatted.
    pub const MAGIC: usize = 0;
    /// [`fingerprint`](super::fingerprint) of this build's pool structures.
    pub const FINGERPRINT: usize = 1;
    /// The random salt of the check words.
    pub const SALT: usize = 2;
    /// Region offset of the first block.
    pub const HEAP_START: usize = 3;
    /// Region offset just past the last block.
    pub const HEAP_END: usize = 4;
    /// Number of first-level classes.
    pub const FL_COUNT: usize = 5;
    /// Flag bits, changed atomically: [`POISONED`](super::POISONED),
    /// [`CACHES_LEFT`](super::CACHES_LEFT).
    pub const FLAGS: usize = 6;
    /// Bytes in used blocks, headers included.
    pub const USED: usize = 7;
    /// Number of used blocks.
    pub const LIVE: usize = 8;
    /// Largest value `USED` has held.
    pub const HIGH_WATER: usize = 9;
    /// Number of free blocks (all of them are on the lists).
    pub const FREE_BLOCKS: usize = 10;
    /// Bit `f`: some list of first-level class `f` is non-empty.
    pub const FL_BITMAP: usize = 11;
    /// Head of the deferred frees: blocks whose owners could not get the lock in time
    /// (payload offsets, each block's first payload word linking to the next; 0 = none).
    pub const DEFERRED: usize = 12;
    /// The deferred block being freed by the lock holder now (0 = none), so that a holder
    /// killed between taking it off the list and freeing it loses nothing.
    pub const DRAINING: usize = 13;
    /// The recorded allocation or free in progress: the region offset of the word that
    /// records its block (0 = none), so that a holder killed inside it is resolved exactly
    /// (see [`Pool::alloc_recorded`](crate::alloc::Pool::alloc_recorded)).
    pub const OP: usize = 14;
    /// The table of the processes' block caches: the payload offset of a block holding
    /// a word per registry slot, with bit 0 set once it is zeroed (0 = none yet; see
    /// `cache`).
    pub const CACHES: usize = 15;
    /// Words up to here; the second-level bitmaps follow, one word per first-level class,
    /// then the list heads, [`SL_COUNT`](super::SL_COUNT) per class.
    pub const FIXED: usize = 16;
}

/// `FLAGS` bit: the heap was found broken beyond repair; every operation fails.
pub(crate) const POISONED: u64 = 1;
/// `FLAGS` bit: a detaching process found the pool lock busy and marked its block cache
/// records left in the cache table; the next holder of the lock gives them back.
pub(crate) const CACHES_LEFT: u64 = 2;

/// Bytes of the pool lock at the start of the pool header.
pub(crate) const LOCK_BYTES: u64 = size_of::<ShmMutex>() as u64;

/// The fingerprint of this build's pool structures, kept in the pool header so that an
/// attacher built differently is refused rather than misreading the heap.
pub fn fingerprint() -> u64 {
    fnv1a(&[
        POOL_VERSION,
        size_of::<usize>() as u64,
        LOCK_BYTES,
        word::FIXED as u64,
        GRANULE,
        BLOCK_HEADER,
        MIN_BLOCK,
        u64::from(SL_LOG2),
        USED,
        PREV_FREE,
        OBJECT,
        u64::from(cfg!(target_endian = "little")),
    ])
}

/// `n` rounded up to a multiple of `align` (a power of two), or `None` on overflow.
pub(crate) fn round_up(n: u64, align: u64) -> Option<u64> {
    Some(n.checked_add(align - 1)? & !(align - 1))
}

/// The block size that holds a request of `size` bytes at alignment 16 or less: the
/// payload rounded to granules plus the header, and at least [`MIN_BLOCK`].
pub(crate) fn block_size(size: u64) -> Option<u64> {
    Some(
        round_up(size, GRANULE)?
            .checked_add(BLOCK_HEADER)?
            .max(MIN_BLOCK),
    )
}

/// Extra block bytes an allocation at `align` may spend on its leading gap: see
/// [`gap_for`]. Zero for alignments the header already gives.
pub(crate) fn align_slack(align: u64) -> u64 {
    if align <= GRANULE {
        0
    } else {
        align + GRANULE
    }
}

/// The leading gap to cut from the free block at `b` so that the payload of the block
/// after the gap is aligned to `align`: zero, or a free block of at least [`MIN_BLOCK`].
/// Never more than [`align_slack`]`(align)`.
pub(crate) fn gap_for(b: u64, align: u64) -> u64 {
    if align <= GRANULE {
        return 0;
    }
    let payload = b + BLOCK_HEADER;
    let mut gap = payload.wrapping_neg() & (align - 1);
    if gap != 0 && gap < MIN_BLOCK {
        gap += align;
    }
    gap
}

/// The (first-level, second-level) class of a block of `size` bytes (a multiple of the
/// granule). Below [`SMALL_LIMIT`] the first level is linear: class `(0, size / 16)`
/// holds exactly the blocks of that size. Above, first level `f` holds sizes in
/// `[2^(f+8), 2^(f+9))`, split into [`SL_COUNT`] equal ranges.
pub(crate) fn class_of(size: u64) -> (usize, usize) {
    if size < SMALL_LIMIT {
        (0, (size / GRANULE) as usize)
    } else {
        let log = 63 - size.leading_zeros();
        let fl = log - SMALL_LOG2 + 1;
        let sl = (size >> (log - SL_LOG2)) ^ SL_COUNT;
        (fl as usize, sl as usize)
    }
}

/// `size` rounded up to the start of a class, so that every block of that class and of the
/// classes above it holds `size` (the good-fit search of TLSF); `None` on overflow.
pub(crate) fn round_to_class(size: u64) -> Option<u64> {
    if size < SMALL_LIMIT {
        Some(size)
    } else {
        let log = 63 - size.leading_zeros();
        round_up(size, 1 << (log - SL_LOG2))
    }
}

/// Finalizer of MurmurHash3: a fixed bijective mix, the same in every process.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The check word for `what` at block `b`. One mix of the salted, spread offset and the
/// tag: for one offset the tags (`size | 1`, 2, 4) differ, so the three kinds never match
/// each other; across offsets a match is as likely as for random words.
fn key(salt: u64, b: u64, what: u64) -> u64 {
    mix(salt ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ what.rotate_left(32))
}

/// The check word of a used block at `b` of `size` bytes.
pub(crate) fn used_check(salt: u64, b: u64, size: u64) -> u64 {
    key(salt, b, size | USED)
}

/// The check word of a free block at `b` (independent of its size, so a free block grows or
/// shrinks with one store).
pub(crate) fn free_check(salt: u64, b: u64) -> u64 {
    key(salt, b, 2)
}

/// The check word left at `b` when its block is merged into a neighbour: no live block
/// matches it, and `free` reports it as a double free.
pub(crate) fn tombstone(salt: u64, b: u64) -> u64 {
    key(salt, b, 4)
}

/// What a used block's check word is xored with while the block sits in a process's
/// cache: no other kind of check word for the block matches the result, but for the
/// chance of a random word.
pub(crate) const CACHED_XOR: u64 = 0x6a09_e667_f3bc_c909;

/// The check word of a used block at `b` of `size` bytes that sits in a process's cache
/// (see `cache`): still used for the heap, but a double free to `free`. One xor away from
/// the used block's, so the cache moves a block between the two with one hash.
#[inline]
pub(crate) fn cached_check(salt: u64, b: u64, size: u64) -> u64 {
    used_check(salt, b, size) ^ CACHED_XOR
}

/// Whether `w1` is a valid check word for the used block at `b` of `size` bytes: handed
/// out, or in a process's cache.
#[inline]
pub(crate) fn is_used_check(salt: u64, b: u64, size: u64, w1: u64) -> bool {
    let u = used_check(salt, b, size);
    w1 == u || w1 == u ^ CACHED_XOR
}

/// Where a pool lies in its region: its header and classes fixed by the region's maximum
/// size, so an attacher computes them and compares them with what the header says; its
/// end where the region's committed size put it when the pool was made or last grew.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Region offset of the pool header (its lock).
    pub base: u64,
    /// Number of first-level classes.
    pub fl_count: u64,
    /// Region offset of the first block (64-aligned).
    pub heap_start: u64,
    /// Region offset just past the last block.
    pub heap_end: u64,
}

impl Geometry {
    /// The geometry of a pool at `base` in a region of `len` bytes that grows to `max`.
    pub fn new(base: u64, len: u64, max: u64) -> Result<Geometry, AllocError> {
        let heap_end = len & !(GRANULE - 1);
        let too_small = || AllocError::RegionTooSmall {
            size: len,
            needed: Geometry::smallest_region(base),
        };
        heap_end.checked_sub(base).ok_or_else(too_small)?;
        // Classes for the largest block the region will ever hold.
        let span = (max.max(len) & !(GRANULE - 1))
            .checked_sub(base)
            .ok_or_else(too_small)?;
        // The largest block is smaller than the span, so its class is below this count.
        let fl_count = class_of(span.max(MIN_BLOCK) & !(GRANULE - 1)).0 as u64 + 1;
        let heap_start = round_up(base + Self::header_bytes(fl_count), 64).ok_or_else(too_small)?;
        // A first block and the end block.
        match heap_start.checked_add(2 * MIN_BLOCK) {
            Some(end) if end <= heap_end => {}
            _ => return Err(too_small()),
        }
        Ok(Geometry {
            base,
            fl_count,
            heap_start,
            heap_end,
        })
    }

    /// The smallest region a pool at `base` fits in.
    pub fn smallest_region(base: u64) -> u64 {
        // The header grows with the classes, which grow with the span: the first class
        // count whose header and two blocks make a span needing no more classes.
        (1..64u64)
            .find_map(|fl| {
                let size = round_up(base + Self::header_bytes(fl), 64)? + 2 * MIN_BLOCK;
                let need = class_of((size - base) & !(GRANULE - 1)).0 as u64 + 1;
                (need <= fl).then_some(size)
            })
            .unwrap_or(u64::MAX)
    }

    /// Bytes of the pool header (lock and words) with `fl_count` first-level classes.
    fn header_bytes(fl_count: u64) -> u64 {
        LOCK_BYTES + 8 * Self::words_for(fl_count) as u64
    }

    fn words_for(fl_count: u64) -> usize {
        word::FIXED + (fl_count * (1 + SL_COUNT)) as usize
    }

    /// Number of words after the lock.
    pub fn words(&self) -> usize {
        Self::words_for(self.fl_count)
    }

    /// Index of the second-level bitmap of class `fl`.
    pub fn sl_bitmap(&self, fl: usize) -> usize {
        word::FIXED + fl
    }

    /// Index of the head of list `(fl, sl)`.
    pub fn head(&self, fl: usize, sl: usize) -> usize {
        word::FIXED + self.fl_count as usize + fl * SL_COUNT as usize + sl
    }

    /// Bytes of the heap.
    pub fn capacity(&self) -> u64 {
        self.heap_end - self.heap_start
    }

    /// Whether `b` may start a block: granule-aligned and room for a minimal block.
    pub fn is_block_start(&self, b: u64) -> bool {
        b >= self.heap_start
            && b % GRANULE == 0
            && b.checked_add(MIN_BLOCK).is_some_and(|e| e <= self.heap_end)
    }

    /// Whether a block at `b` (a block start) may have `size` bytes.
    pub fn fits(&self, b: u64, size: u64) -> bool {
        size >= MIN_BLOCK && size % GRANULE == 0 && size <= self.heap_end - b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_round_to_granules_with_a_minimum() {
        assert_eq!(block_size(0), Some(32));
        assert_eq!(block_size(1), Some(32));
        assert_eq!(block_size(16), Some(32));
        assert_eq!(block_size(17), Some(48));
        assert_eq!(block_size(4096), Some(4112));
        assert_eq!(block_size(u64::MAX - 3), None);
        assert_eq!(block_size(u64::MAX - 20), None);
    }

    #[test]
    fn small_classes_are_exact() {
        for size in (MIN_BLOCK..SMALL_LIMIT).step_by(GRANULE as usize) {
            assert_eq!(class_of(size), (0, (size / 16) as usize));
            assert_eq!(round_to_class(size), Some(size));
        }
    }

    #[test]
    fn large_classes_split_each_power_of_two_in_32() {
        assert_eq!(class_of(512), (1, 0));
        assert_eq!(class_of(512 + 16), (1, 1));
        assert_eq!(class_of(1023 & !15), (1, 31));
        assert_eq!(class_of(1024), (2, 0));
        assert_eq!(class_of(1024 + 32), (2, 1));
        assert_eq!(class_of(1 << 40), (32, 0));
        assert_eq!(class_of(!15u64), (55, 31));
    }

    #[test]
    fn classes_are_monotonic_and_rounding_reaches_a_class_start() {
        let mut last = (0, 0);
        let mut size = MIN_BLOCK;
        while size < 1 << 24 {
            let c = class_of(size);
            assert!(c >= last, "{size}");
            last = c;
            let r = round_to_class(size).unwrap();
            assert!(r >= size);
            // r is the smallest size of its class: the size just below is in a lower class.
            assert!(class_of(r - GRANULE) < class_of(r) || r == size && size < SMALL_LIMIT);
            // Every block of r's class or above holds `size`, and r's class is at most one
            // above size's.
            assert!(class_of(r) >= class_of(size));
            size += GRANULE * (1 + size / 64);
            size &= !(GRANULE - 1);
        }
        assert_eq!(round_to_class(!15u64), None);
    }

    #[test]
    fn gaps_align_the_payload_and_are_zero_or_a_whole_block() {
        for align in [1, 2, 4, 8, 16, 32, 64] {
            for b in (0..512).step_by(16) {
                let g = gap_for(b, align);
                assert_eq!((b + g + BLOCK_HEADER) % align, 0, "b={b} align={align}");
                assert!(g == 0 || g >= MIN_BLOCK);
                assert!(g <= align_slack(align));
                assert_eq!(g % GRANULE, 0);
            }
        }
        assert_eq!(gap_for(0, 64), 48);
        assert_eq!(gap_for(32, 64), 16 + 64);
        assert_eq!(gap_for(48, 64), 0);
    }

    #[test]
    fn check_words_differ_by_state_offset_size_and_salt() {
        let s = 0x1234_5678;
        let all = [
            used_check(s, 128, 32),
            used_check(s, 128, 48),
            used_check(s, 144, 32),
            used_check(s + 1, 128, 32),
            free_check(s, 128),
            free_check(s, 144),
            tombstone(s, 128),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn geometry_fits_the_header_and_classes_in_the_region() {
        let g = Geometry::new(128, 1 << 16, 1 << 16).unwrap();
        assert_eq!(g.heap_start % 64, 0);
        assert_eq!(g.heap_end, 1 << 16);
        assert!(g.heap_start >= 128 + LOCK_BYTES + 8 * g.words() as u64);
        assert!((class_of(g.capacity() & !15).0 as u64) < g.fl_count);
        let g = Geometry::new(128, (1 << 40) + 8, (1 << 40) + 8).unwrap();
        assert_eq!(g.heap_end, 1 << 40);
        assert_eq!(g.fl_count, 32);
        // A pool that grows has the classes of its maximum from the start.
        let small = Geometry::new(128, 1 << 16, 1 << 30).unwrap();
        assert_eq!(small.heap_end, 1 << 16);
        let big = Geometry::new(128, 1 << 30, 1 << 30).unwrap();
        assert_eq!(
            (small.fl_count, small.heap_start),
            (big.fl_count, big.heap_start)
        );
        let min = Geometry::smallest_region(128);
        assert!(Geometry::new(128, min, min).is_ok());
        assert!(matches!(
            Geometry::new(128, min - 16, min - 16),
            Err(AllocError::RegionTooSmall { .. })
        ));
        assert!(Geometry::new(128, 100, 100).is_err());
    }
}
