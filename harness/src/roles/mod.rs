//! The processes of a scenario: `shmval role SPEC` runs one (the runner starts them).
//!
//! Each writes [`Event`]s, one JSON object a line, on its standard output: `ready` once
//! attached, progress, the item numbers the runner asked to hear about, and a final
//! report. It dies with the runner (`PR_SET_PDEATHSIG`), and every wait it makes gives up
//! when the runner is gone.

use std::io::Write;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shmval::queue::RecvError;
use shmval::sides::{ClientSide, Fanout, Forwarded, ServerSide, ShmMain};
use shmval::{PoolExt, ShmLocked, Val};

use crate::output::errln;
use crate::report::{Event, Latency, OutputReport, ProcReport};
use crate::scenario::{duration, policy_of, Kind, PipeSpec, ProcessSpec, TableSpec};

mod table;

pub use table::{TableRole, WriterInfo};

/// Everything a role process needs, passed as one JSON argument.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct RoleSpec {
    /// The process as the scenario describes it.
    pub process: ProcessSpec,
    /// The region's name.
    pub region: String,
    /// The region's size (for a main process).
    pub bytes: u64,
    /// The most it may grow to (for a main process).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Main: the pipes it creates.
    pub pipes: Vec<PipeSpec>,
    /// Main: the tables it creates (the main that creates the region: every declared one).
    #[serde(default)]
    pub tables: Vec<TableSpec>,
    /// Writer and reader: its table, and the table's writers.
    #[serde(default)]
    pub table: Option<TableRole>,
    /// Which start of the process this is: 1, 2, ... (a writer's items carry it).
    #[serde(default)]
    pub start: u32,
    /// Source: the id its packets carry.
    pub source_id: u32,
    /// Item numbers to announce with an `at` event.
    pub notify_at: Vec<u64>,
    /// Arm this pause point after this many items.
    pub arm: Option<(u64, String)>,
    /// The runner's pid: the process stops when its parent is no longer the runner.
    pub runner_pid: u32,
    /// Sink: announce each packet with a `got` event once received and a `done` event
    /// before dropping it (its acknowledgement on a pipe that redelivers), so that the
    /// runner knows what a sink it kills had received, and which packet it may have died
    /// holding.
    #[serde(default)]
    pub each_item: bool,
}

/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_millis(50);
/// How often a blocked wait checks that the runner is still there.
const MICRO_SLEEP: Duration = Duration::from_millis(50);

/// Runs the role described by `spec_json`; returns the exit code.
pub fn run(spec_json: &str) -> i32 {
    let spec: RoleSpec = match serde_json::from_str(spec_json) {
        Ok(s) => s,
        Err(e) => {
            errln!("shmval role: bad role spec: {e}");
            return 2;
        }
    };
    // Only the runner ends a run: a Ctrl-C reaches it too.
    crate::signals::ignore_in_child();
    // Die with the runner. The parent may have died before this call: check it is still
    // the runner.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    if !runner_alive(spec.runner_pid) {
        return 3;
    }
    let mut ctx = Ctx::new(&spec);
    let result = match spec.process.kind {
        Kind::Source => source(&spec, &mut ctx),
        Kind::Middle => middle(&spec, &mut ctx),
        Kind::Sink => sink(&spec, &mut ctx),
        Kind::Fanout => fanout(&spec, &mut ctx),
        Kind::Main => main_role(&spec, &mut ctx),
        Kind::Writer => table::writer(&spec, &mut ctx),
        Kind::Reader => table::reader(&spec, &mut ctx),
    };
    let failed = result.is_err();
    ctx.finish(result.err());
    i32::from(failed)
}

fn runner_alive(pid: u32) -> bool {
    nix::unistd::getppid().as_raw() as u32 == pid
}

/// Monotonic nanoseconds (CLOCK_MONOTONIC: one clock for every process of the machine).
pub fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// A role's bookkeeping: counting items, announcing them, arming the pause point.
struct Ctx {
    spec: RoleSpec,
    report: ProcReport,
    started: Instant,
    last_progress: Instant,
    delay: Option<Duration>,
    latencies: Vec<u64>,
}

impl Ctx {
    fn new(spec: &RoleSpec) -> Ctx {
        Ctx {
            spec: spec.clone(),
            report: ProcReport::default(),
            started: Instant::now(),
            last_progress: Instant::now(),
            delay: spec
                .process
                .delay_per_item
                .as_deref()
                .and_then(|d| duration(d).ok()),
            latencies: Vec::new(),
        }
    }

    fn emit(&self, ev: &Event) {
        if let Ok(line) = serde_json::to_string(ev) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    fn ready(&mut self) {
        self.started = Instant::now();
        self.emit(&Event::Ready);
        self.tick(0);
    }

    /// Called with the number of items handled so far, before the next one.
    fn tick(&mut self, n: u64) {
        self.report.items = n;
        if self.spec.notify_at.contains(&n) {
            self.emit(&Event::At { item: n });
        }
        if let Some((at, point)) = &self.spec.arm {
            if *at == n {
                shmval::fault::arm(point);
                self.emit(&Event::Armed { item: n });
            }
        }
        if self.last_progress.elapsed() >= PROGRESS_EVERY {
            self.last_progress = Instant::now();
            self.emit(&Event::Items { n });
        }
    }

    fn slow_down(&self) {
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
    }

    fn finish(mut self, error: Option<String>) {
        self.report.seconds = self.started.elapsed().as_secs_f64();
        self.report.error = error;
        self.report.latency_us = Latency::of(&mut self.latencies);
        let report = std::mem::take(&mut self.report);
        self.emit(&Event::Report(report));
    }
}

type RoleResult = Result<(), String>;

fn attach_timeout(p: &ProcessSpec) -> Duration {
    p.attach_timeout
        .as_deref()
        .and_then(|d| duration(d).ok())
        .unwrap_or(Duration::from_secs(20))
}

fn client(spec: &RoleSpec, pipe: &str) -> Result<ClientSide, String> {
    let runner = spec.runner_pid;
    ClientSide::new(spec.region.as_str(), pipe)
        .timeout(attach_timeout(&spec.process))
        .micro_sleep(MICRO_SLEEP)
        .break_checker(move || !runner_alive(runner))
        .start()
        .map_err(|e| format!("attaching to pipe {pipe}: {e}"))
}

fn pipe_name<'a>(v: &'a Option<String>, what: &str) -> Result<&'a str, String> {
    v.as_deref().ok_or_else(|| format!("no {what} pipe"))
}

/// Sends `count` packets: the payload's entries with `src`, `seq` and `sent_ns`.
fn source(spec: &RoleSpec, ctx: &mut Ctx) -> RoleResult {
    let p = &spec.process;
    let out = client(spec, pipe_name(&p.out, "out")?)?;
    // A dict: checked when the scenario was read.
    let base = p.payload_val()?;
    let count = p.count.unwrap_or(0);
    let period = p.rate.filter(|r| *r > 0.0).map(|r| 1.0 / r);
    ctx.ready();
    let start = Instant::now();
    for seq in 0..count {
        if let Some(period) = period {
            // Past what a clock reading can hold, the schedule is over: the run's time
            // bound (a day at most) ends the process long before.
            let due = Duration::try_from_secs_f64(period * seq as f64)
                .ok()
                .and_then(|d| start.checked_add(d))
                .ok_or_else(|| format!("item {seq} is due too far in the future"))?;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let mut v = base.clone();
        let fields = [
            ("src", Val::from(spec.source_id)),
            ("seq", Val::from(seq)),
            ("sent_ns", Val::from(now_ns())),
        ];
        for (k, x) in fields {
            v.insert(k, x).map_err(|e| e.to_string())?;
        }
        if let Some(most) = p.grow_to {
            v.insert("pad", Val::from(".".repeat(pad_bytes(seq, count, most))))
                .map_err(|e| e.to_string())?;
        }
        let shared = out.pool().share(&v).map_err(|e| format!("sharing: {e}"))?;
        out.pipe()
            .enq(shared)
            .map_err(|e| format!("sending item {seq}: {e}"))?;
        ctx.tick(seq + 1);
        ctx.slow_down();
    }
    Ok(())
}

/// The size of packet `seq`'s pad, of `count`, growing to `most` bytes: 1 KiB doubled in
/// equal steps over the first third of the run, then `most`.
fn pad_bytes(seq: u64, count: u64, most: u64) -> usize {
    let doublings = u64::from((most.max(1024) / 1024).ilog2());
    let ramp = (count / 3).max(1);
    let step = doublings * seq / ramp;
    usize::try_from((1024u64 << step.min(40)).min(most)).unwrap_or(usize::MAX)
}

/// Receives, adds the `add` entries in place, forwards.
fn middle(spec: &RoleSpec, ctx: &mut Ctx) -> RoleResult {
    let p = &spec.process;
    let out = client(spec, pipe_name(&p.out, "out")?)?;
    let inp = client(spec, pipe_name(&p.input, "in")?)?;
    let add: Vec<(String, Val)> = p
        .add
        .iter()
        .map(|(k, v)| Ok((k.clone(), Val::parse(v).map_err(|e| e.to_string())?)))
        .collect::<Result<_, String>>()?;
    ctx.ready();
    let hold = p.hold_for();
    let mut n = 0;
    loop {
        let mut v = match inp.pipe().deq() {
            Ok(v) => v,
            Err(RecvError::Closed | RecvError::Disconnected) => return Ok(()),
            Err(e) => return Err(format!("receiving: {e}")),
        };
        if let Some(h) = hold {
            // Its work on the item, while it holds it.
            std::thread::sleep(h);
        }
        {
            let mut w = v
                .try_mut()
                .map_err(|e| format!("writing a received packet: {e}"))?;
            for (k, x) in &add {
                w.insert(k.as_str(), x.clone())
                    .map_err(|e| format!("adding {k}: {e}"))?;
            }
        }
        out.pipe()
            .enq(v)
            .map_err(|e| format!("forwarding item {n}: {e}"))?;
        n += 1;
        ctx.tick(n);
        ctx.slow_down();
    }
}

/// Receives until the pipe is closed (or `take` items), recording what arrives.
fn sink(spec: &RoleSpec, ctx: &mut Ctx) -> RoleResult {
    let p = &spec.process;
    let inp = client(spec, pipe_name(&p.input, "in")?)?;
    let expect: Vec<(String, Val)> = p
        .expect_fields
        .iter()
        .map(|(k, v)| Ok((k.clone(), Val::parse(v).map_err(|e| e.to_string())?)))
        .collect::<Result<_, String>>()?;
    let hold = p.hold_for();
    ctx.ready();
    let mut n = 0;
    while p.take.is_none_or(|t| n < t) {
        let v = match inp.pipe().deq() {
            Ok(v) => v,
            Err(RecvError::Closed | RecvError::Disconnected) => break,
            Err(e) => return Err(format!("receiving: {e}")),
        };
        let now = now_ns();
        let mut packet = None;
        match read_packet(&v, &expect) {
            Ok((src, seq, sent)) => {
                ctx.report.record(src, seq);
                ctx.latencies.push(now.saturating_sub(sent));
                packet = Some((src, seq));
                if spec.each_item {
                    ctx.emit(&Event::Got { src, seq });
                }
            }
            Err(why) => {
                ctx.report.bad_items += 1;
                ctx.report.first_bad.get_or_insert(why);
            }
        }
        if let Some(h) = hold {
            // Its work on the packet, while it holds it.
            std::thread::sleep(h);
        }
        if let (true, Some((src, seq))) = (spec.each_item, packet) {
            // Before the drop: every packet acknowledged was announced done.
            ctx.emit(&Event::Done { src, seq });
        }
        // On a pipe that redelivers, the acknowledgement.
        drop(v);
        n += 1;
        ctx.tick(n);
        ctx.slow_down();
    }
    Ok(())
}

/// A packet's source, sequence number and send time, after checking the expected fields.
fn read_packet(v: &shmval::ShmVal, expect: &[(String, Val)]) -> Result<(u32, u64, u64), String> {
    let t = v.as_tab().map_err(|e| format!("not a table: {e}"))?;
    let field = |k: &str| -> Result<u64, String> {
        t.get(k)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no {k:?}"))?
            .to::<u64>()
            .map_err(|e| format!("{k:?}: {e}"))
    };
    let src = u32::try_from(field("src")?).map_err(|e| e.to_string())?;
    let (seq, sent) = (field("seq")?, field("sent_ns")?);
    for (k, want) in expect {
        let ok = t
            .get(k.as_str())
            .map_err(|e| e.to_string())?
            .is_some_and(|r| r.eq_val(want).unwrap_or(false));
        if !ok {
            return Err(format!(
                "packet {seq} of source {src}: {k:?} is not {}",
                want
            ));
        }
    }
    Ok((src, seq, sent))
}

/// Copies its input to its outputs with the library's fan-out.
fn fanout(spec: &RoleSpec, ctx: &mut Ctx) -> RoleResult {
    let p = &spec.process;
    let policy = policy_of(p)?;
    let outs = p
        .outs
        .iter()
        .map(|o| client(spec, o))
        .collect::<Result<Vec<_>, _>>()?;
    let inp = client(spec, pipe_name(&p.input, "in")?)?;
    let mut f = Fanout::new(
        inp.pipe().clone(),
        outs.iter().map(|o| o.pipe().clone()).collect(),
        policy,
    );
    ctx.ready();
    let mut n = 0;
    let result = loop {
        match f.forward(None) {
            Ok(Forwarded::Item) => {
                n += 1;
                ctx.tick(n);
                ctx.slow_down();
            }
            Ok(Forwarded::Nothing) => {}
            Ok(Forwarded::InputClosed) => break Ok(()),
            Err(e) => break Err(e.to_string()),
        }
    };
    f.close_outputs();
    ctx.report.outputs = p
        .outs
        .iter()
        .zip(&f.stats().outputs)
        .map(|(pipe, s)| OutputReport {
            pipe: pipe.clone(),
            sent: s.sent,
            dropped: s.dropped,
        })
        .collect();
    result
}

/// Creates the region and its pipes, as the seed's server does, then holds them as told.
fn main_role(spec: &RoleSpec, ctx: &mut Ctx) -> RoleResult {
    let p = &spec.process;
    let mut builder = ShmMain::new(spec.region.as_str(), spec.bytes);
    if let Some(max) = spec.max_bytes {
        builder = builder.max_bytes(max);
    }
    let main = builder
        .start()
        .map_err(|e| format!("creating region {}: {e}", spec.region))?;
    let sides = spec
        .pipes
        .iter()
        .map(|pipe| {
            ServerSide::new(spec.region.as_str(), pipe.name.as_str(), pipe.capacity)
                .persist(pipe.persist)
                .redeliver(pipe.redeliver)
                .timeout(Duration::from_secs(5))
                .start()
                .map_err(|e| format!("creating pipe {}: {e}", pipe.name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for t in &spec.tables {
        let board = ShmLocked::new(main.pool(), t.value_val()?)
            .map_err(|e| format!("making table {}: {e}", t.name))?;
        main.names()
            .and_then(|n| n.publish(&t.name, board.into_val()))
            .map_err(|e| format!("publishing table {}: {e}", t.name))?;
    }
    ctx.ready();
    match p.hold.as_deref() {
        Some("forever") => loop {
            std::thread::sleep(Duration::from_secs(1));
            if !runner_alive(spec.runner_pid) {
                return Err("the runner is gone".into());
            }
        },
        Some("idle") => {
            drop(sides);
            if !spec.tables.is_empty() {
                // The tables' users: the runner closes standard input once they have ended.
                let closed = table::stdin_closed();
                while !matches!(
                    closed.recv_timeout(MICRO_SLEEP),
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
                ) {
                    if !runner_alive(spec.runner_pid) {
                        return Err("the runner is gone".into());
                    }
                }
            }
            let idle = main
                .wait_idle(attach_timeout(p))
                .map_err(|e| e.to_string())?;
            if !idle {
                return Err("readers still attached at the timeout".into());
            }
        }
        _ => drop(sides),
    }
    drop(main);
    Ok(())
}
