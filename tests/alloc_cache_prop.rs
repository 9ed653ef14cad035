//! Random allocations and frees from several handles of one pool, each registered as a
//! process of its own with its own block cache (a block freed by a handle other than the
//! one that allocated it goes to the freer's cache), with caches given back and handles
//! detaching and attaching again, against a model of which blocks are live: the pool's
//! used-block listing and counters match the model exactly after every step, no live
//! block is overwritten, a stale offset is always refused, and once everything is freed
//! and every handle gone the pool is one free block again.

// std atomics are fine here; the crate's loom shim is for library code.
#![allow(clippy::disallowed_types)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::TestName;
use proptest::prelude::*;
use shmval::alloc::{AllocError, Pool};
use shmval::region::{Offset, Region, RegionName};

const BYTES: u64 = 1 << 20;
const HANDLES: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Alloc { h: usize, size: u64, align_log: u32 },
    Free { h: usize, pick: usize },
    FreeStale { h: usize, pick: usize },
    GiveBack { h: usize },
    Reattach { h: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..HANDLES, prop_oneof![3 => 0u64..200, 1 => 0u64..3000], 0u32..7)
            .prop_map(|(h, size, align_log)| Op::Alloc { h, size, align_log }),
        5 => (0..HANDLES, any::<usize>()).prop_map(|(h, pick)| Op::Free { h, pick }),
        1 => (0..HANDLES, any::<usize>()).prop_map(|(h, pick)| Op::FreeStale { h, pick }),
        1 => (0..HANDLES).prop_map(|h| Op::GiveBack { h }),
        1 => (0..HANDLES).prop_map(|h| Op::Reattach { h }),
    ]
}

struct World {
    name: RegionName,
    /// The creator's handle (keeps the region), then one attached handle per process.
    creator: Pool,
    handles: Vec<Option<Pool>>,
    /// Live blocks: offset -> (bytes asked for, tag written into its first and last byte).
    live: BTreeMap<u64, (u64, u8)>,
    /// Offsets freed and not handed out since.
    stale: Vec<u64>,
    tag: u8,
    initial_largest: u64,
}

impl World {
    fn new(name: &TestName) -> World {
        let rn = RegionName::new(name.as_str()).unwrap();
        let creator = Pool::create(Arc::new(Region::create(&rn, BYTES).unwrap())).unwrap();
        let initial_largest = creator.stats().unwrap().largest_free;
        let handles = (0..HANDLES).map(|_| Some(attach(&rn))).collect();
        World {
            name: rn,
            creator: creator.without_cache(),
            handles,
            live: BTreeMap::new(),
            stale: Vec::new(),
            tag: 0,
            initial_largest,
        }
    }

    fn pool(&mut self, h: usize) -> &Pool {
        if self.handles[h].is_none() {
            self.handles[h] = Some(attach(&self.name));
            // Attaching made the handle's cache record, which may have taken the place of
            // a block the model freed: such offsets are no longer stale.
            self.stale.clear();
        }
        self.handles[h].as_ref().unwrap()
    }

    /// The first and last of `len` bytes at `off`.
    fn ends(&self, off: u64, len: u64) -> [&AtomicByte; 2] {
        let region = self.creator.region();
        // SAFETY: the model owns every live block and reads or writes its bytes only
        // through atomics.
        [off, off + len - 1]
            .map(|at| unsafe { region.resolve::<AtomicByte>(Offset::new(at)) }.unwrap())
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Alloc { h, size, align_log } => {
                let align = 1u64 << align_log;
                match self.pool(h).alloc(size, align) {
                    Ok(off) => {
                        let off = off.get();
                        assert_eq!(off % align.max(16), 0, "{off:#x} not aligned to {align}");
                        let len = size.max(1);
                        self.tag = self.tag.wrapping_add(1);
                        for b in self.ends(off, len) {
                            b.store(self.tag, R);
                        }
                        assert!(self.live.insert(off, (len, self.tag)).is_none());
                        self.stale.retain(|&s| s != off);
                    }
                    Err(AllocError::OutOfMemory { .. }) => {}
                    Err(e) => panic!("alloc({size}, {align}): {e}"),
                }
            }
            Op::Free { h, pick } => {
                if self.live.is_empty() {
                    return;
                }
                let off = *self.live.keys().nth(pick % self.live.len()).unwrap();
                let (len, tag) = self.live.remove(&off).unwrap();
                let [first, last] = self.ends(off, len);
                assert_eq!(
                    (first.load(R), last.load(R)),
                    (tag, tag),
                    "live block {off:#x} overwritten"
                );
                // SAFETY: a live block of the model's, used by nothing else.
                unsafe { self.pool(h).free(Offset::new(off)) }.unwrap();
                self.stale.push(off);
            }
            Op::FreeStale { h, pick } => {
                // Attached first: attaching forgets what may be reused.
                self.pool(h);
                if self.stale.is_empty() {
                    return;
                }
                let off = self.stale[pick % self.stale.len()];
                let before = self.pool(h).used_blocks().unwrap();
                // SAFETY: an offset the model freed and nobody allocated since: the pool
                // must refuse it without a change.
                let r = unsafe { self.pool(h).free(Offset::new(off)) };
                assert!(
                    matches!(
                        r,
                        Err(AllocError::DoubleFree { .. } | AllocError::InvalidOffset { .. })
                    ),
                    "a stale free of {off:#x} gave {r:?}"
                );
                assert_eq!(self.pool(h).used_blocks().unwrap(), before);
            }
            Op::GiveBack { h } => self.pool(h).give_back_cache_now().unwrap(),
            Op::Reattach { h } => self.handles[h] = None,
        }
    }

    fn check(&self) {
        let s = self.creator.stats().unwrap();
        let used = self.creator.used_blocks().unwrap();
        let listed: Vec<u64> = used.iter().map(|b| b.offset.get()).collect();
        let model: Vec<u64> = self.live.keys().copied().collect();
        assert_eq!(listed, model, "the used blocks are the model's live blocks");
        assert_eq!(s.live_allocations, model.len() as u64, "{s:?}");
        let bytes: u64 = used.iter().map(|b| b.size + 16).sum();
        assert_eq!(s.used, bytes, "{s:?}");
        assert_eq!(s.used + s.free, s.capacity, "{s:?}");
        self.creator.verify().unwrap();
    }
}

type AtomicByte = std::sync::atomic::AtomicU8;
const R: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;

/// A handle of a process of its own, its cache made (by a first free).
fn attach(name: &RegionName) -> Pool {
    let pool = Pool::attach(Arc::new(Region::attach(name).unwrap())).unwrap();
    let off = pool.alloc(0, 16).unwrap();
    // SAFETY: allocated just above, used by nothing.
    unsafe { pool.free(off) }.unwrap();
    pool
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn caches_keep_the_pool_exact(ops in proptest::collection::vec(op(), 1..160)) {
        let name = TestName::new("cache-prop");
        let mut w = World::new(&name);
        for op in &ops {
            w.apply(op);
            w.check();
        }
        for i in 0..w.live.len() {
            w.apply(&Op::Free { h: i % HANDLES, pick: 0 });
        }
        w.handles.clear();
        w.check();
        let s = w.creator.stats().unwrap();
        prop_assert_eq!((s.used, s.cached, s.free_blocks), (0, 0, 1), "{:?}", s);
        prop_assert_eq!(s.largest_free, w.initial_largest);
    }
}
