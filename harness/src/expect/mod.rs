//! The scenario's expectations, judged from what the processes reported and what the
//! runner saw. Each verdict carries the figure behind it.

use std::collections::{BTreeMap, HashMap};

use crate::report::{Check, FaultSummary, PoolSummary, ProcReport, ProcSummary, TableSummary};
use crate::scenario::{duration, Kind, Scenario};

mod tables;

pub use tables::{tally, WriterRecord, WriterStart};

/// What a source had sent when it ended.
#[derive(Clone, Debug)]
pub struct SourceAck {
    /// The id its packets carry.
    pub id: u32,
    /// Packets it was to send.
    pub count: u64,
    /// Packets whose send had returned (for a killed source, as far as the runner knows).
    pub acked: u64,
}

/// What one start of a process received: the packets it announced (a sink announces each
/// before it drops it, when the runner asks it to), or its report's for a start that ended
/// with one.
#[derive(Clone, Debug, Default)]
pub struct Receipts {
    /// Per source id, the sequence numbers received, as inclusive runs in arrival order.
    pub received: BTreeMap<u32, Vec<[u64; 2]>>,
    /// The last packet it announced.
    pub last: Option<(u32, u64)>,
    /// It announced its work on that packet done.
    pub last_done: bool,
    /// A fault killed this start.
    pub killed: bool,
}

impl Receipts {
    /// Records `seq` from source `src`.
    pub fn record(&mut self, src: u32, seq: u64) {
        let runs = self.received.entry(src).or_default();
        match runs.last_mut() {
            Some(r) if r[1].checked_add(1) == Some(seq) => r[1] = seq,
            _ => runs.push([seq, seq]),
        }
        self.last = Some((src, seq));
        self.last_done = false;
    }

    /// Records that the work on `seq` from `src` is done.
    pub fn done(&mut self, src: u32, seq: u64) {
        if self.last == Some((src, seq)) {
            self.last_done = true;
        }
    }

    /// The packet a killed start may have held, not acknowledged, when it died: the last
    /// it announced. A sink receives a packet, announces it (`got`), works on it, announces
    /// the work done (`done`), drops it (its acknowledgement), and only then receives the
    /// next: every other packet it announced was acknowledged, and one it had received but
    /// not announced is not among its arrivals.
    fn held_at_death(&self) -> Option<(u32, u64)> {
        self.last.filter(|_| self.killed)
    }

    /// The packet a killed start died working on: announced, never announced done. It
    /// did not get through that sink, and must arrive elsewhere.
    fn unfinished(&self) -> Option<(u32, u64)> {
        self.held_at_death().filter(|_| !self.last_done)
    }
}

/// Everything the expectations look at.
pub struct Outcome<'a> {
    /// The scenario.
    pub sc: &'a Scenario,
    /// Per process, in scenario order.
    pub processes: &'a [ProcSummary],
    /// Their reports, in the same order.
    pub reports: Vec<Option<&'a ProcReport>>,
    /// What each start of each process received, in the same order.
    pub receipts: Vec<Vec<Receipts>>,
    /// The sources.
    pub sources: Vec<SourceAck>,
    /// The pool.
    pub pool: Option<PoolSummary>,
    /// Faults.
    pub faults: &'a [FaultSummary],
    /// Files of the run found in `/dev/shm` after the teardown.
    pub files_left: Vec<String>,
    /// Wall time.
    pub seconds: f64,
    /// Whether the runner's region replaced a stale one.
    pub stale_replaced: bool,
    /// The declared tables as read at the end, each with its `counters_exact` verdict.
    pub tables: &'a [TableSummary],
}

fn check(name: impl Into<String>, pass: bool, figure: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        pass,
        figure: figure.into(),
    }
}

/// The starts of every sink, with the sink's name.
fn sink_starts<'a>(o: &'a Outcome<'_>) -> impl Iterator<Item = (&'a str, &'a Receipts)> {
    o.sc.processes
        .iter()
        .zip(&o.receipts)
        .filter(|(p, _)| p.kind == Kind::Sink)
        .flat_map(|(p, starts)| starts.iter().map(move |r| (p.name.as_str(), r)))
}

/// How often each (source, sequence number) arrived, over every start of every sink.
fn arrivals(o: &Outcome<'_>) -> HashMap<(u32, u64), u32> {
    let mut n = HashMap::new();
    for (_, r) in sink_starts(o) {
        for (src, runs) in &r.received {
            for [a, b] in runs {
                for seq in *a..=*b {
                    *n.entry((*src, seq)).or_insert(0) += 1;
                }
            }
        }
    }
    n
}

/// Judges every expectation the scenario states (and the faults, which must all fire).
pub fn check_all(o: &Outcome<'_>) -> Vec<Check> {
    let e = &o.sc.expect;
    let mut out = vec![];
    let got = arrivals(o);
    let sources: HashMap<u32, &SourceAck> = o.sources.iter().map(|s| (s.id, s)).collect();
    let (mut once, mut missing, mut dups, mut unknown, mut unacked) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for (&(src, seq), &n) in &got {
        match sources.get(&src) {
            Some(s) if seq < s.count => {
                if n > 1 {
                    dups += u64::from(n - 1);
                }
                if seq >= s.acked {
                    unacked += 1;
                }
            }
            _ => unknown += u64::from(n),
        }
    }
    let acked: u64 = o
        .sources
        .iter()
        .map(|s| s.acked.min(s.count))
        .fold(0, u64::saturating_add);
    for s in &o.sources {
        for seq in 0..s.acked.min(s.count) {
            match got.get(&(s.id, seq)) {
                None => missing += 1,
                Some(1) => once += 1,
                Some(_) => {}
            }
        }
    }
    if e.exactly_once {
        out.push(check(
            "exactly_once",
            once == acked && dups == 0 && unknown == 0,
            format!(
                "{once} of {acked} acknowledged packets delivered once; {missing} missing, \
                 {dups} duplicated, {unknown} unknown{}",
                if unacked > 0 {
                    format!("; {unacked} more sent by a source killed mid-send")
                } else {
                    String::new()
                }
            ),
        ));
    }
    if e.at_most_once {
        let total: u64 = got.values().map(|&n| u64::from(n)).sum();
        out.push(check(
            "at_most_once",
            dups == 0 && unknown == 0,
            format!("{total} packets received, {dups} duplicated, {unknown} unknown"),
        ));
    }
    if e.in_order {
        let mut bad = vec![];
        let mut starts = 0;
        for (name, r) in sink_starts(o) {
            starts += 1;
            for (src, runs) in &r.received {
                if let Some(w) = runs.windows(2).find(|w| w[1][0] <= w[0][1]) {
                    bad.push(format!(
                        "{name}: source {src} went from {} back to {}",
                        w[0][1], w[1][0]
                    ));
                }
            }
        }
        out.push(check(
            "in_order",
            bad.is_empty(),
            if bad.is_empty() {
                format!("{starts} sink starts reporting, each source's packets in order")
            } else {
                bad.join("; ")
            },
        ));
    }
    if e.at_least_once {
        out.push(at_least_once(o, &got, acked, unknown));
    }
    for (i, p) in o.sc.processes.iter().enumerate() {
        if p.kind != Kind::Sink {
            continue;
        }
        let r = o.reports[i];
        if p.sees_all {
            let total: u64 = o
                .sources
                .iter()
                .map(|s| s.count)
                .fold(0, u64::saturating_add);
            let (distinct, within_dups) = r.map_or((0, 0), |r| {
                let mut seen = std::collections::HashSet::new();
                let mut d = 0u64;
                for (src, runs) in &r.received {
                    for [a, b] in runs {
                        for seq in *a..=*b {
                            if !seen.insert((*src, seq)) {
                                d += 1;
                            }
                        }
                    }
                }
                (seen.len() as u64, d)
            });
            out.push(check(
                format!("sees_all {}", p.name),
                distinct == total && within_dups == 0,
                format!("{distinct} of {total} packets, {within_dups} twice"),
            ));
        }
        if let Some(max) = p.max_drops {
            let drops = o.processes[i].drops;
            out.push(check(
                format!("max_drops {}", p.name),
                drops <= max,
                format!("{drops} dropped for it (at most {max})"),
            ));
        }
        if !p.expect_fields.is_empty() {
            let (items, bad, first) = r.map_or((0, 0, None), |r| {
                (r.items, r.bad_items, r.first_bad.clone())
            });
            out.push(check(
                format!("fields {}", p.name),
                r.is_some() && bad == 0,
                match first {
                    Some(f) => format!("{bad} of {items} packets wrong, first: {f}"),
                    None => format!(
                        "{items} packets, each with {}",
                        p.expect_fields
                            .iter()
                            .map(|(k, v)| format!("{k} = {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            ));
        }
    }
    if e.no_leak {
        out.push(match &o.pool {
            Some(p) => check(
                "no_leak",
                p.end_used == p.baseline_used && p.end_live == p.baseline_live && !p.dead_left,
                format!(
                    "pool used {} B in {} blocks at the end, {} B in {} blocks before the \
                     run{}{}",
                    p.end_used,
                    p.end_live,
                    p.baseline_used,
                    p.baseline_live,
                    if p.recovered_processes > 0 {
                        format!(
                            ", after recovery gave back what {} held ({} B)",
                            crate::registry::dead_processes(p.recovered_processes),
                            p.recovered_bytes
                        )
                    } else {
                        String::new()
                    },
                    if p.dead_left {
                        "; dead processes' slots still wait to be reclaimed"
                    } else {
                        ""
                    }
                ),
            ),
            None => check("no_leak", false, "the runner never saw the pool"),
        });
    }
    tables::checks(o, &mut out);
    if e.survivors_finish {
        let failed: Vec<String> = o
            .processes
            .iter()
            .filter(|p| !p.finished && !p.killed_by_fault)
            .map(|p| format!("{}: {}", p.name, p.outcome))
            .collect();
        let killed = o.processes.iter().filter(|p| p.killed_by_fault).count();
        let n = o.processes.len();
        out.push(check(
            "survivors_finish",
            failed.is_empty(),
            if failed.is_empty() {
                format!("{} of {n} finished, {killed} killed by faults", n - killed)
            } else {
                failed.join("; ")
            },
        ));
    }
    if !o.faults.is_empty() {
        let fired = o.faults.iter().filter(|f| f.fired_at.is_some()).count();
        let short: Vec<String> = o
            .faults
            .iter()
            .filter(|f| f.fired_at.is_some() && f.fired < f.times)
            .map(|f| {
                format!(
                    "{} {} fired {} of {} times",
                    f.action, f.process, f.fired, f.times
                )
            })
            .collect();
        out.push(check(
            "faults_fired",
            fired == o.faults.len() && short.is_empty(),
            if short.is_empty() {
                format!("{fired} of {} faults fired", o.faults.len())
            } else {
                format!(
                    "{fired} of {} faults fired; {}",
                    o.faults.len(),
                    short.join("; ")
                )
            },
        ));
    }
    if let Some(r) = &e.recover_within {
        let limit = duration(r).unwrap_or_default().as_secs_f64() * 1e3;
        let lock_kills: Vec<&FaultSummary> = o
            .faults
            .iter()
            .filter(|f| f.action == "kill_in_lock")
            .collect();
        let worst = lock_kills
            .iter()
            .map(|f| f.recovered_ms.unwrap_or(f64::INFINITY))
            .fold(0.0, f64::max);
        out.push(check(
            "recover_within",
            !lock_kills.is_empty() && worst <= limit,
            if worst.is_finite() {
                format!("moving again {worst:.1} ms after the kill (limit {r})")
            } else {
                format!("the pipe or table never moved again after the kill (limit {r})")
            },
        ));
    }
    if e.stale_replaced {
        out.push(check(
            "stale_replaced",
            o.stale_replaced,
            if o.stale_replaced {
                "the new region replaced the stale one under its name"
            } else {
                "no stale region was there to replace"
            },
        ));
    }
    out.push(check(
        "max_seconds",
        o.seconds <= e.max_seconds,
        format!("{:.2} s (limit {} s)", o.seconds, e.max_seconds),
    ));
    if e.no_files_left {
        out.push(check(
            "no_files_left",
            o.files_left.is_empty(),
            if o.files_left.is_empty() {
                "nothing of the run left in /dev/shm".to_string()
            } else {
                format!("left in /dev/shm: {}", o.files_left.join(", "))
            },
        ));
    }
    out
}

/// Every acknowledged packet got through some sink: it arrived at a sink that did not
/// die working on it ([`Receipts::unfinished`]); a packet arrived more than once only as
/// the packet a killed sink may have held at its death ([`Receipts::held_at_death`]), once
/// more per such death; none from nowhere.
fn at_least_once(
    o: &Outcome<'_>,
    got: &HashMap<(u32, u64), u32>,
    acked: u64,
    unknown: u64,
) -> Check {
    let mut excuses: HashMap<(u32, u64), u32> = HashMap::new();
    let mut unfinished: HashMap<(u32, u64), u32> = HashMap::new();
    for (_, r) in sink_starts(o) {
        if let Some(k) = r.held_at_death() {
            *excuses.entry(k).or_insert(0) += 1;
        }
        if let Some(k) = r.unfinished() {
            *unfinished.entry(k).or_insert(0) += 1;
        }
    }
    let mut missing = 0u64;
    let mut lost_at_death = 0u64;
    for s in &o.sources {
        for seq in 0..s.acked.min(s.count) {
            let k = (s.id, seq);
            let n = got.get(&k).copied().unwrap_or(0);
            let dead = unfinished.get(&k).copied().unwrap_or(0);
            if n <= dead {
                missing += 1;
                lost_at_death += u64::from(n > 0);
            }
        }
    }
    let (mut redelivered, mut bad, mut first_bad) = (0u64, 0u64, None);
    for (k, &n) in got {
        let extra = n.saturating_sub(1);
        let allowed = excuses.get(k).copied().unwrap_or(0);
        redelivered += u64::from(extra.min(allowed));
        if extra > allowed {
            bad += u64::from(extra - allowed);
            first_bad.get_or_insert(*k);
        }
    }
    let delivered = acked - missing;
    let deaths: u32 = excuses.values().sum();
    check(
        "at_least_once",
        missing == 0 && bad == 0 && unknown == 0,
        format!(
            "{delivered} of {acked} acknowledged packets got through a sink; {missing} \
             missing ({lost_at_death} of them last seen at a sink killed working on them), \
             {redelivered} delivered again after the death of a sink that had received them \
             ({deaths} killed sinks had received one), {bad} duplicated otherwise{}, \
             {unknown} unknown",
            first_bad.map_or(String::new(), |(src, seq)| format!(
                " (e.g. packet {seq} of source {src})"
            ))
        ),
    )
}

#[cfg(test)]
mod table_tests;
#[cfg(test)]
mod tests;
