//! Value benchmarks: a round trip through the pool (`share`, then `to_val`, then the drop
//! that frees it) against a round trip through bincode (serialize, then deserialize) of
//! the equivalent plain Rust value, in one group so that the ratio is read directly; and a
//! handle's clone and drop against an `Arc`'s.

// criterion_group! defines a public function without a doc comment.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shmval::alloc::Pool;
use shmval::region::{Region, RegionName};
use shmval::{PoolExt, Tab, Val};

fn table(n: usize) -> (Val, HashMap<String, i64>) {
    let plain: HashMap<String, i64> = (0..n).map(|i| (format!("key{i}"), i as i64)).collect();
    let tab: Tab = plain
        .iter()
        .map(|(k, v)| (Val::from(k.as_str()), Val::from(*v)))
        .collect();
    (Val::Tab(tab), plain)
}

fn values(c: &mut Criterion) {
    let name = RegionName::new(format!("shmval-bench-values-{}", std::process::id()))
        .expect("a valid name");
    // Created here, unlinked when `region` and `pool` drop at the end of this function.
    let region = Arc::new(Region::create(&name, 64 << 20).expect("create the bench region"));
    let pool = Pool::create(region).expect("format the pool");

    let mut g = c.benchmark_group("values");
    for n in [10usize, 1000] {
        let (v, plain) = table(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("tab{n}/shmval"), |b| {
            b.iter(|| {
                let h = pool.share(black_box(&v)).expect("share");
                black_box(h.to_val().expect("to_val"))
            })
        });
        g.bench_function(format!("tab{n}/bincode"), |b| {
            b.iter(|| {
                let bytes = bincode::serialize(black_box(&plain)).expect("serialize");
                black_box(
                    bincode::deserialize::<HashMap<String, i64>>(&bytes).expect("deserialize"),
                )
            })
        });
        // Reading in place: share, then look every key up through the view.
        let keys: Vec<Val> = plain.keys().map(|k| Val::from(k.as_str())).collect();
        g.bench_function(format!("tab{n}/shmval_view"), |b| {
            b.iter(|| {
                let h = pool.share(black_box(&v)).expect("share");
                let t = h.as_tab().expect("a table");
                let mut sum = 0i64;
                for k in &keys {
                    sum += t
                        .get(k)
                        .expect("readable")
                        .expect("present")
                        .to::<i64>()
                        .expect("an integer");
                }
                black_box(sum)
            })
        });
    }

    let floats: Vec<f64> = (0..(1 << 20) / 8).map(|i| i as f64 * 0.5).collect();
    let v = Val::from(floats.clone());
    g.throughput(Throughput::Bytes(1 << 20));
    g.bench_function("f64_1MiB/shmval", |b| {
        b.iter(|| {
            let h = pool.share(black_box(&v)).expect("share");
            black_box(h.to_val().expect("to_val"))
        })
    });
    g.bench_function("f64_1MiB/bincode", |b| {
        b.iter(|| {
            let bytes = bincode::serialize(black_box(&floats)).expect("serialize");
            black_box(bincode::deserialize::<Vec<f64>>(&bytes).expect("deserialize"))
        })
    });
    g.bench_function("f64_1MiB/shmval_view", |b| {
        b.iter(|| {
            let h = pool.array_from(black_box(&floats[..])).expect("share");
            black_box(h.as_slice::<f64>().expect("f64s").iter().sum::<f64>())
        })
    });

    g.throughput(Throughput::Elements(1));
    let h = pool.share(&table(10).0).expect("share");
    g.bench_function("clone_drop/shmval", |b| {
        b.iter(|| drop(black_box(h.clone())))
    });
    let a = Arc::new(table(10).0);
    g.bench_function("clone_drop/arc", |b| b.iter(|| drop(black_box(a.clone()))));
    g.finish();
    drop(h);
}

criterion_group!(benches, values);
criterion_main!(benches);
