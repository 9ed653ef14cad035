//! The faults: when each is due, firing it, and following a lock-holder kill until the
//! pipe moves again.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use shmval::fault::Notice;

use super::{Run, St, HOLD_WAIT, RECOVERY_WAIT};
use crate::keeper::{Reply, Request};
use crate::scenario::{duration, FaultSpec, LockOf, ProcessSpec, Scenario};

#[derive(Clone, Copy, Debug)]
pub(super) enum Stage {
    Waiting,
    Armed(Instant),
    Recovering(Instant, u64),
    Stopped(Instant),
    Done,
}

pub(super) struct Fault {
    pub(super) spec: FaultSpec,
    pub(super) proc_: usize,
    at: Option<Duration>,
    resume: Duration,
    pub(super) stage: Stage,
    pub(super) fired_at: Option<Duration>,
    /// How many times it has fired (a restart may hit several starts).
    pub(super) fired: u32,
    pub(super) recovered_ms: Option<f64>,
    pub(super) note: String,
    /// A lock-holder kill: the page through which the process reports reaching its pause
    /// point.
    pub(super) notice: Option<Notice>,
}

impl Fault {
    /// The fault `f` on one of `processes` (both checked when the scenario was read).
    pub(super) fn new(f: &FaultSpec, processes: &[ProcessSpec]) -> Fault {
        Fault {
            spec: f.clone(),
            proc_: processes
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
            fired: 0,
            recovered_ms: None,
            note: String::new(),
            notice: None,
        }
    }
}

impl Fault {
    /// Whether it hits the process's start number `start` (1, 2, ...): one of its first
    /// `times`, the next it has not hit yet.
    pub(super) fn hits(&self, start: u32) -> bool {
        start <= self.spec.times() && start == self.fired + 1
    }
}

impl Run {
    /// The faults on process `i` waiting to hit its start `inst` whose trigger `pick` says
    /// has come.
    pub(super) fn waiting_faults(
        &self,
        i: usize,
        inst: u32,
        pick: impl Fn(&FaultSpec) -> bool,
    ) -> Vec<usize> {
        (0..self.faults.len())
            .filter(|&f| {
                let ft = &self.faults[f];
                ft.proc_ == i
                    && matches!(ft.stage, Stage::Waiting)
                    && ft.hits(inst)
                    && pick(&ft.spec)
            })
            .collect()
    }

    pub(super) fn fire(&mut self, f: usize) {
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
                if let Some(r) = self.procs[i].receipts.last_mut() {
                    r.killed = true;
                }
                if let Some(u) = self.procs[i].updates.last_mut() {
                    u.cut_short = true;
                }
                self.procs[i].restart = action == "restart";
                // A restart that hits more starts waits for the next one.
                let again =
                    action == "restart" && self.faults[f].fired + 1 < self.faults[f].spec.times();
                self.faults[f].stage = if again { Stage::Waiting } else { Stage::Done };
            }
        }
        self.faults[f].fired += 1;
        self.faults[f].fired_at.get_or_insert(now);
        let name = self.procs[i].spec.name.clone();
        self.say(format_args!("fault: {action} {name}"));
    }

    pub(super) fn run_faults(&mut self) {
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
                        let what = self.lock_name(i);
                        let (moved, owner) = self.lock_state(i).unwrap_or((0, None));
                        // Paused inside the critical section, it holds the lock.
                        let holds = owner == Some(pid);
                        self.fire(f);
                        self.faults[f].stage = Stage::Recovering(Instant::now(), moved);
                        self.faults[f].notice = None;
                        self.faults[f].note = if holds {
                            format!("killed at {}, holding the lock of {what}", r.point)
                        } else {
                            format!(
                                "killed at {}, but not seen holding the lock of {what}",
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
                    if let Some((moved, owner)) = self.lock_state(i) {
                        if owner != Some(pid) && moved > from {
                            self.faults[f].recovered_ms = Some(since.elapsed().as_secs_f64() * 1e3);
                            self.faults[f].stage = Stage::Done;
                            continue;
                        }
                    }
                    if since.elapsed() > RECOVERY_WAIT {
                        let what = self.lock_name(i);
                        self.faults[f]
                            .note
                            .push_str(&format!("; the {what} did not move again"));
                        self.faults[f].stage = Stage::Done;
                    }
                }
                Stage::Done => {}
            }
        }
    }

    /// The lock process `i`'s lock faults refer to, in words: `pipe p`, `table board`.
    fn lock_name(&self, i: usize) -> String {
        match self.procs[i].spec.lock_of() {
            Some(LockOf::Pipe(p)) => format!("pipe {p}"),
            Some(LockOf::Table(t)) => format!("table {t}"),
            None => "?".into(),
        }
    }

    /// How far the pipe or table of process `i`'s lock faults has moved so far (items
    /// both ways, or operations) and the thread holding its lock.
    pub(super) fn lock_state(&mut self, i: usize) -> Option<(u64, Option<u32>)> {
        let req = match self.procs[i].spec.lock_of()? {
            LockOf::Pipe(p) => Request::Pipe(p.to_string()),
            LockOf::Table(t) => Request::Table(t.to_string()),
        };
        match self.ask(req, super::ASK_WAIT)? {
            Reply::Pipe { moved, lock_owner } => Some((moved, lock_owner)),
            Reply::Table {
                operations,
                lock_owner,
            } => Some((operations, lock_owner)),
            _ => None,
        }
    }
}

/// Picks the item of each fault with `at_random_item` (into its `at_item`) from the seed
/// given, the scenario's, or else a fresh one; returns the seed if it picked any.
pub(super) fn pick_random_items(sc: &mut Scenario, given: Option<u64>) -> Option<u64> {
    if sc.faults.iter().all(|f| f.at_random_item.is_none()) {
        return None;
    }
    let seed = given.or(sc.seed).unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        t ^ u64::from(std::process::id()).rotate_left(32)
    });
    let mut state = seed;
    for f in &mut sc.faults {
        if let Some([lo, hi]) = f.at_random_item {
            // Checked when the scenario was read: lo <= hi.
            let span = (hi - lo).saturating_add(1);
            f.at_item = Some(lo + splitmix(&mut state) % span);
        }
    }
    Some(seed)
}

/// The next number of the splitmix64 sequence from `state`.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// When a fault is to fire, for the summary.
pub(super) fn trigger(f: &FaultSpec) -> String {
    let mut t = if let (Some(k), Some([lo, hi])) = (f.at_item, f.at_random_item) {
        format!("at item {k} (picked in {lo}..={hi})")
    } else if let Some(k) = f.at_item {
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
    if f.times() > 1 {
        t.push_str(&format!(", in each of the first {} starts", f.times()));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCENARIO: &str = r#"
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
        count = 1000
        [[process]]
        name = "k"
        kind = "sink"
        in = "p"
        [[fault]]
        process = "k"
        action = "kill"
        at_random_item = [100, 200]
        [[fault]]
        process = "s"
        action = "stop"
        at_random_item = [7, 7]
        resume_after = "1ms"
    "#;

    fn picks(given: Option<u64>, text: &str) -> (Option<u64>, Vec<Option<u64>>) {
        let mut sc = Scenario::parse(text).unwrap();
        let seed = pick_random_items(&mut sc, given);
        (seed, sc.faults.iter().map(|f| f.at_item).collect())
    }

    #[test]
    fn random_items_come_from_the_seed_within_their_range() {
        let (seed, items) = picks(Some(42), SCENARIO);
        assert_eq!(seed, Some(42));
        assert!(
            items[0].is_some_and(|k| (100..=200).contains(&k)),
            "{items:?}"
        );
        assert_eq!(items[1], Some(7));
        // The same seed, the same items; the scenario's seed when none is given.
        assert_eq!(picks(Some(42), SCENARIO).1, items);
        let with_seed = format!("seed = 42\n{SCENARIO}");
        assert_eq!(picks(None, &with_seed), (Some(42), items.clone()));
        // Over many seeds, the whole range and nothing outside it.
        let sc = Scenario::parse(SCENARIO).unwrap();
        let all: Vec<u64> = (0..2000)
            .filter_map(|s| {
                let mut sc = sc.clone();
                pick_random_items(&mut sc, Some(s));
                sc.faults[0].at_item
            })
            .collect();
        assert_eq!(all.iter().min(), Some(&100));
        assert_eq!(all.iter().max(), Some(&200));
        // No random choice: no seed to report.
        let fixed = SCENARIO
            .replace("at_random_item = [100, 200]", "at_item = 5")
            .replace("at_random_item = [7, 7]", "at_item = 7");
        assert_eq!(picks(Some(1), &fixed), (None, vec![Some(5), Some(7)]));
    }
}
