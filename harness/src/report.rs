//! What processes tell the runner (one JSON object a line on their standard output), and
//! the run's summary, as text and JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::output::outln;

/// One line a role process writes on its standard output.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// Attached: its pipes are open.
    Ready,
    /// Progress: items handled so far.
    Items {
        /// Items sent, received or forwarded.
        n: u64,
    },
    /// Reached an item number the runner asked to hear about.
    At {
        /// The item number.
        item: u64,
    },
    /// Armed a pause point: its next pipe operation stops inside the pipe's lock.
    Armed {
        /// Items handled before.
        item: u64,
    },
    /// Sink: a packet received, announced before the sink works on it (only when asked).
    Got {
        /// Its source's id.
        src: u32,
        /// Its sequence number.
        seq: u64,
    },
    /// Sink: the work on the packet last announced with `got` is done; it drops it next
    /// (its acknowledgement on a pipe that redelivers).
    Done {
        /// Its source's id.
        src: u32,
        /// Its sequence number.
        seq: u64,
    },
    /// Writer: update `seq` (0, 1, ... in this start) is committed and the table
    /// unlocked: its increments and its item are acknowledged.
    Updated {
        /// The update's number.
        seq: u64,
    },
    /// The end: what it did.
    Report(ProcReport),
}

/// Latency from send to receipt, in microseconds.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// The percentiles of `ns` (sorted in place), or `None` if it is empty.
    pub fn of(ns: &mut [u64]) -> Option<Latency> {
        if ns.is_empty() {
            return None;
        }
        ns.sort_unstable();
        let at = |q: usize| ns[(ns.len() * q / 100).min(ns.len() - 1)] as f64 / 1000.0;
        Some(Latency {
            p50: at(50),
            p99: at(99),
            max: ns[ns.len() - 1] as f64 / 1000.0,
        })
    }
}

/// One output of a fan-out.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct OutputReport {
    /// The pipe.
    pub pipe: String,
    /// Items put into it.
    pub sent: u64,
    /// Items dropped for it.
    pub dropped: u64,
}

/// What a role process did, sent as its last line.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ProcReport {
    /// Items sent (source), received (sink), forwarded (middle, fan-out).
    pub items: u64,
    /// Seconds from attaching to the end.
    pub seconds: f64,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
    /// Sink: send-to-receipt latency.
    pub latency_us: Option<Latency>,
    /// Sink: per source id, the sequence numbers received, as inclusive runs in arrival
    /// order.
    pub received: BTreeMap<u32, Vec<[u64; 2]>>,
    /// Sink: packets that were unreadable or lacked an expected field. Reader: reads
    /// that broke one of its checks.
    pub bad_items: u64,
    /// Sink: the first such packet and what was wrong. Reader: the first such read.
    pub first_bad: Option<String>,
    /// Writer and reader: how often it took the table's lock over from a holder that
    /// had died.
    #[serde(default)]
    pub owner_died: u64,
    /// Fan-out: per output.
    pub outputs: Vec<OutputReport>,
}

impl ProcReport {
    /// Records `seq` from source `src` in the runs.
    pub fn record(&mut self, src: u32, seq: u64) {
        let runs = self.received.entry(src).or_default();
        match runs.last_mut() {
            Some(r) if r[1].checked_add(1) == Some(seq) => r[1] = seq,
            _ => runs.push([seq, seq]),
        }
    }

    /// Dropped items, all outputs together.
    pub fn dropped(&self) -> u64 {
        self.outputs
            .iter()
            .map(|o| o.dropped)
            .fold(0, u64::saturating_add)
    }
}

/// One process in the summary.
#[derive(Clone, Debug, Serialize)]
pub struct ProcSummary {
    /// Its name.
    pub name: String,
    /// Its role.
    pub kind: String,
    /// `ok`, `killed (fault)`, `error: ...`, `exit 1`, `timed out`, `never started`.
    pub outcome: String,
    /// Whether it counts as having finished well.
    pub finished: bool,
    /// Whether a fault killed it (last instance).
    pub killed_by_fault: bool,
    /// Times it was started.
    pub starts: u32,
    /// Its process ids, one per start.
    pub pids: Vec<u32>,
    /// Items (from its report, or the last progress seen).
    pub items: u64,
    /// Items per second while it ran.
    pub throughput: f64,
    /// Sink latency.
    pub latency_us: Option<Latency>,
    /// Items dropped: by a fan-out for its outputs, or upstream for a sink's input.
    pub drops: u64,
    /// Writer and reader: how often it took its table's lock over from a dead holder.
    pub owner_died: u64,
    /// The last lines it wrote on standard error (when it did not finish well).
    pub stderr_tail: Vec<String>,
}

/// The pool, as the runner saw it.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PoolSummary {
    /// Heap bytes.
    pub capacity: u64,
    /// Heap bytes at the end (more if the pool grew).
    pub end_capacity: u64,
    /// Bytes used once the region and pipes were made, before any process started.
    pub baseline_used: u64,
    /// Blocks live then.
    pub baseline_live: u64,
    /// Bytes used at the end.
    pub end_used: u64,
    /// Blocks live at the end.
    pub end_live: u64,
    /// Largest use seen.
    pub high_water: u64,
    /// Dead processes whose holdings recovery gave back during the run.
    pub recovered_processes: u64,
    /// Pool bytes recovery gave back.
    pub recovered_bytes: u64,
    /// Dead processes' slots still waiting to be reclaimed at the end.
    pub dead_left: bool,
}

/// One fault, as it happened.
#[derive(Clone, Debug, Serialize)]
pub struct FaultSummary {
    /// The process.
    pub process: String,
    /// What was done.
    pub action: String,
    /// When it was to happen.
    pub trigger: String,
    /// Seconds into the run when it first fired (none if it never did).
    pub fired_at: Option<f64>,
    /// How many times it fired.
    pub fired: u32,
    /// How many times it was to fire (a restart may hit several starts).
    pub times: u32,
    /// Kill in lock: milliseconds until the pipe or table moved again.
    pub recovered_ms: Option<f64>,
    /// Anything else worth knowing.
    pub note: String,
}

/// A declared table at the end of the run, read by name under its lock.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TableSummary {
    /// Its name.
    pub name: String,
    /// Why it could not be read, if it could not.
    pub error: Option<String>,
    /// Whether the last holder of its lock had died (the end's read settled it).
    pub owner_died: bool,
    /// The counters the writers increment: their values at the end.
    pub counters: BTreeMap<String, i64>,
    /// The lists the writers append to: their lengths at the end.
    pub lists: BTreeMap<String, u64>,
    /// Whether the counters and lists match what the writers acknowledged
    /// (`counters_exact`).
    pub exact: bool,
    /// The figures behind that verdict.
    pub figure: String,
    /// Every way they do not match (the first 100).
    pub problems: Vec<String>,
}

/// One expectation's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// The expectation.
    pub name: String,
    /// Whether it held.
    pub pass: bool,
    /// The figure behind the verdict.
    pub figure: String,
}

/// A run's summary.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// Scenario name.
    pub scenario: String,
    /// Its description.
    pub description: String,
    /// The file.
    pub file: String,
    /// The region's name.
    pub region: String,
    /// Region size.
    pub region_bytes: u64,
    /// Wall time of the run.
    pub seconds: f64,
    /// Whether the watchdog had to end it.
    pub timed_out: bool,
    /// Why the run was stopped before its processes ended (a signal, a closed output, a
    /// truncated region), and what it was doing then.
    pub stopped: Option<String>,
    /// Per process.
    pub processes: Vec<ProcSummary>,
    /// The pool (none if the runner never saw the region).
    pub pool: Option<PoolSummary>,
    /// Faults.
    pub faults: Vec<FaultSummary>,
    /// The seed of the run's random choices, when it made some.
    pub seed: Option<u64>,
    /// The declared tables, as read at the end.
    pub tables: Vec<TableSummary>,
    /// Expectations.
    pub checks: Vec<Check>,
    /// Files of the run left in `/dev/shm` and removed by the cleanup.
    pub cleaned: Vec<String>,
    /// Whether every expectation held.
    pub ok: bool,
}

impl RunSummary {
    /// Prints the summary for a person.
    pub fn print(&self) {
        outln!();
        outln!("scenario {} ({})", self.scenario, self.file);
        if !self.description.is_empty() {
            outln!("  {}", self.description);
        }
        outln!(
            "  region {}, {} KiB; ran {:.2} s{}",
            self.region,
            self.region_bytes / 1024,
            self.seconds,
            if self.timed_out {
                " (stopped by the watchdog)"
            } else {
                ""
            }
        );
        if let Some(why) = &self.stopped {
            outln!("  stopped: {why}");
        }
        outln!();
        outln!(
            "  {:<12} {:<7} {:<16} {:>8} {:>10} {:>9} {:>9} {:>9} {:>6}",
            "process",
            "kind",
            "outcome",
            "items",
            "items/s",
            "p50 µs",
            "p99 µs",
            "max µs",
            "drops"
        );
        for p in &self.processes {
            let lat = |f: fn(&Latency) -> f64| {
                p.latency_us
                    .as_ref()
                    .map_or("-".to_string(), |l| format!("{:.1}", f(l)))
            };
            let outcome = if p.starts > 1 {
                format!("{} (x{})", p.outcome, p.starts)
            } else {
                p.outcome.clone()
            };
            outln!(
                "  {:<12} {:<7} {:<16} {:>8} {:>10.0} {:>9} {:>9} {:>9} {:>6}",
                p.name,
                p.kind,
                clip(&outcome, 16),
                p.items,
                p.throughput,
                lat(|l| l.p50),
                lat(|l| l.p99),
                lat(|l| l.max),
                p.drops
            );
        }
        for p in &self.processes {
            if p.owner_died > 0 {
                outln!(
                    "  {}: took the table's lock over from a dead holder {} time{}",
                    p.name,
                    p.owner_died,
                    if p.owner_died == 1 { "" } else { "s" }
                );
            }
            let clipped = p.outcome.chars().count() > 16;
            if clipped || (!p.finished && !p.killed_by_fault) {
                outln!("  {}: {}", p.name, p.outcome);
            }
            if !p.finished && !p.killed_by_fault {
                for l in &p.stderr_tail {
                    outln!("    | {l}");
                }
            }
        }
        if let Some(pool) = &self.pool {
            outln!();
            outln!(
                "  pool: {} KiB; used {} B ({} blocks) before, {} B ({} blocks) after; \
                 high-water {} B",
                pool.capacity / 1024,
                pool.baseline_used,
                pool.baseline_live,
                pool.end_used,
                pool.end_live,
                pool.high_water
            );
            if pool.end_capacity > pool.capacity {
                outln!(
                    "  the pool grew from {} KiB to {} KiB",
                    pool.capacity / 1024,
                    pool.end_capacity / 1024
                );
            }
            if pool.recovered_processes > 0 || pool.dead_left {
                outln!(
                    "  recovery: gave back what {} held ({} B){}",
                    crate::registry::dead_processes(pool.recovered_processes),
                    pool.recovered_bytes,
                    if pool.dead_left {
                        "; some still wait to be reclaimed"
                    } else {
                        ""
                    }
                );
            }
        }
        for f in &self.faults {
            let when = match f.fired_at {
                None => "never fired".to_string(),
                Some(t) if f.times > 1 => {
                    format!("fired {} of {} times, first at {t:.3} s", f.fired, f.times)
                }
                Some(t) => format!("fired at {t:.3} s"),
            };
            let rec = f.recovered_ms.map_or(String::new(), |ms| {
                format!(", moving again after {ms:.1} ms")
            });
            outln!(
                "  fault: {} {} {}: {when}{rec}{}",
                f.action,
                f.process,
                f.trigger,
                if f.note.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", f.note)
                }
            );
        }
        for t in &self.tables {
            match &t.error {
                Some(e) => outln!("  table {}: not read at the end: {e}", t.name),
                None => {
                    let parts: Vec<String> = t
                        .counters
                        .iter()
                        .map(|(k, v)| format!("{k} = {v}"))
                        .chain(t.lists.iter().map(|(k, n)| format!("{k}: {n} items")))
                        .collect();
                    outln!(
                        "  table {}: {}{}",
                        t.name,
                        parts.join(", "),
                        if t.owner_died {
                            " (its last holder had died)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        if let Some(seed) = self.seed {
            outln!("  seed {seed} (random choices; `--seed {seed}` makes them again)");
        }
        if !self.cleaned.is_empty() {
            outln!("  cleaned up: {}", self.cleaned.join(", "));
        }
        outln!();
        for c in &self.checks {
            outln!(
                "  {} {:<18} {}",
                if c.pass { "pass" } else { "FAIL" },
                c.name,
                c.figure
            );
        }
        let passed = self.checks.iter().filter(|c| c.pass).count();
        outln!();
        outln!(
            "{}: {} of {} expectations hold",
            if self.ok { "PASS" } else { "FAIL" },
            passed,
            self.checks.len()
        );
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_compress_consecutive_numbers() {
        let mut r = ProcReport::default();
        for s in [0, 1, 2, 5, 6, 3] {
            r.record(7, s);
        }
        assert_eq!(r.received[&7], vec![[0, 2], [5, 6], [3, 3]]);
    }

    #[test]
    fn percentiles() {
        let mut v: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        let l = Latency::of(&mut v).unwrap();
        assert_eq!((l.p50, l.p99, l.max), (51.0, 100.0, 100.0));
        assert!(Latency::of(&mut []).is_none());
    }
}
