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
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use common::contend::{contend, pool_pair, Batches, Contender};
use common::*;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use shmval::alloc::Pool;
use shmval::region::{Region, RegionName};

const SIZES: [u64; 3] = [16, 256, 4096];

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

    let mut contender = Contender::start(pool, other);
    g.bench_function("shmval-2proc/16", |b| {
        b.iter_custom(|iters| contender.batches.contended(iters, || pool_pair(pool, 16)))
    });
    contender.finish();

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
            "alloc-pairs" => {
                child_setup();
                contend::pool_child();
            }
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
