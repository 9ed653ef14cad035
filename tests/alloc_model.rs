//! The pool against a reference model: random alloc/free sequences on a real region,
//! checking placement, alignment, bounds, exact statistics, error cases and the final
//! coalescing back to one block.

// The tests view payload words as std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::TestName;
use proptest::prelude::*;
use shmval::alloc::{AllocError, Pool, PoolStats, BLOCK_HEADER};
use shmval::region::{Offset, Region};

#[derive(Debug, Clone)]
enum Op {
    Alloc {
        size: u64,
        align: u64,
    },
    /// Frees the live block chosen by the index.
    Free(usize),
    /// Frees an arbitrary offset (skipped if it happens to be a live block).
    FreeRandom(u64),
    /// Frees an offset inside a live block.
    FreeInterior(usize, u64),
    /// Frees an offset freed before (and not handed out again).
    FreeAgain(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let size = prop_oneof![
        20 => 1u64..4096,
        1 => Just(0u64),
        1 => 4096u64..300_000,
    ];
    let align = (0u32..7).prop_map(|l| 1u64 << l);
    prop_oneof![
        6 => (size, align).prop_map(|(size, align)| Op::Alloc { size, align }),
        4 => any::<usize>().prop_map(Op::Free),
        1 => any::<u64>().prop_map(Op::FreeRandom),
        1 => (any::<usize>(), 1u64..1024).prop_map(|(i, k)| Op::FreeInterior(i, k)),
        1 => any::<usize>().prop_map(Op::FreeAgain),
    ]
}

/// What the model knows: live blocks by payload offset (requested, usable bytes), offsets
/// freed since, and the expected counters.
struct Model {
    live: BTreeMap<u64, (u64, u64)>,
    freed: Vec<u64>,
    used: u64,
    high: u64,
}

struct Harness {
    region: Arc<Region>,
    pool: Pool,
    model: Model,
    initial: PoolStats,
}

const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

impl Harness {
    fn word(&self, at: u64) -> &AtomicU64 {
        // SAFETY: the words the model reads and writes are block headers and payload it owns,
        // accessed only atomically, with no plain view of them.
        unsafe { self.region.resolve(Offset::new(at)) }.unwrap()
    }

    /// Writes the block's signature into its first and last payload words.
    fn sign(&self, off: u64, usable: u64) {
        self.word(off).store(off ^ SEED, Ordering::Relaxed);
        self.word(off + usable - 8)
            .store(!off ^ SEED, Ordering::Relaxed);
    }

    fn check_signature(&self, off: u64, usable: u64) {
        assert_eq!(
            self.word(off).load(Ordering::Relaxed),
            off ^ SEED,
            "{off:#x}"
        );
        assert_eq!(
            self.word(off + usable - 8).load(Ordering::Relaxed),
            !off ^ SEED,
            "{off:#x}"
        );
    }

    fn check_stats(&self) -> PoolStats {
        let s = self.pool.stats().unwrap();
        assert_eq!(s.capacity, self.initial.capacity);
        assert_eq!(s.live_allocations, self.model.live.len() as u64);
        assert_eq!(s.used, self.model.used);
        assert_eq!(s.free, s.capacity - s.used);
        assert_eq!(s.high_water, self.model.high);
        self.pool.verify().unwrap();
        s
    }

    /// An offset that is not live must be refused without any change.
    fn bad_free(&mut self, off: u64) {
        let before = self.pool.stats().unwrap();
        // SAFETY: the test owns every block of this pool and no view of it exists; an
        // offset that is not live is refused before anything changes.
        match unsafe { self.pool.free(Offset::new(off)) } {
            Err(AllocError::InvalidOffset { offset }) | Err(AllocError::DoubleFree { offset }) => {
                assert_eq!(offset, off)
            }
            other => panic!("free({off:#x}) of a non-live offset gave {other:?}"),
        }
        assert_eq!(self.pool.stats().unwrap(), before);
    }

    fn nth_live(&self, i: usize) -> Option<(u64, u64)> {
        let n = self.model.live.len();
        (n > 0).then(|| {
            let (&o, &(_, u)) = self.model.live.iter().nth(i % n).unwrap();
            (o, u)
        })
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Alloc { size, align } => self.alloc(size, align),
            Op::Free(i) => {
                let Some((off, usable)) = self.nth_live(i) else {
                    return;
                };
                self.check_signature(off, usable);
                // SAFETY: a live block the test allocated and nothing else uses.
                unsafe { self.pool.free(Offset::new(off)) }.unwrap();
                self.model.live.remove(&off);
                self.model.used -= usable + BLOCK_HEADER;
                self.model.freed.push(off);
            }
            Op::FreeRandom(x) => {
                let off = x % (self.region.len() + 256);
                if !self.model.live.contains_key(&off) {
                    self.bad_free(off);
                }
            }
            Op::FreeInterior(i, k) => {
                if let Some((off, usable)) = self.nth_live(i) {
                    self.bad_free(off + 1 + k % usable);
                    // Also a granule-aligned interior offset, which passes the cheap checks.
                    if usable > 16 {
                        self.bad_free(off + 16 * (1 + k % (usable / 16 - 1)).min(usable / 16 - 1));
                    }
                }
            }
            Op::FreeAgain(i) => {
                if !self.model.freed.is_empty() {
                    let off = self.model.freed[i % self.model.freed.len()];
                    self.bad_free(off);
                }
            }
        }
        self.check_stats();
    }

    fn alloc(&mut self, size: u64, align: u64) {
        let before = self.pool.stats().unwrap();
        let block = (size.max(1).div_ceil(16) * 16 + BLOCK_HEADER).max(32);
        match self.pool.alloc(size, align) {
            Ok(off) => {
                let off = off.get();
                let usable = usable_size(&self.pool, off);
                assert_eq!(off % align.max(16), 0, "alignment");
                assert!(usable >= size.max(1), "usable {usable} < {size}");
                // At most one granule more than asked, when the rest was too small to keep.
                assert!(
                    usable + BLOCK_HEADER <= block + 16,
                    "usable {usable} for {size}"
                );
                assert!(off >= self.region.data_start().get() + BLOCK_HEADER);
                assert!(off + usable <= self.region.len(), "out of bounds");
                // Disjoint from its neighbours, headers included.
                if let Some((&o, &(_, u))) = self.model.live.range(..off).next_back() {
                    assert!(o + u + BLOCK_HEADER <= off, "overlaps {o:#x}");
                }
                if let Some((&o, _)) = self.model.live.range(off..).next() {
                    assert!(off + usable + BLOCK_HEADER <= o, "overlaps {o:#x}");
                }
                self.sign(off, usable);
                self.model.live.insert(off, (size, usable));
                self.model.freed.retain(|&f| f != off);
                self.model.used += usable + BLOCK_HEADER;
                self.model.high = self.model.high.max(self.model.used);
            }
            Err(AllocError::OutOfMemory {
                requested,
                largest_free,
            }) => {
                assert_eq!(requested, size);
                assert_eq!(largest_free, before.largest_free);
                if align <= 16 {
                    // Exact: a request fails only when no free block holds it.
                    assert!(size > largest_free, "{size} refused, {largest_free} free");
                }
                assert_eq!(self.pool.stats().unwrap(), before);
            }
            Err(AllocError::TooLarge { size: s }) => {
                assert_eq!(s, size);
                assert!(block > before.capacity);
            }
            Err(e) => panic!("alloc({size}, {align}): {e}"),
        }
    }

    fn free_everything(&mut self) {
        let live: Vec<_> = self.model.live.iter().map(|(&o, &(_, u))| (o, u)).collect();
        for (off, usable) in live {
            self.check_signature(off, usable);
            // SAFETY: a live block the test allocated and nothing else uses.
            unsafe { self.pool.free(Offset::new(off)) }.unwrap();
            self.model.live.remove(&off);
            self.model.used -= usable + BLOCK_HEADER;
        }
        let s = self.check_stats();
        assert_eq!(s.used, 0);
        assert_eq!(s.free_blocks, 1);
        assert_eq!(s.largest_free, self.initial.largest_free);
    }
}

fn run(region_size: u64, ops: &[Op]) {
    let name = TestName::new("alloc-model");
    let region = Arc::new(Region::create(&name, region_size).unwrap());
    let pool = Pool::create(region.clone()).unwrap().without_cache();
    let initial = pool.stats().unwrap();
    assert_eq!(initial.free_blocks, 1);
    let mut h = Harness {
        region,
        pool,
        model: Model {
            live: BTreeMap::new(),
            freed: Vec::new(),
            used: 0,
            high: 0,
        },
        initial,
    };
    for op in ops {
        h.apply(op);
    }
    h.free_everything();
    // Everything freed: the pool serves again, up to its whole heap.
    let off = h.pool.alloc(h.initial.largest_free, 8).unwrap();
    // SAFETY: allocated just above; nothing else uses it.
    unsafe { h.pool.free(off) }.unwrap();
}

/// The usable size of the live block at `off`, as the pool lists it.
fn usable_size(pool: &Pool, off: u64) -> u64 {
    pool.used_blocks()
        .unwrap()
        .into_iter()
        .find(|b| b.offset.get() == off)
        .expect("a live block")
        .size
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_pool_matches_the_model(
        region_size in prop_oneof![Just(64u64 << 10), Just(256u64 << 10), Just(1u64 << 20)],
        ops in prop::collection::vec(op(), 1..300),
    ) {
        run(region_size, &ops);
    }
}

#[test]
fn filling_a_small_pool_and_draining_it() {
    let ops: Vec<Op> = (0..400)
        .map(|i| Op::Alloc {
            size: 1 + (i * 97) % 3000,
            align: 1 << (i % 7),
        })
        .chain((0..400).map(|i| Op::Free(i * 7)))
        .collect();
    run(64 << 10, &ops);
}
