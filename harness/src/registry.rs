//! A region's process registry as `shmval inspect` shows it (each process's slot and what
//! its ledger says it holds; what recovery has given back), and `shmval clean --recover`,
//! which gives back what dead processes held.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use shmval::alloc::Pool;
use shmval::ledger::{Recovered, Tally};
use shmval::region::{AttachOptions, Region, SlotInfo, SlotState};

use crate::output::{errln, outln};

/// One process's slot.
#[derive(Debug, Serialize)]
pub struct SlotView {
    slot: u32,
    pid: u32,
    /// `alive`, `dead` (waiting to be reclaimed), `reclaiming` (a survivor gives back what
    /// it held) or `claiming` (a process taking the slot).
    state: &'static str,
    /// How many times the slot has been taken.
    incarnation: u64,
    /// The process's start-time key and pid namespace (0: unknown), which tell a reused
    /// pid apart.
    start_key: u64,
    pid_ns: u64,
    /// When it attached, in ns since the epoch.
    attached_ns: u64,
    /// What its ledger records.
    holds: HoldView,
}

/// What a process's ledger records.
#[derive(Debug, Default, Serialize)]
struct HoldView {
    entries: u64,
    values: u64,
    redeliverable: u64,
    operations: u64,
    waits: u64,
    dir_users: u64,
    pipes: Vec<PipeEnds>,
    ledger_bytes: u64,
    ledger_chunks: u64,
    /// The chunk list did not check out to its end.
    broken: bool,
}

/// A pipe a process holds a handle or ends of.
#[derive(Debug, Serialize)]
struct PipeEnds {
    /// Its name in the directory (its block's offset if it is not listed).
    pipe: String,
    handle: bool,
    sender: bool,
    receiver: bool,
}

/// What recovery has given back in a region (totals since it was made).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RecoveredView {
    /// Dead processes whose slots were reclaimed.
    processes: u64,
    /// Slots the registry counts as reclaimed.
    reclaimed_slots: u64,
    #[serde(flatten)]
    given_back: GivenBack,
    /// The last reclaiming: when (ns since the epoch, 0: never), whose, how much.
    last_at_ns: u64,
    last_pid: u32,
    last_handles: u64,
    last_bytes: u64,
}

/// What a reclaiming gave back, by kind.
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct GivenBack {
    handles: u64,
    redelivered: u64,
    operations: u64,
    pipe_counts: u64,
    waiters: u64,
    suspects: u64,
    bytes: u64,
}

impl From<Tally> for GivenBack {
    fn from(t: Tally) -> GivenBack {
        GivenBack {
            handles: t.handles,
            redelivered: t.redelivered,
            operations: t.operations,
            pipe_counts: t.pipe_counts,
            waiters: t.waiters,
            suspects: t.suspects,
            bytes: t.bytes,
        }
    }
}

impl GivenBack {
    /// `3 handles, 1 redelivered, ...`: the kinds that are not zero.
    fn describe(&self) -> String {
        let parts: Vec<String> = [
            (self.handles, "handles"),
            (self.redelivered, "values redelivered"),
            (self.operations, "operations finished or undone"),
            (self.pipe_counts, "pipe counts"),
            (self.waiters, "waiter counts"),
            (self.suspects, "references left counted (unknown)"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        let what = if parts.is_empty() {
            "nothing counted".to_string()
        } else {
            parts.join(", ")
        };
        format!("{what}; {} B of the pool", self.bytes)
    }

    /// What was given back between `before` and `after`.
    fn between(before: &Tally, after: &Tally) -> GivenBack {
        GivenBack {
            handles: after.handles.saturating_sub(before.handles),
            redelivered: after.redelivered.saturating_sub(before.redelivered),
            operations: after.operations.saturating_sub(before.operations),
            pipe_counts: after.pipe_counts.saturating_sub(before.pipe_counts),
            waiters: after.waiters.saturating_sub(before.waiters),
            suspects: after.suspects.saturating_sub(before.suspects),
            bytes: after.bytes.saturating_sub(before.bytes),
        }
    }
}

impl RecoveredView {
    /// What recovery has given back in `region` so far.
    pub fn of(region: &Region) -> RecoveredView {
        let r: Recovered = shmval::ledger::recovered(region);
        RecoveredView {
            processes: r.processes,
            reclaimed_slots: region.reclaimed_slots(),
            given_back: r.total.into(),
            last_at_ns: r.last_at_ns,
            last_pid: r.last_pid,
            last_handles: r.last_handles,
            last_bytes: r.last_bytes,
        }
    }
}

/// Each taken slot of `pool`'s region and what its process holds; `pipes` names the
/// directory's pipes by their block offset.
pub fn slots(pool: &Pool, pipes: &[(u64, String)]) -> Vec<SlotView> {
    pool.region()
        .slots()
        .iter()
        .map(|s| SlotView {
            slot: s.index,
            pid: s.pid,
            state: state_of(s),
            incarnation: s.incarnation,
            start_key: s.start_key,
            pid_ns: s.pid_ns,
            attached_ns: s.attached_ns,
            holds: hold_view(pool, s, pipes),
        })
        .collect()
}

fn state_of(s: &SlotInfo) -> &'static str {
    match (s.state, s.alive) {
        (SlotState::Live, true) => "alive",
        (SlotState::Live, false) => "dead",
        (SlotState::Reclaiming, _) => "reclaiming",
        (SlotState::Claiming, _) => "claiming",
    }
}

fn hold_view(pool: &Pool, s: &SlotInfo, pipes: &[(u64, String)]) -> HoldView {
    let h = shmval::ledger::holdings(pool, s);
    HoldView {
        entries: h.entries,
        values: h.values,
        redeliverable: h.redeliverable,
        operations: h.operations,
        waits: h.waits,
        dir_users: h.dir_users,
        pipes: h
            .pipes
            .iter()
            .map(|p| PipeEnds {
                pipe: pipes
                    .iter()
                    .find(|(off, _)| *off == p.pipe)
                    .map_or_else(|| format!("@{}", p.pipe), |(_, n)| n.clone()),
                handle: p.handle,
                sender: p.sender,
                receiver: p.receiver,
            })
            .collect(),
        ledger_bytes: h.chunk_bytes,
        ledger_chunks: h.chunks,
        broken: h.broken,
    }
}

/// `12.3 s ago` for a time in ns since the epoch.
fn ago(ns: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("{:.1} s ago", now.saturating_sub(ns) as f64 / 1e9)
}

/// Prints the registry for a person.
pub fn print(registry_slots: u32, processes: &[SlotView], recovered: &RecoveredView) {
    if registry_slots == 0 {
        outln!("processes: the region has no registry");
        return;
    }
    outln!(
        "processes: {} of {registry_slots} registry slots taken",
        processes.len()
    );
    if !processes.is_empty() {
        outln!(
            "  {:>5} {:>8} {:<10} {:>14} {:>7} {:>6} {:>9} {:>4} {:>5} {:>10}  pipes",
            "slot",
            "pid",
            "state",
            "attached",
            "entries",
            "values",
            "redeliver",
            "ops",
            "waits",
            "ledger B"
        );
    }
    for p in processes {
        let h = &p.holds;
        let mut pipes: Vec<String> = h
            .pipes
            .iter()
            .map(|e| {
                let ends: Vec<&str> = [
                    (e.handle, "handle"),
                    (e.sender, "sends"),
                    (e.receiver, "receives"),
                ]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, w)| *w)
                .collect();
                format!("{} ({})", e.pipe, ends.join(", "))
            })
            .collect();
        if h.dir_users > 0 {
            pipes.push(format!("{} directory uses", h.dir_users));
        }
        if h.broken {
            pipes.push("ledger chain broken".into());
        }
        outln!(
            "  {:>5} {:>8} {:<10} {:>14} {:>7} {:>6} {:>9} {:>4} {:>5} {:>10}  {}",
            p.slot,
            p.pid,
            p.state,
            ago(p.attached_ns),
            h.entries,
            h.values,
            h.redeliverable,
            h.operations,
            h.waits,
            h.ledger_bytes,
            if pipes.is_empty() {
                "-".to_string()
            } else {
                pipes.join("; ")
            }
        );
    }
    if recovered.processes == 0 {
        outln!("recovery: nothing given back yet");
    } else {
        outln!(
            "recovery: gave back what {} held: {}; last: pid {}, {} ({} \
             handles, {} B)",
            dead_processes(recovered.processes),
            recovered.given_back.describe(),
            recovered.last_pid,
            ago(recovered.last_at_ns),
            recovered.last_handles,
            recovered.last_bytes
        );
    }
}

/// What `clean --recover` did.
#[derive(Debug, Serialize)]
struct RecoverReport {
    region: String,
    /// Dead processes whose holdings this call gave back, and what.
    processes: u64,
    given_back: GivenBack,
    /// Dead processes' slots still waiting (a lock a live process holds, a full pipe to
    /// redeliver into): given back later.
    still_waiting: bool,
    /// Everything recovery has given back in the region so far.
    total: RecoveredView,
}

/// `shmval clean --recover REGION`: attaches to the region as a registered process, gives
/// back what its dead processes held, reports it; returns the exit code (1 if dead
/// processes' slots are still waiting).
pub fn recover(arg: &str, json: bool) -> i32 {
    let name = match crate::inspect::region_name(arg) {
        Ok(n) => n,
        Err(crate::inspect::InspectError::Usage(e)) => {
            errln!("shmval clean: {e}");
            return 2;
        }
        Err(crate::inspect::InspectError::Failed(e)) => {
            errln!("shmval clean: {arg}: {e}");
            return 1;
        }
    };
    let attached = AttachOptions::new()
        .timeout(Duration::from_secs(1))
        .attach(&name)
        .map_err(|e| e.to_string())
        .map(Arc::new)
        .and_then(|r| {
            Pool::attach(r.clone())
                .map(|p| (r, p))
                .map_err(|e| format!("pool: {e}"))
        });
    let (region, pool) = match attached {
        Ok(a) => a,
        Err(e) => {
            errln!("shmval clean: {name}: {e}");
            return 1;
        }
    };
    if region.registry_slots() == 0 {
        errln!("shmval clean: {name}: the region has no process registry; nothing to recover");
        return 1;
    }
    let before = shmval::ledger::recovered(&region);
    let after = shmval::sides::recover(&pool);
    let report = RecoverReport {
        region: name.to_string(),
        processes: after.processes.saturating_sub(before.processes),
        given_back: GivenBack::between(&before.total, &after.total),
        still_waiting: region.has_dead_slots(),
        total: RecoveredView::of(&region),
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => outln!("{s}"),
            Err(e) => errln!("shmval: {e}"),
        }
    } else if report.processes == 0 && !report.still_waiting {
        outln!("{name}: no dead process held anything");
    } else {
        outln!(
            "{name}: gave back what {} held: {}",
            dead_processes(report.processes),
            report.given_back.describe()
        );
    }
    if report.still_waiting {
        errln!(
            "shmval clean: {name}: dead processes' slots still wait (a lock a live process \
             holds, or a full pipe to redeliver into); run it again later"
        );
        return 1;
    }
    0
}

/// "1 dead process", "3 dead processes".
pub fn dead_processes(n: u64) -> String {
    if n == 1 {
        "1 dead process".into()
    } else {
        format!("{n} dead processes")
    }
}
