//! Scenario files: the TOML format (documented in `scenarios/README.md`), read and checked
//! before anything runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shmval::Val;

mod check;
mod find;

pub use find::resolve;

/// A scenario file, as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, shown in the summary.
    pub name: String,
    /// One or two sentences: what the scenario shows.
    #[serde(default)]
    pub description: String,
    /// The shared-memory region.
    pub region: RegionSpec,
    /// The pipes in it.
    #[serde(default, rename = "pipe")]
    pub pipes: Vec<PipeSpec>,
    /// The locked tables made with it and published by name.
    #[serde(default, rename = "table")]
    pub tables: Vec<TableSpec>,
    /// The processes.
    #[serde(rename = "process")]
    pub processes: Vec<ProcessSpec>,
    /// Faults injected while it runs.
    #[serde(default, rename = "fault")]
    pub faults: Vec<FaultSpec>,
    /// What must hold at the end.
    #[serde(default)]
    pub expect: Expect,
    /// The seed of the run's random choices (`at_random_item`); without it the runner
    /// picks one and reports it.
    #[serde(default)]
    pub seed: Option<u64>,
}

/// The region: its name is `<prefix>-<pid of the runner>`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// Name prefix.
    pub prefix: String,
    /// Size in bytes.
    pub bytes: u64,
    /// The most the pool may grow to (default: `bytes`, no growth).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Who creates it: `"runner"` (the default: the runner creates the region and the
    /// pipes before any process starts) or the name of a `main` process.
    #[serde(default)]
    pub created_by: Option<String>,
    /// With the runner creating it: only once this process has ended.
    #[serde(default)]
    pub start_after: Option<String>,
}

/// A pipe.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipeSpec {
    /// Its name in the region's directory.
    pub name: String,
    /// Slots.
    pub capacity: u64,
    /// Kept when its last user goes (the runner then holds no reference to it either).
    #[serde(default)]
    pub persist: bool,
    /// A value its receiver held when it died goes back into the pipe for another receiver
    /// (`ServerSide::redeliver`): delivery at least once.
    #[serde(default)]
    pub redeliver: bool,
    /// One process sends and one receives at a time, without a lock
    /// (`ServerSide::one_to_one`); a process that restarts takes its side over.
    #[serde(default)]
    pub one_to_one: bool,
}

/// A locked table (`shmval::ShmLocked`) made with the region, before any process starts,
/// and published under its name.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// The name it is published under.
    pub name: String,
    /// What it holds at first: a dict, as a Python literal.
    pub value: String,
}

impl TableSpec {
    /// The table's first value (a dict: checked when the scenario was read).
    pub fn value_val(&self) -> Result<Val, String> {
        let v = Val::parse(&self.value).map_err(|e| {
            format!(
                "table {:?}: value {:?} is not a Python literal: {e}",
                self.name, self.value
            )
        })?;
        if !matches!(v, Val::Tab(_) | Val::OTab(_)) {
            return Err(format!(
                "table {:?}: value {:?} is a {}, not a dict",
                self.name,
                self.value,
                v.tag().name()
            ));
        }
        Ok(v)
    }
}

/// What a process does.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Sends `count` packets to `out`.
    Source,
    /// Receives from `in`, adds fields, sends to `out`.
    Middle,
    /// Receives from `in` until it is closed (or `take` items), checks what arrives.
    Sink,
    /// Copies `in` to every pipe of `outs` under a policy.
    Fanout,
    /// Creates the region (and its `pipes`), as the seed's server does with `SHMMain`.
    Main,
    /// Makes `ops` updates of a named locked table: each increments its counters and
    /// appends an item, under the table's lock.
    Writer,
    /// Reads a named locked table (under its lock, or as a snapshot) and checks what it can.
    Reader,
}

/// A process of the scenario.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// Unique name.
    pub name: String,
    /// Its role.
    pub kind: Kind,
    /// Input pipe (middle, sink, fanout).
    #[serde(default, rename = "in")]
    pub input: Option<String>,
    /// Output pipe (source, middle).
    #[serde(default)]
    pub out: Option<String>,
    /// Output pipes (fanout).
    #[serde(default)]
    pub outs: Vec<String>,
    /// Fan-out policy: `"block"` (default) or `"drop_oldest"`; `drop_after` sets the third.
    #[serde(default)]
    pub policy: Option<String>,
    /// Fan-out: drop an item for an output still full after this long (`"5ms"`).
    #[serde(default)]
    pub drop_after: Option<String>,
    /// Source: packets to send.
    #[serde(default)]
    pub count: Option<u64>,
    /// Source: the payload, a Python literal; a dict's entries go into each packet.
    #[serde(default)]
    pub payload: Option<String>,
    /// Source: packets grow to this many bytes: each carries a string `pad` whose size
    /// doubles in steps from 1 KiB to this over the first third of the run, and stays
    /// there (for a pool that grows).
    #[serde(default)]
    pub grow_to: Option<u64>,
    /// Source: packets per second (default: as fast as the pipe takes them).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Slowness: a pause after each item (`"1ms"`).
    #[serde(default)]
    pub delay_per_item: Option<String>,
    /// Start only once this process has ended.
    #[serde(default)]
    pub start_after: Option<String>,
    /// Middle: entries added to each packet (values are Python literals).
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Sink: entries every packet must carry (values are Python literals).
    #[serde(default)]
    pub expect_fields: BTreeMap<String, String>,
    /// Sink: stop after this many items.
    #[serde(default)]
    pub take: Option<u64>,
    /// Sink: it must receive every packet of every source, once.
    #[serde(default)]
    pub sees_all: bool,
    /// Sink: at most this many packets dropped for it upstream (by a fan-out).
    #[serde(default)]
    pub max_drops: Option<u64>,
    /// How long it waits for the region and its pipes (default 20s).
    #[serde(default)]
    pub attach_timeout: Option<String>,
    /// It may end with an error (a clear message), as long as it ends.
    #[serde(default)]
    pub allow_error: bool,
    /// Main: the pipes it creates.
    #[serde(default)]
    pub pipes: Vec<String>,
    /// Main: `"none"` (exit at once, default), `"idle"` (wait until readers are done)
    /// or `"forever"` (until killed). Sink and middle: how long it keeps each item it
    /// received before dropping (sink) or forwarding (middle) it (`"2ms"`): the work it
    /// does on the item, while holding it. Writer: how long it holds the table's lock in
    /// each update.
    #[serde(default)]
    pub hold: Option<String>,
    /// Writer and reader: the declared table it works on.
    #[serde(default)]
    pub table: Option<String>,
    /// Writer: updates to make (per start).
    #[serde(default)]
    pub ops: Option<u64>,
    /// Writer: the integer entries each update adds 1 to.
    #[serde(default)]
    pub increment: Vec<String>,
    /// Writer: the list each update appends its item to.
    #[serde(default)]
    pub append: Option<String>,
    /// Writer: each item padded with `.` to this many bytes.
    #[serde(default)]
    pub item_bytes: Option<u64>,
    /// Reader: stop after this many reads (else once the table's writers have ended).
    #[serde(default)]
    pub reads: Option<u64>,
    /// Reader: `"lock"` (read in place under the lock, the default) or `"snapshot"`.
    #[serde(default)]
    pub read: Option<String>,
}

/// A fault.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// The process it hits.
    pub process: String,
    /// `"kill"` (SIGKILL), `"stop"` (SIGSTOP, then SIGCONT after `resume_after`),
    /// `"restart"` (SIGKILL, then start it again), `"kill_in_lock"` (SIGKILL while it
    /// holds the lock of `pipe`, paused at `point`).
    pub action: String,
    /// When the process has handled this many items.
    #[serde(default)]
    pub at_item: Option<u64>,
    /// When the process has handled a number of items picked at random (with the run's
    /// seed) in this inclusive range; the runner sets `at_item` to it.
    #[serde(default)]
    pub at_random_item: Option<[u64; 2]>,
    /// At this time after the run started (`"300ms"`).
    #[serde(default)]
    pub at: Option<String>,
    /// `"ready"`: as soon as the process reports it is attached.
    #[serde(default)]
    pub on: Option<String>,
    /// Stop: how long it stays stopped.
    #[serde(default)]
    pub resume_after: Option<String>,
    /// Kill in lock: the pause point, one of [`lock_points`], `name#n` for its `n`th
    /// passing after the process armed it.
    #[serde(default)]
    pub point: Option<String>,
    /// Restart: how many of the process's starts it hits, each at its trigger (default 1:
    /// the first start only).
    #[serde(default)]
    pub times: Option<u32>,
}

impl FaultSpec {
    /// How many starts of its process the fault hits.
    pub fn times(&self) -> u32 {
        self.times.unwrap_or(1)
    }
}

/// Expectations checked at the end.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Every packet a source had sent (acknowledged) reaches exactly one sink; none
    /// arrives twice or from nowhere.
    #[serde(default)]
    pub exactly_once: bool,
    /// No packet arrives twice (across all sinks), none from nowhere.
    #[serde(default)]
    pub at_most_once: bool,
    /// Every packet a source had sent (acknowledged) reaches some sink; a packet arrives
    /// twice only as the last one a killed sink reported receiving (which it may not have
    /// acknowledged yet), once more per such kill; none from nowhere.
    #[serde(default)]
    pub at_least_once: bool,
    /// Every sink gets each source's packets in the order they were sent.
    #[serde(default)]
    pub in_order: bool,
    /// The pool is back to its baseline once the processes are gone.
    #[serde(default)]
    pub no_leak: bool,
    /// Each declared table's counters hold exactly the acknowledged increments (plus at
    /// most one update per writer start cut short), and its lists every acknowledged item
    /// once.
    #[serde(default)]
    pub counters_exact: bool,
    /// Every process no fault hit ends with success.
    #[serde(default = "yes")]
    pub survivors_finish: bool,
    /// Nothing of the run is left in `/dev/shm`.
    #[serde(default = "yes")]
    pub no_files_left: bool,
    /// The run ends within this many seconds (the watchdog kills it then).
    #[serde(default = "default_seconds")]
    pub max_seconds: f64,
    /// After a kill in a lock, the pipe moves again within this long.
    #[serde(default)]
    pub recover_within: Option<String>,
    /// The runner's region replaced a stale one left under its name.
    #[serde(default)]
    pub stale_replaced: bool,
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            exactly_once: false,
            at_most_once: false,
            at_least_once: false,
            in_order: false,
            no_leak: false,
            counters_exact: false,
            survivors_finish: true,
            no_files_left: true,
            max_seconds: default_seconds(),
            recover_within: None,
            stale_replaced: false,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_seconds() -> f64 {
    60.0
}

/// The fan-out policies.
pub fn policy_of(p: &ProcessSpec) -> Result<shmval::sides::Policy, String> {
    use shmval::sides::Policy;
    match (p.policy.as_deref(), &p.drop_after) {
        (None | Some("drop_after"), Some(d)) => Ok(Policy::DropAfter(duration(d)?)),
        (None | Some("block"), None) => Ok(Policy::Block),
        (Some("drop_oldest"), None) => Ok(Policy::DropOldest),
        (Some(other), _) => Err(format!(
            "unknown policy {other:?} (block, drop_oldest, or drop_after = \"5ms\")"
        )),
    }
}

/// The longest duration a scenario may give anywhere (and its `max_seconds`): a day. Far
/// past any run's length, and far below where adding it to a clock reading overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(86_400);

/// Reads `"5ms"`, `"1.5s"`, `"200us"`, `"2m"`: at most [`MAX_DURATION`].
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?}: write e.g. \"5ms\", \"1.5s\""))?;
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        _ => {
            return Err(format!(
                "bad duration {s:?}: the unit is ns, us, ms, s or m"
            ))
        }
    };
    match Duration::try_from_secs_f64(n * scale) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(format!(
            "bad duration {s:?}: at most a day ({} s)",
            MAX_DURATION.as_secs()
        )),
    }
}

/// Pause points a `kill_in_lock` fault may name inside a pipe's lock (a source's send, a
/// sink's receive); inside a locked table's (a writer's update; a reader's lock at
/// `locked.lock.taken`) they are [`shmval::fault::LOCKED_UPDATE_POINTS`].
pub const RING_POINTS: [&str; 4] = [
    "ring.send.slot_written",
    "ring.send.committed",
    "ring.recv.read",
    "ring.recv.committed",
];

/// Every pause point a `kill_in_lock` fault may name.
pub fn lock_points() -> impl Iterator<Item = &'static str> {
    RING_POINTS
        .into_iter()
        .chain(shmval::fault::LOCKED_UPDATE_POINTS)
}

/// The lock a `kill_in_lock` fault's process holds at its pause point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockOf<'a> {
    /// A pipe's.
    Pipe(&'a str),
    /// A locked table's.
    Table(&'a str),
}

impl Scenario {
    /// Reads and checks a scenario file. The error names the file and the problem.
    pub fn load(path: &Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        Scenario::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks scenario text.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        // Which fields each process and fault was given: serde fills in the rest.
        let raw: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        check::check_given_fields(&raw, &s)?;
        s.check()?;
        Ok(s)
    }

    /// The process named `name`.
    pub fn process(&self, name: &str) -> Option<&ProcessSpec> {
        self.processes.iter().find(|p| p.name == name)
    }

    /// Whether the runner creates the region.
    pub fn runner_creates_region(&self) -> bool {
        matches!(self.region.created_by.as_deref(), None | Some("runner"))
    }

    /// The table named `name`.
    pub fn table(&self, name: &str) -> Option<&TableSpec> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The writers of table `name`.
    pub fn writers_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a ProcessSpec> {
        self.processes
            .iter()
            .filter(move |p| p.kind == Kind::Writer && p.table.as_deref() == Some(name))
    }

    /// How many of process `name`'s starts the faults may kill: a kill or a kill in a
    /// lock hits one, a restart each start it hits.
    pub fn kills_of(&self, name: &str) -> u64 {
        self.faults
            .iter()
            .filter(|f| f.process == name)
            .map(|f| match f.action.as_str() {
                "kill" | "kill_in_lock" => 1,
                "restart" => u64::from(f.times()),
                _ => 0,
            })
            .sum()
    }
}

/// The item a writer appends in update `seq` (0, 1, ...) of its start `start` (1, 2,
/// ...): `<process>-<start>-<seq>`, padded with `.` to `bytes`; unique across the run.
pub fn item_of(process: &str, start: u32, seq: u64, bytes: Option<u64>) -> String {
    let mut s = format!("{process}-{start}-{seq}");
    let want = usize::try_from(bytes.unwrap_or(0)).unwrap_or(usize::MAX);
    while s.len() < want {
        s.push('.');
    }
    s
}

/// The writer, start and update of an item [`item_of`] made, if it is one.
pub fn item_parts(item: &str) -> Option<(&str, u32, u64)> {
    let mut parts = item.trim_end_matches('.').rsplitn(3, '-');
    let seq = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    Some((parts.next()?, start, seq))
}

impl ProcessSpec {
    /// The source's payload: a dict, whose entries go into each packet beside the
    /// source's own (`src`, `seq`, `sent_ns`).
    pub fn payload_val(&self) -> Result<Val, String> {
        let text = self.payload.as_deref().unwrap_or("{}");
        let v = Val::parse(text).map_err(|e| {
            format!(
                "process {:?}: payload {text:?} is not a Python literal: {e}",
                self.name
            )
        })?;
        if !matches!(v, Val::Tab(_)) {
            return Err(format!(
                "process {:?}: payload {text:?} is a {}, not a dict (its entries go into each \
                 packet)",
                self.name,
                v.tag().name()
            ));
        }
        for k in check::PACKET_FIELDS {
            if v.get(k).is_some() {
                return Err(format!(
                    "process {:?}: payload {text:?} has {k:?}, which the source sets in each \
                     packet",
                    self.name
                ));
            }
        }
        Ok(v)
    }

    /// The lock this process's lock faults refer to.
    pub fn lock_of(&self) -> Option<LockOf<'_>> {
        match self.kind {
            Kind::Source => self.out.as_deref().map(LockOf::Pipe),
            Kind::Writer | Kind::Reader => self.table.as_deref().map(LockOf::Table),
            _ => self.input.as_deref().map(LockOf::Pipe),
        }
    }

    /// Sink, middle and writer: how long it holds each item or the table's lock in each
    /// update (checked when the scenario was read).
    pub fn hold_for(&self) -> Option<Duration> {
        match self.kind {
            Kind::Sink | Kind::Middle | Kind::Writer => {
                self.hold.as_deref().and_then(|d| duration(d).ok())
            }
            _ => None,
        }
    }

    /// Pipes this process sends into.
    pub fn writes(&self) -> Vec<&str> {
        match self.kind {
            Kind::Source | Kind::Middle => self.out.iter().map(String::as_str).collect(),
            Kind::Fanout => self.outs.iter().map(String::as_str).collect(),
            Kind::Sink | Kind::Main | Kind::Writer | Kind::Reader => vec![],
        }
    }
}

#[cfg(test)]
mod tests;
