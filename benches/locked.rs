//! Locked-value benchmarks, group `locked`, each beside its baseline in the same run, so
//! that the ratios are read directly.
//!
//! - `update/<lock>/<n>proc`: one update of a shared counter by this process, while `n - 1`
//!   other processes do the same updates flat out on the same counter.
//!   - `shmval`: `lock`, `increment("n", 1)` of a `Tab`'s integer, unlock (the guard
//!     dropped), on a [`ShmLocked`] table of that one entry in a region made by `ShmMain`
//!     (the key is converted to a `Val` on each call, as `increment` takes it); the other
//!     processes attach with `ClientSide` and receive the table's handle through a pipe.
//!   - `pthread`: the floor: `pthread_mutex_lock`, `+= 1` on a plain `u64`,
//!     `pthread_mutex_unlock`, on a process-shared mutex (default type: not robust, no
//!     spinning) in an anonymous `memfd` mapping every process maps (see
//!     `common/floor.rs`).
//!
//!   The time is per update of this process, the others running the whole time; after
//!   each figure the count is checked against every process's updates, and what the
//!   others did is printed. This process is pinned to the first CPU; the others
//!   go on the second, the first, the second (on this 2-CPU machine `4proc` therefore has
//!   one other process on this process's CPU, and the wall time of an update includes the
//!   time slices the scheduler gives it, and any wait for a holder preempted in the middle
//!   of its update). With one CPU allowed, every process runs on it.
//! - `insert/<map>`: one process, uncontended. One iteration takes the lock, inserts key
//!   `k<i mod 64>` (absent) with the integer `i`, removes key `k<(i + 32) mod 64>` (present,
//!   inserted 32 iterations before), and unlocks: the map holds 32 keys of 2 or 3
//!   bytes throughout, and each iteration is one insert of a new key, one removal and one
//!   lock. `shmval` does it on a locked `Tab` (the key is converted to a `Val`, a `String`
//!   allocated, as `insert` takes it), `hashmap_mutex` on a `HashMap<String, i64>` under a
//!   `std::sync::Mutex` (the key is cloned into a `String`).
//! - `lookup/<map>`: one process, uncontended: lock, get of a present key (cycling through
//!   the 32), read of its integer, unlock, on the same two maps.
//!
//! The other processes are this binary run again with `SHMVAL_BENCH_ROLE` set. Each dies
//! with this process (`PR_SET_PDEATHSIG`), returns when told through the control words,
//! and is killed by a watchdog if a figure overruns. Each region's name is removed from
//! `/dev/shm` as soon as the other processes have attached (at once when there are none),
//! and the control words and the pthread floor are in an anonymous `memfd`, so nothing is
//! left behind even if the bench is killed.
//!
//! Defaults keep `cargo bench --bench locked` to about half a minute on 2 CPUs;
//! criterion's `--warm-up-time`, `--measurement-time` and `--sample-size` override them.

// criterion_group! style functions without doc comments.
#![allow(missing_docs)]
// std atomics are fine here; the crate's loom shim is for library code.
#![allow(clippy::disallowed_types)]

mod common;

use std::collections::HashMap;
use std::env;
use std::hint::black_box;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::floor::Mapping;
use common::*;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::{val, ShmLocked};

/// The environment variable giving another process its slot in [`COUNTS`].
const SLOT: &str = "SHMVAL_BENCH_SLOT";
/// The pipe through which the other processes receive the table's handle.
const BOARDS: &str = "boards";

/// Control words in the shared mapping, each on a cache line of its own.
const GO: usize = 0; // IDLE, then RUN while this process measures, then STOP
const READY: usize = 64; // other processes attached and waiting
const COUNTS: usize = 128; // each other process's number of updates, stored as it returns
/// The pthread floor, on a line of its own.
const FLOOR_AT: usize = 1024;
const IDLE: u64 = 0;
const RUN: u64 = 1;
const STOP: u64 = 2;

/// Process counts of the `update` figures.
const PROCS: [usize; 3] = [1, 2, 4];
/// Keys the `insert` and `lookup` figures cycle through; half are present at any time.
const KEYS: usize = 64;

/// One locked update: lock, increment, unlock.
fn shm_update(board: &ShmLocked) {
    let mut g = board.lock(WAIT).expect("lock");
    black_box(g.increment("n", 1).expect("increment"));
}

/// An other process: attaches, reports ready, waits for `RUN`, updates flat out until
/// `STOP`, and stores how many updates it made.
fn contender(lock: &str) {
    child_setup();
    let map = Mapping::from_stdin();
    let slot: usize = env_var(SLOT).parse().expect("a slot");
    match lock {
        "shmval" => {
            let side = ClientSide::new(env_var(REGION), BOARDS)
                .timeout(WAIT)
                .start()
                .expect("attach the boards pipe");
            let board = side
                .pipe()
                .dequeue(WAIT)
                .expect("the table's handle")
                .into_locked()
                .expect("a locked value");
            contend(&map, slot, || shm_update(&board));
        }
        "pthread" => {
            let floor = map.pthread_counter(FLOOR_AT);
            contend(&map, slot, || floor.update());
        }
        _ => panic!("unknown lock {lock}"),
    }
}

fn contend(map: &Mapping, slot: usize, update: impl Fn()) {
    let go = map.word64(GO);
    map.word64(READY).fetch_add(1, Ordering::Release);
    let mut patience = Patience::new(CHILD_IDLE);
    while go.load(Ordering::Acquire) == IDLE {
        if patience.exhausted() {
            panic!("not started within {CHILD_IDLE:?}");
        }
        std::hint::spin_loop();
    }
    let mut n = 0u64;
    while go.load(Ordering::Relaxed) == RUN {
        update();
        n += 1;
    }
    map.word64(COUNTS + 8 * slot).store(n, Ordering::Release);
}

/// The CPU of other process `k`: the second, the first, the second, ...
fn placement(cpus: Cpus, k: usize) -> usize {
    match cpus.second {
        Some(second) if k % 2 == 0 => second,
        _ => cpus.first,
    }
}

/// What one `update` figure needs of its lock: the update, and the count it reached.
trait Counter {
    fn update(&self);
    fn count(&self) -> u64;
}

impl Counter for ShmLocked {
    fn update(&self) {
        shm_update(self)
    }

    fn count(&self) -> u64 {
        let g = self.lock(WAIT).expect("lock");
        g.get("n")
            .expect("get")
            .expect("n")
            .as_i64()
            .expect("an integer") as u64
    }
}

impl Counter for common::floor::PthreadCounter {
    fn update(&self) {
        common::floor::PthreadCounter::update(self)
    }

    fn count(&self) -> u64 {
        common::floor::PthreadCounter::count(self)
    }
}

/// `update/<lock>/<procs>proc`: starts `procs - 1` other processes on `counter`, measures
/// this process's updates while they run, stops them and checks the count.
fn update_figure(
    g: &mut BenchmarkGroup<'_, WallTime>,
    cpus: Cpus,
    lock: &str,
    procs: usize,
    map: &Mapping,
    region: Option<&ShmMain>,
    counter: &impl Counter,
) {
    let others = procs - 1;
    let env: Vec<(&str, String)> = region
        .map(|m| (REGION, m.region().name().as_str().to_owned()))
        .into_iter()
        .collect();
    let peers: Vec<Peer> = (0..others)
        .map(|k| {
            let mut env = env.clone();
            env.push((SLOT, k.to_string()));
            Peer::spawn(
                &format!("locked-{lock}"),
                placement(cpus, k),
                &env,
                Stdio::from(map.fd()),
                Stdio::null(),
            )
        })
        .collect();
    let mut patience = Patience::new(WAIT);
    while map.word64(READY).load(Ordering::Acquire) < others as u64 {
        if patience.exhausted() {
            panic!("the other processes did not attach within {WAIT:?}");
        }
        std::hint::spin_loop();
    }
    if let Some(m) = region {
        m.region().unlink();
    }
    let before = counter.count();
    map.word64(GO).store(RUN, Ordering::Release);
    let mut mine = 0u64;
    g.bench_function(format!("update/{lock}/{procs}proc"), |b| {
        b.iter_custom(|iters| {
            mine += iters;
            let start = Instant::now();
            for _ in 0..iters {
                counter.update();
            }
            start.elapsed()
        })
    });
    map.word64(GO).store(STOP, Ordering::Release);
    for p in peers {
        p.finish();
    }
    let theirs: Vec<u64> = (0..others)
        .map(|k| map.word64(COUNTS + 8 * k).load(Ordering::Acquire))
        .collect();
    let total = mine + theirs.iter().sum::<u64>();
    assert_eq!(counter.count() - before, total, "updates lost");
    if others > 0 {
        eprintln!(
            "  update/{lock}/{procs}proc: {mine} updates timed here; the others made \
             {theirs:?} meanwhile (and between criterion's runs)"
        );
    }
}

fn update_shmval(g: &mut BenchmarkGroup<'_, WallTime>, cpus: Cpus) {
    for procs in PROCS {
        let map = Mapping::create();
        let name = region_name("locked");
        // Unlinked once the other processes have attached (and again when it drops).
        let main = ShmMain::new(name.as_str(), 1 << 20)
            .start()
            .expect("create the bench region");
        let server = ServerSide::new(name.as_str(), BOARDS, 4)
            .start()
            .expect("pipe boards");
        let board = ShmLocked::new(main.pool(), val!({"n": 0})).expect("the table");
        for _ in 1..procs {
            server
                .pipe()
                .enqueue(board.clone().into_val(), WAIT)
                .expect("send the handle");
        }
        update_figure(g, cpus, "shmval", procs, &map, Some(&main), &board);
    }
}

fn update_pthread(g: &mut BenchmarkGroup<'_, WallTime>, cpus: Cpus) {
    for procs in PROCS {
        let map = Mapping::create();
        let floor = map.pthread_counter(FLOOR_AT);
        // SAFETY: the mapping was just made; no other process has it yet.
        unsafe { floor.init() };
        update_figure(g, cpus, "pthread", procs, &map, None, floor);
    }
}

/// The keys `k0` .. `k63`.
fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("k{i}")).collect()
}

/// `insert/*` and `lookup/*`, in one process.
fn maps(g: &mut BenchmarkGroup<'_, WallTime>) {
    let keys = keys();
    let name = region_name("locked-map");
    let main = ShmMain::new(name.as_str(), 1 << 20)
        .start()
        .expect("create the bench region");
    // Nobody attaches: the name can go now.
    main.region().unlink();
    let board = ShmLocked::new(main.pool(), val!({})).expect("the table");
    let std_map = Mutex::new(HashMap::<String, i64>::new());
    {
        let mut t = board.lock(WAIT).expect("lock");
        let mut m = std_map.lock().expect("lock");
        // The keys the first 32 iterations remove.
        for (i, k) in keys.iter().enumerate().skip(KEYS / 2) {
            t.insert(k.as_str(), i as i64).expect("insert");
            m.insert(k.clone(), i as i64);
        }
    }

    // Iterations done on each map: after `n`, it holds the keys `k<(n + 32 + j) mod 64>`
    // for `j` in 0..32.
    let (mut n_shm, mut n_std) = (0usize, 0usize);
    g.bench_function("insert/shmval", |b| {
        b.iter(|| {
            let i = n_shm;
            let mut t = board.lock(WAIT).expect("lock");
            assert!(
                !t.insert(keys[i % KEYS].as_str(), i as i64).expect("insert"),
                "a new key"
            );
            assert!(
                t.remove(keys[(i + KEYS / 2) % KEYS].as_str())
                    .expect("remove"),
                "a present key"
            );
            n_shm += 1;
        })
    });
    g.bench_function("insert/hashmap_mutex", |b| {
        b.iter(|| {
            let i = n_std;
            let mut m = std_map.lock().expect("lock");
            assert!(
                m.insert(keys[i % KEYS].clone(), i as i64).is_none(),
                "a new key"
            );
            assert!(
                m.remove(keys[(i + KEYS / 2) % KEYS].as_str()).is_some(),
                "a present key"
            );
            n_std += 1;
        })
    });

    let present = |n: usize, j: usize| keys[(n + KEYS / 2 + j % (KEYS / 2)) % KEYS].as_str();
    let mut j = 0usize;
    g.bench_function("lookup/shmval", |b| {
        b.iter(|| {
            let t = board.lock(WAIT).expect("lock");
            let v = t
                .get(present(n_shm, j))
                .expect("get")
                .expect("a present key");
            black_box(v.as_i64().expect("an integer"));
            j += 1;
        })
    });
    let mut j = 0usize;
    g.bench_function("lookup/hashmap_mutex", |b| {
        b.iter(|| {
            let m = std_map.lock().expect("lock");
            black_box(*m.get(present(n_std, j)).expect("a present key"));
            j += 1;
        })
    });
    drop(board);
    drop(main);
}

fn locked_benches(c: &mut Criterion) {
    let cpus = Cpus::detect();
    let _restore = Unpin::save();
    pin(cpus.first);
    let mut g = c.benchmark_group("locked");
    update_shmval(&mut g, cpus);
    update_pthread(&mut g, cpus);
    maps(&mut g);
    g.finish();
}

fn main() {
    if let Ok(role) = env::var(ROLE) {
        match role.as_str() {
            "locked-shmval" => contender("shmval"),
            "locked-pthread" => contender("pthread"),
            _ => panic!("unknown role {role}"),
        }
        return;
    }
    // Defaults for the whole group; criterion's own flags override them.
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(50)
        .configure_from_args();
    locked_benches(&mut c);
    c.final_summary();
}
