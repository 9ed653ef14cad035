//! `counters_exact`: a declared table at the end against what its writers acknowledged,
//! and the readers' own checks.
//!
//! A writer's update takes the table's lock, adds 1 to each of its counters (one
//! committed operation each), appends its item (one more), unlocks, and only then
//! announces the update (`updated`): acknowledged. A start of a writer that is killed (or
//! ends with an error) may leave one update cut short: some of its operations committed,
//! the rest not, the item appended only if every increment before it was. So at the end,
//! for each counter, `initial + acknowledged ≤ value ≤ initial + acknowledged + cut
//! short`, and the lower bound also counts each unacknowledged item that is there (its
//! increments came first); each list holds its first items, then every acknowledged item
//! exactly once, and otherwise only the item a cut-short start was appending (its next
//! update's), at most once.

use std::collections::HashMap;

use shmval::Val;

use super::{check, Outcome};
use crate::report::{Check, TableSummary};
use crate::scenario::{item_of, Kind, ProcessSpec};

/// What one start of a writer acknowledged.
#[derive(Clone, Debug, Default)]
pub struct WriterStart {
    /// The updates it announced, in order.
    pub acked: Vec<u64>,
    /// Killed, or ended without its report or with an error: it may have left an update
    /// cut short.
    pub cut_short: bool,
}

impl WriterStart {
    /// The update it was making when it was cut short: the one after its last announced.
    fn in_flight(&self) -> Option<u64> {
        self.cut_short
            .then(|| self.acked.iter().max().map_or(0, |m| m + 1))
    }
}

/// A writer of the table and what each of its starts acknowledged.
#[derive(Clone, Debug)]
pub struct WriterRecord<'a> {
    /// The writer as the scenario describes it.
    pub spec: &'a ProcessSpec,
    /// Its starts, in order (the first is start 1).
    pub starts: Vec<WriterStart>,
}

/// The most problems listed.
const MAX_PROBLEMS: usize = 100;
/// The most problems the check's figure shows.
const SHOWN: usize = 5;

/// Compares table `name`'s value at the end with its first value and its writers'
/// acknowledgements (see the module docs); the summary carries the verdict.
pub fn tally(name: &str, initial: &Val, end: &Val, writers: &[WriterRecord<'_>]) -> TableSummary {
    let mut problems: Vec<String> = vec![];
    let mut t = TableSummary {
        name: name.to_string(),
        ..TableSummary::default()
    };
    // Every item a writer start acknowledged (in order, and by item, with its list), and
    // the one each cut-short start may have appended, with the writer.
    let mut order: Vec<String> = vec![];
    let mut acked: HashMap<String, &str> = HashMap::new();
    let mut maybe: HashMap<String, usize> = HashMap::new();
    for (w, rec) in writers.iter().enumerate() {
        let Some(list) = rec.spec.append.as_deref() else {
            continue;
        };
        for (i, s) in rec.starts.iter().enumerate() {
            let start = i as u32 + 1;
            let item = |seq| item_of(&rec.spec.name, start, seq, rec.spec.item_bytes);
            for &seq in &s.acked {
                order.push(item(seq));
                acked.insert(item(seq), list);
            }
            if let Some(seq) = s.in_flight() {
                maybe.insert(item(seq), w);
            }
        }
    }
    // Per writer, its unacknowledged items found (each raises its counters' lower bound).
    let mut unacked_of = vec![0u64; writers.len()];
    let mut lists: Vec<&str> = writers
        .iter()
        .filter_map(|r| r.spec.append.as_deref())
        .collect();
    lists.sort_unstable();
    lists.dedup();
    let mut list_figures = vec![];
    for list in lists {
        let first = initial.get(list).and_then(Val::as_slice).unwrap_or(&[]);
        let Some(items) = end.get(list).and_then(Val::as_slice) else {
            problems.push(format!("{list} is not a list at the end"));
            continue;
        };
        t.lists.insert(list.to_string(), items.len() as u64);
        if items.get(..first.len()) != Some(first) {
            problems.push(format!(
                "{list} no longer starts with its first {} items",
                first.len()
            ));
        }
        let mut seen: HashMap<&str, u32> = HashMap::new();
        for (i, v) in items.iter().enumerate().skip(first.len()) {
            match v.as_str() {
                Some(s) => *seen.entry(s).or_insert(0) += 1,
                None => problems.push(format!("{list}[{i}] is {v}, not an item")),
            }
        }
        let (mut once, mut missing, mut extra) = (0u64, 0u64, 0u64);
        for item in &order {
            if acked.get(item.as_str()) != Some(&list) {
                continue;
            }
            match seen.get(item.as_str()) {
                Some(1) => once += 1,
                Some(n) => problems.push(format!(
                    "{list}: acknowledged item {item:?} is there {n} times"
                )),
                None => {
                    missing += 1;
                    problems.push(format!("{list}: acknowledged item {item:?} is missing"));
                }
            }
        }
        let mut seen: Vec<(&str, u32)> = seen.into_iter().collect();
        seen.sort_unstable();
        for (item, n) in seen {
            if acked.get(item) == Some(&list) {
                continue;
            }
            match maybe.get(item) {
                Some(&w) if writers[w].spec.append.as_deref() == Some(list) => {
                    extra += 1;
                    unacked_of[w] += 1;
                    if n > 1 {
                        problems.push(format!(
                            "{list}: item {item:?} (of an update cut short) is there {n} times"
                        ));
                    }
                }
                _ => problems.push(format!(
                    "{list}: item {item:?} is there {n} time{} but no writer acknowledged it \
                     or was cut short making it",
                    if n == 1 { "" } else { "s" }
                )),
            }
        }
        let cut: usize = writers
            .iter()
            .filter(|r| r.spec.append.as_deref() == Some(list))
            .map(|r| r.starts.iter().filter(|s| s.cut_short).count())
            .sum();
        list_figures.push(format!(
            "{list}: {}{once} acknowledged items once each{}, {extra} items of updates cut \
             short (at most {cut})",
            if first.is_empty() {
                String::new()
            } else {
                format!("{} first items, ", first.len())
            },
            if missing > 0 {
                format!(", {missing} missing")
            } else {
                String::new()
            }
        ));
    }
    let mut counters: Vec<&str> = writers
        .iter()
        .flat_map(|r| r.spec.increment.iter().map(String::as_str))
        .collect();
    counters.sort_unstable();
    counters.dedup();
    let mut counter_figures = vec![];
    for k in counters {
        let from = initial.get(k).and_then(Val::as_i64).unwrap_or(0);
        let Some(now) = end.get(k).and_then(Val::as_i64) else {
            problems.push(format!("{k} is not an integer at the end"));
            continue;
        };
        t.counters.insert(k.to_string(), now);
        let (mut acks, mut cut, mut found) = (0u64, 0u64, 0u64);
        for (w, r) in writers.iter().enumerate() {
            if r.spec.increment.iter().any(|c| c == k) {
                acks += r.starts.iter().map(|s| s.acked.len() as u64).sum::<u64>();
                cut += r.starts.iter().filter(|s| s.cut_short).count() as u64;
                found += unacked_of[w];
            }
        }
        let added = i128::from(now) - i128::from(from);
        let (lo, hi) = (i128::from(acks + found), i128::from(acks + cut));
        let bounds = format!(
            "{from} at first + {acks} acknowledged + from 0 to {cut} of updates cut short{}",
            if found > 0 {
                format!(" ({found} at least: their items are there)")
            } else {
                String::new()
            }
        );
        if added < lo {
            problems.push(format!("{k} = {now}, {} less than {bounds}", lo - added));
        } else if added > hi {
            problems.push(format!("{k} = {now}, {} more than {bounds}", added - hi));
        } else {
            counter_figures.push(format!(
                "{k} = {now}: {from} at first + {acks} acknowledged + {} of updates cut short \
                 (at most {cut})",
                added - i128::from(acks)
            ));
        }
    }
    t.exact = problems.is_empty();
    t.figure = if problems.is_empty() {
        counter_figures
            .into_iter()
            .chain(list_figures)
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        let more = problems.len().saturating_sub(SHOWN);
        format!(
            "{}{}",
            problems[..problems.len().min(SHOWN)].join("; "),
            if more > 0 {
                format!("; and {more} more (the report's tables list them)")
            } else {
                String::new()
            }
        )
    };
    problems.truncate(MAX_PROBLEMS);
    t.problems = problems;
    t
}

/// `counters_exact` for every declared table, and each reader's own checks.
pub(super) fn checks(o: &Outcome<'_>, out: &mut Vec<Check>) {
    if o.sc.expect.counters_exact {
        for t in &o.sc.tables {
            if o.sc.writers_of(&t.name).next().is_none() {
                continue;
            }
            let name = format!("counters_exact {}", t.name);
            out.push(match o.tables.iter().find(|s| s.name == t.name) {
                Some(s) => match &s.error {
                    Some(e) => check(name, false, format!("not read at the end: {e}")),
                    None => check(name, s.exact, s.figure.clone()),
                },
                None => check(name, false, "the runner never read it"),
            });
        }
    }
    for (i, p) in o.sc.processes.iter().enumerate() {
        if p.kind != Kind::Reader {
            continue;
        }
        let name = format!("reads {}", p.name);
        out.push(match o.reports[i] {
            Some(r) => check(
                name,
                r.items > 0 && r.bad_items == 0,
                match &r.first_bad {
                    Some(f) => format!("{} of {} reads wrong, first: {f}", r.bad_items, r.items),
                    None => format!(
                        "{} reads, each consistent with the ones before and the writers' \
                         updates",
                        r.items
                    ),
                },
            ),
            None => check(
                name,
                o.processes.get(i).is_some_and(|s| s.killed_by_fault),
                "no report",
            ),
        });
    }
}
