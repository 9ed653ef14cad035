//! `shmval run`: starts a scenario's processes, injects its faults, reaps everything, and
//! builds the summary.
//!
//! Every process is this binary re-executed as `shmval role SPEC`, with its own pipes to
//! the runner: standard output carries its events, standard error is kept for the
//! summary. The region is created, held and read by one more child, the keeper
//! ([`crate::keeper`]): the runner itself maps nothing, so a region truncated under the
//! run cannot kill it. The runner's loop never blocks for long: it starts what is due,
//! handles events, reaps, fires faults, closes a pipe once every process writing to it
//! has ended (so readers drain it and finish), and kills the whole run at its time bound,
//! on SIGINT, SIGTERM or SIGHUP, when its standard output is closed, or when the region
//! is truncated. Whatever happens, every child is reaped and the run's files are removed
//! from `/dev/shm`.
//!
//! - `procs`: starting, signalling, reaping the scenario's processes; their events.
//! - `faults`: the faults' stages and firing.
//! - `conclude`: the teardown, the cleanup of `/dev/shm` and the summary.

use std::collections::{BTreeSet, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use shmval::region::RegionName;

use crate::expect::{Receipts, WriterStart};
use crate::keeper::{Figures, Keeper, KeeperSpec, Reply, Request};
use crate::output::outln;
use crate::report::{Event, ProcReport, RunSummary};
use crate::scenario::{Kind, ProcessSpec, Scenario};

mod conclude;
mod faults;
mod procs;

use faults::{Fault, Stage};

/// How `run` was asked to run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Print JSON instead of text (and no progress).
    pub json: bool,
    /// Overrides the scenario's region name prefix.
    pub prefix: Option<String>,
    /// Overrides the scenario's seed of random choices.
    pub seed: Option<u64>,
}

/// Why a run could not even be judged.
#[derive(Debug)]
pub enum RunError {
    /// The scenario file is wrong (exit code 2).
    Scenario(String),
    /// The run could not be carried out (exit code 1).
    Failed(String),
}

/// Why a run was stopped before its processes ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT, SIGTERM or SIGHUP.
    Signal(Signal),
    /// Standard output was closed (`shmval run | head -1`).
    OutputClosed,
    /// The region's file is shorter than the region: its pages past the end fault.
    Truncated {
        /// The file's size when the runner saw it.
        len: u64,
    },
    /// The region's keeper died (its exit status).
    KeeperDied(String),
}

impl Stop {
    /// The exit code of `shmval run` after this stop.
    pub fn exit_code(&self) -> i32 {
        match self {
            Stop::Signal(sig) => crate::signals::exit_code(*sig),
            Stop::OutputClosed => crate::output::EXIT_CLOSED,
            Stop::Truncated { .. } | Stop::KeeperDied(_) => 1,
        }
    }

    /// Whether the scenarios after this one should still run.
    pub fn ends_the_command(&self) -> bool {
        matches!(self, Stop::Signal(_) | Stop::OutputClosed)
    }

    /// Why, in a few words (a process's outcome).
    fn short(&self) -> String {
        match self {
            Stop::Signal(sig) => format!("stopped: {sig}"),
            Stop::OutputClosed => "stopped: output closed".into(),
            Stop::Truncated { .. } => "stopped: region truncated".into(),
            Stop::KeeperDied(_) => "stopped: keeper died".into(),
        }
    }

    /// Why, in a sentence.
    fn describe(&self, region: &RegionName, bytes: u64) -> String {
        match self {
            Stop::Signal(sig) => format!("interrupted by {sig}"),
            Stop::OutputClosed => "standard output was closed".into(),
            Stop::Truncated { len } => format!(
                "region {region} was truncated under the run ({len} of its {bytes} bytes left)"
            ),
            Stop::KeeperDied(how) => format!("the keeper of region {region} died ({how})"),
        }
    }
}

/// A run that could be judged.
#[derive(Debug)]
pub struct Ran {
    /// Its summary.
    pub summary: RunSummary,
    /// Why it was stopped early, if it was.
    pub stop: Option<Stop>,
}

/// How long a lock-holder kill waits, once the process has armed its pause point, for it to
/// report reaching the point.
const HOLD_WAIT: Duration = Duration::from_secs(10);
/// How long the runner watches for the pipe to move after such a kill.
const RECOVERY_WAIT: Duration = Duration::from_secs(10);
/// Lines of standard error kept per process.
const STDERR_LINES: usize = 12;
/// How long the keeper may take to create the region and its pipes (each pipe waits 5 s
/// at most).
const MAKE_WAIT: Duration = Duration::from_secs(60);
/// How long the keeper may take to answer any other request.
const ASK_WAIT: Duration = Duration::from_secs(2);

/// Runs the scenario in `path`.
pub fn run_file(path: &Path, opts: &Options) -> Result<Ran, RunError> {
    let scenario = Scenario::load(path).map_err(RunError::Scenario)?;
    let prefix = opts.prefix.as_deref().unwrap_or(&scenario.region.prefix);
    let name = RegionName::new(format!("{prefix}-{}", std::process::id()))
        .map_err(|e| RunError::Scenario(format!("{}: region name: {e}", path.display())))?;
    let exe = std::env::current_exe()
        .map_err(|e| RunError::Failed(format!("cannot find own binary: {e}")))?;
    let mut run = Run::new(scenario, name, exe, opts, path.to_path_buf());
    let result = run.drive();
    // Whatever happened: every child reaped, the region let go of, the files removed.
    run.kill_all();
    let stop = run.stop.clone();
    let summary = run.conclude();
    result.map(|()| Ran { summary, stop })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Pending,
    Running,
    Done,
}

struct Proc {
    spec: ProcessSpec,
    source_id: u32,
    st: St,
    child: Option<Child>,
    pid: u32,
    pids: Vec<u32>,
    starts: u32,
    ready: bool,
    items: u64,
    report: Option<ProcReport>,
    /// Per start: the packets it announced receiving (a sink asked to), and whether a
    /// fault killed it.
    receipts: Vec<Receipts>,
    /// Per start of a writer: the updates it acknowledged, and whether a fault killed it.
    updates: Vec<WriterStart>,
    /// The standard input of a reader, or of the main that made the tables: closed once
    /// what it waits for has ended.
    stdin: Option<ChildStdin>,
    exit: Option<ExitStatus>,
    killed_by_fault: bool,
    /// Killed at the end of a run that timed out or was stopped.
    killed_by_runner: bool,
    restart: bool,
    reader: Option<JoinHandle<()>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    spawn_error: Option<String>,
}

struct Run {
    sc: Scenario,
    file: PathBuf,
    name: RegionName,
    exe: PathBuf,
    json: bool,
    procs: Vec<Proc>,
    faults: Vec<Fault>,
    /// The seed of the run's random choices, if it made some.
    seed: Option<u64>,
    tx: Sender<(usize, u32, Event)>,
    rx: Receiver<(usize, u32, Event)>,
    t0: Instant,
    keeper: Option<Keeper>,
    region_made: bool,
    /// The region's file has been seen at its full size: from then on a shorter one is a
    /// truncation.
    region_seen: bool,
    /// The device and inode of the region's file as first seen at its full size.
    region_inode: Option<(u64, u64)>,
    stale_replaced: bool,
    baseline: Option<Figures>,
    last_stats: Option<Figures>,
    high_water: u64,
    open_pipes: BTreeSet<String>,
    timed_out: bool,
    stop: Option<Stop>,
    /// What the run was doing when it was stopped.
    stopped_while: String,
    last_progress: Instant,
    last_stats_at: Instant,
}

impl Run {
    fn new(mut sc: Scenario, name: RegionName, exe: PathBuf, opts: &Options, file: PathBuf) -> Run {
        let seed = faults::pick_random_items(&mut sc, opts.seed);
        let mut next_source = 0;
        let procs = sc
            .processes
            .iter()
            .map(|p| {
                let source_id = next_source;
                if p.kind == Kind::Source {
                    next_source += 1;
                }
                Proc {
                    spec: p.clone(),
                    source_id,
                    st: St::Pending,
                    child: None,
                    pid: 0,
                    pids: vec![],
                    starts: 0,
                    ready: false,
                    items: 0,
                    report: None,
                    receipts: vec![],
                    updates: vec![],
                    stdin: None,
                    exit: None,
                    killed_by_fault: false,
                    killed_by_runner: false,
                    restart: false,
                    reader: None,
                    stderr: Arc::default(),
                    spawn_error: None,
                }
            })
            .collect();
        let faults = sc
            .faults
            .iter()
            .map(|f| Fault::new(f, &sc.processes))
            .collect();
        let (tx, rx) = channel();
        let open_pipes = sc.pipes.iter().map(|p| p.name.clone()).collect();
        Run {
            sc,
            file,
            name,
            exe,
            json: opts.json,
            procs,
            faults,
            seed,
            tx,
            rx,
            t0: Instant::now(),
            keeper: None,
            region_made: false,
            region_seen: false,
            region_inode: None,
            stale_replaced: false,
            baseline: None,
            last_stats: None,
            high_water: 0,
            open_pipes,
            timed_out: false,
            stop: None,
            stopped_while: String::new(),
            last_progress: Instant::now(),
            last_stats_at: Instant::now(),
        }
    }

    fn say(&self, msg: std::fmt::Arguments<'_>) {
        if !self.json {
            outln!("  {:>6.2}s  {msg}", self.t0.elapsed().as_secs_f64());
        }
    }

    fn drive(&mut self) -> Result<(), RunError> {
        if !self.json {
            outln!(
                "running scenario {} ({}): {} processes, region {}",
                self.sc.name,
                self.file.display(),
                self.procs.len(),
                self.name
            );
        }
        // Checked when the scenario was read: positive and at most a day.
        let limit = Duration::try_from_secs_f64(self.sc.expect.max_seconds)
            .map_err(|e| RunError::Scenario(format!("expect.max_seconds: {e}")))?;
        let keeper = Keeper::start(
            &self.exe,
            &KeeperSpec {
                region: self.name.to_string(),
                bytes: self.sc.region.bytes,
                max_bytes: self.sc.region.max_bytes,
                pipes: self.sc.pipes.clone(),
                tables: self.sc.tables.clone(),
                runner_pid: std::process::id(),
            },
        )
        .map_err(RunError::Failed)?;
        self.say(format_args!("region keeper started (pid {})", keeper.pid()));
        self.keeper = Some(keeper);
        self.t0 = Instant::now();
        loop {
            if let Some(stop) = self.stop_reason() {
                self.stop_for(stop);
                return Ok(());
            }
            self.make_region()?;
            self.start_due();
            self.handle_events(Duration::from_millis(2));
            self.reap();
            self.run_faults();
            self.close_finished_pipes();
            self.release_waiting();
            self.observe();
            if self.procs.iter().all(|p| p.st == St::Done) {
                // What stops a run can end its processes before the runner has looked: a
                // signal to the whole process group, or the region truncated under them
                // (they die of SIGBUS). The run was stopped by it all the same.
                if let Some(stop) = self.stop_reason() {
                    self.stop_for(stop);
                }
                return Ok(());
            }
            if self.t0.elapsed() > limit {
                self.timed_out = true;
                self.say(format_args!(
                    "time bound of {limit:?} passed: stopping the run"
                ));
                return Ok(());
            }
        }
    }

    /// Records that the run stops for `stop`, with each process's progress so far.
    fn stop_for(&mut self, stop: Stop) {
        self.stopped_while = self.progress();
        let why = stop.describe(&self.name, self.sc.region.bytes);
        self.say(format_args!("{why}: stopping the run"));
        self.stop = Some(stop);
    }

    /// Whether the run must stop now, and why: a signal, a closed standard output, a
    /// truncated region, a dead keeper.
    fn stop_reason(&mut self) -> Option<Stop> {
        if let Some(sig) = crate::signals::pending() {
            return Some(Stop::Signal(sig));
        }
        if crate::output::closed() {
            return Some(Stop::OutputClosed);
        }
        // The file's size, read with stat: nothing here maps the region.
        if let Ok(m) = std::fs::symlink_metadata(self.name.file_path()) {
            if m.is_file() && m.len() >= self.sc.region.bytes {
                self.region_seen = true;
                self.region_inode = Some((m.dev(), m.ino()));
            } else if m.is_file() && self.region_seen {
                return Some(Stop::Truncated { len: m.len() });
            }
        }
        let keeper = self.keeper.as_mut()?;
        keeper
            .ended()
            .map(|s| Stop::KeeperDied(conclude::exit_of(s)))
    }

    /// Asks the keeper; `None` when it does not answer in time or has ended.
    fn ask(&mut self, req: Request, wait: Duration) -> Option<Reply> {
        self.keeper.as_mut()?.ask(req, wait).ok()
    }

    /// Creates the region (through the keeper) when the runner owns it and it is due.
    fn make_region(&mut self) -> Result<(), RunError> {
        if self.region_made || !self.sc.runner_creates_region() {
            return Ok(());
        }
        if let Some(after) = &self.sc.region.start_after {
            if self
                .procs
                .iter()
                .any(|p| &p.spec.name == after && p.st != St::Done)
            {
                return Ok(());
            }
        }
        self.region_made = true;
        let (replaced, stats) = match self.ask(Request::Make, MAKE_WAIT) {
            Some(Reply::Made { replaced, stats }) => (replaced, stats),
            Some(Reply::Error(e)) => return Err(RunError::Failed(e)),
            Some(other) => {
                return Err(RunError::Failed(format!(
                    "creating region {}: the keeper answered {other:?}",
                    self.name
                )))
            }
            None => {
                return Err(RunError::Failed(format!(
                    "creating region {}: the keeper did not answer",
                    self.name
                )))
            }
        };
        self.stale_replaced = replaced;
        self.baseline = stats;
        self.say(format_args!(
            "region {} created{}, {} pipes, {} tables",
            self.name,
            if replaced {
                " (replacing a stale one)"
            } else {
                ""
            },
            self.sc.pipes.len(),
            self.sc.tables.len()
        ));
        Ok(())
    }

    fn start_due(&mut self) {
        for i in 0..self.procs.len() {
            let p = &self.procs[i];
            if p.st != St::Pending {
                continue;
            }
            let needs_region = p.spec.kind != Kind::Main && self.sc.runner_creates_region();
            if needs_region && !self.region_made {
                continue;
            }
            if let Some(after) = &p.spec.start_after {
                if self
                    .procs
                    .iter()
                    .any(|q| &q.spec.name == after && q.st != St::Done)
                {
                    continue;
                }
            }
            self.spawn(i);
        }
    }

    /// Whether a process is stopped by a fault now. It may have been stopped inside a
    /// lock that the keeper's untimed calls wait for (the pool's, for its stats; a pipe's,
    /// to close it), and only the runner continues it: those calls wait until it runs.
    fn any_stopped(&self) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f.stage, Stage::Stopped(_)))
    }

    fn close_finished_pipes(&mut self) {
        if (self.sc.runner_creates_region() && !self.region_made) || self.any_stopped() {
            return;
        }
        let due: Vec<String> = self
            .open_pipes
            .iter()
            .filter(|pipe| {
                self.procs
                    .iter()
                    .filter(|p| p.spec.writes().contains(&pipe.as_str()))
                    .all(|p| p.st == St::Done)
            })
            .cloned()
            .collect();
        for pipe in due {
            if let Some(Reply::Done) = self.ask(Request::Close(pipe.clone()), ASK_WAIT) {
                self.open_pipes.remove(&pipe);
                self.say(format_args!("closed pipe {pipe}: its writers have ended"));
            }
        }
    }

    /// Reads the pool's figures now and then, and prints the progress.
    fn observe(&mut self) {
        if self.last_stats_at.elapsed() >= Duration::from_millis(50) && !self.any_stopped() {
            self.last_stats_at = Instant::now();
            self.read_stats();
        }
        if !self.json && self.last_progress.elapsed() >= Duration::from_millis(500) {
            self.last_progress = Instant::now();
            self.say(format_args!("{}", self.progress()));
        }
    }

    fn read_stats(&mut self) {
        if let Some(Reply::Stats(s)) = self.ask(Request::Stats, ASK_WAIT) {
            self.high_water = self.high_water.max(s.high_water);
            self.last_stats = Some(s);
        }
    }

    /// Items per started process and the pool's use: `server 1200, client 1100; pool used
    /// 4096 B`.
    fn progress(&self) -> String {
        let parts: Vec<String> = self
            .procs
            .iter()
            .filter(|p| p.st != St::Pending)
            .map(|p| format!("{} {}", p.spec.name, p.items))
            .collect();
        let pool = self
            .last_stats
            .map_or(String::new(), |s| format!("; pool used {} B", s.used));
        format!("{}{pool}", parts.join(", "))
    }
}
