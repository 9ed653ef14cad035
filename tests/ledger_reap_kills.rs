//! A survivor killed while it gives back what a dead consumer held (claiming its slot,
//! about to resolve an entry, having marked a value it drops, a packet it sends back, a
//! pipe handle it gives up), and a second survivor that attaches and finishes the job:
//! both dead processes reclaimed, the pool at its baseline (but for the one reference a
//! death inside a count change leaves counted), the pipe holding what it should.

mod common;

use std::time::Duration;

use common::kills::{
    act, check_pipe, fill, packet, plus, settled, size_of, spawn_holder, works_on,
};
use common::{role_entry, spawn_paused, spawn_role, TestName};
use shmval::sides::{ServerSide, ShmMain};

const BYTES: u64 = 1 << 20;

#[test]
fn child_role() {
    role_entry(&[("act", act)]);
}

struct Case {
    /// Where the first survivor is killed.
    point: &'static str,
    redeliver: bool,
    /// The dead consumer holds this many packets (all there were)...
    held: u64,
    /// ...of which it acknowledged these (as `act`'s `hold` takes them).
    ack: &'static str,
    /// References left counted: each leaves one packet allocated.
    suspects: u64,
    /// Pipe references left counted.
    pipe_refs: u64,
    /// What the pipe holds at the end (sorted).
    after: &'static [u64],
}

fn run(tag: &str, c: &Case) {
    let name = TestName::new(tag);
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 8)
        .redeliver(c.redeliver)
        .start()
        .unwrap();
    let (pool, pipe) = (main.pool(), server.pipe());
    let leak = size_of(pool, &packet(0));
    let base = settled(pool);
    let before = pipe.stats().unwrap();
    let refs = pipe.ref_count();
    fill(pool, pipe, 0..c.held);
    let victim = spawn_holder(name.as_str(), pipe, c.held, c.ack);
    victim.kill();
    // The first survivor attaches, which gives back what the dead held: it is killed in
    // the middle.
    let reaper = spawn_paused("act", &[name.as_str(), "p", "reap", c.point], c.point);
    reaper.kill();
    // A second one attaches and leaves: it finishes.
    spawn_role("act", &[name.as_str(), "p", "visit", "-"]).wait_ok(Duration::from_secs(60));
    let r = shmval::ledger::recovered(main.region());
    assert_eq!(r.processes, 2, "both dead are reclaimed: {r:?}");
    assert_eq!(r.total.suspects, c.suspects + c.pipe_refs, "{r:?}");
    assert!(
        main.region().slots().iter().all(|s| s.own),
        "no slot but this process's is left: {:?}",
        main.region().slots()
    );
    check_pipe(&main, &server, c.after, (before, refs + c.pipe_refs));
    assert_eq!(
        settled(pool),
        plus(base, (leak.0 * c.suspects, leak.1 * c.suspects)),
        "the pool is back at its baseline, but for what the suspects leave ({r:?})"
    );
    pool.verify().unwrap();
    works_on(&main, &server);
}

macro_rules! cases {
    ($($name:ident: $case:expr;)*) => {$(
        #[test]
        fn $name() {
            run(stringify!($name), &$case);
        }
    )*};
}

const NONE: Case = Case {
    point: "reap.entry",
    redeliver: false,
    held: 2,
    ack: "0",
    suspects: 0,
    pipe_refs: 0,
    after: &[],
};

cases! {
    // Killed before it changed anything: the second survivor does it all.
    reclaim_claimed: Case { point: "registry.reclaim.claimed", ..NONE };
    reclaim_claimed_redeliver: Case {
        point: "registry.reclaim.claimed", redeliver: true, after: &[1], ..NONE
    };
    entry: Case { point: "reap.entry", ..NONE };
    entry_redeliver: Case { point: "reap.entry", redeliver: true, after: &[1], ..NONE };
    // Killed having marked a dead's value released, before the decrement: unknown whether
    // it happened, so the packet stays allocated.
    value_marked: Case { point: "reap.value.marked", held: 1, ack: "-", suspects: 1, ..NONE };
    // Killed having marked a packet it sends back into the pipe, before the send: the
    // packet, never acknowledged, still goes back.
    redeliver_marked: Case {
        point: "reap.redeliver.marked", redeliver: true, held: 1, ack: "-", after: &[0], ..NONE
    };
    // Killed inside that send: before its commit, after it, after its record.
    redeliver_slot_written: Case {
        point: "ring.send.slot_written", redeliver: true, held: 1, ack: "-", after: &[0], ..NONE
    };
    redeliver_committed: Case {
        point: "ring.send.committed", redeliver: true, held: 1, ack: "-", after: &[0], ..NONE
    };
    redeliver_recorded: Case {
        point: "ring.send.recorded", redeliver: true, held: 1, ack: "-", after: &[0], ..NONE
    };
    // Killed giving up the dead's pipe handle: unknown whether the pipe's count went
    // down, so it stays counted (the pipe outlives its last handle).
    pipe_marked: Case { point: "reap.pipe.marked", pipe_refs: 1, ..NONE };
}

/// A producer or consumer killed inside its send or receive, holding the pipe's lock, then
/// the first survivor killed before it resolves anything: the second finds the operation
/// where the first left it and resolves it as it would have.
#[test]
fn a_dead_operation_survives_its_first_reclaimer() {
    for (action, victim_point, redeliver, queued, after) in [
        ("send", "ring.send.slot_written", false, 0, &[][..]),
        ("send", "ring.send.committed", false, 0, &[100][..]),
        ("recv", "ring.recv.read", true, 1, &[0][..]),
        ("recv", "ring.recv.committed", false, 1, &[][..]),
        ("recv", "ring.recv.committed", true, 1, &[0][..]),
        ("batch", "ring.recv.recorded", true, 2, &[0, 1][..]),
    ] {
        let ctx = format!("{action} at {victim_point} (redeliver: {redeliver})");
        let name = TestName::new("dead-op");
        let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
        let server = ServerSide::new(name.as_str(), "p", 8)
            .redeliver(redeliver)
            .start()
            .unwrap();
        let (pool, pipe) = (main.pool(), server.pipe());
        let base = settled(pool);
        let before = pipe.stats().unwrap();
        let refs = pipe.ref_count();
        fill(pool, pipe, 0..queued);
        let victim = spawn_paused(
            "act",
            &[name.as_str(), "p", action, victim_point],
            victim_point,
        );
        victim.kill();
        let reaper = spawn_paused(
            "act",
            &[name.as_str(), "p", "reap", "reap.entry"],
            "reap.entry",
        );
        reaper.kill();
        spawn_role("act", &[name.as_str(), "p", "visit", "-"]).wait_ok(Duration::from_secs(60));
        let r = shmval::ledger::recovered(main.region());
        assert_eq!((r.processes, r.total.suspects), (2, 0), "{ctx}: {r:?}");
        check_pipe(&main, &server, after, (before, refs));
        assert_eq!(settled(pool), base, "{ctx}: {r:?}");
        pool.verify().unwrap();
        works_on(&main, &server);
    }
}
