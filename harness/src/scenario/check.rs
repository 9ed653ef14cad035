//! What a scenario file must satisfy beyond its TOML types: the fields each kind of
//! process and each fault action may have, names that refer to something declared, sizes
//! and numbers in range.

use std::collections::HashSet;

use shmval::Val;

use super::{duration, lock_points, policy_of, Kind, ProcessSpec, Scenario, MAX_DURATION};

/// The smallest region a scenario may ask for: what `ShmMain` needs to start, the
/// region's header (128 bytes), its process registry (16 slots, 1152 bytes), the pool's
/// header, the pipe directory's block (7224 bytes for its 64 entries) and the names
/// directory's (10280 bytes for its 128 names). Below it the region's, the pool's or the
/// directories' own check fails, each with another figure; this one is what they add up
/// to, checked against the library by a test. The pipes, and each process's ledger (a 1
/// KiB chunk for every 15 values it holds at once), need room beyond it.
pub const MIN_REGION_BYTES: u64 = 20960;

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
        Kind::Source => &["out", "count", "payload", "rate", "grow_to"],
        Kind::Middle => &["in", "out", "add", "hold"],
        Kind::Sink => &[
            "in",
            "take",
            "sees_all",
            "max_drops",
            "expect_fields",
            "hold",
        ],
        Kind::Fanout => &["in", "outs", "policy", "drop_after"],
        Kind::Main => &["pipes", "hold"],
        Kind::Writer => &["table", "ops", "increment", "append", "hold", "item_bytes"],
        Kind::Reader => &["table", "reads", "read"],
    }
}

/// Fields every fault may have.
const FAULT_FIELDS: [&str; 6] = ["process", "action", "at_item", "at_random_item", "at", "on"];

/// The fields a fault doing `action` may have besides [`FAULT_FIELDS`].
fn action_fields(action: &str) -> &'static [&'static str] {
    match action {
        "stop" => &["resume_after"],
        "kill_in_lock" => &["point"],
        "restart" => &["times"],
        _ => &[],
    }
}

/// The longest item a writer may pad its items to.
const MAX_ITEM_BYTES: u64 = 4096;

/// Fields a packet gets from its source, which a payload may not carry.
pub(super) const PACKET_FIELDS: [&str; 3] = ["src", "seq", "sent_ns"];

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

/// Checks the fields each process and fault was given (`raw`: the file as a TOML table,
/// before serde filled in the rest) against those its kind or action may have.
pub(super) fn check_given_fields(raw: &toml::Table, s: &Scenario) -> Result<(), String> {
    check_fields(raw, "process", |i| {
        let p = s.processes.get(i)?;
        let kind = format!("{:?}", p.kind).to_lowercase();
        let mut allowed = PROCESS_FIELDS.to_vec();
        allowed.extend(kind_fields(p.kind));
        Some((format!("process {:?} (a {kind})", p.name), allowed))
    })?;
    check_fields(raw, "fault", |i| {
        let f = s.faults.get(i)?;
        let mut allowed = FAULT_FIELDS.to_vec();
        allowed.extend(action_fields(&f.action));
        Some((format!("fault on {:?} ({})", f.process, f.action), allowed))
    })?;
    Ok(())
}

impl Scenario {
    /// Checks everything the types do not: see the module's docs.
    pub(super) fn check(&self) -> Result<(), String> {
        shmval::region::RegionName::new(format!("{}-1", self.region.prefix))
            .map_err(|e| format!("region prefix: {e}"))?;
        let bytes = self.region.bytes;
        if bytes < MIN_REGION_BYTES {
            return Err(format!(
                "region.bytes = {bytes} is below the minimum of {MIN_REGION_BYTES} bytes (the \
                 region's header, the pool's and the pipe and names directories'; the pipes \
                 need more)"
            ));
        }
        if let Some(max) = self.region.max_bytes {
            if max < bytes || max > shmval::region::MAX_REGION_SIZE {
                return Err(format!(
                    "region.max_bytes = {max} must lie between region.bytes ({bytes}) and {} \
                     bytes",
                    shmval::region::MAX_REGION_SIZE
                ));
            }
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
                Kind::Writer | Kind::Reader => self.check_table_user(p)?,
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
            if let (Kind::Sink | Kind::Middle | Kind::Writer, Some(h)) = (p.kind, &p.hold) {
                duration(h).map_err(|e| format!("process {n:?}: hold: {e}"))?;
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
            let triggers = [
                f.at_item.is_some(),
                f.at_random_item.is_some(),
                f.at.is_some(),
                f.on.is_some(),
            ];
            if triggers.iter().filter(|t| **t).count() != 1 {
                return Err(format!(
                    "fault on {:?}: give exactly one of at_item, at_random_item, at, on",
                    f.process
                ));
            }
            if let Some([lo, hi]) = f.at_random_item {
                if lo > hi {
                    return Err(format!(
                        "fault on {:?}: at_random_item = [{lo}, {hi}] is not a range \
                         [lowest, highest]",
                        f.process
                    ));
                }
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
                "kill" => {}
                "restart" => {
                    if f.times == Some(0) {
                        return Err(format!(
                            "fault on {:?}: times is the number of starts it hits, 1 or more",
                            f.process
                        ));
                    }
                    if f.times() > 1 && f.at.is_some() {
                        return Err(format!(
                            "fault on {:?}: times needs at_item or on (a time since the run \
                             started comes once)",
                            f.process
                        ));
                    }
                }
                "stop" => {
                    if f.resume_after.is_none() {
                        return Err(format!("fault on {:?}: stop needs resume_after", f.process));
                    }
                }
                "kill_in_lock" => {
                    let point = f.point.as_deref().unwrap_or("");
                    check_point(point).map_err(|e| format!("fault on {:?}: {e}", f.process))?;
                    if f.at_item.is_none() && f.at_random_item.is_none() {
                        return Err(format!(
                            "fault on {:?}: kill_in_lock needs at_item or at_random_item",
                            f.process
                        ));
                    }
                    let base = point.split('#').next().unwrap_or(point);
                    let (ok, needs) = if base.starts_with("ring.send") {
                        (p.kind == Kind::Source, "a source")
                    } else if base.starts_with("ring.recv") {
                        (p.kind == Kind::Sink, "a sink")
                    } else if base == "locked.lock.taken" {
                        (
                            matches!(p.kind, Kind::Writer | Kind::Reader),
                            "a writer or a reader",
                        )
                    } else {
                        (p.kind == Kind::Writer, "a writer")
                    };
                    if !ok {
                        return Err(format!("fault on {:?}: {point} needs {needs}", f.process));
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
        self.check_tables()?;
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

/// Checks a `kill_in_lock` point: one of [`lock_points`], or `name#n` with `n` from 1.
fn check_point(point: &str) -> Result<(), String> {
    let (base, nth) = match point.split_once('#') {
        Some((b, n)) => (b, Some(n)),
        None => (point, None),
    };
    if !lock_points().any(|p| p == base) {
        return Err(format!(
            "point must be one of {} (or name#n, its nth passing)",
            lock_points().collect::<Vec<_>>().join(", ")
        ));
    }
    if let Some(n) = nth {
        if !n.parse::<u32>().is_ok_and(|n| n >= 1) {
            return Err(format!(
                "point {point:?}: after # comes the passing it pauses at, 1 or more"
            ));
        }
    }
    Ok(())
}

impl Scenario {
    /// The tables: valid names declared once, each a dict; `counters_exact` needs one.
    fn check_tables(&self) -> Result<(), String> {
        let mut names = HashSet::new();
        for t in &self.tables {
            shmval::sides::ValueName::new(t.name.clone())
                .map_err(|e| format!("table {:?}: {e}", t.name))?;
            if !names.insert(t.name.as_str()) {
                return Err(format!("table {:?} is declared twice", t.name));
            }
            t.value_val()?;
        }
        if self.tables.len() > shmval::sides::MAX_NAMES {
            return Err(format!(
                "{} tables: a region holds {} named values at most",
                self.tables.len(),
                shmval::sides::MAX_NAMES
            ));
        }
        if self.expect.counters_exact
            && !self
                .tables
                .iter()
                .any(|t| self.writers_of(&t.name).next().is_some())
        {
            return Err("expect.counters_exact needs a [[table]] with a writer".into());
        }
        Ok(())
    }

    /// A writer's or reader's table and fields.
    fn check_table_user(&self, p: &ProcessSpec) -> Result<(), String> {
        let n = p.name.as_str();
        let kind = format!("{:?}", p.kind).to_lowercase();
        let Some(name) = &p.table else {
            return Err(format!("{kind} {n:?} needs `table`"));
        };
        let Some(t) = self.table(name) else {
            return Err(format!(
                "{kind} {n:?}: table = {name:?} is not a declared table"
            ));
        };
        let value = t.value_val()?;
        if p.kind == Kind::Reader {
            if p.reads == Some(0) {
                return Err(format!("reader {n:?}: reads is 1 or more"));
            }
            if !matches!(p.read.as_deref(), None | Some("lock" | "snapshot")) {
                return Err(format!("reader {n:?}: read is \"lock\" or \"snapshot\""));
            }
            return Ok(());
        }
        if p.ops.is_none() {
            return Err(format!("writer {n:?} needs `ops`"));
        }
        if p.increment.is_empty() && p.append.is_none() {
            return Err(format!(
                "writer {n:?}: give `increment`, `append` or both (what each update does)"
            ));
        }
        for (i, k) in p.increment.iter().enumerate() {
            if p.increment[..i].contains(k) {
                return Err(format!("writer {n:?}: increment names {k:?} twice"));
            }
            if value.get(k.as_str()).and_then(Val::as_i64).is_none() {
                return Err(format!(
                    "writer {n:?}: increment names {k:?}, but table {name:?} has no integer \
                     under {k:?}"
                ));
            }
        }
        if let Some(k) = &p.append {
            if !matches!(value.get(k.as_str()), Some(Val::Arr(_))) {
                return Err(format!(
                    "writer {n:?}: append = {k:?}, but table {name:?} has no list under {k:?}"
                ));
            }
        }
        if p.item_bytes.is_some_and(|b| b > MAX_ITEM_BYTES) {
            return Err(format!(
                "writer {n:?}: item_bytes is at most {MAX_ITEM_BYTES}"
            ));
        }
        Ok(())
    }
}
