//! Allocator benchmarks, in one run so that the ratios are read directly.
//!
//! - `alloc_free/<allocator>/<bytes>`: an alloc+free pair in one process, uncontended, from
//!   the shared pool (`shmval`) and from the process's own allocator (`system`, glibc
//!   with its per-thread cache).
//! - `alloc_contended/<allocator>/16`: the same 16-byte pair while a second party does
//!   pairs at the same time on the other CPU: for `shmval-2proc` a second process attached
//!   to the same pool (both pinned, one per CPU), for `system-2threads` a second thread of
//!   this process. The time is per pair of this process, both running flat out, so a
//!   figure twice the uncontended one means the two parties got no parallelism at all.
//!   The pool is one lock and one set of free lists shared by every process: under
//!   contention its lock and metadata lines move between the CPUs on every pair, while
//!   glibc's thread caches share nothing.
//! - `grow/<what>/32MiB`: growing a pool by 32 MiB (its file's pages allocated, the heap
//!   extended) beside `posix_fallocate` of 32 MiB alone: what a growth costs per MiB
//!   over the floor every growth that never faults later pays.
//!
//! The child is this binary run again with `SHMVAL_BENCH_ROLE` set; it dies with this
//! process and the region's name is unlinked as soon as it has attached.

// criterion_group! style functions without doc comments.
#![allow(missing_docs)]
// std atomics are fine here; the crate's loom shim is for library code.
#![allow(clippy::disallowed_types)]

mod common;

use std::alloc::Layout;
use std::env;
use std::hint::black_box;
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use shmval::alloc::Pool;
use shmval::region::{Offset, Region, RegionName};

const SIZES: [u64; 3] = [16, 256, 4096];

/// The environment variable giving the child the control block's offset.
const CTRL: &str = "SHMVAL_BENCH_CTRL";

/// Words of the control block shared by the two contending processes.
const GO: usize = 0; // generation the parent starts; the child runs `ITERS` pairs for it
const ITERS: usize = 1;
const DONE: usize = 2; // generation the child has finished
const READY: usize = 3; // set by the child once attached
const STOP: u64 = u64::MAX;

/// An alloc+free pair of `size` bytes from `pool`.
fn pool_pair(pool: &Pool, size: u64) {
    let off = pool.alloc(black_box(size), 8).expect("alloc");
    // SAFETY: the block was allocated just above and nothing else uses it.
    unsafe { pool.free(black_box(off)) }.expect("free");
}

/// An alloc+free pair of `layout` from the global allocator.
fn system_pair(layout: Layout) {
    // SAFETY: the layout has a non-zero size; the pointer is freed with the same layout
    // it was allocated with, once.
    unsafe {
        let p = std::alloc::alloc(black_box(layout));
        assert!(!p.is_null());
        std::alloc::dealloc(black_box(p), layout);
    }
}

/// Spins until `word` reaches `want` (or [`STOP`]), or panics past `limit`.
fn await_word(word: &AtomicU64, want: u64, limit: Duration) -> u64 {
    let mut patience = Patience::new(limit);
    loop {
        let v = word.load(Ordering::Acquire);
        if v == want || v == STOP {
            return v;
        }
        if patience.exhausted() {
            panic!("the other party did not reach {want} within {limit:?}");
        }
        std::hint::spin_loop();
    }
}

/// The other party's batches, through the control words: the parent starts one
/// generation of `iters` pairs and waits for it to be done.
struct Batches<'a> {
    ctrl: &'a [AtomicU64; 8],
    generation: u64,
}

impl Batches<'_> {
    /// Times `iters` pairs here while the other party does as many there.
    fn contended(&mut self, iters: u64, pair: impl Fn()) -> Duration {
        self.generation += 1;
        self.ctrl[ITERS].store(iters, Ordering::Relaxed);
        self.ctrl[GO].store(self.generation, Ordering::Release);
        let start = Instant::now();
        for _ in 0..iters {
            pair();
        }
        let t = start.elapsed();
        await_word(&self.ctrl[DONE], self.generation, WAIT);
        t
    }

    /// Tells the other party to return.
    fn stop(&self) {
        self.ctrl[GO].store(STOP, Ordering::Release);
    }
}

/// The loop of the contending party: waits for each generation, runs its pairs, reports.
fn contend(ctrl: &[AtomicU64; 8], pair: impl Fn()) {
    let mut generation = 0u64;
    loop {
        // Any generation but the last one done (or STOP); the parent may take a while
        // between batches (criterion's analysis): wait long, napping once idle.
        let mut patience = Patience::new(CHILD_IDLE);
        let g = loop {
            let g = ctrl[GO].load(Ordering::Acquire);
            if g != generation {
                break g;
            }
            if patience.exhausted() {
                panic!("no batch within {CHILD_IDLE:?}");
            }
            std::hint::spin_loop();
        };
        if g == STOP {
            return;
        }
        for _ in 0..ctrl[ITERS].load(Ordering::Relaxed) {
            pair();
        }
        generation = g;
        ctrl[DONE].store(g, Ordering::Release);
    }
}

/// The child role: attaches the pool and contends until told to stop.
fn pool_child() {
    child_setup();
    let name = RegionName::new(env_var(REGION)).expect("a valid name");
    let region = Arc::new(Region::attach(&name).expect("attach the bench region"));
    let pool = Pool::attach(region.clone()).expect("attach the pool");
    let off = Offset::new(env_var(CTRL).parse().expect("an offset"));
    // SAFETY: the control block is a raw block of the bench, accessed only atomically by both
    // processes.
    let ctrl: &[AtomicU64; 8] = unsafe { region.resolve(off) }.expect("the control block");
    ctrl[READY].store(1, Ordering::Release);
    contend(ctrl, || pool_pair(&pool, 16));
}

/// Bytes one growth figure grows by.
const GROWTH: u64 = 32 << 20;

/// `grow/<what>/32MiB`: a pool started at 1 MiB (maximum 64 MiB) grown by an allocation of
/// 32 MiB (`shmval`: the file's pages allocated, the heap extended, the block handed out
/// and freed), beside `posix_fallocate` of 32 MiB on a fresh file of `/dev/shm` alone
/// (`fallocate`), the floor of any growth that never faults later. Each iteration starts
/// from a fresh region or file (made outside the timing); throughput is per byte grown.
fn growth(c: &mut Criterion) {
    let mut g = c.benchmark_group("grow");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(GROWTH));
    let fresh = || {
        let name = RegionName::new(region_name("grow")).expect("a valid name");
        let region = shmval::region::CreateOptions::new()
            .max_size(64 << 20)
            .create(&name, 1 << 20)
            .expect("create a growing region");
        Pool::create(Arc::new(region)).expect("format the pool")
    };
    g.bench_function(BenchmarkId::new("shmval", "32MiB"), |b| {
        b.iter_batched(
            fresh,
            |pool| {
                let off = pool
                    .alloc(GROWTH - (1 << 20), 16)
                    .expect("a growing allocation");
                // SAFETY: the block was allocated just above and is used by nothing.
                unsafe { pool.free(off) }.expect("free");
                pool
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function(BenchmarkId::new("fallocate", "32MiB"), |b| {
        b.iter_batched(
            || {
                let path = format!("/dev/shm/{}", region_name("grow-floor"));
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .expect("a fresh file");
                let _ = std::fs::remove_file(&path);
                f
            },
            |f| {
                nix::fcntl::posix_fallocate(f.as_raw_fd(), 0, GROWTH as i64).expect("fallocate");
                f
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn alloc_free(c: &mut Criterion, keep: &Pool) {
    let mut g = c.benchmark_group("alloc_free");
    for size in SIZES {
        g.bench_with_input(BenchmarkId::new("shmval", size), &size, |b, &size| {
            b.iter(|| pool_pair(keep, size))
        });
        let layout = Layout::from_size_align(size as usize, 8).expect("a valid layout");
        g.bench_with_input(BenchmarkId::new("system", size), &layout, |b, &layout| {
            b.iter(|| system_pair(layout))
        });
    }
    g.finish();
}

fn alloc_contended(c: &mut Criterion, pool: &Pool, cpus: Cpus) {
    let Some(other) = cpus.second else {
        eprintln!("bench: one CPU only, no contended allocator figures");
        return;
    };
    let mut g = c.benchmark_group("alloc_contended");

    let region = pool.region();
    let off = pool.alloc(64, 64).expect("the control block");
    // SAFETY: the control block is a raw block of the bench, accessed only atomically by both
    // processes.
    let ctrl: &[AtomicU64; 8] = unsafe { region.resolve(off) }.expect("the control block");
    for w in ctrl {
        w.store(0, Ordering::Relaxed);
    }
    let child = Peer::spawn(
        "alloc-pairs",
        other,
        &[
            (REGION, region.name().as_str().to_owned()),
            (CTRL, off.get().to_string()),
        ],
        Stdio::null(),
        Stdio::null(),
    );
    let mut batches = Batches {
        ctrl,
        generation: 0,
    };
    // One batch untimed: the child has attached (so the name can go).
    await_word(&ctrl[READY], 1, WAIT);
    batches.contended(1000, || pool_pair(pool, 16));
    region.unlink();
    g.bench_function("shmval-2proc/16", |b| {
        b.iter_custom(|iters| batches.contended(iters, || pool_pair(pool, 16)))
    });
    batches.stop();
    child.finish();
    // SAFETY: the control block is ours; both processes are done with it.
    unsafe { pool.free(off) }.expect("free the control block");

    let layout = Layout::from_size_align(16, 8).expect("a valid layout");
    let ctrl = Arc::new(std::array::from_fn::<_, 8, _>(|_| AtomicU64::new(0)));
    let thread = {
        let ctrl = ctrl.clone();
        std::thread::spawn(move || {
            pin(other);
            contend(&ctrl, || system_pair(layout));
        })
    };
    let mut batches = Batches {
        ctrl: &ctrl,
        generation: 0,
    };
    g.bench_function("system-2threads/16", |b| {
        b.iter_custom(|iters| batches.contended(iters, || system_pair(layout)))
    });
    batches.stop();
    thread.join().expect("the contending thread");
    g.finish();
}

fn main() {
    if let Ok(role) = env::var(ROLE) {
        match role.as_str() {
            "alloc-pairs" => pool_child(),
            _ => panic!("unknown role {role}"),
        }
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let cpus = Cpus::detect();
    let _restore = Unpin::save();
    pin(cpus.first);

    let name = RegionName::new(region_name("alloc")).expect("a valid name");
    // Created here, unlinked when `pool` drops at the end (or early, once the child of
    // the contended group has attached).
    let region = Arc::new(Region::create(&name, 64 << 20).expect("create the bench region"));
    let pool = Pool::create(region).expect("format the pool");
    // A few live blocks, so the pair does not always split and re-merge the one big block.
    let keep: Vec<_> = (0..64)
        .map(|i| pool.alloc(16 + 48 * i, 8).expect("setup allocation"))
        .collect();
    alloc_free(&mut c, &pool);
    alloc_contended(&mut c, &pool, cpus);
    growth(&mut c);
    for off in keep {
        // SAFETY: these blocks were allocated above for the set-up and are used by nothing.
        unsafe { pool.free(off) }.expect("teardown free");
    }
    c.final_summary();
}
