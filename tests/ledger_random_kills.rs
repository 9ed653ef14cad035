//! Random kills in a pipeline: a producer sends numbered packets into a pipe that
//! redelivers, a consumer receives them in batches and writes each down, holding its last
//! batch unacknowledged until the next one is written down. In each trial one of them, picked by a seeded generator, is killed
//! after a random delay (wherever it happens to be), recovery runs, and it is started
//! again. At the end: every packet the producer wrote down as sent was written down by a
//! consumer at least once, duplicated only where a death allows it, the pipe is empty and
//! the pool back at its baseline. The same runs over a one-to-one pipe, which cannot
//! redeliver: a restarted process takes its dead predecessor's side over, and a killed
//! consumer loses only what it had received and not yet written down (at most a batch).
//!
//! `SHMVAL_SLOW=1` runs 100 trials instead of 5; `SHMVAL_SEED` picks another seed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::kills::{packet, seq_of, settled, size_of};
use common::{role_entry, spawn_role, wait_until, ChildGuard, TestName};
use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::PoolExt;

const BYTES: u64 = 1 << 20;
/// Packets per trial.
const PACKETS: u64 = 1000;
/// Most packets a consumer receives at once.
const BATCH: usize = 4;
/// Limit of every wait: generous, for a loaded machine.
const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn child_role() {
    role_entry(&[("produce", produce), ("consume", consume)]);
}

fn client(region: &str) -> ClientSide {
    ClientSide::new(region, "a").timeout(LIMIT).start().unwrap()
}

/// Appends `seq` to the log at `path` (one write: a kill leaves whole lines).
fn log(path: &str, seq: u64) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(format!("{seq}\n").as_bytes()).unwrap();
}

fn read_log(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// args: region, log, first, end. Sends packets first..end, writing each down once its
/// send returned.
fn produce(args: &[String]) {
    let c = client(&args[0]);
    let (first, end): (u64, u64) = (args[2].parse().unwrap(), args[3].parse().unwrap());
    for seq in first..end {
        let v = c.pool().share(&packet(seq)).unwrap();
        c.pipe().enqueue(v, LIMIT).unwrap();
        log(&args[1], seq);
    }
}

/// args: region, log, stop. Receives batches and writes each packet down; acknowledges a
/// batch only once the next one is written down, holding it unacknowledged meanwhile;
/// ends when the pipe is empty and the stop file exists.
fn consume(args: &[String]) {
    let c = client(&args[0]);
    let mut held: Vec<shmval::ShmVal> = Vec::new();
    let mut batch = Vec::new();
    loop {
        match c
            .pipe()
            .dequeue_batch(&mut batch, BATCH, Duration::from_millis(20))
        {
            Ok(_) => {
                for v in &batch {
                    log(&args[1], seq_of(v));
                }
                for v in held.drain(..) {
                    v.acknowledge();
                }
                held.append(&mut batch);
            }
            Err(shmval::queue::RecvTimeoutError::Timeout) => {
                if Path::new(&args[2]).exists() {
                    for v in held.drain(..) {
                        v.acknowledge();
                    }
                    return;
                }
            }
            Err(e) => panic!("receive: {e:?}"),
        }
    }
}

/// A seeded xorshift: the trials repeat for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Files of a trial, removed when dropped.
struct Files(Vec<PathBuf>);

impl Drop for Files {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Victim {
    Producer,
    Consumer,
}

/// What one trial saw.
struct Trial {
    victim: Victim,
    /// Whether the victim was still running when killed.
    killed: bool,
    duplicates: usize,
    /// Packets a killed consumer had received and not written down (one-to-one pipe).
    lost: usize,
    suspects: u64,
    redelivered: u64,
    recover: Duration,
    took: Duration,
}

/// One trial; over a one-to-one pipe (`o2o`, which cannot redeliver) instead of a ring
/// that redelivers.
fn trial(i: u64, rng: &mut Rng, o2o: bool) -> Trial {
    let t0 = Instant::now();
    let name = TestName::new(&format!("random-{i}"));
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "a", 8)
        .redeliver(!o2o)
        .one_to_one(o2o)
        .start()
        .unwrap();
    let pool = main.pool();
    let leak = size_of(pool, &packet(0));
    let base = settled(pool);
    let blocks = |pool: &shmval::alloc::Pool| {
        pool.used_blocks()
            .unwrap()
            .into_iter()
            .map(|b| (b.offset.get(), b.size, b.object))
            .collect::<BTreeSet<_>>()
    };
    let base_blocks = blocks(pool);
    let dir = std::env::temp_dir();
    let kind = if o2o { "o2o" } else { "ring" };
    let tag = format!("shmval-random-{}-{kind}-{i}", std::process::id());
    let (plog, clog, stop) = (
        dir.join(format!("{tag}.produced")),
        dir.join(format!("{tag}.consumed")),
        dir.join(format!("{tag}.stop")),
    );
    let _files = Files(vec![plog.clone(), clog.clone(), stop.clone()]);
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let producer = |first: u64| {
        spawn_role(
            "produce",
            &[
                name.as_str(),
                &s(&plog),
                &first.to_string(),
                &PACKETS.to_string(),
            ],
        )
    };
    let consumer = || spawn_role("consume", &[name.as_str(), &s(&clog), &s(&stop)]);
    let mut prod = producer(0);
    let mut cons = consumer();
    let victim = if rng.below(2) == 0 {
        Victim::Producer
    } else {
        Victim::Consumer
    };
    // The random moment: anywhere from before the victim attaches to after it is done.
    let delay = Duration::from_micros(rng.below(100_000));
    std::thread::sleep(delay);
    let target: &mut ChildGuard = match victim {
        Victim::Producer => &mut prod,
        Victim::Consumer => &mut cons,
    };
    let killed = target.try_wait().is_none();
    if killed {
        target.signal(nix::sys::signal::Signal::SIGKILL);
    }
    let status = loop {
        if let Some(st) = target.try_wait() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    if !killed {
        assert!(status.success(), "the {victim:?} failed: {status}");
    }
    // Started again at once: a producer from the first packet it did not write down.
    let resumed_at = read_log(&plog).last().map_or(0, |s| s + 1);
    match victim {
        Victim::Producer if killed => prod = producer(resumed_at),
        Victim::Consumer if killed => cons = consumer(),
        _ => {}
    }
    // Recovery gives back what it can now; what waits on a lock a live process holds, or
    // on room in the pipe to redeliver into, is given back on a later call.
    let r0 = Instant::now();
    assert!(
        wait_until(LIMIT, || {
            main.recover();
            !main.region().has_dead_slots()
        }),
        "trial {i}: the killed {victim:?} is never reclaimed: {:?}",
        main.region().slots()
    );
    let recover = r0.elapsed();
    prod.wait_ok(LIMIT);
    let produced = read_log(&plog);
    assert_eq!(
        produced.iter().copied().collect::<BTreeSet<_>>(),
        (0..PACKETS).collect(),
        "the producer wrote every packet down"
    );
    if o2o {
        // Nothing comes back: the consumer is done once the pipe is empty.
        assert!(
            wait_until(LIMIT, || server.pipe().is_empty()),
            "trial {i}: the consumer never emptied the pipe: {:?}",
            server.pipe().stats()
        );
    } else {
        assert!(
            wait_until(LIMIT, || read_log(&clog)
                .into_iter()
                .collect::<BTreeSet<_>>()
                .len()
                == PACKETS as usize),
            "trial {i} ({victim:?} killed: {killed}): the consumer never got every packet: {:?}",
            (0..PACKETS)
                .filter(|s| !read_log(&clog).contains(s))
                .collect::<Vec<_>>()
        );
    }
    std::fs::write(&stop, b"").unwrap();
    cons.wait_ok(LIMIT);
    // Over a one-to-one pipe a killed consumer loses what it had received and not yet
    // written down (at most a batch); nothing else is lost.
    let missing: Vec<u64> = {
        let got: BTreeSet<u64> = read_log(&clog).into_iter().collect();
        (0..PACKETS).filter(|s| !got.contains(s)).collect()
    };
    let may_lose = if o2o && victim == Victim::Consumer && killed {
        BATCH
    } else {
        0
    };
    assert!(
        missing.len() <= may_lose,
        "trial {i} ({victim:?} killed: {killed}): packets lost: {missing:?}"
    );
    let rec = main.recover();
    let r = rec.total.suspects;
    assert!(server.pipe().is_empty(), "{:?}", server.pipe().stats());
    // Duplicates: where a death allows them. A producer killed between a send and writing
    // it down sends that packet again; a consumer killed holding packets it wrote down but
    // did not acknowledge yet (its last batch, and the one before while it acknowledges
    // it) gets them back.
    let mut count = BTreeMap::new();
    for s in read_log(&clog) {
        *count.entry(s).or_insert(0usize) += 1;
    }
    let dups: Vec<_> = count.iter().filter(|(_, &n)| n > 1).collect();
    let duplicates: usize = dups.iter().map(|(_, &n)| n - 1).sum();
    match (victim, killed) {
        (Victim::Producer, true) => assert!(
            dups.iter().all(|(&s, &n)| s == resumed_at && n == 2),
            "trial {i}: only the packet after the last written down may come twice: {dups:?}"
        ),
        (Victim::Consumer, true) if o2o => assert!(
            dups.is_empty(),
            "trial {i}: nothing is delivered again over a one-to-one pipe: {dups:?}"
        ),
        (Victim::Consumer, true) => assert!(
            duplicates <= 2 * BATCH && dups.iter().all(|(_, &n)| n == 2),
            "trial {i}: at most the two batches it held unacknowledged come twice: {dups:?}"
        ),
        _ => assert!(dups.is_empty(), "trial {i}: exactly once: {dups:?}"),
    }
    // The pool: at its baseline, or (if a death fell where a count's change cannot be
    // known) at most a packet's objects per suspect more, never less. Blocks, not bytes:
    // the allocator may hand out a block a little larger than asked.
    let used = settled(pool);
    let extra: Vec<_> = blocks(pool).difference(&base_blocks).copied().collect();
    assert!(
        used.1 >= base.1
            && used.1 - base.1 <= leak.1 * r
            && extra.iter().all(|b| b.2)
            && (r > 0 || used == base),
        "trial {i} ({victim:?} killed after {delay:?}: {killed}): the pool is at {used:?}, \
         its baseline {base:?}, blocks more {extra:?} {:?} ({rec:?})",
        shmval::val::shared::live_blocks(pool)
            .unwrap()
            .into_iter()
            .filter(|(b, _)| extra.iter().any(|e| e.0 == b.offset.get()))
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
    );
    pool.verify().unwrap();
    Trial {
        victim,
        killed,
        duplicates,
        lost: missing.len(),
        suspects: r,
        redelivered: rec.total.redelivered,
        recover,
        took: t0.elapsed(),
    }
}

#[test]
fn a_pipeline_survives_random_kills() {
    random_kills(false);
}

/// The same over a one-to-one pipe: a restarted process takes its dead predecessor's side
/// over, wherever the kill left it.
#[test]
fn a_one_to_one_pipeline_survives_random_kills() {
    random_kills(true);
}

fn random_kills(o2o: bool) {
    let slow = std::env::var("SHMVAL_SLOW").is_ok_and(|v| v == "1");
    let trials = if slow { 100 } else { 5 };
    let seed = std::env::var("SHMVAL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut rng = Rng(seed | 1);
    let mut seen = Vec::new();
    for i in 0..trials {
        seen.push(trial(i, &mut rng, o2o));
    }
    let killed: Vec<_> = seen.iter().filter(|t| t.killed).collect();
    let by = |v: Victim| killed.iter().filter(|t| t.victim == v).count();
    let mut took: Vec<_> = seen.iter().map(|t| t.took).collect();
    took.sort();
    let mut rec: Vec<_> = killed.iter().map(|t| t.recover).collect();
    rec.sort();
    eprintln!(
        "random kills (seed {seed:#x}{}): {} trials, {} kills survived ({} producers, {} consumers), \
         {} packets redelivered, {} duplicates, {} lost, {} suspects; trial median {:?} max {:?}; \
         recovery median {:?} max {:?}",
        if o2o { ", one-to-one pipe" } else { "" },
        seen.len(),
        killed.len(),
        by(Victim::Producer),
        by(Victim::Consumer),
        seen.iter().map(|t| t.redelivered).sum::<u64>(),
        seen.iter().map(|t| t.duplicates).sum::<usize>(),
        seen.iter().map(|t| t.lost).sum::<usize>(),
        seen.iter().map(|t| t.suspects).sum::<u64>(),
        took[took.len() / 2],
        took[took.len() - 1],
        rec.get(rec.len() / 2).copied().unwrap_or_default(),
        rec.last().copied().unwrap_or_default(),
    );
}
