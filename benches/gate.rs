//! The bench regression gate (`ci/bench-gate` runs it): measures the key figures with its
//! own tight loops, pinned, as medians of repeated runs, turns them into ratios to the
//! floors and baselines measured in the same run, and compares each ratio with the
//! committed `ci/bench-baseline.json`. Exits 1 when a ratio is worse (higher) than its
//! baseline by more than its tolerance. Only ratios are compared: absolute times vary from
//! machine to machine.
//!
//! Arguments (after `cargo bench --bench gate --`):
//! - `--update`: write the measured ratios as the new baseline (keeping each tolerance).
//! - `--baseline PATH`: the baseline file (default `ci/bench-baseline.json`).
//! - `--repeats N`: timed runs per figure (default 15); the median is used.
//! - `--full`: also measure every payload size for every transport (for the README's
//!   plot), and the streaming figures of pipe(2).
//! - `--figures PATH`: write every figure (name, median, min, max, unit) as JSON.
//!
//! Placement: this process runs on the first allowed CPU; a child on the second
//! (`diff`) or on the first too (`same`). Children are this binary re-executed with
//! `SHMVAL_BENCH_ROLE`; they die with it. Regions are unlinked as soon as the child has
//! attached, and the floors use an anonymous memfd, so nothing stays in `/dev/shm`.

#![allow(missing_docs)]
// std atomics are fine here; the crate's loom shim is for library code.
#![allow(clippy::disallowed_types)]

mod common;
#[path = "gate/ratios.rs"]
mod ratios;
#[path = "gate/report.rs"]
mod report;

use std::collections::BTreeMap;
use std::env;
use std::hint::black_box;
use std::io::{Read, Write};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::contend::{self, pool_pair, Contender};
use common::floor::{self, Mapping};
use common::rigs::*;
use common::*;
use serde_json::Value;
use shmval::alloc::Pool;
use shmval::queue::hop::HopKind;
use shmval::region::{Region, RegionName};
use shmval::sides::ShmMain;
use shmval::{val, PoolExt, ShmLocked, Tab, Val};

fn run_child(role: &str) {
    child_setup();
    match role {
        "shm-echo" => shm_echo(),
        "byte-echo" => byte_echo(),
        "shm-sink" => shm_sink(),
        "byte-sink" => byte_sink(),
        "floor" => floor::echo(floor::Kind::parse(&env_var(MODE))),
        "alloc-pairs" => contend::pool_child(),
        _ => panic!("unknown role {role}"),
    }
}

/// Longest a single timed run of a figure may take, in seconds; planned iteration counts
/// stay well under it on a healthy build.
const RUN_BUDGET: f64 = 0.5;

struct Gate {
    cpus: Cpus,
    repeats: usize,
    figures: BTreeMap<String, Figure>,
    /// The in-turn measurement each figure came from: figures of one group were measured
    /// run by run, so a ratio between them is the median of the per-run ratios.
    groups: BTreeMap<String, usize>,
}

/// Fresh process pairs (and crossbeam thread pairs) measured for the spinning round trip:
/// the best of them is the figure. Some pairs land in a slow mode of the VM's vCPUs for
/// their whole life (about 3x, whatever the code); a regression slows every pair.
const SPIN_PAIRS: usize = 3;

impl Gate {
    fn placement(&self, cores: &str) -> usize {
        match cores {
            "diff" => self
                .cpus
                .second
                .expect("two CPUs are needed for the diff-core figures"),
            _ => self.cpus.first,
        }
    }

    /// Runs `one(iters)` (which returns the time of `iters` operations) once untimed, then
    /// `repeats` times; records ns per operation.
    fn record(
        &mut self,
        name: &str,
        conditions: String,
        unit: &'static str,
        iters: u64,
        one: impl FnMut(u64) -> Duration,
    ) {
        self.record_all(vec![Timed::new(name, conditions, unit, iters, one)]);
    }

    /// Measures several figures in turn, run by run (figure 1, figure 2, ..., figure 1,
    /// ...), so that a ratio between them compares runs taken seconds apart: the host moves
    /// a virtual machine's vCPUs every few minutes, and every cross-CPU figure with them.
    /// Each is run once untimed first.
    fn record_all(&mut self, figs: Vec<Timed<'_>>) {
        let group = self.groups.len();
        for (name, f) in in_turn(figs, self.repeats, RUN_BUDGET) {
            self.groups.insert(name.clone(), group);
            eprintln!(
                "  {:<28} {:>12.1} {}   ({})",
                name,
                f.median(),
                f.unit,
                f.conditions
            );
            self.figures.insert(name, f);
        }
    }

    fn floor(&mut self, kind: floor::Kind, cores: &str, iters: u64) {
        let mut rig = FloorRig::start(kind, self.placement(cores));
        self.record_all(vec![rig.timed(cores, iters)]);
        rig.finish();
    }

    /// The spinning round trips across the two CPUs, measured in turn (see
    /// [`record_all`](Self::record_all)): the cache-line floor, crossbeam-channel between
    /// two threads, the bare ring and lane protocols between two threads, and our handle
    /// at each payload size and over one-to-one pipes, each but the floor from
    /// [`SPIN_PAIRS`] fresh pairs. The best pair of each is the figure (`name`); every
    /// pair is kept as `name#k`.
    fn spinning(&mut self, sizes: &[usize], iters: u64) {
        let cpu = self.placement("diff");
        let mut floor = FloorRig::start(floor::Kind::Cacheline, cpu);
        let mut cbs: Vec<CrossbeamRig> =
            (0..SPIN_PAIRS).map(|_| CrossbeamRig::start(cpu)).collect();
        let mut shms: Vec<ShmRig> = sizes
            .iter()
            .flat_map(|&size| (0..SPIN_PAIRS).map(move |_| size))
            .map(|size| ShmRig::start(true, cpu, size))
            .chain((0..SPIN_PAIRS).map(|_| ShmRig::start_one_to_one(cpu, 64)))
            .collect();
        let mut hops: Vec<HopRig> = [HopKind::Ring, HopKind::Lane]
            .into_iter()
            .flat_map(|kind| (0..SPIN_PAIRS).map(move |_| kind))
            .map(|kind| HopRig::start(kind, cpu))
            .collect();
        let mut figs = vec![floor.timed("diff", iters)];
        for (k, cb) in cbs.iter_mut().enumerate() {
            let mut t = cb.timed(iters);
            t.name = format!("{}#{k}", t.name);
            figs.push(t);
        }
        for (i, hop) in hops.iter_mut().enumerate() {
            let mut t = hop.timed(iters);
            t.name = format!("{}#{}", t.name, i % SPIN_PAIRS);
            figs.push(t);
        }
        for (i, shm) in shms.iter_mut().enumerate() {
            let mut t = shm.timed("diff", iters);
            t.name = format!("{}#{}", t.name, i % SPIN_PAIRS);
            figs.push(t);
        }
        self.record_all(figs);
        floor.finish();
        for cb in cbs {
            cb.finish();
        }
        for r in shms {
            r.finish();
        }
        drop(hops);
        self.keep_best("cb_spin_diff_64");
        self.keep_best("ring_hop_diff");
        self.keep_best("lane_hop_diff");
        self.keep_best("o2o_spin_diff_64");
        for &size in sizes {
            self.keep_best(&format!("shm_spin_diff_{size}"));
        }
    }

    /// Records the pair `name#k` with the lowest median as `name`.
    fn keep_best(&mut self, name: &str) {
        let best = (0..SPIN_PAIRS)
            .map(|k| format!("{name}#{k}"))
            .min_by(|a, b| self.get(a).total_cmp(&self.get(b)))
            .expect("pairs were measured");
        let fig = &self.figures[&best];
        let copy = Figure {
            runs: fig.runs.clone(),
            unit: fig.unit,
            conditions: format!("{} (best of {SPIN_PAIRS} pairs)", fig.conditions),
        };
        let group = self.groups[&best];
        self.figures.insert(name.to_string(), copy);
        self.groups.insert(name.to_string(), group);
    }

    /// The same-core figures the gate divides by one another, measured in turn: the futex
    /// floor, our blocking round trip, a Unix socket's and pipe(2)'s, and our stream. All
    /// are system calls and scheduling on one CPU, which the host slows and speeds as a
    /// whole; in turn, their ratios hold.
    fn same_core(&mut self) {
        let cpu = self.placement("same");
        let mut futex = FloorRig::start(floor::Kind::Futex, cpu);
        let mut block = ShmRig::start(false, cpu, 64);
        let mut uds = BytesRig::start("uds", cpu, 64, Payload::Floats);
        let mut pipe2 = BytesRig::start("pipe2", cpu, 64, Payload::Floats);
        let stream = ShmStream::start("gss", cpu, 1);
        let mut batch = stream_batch(&stream, "int");
        batch(1);
        stream.main.region().unlink();
        let grown = ShmStream::start_in("gsg", cpu, 1, true);
        let mut grown_batch = stream_batch(&grown, "int");
        grown_batch(1);
        grown.main.region().unlink();
        let figs = vec![
            futex.timed("same", 20_000),
            block.timed("same", 10_000),
            Timed::new(
                "uds_same_64",
                bytes_conditions("same", 64),
                "ns/rt",
                10_000,
                |n| uds.round_trips(n),
            ),
            Timed::new(
                "pipe2_same_64",
                bytes_conditions("same", 64),
                "ns/rt",
                10_000,
                |n| pipe2.round_trips(n),
            ),
            Timed::new(
                "stream_int_same",
                stream_conditions("same", "int"),
                "ns/item",
                100_000,
                &mut batch,
            ),
            Timed::new(
                "stream_int_same_grown",
                format!(
                    "{}, in a pool grown from 64 KiB",
                    stream_conditions("same", "int")
                ),
                "ns/item",
                100_000,
                &mut grown_batch,
            ),
        ];
        self.record_all(figs);
        drop((batch, grown_batch));
        grown.finish();
        futex.finish();
        block.finish();
        uds.finish();
        pipe2.finish();
        stream.finish();
    }

    /// The ratio `num / den`: for two figures measured in turn, the median of the per-run
    /// ratios (runs seconds apart share the host's mood); otherwise the ratio of medians.
    fn ratio(&self, num: &str, den: &str) -> f64 {
        let (a, b) = (&self.figures[num], &self.figures[den]);
        if self.groups.get(num) == self.groups.get(den) && a.runs.len() == b.runs.len() {
            let per_run: Vec<f64> = a.runs.iter().zip(&b.runs).map(|(x, y)| x / y).collect();
            return median(&per_run);
        }
        self.get(num) / self.get(den)
    }

    fn shm_rt(&mut self, spin: bool, cores: &str, size: usize, iters: u64) {
        let mut rig = ShmRig::start(spin, self.placement(cores), size);
        self.record_all(vec![rig.timed(cores, iters)]);
        rig.finish();
    }

    fn bytes_rt(&mut self, transport: &str, cores: &str, size: usize, iters: u64) {
        let mut rig = BytesRig::start(transport, self.placement(cores), size, Payload::Floats);
        self.record(
            &format!("{transport}_{cores}_{size}"),
            bytes_conditions(cores, size),
            "ns/rt",
            iters,
            |n| rig.round_trips(n),
        );
        rig.finish();
    }

    /// Streaming 1 -> 1: items a second of handles to a boxed integer (`int`) or to a
    /// 3-entry Tab (`tab3`), each shared by the producer, read and dropped by the
    /// consumer; or (`clone`) clones of one shared integer: a reference count up and down
    /// per item and no allocation, the hand-off itself.
    ///
    /// Diff-core, the same over a one-to-one pipe (a lane) is measured in turn with it
    /// (`stream_{item}_diff_o2o`).
    fn shm_stream(&mut self, item: &str, cores: &str, iters: u64) {
        let cpu = self.placement(cores);
        let rig = ShmStream::start("gst", cpu, 1);
        let o2o = (cores == "diff").then(|| ShmStream::start_one_to_one("gso", cpu));
        let mut batch = stream_batch(&rig, item);
        batch(1);
        rig.main.region().unlink();
        let mut o2o_batch = o2o.as_ref().map(|r| {
            let mut b = stream_batch(r, item);
            b(1);
            r.main.region().unlink();
            b
        });
        let mut figs = vec![Timed::new(
            &format!("stream_{item}_{cores}"),
            stream_conditions(cores, item),
            "ns/item",
            iters,
            &mut batch,
        )];
        if let Some(b) = o2o_batch.as_mut() {
            figs.push(Timed::new(
                &format!("stream_{item}_{cores}_o2o"),
                format!("{}, one-to-one pipe", stream_conditions(cores, item)),
                "ns/item",
                iters,
                b,
            ));
        }
        self.record_all(figs);
        drop((batch, o2o_batch));
        rig.finish();
        if let Some(r) = o2o {
            r.finish();
        }
    }

    /// Streaming 1 -> 1 of raw 64-byte messages through pipe(2): one write and one
    /// read_exact per message.
    fn pipe_stream(&mut self, cores: &str, iters: u64) {
        let (mut tx, mut rx, child_in, child_out) = byte_channel("pipe2");
        let child = Peer::spawn(
            "byte-sink",
            self.placement(cores),
            &[],
            Stdio::from(child_in),
            Stdio::from(child_out),
        );
        let msg = [7u8; 64];
        let mut end = [0u8; 64];
        end[0] = 0xff;
        let mut ack = [0u8; 1];
        self.record(
            &format!("stream_pipe2_{cores}"),
            format!("{cores}-core, 1 -> 1, 64 B messages through pipe(2), reader sleeps"),
            "ns/item",
            iters,
            |n| {
                let start = Instant::now();
                for _ in 0..n {
                    tx.write_all(black_box(&msg)).expect("write");
                }
                tx.write_all(&end).expect("write");
                rx.read_exact(&mut ack).expect("ack");
                start.elapsed()
            },
        );
        drop((tx, rx));
        child.finish();
    }

    /// An alloc+free pair of 16 bytes from the pool, from the system allocator, from a
    /// pool grown from 64 KiB past 16 MiB, all in this process (uncontended), and from the
    /// first pool while a second process attached to it does pairs too, pinned to the
    /// other CPU (both running flat out). Measured in turn (see
    /// [`record_all`](Self::record_all)): the host slows this CPU by a third for seconds
    /// at a time, which would otherwise land on one side of a ratio.
    fn alloc(&mut self, iters: u64) {
        let name = RegionName::new(region_name("galloc")).expect("a valid name");
        let region = Arc::new(Region::create(&name, 64 << 20).expect("create the region"));
        let pool = Pool::create(region).expect("format the pool");
        let keep: Vec<_> = (0..64)
            .map(|i| pool.alloc(16 + 48 * i, 8).expect("setup allocation"))
            .collect();
        let main = ShmMain::new(region_name("galloc-grown"), 64 << 10)
            .max_bytes(64 << 20)
            .start()
            .expect("create the region");
        let grown = main.pool();
        grow(grown);
        main.region().unlink();
        let mut contender = self.cpus.second.map(|other| Contender::start(&pool, other));
        let mut figs = vec![
            Timed::new(
                "alloc_pool_16",
                "one process, uncontended, 16 B".into(),
                "ns/pair",
                iters,
                |n| alloc_pairs(&pool, n),
            ),
            Timed::new(
                "alloc_system_16",
                "one process, uncontended, 16 B (Rust's global allocator)".into(),
                "ns/pair",
                iters,
                |n| {
                    let start = Instant::now();
                    for _ in 0..n {
                        black_box(Box::new(black_box([0u8; 16])));
                    }
                    start.elapsed()
                },
            ),
            Timed::new(
                "alloc_pool_16_grown",
                "one process, uncontended, 16 B, in a pool grown from 64 KiB".into(),
                "ns/pair",
                iters,
                |n| alloc_pairs(grown, n),
            ),
        ];
        if let Some(c) = contender.as_mut() {
            figs.push(Timed::new(
                "alloc_pool_16_2proc",
                "16 B, while a second process allocates from the pool on the other CPU".into(),
                "ns/pair",
                iters,
                |n| c.batches.contended(n, || pool_pair(&pool, 16)),
            ));
        }
        self.record_all(figs);
        if let Some(c) = contender {
            c.finish();
        }
        for off in keep {
            // SAFETY: set-up blocks used by nothing.
            unsafe { pool.free(off) }.expect("teardown free");
        }
    }

    /// An update of a counter under a lock, in this process (uncontended), measured in
    /// turn: a locked table's (lock, `increment` of a `Tab`'s integer, unlock; the region
    /// made by `ShmMain`, as the processes sharing it would) and the floor's (a
    /// process-shared pthread mutex around a `u64` in a memfd mapping, `common/floor.rs`).
    fn locked(&mut self, iters: u64) {
        let main = ShmMain::new(region_name("glocked"), 1 << 20)
            .start()
            .expect("create the region");
        // Nobody attaches: the name can go now.
        main.region().unlink();
        let board = ShmLocked::new(main.pool(), val!({"n": 0})).expect("the table");
        let map = Mapping::create();
        let lock_floor = map.pthread_counter(0);
        // SAFETY: the mapping was just made and no other process has it.
        unsafe { lock_floor.init() };
        self.record_all(vec![
            Timed::new(
                "locked_update",
                "one process, uncontended: lock, increment a Tab's integer, unlock".into(),
                "ns/update",
                iters,
                |n| {
                    let start = Instant::now();
                    for _ in 0..n {
                        let mut g = board.lock(WAIT).expect("lock");
                        black_box(g.increment("n", 1).expect("increment"));
                    }
                    start.elapsed()
                },
            ),
            Timed::new(
                "pthread_update",
                "one process, uncontended: process-shared pthread mutex around a u64".into(),
                "ns/update",
                iters * 20,
                |n| {
                    let start = Instant::now();
                    for _ in 0..n {
                        lock_floor.update();
                    }
                    start.elapsed()
                },
            ),
        ]);
    }

    fn get(&self, name: &str) -> f64 {
        self.figures
            .get(name)
            .unwrap_or_else(|| panic!("figure {name} not measured"))
            .median()
    }
}

fn bytes_conditions(cores: &str, size: usize) -> String {
    format!("{cores}-core, {size} B copied each way, receiver sleeps (read)")
}

fn stream_conditions(cores: &str, item: &str) -> String {
    format!(
        "{cores}-core, 1 -> 1, {}, sent, received, read, dropped; both block, batch receive",
        match item {
            "clone" => "one int cloned",
            "tab3" => "3-entry Tab shared (read in place: one lookup)",
            _ => "int shared",
        }
    )
}

/// A timed batch of `n` streamed items of kind `item` (see `Gate::shm_stream`) through
/// `rig`, ended by an acknowledged end marker.
fn stream_batch<'a>(rig: &'a ShmStream, item: &str) -> impl FnMut(u64) -> Duration + 'a {
    let (items, ack, pool) = (rig.items.pipe(), rig.ack.pipe(), rig.items.pool());
    let tab3: Val = Val::Tab(
        [
            (Val::from("a"), Val::from(1i64)),
            (Val::from("b"), Val::from(2.5f64)),
            (Val::from("c"), Val::from("x")),
        ]
        .into_iter()
        .collect::<Tab>(),
    );
    let one = pool.share(&Val::I64(7)).expect("share");
    let item = item.to_string();
    move |n: u64| {
        let start = Instant::now();
        for i in 0..n {
            let v = match item.as_str() {
                "tab3" => pool.share(&tab3).expect("share"),
                "clone" => one.clone(),
                _ => pool.share(&Val::I64(i as i64)).expect("share"),
            };
            send(items, v, false);
        }
        send(items, pool.share(&Val::I64(END)).expect("share"), false);
        drop(recv(ack, false, WAIT).expect("an acknowledgement"));
        start.elapsed()
    }
}

/// The child of `stream_pipe2`: reads 64-byte messages; after one starting with 0xff,
/// writes one byte back; until end of file.
fn byte_sink() {
    let (mut input, mut output) = stdio_files();
    let mut buf = [0u8; 64];
    loop {
        match input.read(&mut buf[..1]) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => panic!("read: {e}"),
        }
        input.read_exact(&mut buf[1..]).expect("read a message");
        if buf[0] == 0xff {
            output.write_all(&[1]).expect("ack");
        }
    }
}

/// `n` alloc+free pairs of 16 bytes from `pool`; their time.
fn alloc_pairs(pool: &Pool, n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let off = pool.alloc(black_box(16), 8).expect("alloc");
        // SAFETY: allocated just above; nothing else uses it.
        unsafe { pool.free(black_box(off)) }.expect("free");
    }
    start.elapsed()
}

fn main() -> ExitCode {
    if let Ok(role) = env::var(ROLE) {
        run_child(&role);
        return ExitCode::SUCCESS;
    }
    let mut args = env::args().skip(1);
    let mut update = false;
    let mut full = false;
    let mut repeats = 15usize;
    let mut baseline_path = String::from("ci/bench-baseline.json");
    let mut figures_path: Option<String> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--update" => update = true,
            "--full" => full = true,
            "--repeats" => {
                repeats = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--repeats N")
            }
            "--baseline" => baseline_path = args.next().expect("--baseline PATH"),
            "--figures" => figures_path = Some(args.next().expect("--figures PATH")),
            // What `cargo bench` passes to every bench binary.
            "--bench" => {}
            other => {
                eprintln!("bench-gate: unknown argument {other}");
                return ExitCode::from(2);
            }
        }
    }

    let cpus = Cpus::detect();
    if cpus.second.is_none() {
        eprintln!("bench-gate: needs two allowed CPUs (for the diff-core figures)");
        return ExitCode::from(2);
    }
    let _restore = Unpin::save();
    pin(cpus.first);
    let mut g = Gate {
        cpus,
        repeats,
        figures: BTreeMap::new(),
        groups: BTreeMap::new(),
    };
    let started = Instant::now();
    eprintln!(
        "bench-gate: this process on CPU {}, the peer on CPU {} (diff) or {} (same); \
         {repeats} runs per figure, medians",
        cpus.first,
        cpus.second.unwrap_or(cpus.first),
        cpus.first
    );
    g.floor(floor::Kind::Futex, "diff", 2_000);
    let sizes: &[usize] = if full {
        &[64, 4096, 65536, 1 << 20]
    } else {
        &[64, 1 << 20]
    };
    g.spinning(sizes, 100_000);
    g.same_core();
    for &size in if full { sizes } else { &[64][..] } {
        g.shm_rt(false, "diff", size, 20_000);
        if size != 64 {
            g.shm_rt(false, "same", size, 10_000);
        }
    }
    for transport in ["uds", "pipe2"] {
        for &size in if full { &sizes[1..] } else { &[][..] } {
            g.bytes_rt(
                transport,
                "same",
                size,
                if size > 65536 { 500 } else { 10_000 },
            );
        }
        for &size in if full { sizes } else { &[][..] } {
            g.bytes_rt(
                transport,
                "diff",
                size,
                if size > 65536 { 300 } else { 2_000 },
            );
        }
    }
    g.shm_stream("int", "diff", 200_000);
    if full {
        g.shm_stream("tab3", "diff", 200_000);
        g.shm_stream("clone", "diff", 500_000);
        g.pipe_stream("diff", 200_000);
        g.pipe_stream("same", 200_000);
    }
    g.alloc(2_000_000);
    g.locked(100_000);
    eprintln!(
        "bench-gate: measured in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    if let Some(p) = &figures_path {
        report::write_figures(p, &g.figures);
    }
    let old: Value = std::fs::read_to_string(&baseline_path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    let measured: Vec<(&str, f64, &str, bool)> = ratios::RATIOS
        .iter()
        .map(|&(name, num, den, what, gated)| (name, g.ratio(num, den), what, gated))
        .collect();
    if update {
        report::write_baseline(&baseline_path, &old, &measured);
    }
    let failed = report::compare(&old, &measured, update);
    if failed > 0 && !update {
        println!("bench-gate: {failed} ratio(s) worse than the baseline beyond tolerance");
        return ExitCode::FAILURE;
    }
    println!("bench-gate: ok");
    ExitCode::SUCCESS
}
