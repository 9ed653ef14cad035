//! Scenario files: the TOML format (documented in `scenarios/README.md`), read and checked
//! before anything runs.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shmval::Val;

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
    /// The processes.
    #[serde(rename = "process")]
    pub processes: Vec<ProcessSpec>,
    /// Faults injected while it runs.
    #[serde(default, rename = "fault")]
    pub faults: Vec<FaultSpec>,
    /// What must hold at the end.
    #[serde(default)]
    pub expect: Expect,
}

/// The region: its name is `<prefix>-<pid of the runner>`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// Name prefix.
    pub prefix: String,
    /// Size in bytes.
    pub bytes: u64,
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
    /// or `"forever"` (until killed).
    #[serde(default)]
    pub hold: Option<String>,
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
    /// At this time after the run started (`"300ms"`).
    #[serde(default)]
    pub at: Option<String>,
    /// `"ready"`: as soon as the process reports it is attached.
    #[serde(default)]
    pub on: Option<String>,
    /// Stop: how long it stays stopped.
    #[serde(default)]
    pub resume_after: Option<String>,
    /// Kill in lock: the pause point (`ring.send.slot_written`, `ring.send.committed`,
    /// `ring.recv.read`, `ring.recv.committed`).
    #[serde(default)]
    pub point: Option<String>,
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
    /// Every sink gets each source's packets in the order they were sent.
    #[serde(default)]
    pub in_order: bool,
    /// The pool is back to its baseline once the processes are gone.
    #[serde(default)]
    pub no_leak: bool,
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
            in_order: false,
            no_leak: false,
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

/// The smallest region a scenario may ask for: what `ShmMain` needs to start, the
/// region's header (128 bytes), the pool's header, and the pipe directory's block (7208
/// bytes for its 64 entries). Below it the region's, the pool's or the directory's own
/// check fails, each with another figure; this one is what they add up to, checked
/// against the library by a test. The pipes need room beyond it.
pub const MIN_REGION_BYTES: u64 = 9136;

/// Fields every process may have.
const PROCESS_FIELDS: [&str; 6] = [
    "name",
    "kind",
    "delay_per_item",
    "start_after",
    "attach_timeout",
    "allow_error",
];

/// The fields a process of `kind` may have besides [`PROCESS_FIELDS`].
fn kind_fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Source => &["out", "count", "payload", "rate"],
        Kind::Middle => &["in", "out", "add"],
        Kind::Sink => &["in", "take", "sees_all", "max_drops", "expect_fields"],
        Kind::Fanout => &["in", "outs", "policy", "drop_after"],
        Kind::Main => &["pipes", "hold"],
    }
}

/// Fields every fault may have.
const FAULT_FIELDS: [&str; 5] = ["process", "action", "at_item", "at", "on"];

/// The fields a fault doing `action` may have besides [`FAULT_FIELDS`].
fn action_fields(action: &str) -> &'static [&'static str] {
    match action {
        "stop" => &["resume_after"],
        "kill_in_lock" => &["point"],
        _ => &[],
    }
}

/// Fields a packet gets from its source, which a payload may not carry.
const PACKET_FIELDS: [&str; 3] = ["src", "seq", "sent_ns"];

/// Checks that each table of `array` in `raw` (`process` or `fault`) has only the fields
/// `what` gives for its index (a name, the fields); the error names the entry and the
/// fields it may have.
fn check_fields(
    raw: &toml::Table,
    array: &str,
    what: impl Fn(usize) -> Option<(String, Vec<&'static str>)>,
) -> Result<(), String> {
    let Some(toml::Value::Array(entries)) = raw.get(array) else {
        return Ok(());
    };
    for (i, entry) in entries.iter().enumerate() {
        let (Some(table), Some((who, allowed))) = (entry.as_table(), what(i)) else {
            continue;
        };
        if let Some(k) = table.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!(
                "{who}: `{k}` does not belong there (its fields: {})",
                allowed.join(", ")
            ));
        }
    }
    Ok(())
}

/// Pause points a `kill_in_lock` fault may name.
pub const LOCK_POINTS: [&str; 4] = [
    "ring.send.slot_written",
    "ring.send.committed",
    "ring.recv.read",
    "ring.recv.committed",
];

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
        check_fields(&raw, "process", |i| {
            let p = s.processes.get(i)?;
            let kind = format!("{:?}", p.kind).to_lowercase();
            let mut allowed = PROCESS_FIELDS.to_vec();
            allowed.extend(kind_fields(p.kind));
            Some((format!("process {:?} (a {kind})", p.name), allowed))
        })?;
        check_fields(&raw, "fault", |i| {
            let f = s.faults.get(i)?;
            let mut allowed = FAULT_FIELDS.to_vec();
            allowed.extend(action_fields(&f.action));
            Some((format!("fault on {:?} ({})", f.process, f.action), allowed))
        })?;
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

    fn check(&self) -> Result<(), String> {
        shmval::region::RegionName::new(format!("{}-1", self.region.prefix))
            .map_err(|e| format!("region prefix: {e}"))?;
        let bytes = self.region.bytes;
        if bytes < MIN_REGION_BYTES {
            return Err(format!(
                "region.bytes = {bytes} is below the minimum of {MIN_REGION_BYTES} bytes (the \
                 region's header, the pool's and the pipe directory's; the pipes need more)"
            ));
        }
        if bytes > shmval::region::MAX_REGION_SIZE {
            return Err(format!(
                "region.bytes = {bytes} is above the maximum of {} bytes",
                shmval::region::MAX_REGION_SIZE
            ));
        }
        let mut pipes = HashSet::new();
        for p in &self.pipes {
            shmval::sides::PipeName::new(p.name.clone()).map_err(|e| format!("pipe: {e}"))?;
            if !pipes.insert(p.name.as_str()) {
                return Err(format!("pipe {:?} is declared twice", p.name));
            }
            if p.capacity == 0 || p.capacity > shmval::queue::MAX_CAPACITY {
                return Err(format!(
                    "pipe {:?}: capacity {} out of range",
                    p.name, p.capacity
                ));
            }
        }
        let mut names = HashSet::new();
        for p in &self.processes {
            if !names.insert(p.name.as_str()) {
                return Err(format!("process {:?} is declared twice", p.name));
            }
        }
        let pipe = |proc_: &str, field: &str, v: &Option<String>| -> Result<(), String> {
            match v {
                Some(v) if pipes.contains(v.as_str()) => Ok(()),
                Some(v) => Err(format!(
                    "process {proc_:?}: {field} = {v:?} is not a declared pipe"
                )),
                None => Err(format!("process {proc_:?} needs `{field}`")),
            }
        };
        for p in &self.processes {
            let n = p.name.as_str();
            match p.kind {
                Kind::Source => {
                    pipe(n, "out", &p.out)?;
                    if p.count.is_none() {
                        return Err(format!("source {n:?} needs `count`"));
                    }
                    p.payload_val()?;
                    if let Some(r) = p.rate {
                        // One packet a day at least: the gap between two is a duration.
                        let slowest = 1.0 / MAX_DURATION.as_secs_f64();
                        if !(r.is_finite() && r >= slowest) {
                            return Err(format!(
                                "source {n:?}: rate = {r:?} is not a number of packets a second \
                                 from {slowest:.3e} (one a day) up"
                            ));
                        }
                    }
                }
                Kind::Middle => {
                    pipe(n, "in", &p.input)?;
                    pipe(n, "out", &p.out)?;
                }
                Kind::Sink => pipe(n, "in", &p.input)?,
                Kind::Fanout => {
                    pipe(n, "in", &p.input)?;
                    if p.outs.is_empty() {
                        return Err(format!("fanout {n:?} needs `outs`"));
                    }
                    for o in &p.outs {
                        pipe(n, "outs", &Some(o.clone()))?;
                    }
                    policy_of(p).map_err(|e| format!("fanout {n:?}: {e}"))?;
                }
                Kind::Main => {
                    for o in &p.pipes {
                        pipe(n, "pipes", &Some(o.clone()))?;
                    }
                    if !matches!(p.hold.as_deref(), None | Some("none" | "idle" | "forever")) {
                        return Err(format!(
                            "main {n:?}: hold is \"none\", \"idle\" or \"forever\""
                        ));
                    }
                }
            }
            for (k, v) in p.add.iter().chain(&p.expect_fields) {
                Val::parse(v).map_err(|e| {
                    format!("process {n:?}: field {k:?}: {v:?} is not a value: {e}")
                })?;
            }
            for d in [&p.delay_per_item, &p.attach_timeout, &p.drop_after]
                .into_iter()
                .flatten()
            {
                duration(d).map_err(|e| format!("process {n:?}: {e}"))?;
            }
            if let Some(a) = &p.start_after {
                if self.process(a).is_none() {
                    return Err(format!("process {n:?}: start_after names no process {a:?}"));
                }
            }
        }
        if let Some(c) = &self.region.created_by {
            if c != "runner" && self.process(c).is_none_or(|p| p.kind != Kind::Main) {
                return Err(format!("region.created_by = {c:?} is not a main process"));
            }
        }
        if let Some(a) = &self.region.start_after {
            if self.process(a).is_none() {
                return Err(format!("region.start_after names no process {a:?}"));
            }
        }
        for f in &self.faults {
            let Some(p) = self.process(&f.process) else {
                return Err(format!("fault: no process {:?}", f.process));
            };
            let triggers = [f.at_item.is_some(), f.at.is_some(), f.on.is_some()];
            if triggers.iter().filter(|t| **t).count() != 1 {
                return Err(format!(
                    "fault on {:?}: give exactly one of at_item, at, on",
                    f.process
                ));
            }
            if let Some(on) = &f.on {
                if on != "ready" {
                    return Err(format!("fault on {:?}: on = \"ready\" only", f.process));
                }
            }
            for d in [&f.at, &f.resume_after].into_iter().flatten() {
                duration(d).map_err(|e| format!("fault on {:?}: {e}", f.process))?;
            }
            match f.action.as_str() {
                "kill" | "restart" => {}
                "stop" => {
                    if f.resume_after.is_none() {
                        return Err(format!("fault on {:?}: stop needs resume_after", f.process));
                    }
                }
                "kill_in_lock" => {
                    let point = f.point.as_deref().unwrap_or("");
                    if !LOCK_POINTS.contains(&point) {
                        return Err(format!(
                            "fault on {:?}: point must be one of {}",
                            f.process,
                            LOCK_POINTS.join(", ")
                        ));
                    }
                    if f.at_item.is_none() {
                        return Err(format!(
                            "fault on {:?}: kill_in_lock needs at_item",
                            f.process
                        ));
                    }
                    let sends = point.starts_with("ring.send");
                    let ok = match p.kind {
                        Kind::Source => sends,
                        Kind::Sink => !sends,
                        _ => false,
                    };
                    if !ok {
                        return Err(format!(
                            "fault on {:?}: {point} needs a {}",
                            f.process,
                            if sends { "source" } else { "sink" }
                        ));
                    }
                }
                other => {
                    return Err(format!(
                        "fault on {:?}: unknown action {other:?} (kill, stop, restart, \
                         kill_in_lock)",
                        f.process
                    ))
                }
            }
        }
        if let Some(r) = &self.expect.recover_within {
            duration(r).map_err(|e| format!("expect.recover_within: {e}"))?;
        }
        let max = self.expect.max_seconds;
        if !(max > 0.0 && max <= MAX_DURATION.as_secs_f64()) {
            return Err(format!(
                "expect.max_seconds = {max:?} is not a number of seconds above 0 and at most a \
                 day ({})",
                MAX_DURATION.as_secs()
            ));
        }
        for p in &self.processes {
            // A chain of start_after that comes back to a process never starts it.
            let mut at = p;
            for _ in 0..self.processes.len() {
                match at.start_after.as_deref().and_then(|a| self.process(a)) {
                    Some(next) if next.name == p.name => {
                        return Err(format!(
                            "process {:?}: its start_after chain comes back to it, so it \
                             would never start",
                            p.name
                        ))
                    }
                    Some(next) => at = next,
                    None => break,
                }
            }
        }
        Ok(())
    }
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
        for k in PACKET_FIELDS {
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

    /// The pipe this process's lock faults refer to.
    pub fn lock_pipe(&self) -> Option<&str> {
        match self.kind {
            Kind::Source => self.out.as_deref(),
            _ => self.input.as_deref(),
        }
    }

    /// Pipes this process sends into.
    pub fn writes(&self) -> Vec<&str> {
        match self.kind {
            Kind::Source | Kind::Middle => self.out.iter().map(String::as_str).collect(),
            Kind::Fanout => self.outs.iter().map(String::as_str).collect(),
            Kind::Sink | Kind::Main => vec![],
        }
    }
}

/// The repository's folder, where a scenario given by name alone is also looked for.
fn shipped_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// Finds a scenario: the path as given (or with `.toml` added), or else the same in the
/// repository's folder or its `scenarios` folder. The error says where it looked and
/// lists the shipped scenarios.
pub fn resolve(arg: &str) -> Result<PathBuf, String> {
    let root = shipped_root();
    let mut tried: Vec<PathBuf> = vec![];
    for base in [
        PathBuf::from(arg),
        root.join(arg),
        root.join("scenarios").join(arg),
    ] {
        for candidate in [base.clone(), base.with_extension("toml")] {
            if candidate.is_file() {
                return Ok(candidate);
            }
            if !tried.contains(&candidate) {
                tried.push(candidate);
            }
        }
    }
    let looked: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    let dir = root.join("scenarios");
    let mut known: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".toml").map(String::from)
                })
                .collect()
        })
        .unwrap_or_default();
    known.sort();
    Err(format!(
        "{arg}: no such scenario file (looked for {}); the scenarios in {}: {}",
        looked.join(", "),
        dir.display(),
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "t"
        [region]
        prefix = "t"
        bytes = 65536
        [[pipe]]
        name = "p"
        capacity = 4
        [[process]]
        name = "s"
        kind = "source"
        out = "p"
        count = 3
        [[process]]
        name = "k"
        kind = "sink"
        in = "p"
    "#;

    #[test]
    fn a_minimal_scenario_reads() {
        let s = Scenario::parse(MINIMAL).unwrap();
        assert_eq!(s.processes.len(), 2);
        assert!(s.expect.survivors_finish && s.expect.no_files_left);
        assert!(s.runner_creates_region());
    }

    #[test]
    fn problems_are_named() {
        let bad_pipe = MINIMAL.replace("in = \"p\"", "in = \"q\"");
        let e = Scenario::parse(&bad_pipe).unwrap_err();
        assert!(e.contains("in = \"q\" is not a declared pipe"), "{e}");
        let unknown = MINIMAL.replace("count = 3", "count = 3\ncolour = 1");
        let e = Scenario::parse(&unknown).unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let payload = MINIMAL.replace("count = 3", "count = 3\npayload = \"{'a': \"");
        let e = Scenario::parse(&payload).unwrap_err();
        assert!(e.contains("not a Python literal"), "{e}");
    }

    #[test]
    fn durations_read() {
        assert_eq!(duration("5ms").unwrap(), Duration::from_millis(5));
        assert_eq!(duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(duration("200us").unwrap(), Duration::from_micros(200));
        assert!(duration("5 parsecs").is_err());
        assert!(duration("ms").is_err());
        assert_eq!(duration("1440m").unwrap(), MAX_DURATION);
        for absurd in [
            "1441m",
            "9999999999999999999s",
            &format!("{}s", "9".repeat(400)),
        ] {
            let e = duration(absurd).unwrap_err();
            assert!(e.contains("at most a day"), "{absurd}: {e}");
        }
    }

    /// The minimum is what the library needs: a region of that size starts with its pool
    /// and pipe directory, one byte less does not.
    #[test]
    fn the_minimum_region_is_the_smallest_shm_main_starts() {
        let name = format!("shmval-test-min-region-{}", std::process::id());
        let main = shmval::sides::ShmMain::new(name.as_str(), MIN_REGION_BYTES).start();
        assert!(main.is_ok(), "{:?}", main.err());
        drop(main);
        let e = shmval::sides::ShmMain::new(name.as_str(), MIN_REGION_BYTES - 1)
            .start()
            .err();
        assert!(
            e.is_some(),
            "a region of {} bytes started",
            MIN_REGION_BYTES - 1
        );
    }
}
