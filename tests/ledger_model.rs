//! A model of who holds what, against real processes: random sequences of share, clone,
//! drop, send, receive, batch receive, acknowledge and death (between commands, or inside
//! a send or receive, before or after its commit), run by worker processes the test drives
//! one command at a time over their standard input, against two pipes (one that
//! redelivers). After each death the survivors recover, and the pipes' lengths and the
//! pool's value objects match the model: a dead worker's references are dropped, but for
//! what it received unacknowledged from the pipe that redelivers, which goes back there. At
//! the end the pipes hold what the model says, and once the workers drop everything the
//! pool is at its baseline.
//!
//! `PROPTEST_CASES` sets the number of cases (24 by default).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, ChildStdout};
use std::time::Duration;

use common::kills::settled;
use common::{role_entry, spawn_role_stdio, wait_until, ChildGuard, TestName};
use proptest::prelude::*;
use shmval::alloc::Pool;
use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::{val, PoolExt, ShmVal, Val};

const BYTES: u64 = 1 << 20;
const WORKERS: usize = 3;
/// Pipes: 0 does not redeliver, 1 does. Room for every value a case makes.
const PIPES: [&str; 2] = ["n", "r"];
const CAPACITY: u64 = 64;
const LIMIT: Duration = Duration::from_secs(120);
/// What a worker's replies start with (its test harness writes lines of its own).
const REPLY: &str = "@ ";

#[test]
fn child_role() {
    role_entry(&[("worker", worker)]);
}

/// The value of `shape` (0..3: one, two or three objects), told apart by `id`.
fn shaped(id: u64, shape: u8) -> Val {
    match shape {
        0 => val!({"id": id}),
        1 => val!({"id": id, "xs": [1.5, 2.5]}),
        _ => val!({"id": id, "xs": [1.5, 2.5], "name": "a value of three objects"}),
    }
}

fn id_of(v: &ShmVal) -> u64 {
    v.field("id").unwrap().as_i64().unwrap() as u64
}

/// args: region. Reads commands from standard input, one a line, and answers each with
/// one line starting with [`REPLY`]. Its handles are a list; commands name them by index.
fn worker(args: &[String]) {
    let sides: Vec<ClientSide> = PIPES
        .iter()
        .map(|p| {
            ClientSide::new(args[0].clone(), *p)
                .timeout(LIMIT)
                .start()
                .unwrap()
        })
        .collect();
    let pool = sides[0].pool();
    let mut held: Vec<ShmVal> = Vec::new();
    let mut out = std::io::stdout();
    let mut reply = |s: String| {
        writeln!(out, "{REPLY}{s}").unwrap();
        out.flush().unwrap();
    };
    reply("ready".into());
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let w: Vec<&str> = line.split_whitespace().collect();
        let n = |i: usize| -> usize { w[i].parse().unwrap() };
        match w[0] {
            "share" => {
                held.push(pool.share(&shaped(n(1) as u64, n(2) as u8)).unwrap());
                reply("ok".into());
            }
            "clone" => {
                let c = held[n(1)].clone();
                held.push(c);
                reply("ok".into());
            }
            "drop" => {
                drop(held.remove(n(1)));
                reply("ok".into());
            }
            "ack" => {
                held[n(1)].acknowledge();
                reply("ok".into());
            }
            "send" => {
                let v = held.remove(n(1));
                sides[n(2)].pipe().try_enqueue(v).unwrap();
                reply("ok".into());
            }
            "recv" => {
                let mut got = Vec::new();
                match sides[n(1)].pipe().try_dequeue_batch(&mut got, n(2)) {
                    Ok(_) | Err(shmval::queue::TryRecvError::Empty) => {}
                    Err(e) => panic!("receive: {e:?}"),
                }
                let ids: Vec<String> = got.iter().map(|v| id_of(v).to_string()).collect();
                held.extend(got);
                reply(format!("got {}", ids.join(" ")));
            }
            "arm" => {
                shmval::fault::arm(w[1]);
                reply("ok".into());
            }
            "quit" => {
                held.clear();
                reply("ok".into());
                return;
            }
            other => panic!("unknown command {other}"),
        }
    }
}

/// A worker process and the ends of its standard input and output.
struct Worker {
    child: ChildGuard,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn start(region: &str) -> Worker {
        let mut child = spawn_role_stdio("worker", &[region]);
        let c = child.0.as_mut().unwrap();
        let stdin = c.stdin.take().unwrap();
        let stdout = BufReader::new(c.stdout.take().unwrap());
        let mut w = Worker {
            child,
            stdin,
            stdout,
        };
        assert_eq!(w.read(), "ready");
        w
    }

    /// The next reply (panics if the worker ends first).
    fn read(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).unwrap();
            assert!(n > 0, "the worker ended: {:?}", self.child.try_wait());
            if let Some(r) = line.trim_end().strip_prefix(REPLY) {
                return r.to_string();
            }
        }
    }

    fn tell(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn ask(&mut self, cmd: &str) -> String {
        self.tell(cmd);
        self.read()
    }
}

/// An operation of a case; indices are taken modulo what there is to pick from.
#[derive(Clone, Debug)]
enum Op {
    Share(usize, u8),
    Clone(usize, usize),
    Drop(usize, usize),
    Ack(usize, usize),
    Send(usize, usize, usize),
    Recv(usize, usize, usize),
    Kill(usize),
    /// Killed inside a send of a handle (to a pipe) or a receive (of up to k from a pipe),
    /// at one of the ring's steps: 0 before the send's commit, 1 after it, 2 before the
    /// receive's commit, 3 after it.
    KillIn(usize, u8, usize, usize, usize),
}

/// The pause point and the command of a [`Op::KillIn`].
fn kill_in(which: u8, h: usize, p: usize, k: usize) -> (&'static str, String) {
    match which {
        0 => ("ring.send.slot_written", format!("send {h} {p}")),
        1 => ("ring.send.committed", format!("send {h} {p}")),
        2 => ("ring.recv.read", format!("recv {p} {k}")),
        _ => ("ring.recv.committed", format!("recv {p} {k}")),
    }
}

fn op() -> impl Strategy<Value = Op> {
    let w = 0..WORKERS;
    let h = 0..16usize;
    prop_oneof![
        4 => (w.clone(), 0..3u8).prop_map(|(w, s)| Op::Share(w, s)),
        2 => (w.clone(), h.clone()).prop_map(|(w, h)| Op::Clone(w, h)),
        1 => (w.clone(), h.clone()).prop_map(|(w, h)| Op::Drop(w, h)),
        1 => (w.clone(), h.clone()).prop_map(|(w, h)| Op::Ack(w, h)),
        4 => (w.clone(), h.clone(), 0..2usize).prop_map(|(w, h, p)| Op::Send(w, h, p)),
        4 => (w.clone(), 0..2usize, 1..4usize).prop_map(|(w, p, k)| Op::Recv(w, p, k)),
        1 => w.clone().prop_map(Op::Kill),
        2 => (w, 0..4u8, h, 0..2usize, 1..4usize)
            .prop_map(|(w, i, h, p, k)| Op::KillIn(w, i, h, p, k)),
    ]
}

/// A handle in the model: its value, and the ledger entry it shares with its clones.
#[derive(Clone, Copy, Debug)]
struct Handle {
    id: u64,
    entry: u64,
}

/// Who holds what.
#[derive(Default)]
struct Model {
    /// Each worker's handles, in the order the worker keeps them.
    held: Vec<Vec<Handle>>,
    /// Entries that record a value received unacknowledged from the pipe that redelivers.
    unacked: std::collections::BTreeSet<u64>,
    /// What each pipe holds (value ids, any order).
    pipes: [Vec<u64>; 2],
    /// Each value's shape.
    shapes: BTreeMap<u64, u8>,
    next_id: u64,
    next_entry: u64,
}

impl Model {
    fn entry(&mut self) -> u64 {
        self.next_entry += 1;
        self.next_entry
    }

    /// The values some worker or pipe holds.
    fn alive(&self) -> std::collections::BTreeSet<u64> {
        self.held
            .iter()
            .flatten()
            .map(|h| h.id)
            .chain(self.pipes.iter().flatten().copied())
            .collect()
    }
}

/// The pool's value objects now.
fn objects(pool: &Pool) -> usize {
    shmval::val::shared::live_blocks(pool)
        .unwrap()
        .iter()
        .filter(|(b, _)| b.object)
        .count()
}

/// Runs one case; panics on a difference from the model.
fn run_case(ops: &[Op]) {
    let name = TestName::new("model");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let servers: Vec<ServerSide> = PIPES
        .iter()
        .enumerate()
        .map(|(i, p)| {
            ServerSide::new(name.as_str(), *p, CAPACITY)
                .redeliver(i == 1)
                .start()
                .unwrap()
        })
        .collect();
    let pool = main.pool();
    // Objects per shape.
    let per_shape: Vec<usize> = (0..3u8)
        .map(|s| {
            let before = objects(pool);
            let v = pool.share(&shaped(0, s)).unwrap();
            let n = objects(pool) - before;
            drop(v);
            n
        })
        .collect();
    let base = settled(pool);
    let base_objects = objects(pool);
    let mut workers: Vec<Worker> = (0..WORKERS).map(|_| Worker::start(name.as_str())).collect();
    let mut m = Model {
        held: vec![Vec::new(); WORKERS],
        ..Model::default()
    };
    let expected_objects = |m: &Model| -> usize {
        base_objects
            + m.alive()
                .iter()
                .map(|id| per_shape[m.shapes[id] as usize])
                .sum::<usize>()
    };
    for (step, op) in ops.iter().enumerate() {
        let ctx = format!("step {step}: {op:?}");
        match *op {
            Op::Share(w, shape) => {
                m.next_id += 1;
                let id = m.next_id;
                m.shapes.insert(id, shape);
                assert_eq!(workers[w].ask(&format!("share {id} {shape}")), "ok");
                let entry = m.entry();
                m.held[w].push(Handle { id, entry });
            }
            Op::Clone(w, h) | Op::Drop(w, h) | Op::Ack(w, h) | Op::Send(w, h, _) => {
                if m.held[w].is_empty() {
                    continue;
                }
                let h = h % m.held[w].len();
                let handle = m.held[w][h];
                match *op {
                    Op::Clone(..) => {
                        assert_eq!(workers[w].ask(&format!("clone {h}")), "ok", "{ctx}");
                        m.held[w].push(handle);
                    }
                    Op::Drop(..) => {
                        assert_eq!(workers[w].ask(&format!("drop {h}")), "ok", "{ctx}");
                        m.held[w].remove(h);
                    }
                    Op::Ack(..) => {
                        assert_eq!(workers[w].ask(&format!("ack {h}")), "ok", "{ctx}");
                        m.unacked.remove(&handle.entry);
                    }
                    Op::Send(_, _, p) => {
                        assert_eq!(workers[w].ask(&format!("send {h} {p}")), "ok", "{ctx}");
                        m.held[w].remove(h);
                        m.pipes[p].push(handle.id);
                    }
                    _ => unreachable!(),
                }
            }
            Op::Recv(w, p, k) => {
                let r = workers[w].ask(&format!("recv {p} {k}"));
                let ids: Vec<u64> = r
                    .strip_prefix("got")
                    .unwrap_or_else(|| panic!("{ctx}: {r}"))
                    .split_whitespace()
                    .map(|s| s.parse().unwrap())
                    .collect();
                assert_eq!(ids.len(), k.min(m.pipes[p].len()), "{ctx}: {r}");
                for id in ids {
                    let at = m.pipes[p]
                        .iter()
                        .position(|&x| x == id)
                        .unwrap_or_else(|| panic!("{ctx}: {id} was not in pipe {p}"));
                    assert!(p == 1 || at == 0, "{ctx}: pipe 0 gives its oldest first");
                    m.pipes[p].remove(at);
                    let entry = m.entry();
                    if p == 1 {
                        m.unacked.insert(entry);
                    }
                    m.held[w].push(Handle { id, entry });
                }
            }
            Op::Kill(w) => {
                let dead = std::mem::replace(&mut workers[w], Worker::start(name.as_str()));
                dead.child.kill();
                died(w, &mut m);
                check_after_death(&ctx, &main, &servers, &m, expected_objects(&m));
            }
            Op::KillIn(w, which, h, p, k) => {
                let h = match which {
                    0 | 1 if m.held[w].is_empty() => continue,
                    0 | 1 => h % m.held[w].len(),
                    _ if m.pipes[p].is_empty() => continue,
                    _ => h,
                };
                let (point, cmd) = kill_in(which, h, p, k);
                assert_eq!(workers[w].ask(&format!("arm {point}")), "ok", "{ctx}");
                workers[w].tell(&cmd);
                let pid = workers[w].child.pid();
                let pipe = servers[p].pipe();
                assert!(
                    wait_until(LIMIT, || pipe.lock_owner().is_some_and(|o| {
                        std::path::Path::new(&format!("/proc/{pid}/task/{}", o.tid())).exists()
                    })),
                    "{ctx}: the worker never paused at {point}"
                );
                match which {
                    // The value is still the sender's, and dropped with the rest; but one
                    // received unacknowledged from the pipe that redelivers, sent alone (no
                    // clone shares its entry), goes back to that pipe.
                    0 => {
                        let handle = m.held[w].remove(h);
                        let alone = m.held[w].iter().all(|o| o.entry != handle.entry);
                        if alone && m.unacked.remove(&handle.entry) {
                            m.pipes[1].push(handle.id);
                        }
                    }
                    1 => {
                        let handle = m.held[w].remove(h);
                        m.pipes[p].push(handle.id);
                    }
                    // The oldest are taken: freed, or back in the pipe that redelivers.
                    3 if p == 0 => {
                        let n = k.min(m.pipes[0].len());
                        m.pipes[0].drain(..n);
                    }
                    _ => {}
                }
                let dead = std::mem::replace(&mut workers[w], Worker::start(name.as_str()));
                dead.child.kill();
                died(w, &mut m);
                check_after_death(&ctx, &main, &servers, &m, expected_objects(&m));
            }
        }
    }
    assert_eq!(objects(pool), expected_objects(&m), "after every step");
    // The pipes hold what the model says.
    for (p, s) in servers.iter().enumerate() {
        let mut got: Vec<u64> = std::iter::from_fn(|| s.pipe().try_dequeue().ok())
            .map(|v| id_of(&v))
            .collect();
        got.sort_unstable();
        let mut want = std::mem::take(&mut m.pipes[p]);
        want.sort_unstable();
        assert_eq!(got, want, "pipe {p} at the end");
    }
    // The workers drop everything and leave.
    for mut w in workers {
        assert_eq!(w.ask("quit"), "ok");
        w.child.wait_ok(LIMIT);
    }
    assert_eq!(objects(pool), base_objects, "every value is freed");
    assert_eq!(settled(pool), base, "the pool is back at its baseline");
    pool.verify().unwrap();
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn workers_that_die_leave_what_the_model_says(ops in prop::collection::vec(op(), 10..60)) {
        run_case(&ops);
    }
}

/// A worker dies holding a value it received from the pipe that redelivers, through a
/// clone, and one it acknowledged: the first goes back, the second is freed.
#[test]
fn a_dead_workers_unacknowledged_value_goes_back() {
    run_case(&[
        Op::Share(0, 2),
        Op::Share(0, 1),
        Op::Send(0, 0, 1),
        Op::Send(0, 0, 1),
        Op::Recv(1, 1, 2),
        Op::Clone(1, 0),
        Op::Ack(1, 1),
        Op::Kill(1),
        Op::Recv(2, 1, 3),
        Op::Kill(2),
        Op::Recv(0, 1, 1),
    ]);
}

/// A worker dies holding values received from the pipe that does not redeliver, shared
/// ones and clones: all are freed, and what it sent stays in the pipes.
#[test]
fn a_dead_workers_values_are_freed() {
    run_case(&[
        Op::Share(0, 2),
        Op::Share(1, 0),
        Op::Send(0, 0, 0),
        Op::Recv(1, 0, 1),
        Op::Clone(1, 1),
        Op::Share(1, 1),
        Op::Send(1, 2, 1),
        Op::Kill(1),
        Op::Kill(0),
    ]);
}

/// The model after worker `w` died: its handles go, but for values it received
/// unacknowledged from the pipe that redelivers, which go back there (once per entry).
fn died(w: usize, m: &mut Model) {
    let mut seen = std::collections::BTreeSet::new();
    for h in std::mem::take(&mut m.held[w]) {
        if m.unacked.contains(&h.entry) && seen.insert(h.entry) {
            m.pipes[1].push(h.id);
        }
    }
    m.unacked.retain(|e| !seen.contains(e));
}

/// Recovers until no dead worker is left, then checks the pipes' lengths and the pool's
/// value objects against the model.
fn check_after_death(
    ctx: &str,
    main: &ShmMain,
    servers: &[ServerSide],
    m: &Model,
    expected_objects: usize,
) {
    assert!(
        wait_until(LIMIT, || {
            main.recover();
            !main.region().has_dead_slots()
        }),
        "{ctx}: the dead worker is never reclaimed"
    );
    let r = shmval::ledger::recovered(main.region());
    assert_eq!(r.total.suspects, 0, "{ctx}: {r:?}");
    for (p, s) in servers.iter().enumerate() {
        assert!(s.pipe().lock_owner().is_none(), "{ctx}: pipe {p}'s lock");
        assert_eq!(
            s.pipe().len(),
            m.pipes[p].len() as u64,
            "{ctx}: pipe {p} after the death ({r:?})"
        );
    }
    assert_eq!(objects(main.pool()), expected_objects, "{ctx}: {r:?}");
}
