//! Allocator benchmarks: an alloc+free pair from the shared pool against the same pair from
//! the process's own allocator, per size, in one group so that the ratio is read directly.

// criterion_group! defines a public function without a doc comment.
#![allow(missing_docs)]

use std::alloc::Layout;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use shmval::alloc::Pool;
use shmval::region::{Region, RegionName};

const SIZES: [u64; 3] = [16, 256, 4096];

fn alloc_free(c: &mut Criterion) {
    let name = RegionName::new(format!("shmval-bench-alloc-{}", std::process::id()))
        .expect("a valid name");
    // Created here, unlinked when `region` and `pool` drop at the end of this function.
    let region = Arc::new(Region::create(&name, 64 << 20).expect("create the bench region"));
    let pool = Pool::create(region).expect("format the pool");
    // A few live blocks, so the pair does not always split and re-merge the one big block.
    let keep: Vec<_> = (0..64)
        .map(|i| pool.alloc(16 + 48 * i, 8).expect("setup allocation"))
        .collect();

    let mut g = c.benchmark_group("alloc_free");
    for size in SIZES {
        g.bench_with_input(BenchmarkId::new("shmval", size), &size, |b, &size| {
            b.iter(|| {
                let off = pool.alloc(black_box(size), 8).expect("alloc");
                pool.free(black_box(off)).expect("free");
            })
        });
        let layout = Layout::from_size_align(size as usize, 8).expect("a valid layout");
        g.bench_with_input(BenchmarkId::new("system", size), &layout, |b, &layout| {
            b.iter(|| {
                // SAFETY: the layout has a non-zero size; the pointer is freed with the
                // same layout it was allocated with, once.
                unsafe {
                    let p = std::alloc::alloc(black_box(layout));
                    assert!(!p.is_null());
                    std::alloc::dealloc(black_box(p), layout);
                }
            })
        });
    }
    g.finish();
    for off in keep {
        pool.free(off).expect("teardown free");
    }
}

criterion_group!(benches, alloc_free);
criterion_main!(benches);
