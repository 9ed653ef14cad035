//! A process killed at each pause point of the ledger's protocol (registering, growing its
//! ledger, making and dropping references, sending, receiving one or a batch, and a
//! survivor giving back another dead process's holdings), and what the survivor finds
//! after recovery: the pool at its baseline (or, at the few steps where a death leaves it
//! unknown whether a count changed, the one value left allocated and counted as a
//! suspect, never freed twice), the pipe holding exactly what it should (a pipe that
//! redelivers gets back what the dead receiver held unacknowledged), and the pipe working
//! on.

mod common;

use common::kills::{
    act, check_pipe, drain, fill, packet, plus, settled, size_of, spawn_holder, works_on,
};
use std::time::Duration;

use common::{role_entry, spawn_paused, spawn_role, wait_until, TestName};
use shmval::sides::{ServerSide, ShmMain};
use shmval::{val, PoolExt, Val};

const BYTES: u64 = 1 << 20;

#[test]
fn child_role() {
    role_entry(&[("act", act)]);
}

/// One kill: what the child does and where it dies, and what the survivor must find.
struct Case {
    /// The child's action and its own arguments (see `common::kills::act`).
    action: &'static [&'static str],
    /// Where it is killed; "-": while it waits in a receive.
    point: &'static str,
    redeliver: bool,
    /// The pipe is one-to-one (a lane): the survivor's side neither sends nor receives
    /// while the child does.
    one_to_one: bool,
    /// Packets 0.. in the pipe before the child starts.
    queued: u64,
    /// References left counted after recovery, each a value left allocated.
    suspects: u64,
    /// What the pipe holds after recovery (sorted).
    after: &'static [u64],
    /// The value each suspect leaves allocated.
    leak: Option<fn() -> Val>,
}

/// Runs one kill and checks what the survivor finds.
fn run(tag: &str, c: &Case) {
    let name = TestName::new(tag);
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 8)
        .redeliver(c.redeliver)
        .one_to_one(c.one_to_one)
        .sends(!c.one_to_one)
        .start()
        .unwrap();
    let (pool, pipe) = (main.pool(), server.pipe());
    let leak = c.leak.map_or((0, 0), |f| size_of(pool, &f()));
    let base = settled(pool);
    let before = pipe.stats().unwrap();
    let refs = pipe.ref_count();
    // Through a handle of its own, which leaves a lane's sending side when dropped; kept
    // (a sender, so that the child's receives wait) until the child is dead, unless the
    // child sends.
    let filler = pipe.clone();
    fill(pool, &filler, 0..c.queued);
    let filler = (!c.action[0].starts_with("send")).then_some(filler);
    let mut args = vec![name.as_str(), "p", c.action[0], c.point];
    args.extend_from_slice(&c.action[1..]);
    let child = if c.point == "-" && c.action[0] == "send-wait" {
        let child = spawn_role("act", &[name.as_str(), "p", "send-wait", "-"]);
        assert!(
            wait_until(Duration::from_secs(60), || pipe
                .stats()
                .unwrap()
                .senders_waiting
                > 0),
            "the child never waited to send: {:?}",
            pipe.stats()
        );
        child
    } else if c.point == "-" {
        spawn_holder(
            name.as_str(),
            pipe,
            c.action[1].parse().unwrap(),
            c.action[2],
        )
    } else {
        let mut args = vec![name.as_str(), "p", c.action[0], c.point];
        args.extend_from_slice(&c.action[1..]);
        spawn_paused("act", &args, c.point)
    };
    child.kill();
    let r = main.recover();
    drop(filler);
    assert_eq!(r.processes, 1, "{r:?}");
    assert_eq!(r.total.suspects, c.suspects, "{r:?}");
    check_pipe(&main, &server, c.after, (before, refs));
    assert_eq!(
        settled(pool),
        plus(base, (leak.0 * c.suspects, leak.1 * c.suspects)),
        "the pool is back at its baseline, but for what the suspects leave ({r:?})"
    );
    pool.verify().unwrap();
    works_on(&main, &server);
}

fn inner() -> Val {
    val!([1, 2, 3])
}

fn packet1() -> Val {
    packet(1)
}

/// The child of the value `drop-nested` drops.
fn packet_xs() -> Val {
    val!([1.5, 2.5])
}

fn packet100() -> Val {
    packet(100)
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
    action: &["recv"],
    point: "-",
    redeliver: false,
    one_to_one: false,
    queued: 0,
    suspects: 0,
    after: &[],
    leak: None,
};

cases! {
    // Registering and the ledger's first chunk: nothing held yet.
    attach_registry_claim_locked: Case { action: &["attach"], point: "registry.claim.locked", ..NONE };
    attach_ledger_chunk_listed: Case { action: &["attach"], point: "ledger.chunk.listed", ..NONE };
    // The last handle of a value, marked releasing: the survivor cannot know whether the
    // count went down, so the value stays allocated: one suspect, never a double free.
    drop_release_marked: Case {
        action: &["drop"], point: "val.release.marked", suspects: 1, leak: Some(packet1), ..NONE
    };
    // Down to 0 and marked freeing: the survivor frees the graph, from wherever the walk
    // stopped. Only a child's decrement in flight is uncertain: that child stays.
    drop_release_freeing: Case { action: &["drop"], point: "val.release.freeing", ..NONE };
    drop_free_released: Case {
        action: &["drop-nested"], point: "val.free.released", suspects: 1, leak: Some(packet_xs), ..NONE
    };
    drop_free_zero: Case { action: &["drop"], point: "val.free.zero", ..NONE };
    drop_free_recorded: Case { action: &["drop"], point: "alloc.free_recorded", ..NONE };
    drop_free_data: Case { action: &["drop-big"], point: "val.free.data", ..NONE };
    // A new reference to a value inside another: counted, not yet recorded as held. The
    // outer value is given back; the inner one keeps the uncertain reference.
    to_handle_acquire_counted: Case {
        action: &["to-handle"], point: "val.acquire.counted", suspects: 1, leak: Some(inner), ..NONE
    };
    // A value moving into a container: before the container holds it, the reference is
    // the moving entry's; after, the container's. Both are given back.
    push_move_marked: Case { action: &["push"], point: "val.move.marked", ..NONE };
    push_move_stored: Case { action: &["push"], point: "val.move.stored", ..NONE };
    push_clone_move_marked: Case { action: &["push-clone"], point: "val.move.marked", ..NONE };
    push_clone_move_stored: Case { action: &["push-clone"], point: "val.move.stored", ..NONE };
    // A send: before its commit the value is the sender's and is given back; after it, in
    // the pipe.
    send_slot_written: Case { action: &["send"], point: "ring.send.slot_written", ..NONE };
    send_committed: Case { action: &["send"], point: "ring.send.committed", after: &[100], ..NONE };
    send_recorded: Case { action: &["send"], point: "ring.send.recorded", after: &[100], ..NONE };
    send_slot_written_redeliver: Case {
        action: &["send"], point: "ring.send.slot_written", redeliver: true, ..NONE
    };
    send_committed_redeliver: Case {
        action: &["send"], point: "ring.send.committed", redeliver: true, after: &[100], ..NONE
    };
    // A send of one of two clones: the sent one first gets a reference of its own. Killed
    // once that is counted but not yet recorded, the count stays (one suspect, the
    // packet left allocated).
    send_clone_acquire_counted: Case {
        action: &["send-clone"], point: "val.acquire.counted", suspects: 1, leak: Some(packet100), ..NONE
    };
    send_clone_committed: Case {
        action: &["send-clone"], point: "ring.send.committed", after: &[100], ..NONE
    };
    // A sender waiting for room in a full pipe: its value and its count as a waiter are
    // given back.
    send_waiting: Case { action: &["send-wait"], queued: 8, after: &[0, 1, 2, 3, 4, 5, 6, 7], ..NONE };
    // A receive: before its commit the packet stays in the pipe; after it, the dead
    // receiver's, freed (or back in a pipe that redelivers).
    recv_read: Case { action: &["recv"], point: "ring.recv.read", queued: 2, after: &[0, 1], ..NONE };
    recv_committed: Case { action: &["recv"], point: "ring.recv.committed", queued: 2, after: &[1], ..NONE };
    recv_recorded: Case { action: &["recv"], point: "ring.recv.recorded", queued: 2, after: &[1], ..NONE };
    recv_read_redeliver: Case {
        action: &["recv"], point: "ring.recv.read", redeliver: true, queued: 2, after: &[0, 1], ..NONE
    };
    recv_committed_redeliver: Case {
        action: &["recv"], point: "ring.recv.committed", redeliver: true, queued: 2, after: &[0, 1], ..NONE
    };
    recv_recorded_redeliver: Case {
        action: &["recv"], point: "ring.recv.recorded", redeliver: true, queued: 2, after: &[0, 1], ..NONE
    };
    // A batch of three out of four: the same, for each packet of the batch.
    batch_read: Case {
        action: &["batch"], point: "ring.recv.read", queued: 4, after: &[0, 1, 2, 3], ..NONE
    };
    batch_committed: Case { action: &["batch"], point: "ring.recv.committed", queued: 4, after: &[3], ..NONE };
    batch_recorded: Case { action: &["batch"], point: "ring.recv.recorded", queued: 4, after: &[3], ..NONE };
    batch_read_redeliver: Case {
        action: &["batch"], point: "ring.recv.read", redeliver: true, queued: 4, after: &[0, 1, 2, 3], ..NONE
    };
    batch_committed_redeliver: Case {
        action: &["batch"], point: "ring.recv.committed", redeliver: true, queued: 4, after: &[0, 1, 2, 3], ..NONE
    };
    batch_recorded_redeliver: Case {
        action: &["batch"], point: "ring.recv.recorded", redeliver: true, queued: 4, after: &[0, 1, 2, 3], ..NONE
    };
    // A consumer holding three packets, the first and last acknowledged, killed in its next
    // receive: waiting, before its commit, after it. What it acknowledged is done with;
    // the rest comes back to a pipe that redelivers.
    hold_waiting: Case { action: &["hold", "3", "0,2"], queued: 3, ..NONE };
    hold_read: Case { action: &["hold", "3", "0,2"], point: "ring.recv.read", queued: 4, after: &[3], ..NONE };
    hold_committed: Case { action: &["hold", "3", "0,2"], point: "ring.recv.committed", queued: 4, ..NONE };
    hold_waiting_redeliver: Case {
        action: &["hold", "3", "0,2"], redeliver: true, queued: 3, after: &[1], ..NONE
    };
    hold_read_redeliver: Case {
        action: &["hold", "3", "0,2"], point: "ring.recv.read", redeliver: true, queued: 4, after: &[1, 3], ..NONE
    };
    hold_committed_redeliver: Case {
        action: &["hold", "3", "0,2"], point: "ring.recv.committed", redeliver: true, queued: 4, after: &[1, 3], ..NONE
    };
}

/// The kills of a one-to-one pipe's sender and receiver: a lane, with no lock; its side
/// is taken back by recovery, its operation completed or undone by its stamps and counts.
const LANE: Case = Case {
    one_to_one: true,
    ..NONE
};

cases! {
    lane_send_slot_written: Case { action: &["send"], point: "lane.send.slot_written", ..LANE };
    lane_send_committed: Case { action: &["send"], point: "lane.send.committed", after: &[100], ..LANE };
    lane_send_recorded: Case { action: &["send"], point: "lane.send.recorded", after: &[100], ..LANE };
    lane_send_clone_committed: Case {
        action: &["send-clone"], point: "lane.send.committed", after: &[100], ..LANE
    };
    lane_send_waiting: Case { action: &["send-wait"], queued: 8, after: &[0, 1, 2, 3, 4, 5, 6, 7], ..LANE };
    lane_recv_read: Case { action: &["recv"], point: "lane.recv.read", queued: 2, after: &[0, 1], ..LANE };
    lane_recv_committed: Case { action: &["recv"], point: "lane.recv.committed", queued: 2, after: &[1], ..LANE };
    lane_recv_recorded: Case { action: &["recv"], point: "lane.recv.recorded", queued: 2, after: &[1], ..LANE };
    lane_batch_read: Case {
        action: &["batch"], point: "lane.recv.read", queued: 4, after: &[0, 1, 2, 3], ..LANE
    };
    lane_batch_committed: Case { action: &["batch"], point: "lane.recv.committed", queued: 4, after: &[3], ..LANE };
    lane_batch_recorded: Case { action: &["batch"], point: "lane.recv.recorded", queued: 4, after: &[3], ..LANE };
    lane_hold_waiting: Case { action: &["hold", "3", "0,2"], queued: 3, ..LANE };
    lane_hold_read: Case { action: &["hold", "3", "0,2"], point: "lane.recv.read", queued: 4, after: &[3], ..LANE };
    lane_hold_committed: Case { action: &["hold", "3", "0,2"], point: "lane.recv.committed", queued: 4, ..LANE };
}

/// A receiver killed after its receive committed and was recorded, before it cleared the
/// ring's operation word, leaves the pipe's lock with the word naming its ledger entry.
/// Recovery must resolve that word before it frees the dead's ledger: otherwise the next
/// lock's repair writes into whatever the pool made of the freed chunk since. Here the
/// pool's free space is filled with arrays of 6 (the number of a receive in progress)
/// before the pipe is locked again: none may change.
#[test]
fn a_late_repair_never_writes_into_a_dead_receivers_freed_ledger() {
    let name = TestName::new("late-repair");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 8).start().unwrap();
    let (pool, pipe) = (main.pool(), server.pipe());
    // Entries enough for every array below, so that this process's ledger does not grow
    // into the freed chunk.
    let many: Vec<_> = (0..600u64)
        .map(|i| pool.share(&Val::from(i)).unwrap())
        .collect();
    drop(many);
    let base = settled(pool);
    fill(pool, pipe, [0]);
    let child = spawn_paused(
        "act",
        &[name.as_str(), "p", "recv", "ring.recv.recorded"],
        "ring.recv.recorded",
    );
    child.kill();
    assert_eq!(main.recover().processes, 1);
    assert_eq!(settled(pool), base);
    let next = pool.share(&packet(5)).unwrap();
    let sixes = Val::Array(vec![6u64; 120].into());
    let mut arrays = Vec::new();
    while let Ok(a) = pool.share(&sixes) {
        arrays.push(a);
    }
    assert!(arrays.len() > 100, "{} arrays", arrays.len());
    // The next lock of the pipe.
    pipe.try_enqueue(next).unwrap();
    for a in &arrays {
        let words = a.as_slice::<u64>().unwrap();
        assert!(
            words.iter().all(|&w| w == 6),
            "a repair wrote into a live value: {words:?}"
        );
    }
    drop(arrays);
    assert_eq!(drain(pipe), [5]);
    assert_eq!(settled(pool), base);
    pool.verify().unwrap();
}

/// A process forwarding a packet it received unacknowledged from a pipe that redelivers
/// into another pipe, killed before that send commits: the packet was still its own, and
/// goes back where it came from (or on where it was going), never lost.
#[test]
fn a_forwarder_killed_before_its_send_commits_loses_nothing() {
    let name = TestName::new("forward");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let from = ServerSide::new(name.as_str(), "p", 8)
        .redeliver(true)
        .start()
        .unwrap();
    let to = ServerSide::new(name.as_str(), "q", 8).start().unwrap();
    let pool = main.pool();
    let base = settled(pool);
    fill(pool, from.pipe(), [0]);
    let child = spawn_paused(
        "act",
        &[name.as_str(), "p", "forward", "ring.send.slot_written", "q"],
        "ring.send.slot_written",
    );
    child.kill();
    let r = main.recover();
    assert_eq!(r.processes, 1, "{r:?}");
    let mut got = drain(from.pipe());
    got.extend(drain(to.pipe()));
    assert_eq!(got, [0], "the packet is back in p or on in q ({r:?})");
    assert_eq!(settled(pool), base);
    pool.verify().unwrap();
}

/// A process killed while it shares a value, once the first of its objects is made: what
/// it made is nobody's, and is given back.
#[test]
fn a_value_half_built_is_given_back() {
    run(
        "half-built",
        &Case {
            action: &["share"],
            point: "val.build.allocated",
            ..NONE
        },
    );
}

/// A fan-out sending a packet to two pipes, killed at each step of the first send: the
/// packet is in the first pipe once that send committed, in neither before; never in the
/// second; the pool at its baseline but for a suspect's packet.
#[test]
fn a_fanout_killed_in_its_first_send() {
    for (point, first, suspects) in [
        ("val.acquire.counted", &[][..], 1),
        ("ring.send.slot_written", &[][..], 0),
        ("ring.send.committed", &[100][..], 0),
        ("ring.send.recorded", &[100][..], 0),
    ] {
        let name = TestName::new("fanout");
        let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
        let servers: Vec<ServerSide> = ["p", "a", "b"]
            .iter()
            .map(|p| ServerSide::new(name.as_str(), *p, 8).start().unwrap())
            .collect();
        let pool = main.pool();
        let leak = size_of(pool, &packet(100));
        let base = settled(pool);
        let child = spawn_paused(
            "act",
            &[name.as_str(), "p", "fanout", point, "a", "b"],
            point,
        );
        child.kill();
        let r = main.recover();
        assert_eq!(
            (r.processes, r.total.suspects),
            (1, suspects),
            "{point}: {r:?}"
        );
        assert_eq!(drain(servers[1].pipe()), first, "{point}");
        assert_eq!(drain(servers[2].pipe()), [0u64; 0], "{point}");
        assert!(servers.iter().all(|s| s.pipe().lock_owner().is_none()));
        assert_eq!(
            settled(pool),
            plus(base, (leak.0 * suspects, leak.1 * suspects)),
            "{point}: {r:?}"
        );
        pool.verify().unwrap();
    }
}

/// A process killed while its ledger grows a chunk to record a value it just shared
/// (holding others): the held ones and the new one are given back.
#[test]
fn a_value_recorded_while_the_ledger_grows_is_given_back() {
    run(
        "growing",
        &Case {
            action: &["share-many"],
            point: "ledger.chunk.listed",
            ..NONE
        },
    );
}
