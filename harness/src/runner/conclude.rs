//! The end of a run: the keeper let go of the region, the run's files removed from
//! `/dev/shm`, every expectation judged, the summary built.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

use nix::sys::signal::Signal;
use shmval::region::{Region, RegionName, SHM_DIR};

use super::faults::trigger;
use super::{Proc, Run, Stop, ASK_WAIT};
use crate::expect::{self, Outcome, Receipts, SourceAck, WriterRecord, WriterStart};
use crate::keeper::{Reply, Request, TableRead};
use crate::report::{
    Check, FaultSummary, PoolSummary, ProcReport, ProcSummary, RunSummary, TableSummary,
};
use crate::scenario::Kind;

/// How long the keeper may take to read and take down the tables at the end.
const TABLES_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Run {
    /// Tears the region down, removes what is left in `/dev/shm`, judges the run.
    pub(super) fn conclude(mut self) -> RunSummary {
        let seconds = self.t0.elapsed().as_secs_f64();
        // A truncated region faults: the keeper is not asked to read it again.
        let truncated = matches!(self.stop, Some(Stop::Truncated { .. }));
        // The tables first: they are read, then taken down, and the pool measured without
        // them.
        let reads = if truncated || self.sc.tables.is_empty() {
            vec![]
        } else {
            match self.ask(Request::TakeTables, TABLES_WAIT) {
                Some(Reply::Tables(t)) => t,
                _ => vec![],
            }
        };
        if !truncated {
            self.read_stats();
        }
        let end = self.last_stats;
        if let Some(s) = end {
            self.high_water = self.high_water.max(s.high_water);
        }
        let pool = match (self.baseline, end) {
            (Some(b), Some(e)) => Some(PoolSummary {
                capacity: b.capacity,
                end_capacity: e.capacity,
                baseline_used: b.used,
                baseline_live: b.live_allocations,
                end_used: e.used,
                end_live: e.live_allocations,
                high_water: self.high_water,
                recovered_processes: e.recovered_processes.saturating_sub(b.recovered_processes),
                recovered_bytes: e.recovered_bytes.saturating_sub(b.recovered_bytes),
                dead_left: e.dead_left,
            }),
            _ => None,
        };
        // The keeper lets go of the region; its name goes with the handle that made it.
        let keeper_end = self.keeper.as_mut().and_then(|k| k.end(ASK_WAIT));
        let keeper_died = keeper_end.filter(|s| s.signal().is_some()).map(exit_of);
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
                fired: f.fired,
                times: f.spec.times(),
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
        let tables: Vec<TableSummary> = self
            .sc
            .tables
            .iter()
            .map(|t| self.table_summary(&t.name, reads.iter().find(|r| r.name == t.name)))
            .collect();
        let outcome = Outcome {
            sc: &self.sc,
            processes: &processes,
            reports: self.procs.iter().map(|p| p.report.as_ref()).collect(),
            receipts: self.procs.iter().map(receipts_of).collect(),
            sources,
            pool,
            faults: &faults,
            files_left: left,
            seconds,
            stale_replaced: self.stale_replaced,
            tables: &tables,
        };
        let mut checks = expect::check_all(&outcome);
        let stopped = self.stop.as_ref().map(|stop| {
            let mut why = format!(
                "{} at {:.2} s; items so far: {}",
                stop.describe(&self.name, self.sc.region.bytes),
                seconds,
                self.stopped_while
            );
            if let Some(how) = &keeper_died {
                why.push_str(&format!("; the region's keeper {how}"));
            }
            checks.push(Check {
                name: "completed".into(),
                pass: false,
                figure: why.clone(),
            });
            why
        });
        RunSummary {
            scenario: self.sc.name.clone(),
            description: self.sc.description.clone(),
            file: self.file.display().to_string(),
            region: self.name.to_string(),
            region_bytes: self.sc.region.bytes,
            seconds,
            timed_out: self.timed_out,
            stopped,
            ok: checks.iter().all(|c| c.pass),
            processes,
            pool,
            faults,
            seed: self.seed,
            tables,
            checks,
            cleaned,
        }
    }

    /// Table `name` as the keeper read it at the end, judged against what its writers
    /// acknowledged.
    fn table_summary(&self, name: &str, read: Option<&TableRead>) -> TableSummary {
        let failed = |e: String| TableSummary {
            name: name.to_string(),
            error: Some(e),
            ..TableSummary::default()
        };
        let Some(read) = read else {
            return failed("the keeper did not read it".into());
        };
        let end = match &read.value {
            Ok(text) => shmval::Val::parse(text).map_err(|e| format!("its value: {e}")),
            Err(e) => Err(e.clone()),
        };
        let first = self
            .sc
            .table(name)
            .ok_or_else(|| "not declared".to_string())
            .and_then(|t| t.value_val());
        let (end, first) = match (end, first) {
            (Ok(e), Ok(f)) => (e, f),
            (Err(e), _) | (_, Err(e)) => return failed(e),
        };
        let writers: Vec<WriterRecord<'_>> = self
            .procs
            .iter()
            .filter(|p| p.spec.kind == Kind::Writer && p.spec.table.as_deref() == Some(name))
            .map(|p| WriterRecord {
                spec: &p.spec,
                starts: starts_of(p),
            })
            .collect();
        let mut t = expect::tally(name, &first, &end, &writers);
        t.owner_died = read.owner_died;
        t
    }

    /// Removes the run's leftovers: the region through `remove_stale` (ours, creator
    /// dead) or, when truncated past its header, as the very file the run saw at full size
    /// (same device, inode and owner); private build names only of this run's own
    /// (reaped) children.
    pub(super) fn clean_up(&self, left: &[String]) -> Vec<String> {
        let pids: Vec<u32> = self.procs.iter().flat_map(|p| p.pids.clone()).collect();
        let mut cleaned = vec![];
        for f in left {
            if f == self.name.as_str() {
                if Region::remove_stale(&self.name).unwrap_or(false) || self.remove_seen_file() {
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

    pub(super) fn summarise(&self, p: &Proc) -> ProcSummary {
        let report = p.report.as_ref();
        let error = report.and_then(|r| r.error.clone());
        let exit_ok = p.exit.is_some_and(|s| s.success());
        let (outcome, finished) = if let Some(e) = &p.spawn_error {
            (e.clone(), false)
        } else if p.starts == 0 {
            ("never started".to_string(), false)
        } else if p.killed_by_fault {
            ("killed (fault)".to_string(), false)
        } else if p.killed_by_runner && self.timed_out {
            ("timed out".to_string(), false)
        } else if let (true, Some(stop)) = (p.killed_by_runner, &self.stop) {
            (stop.short(), false)
        } else if let Some(e) = error {
            if p.spec.allow_error {
                (format!("error (allowed): {e}"), report.is_some())
            } else {
                (format!("error: {e}"), false)
            }
        } else if exit_ok && report.is_some() {
            ("ok".to_string(), true)
        } else {
            (p.exit.map_or("no exit status".to_string(), exit_of), false)
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
                .fold(0, u64::saturating_add),
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
            pids: p.pids.clone(),
            items,
            throughput: if secs > 0.0 { items as f64 / secs } else { 0.0 },
            latency_us: report.and_then(|r| r.latency_us),
            drops,
            owner_died: report.map_or(0, |r| r.owner_died),
            stderr_tail,
        }
    }

    /// Removes the region's file if it is still the one the run saw at its full size: for
    /// a region truncated past its header, which `remove_stale` cannot recognise.
    fn remove_seen_file(&self) -> bool {
        let path = self.name.file_path();
        let (Some(seen), Ok(now)) = (self.region_inode, std::fs::symlink_metadata(&path)) else {
            return false;
        };
        now.is_file()
            && (now.dev(), now.ino()) == seen
            && now.uid() == nix::unistd::geteuid().as_raw()
            && std::fs::remove_file(&path).is_ok()
    }
}

/// How a process ended: `exit code 1`, `died of SIGBUS`.
pub(super) fn exit_of(s: ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(n)) => match Signal::try_from(n) {
            Ok(sig) => format!("died of {sig}"),
            Err(_) => format!("died of signal {n}"),
        },
        _ => s.to_string(),
    }
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

/// What each start of `p` received: what it announced, and for the start that ended with
/// its report, the report (a sink announces packets only when asked to).
fn receipts_of(p: &Proc) -> Vec<Receipts> {
    let mut r = p.receipts.clone();
    if let (Some(report), Some(last)) = (&p.report, r.last_mut()) {
        last.received = report.received.clone();
    }
    r
}

/// What each start of writer `p` acknowledged; a start is cut short if a fault killed it,
/// or (the last) if it ended without its report or with an error.
fn starts_of(p: &Proc) -> Vec<WriterStart> {
    let mut starts = p.updates.clone();
    let ended_well = p.report.as_ref().is_some_and(|r| r.error.is_none());
    if let Some(last) = starts.last_mut() {
        last.cut_short |= !ended_well;
    }
    starts
}
