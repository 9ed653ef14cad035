//! Random allocations and frees from several handles of one pool, each registered as a
//! process of its own, on several threads, each with its own block cache in each handle
//! (a block freed by a thread or handle other than the one that allocated it goes to the
//! freer's cache), with caches given back, threads exiting (their caches then go to the
//! next thread) and handles detaching and attaching again, against a model of which
//! blocks are live: the pool's used-block listing and counters match the model exactly
//! after every step, no live block is overwritten, a stale offset is always refused, and
//! once everything is freed and every handle gone the pool is one free block again.

// std atomics are fine here; the crate's loom shim is for library code.
#![allow(clippy::disallowed_types)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::mpsc;
use std::sync::Arc;

use common::TestName;
use proptest::prelude::*;
use shmval::alloc::{AllocError, Pool};
use shmval::region::{Offset, Region, RegionName};

const BYTES: u64 = 1 << 20;
const HANDLES: usize = 3;
/// Threads the operations run on: fewer than a process's cache records (the test's own
/// thread holds one too), so that each gets one.
const THREADS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Alloc {
        t: usize,
        h: usize,
        size: u64,
        align_log: u32,
    },
    Free {
        t: usize,
        h: usize,
        pick: usize,
    },
    FreeStale {
        t: usize,
        h: usize,
        pick: usize,
    },
    GiveBack {
        t: usize,
        h: usize,
    },
    Reattach {
        h: usize,
    },
    ThreadExit {
        t: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..THREADS, 0..HANDLES, prop_oneof![3 => 0u64..200, 1 => 0u64..3000], 0u32..7)
            .prop_map(|(t, h, size, align_log)| Op::Alloc { t, h, size, align_log }),
        5 => (0..THREADS, 0..HANDLES, any::<usize>()).prop_map(|(t, h, pick)| Op::Free { t, h, pick }),
        1 => (0..THREADS, 0..HANDLES, any::<usize>())
            .prop_map(|(t, h, pick)| Op::FreeStale { t, h, pick }),
        1 => (0..THREADS, 0..HANDLES).prop_map(|(t, h)| Op::GiveBack { t, h }),
        1 => (0..HANDLES).prop_map(|h| Op::Reattach { h }),
        1 => (0..THREADS).prop_map(|t| Op::ThreadExit { t }),
    ]
}

type Job = Box<dyn FnOnce() + Send>;

/// A thread the model's operations run on, one at a time, until it exits.
struct Worker {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn start() -> Worker {
        let (jobs, rx) = mpsc::channel::<Job>();
        let thread = std::thread::spawn(move || {
            for job in rx {
                job();
            }
        });
        Worker {
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    /// Runs `f` on this thread and waits for its result.
    fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.as_ref().unwrap().send(job).unwrap();
        rx.recv().expect("the job panicked on its thread")
    }
}

impl Drop for Worker {
    /// Ends the thread and waits for it: its thread-local state, and so its caches, are
    /// given back when this returns.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct World {
    name: RegionName,
    /// The creator's handle (keeps the region), then one attached handle per process.
    creator: Pool,
    handles: Vec<Option<Pool>>,
    workers: Vec<Worker>,
    /// The (thread, handle) pairs that have used their cache since they were new.
    touched: HashSet<(usize, usize)>,
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
            workers: (0..THREADS).map(|_| Worker::start()).collect(),
            touched: HashSet::new(),
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

    /// Handle `h` for a call on thread `t`, whose cache in it is made (or claimed) first:
    /// a record made may have taken the place of a block the model freed, so such
    /// offsets are no longer stale.
    fn pool_on(&mut self, t: usize, h: usize) -> Pool {
        let pool = self.pool(h).clone();
        if self.touched.insert((t, h)) {
            let p = pool.clone();
            self.workers[t].run(move || {
                let off = p.alloc(0, 16).unwrap();
                // SAFETY: allocated just above, used by nothing.
                unsafe { p.free(off) }.unwrap();
            });
            self.stale.clear();
        }
        pool
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
            Op::Alloc {
                t,
                h,
                size,
                align_log,
            } => {
                let align = 1u64 << align_log;
                let pool = self.pool_on(t, h);
                match self.workers[t].run(move || pool.alloc(size, align)) {
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
            Op::Free { t, h, pick } => {
                if self.live.is_empty() {
                    return;
                }
                let pool = self.pool_on(t, h);
                let off = *self.live.keys().nth(pick % self.live.len()).unwrap();
                let (len, tag) = self.live.remove(&off).unwrap();
                let [first, last] = self.ends(off, len);
                assert_eq!(
                    (first.load(R), last.load(R)),
                    (tag, tag),
                    "live block {off:#x} overwritten"
                );
                // SAFETY: a live block of the model's, used by nothing else.
                self.workers[t]
                    .run(move || unsafe { pool.free(Offset::new(off)) })
                    .unwrap();
                self.stale.push(off);
            }
            Op::FreeStale { t, h, pick } => {
                // Attached and its cache made first: that forgets what may be reused.
                let pool = self.pool_on(t, h);
                if self.stale.is_empty() {
                    return;
                }
                let off = self.stale[pick % self.stale.len()];
                let before = pool.used_blocks().unwrap();
                let p = pool.clone();
                // SAFETY: an offset the model freed and nobody allocated since: the pool
                // must refuse it without a change.
                let r = self.workers[t].run(move || unsafe { p.free(Offset::new(off)) });
                assert!(
                    matches!(
                        r,
                        Err(AllocError::DoubleFree { .. } | AllocError::InvalidOffset { .. })
                    ),
                    "a stale free of {off:#x} gave {r:?}"
                );
                assert_eq!(pool.used_blocks().unwrap(), before);
            }
            Op::GiveBack { t, h } => {
                let pool = self.pool_on(t, h);
                self.workers[t]
                    .run(move || pool.give_back_cache_now())
                    .unwrap();
            }
            Op::Reattach { h } => {
                self.handles[h] = None;
                self.touched.retain(|&(_, th)| th != h);
            }
            Op::ThreadExit { t } => {
                self.workers[t] = Worker::start();
                self.touched.retain(|&(tt, _)| tt != t);
            }
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
            w.apply(&Op::Free { t: i % THREADS, h: i % HANDLES, pick: 0 });
        }
        w.handles.clear();
        w.check();
        let s = w.creator.stats().unwrap();
        prop_assert_eq!((s.used, s.cached, s.free_blocks), (0, 0, 1), "{:?}", s);
        prop_assert_eq!(s.largest_free, w.initial_largest);
    }
}
