//! Starting sides, group `start`: what a pipe per request costs on a region this process
//! has attached, beside a crossbeam channel; and what a fresh process pays to attach to an
//! existing region, beside starting the same process without attaching.
//!
//! - `pipe/shmval`: start a `ServerSide` of a new pipe and a `ClientSide` of it, hand one
//!   value over (a boxed integer shared, sent, received, read), drop both (the pipe goes
//!   with its last user).
//! - `pipe/crossbeam`: a bounded crossbeam channel of the same capacity, one `Box<i64>`
//!   through it, dropped.
//! - `process/attach`: start this bench binary again as a child that starts a `ClientSide`
//!   of an existing pipe (attaching the region: mapping, registry slot, recovery pass,
//!   directory) and exits; `process/noop`: the same child exiting at once. The
//!   difference is the first attach.

// criterion_group! style functions without doc comments.
#![allow(missing_docs)]

use std::hint::black_box;
use std::process::Command;
use std::time::Duration;

use criterion::Criterion;
use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::PoolExt;

/// Set in the child: `attach REGION PIPE` or `noop`.
const ROLE: &str = "SHMVAL_BENCH_START_ROLE";

fn child(role: &str) {
    if let Some(rest) = role.strip_prefix("attach ") {
        let (region, pipe) = rest.split_once(' ').expect("attach REGION PIPE");
        let c = ClientSide::new(region, pipe)
            .timeout(Duration::from_secs(10))
            .start()
            .expect("attach");
        drop(black_box(c));
    }
}

fn start_benches(c: &mut Criterion) {
    let region = format!("shmval-bench-start-{}", std::process::id());
    let main = ShmMain::new(region.clone(), 4 << 20)
        .start()
        .expect("create the bench region");
    let _base = ServerSide::new(region.clone(), "base", 4)
        .start()
        .expect("the pipe children attach to");
    let mut g = c.benchmark_group("start");
    let mut n = 0u64;
    g.bench_function("pipe/shmval", |b| {
        b.iter(|| {
            n += 1;
            let name = format!("req{n}");
            let s = ServerSide::new(region.as_str(), name.as_str(), 4)
                .start()
                .expect("server side");
            let c = ClientSide::new(region.as_str(), name.as_str())
                .start()
                .expect("client side");
            let v = s.pool().share(&7i64.into()).expect("share");
            s.pipe().enq(v).expect("send");
            let got = c.pipe().deq().expect("receive");
            black_box(got.to::<i64>().expect("an integer"));
        })
    });
    g.bench_function("pipe/crossbeam", |b| {
        b.iter(|| {
            let (tx, rx) = crossbeam_channel::bounded::<Box<i64>>(4);
            tx.send(Box::new(7)).expect("send");
            black_box(*rx.recv().expect("receive"));
        })
    });
    let exe = std::env::current_exe().expect("this bench binary");
    for (id, role) in [
        ("process/noop", "noop".to_string()),
        ("process/attach", format!("attach {region} base")),
    ] {
        g.bench_function(id, |b| {
            b.iter(|| {
                let st = Command::new(&exe)
                    .env(ROLE, &role)
                    .status()
                    .expect("start the child");
                assert!(st.success(), "child {role}: {st}");
            })
        });
    }
    g.finish();
    drop(main);
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        child(&role);
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    start_benches(&mut c);
    c.final_summary();
}
