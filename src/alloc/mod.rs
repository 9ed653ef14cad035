//! The pool allocator inside a region: offsets only, TLSF size classes, boundary tags,
//! check words, per-thread caches of small blocks, and repair after a crash.
//!
//! A [`Pool`] owns everything from the region's [`data_start`](crate::region::Region::data_start)
//! to its end: a pool header, then the heap, a chain of blocks laid end to end. It stores
//! only offsets, so every process may map the region anywhere, and every shared word is an
//! atomic accessed under the pool's [`ShmMutex`](crate::sync::ShmMutex) (relaxed: the lock
//! orders them), so no process races on plain memory.
//!
//! # Why TLSF
//!
//! The heap is a two-level segregated fit allocator (TLSF, Masmano et al., 2004). Free
//! blocks sit on one of 32 lists per power of two of their size, with a bitmap per level,
//! so a fitting list is found with two bit scans and a block is unlinked or linked in
//! O(1); boundary tags let a freed block merge with both neighbours in O(1). The first
//! level is linear below 512 bytes: a class per 16-byte size, so small blocks, the common
//! case for values, get exact size classes without a separate small-object allocator
//! (which the original's fixed-size sub-allocators needed, with their own locks and
//! misreported statistics). Against the original's first-fit walk of one list (O(free
//! blocks) under the lock), TLSF bounds the time the lock is held, which matters when a
//! dozen processes share it. Fragmentation is that of a good-fit policy: low in
//! published measurements.
//!
//! A request is served by the head of the first non-empty list whose every block fits
//! (the request rounded up to a class start). If there is none, the few lists between the
//! request's own class and that one are scanned before [`AllocError::OutOfMemory`] is
//! returned, so a request fails only when no free block can hold it, and
//! [`PoolStats::largest_free`] is exact.
//!
//! # Blocks
//!
//! Blocks start at multiples of 16 bytes and are at least 32 bytes long. Each starts with
//! a 16-byte header; the payload follows, so every payload is 16-aligned. An allocation of
//! `n` bytes takes a block of `max(32, round_up(n, 16) + 16)` bytes (16 more when the rest
//! of the chosen free block would be too small to stand alone). An alignment of 32 or 64
//! cuts a leading gap of at least 32 bytes off the free block, which stays free.
//!
//! | word (offset in block) | used block                       | free block                              |
//! |------------------------|----------------------------------|-----------------------------------------|
//! | size (0)               | block size \| flags              | block size \| flags                     |
//! | check (8)              | `key(salt, offset, size \| 1)`   | `key(salt, offset, FREE)`               |
//! | 16                     | payload                          | next free block in the list (0 = none)  |
//! | 24                     | payload                          | previous free block in the list         |
//! | last (size − 8)        | payload                          | block size (footer; none in 32-byte blocks) |
//!
//! The flags are the size word's low bits (sizes are multiples of 16): bit 0, the block is
//! used; bit 1, the block before it is free; bit 2 (used blocks), the block holds a value
//! object, whose first payload words are only ever accessed through atomics.
//!
//! A block merged into its free predecessor or successor has its check word replaced by
//! `key(salt, offset, MERGED)` first. `key` is a fixed hash; the salt is random per pool.
//! `free` accepts an offset only if the header before it is in the heap and its check word
//! matches a used block of that size: an offset already freed reads `FREE` or `MERGED` and
//! is [`AllocError::DoubleFree`]; any other (interior, stale, random) matches with
//! negligible probability and is [`AllocError::InvalidOffset`]. Nothing changes in either
//! case. (An offset freed and then handed out again at the same place is indistinguishable
//! from the new block: offsets carry no generation.)
//!
//! A freed block looks for a free predecessor only if its own flag says there is one: the
//! words before a block are its predecessor's, which while that block is used are its
//! owner's payload, written with plain stores and never read by the allocator. Then the
//! predecessor is found from the word before the block (its footer), or 32 bytes before it
//! for a minimal block, and accepted only if that header is free with a valid check word and
//! its size reaches exactly the freed block. Valid free check words only ever stand at the
//! start of real free blocks (see below), so the footer, like every offset read from the
//! heap, is never trusted on its own.
//!
//! # Deferred frees
//!
//! A drop must not wait behind a holder of the pool lock that is stopped (SIGSTOP, a
//! debugger) or slow. `free_soon` (used by every drop) waits at most 200 us for the lock;
//! past that it pushes the block on a list in the pool header (the block's first payload
//! word links to the next, one compare-and-swap on the head, no lock), and the next
//! allocation or free of any process frees the list first. The lock holder takes a block
//! off the list and frees it with its offset recorded in a header word, so a holder killed
//! in between loses nothing: the next locker's repair finishes the free.

//! # Block caches
//!
//! In a pool of at least 512 KiB (or one that may grow to it), each thread of a registered
//! process keeps the small blocks (up to 2 KiB) it frees in a cache of its own, a list
//! per size in a record in the pool, and serves its next allocations of those sizes from
//! it: no lock, no atomic read-modify-write, no line another thread writes, no split or
//! merge. Sizes are cached by the granule up to 208 bytes, then four per doubling: a
//! request between two of those gets a block of the larger (at most a quarter more). A
//! process has up to 4 records: a thread claims one with its first small
//! allocation or free and keeps it until it exits, when the next thread may claim it;
//! threads past the fourth use the heap. A cached block stays used for the heap, with a
//! check word of its own that `free` refuses as a double free. A record holds at most 64
//! blocks a size and a 256th of the heap; it goes back to the heap when the process
//! detaches, when a request of its thread finds the heap full (with every record no
//! thread holds), on [`Pool::give_back_cache_now`], and, after the process dies, when a
//! survivor recovers (each of its steps is recorded so that a death at any of them loses
//! nothing: see `cache`). [`PoolStats::cached`] counts it; a handle made with
//! [`Pool::without_cache`] uses only the heap.

//! # Overhead
//!
//! 16 bytes a block, plus rounding to 16 (at most 15 bytes, 16 more at a split that
//! would leave a sliver); a minimal block holds 16 bytes of payload. The pool header is a
//! 16-byte lock and `14 + 33 × classes` words, where `classes` is about `log2(heap) - 8`:
//! 3.2 KiB for a 1 MiB region, 8.4 KiB for 1 TiB.
//!
//! # Crash consistency
//!
//! A process may die (SIGKILL) at any instruction, also while holding the pool lock. The
//! blocks form a chain walkable by their size words from the heap's start; everything
//! else (lists, bitmaps, footers, counters) is derived. Each operation orders its stores so
//! that the chain is valid after every one of them:
//!
//! | step                          | store order                                                                 | if the holder dies between                           |
//! |-------------------------------|-----------------------------------------------------------------------------|------------------------------------------------------|
//! | split (alloc, alignment gap)  | remainder's size word; the block's size (one store); remainder's check word | remainder inside the block (invisible) or a real free block with an unset check |
//! | alloc: hand out               | check word (used); size word with the used bit                              | a free block with a used check word                  |
//! | free: release                 | size word without the used bit; check word (free)                          | a free block with a used check word                  |
//! | free: merge                   | absorbed block's check word (tombstone); survivor's size (one store)        | two adjacent free blocks                             |
//!
//! When the next locker gets [`Acquired::OwnerDied`](crate::sync::Acquired::OwnerDied),
//! it walks the chain, checks every header (size a multiple of 16, at least 32, inside the
//! heap; a used block's check word), rewrites free blocks' check words, merges adjacent
//! free blocks, rebuilds the lists, bitmaps and footers, recomputes the counters (keeping
//! the larger high-water mark), then marks the lock consistent. If the chain is broken the
//! pool is poisoned: a flag in its header makes every later operation fail with
//! [`AllocError::Corrupted`]. A block whose allocation had set its used bit when its owner
//! died leaks (nobody holds its offset); a block being freed is free. Nothing else is lost.
//!
//! Because a free check word is written only after its block is real and replaced before
//! its block stops being one, no valid free check word is ever left inside another block,
//! which is what makes the predecessor lookup above safe even after a crash.
//!
//! - [`Pool`]: create, attach, alloc, free, stats, verify.
//! - [`PoolStats`]: a snapshot of use.
//! - [`AllocError`]: every failure.

mod block;
mod cache;
mod cache_table;
mod deferred;
mod error;
mod grow;
mod heap;
mod layout;
mod pool;
mod pool_cache;
mod recover;
mod stats;
mod thread_record;

pub use block::Block;
pub(crate) use deferred::defer_free_in;
pub use error::AllocError;
pub use grow::MIN_GROWTH;
pub use layout::{fingerprint, BLOCK_HEADER, GRANULE, MAX_ALIGN, MIN_BLOCK};
pub use pool::Pool;
pub use stats::{PoolStats, UsedBlock};

#[cfg(test)]
mod tests;
