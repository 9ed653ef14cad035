//! `shmval run`: starts a scenario's processes, injects its faults, reaps everything, and
//! builds the summary.
//!
//! Every process is this binary re-executed as `shmval role SPEC`, with its own pipes to
//! the runner: standard output carries its events, standard error is kept for the
//! summary. The runner's loop never blocks for long: it starts what is due, handles
//! events, reaps, fires faults, closes a pipe once every process writing to it has ended
//! (so readers drain it and finish), and kills the whole run at its time bound. Whatever
//! happens, every child is reaped and the run's files are removed from `/dev/shm`.

use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shmval::alloc::{Pool, PoolStats};
use shmval::fault::Notice;
use shmval::queue::Pipe;
use shmval::region::{AttachOptions, Region, RegionName, SHM_DIR};
use shmval::sides::{Directory, PipeName, ServerSide, ShmMain};

use crate::expect::{self, Outcome, SourceAck};
use crate::report::{Event, FaultSummary, PoolSummary, ProcReport, ProcSummary, RunSummary};
use crate::roles::RoleSpec;
use crate::scenario::{duration, FaultSpec, Kind, ProcessSpec, Scenario};

/// How `run` was asked to run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Print JSON instead of text (and no progress).
    pub json: bool,
    /// Overrides the scenario's region name prefix.
    pub prefix: Option<String>,
}

/// Why a run could not even be judged.
#[derive(Debug)]
pub enum RunError {
    /// The scenario file is wrong (exit code 2).
    Scenario(String),
    /// The run could not be carried out (exit code 1).
    Failed(String),
}

/// How long a lock-holder kill waits, once the process has armed its pause point, for it to
/// report reaching the point.
const HOLD_WAIT: Duration = Duration::from_secs(10);
/// How long the runner watches for the pipe to move after such a kill.
const RECOVERY_WAIT: Duration = Duration::from_secs(10);
/// Lines of standard error kept per process.
const STDERR_LINES: usize = 12;

/// Runs the scenario in `path`.
pub fn run_file(path: &Path, opts: &Options) -> Result<RunSummary, RunError> {
    let scenario = Scenario::load(path).map_err(RunError::Scenario)?;
    let prefix = opts.prefix.as_deref().unwrap_or(&scenario.region.prefix);
    let name = RegionName::new(format!("{prefix}-{}", std::process::id()))
        .map_err(|e| RunError::Scenario(format!("{}: region name: {e}", path.display())))?;
    let exe = std::env::current_exe()
        .map_err(|e| RunError::Failed(format!("cannot find own binary: {e}")))?;
    let mut run = Run::new(scenario, name, exe, opts.json, path.to_path_buf());
    let result = run.drive();
    // Whatever happened: every child reaped, the region dropped, the files removed.
    run.kill_all();
    let summary = run.conclude();
    result.map(|()| summary)
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
    exit: Option<ExitStatus>,
    killed_by_fault: bool,
    killed_by_watchdog: bool,
    restart: bool,
    reader: Option<JoinHandle<()>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    spawn_error: Option<String>,
}

#[derive(Clone, Copy, Debug)]
enum Stage {
    Waiting,
    Armed(Instant),
    Recovering(Instant, u64),
    Stopped(Instant),
    Done,
}

struct Fault {
    spec: FaultSpec,
    proc_: usize,
    at: Option<Duration>,
    resume: Duration,
    stage: Stage,
    fired_at: Option<Duration>,
    recovered_ms: Option<f64>,
    note: String,
    /// A lock-holder kill: the page through which the process reports reaching its pause
    /// point.
    notice: Option<Notice>,
}

/// The runner's view of the region: attached, never a user of any pipe.
struct Monitor {
    name: RegionName,
    view: Option<(Arc<Region>, Pool, Directory)>,
}

impl Monitor {
    fn refresh(&mut self) -> Option<&(Arc<Region>, Pool, Directory)> {
        if self.view.as_ref().is_some_and(|(r, _, _)| !r.is_current()) {
            self.view = None;
        }
        if self.view.is_none() {
            let region = AttachOptions::new()
                .timeout(Duration::from_millis(20))
                .attach(&self.name)
                .ok()?;
            let region = Arc::new(region);
            let pool = Pool::attach(region.clone()).ok()?;
            let dir = Directory::open(&pool).ok()?;
            self.view = Some((region, pool, dir));
        }
        self.view.as_ref()
    }

    fn pipe(&mut self, name: &str) -> Option<Pipe> {
        let (_, _, dir) = self.refresh()?;
        let name = PipeName::new(name).ok()?;
        dir.pipe(&name, Some(Instant::now() + Duration::from_millis(100)))
            .ok()?
    }

    fn stats(&mut self) -> Option<PoolStats> {
        self.refresh()?.1.stats().ok()
    }
}

struct Run {
    sc: Scenario,
    file: PathBuf,
    name: RegionName,
    exe: PathBuf,
    json: bool,
    procs: Vec<Proc>,
    faults: Vec<Fault>,
    tx: Sender<(usize, u32, Event)>,
    rx: Receiver<(usize, u32, Event)>,
    t0: Instant,
    monitor: Monitor,
    main: Option<ShmMain>,
    sides: Vec<ServerSide>,
    region_made: bool,
    stale_replaced: bool,
    baseline: Option<PoolStats>,
    last_stats: Option<PoolStats>,
    high_water: u64,
    open_pipes: BTreeSet<String>,
    timed_out: bool,
    last_progress: Instant,
    last_stats_at: Instant,
}

impl Run {
    fn new(sc: Scenario, name: RegionName, exe: PathBuf, json: bool, file: PathBuf) -> Run {
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
                    exit: None,
                    killed_by_fault: false,
                    killed_by_watchdog: false,
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
            .map(|f| Fault {
                spec: f.clone(),
                proc_: sc
                    .processes
                    .iter()
                    .position(|p| p.name == f.process)
                    .unwrap_or(0),
                at: f.at.as_deref().and_then(|d| duration(d).ok()),
                resume: f
                    .resume_after
                    .as_deref()
                    .and_then(|d| duration(d).ok())
                    .unwrap_or_default(),
                stage: Stage::Waiting,
                fired_at: None,
                recovered_ms: None,
                note: String::new(),
                notice: None,
            })
            .collect();
        let (tx, rx) = channel();
        let open_pipes = sc.pipes.iter().map(|p| p.name.clone()).collect();
        Run {
            monitor: Monitor {
                name: name.clone(),
                view: None,
            },
            sc,
            file,
            name,
            exe,
            json,
            procs,
            faults,
            tx,
            rx,
            t0: Instant::now(),
            main: None,
            sides: vec![],
            region_made: false,
            stale_replaced: false,
            baseline: None,
            last_stats: None,
            high_water: 0,
            open_pipes,
            timed_out: false,
            last_progress: Instant::now(),
            last_stats_at: Instant::now(),
        }
    }

    fn say(&self, msg: std::fmt::Arguments<'_>) {
        if !self.json {
            println!("  {:>6.2}s  {msg}", self.t0.elapsed().as_secs_f64());
        }
    }

    fn drive(&mut self) -> Result<(), RunError> {
        if !self.json {
            println!(
                "running scenario {} ({}): {} processes, region {}",
                self.sc.name,
                self.file.display(),
                self.procs.len(),
                self.name
            );
        }
        let limit = Duration::from_secs_f64(self.sc.expect.max_seconds);
        self.t0 = Instant::now();
        loop {
            self.make_region()?;
            self.start_due();
            self.handle_events(Duration::from_millis(2));
            self.reap();
            self.run_faults();
            self.close_finished_pipes();
            self.observe();
            if self.procs.iter().all(|p| p.st == St::Done) {
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

    /// Creates the region when the runner owns it and it is due.
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
        let existed = self.name.file_path().exists();
        let main = ShmMain::new(self.name.as_str(), self.sc.region.bytes)
            .start()
            .map_err(|e| RunError::Failed(format!("creating region {}: {e}", self.name)))?;
        self.stale_replaced = existed;
        for p in &self.sc.pipes {
            let side = ServerSide::new(self.name.as_str(), p.name.as_str(), p.capacity)
                .persist(p.persist)
                .timeout(Duration::from_secs(5))
                .start()
                .map_err(|e| RunError::Failed(format!("creating pipe {}: {e}", p.name)))?;
            // A persisted pipe must live on its own: the runner does not hold it.
            if !p.persist {
                self.sides.push(side);
            }
        }
        self.main = Some(main);
        self.baseline = self.monitor.stats();
        self.say(format_args!(
            "region {} created{}, {} pipes",
            self.name,
            if existed {
                " (replacing a stale one)"
            } else {
                ""
            },
            self.sc.pipes.len()
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

    fn spawn(&mut self, i: usize) {
        let first = self.procs[i].starts == 0;
        let mut notify_at = vec![];
        let mut arm = None;
        let mut env = vec![];
        if first {
            for f in self.faults.iter_mut().filter(|f| f.proc_ == i) {
                if let Some(k) = f.spec.at_item {
                    if f.spec.action == "kill_in_lock" {
                        arm = Some((k, f.spec.point.clone().unwrap_or_default()));
                        // The process reports reaching its pause point through this page.
                        match Notice::new() {
                            Ok(n) => {
                                env.push(n.env());
                                f.notice = Some(n);
                            }
                            Err(e) => f.note = format!("no fault notice: {e}"),
                        }
                    } else {
                        notify_at.push(k);
                    }
                }
            }
        }
        let p = &self.procs[i].spec;
        let pipes = match p.kind {
            Kind::Main => self
                .sc
                .pipes
                .iter()
                .filter(|x| p.pipes.contains(&x.name))
                .cloned()
                .collect(),
            _ => vec![],
        };
        let spec = RoleSpec {
            process: p.clone(),
            region: self.name.to_string(),
            bytes: self.sc.region.bytes,
            pipes,
            source_id: self.procs[i].source_id,
            notify_at,
            arm,
            runner_pid: std::process::id(),
        };
        let json = serde_json::to_string(&spec).unwrap_or_default();
        let child = Command::new(&self.exe)
            .arg("role")
            .arg(json)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let proc_ = &mut self.procs[i];
        proc_.starts += 1;
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                proc_.spawn_error = Some(format!("cannot start: {e}"));
                proc_.st = St::Done;
                return;
            }
        };
        proc_.pid = child.id();
        proc_.pids.push(child.id());
        proc_.ready = false;
        proc_.report = None;
        proc_.exit = None;
        proc_.killed_by_fault = false;
        if let Some(out) = child.stdout.take() {
            let tx = self.tx.clone();
            let inst = proc_.starts;
            let keep = proc_.stderr.clone();
            proc_.reader = Some(std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    match serde_json::from_str::<Event>(&line) {
                        Ok(ev) => {
                            if tx.send((i, inst, ev)).is_err() {
                                break;
                            }
                        }
                        Err(e) => keep_line(&keep, format!("unreadable event ({e}): {line}")),
                    }
                }
            }));
        }
        if let Some(err) = child.stderr.take() {
            let keep = proc_.stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    keep_line(&keep, line);
                }
            });
        }
        proc_.child = Some(child);
        proc_.st = St::Running;
        let (name, starts) = (proc_.spec.name.clone(), proc_.starts);
        self.say(format_args!(
            "started {name}{}",
            if starts > 1 {
                format!(" again (start {starts})")
            } else {
                String::new()
            }
        ));
    }

    fn handle_events(&mut self, wait: Duration) {
        let mut first = Some(wait);
        loop {
            let got = match first.take() {
                Some(w) => self.rx.recv_timeout(w).ok(),
                None => self.rx.try_recv().ok(),
            };
            let Some((i, inst, ev)) = got else { return };
            self.event(i, inst, ev);
        }
    }

    fn event(&mut self, i: usize, inst: u32, ev: Event) {
        let p = &mut self.procs[i];
        if inst != p.starts {
            return;
        }
        // Faults fire on the first start only.
        let first = inst == 1;
        let mut due = vec![];
        match ev {
            Event::Ready => {
                p.ready = true;
                due = self.waiting_faults(i, |f| f.on.as_deref() == Some("ready"));
            }
            Event::Items { n } => p.items = p.items.max(n),
            Event::At { item } => {
                p.items = p.items.max(item);
                due = self
                    .waiting_faults(i, |f| f.at_item == Some(item) && f.action != "kill_in_lock");
            }
            Event::Armed { item } => {
                p.items = p.items.max(item);
                for f in &mut self.faults {
                    // The notice may have been read first: never go back from a later stage.
                    if f.proc_ == i
                        && f.spec.action == "kill_in_lock"
                        && matches!(f.stage, Stage::Waiting)
                    {
                        f.stage = Stage::Armed(Instant::now());
                    }
                }
            }
            Event::Report(r) => {
                p.items = r.items;
                p.report = Some(r);
            }
        }
        if first {
            for f in due {
                self.fire(f);
            }
        }
    }

    fn waiting_faults(&self, i: usize, pick: impl Fn(&FaultSpec) -> bool) -> Vec<usize> {
        (0..self.faults.len())
            .filter(|&f| {
                let ft = &self.faults[f];
                ft.proc_ == i && matches!(ft.stage, Stage::Waiting) && pick(&ft.spec)
            })
            .collect()
    }

    fn signal(&self, i: usize, sig: Signal) {
        let p = &self.procs[i];
        // Only a child not yet reaped: its pid cannot have been reused.
        if p.st == St::Running && p.pid != 0 {
            let _ = kill(Pid::from_raw(p.pid as i32), sig);
        }
    }

    fn fire(&mut self, f: usize) {
        let i = self.faults[f].proc_;
        if self.procs[i].st != St::Running {
            return;
        }
        let now = self.t0.elapsed();
        let action = self.faults[f].spec.action.clone();
        match action.as_str() {
            "stop" => {
                self.signal(i, Signal::SIGSTOP);
                self.faults[f].stage = Stage::Stopped(Instant::now() + self.faults[f].resume);
            }
            _ => {
                self.signal(i, Signal::SIGKILL);
                self.procs[i].killed_by_fault = true;
                self.procs[i].restart = action == "restart";
                self.faults[f].stage = Stage::Done;
            }
        }
        self.faults[f].fired_at = Some(now);
        let name = self.procs[i].spec.name.clone();
        self.say(format_args!("fault: {action} {name}"));
    }

    fn run_faults(&mut self) {
        let elapsed = self.t0.elapsed();
        for f in 0..self.faults.len() {
            let i = self.faults[f].proc_;
            match self.faults[f].stage {
                Stage::Waiting => {
                    if self.faults[f].at.is_some_and(|at| elapsed >= at)
                        && self.procs[i].st == St::Running
                    {
                        self.fire(f);
                    } else if self.faults[f]
                        .notice
                        .as_ref()
                        .is_some_and(|n| n.reached().is_some())
                    {
                        // At its pause point before its `armed` event was read.
                        self.faults[f].stage = Stage::Armed(Instant::now());
                    }
                }
                Stage::Stopped(until) => {
                    if Instant::now() >= until {
                        self.signal(i, Signal::SIGCONT);
                        self.faults[f].stage = Stage::Done;
                        let name = self.procs[i].spec.name.clone();
                        self.say(format_args!("fault: resumed {name}"));
                    }
                }
                Stage::Armed(since) => {
                    let pid = self.procs[i].pid;
                    let point = self.faults[f].spec.point.clone().unwrap_or_default();
                    let reached = self.faults[f].notice.as_ref().and_then(Notice::reached);
                    if let Some(r) = reached.filter(|r| r.pid == pid) {
                        let name = self.procs[i].spec.lock_pipe().unwrap_or("?").to_string();
                        let pipe = self.monitor.pipe(&name);
                        let moved = pipe.as_ref().map_or(0, moved);
                        // Paused inside the critical section, it holds the pipe's lock.
                        let holds = pipe
                            .as_ref()
                            .and_then(Pipe::lock_owner)
                            .is_some_and(|o| o.tid() == pid);
                        self.fire(f);
                        self.faults[f].stage = Stage::Recovering(Instant::now(), moved);
                        self.faults[f].notice = None;
                        self.faults[f].note = if holds {
                            format!("killed at {}, holding the lock of pipe {name}", r.point)
                        } else {
                            format!(
                                "killed at {}, but not seen holding the lock of pipe {name}",
                                r.point
                            )
                        };
                    } else if self.procs[i].st != St::Running {
                        self.faults[f].note = format!("ended before reaching pause point {point}");
                        self.faults[f].stage = Stage::Done;
                        self.faults[f].notice = None;
                    } else if since.elapsed() > HOLD_WAIT {
                        self.faults[f].note = format!(
                            "never reached pause point {point} within {HOLD_WAIT:?} of arming it"
                        );
                        self.faults[f].stage = Stage::Done;
                        self.faults[f].notice = None;
                    }
                }
                Stage::Recovering(since, from) => {
                    let pid = self.procs[i].pid;
                    let pipe = self.procs[i].spec.lock_pipe().map(String::from);
                    if let Some(pipe) = pipe.and_then(|n| self.monitor.pipe(&n)) {
                        let free = pipe.lock_owner().is_none_or(|o| o.tid() != pid);
                        if free && moved(&pipe) > from {
                            self.faults[f].recovered_ms = Some(since.elapsed().as_secs_f64() * 1e3);
                            self.faults[f].stage = Stage::Done;
                            continue;
                        }
                    }
                    if since.elapsed() > RECOVERY_WAIT {
                        self.faults[f]
                            .note
                            .push_str("; the pipe did not move again");
                        self.faults[f].stage = Stage::Done;
                    }
                }
                Stage::Done => {}
            }
        }
    }

    fn reap(&mut self) {
        for i in 0..self.procs.len() {
            if self.procs[i].st != St::Running {
                continue;
            }
            let status = match self.procs[i].child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(s))) => s,
                Some(Ok(None)) => continue,
                Some(Err(_)) | None => continue,
            };
            self.finish(i, status);
        }
    }

    /// Records the end of a reaped child: its last events first.
    fn finish(&mut self, i: usize, status: ExitStatus) {
        if let Some(r) = self.procs[i].reader.take() {
            let _ = r.join();
        }
        self.handle_events(Duration::ZERO);
        let p = &mut self.procs[i];
        p.child = None;
        p.exit = Some(status);
        p.st = St::Done;
        let (name, restart) = (p.spec.name.clone(), p.restart);
        self.say(format_args!("{name} ended: {status}"));
        if restart {
            self.procs[i].restart = false;
            self.spawn(i);
        }
    }

    /// Whether a process is stopped by a fault now. It may have been stopped inside a
    /// lock that the runner's untimed calls wait for (the pool's, for its stats; a pipe's,
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
            if let Some(handle) = self.monitor.pipe(&pipe) {
                let _ = handle.close();
                self.open_pipes.remove(&pipe);
                self.say(format_args!("closed pipe {pipe}: its writers have ended"));
            }
        }
    }

    fn observe(&mut self) {
        if self.last_stats_at.elapsed() >= Duration::from_millis(50) && !self.any_stopped() {
            self.last_stats_at = Instant::now();
            if let Some(s) = self.monitor.stats() {
                self.high_water = self.high_water.max(s.high_water);
                self.last_stats = Some(s);
            }
        }
        if !self.json && self.last_progress.elapsed() >= Duration::from_millis(500) {
            self.last_progress = Instant::now();
            let parts: Vec<String> = self
                .procs
                .iter()
                .filter(|p| p.st != St::Pending)
                .map(|p| format!("{} {}", p.spec.name, p.items))
                .collect();
            let pool = self
                .last_stats
                .map_or(String::new(), |s| format!("; pool used {} B", s.used));
            self.say(format_args!("{}{pool}", parts.join(", ")));
        }
    }

    /// Kills (and reaps) every child still running.
    fn kill_all(&mut self) {
        for i in 0..self.procs.len() {
            if self.procs[i].st == St::Running {
                self.signal(i, Signal::SIGKILL);
                self.signal(i, Signal::SIGCONT);
                self.procs[i].killed_by_watchdog = !self.procs[i].killed_by_fault;
                self.procs[i].restart = false;
                if let Some(mut c) = self.procs[i].child.take() {
                    if let Ok(status) = c.wait() {
                        self.procs[i].child = Some(c);
                        self.finish(i, status);
                    }
                }
            }
        }
    }

    /// Tears the region down, removes what is left in `/dev/shm`, judges the run.
    fn conclude(mut self) -> RunSummary {
        let seconds = self.t0.elapsed().as_secs_f64();
        let end = self.monitor.stats().or(self.last_stats);
        if let Some(s) = end {
            self.high_water = self.high_water.max(s.high_water);
        }
        let pool = match (self.baseline, end) {
            (Some(b), Some(e)) => Some(PoolSummary {
                capacity: b.capacity,
                baseline_used: b.used,
                baseline_live: b.live_allocations,
                end_used: e.used,
                end_live: e.live_allocations,
                high_water: self.high_water,
            }),
            _ => None,
        };
        self.sides.clear();
        self.main = None;
        self.monitor.view = None;
        let left = files_of(&self.name);
        let cleaned = self.clean_up(&left);

        let faults: Vec<FaultSummary> = self
            .faults
            .iter()
            .map(|f| FaultSummary {
                process: f.spec.process.clone(),
                action: f.spec.action.clone(),
                trigger: trigger(&f.spec),
                fired_at: f.fired_at.map(|d| d.as_secs_f64()),
                recovered_ms: f.recovered_ms,
                note: f.note.clone(),
            })
            .collect();
        let processes: Vec<ProcSummary> = self.procs.iter().map(|p| self.summarise(p)).collect();
        let sources = self
            .procs
            .iter()
            .filter(|p| p.spec.kind == Kind::Source)
            .map(|p| SourceAck {
                id: p.source_id,
                count: p.spec.count.unwrap_or(0),
                acked: match &p.report {
                    Some(r) if r.error.is_none() => r.items,
                    _ => p.items,
                },
            })
            .collect();
        let outcome = Outcome {
            sc: &self.sc,
            processes: &processes,
            reports: self.procs.iter().map(|p| p.report.as_ref()).collect(),
            sources,
            pool,
            faults: &faults,
            files_left: left,
            seconds,
            stale_replaced: self.stale_replaced,
        };
        let checks = expect::check_all(&outcome);
        RunSummary {
            scenario: self.sc.name.clone(),
            description: self.sc.description.clone(),
            file: self.file.display().to_string(),
            region: self.name.to_string(),
            region_bytes: self.sc.region.bytes,
            seconds,
            timed_out: self.timed_out,
            ok: checks.iter().all(|c| c.pass),
            processes,
            pool,
            faults,
            checks,
            cleaned,
        }
    }

    /// Removes the run's leftovers: the region only through `remove_stale` (ours, creator
    /// dead), private build names only of this run's own (reaped) children.
    fn clean_up(&self, left: &[String]) -> Vec<String> {
        let pids: Vec<u32> = self.procs.iter().flat_map(|p| p.pids.clone()).collect();
        let mut cleaned = vec![];
        for f in left {
            if f == self.name.as_str() {
                if Region::remove_stale(&self.name).unwrap_or(false) {
                    cleaned.push(f.clone());
                }
                continue;
            }
            let rest = f
                .strip_prefix(self.name.as_str())
                .and_then(|r| r.strip_prefix(".tmp-"));
            let pid = rest.and_then(|r| r.split('-').next()?.parse::<u32>().ok());
            if pid.is_some_and(|p| pids.contains(&p))
                && std::fs::remove_file(Path::new(SHM_DIR).join(f)).is_ok()
            {
                cleaned.push(f.clone());
            }
        }
        cleaned
    }

    fn summarise(&self, p: &Proc) -> ProcSummary {
        let report = p.report.as_ref();
        let error = report.and_then(|r| r.error.clone());
        let exit_ok = p.exit.is_some_and(|s| s.success());
        let (outcome, finished) = if let Some(e) = &p.spawn_error {
            (e.clone(), false)
        } else if p.starts == 0 {
            ("never started".to_string(), false)
        } else if p.killed_by_fault {
            ("killed (fault)".to_string(), false)
        } else if p.killed_by_watchdog {
            ("timed out".to_string(), false)
        } else if let Some(e) = error {
            if p.spec.allow_error {
                (format!("error (allowed): {e}"), report.is_some())
            } else {
                (format!("error: {e}"), false)
            }
        } else if exit_ok && report.is_some() {
            ("ok".to_string(), true)
        } else {
            (
                p.exit
                    .map_or("no exit status".to_string(), |s| s.to_string()),
                false,
            )
        };
        let items = report.map_or(p.items, |r| r.items);
        let secs = report.map_or(0.0, |r| r.seconds);
        let drops = match p.spec.kind {
            Kind::Fanout => report.map_or(0, ProcReport::dropped),
            Kind::Sink => self
                .procs
                .iter()
                .filter_map(|q| q.report.as_ref())
                .flat_map(|r| &r.outputs)
                .filter(|o| Some(o.pipe.as_str()) == p.spec.input.as_deref())
                .map(|o| o.dropped)
                .sum(),
            _ => 0,
        };
        let stderr_tail = if finished {
            vec![]
        } else {
            p.stderr
                .lock()
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default()
        };
        ProcSummary {
            name: p.spec.name.clone(),
            kind: format!("{:?}", p.spec.kind).to_lowercase(),
            outcome,
            finished,
            killed_by_fault: p.killed_by_fault,
            starts: p.starts,
            items,
            throughput: if secs > 0.0 { items as f64 / secs } else { 0.0 },
            latency_us: report.and_then(|r| r.latency_us),
            drops,
            stderr_tail,
        }
    }
}

/// Keeps `line` among the last lines of a process's output.
fn keep_line(keep: &Mutex<VecDeque<String>>, line: String) {
    let mut k = keep.lock().unwrap_or_else(|e| e.into_inner());
    if k.len() == STDERR_LINES {
        k.pop_front();
    }
    k.push_back(line);
}

/// Items the pipe has moved so far, both ways.
fn moved(p: &Pipe) -> u64 {
    p.stats().map_or(0, |s| s.enqueued + s.dequeued)
}

fn trigger(f: &FaultSpec) -> String {
    let mut t = if let Some(k) = f.at_item {
        format!("at item {k}")
    } else if let Some(a) = &f.at {
        format!("at {a}")
    } else {
        "when ready".to_string()
    };
    if let Some(p) = &f.point {
        t.push_str(&format!(" ({p})"));
    }
    if let Some(r) = &f.resume_after {
        t.push_str(&format!(", for {r}"));
    }
    t
}

/// The files of region `name` in `/dev/shm`: the name and its private build names.
pub fn files_of(name: &RegionName) -> Vec<String> {
    let tmp = format!("{name}.tmp-");
    std::fs::read_dir(SHM_DIR)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| f == name.as_str() || f.starts_with(&tmp))
                .collect()
        })
        .unwrap_or_default()
}
