//! The roles on a named locked table: the writer, which updates it, and the reader, which
//! reads it and checks what it can.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shmval::sides::Lookup;
use shmval::val::shared::ShmRef;
use shmval::{LockedGuard, ShmLocked, ShmVal, Val, ValError};

use super::{attach_timeout, runner_alive, Ctx, RoleResult, RoleSpec, MICRO_SLEEP};
use crate::report::Event;
use crate::scenario::{item_of, item_parts, TableSpec};

/// A writer's or reader's table, as the runner describes it.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct TableRole {
    /// The table's declaration (its first value).
    pub table: TableSpec,
    /// Its writers.
    pub writers: Vec<WriterInfo>,
}

/// What a reader knows of one writer of its table.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct WriterInfo {
    /// Its name (its items start with it).
    pub name: String,
    /// The counters each of its updates adds 1 to.
    pub increment: Vec<String>,
    /// The list each of its updates appends to.
    pub append: Option<String>,
    /// How many of its starts the scenario's faults may kill, each leaving an update cut
    /// short at most.
    pub kills: u64,
}

/// How long a writer or reader waits in all for the table's lock (a holder that died is
/// taken over long before).
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Finds the table by name alone, as a process that knows nothing else does.
fn attach(spec: &RoleSpec) -> Result<(ShmLocked, &TableRole), String> {
    let role = spec
        .table
        .as_ref()
        .ok_or_else(|| "no table given".to_string())?;
    let name = &role.table.name;
    let runner = spec.runner_pid;
    let v = Lookup::new(spec.region.as_str(), name.as_str())
        .timeout(attach_timeout(&spec.process))
        .micro_sleep(MICRO_SLEEP)
        .break_checker(move || !runner_alive(runner))
        .start()
        .map_err(|e| format!("looking up table {name}: {e}"))?;
    let board = v.into_locked().map_err(|e| format!("table {name}: {e}"))?;
    Ok((board, role))
}

/// Runs `f` until it gets past a live holder of the lock: slices of `MICRO_SLEEP`, while
/// the runner is there, for [`LOCK_WAIT`] at most.
fn with_lock_wait<T>(
    spec: &RoleSpec,
    mut f: impl FnMut(Duration) -> Result<T, ValError>,
) -> Result<T, String> {
    let start = Instant::now();
    loop {
        match f(MICRO_SLEEP) {
            Err(ValError::LockTimeout { .. })
                if start.elapsed() < LOCK_WAIT && runner_alive(spec.runner_pid) => {}
            Err(ValError::LockTimeout { .. }) => {
                return Err(format!(
                    "the table's lock was held by a live process for {:?}",
                    start.elapsed()
                ))
            }
            r => return r.map_err(|e| e.to_string()),
        }
    }
}

fn lock<'a>(spec: &RoleSpec, board: &'a ShmLocked) -> Result<LockedGuard<'a>, String> {
    with_lock_wait(spec, |t| board.lock(t))
}

/// Makes `ops` updates of the table: under its lock, each counter of `increment` plus 1,
/// then the update's item appended to `append`; after the unlock, an `updated` event.
pub(super) fn writer(spec: &RoleSpec, ctx: &mut Ctx) -> RoleResult {
    let p = &spec.process;
    let (board, _) = attach(spec)?;
    let hold = p.hold_for();
    ctx.ready();
    for seq in 0..p.ops.unwrap_or(0) {
        let item = item_of(&p.name, spec.start, seq, p.item_bytes);
        let mut g = lock(spec, &board).map_err(|e| format!("update {seq}: {e}"))?;
        if g.owner_died() {
            ctx.report.owner_died += 1;
        }
        for k in &p.increment {
            g.increment(k.as_str(), 1)
                .map_err(|e| format!("update {seq}: incrementing {k}: {e}"))?;
        }
        if let Some(list) = &p.append {
            g.child_mut(list.as_str())
                .and_then(|mut l| l.push(item.as_str()))
                .map_err(|e| format!("update {seq}: appending to {list}: {e}"))?;
        }
        if let Some(h) = hold {
            std::thread::sleep(h);
        }
        drop(g);
        // Unlocked: acknowledged.
        ctx.emit(&Event::Updated { seq });
        ctx.tick(seq + 1);
        ctx.slow_down();
    }
    Ok(())
}

/// Reads the table (`read = "lock"`: in place under its lock; `"snapshot"`: a copy made
/// under it), checking each read against the ones before, for `reads` reads or until its
/// standard input closes (the runner closes it once the table's writers have ended: the
/// read after that is the last).
pub(super) fn reader(spec: &RoleSpec, ctx: &mut Ctx) -> RoleResult {
    let p = &spec.process;
    let (board, role) = attach(spec)?;
    let mut watch = Watch::new(role)?;
    let ended = stdin_closed();
    let snapshot = p.read.as_deref() == Some("snapshot");
    ctx.ready();
    let mut n = 0;
    loop {
        let last = matches!(ended.try_recv(), Err(TryRecvError::Disconnected));
        let wrong = if snapshot {
            let v: ShmVal = with_lock_wait(spec, |t| board.snapshot(t))?;
            watch.read(&v.view())
        } else {
            let g = lock(spec, &board)?;
            if g.owner_died() {
                ctx.report.owner_died += 1;
            }
            watch.read(&g.view())
        }
        .map_err(|e| format!("read {}: {e}", n + 1))?;
        n += 1;
        if let Some(w) = wrong {
            ctx.report.bad_items += 1;
            ctx.report
                .first_bad
                .get_or_insert_with(|| format!("read {n}: {w}"));
        }
        ctx.tick(n);
        if last || p.reads.is_some_and(|r| n >= r) {
            return Ok(());
        }
        ctx.slow_down();
    }
}

/// Disconnected once standard input closes: the runner's word that the table's writers
/// (for a reader), or the tables' writers and readers (for the main that made them), have
/// ended.
pub(super) fn stdin_closed() -> Receiver<()> {
    let (tx, ended) = channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut input = std::io::stdin();
        loop {
            match input.read(&mut buf) {
                Ok(0) => break,
                Err(e) if e.kind() != std::io::ErrorKind::Interrupted => break,
                _ => {}
            }
        }
        drop(tx);
    });
    ended
}

/// What a reader saw so far, and what its next read must agree with.
#[derive(Debug)]
pub struct Watch {
    /// Per counter: its first value, and the writers that increment it (all of which
    /// append, or `None`: then only its never going down is checked).
    counters: Vec<(String, i64, Option<Vec<usize>>)>,
    /// Per list: its first length.
    lists: Vec<(String, usize)>,
    writers: Vec<WriterInfo>,
    /// Per counter, per list: the last value and length read.
    last_counters: HashMap<String, i64>,
    last_lists: HashMap<String, (usize, Option<String>)>,
    /// Items seen past the first ones, and how many per writer.
    seen: HashSet<String>,
    per_writer: Vec<u64>,
}

impl Watch {
    /// The checks for a table of these writers.
    pub fn new(role: &TableRole) -> Result<Watch, String> {
        let first = role.table.value_val()?;
        let writers = role.writers.clone();
        let mut counters: Vec<(String, i64, Option<Vec<usize>>)> = vec![];
        for w in &writers {
            for k in &w.increment {
                if counters.iter().any(|(c, _, _)| c == k) {
                    continue;
                }
                let of: Vec<usize> = (0..writers.len())
                    .filter(|&i| writers[i].increment.contains(k))
                    .collect();
                let all_append = of.iter().all(|&i| writers[i].append.is_some());
                let from = first.get(k.as_str()).and_then(Val::as_i64).unwrap_or(0);
                counters.push((k.clone(), from, all_append.then_some(of)));
            }
        }
        let mut lists: Vec<(String, usize)> = vec![];
        for l in writers.iter().filter_map(|w| w.append.as_ref()) {
            if !lists.iter().any(|(x, _)| x == l) {
                lists.push((l.clone(), first.get(l.as_str()).map_or(0, Val::len)));
            }
        }
        Ok(Watch {
            counters,
            lists,
            per_writer: vec![0; writers.len()],
            writers,
            last_counters: HashMap::new(),
            last_lists: HashMap::new(),
            seen: HashSet::new(),
        })
    }

    /// Checks one read of the table: `Ok(Some(what is wrong))`, or an error if the table
    /// cannot be read at all.
    pub fn read(&mut self, t: &ShmRef<'_>) -> Result<Option<String>, ValError> {
        let mut wrong = vec![];
        for (list, first_len) in &self.lists {
            let Some(v) = t.get(list.as_str())? else {
                wrong.push(format!("no {list}"));
                continue;
            };
            let seq = v.as_seq()?;
            let len = seq.len();
            let (was, last) = self.last_lists.get(list).cloned().unwrap_or((0, None));
            if len < was {
                wrong.push(format!("{list} went from {was} items down to {len}"));
                continue;
            }
            if let (Some(last), Some(i)) = (&last, was.checked_sub(1)) {
                let now = seq.get(i)?.map(|x| x.to_val()).transpose()?;
                if now.as_ref().and_then(Val::as_str) != Some(last.as_str()) {
                    wrong.push(format!("{list}[{i}] was {last:?}, now {now:?}"));
                }
            }
            let mut newest = last;
            for i in was..len {
                let Some(x) = seq.get(i)? else { break };
                let item = x.as_str()?.to_string();
                if i >= *first_len {
                    if let Some((w, _, _)) = item_parts(&item) {
                        if let Some(k) = self.writers.iter().position(|x| x.name == w) {
                            self.per_writer[k] += 1;
                        }
                    }
                    if !self.seen.insert(item.clone()) {
                        wrong.push(format!("{list} holds {item:?} twice"));
                    }
                }
                newest = Some(item);
            }
            self.last_lists.insert(list.clone(), (len, newest));
        }
        for (k, from, of) in &self.counters {
            let Some(now) = t.get(k.as_str())?.map(|v| v.as_i64()).transpose()? else {
                wrong.push(format!("no {k}"));
                continue;
            };
            if let Some(was) = self.last_counters.insert(k.clone(), now) {
                if now < was {
                    wrong.push(format!("{k} went down from {was} to {now}"));
                }
            }
            let Some(of) = of else { continue };
            let items: u64 = of.iter().map(|&i| self.per_writer[i]).sum();
            let slack: u64 = of.iter().map(|&i| self.writers[i].kills).sum();
            let lo = i128::from(*from) + i128::from(items);
            let n = i128::from(now);
            if n < lo || n > lo + i128::from(slack) {
                wrong.push(format!(
                    "{k} = {now}, but {from} + the {items} items of its writers is {lo} (and \
                     at most {slack} updates may be cut short)"
                ));
            }
        }
        Ok((!wrong.is_empty()).then(|| wrong.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shmval::sides::ShmMain;
    use shmval::val;

    const T: Duration = Duration::from_secs(5);

    /// A reader's checks on reads of a real table: writes as a writer makes them pass,
    /// a counter going down, a list shrinking, an item twice, a counter off its items fail.
    #[test]
    fn a_watch_tells_good_reads_from_bad() {
        let name = format!("shmval-test-watch-{}", std::process::id());
        let main = ShmMain::new(name.as_str(), 1 << 20).start().unwrap();
        let board = ShmLocked::new(main.pool(), val!({"a": 0, "log": ["first"]})).unwrap();
        let role = TableRole {
            table: TableSpec {
                name: "board".into(),
                value: "{'a': 0, 'log': ['first']}".into(),
            },
            writers: vec![WriterInfo {
                name: "w".into(),
                increment: vec!["a".into()],
                append: Some("log".into()),
                kills: 1,
            }],
        };
        let mut watch = Watch::new(&role).unwrap();
        let mut read = |f: &dyn Fn(&mut LockedGuard<'_>)| {
            let mut g = board.lock(T).unwrap();
            f(&mut g);
            watch.read(&g.view()).unwrap()
        };
        let update = |g: &mut LockedGuard<'_>, seq: u64| {
            g.increment("a", 1).unwrap();
            g.child_mut("log")
                .unwrap()
                .push(item_of("w", 1, seq, None).as_str())
                .unwrap();
        };
        let bump = |g: &mut LockedGuard<'_>, by: i64| {
            g.increment("a", by).unwrap();
        };
        assert_eq!(read(&|_| {}), None);
        assert_eq!(read(&|g| update(g, 0)), None);
        // An update cut short: its increment, not its item (one kill allowed).
        assert_eq!(read(&|g| bump(g, 1)), None);
        let two_over = read(&|g| bump(g, 1)).unwrap();
        assert!(
            two_over.contains("a = 3, but 0 + the 1 items"),
            "{two_over}"
        );
        let down = read(&|g| bump(g, -2)).unwrap();
        assert!(down.contains("a went down from 3 to 1"), "{down}");
        let twice = read(&|g| {
            bump(g, 1);
            g.child_mut("log").unwrap().push("w-1-0").unwrap();
        })
        .unwrap();
        assert!(twice.contains("log holds \"w-1-0\" twice"), "{twice}");
        let shrunk = read(&|g| {
            g.insert("log", val!(["first"])).unwrap();
        })
        .unwrap();
        assert!(
            shrunk.contains("log went from 3 items down to 1"),
            "{shrunk}"
        );
        drop(board);
    }
}
