//! The region's keeper: the one process of a run that maps the run's region for the
//! runner. It creates the region, its pipes and its tables (when the runner owns them),
//! holds them, reads the pool's, the pipes' and the tables' figures, closes pipes, and at
//! the end reads the tables and takes them down, on the runner's requests.
//!
//! Why a process of its own: a mapping faults (SIGBUS) on any page past the end of its
//! file, and anyone who may write to `/dev/shm` can truncate a region under a run. A
//! check of the file's size before each read cannot close that window, and the library
//! reads the region through references, not calls that could return an error. So the
//! runner maps nothing: if the region is truncated, the keeper may die of SIGBUS like the
//! scenario's processes, and the runner, which only talks to it through pipes, survives
//! to report it, reap everything and remove the run's files.
//!
//! Protocol: one JSON [`Request`] a line on the keeper's standard input, one JSON
//! [`Reply`] a line on its standard output, matched by id. The keeper ends on `quit` or
//! when its standard input closes, and dies with the runner (`PR_SET_PDEATHSIG`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shmval::alloc::{Pool, PoolStats};
use shmval::queue::Pipe;
use shmval::region::{AttachOptions, Region, RegionName};
use shmval::sides::{Directory, Names, PipeName, ServerSide, ShmMain};
use shmval::ShmLocked;

use crate::scenario::{PipeSpec, TableSpec};

/// What the keeper is started with (one JSON argument).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct KeeperSpec {
    /// The region's name.
    pub region: String,
    /// Its size, for `make`.
    pub bytes: u64,
    /// The most it may grow to.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// The pipes `make` creates.
    pub pipes: Vec<PipeSpec>,
    /// The tables `make` creates and publishes, which `take_tables` reads at the end.
    #[serde(default)]
    pub tables: Vec<TableSpec>,
    /// The runner: the keeper ends when its parent is no longer it.
    pub runner_pid: u32,
}

/// A request from the runner.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Create the region and its pipes, and hold them.
    Make,
    /// The pool's figures.
    Stats,
    /// A pipe's counters and lock owner.
    Pipe(String),
    /// Close a pipe (its readers drain it and end).
    Close(String),
    /// A table's operations and lock owner.
    Table(String),
    /// Read every declared table under its lock, then unpublish and drop it (the end of
    /// the run: the pool is then measured without them).
    TakeTables,
    /// Let go of everything (the region's name goes with it) and end.
    Quit,
}

/// The keeper's answer to a [`Request`].
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// The region was made; whether it replaced a stale one; the pool's baseline.
    Made {
        /// A region file had the name before.
        replaced: bool,
        /// The pool right after the pipes were made.
        stats: Option<Figures>,
    },
    /// The pool's figures.
    Stats(Figures),
    /// A pipe's state.
    Pipe {
        /// Items it has moved so far, both ways.
        moved: u64,
        /// The thread holding its lock, if any.
        lock_owner: Option<u32>,
    },
    /// A table's state.
    Table {
        /// Operations committed on it so far.
        operations: u64,
        /// The thread holding its lock, if any.
        lock_owner: Option<u32>,
    },
    /// The declared tables, read.
    Tables(Vec<TableRead>),
    /// Done (`close`, `quit`).
    Done,
    /// The request failed.
    Error(String),
}

/// The pool's figures the runner keeps.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Figures {
    /// Heap bytes.
    pub capacity: u64,
    /// Bytes in used blocks.
    pub used: u64,
    /// Blocks handed out and not freed.
    pub live_allocations: u64,
    /// The most `used` has been.
    pub high_water: u64,
    /// Dead processes whose holdings recovery has given back in the region so far.
    #[serde(default)]
    pub recovered_processes: u64,
    /// Pool bytes it gave back.
    #[serde(default)]
    pub recovered_bytes: u64,
    /// Dead processes' slots still waiting to be reclaimed after this recovery (what they
    /// hold is not given back yet).
    #[serde(default)]
    pub dead_left: bool,
}

impl From<PoolStats> for Figures {
    fn from(s: PoolStats) -> Figures {
        Figures {
            capacity: s.capacity,
            used: s.used,
            live_allocations: s.live_allocations,
            high_water: s.high_water,
            recovered_processes: 0,
            recovered_bytes: 0,
            dead_left: false,
        }
    }
}

/// A table as the keeper read it at the end.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct TableRead {
    /// Its name.
    pub name: String,
    /// Its value as a Python literal, or why it could not be read.
    pub value: Result<String, String>,
    /// Its last holder had died: the keeper's lock took it over and settled it.
    pub owner_died: bool,
}

/// How long the keeper waits for a table's lock at the end (every process has ended: a
/// holder that died is taken over at once).
const TABLE_LOCK_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize, Serialize)]
struct Tagged<T> {
    id: u64,
    body: T,
}

/// `shmval keeper SPEC`: serves the runner's requests; returns the exit code.
pub fn serve(spec_json: &str) -> i32 {
    let spec: KeeperSpec = match serde_json::from_str(spec_json) {
        Ok(s) => s,
        Err(e) => {
            crate::output::err_line(format_args!("shmval keeper: bad spec: {e}"));
            return 2;
        }
    };
    crate::signals::ignore_in_child();
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    if nix::unistd::getppid().as_raw() as u32 != spec.runner_pid {
        return 3;
    }
    let mut held = Held {
        name: match RegionName::new(spec.region.as_str()) {
            Ok(n) => n,
            Err(e) => {
                crate::output::err_line(format_args!("shmval keeper: {e}"));
                return 2;
            }
        },
        spec,
        main: None,
        sides: vec![],
        view: None,
    };
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Ok(req) = serde_json::from_str::<Tagged<Request>>(&line) else {
            continue;
        };
        let quit = matches!(req.body, Request::Quit);
        let body = held.answer(req.body);
        let reply = Tagged { id: req.id, body };
        let sent = serde_json::to_string(&reply)
            .map_err(std::io::Error::other)
            .and_then(|s| writeln!(out, "{s}"))
            .and_then(|()| out.flush());
        if quit || sent.is_err() {
            break;
        }
    }
    0
}

/// The pool's figures once what dead processes held is given back and what was deferred
/// freed, without what the keeper's own ledger keeps (its chunks, which it keeps while it
/// runs): what the processes of the run hold.
fn settled_stats(pool: &Pool) -> Result<Figures, shmval::alloc::AllocError> {
    let recovered = shmval::sides::recover(pool);
    pool.free_deferred()?;
    let mut s = pool.stats()?;
    let kept = shmval::ledger::kept(pool);
    s.used -= kept.bytes;
    s.live_allocations -= kept.blocks;
    Ok(Figures {
        recovered_processes: recovered.processes,
        recovered_bytes: recovered.total.bytes,
        dead_left: pool.region().has_dead_slots(),
        ..Figures::from(s)
    })
}

/// What the keeper holds: the region it made (if it made it) and its attached view.
struct Held {
    spec: KeeperSpec,
    name: RegionName,
    main: Option<ShmMain>,
    sides: Vec<ServerSide>,
    view: Option<(Arc<Region>, Pool, Directory)>,
}

impl Held {
    fn answer(&mut self, req: Request) -> Reply {
        match req {
            Request::Make => self.make(),
            Request::Stats => match self.refresh().map(|(_, pool, _)| settled_stats(pool)) {
                Some(Ok(s)) => Reply::Stats(s),
                Some(Err(e)) => Reply::Error(format!("pool: {e}")),
                None => Reply::Error(format!("region {} not attached", self.name)),
            },
            Request::Pipe(name) => match self.pipe(&name) {
                Some(p) => Reply::Pipe {
                    moved: p.stats().map_or(0, |s| s.enqueued + s.dequeued),
                    lock_owner: p.lock_owner().map(|o| o.tid()),
                },
                None => Reply::Error(format!("no pipe {name}")),
            },
            Request::Close(name) => match self.pipe(&name).map(|p| p.close()) {
                Some(Ok(())) => Reply::Done,
                Some(Err(e)) => Reply::Error(format!("closing pipe {name}: {e}")),
                None => Reply::Error(format!("no pipe {name}")),
            },
            Request::Table(name) => match self.table(&name, Duration::from_millis(100)) {
                Ok(t) => match t.status() {
                    Ok(s) => Reply::Table {
                        operations: s.operations,
                        lock_owner: s.holder.map(|o| o.tid()),
                    },
                    Err(e) => Reply::Error(format!("table {name}: {e}")),
                },
                Err(e) => Reply::Error(e),
            },
            Request::TakeTables => Reply::Tables(self.take_tables()),
            Request::Quit => {
                self.sides.clear();
                self.main = None;
                self.view = None;
                Reply::Done
            }
        }
    }

    fn make(&mut self) -> Reply {
        let replaced = self.name.file_path().exists();
        let mut builder = ShmMain::new(self.name.as_str(), self.spec.bytes);
        if let Some(max) = self.spec.max_bytes {
            builder = builder.max_bytes(max);
        }
        let main = match builder.start() {
            Ok(m) => m,
            Err(e) => return Reply::Error(format!("creating region {}: {e}", self.name)),
        };
        self.main = Some(main);
        for p in &self.spec.pipes {
            let side = ServerSide::new(self.name.as_str(), p.name.as_str(), p.capacity)
                .persist(p.persist)
                .redeliver(p.redeliver)
                .one_to_one(p.one_to_one)
                .timeout(Duration::from_secs(5))
                .start();
            match side {
                // A persisted pipe must live on its own: the keeper does not hold it.
                Ok(side) if !p.persist => self.sides.push(side),
                Ok(_) => {}
                Err(e) => return Reply::Error(format!("creating pipe {}: {e}", p.name)),
            }
        }
        // The baseline is the pool before the tables: at the end they are taken down, and
        // with them everything written into them.
        let stats = self
            .refresh()
            .and_then(|(_, pool, _)| settled_stats(pool).ok());
        if let Some(main) = &self.main {
            for t in &self.spec.tables {
                let made = t.value_val().and_then(|v| {
                    let board = ShmLocked::new(main.pool(), v).map_err(|e| e.to_string())?;
                    main.names()
                        .and_then(|n| n.publish(&t.name, board.into_val()))
                        .map_err(|e| e.to_string())
                });
                if let Err(e) = made {
                    return Reply::Error(format!("making table {}: {e}", t.name));
                }
            }
        }
        Reply::Made { replaced, stats }
    }

    /// The names directory: through the region the keeper made, else its view.
    fn names(&mut self, lock_wait: Duration) -> Result<Names, String> {
        let names = match &self.main {
            Some(main) => main.names().map_err(|e| e.to_string())?,
            None => {
                let unattached = format!("region {} not attached", self.name);
                let (_, pool, _) = self.refresh().ok_or(unattached)?;
                Names::open(pool).map_err(|e| e.to_string())?
            }
        };
        Ok(names.lock_timeout(lock_wait))
    }

    /// A handle to the table published as `name`.
    fn table(&mut self, name: &str, lock_wait: Duration) -> Result<ShmLocked, String> {
        self.names(lock_wait)?
            .get(name)
            .map_err(|e| format!("table {name}: {e}"))?
            .ok_or_else(|| format!("no table {name} is published"))?
            .into_locked()
            .map_err(|e| format!("table {name}: {e}"))
    }

    /// Reads each declared table under its lock, then unpublishes it and lets go of it.
    fn take_tables(&mut self) -> Vec<TableRead> {
        let tables: Vec<String> = self.spec.tables.iter().map(|t| t.name.clone()).collect();
        tables
            .into_iter()
            .map(|name| {
                let mut owner_died = false;
                let value = self.table(&name, TABLE_LOCK_WAIT).and_then(|t| {
                    let g = t.lock(TABLE_LOCK_WAIT).map_err(|e| e.to_string())?;
                    owner_died = g.owner_died();
                    g.to_val().map(|v| v.to_string()).map_err(|e| e.to_string())
                });
                if let Ok(names) = self.names(TABLE_LOCK_WAIT) {
                    drop(names.unpublish(&name));
                }
                TableRead {
                    name,
                    value,
                    owner_died,
                }
            })
            .collect()
    }

    /// The region, attached again if its name now stands for another file. A name that
    /// is gone leaves the view as it is: a creator that exits unlinks it, and the region
    /// lives on in those still attached (the end still reads its tables).
    fn refresh(&mut self) -> Option<&(Arc<Region>, Pool, Directory)> {
        let other = |r: &Region| !r.is_current() && self.name.file_path().exists();
        if self.view.as_ref().is_some_and(|(r, _, _)| other(r)) {
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
}

/// Why the keeper gave no answer.
#[derive(Debug)]
pub enum NoAnswer {
    /// It did not answer in time (it may be waiting for a lock).
    Late,
    /// It has ended.
    Gone,
}

/// The runner's end of the keeper.
#[derive(Debug)]
pub struct Keeper {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: Receiver<Tagged<Reply>>,
    next: u64,
    /// A request it has not answered in time: until it does, it is asked nothing more
    /// (each ask would only wait its whole timeout again).
    late: Option<u64>,
    status: Option<ExitStatus>,
}

impl Keeper {
    /// Starts `exe keeper SPEC`.
    pub fn start(exe: &Path, spec: &KeeperSpec) -> Result<Keeper, String> {
        let json = serde_json::to_string(spec).map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .arg("keeper")
            .arg(json)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the region's keeper: {e}"))?;
        let (tx, replies) = channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(r) = serde_json::from_str::<Tagged<Reply>>(&line) {
                        if tx.send(r).is_err() {
                            break;
                        }
                    }
                }
            });
        }
        Ok(Keeper {
            stdin: child.stdin.take(),
            child,
            replies,
            next: 0,
            late: None,
            status: None,
        })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `req` and waits up to `timeout` for its answer (a late answer to an earlier
    /// request is dropped). While an earlier request is still unanswered, answers
    /// [`NoAnswer::Late`] at once.
    pub fn ask(&mut self, req: Request, timeout: Duration) -> Result<Reply, NoAnswer> {
        if let Some(late) = self.late {
            loop {
                match self.replies.try_recv() {
                    Ok(r) if r.id >= late => break,
                    Ok(_) => {}
                    Err(std::sync::mpsc::TryRecvError::Empty) => return Err(NoAnswer::Late),
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => return Err(NoAnswer::Gone),
                }
            }
            self.late = None;
        }
        self.next += 1;
        let id = self.next;
        let line = serde_json::to_string(&Tagged { id, body: req }).map_err(|_| NoAnswer::Gone)?;
        let stdin = self.stdin.as_mut().ok_or(NoAnswer::Gone)?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|_| NoAnswer::Gone)?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.replies.recv_timeout(left) {
                Ok(r) if r.id == id => return Ok(r.body),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    self.late = Some(id);
                    return Err(NoAnswer::Late);
                }
                Err(RecvTimeoutError::Disconnected) => return Err(NoAnswer::Gone),
            }
        }
    }

    /// Waits up to `wait` for the answer to a request it has been late with, if any.
    fn catch_up(&mut self, wait: Duration) -> Result<(), NoAnswer> {
        let Some(late) = self.late else {
            return Ok(());
        };
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.replies.recv_timeout(left) {
                Ok(r) if r.id >= late => {
                    self.late = None;
                    return Ok(());
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => return Err(NoAnswer::Late),
                Err(RecvTimeoutError::Disconnected) => return Err(NoAnswer::Gone),
            }
        }
    }

    /// How it ended, if it has (reaped then).
    pub fn ended(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Ends it: `quit` (it lets go of the region, whose name goes with it, then exits),
    /// or SIGKILL if it does not answer within `grace`. Reaps it; returns how it ended.
    pub fn end(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.ended().is_none() {
            let answered = self.catch_up(grace).is_ok() && self.ask(Request::Quit, grace).is_ok();
            self.stdin = None;
            if !answered {
                let _ = self.child.kill();
            }
            self.status = self.child.wait().ok();
        }
        self.status
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.end(Duration::ZERO);
    }
}
