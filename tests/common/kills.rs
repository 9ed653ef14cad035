//! Processes killed in the middle of the ledger's steps: the role a child plays (an
//! operation on a pipe or a value, paused at a named point), and the pool's accounting
//! the survivor checks afterwards.

use std::time::Duration;

use shmval::alloc::Pool;
use shmval::queue::Pipe;
use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::{val, PoolExt, ShmVal, Val};

use super::held::in_use;
use super::{spawn_role, wait_until};

/// A packet of several blocks, told apart by `seq`.
pub fn packet(seq: u64) -> Val {
    val!({"seq": seq, "xs": [1.5, 2.5], "name": "a packet of several blocks"})
}

/// The `seq` of a packet.
pub fn seq_of(v: &ShmVal) -> u64 {
    v.field("seq").unwrap().as_i64().unwrap() as u64
}

/// The pool's use once this process's ledger has room and the pool's deferred frees (a
/// dead process's ledger chunks) are drained: one allocation does both.
pub fn settled(pool: &Pool) -> (u64, u64) {
    drop(pool.share(&Val::from(0u64)).unwrap());
    in_use(pool)
}

/// The bytes and blocks `v` takes once shared.
pub fn size_of(pool: &Pool, v: &Val) -> (u64, u64) {
    let before = settled(pool);
    let h = pool.share(v).unwrap();
    let with = in_use(pool);
    drop(h);
    assert_eq!(settled(pool), before);
    (with.0 - before.0, with.1 - before.1)
}

/// Adds two uses.
pub fn plus(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    (a.0 + b.0, a.1 + b.1)
}

/// Takes everything in the pipe now, returning the packets' `seq`s in order.
pub fn drain(pipe: &Pipe) -> Vec<u64> {
    let mut out = Vec::new();
    while let Ok(v) = pipe.try_dequeue() {
        out.push(seq_of(&v));
    }
    out
}

/// Sends packets `seqs` into the pipe.
pub fn fill(pool: &Pool, pipe: &Pipe, seqs: impl IntoIterator<Item = u64>) {
    for s in seqs {
        pipe.try_enqueue(pool.share(&packet(s)).unwrap()).unwrap();
    }
}

/// The child's side of the pipe.
fn client(args: &[String]) -> ClientSide {
    ClientSide::new(args[0].clone(), args[1].clone())
        .timeout(Duration::from_secs(30))
        .start()
        .unwrap()
}

/// Arms `point` unless it is "-".
fn arm(point: &str) {
    if point != "-" {
        shmval::fault::arm(point);
    }
}

/// The role `act`: args region, pipe, action, point, then the action's own. Each action
/// arms `point` right before the step that reaches it, so nothing earlier pauses there;
/// a child that gets past it panics (the test sees it end instead of pausing).
///
/// - `attach`: arms, then attaches (registry and first ledger chunk).
/// - `drop`: shares a packet, clones and drops the clone, arms, drops the last handle.
/// - `to-handle`: shares `{"inner": [1, 2, 3]}`, arms, makes a handle of the inner list.
/// - `push`: shares a list and a packet, arms, moves the packet into the list;
///   `push-clone` moves a clone of it (a reference of its own is made first).
/// - `share`: arms, shares a packet.
/// - `share-many`: arms, shares 64 packets, holding them (the ledger grows).
/// - `send`: shares packet 100, arms, sends it.
/// - `send-clone`: shares packet 100, keeps a clone, arms, sends the other.
/// - `send-wait`: shares packet 100 and sends it into a full pipe, waiting there.
/// - `fanout A B`: shares packet 100, arms, sends it to pipes A and B through a fan-out.
/// - `recv`: arms, receives one packet.
/// - `forward Q`: receives one packet, arms, sends it into pipe Q.
/// - `batch`: arms, receives a batch of up to 3.
/// - `hold N ACK`: receives N packets one by one, acknowledging those whose index is in
///   the comma-separated ACK (or "-"), keeps them all, arms, then receives again (blocking
///   in the wait, or pausing at the point).
/// - `reap`: arms, then attaches: attaching gives back what the dead held.
/// - `visit`: attaches (giving back what the dead held), leaves and exits.
pub fn act(args: &[String]) {
    let point = args[3].as_str();
    if args[2] == "visit" {
        drop(client(args));
        return;
    }
    if matches!(args[2].as_str(), "attach" | "reap") {
        arm(point);
        let c = client(args);
        panic!("attached without pausing at {point}: {:?}", c.pipe_name());
    }
    let c = client(args);
    let pool = c.pool();
    let pipe = c.pipe();
    match args[2].as_str() {
        "drop" => {
            let v = pool.share(&packet(1)).unwrap();
            drop(v.clone());
            arm(point);
            drop(v);
        }
        "drop-nested" => {
            // One child object: the one whose decrement a kill at the walk's first step
            // leaves in flight.
            let v = pool.share(&val!({"seq": 1, "xs": [1.5, 2.5]})).unwrap();
            arm(point);
            drop(v);
        }
        "drop-big" => {
            // Grown by pushes: its data is a block of its own.
            let mut v = pool.share(&val!([])).unwrap();
            for i in 0..64 {
                v.push(pool.share(&packet(i)).unwrap()).unwrap();
            }
            arm(point);
            drop(v);
        }
        "to-handle" => {
            let v = pool.share(&val!({"inner": [1, 2, 3]})).unwrap();
            arm(point);
            let inner = v.field("inner").unwrap().to_handle().unwrap();
            drop((inner, v));
        }
        "push" | "push-clone" => {
            let mut outer = pool.share(&val!([1])).unwrap();
            let inner = pool.share(&packet(2)).unwrap();
            arm(point);
            if args[2] == "push" {
                outer.push(inner).unwrap();
            } else {
                outer.push(inner.clone()).unwrap();
                drop(inner);
            }
            drop(outer);
        }
        "forward" => {
            // args[4]: the pipe to forward into.
            let to = ClientSide::new(args[0].clone(), args[4].clone())
                .timeout(Duration::from_secs(30))
                .start()
                .unwrap();
            let v = pipe.dequeue(Duration::from_secs(30)).unwrap();
            arm(point);
            to.pipe().try_enqueue(v).unwrap();
        }
        "share" => {
            arm(point);
            drop(pool.share(&packet(3)).unwrap());
        }
        "share-many" => {
            arm(point);
            let held: Vec<ShmVal> = (0..64).map(|i| pool.share(&packet(i)).unwrap()).collect();
            drop(held);
        }
        "send-clone" => {
            let v = pool.share(&packet(100)).unwrap();
            let keep = v.clone();
            arm(point);
            pipe.try_enqueue(v).unwrap();
            drop(keep);
        }
        "send-after" => {
            // args[4]: a process whose death this one waits for (attached meanwhile, so
            // that it recovers nothing of it first), then sends.
            let pid = nix::unistd::Pid::from_raw(args[4].parse().unwrap());
            let gone = wait_until(Duration::from_secs(60), || {
                nix::sys::signal::kill(pid, None).is_err()
            });
            assert!(gone, "process {pid} never went");
            let v = pool.share(&packet(101)).unwrap();
            arm(point);
            pipe.try_enqueue(v).unwrap();
        }
        "send-wait" => {
            let v = pool.share(&packet(100)).unwrap();
            let r = pipe.enq(v);
            panic!("sent ({r:?}) while waiting to be killed");
        }
        "fanout" => {
            // args[4], args[5]: the outputs.
            let outs: Vec<ClientSide> = args[4..6]
                .iter()
                .map(|o| {
                    ClientSide::new(args[0].clone(), o.clone())
                        .timeout(Duration::from_secs(30))
                        .start()
                        .unwrap()
                })
                .collect();
            let mut f = shmval::sides::Fanout::new(
                pipe.clone(),
                outs.iter().map(|o| o.pipe().clone()).collect(),
                shmval::sides::Policy::Block,
            );
            let v = pool.share(&packet(100)).unwrap();
            arm(point);
            f.send(v).unwrap();
        }
        "send" => {
            let v = pool.share(&packet(100)).unwrap();
            arm(point);
            pipe.try_enqueue(v).unwrap();
        }
        "recv" => {
            arm(point);
            drop(pipe.dequeue(Duration::from_secs(30)).unwrap());
        }
        "batch" => {
            let mut out = Vec::new();
            arm(point);
            pipe.dequeue_batch(&mut out, 3, Duration::from_secs(30))
                .unwrap();
        }
        "hold" => {
            let n: usize = args[4].parse().unwrap();
            let ack: Vec<usize> = args[5]
                .split(',')
                .filter(|s| *s != "-")
                .map(|s| s.parse().unwrap())
                .collect();
            let mut held = Vec::new();
            for i in 0..n {
                let v = pipe.dequeue(Duration::from_secs(30)).unwrap();
                if ack.contains(&i) {
                    v.acknowledge();
                }
                held.push(v);
            }
            arm(point);
            let r = pipe.deq();
            panic!("received {r:?} while waiting to be killed (holding {held:?})");
        }
        other => panic!("unknown action {other}"),
    }
    panic!("{} went past {point}", args[2]);
}

/// The pipe after recovery: its contents as `after` (then taken), nobody's lock, the
/// dead's counts given back (`was`: the stats and reference count before the child).
pub fn check_pipe(
    main: &ShmMain,
    server: &ServerSide,
    after: &[u64],
    was: (shmval::queue::PipeStats, u64),
) {
    let pipe = server.pipe();
    assert!(pipe.lock_owner().is_none(), "{:?}", pipe.lock_owner());
    let s = pipe.stats().unwrap();
    assert_eq!(
        (
            s.senders,
            s.receivers,
            s.senders_waiting,
            s.receivers_waiting
        ),
        (was.0.senders, was.0.receivers, 0, 0),
        "the dead child's ends and waits are given back: {s:?}"
    );
    assert_eq!(pipe.ref_count(), was.1, "its pipe handle is given back");
    assert_eq!(main.pipes().unwrap()[0].users, 1, "only the server uses it");
    // Through a handle of its own, which leaves a lane's receiving side when dropped.
    let reader = pipe.clone();
    let mut got = drain(&reader);
    drop(reader);
    got.sort_unstable();
    assert_eq!(got, after, "what the pipe holds after recovery");
}

/// The pipe carries a packet from another child to the survivor, and back.
pub fn works_on(main: &ShmMain, server: &ServerSide) {
    let (pool, pipe) = (main.pool(), server.pipe());
    let name = main.region().name().to_string();
    fill(pool, pipe, [7]);
    let child = spawn_role("act", &[&name, "p", "hold", "-", "1", "0"]);
    assert!(
        wait_until(Duration::from_secs(60), || pipe.is_empty()
            && pipe.stats().unwrap().receivers_waiting > 0),
        "a new consumer never took the packet: {:?}",
        pipe.stats()
    );
    child.kill();
    main.recover();
    assert!(pipe.is_empty(), "an acknowledged packet is not redelivered");
    fill(pool, pipe, [8]);
    assert_eq!(drain(pipe), [8]);
}

/// Starts a child that receives `n` packets from the pipe (`ack` as in `act`'s `hold`)
/// and returns once it holds them and waits in its next receive.
pub fn spawn_holder(region: &str, pipe: &Pipe, n: u64, ack: &str) -> super::ChildGuard {
    let was = pipe.stats().unwrap().dequeued;
    let count = n.to_string();
    let child = spawn_role("act", &[region, "p", "hold", "-", &count, ack]);
    assert!(
        wait_until(Duration::from_secs(60), || {
            let s = pipe.stats().unwrap();
            s.dequeued == was + n && s.receivers_waiting > 0
        }),
        "the child never took {n} packets and waited: {:?}",
        pipe.stats()
    );
    child
}
