//! One-to-one pipes (lanes): one side sends and one receives at a time, another gets
//! `Taken`; values arrive in order; close and a sender's going are seen; a stopped sender
//! holds its side but blocks nobody beyond their timeouts; a killed one's side is taken
//! over, with nothing lost and nothing left allocated.

mod common;

use std::time::{Duration, Instant};

use common::kills::{act, packet, seq_of, settled};
use common::{role_entry, spawn_paused, spawn_role_env, wait_until, TestName};
use shmval::alloc::Pool;
use shmval::fault::Notice;
use shmval::queue::{Pipe, RecvError, RecvTimeoutError, TryRecvError, TrySendError};
use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::{PoolExt, Val};

const BYTES: u64 = 1 << 20;

#[test]
fn child_role() {
    role_entry(&[("act", act)]);
}

/// A region of `tag` and its one-to-one pipe "p" of `capacity` slots, whose server side
/// counts as a sender if `sends`.
fn one_to_one(tag: &str, capacity: u64, sends: bool) -> (TestName, ShmMain, ServerSide) {
    let name = TestName::new(tag);
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", capacity)
        .one_to_one(true)
        .sends(sends)
        .start()
        .unwrap();
    (name, main, server)
}

/// Returns once a receiver sleeps on `pipe` (its lane empty).
fn a_receiver_sleeps(pipe: &Pipe) {
    assert!(
        wait_until(Duration::from_secs(30), || pipe
            .stats()
            .unwrap()
            .receivers_waiting
            > 0),
        "no receiver came to sleep: {:?}",
        pipe.stats()
    );
}

/// Checks that `pool` is back at `base` (`what` names what would be left) and sound.
fn back_at(pool: &Pool, base: (u64, u64), what: &str) {
    assert_eq!(settled(pool), base, "{what}");
    pool.verify().unwrap();
}

fn client(name: &TestName) -> ClientSide {
    ClientSide::new(name.as_str(), "p")
        .timeout(Duration::from_secs(30))
        .start()
        .unwrap()
}

#[test]
fn values_arrive_in_order_and_a_second_side_is_refused_until_the_first_goes() {
    let (name, main, server) = one_to_one("o2o-order", 4, true);
    let pool = main.pool();
    let base = settled(pool);
    let pipe = server.pipe();
    assert!(pipe.is_one_to_one());
    let reader = client(&name);
    // The server's side has sent: another handle may not.
    pipe.try_enqueue(pool.share(&packet(0)).unwrap()).unwrap();
    assert_eq!(seq_of(&reader.pipe().try_dequeue().unwrap()), 0);
    let other = pipe.clone();
    match other.try_enqueue(pool.share(&Val::from(1i64)).unwrap()) {
        Err(TrySendError::Taken(v)) => assert_eq!(v.to_val().unwrap(), Val::from(1i64)),
        r => panic!("a second sender was let in: {r:?}"),
    }
    let second = client(&name);
    for round in 0..50u64 {
        for i in 0..4 {
            pipe.try_enqueue(pool.share(&packet(round * 4 + i)).unwrap())
                .unwrap();
        }
        assert!(matches!(
            pipe.try_enqueue(pool.share(&packet(0)).unwrap()),
            Err(TrySendError::Full(_))
        ));
        let mut got = Vec::new();
        if round % 2 == 0 {
            reader
                .pipe()
                .dequeue_batch(&mut got, 4, Duration::from_secs(5))
                .unwrap();
        } else {
            for _ in 0..4 {
                got.push(reader.pipe().dequeue(Duration::from_secs(5)).unwrap());
            }
        }
        let seqs: Vec<u64> = got.iter().map(seq_of).collect();
        assert_eq!(seqs, (round * 4..round * 4 + 4).collect::<Vec<_>>());
        // The reader holds the receiving side: the second client is refused, at once.
        assert_eq!(
            second.pipe().try_dequeue().unwrap_err(),
            TryRecvError::Taken
        );
    }
    let s = pipe.stats().unwrap();
    assert_eq!((s.enqueued, s.dequeued, s.len), (201, 201, 0), "{s:?}");
    // The first reader goes: the second takes its side.
    drop(reader);
    pipe.try_enqueue(pool.share(&packet(7)).unwrap()).unwrap();
    assert_eq!(
        seq_of(&second.pipe().dequeue(Duration::from_secs(5)).unwrap()),
        7
    );
    drop((other, second));
    assert_eq!(settled(pool), base, "every value sent is given back");
}

#[test]
fn receivers_see_close_and_the_sender_going_after_what_was_sent() {
    let (name, main, server) = one_to_one("o2o-ends", 8, true);
    let reader = client(&name);
    let pool = main.pool();
    server
        .pipe()
        .try_enqueue(pool.share(&packet(1)).unwrap())
        .unwrap();
    drop(server);
    // The value sent before the sender went comes first, then the news.
    assert_eq!(
        seq_of(&reader.pipe().dequeue(Duration::from_secs(5)).unwrap()),
        1
    );
    let t = Instant::now();
    assert_eq!(
        reader.pipe().dequeue(Duration::from_secs(30)).unwrap_err(),
        RecvTimeoutError::Disconnected
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    let (name, main, server) = one_to_one("o2o-close", 8, true);
    let reader = client(&name);
    server
        .pipe()
        .try_enqueue(main.pool().share(&packet(2)).unwrap())
        .unwrap();
    server.pipe().close().unwrap();
    assert!(matches!(
        server
            .pipe()
            .try_enqueue(main.pool().share(&packet(3)).unwrap()),
        Err(TrySendError::Closed(_))
    ));
    assert_eq!(seq_of(&reader.pipe().try_dequeue().unwrap()), 2);
    assert_eq!(
        reader.pipe().dequeue(Duration::from_secs(30)).unwrap_err(),
        RecvTimeoutError::Closed
    );
}

#[test]
fn a_one_to_one_pipe_cannot_redeliver() {
    let name = TestName::new("o2o-redeliver");
    let _main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let e = ServerSide::new(name.as_str(), "p", 8)
        .one_to_one(true)
        .redeliver(true)
        .start()
        .unwrap_err();
    assert!(e.to_string().contains("redeliver"), "{e}");
}

/// A sender stopped in the middle of a send (its item committed, its count not yet
/// stored), then SIGSTOPped: the receiver gets what was committed and times out within
/// its bound after that; another sender is refused while the stopped process lives; once
/// it is killed, the survivor takes its side over, and nothing is lost or left allocated.
#[test]
fn a_stopped_sender_blocks_nobody_and_a_killed_one_is_taken_over() {
    let (name, main, server) = one_to_one("o2o-stop", 8, false);
    let (pool, pipe) = (main.pool(), server.pipe());
    let base = settled(pool);
    let child = spawn_paused(
        "act",
        &[name.as_str(), "p", "send", "lane.send.committed"],
        "lane.send.committed",
    );
    child.stop();
    let reader = pipe.clone();
    assert_eq!(
        seq_of(&reader.dequeue(Duration::from_secs(5)).unwrap()),
        100
    );
    let t = Instant::now();
    assert_eq!(
        reader.dequeue(Duration::from_millis(50)).unwrap_err(),
        RecvTimeoutError::Timeout
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let sender = pipe.clone();
    assert!(
        matches!(
            sender.try_enqueue(pool.share(&packet(5)).unwrap()),
            Err(TrySendError::Taken(_))
        ),
        "a stopped sender keeps its side"
    );
    child.kill();
    // Taken over at the next send, before recovery ran.
    sender.try_enqueue(pool.share(&packet(6)).unwrap()).unwrap();
    assert_eq!(seq_of(&reader.try_dequeue().unwrap()), 6);
    assert_eq!(main.recover().processes, 1);
    drop((reader, sender));
    back_at(pool, base, "nothing of the dead sender's stays allocated");
}

/// A process that takes a dead sender's side over and is killed before it has completed
/// the dead one's send (at `lane.role.taken`) leaves the side to the next: recovery
/// completes the first one's committed item, which arrives once, gives back what both
/// held, and the pipe takes a new sender.
#[test]
fn a_taker_killed_while_it_takes_a_dead_senders_side_over_is_taken_over_in_turn() {
    let (name, main, server) = one_to_one("o2o-taker", 8, false);
    let (pool, pipe) = (main.pool(), server.pipe());
    let base = settled(pool);
    let refs = pipe.ref_count();
    let first = spawn_paused(
        "act",
        &[name.as_str(), "p", "send", "lane.send.committed"],
        "lane.send.committed",
    );
    let pid = first.pid().to_string();
    let notice = Notice::new().unwrap();
    let mut taker = spawn_role_env(
        "act",
        &[name.as_str(), "p", "send-after", "lane.role.taken", &pid],
        &[notice.env()],
    );
    // The taker has attached (its handle counts) before the first one dies, so that its
    // attach recovers nothing and its send meets the dead holder.
    assert!(
        wait_until(Duration::from_secs(60), || pipe.ref_count() >= refs + 2),
        "the taker never attached: {} references",
        pipe.ref_count()
    );
    first.kill();
    let start = Instant::now();
    loop {
        if let Some(r) = notice.wait(Duration::from_millis(50)) {
            assert_eq!(r.point, "lane.role.taken");
            assert_eq!(r.pid, taker.pid());
            break;
        }
        assert!(
            taker.try_wait().is_none(),
            "the taker ended without taking over"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the taker never took over"
        );
    }
    taker.kill();
    let r = main.recover();
    assert_eq!(r.processes, 2, "{r:?}");
    assert_eq!(r.total.suspects, 0, "{r:?}");
    let reader = pipe.clone();
    assert_eq!(seq_of(&reader.try_dequeue().unwrap()), 100);
    // Both senders went: nothing more comes until another sends.
    assert_eq!(
        reader.try_dequeue().unwrap_err(),
        TryRecvError::Disconnected
    );
    let sender = pipe.clone();
    sender.try_enqueue(pool.share(&packet(7)).unwrap()).unwrap();
    assert_eq!(seq_of(&reader.try_dequeue().unwrap()), 7);
    drop((reader, sender));
    back_at(
        pool,
        base,
        "nothing of the two dead processes stays allocated",
    );
}

/// Threads of one handle take turns on its side: while one waits in an unbounded `deq`,
/// another's `try_dequeue` answers at once and its timed `dequeue` within its timeout; a
/// value sent then goes to one of them.
#[test]
fn threads_of_one_handle_wait_for_their_turn_no_longer_than_their_limit() {
    let (name, main, server) = one_to_one("o2o-threads", 4, true);
    let reader = client(&name);
    let pipe = reader.pipe();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| seq_of(&pipe.deq().unwrap()));
        // The waiter holds the turn once it sleeps on the empty lane.
        a_receiver_sleeps(pipe);
        let t = Instant::now();
        assert_eq!(pipe.try_dequeue().unwrap_err(), TryRecvError::Empty);
        assert_eq!(
            pipe.dequeue(Duration::from_millis(50)).unwrap_err(),
            RecvTimeoutError::Timeout
        );
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        server
            .pipe()
            .try_enqueue(main.pool().share(&packet(9)).unwrap())
            .unwrap();
        assert_eq!(waiter.join().unwrap(), 9);
    });
}

/// Two threads of one handle both receive without a limit: one sleeps on the empty lane
/// holding the turn, the other waits for the turn; each gets one of two values sent.
#[test]
fn two_threads_of_one_handle_receiving_without_a_limit_each_get_a_value() {
    let (name, main, server) = one_to_one("o2o-two-waiters", 4, true);
    let reader = client(&name);
    let pipe = reader.pipe();
    std::thread::scope(|s| {
        let a = s.spawn(|| seq_of(&pipe.deq().unwrap()));
        let b = s.spawn(|| seq_of(&pipe.deq().unwrap()));
        a_receiver_sleeps(pipe);
        for i in [1, 2] {
            server
                .pipe()
                .try_enqueue(main.pool().share(&packet(i)).unwrap())
                .unwrap();
        }
        let mut got = [a.join().unwrap(), b.join().unwrap()];
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
    });
}

/// A thread waiting without a limit for its handle's turn asks the break checker as any
/// wait does: here the checker says stop only on the thread that waits for the turn,
/// which ends with `Broken` while the other keeps the turn and waits on for a value.
#[test]
fn a_thread_waiting_for_its_turn_ends_when_the_break_checker_says_so() {
    use std::cell::Cell;
    thread_local! {
        static STOP_HERE: Cell<bool> = const { Cell::new(false) };
    }
    let (name, main, server) = one_to_one("o2o-turn-break", 4, true);
    let reader = ClientSide::new(name.as_str(), "p")
        .timeout(Duration::from_secs(30))
        .break_checker(|| STOP_HERE.with(Cell::get))
        .micro_sleep(Duration::from_millis(1))
        .start()
        .unwrap();
    let pipe = reader.pipe();
    std::thread::scope(|s| {
        let holder = s.spawn(|| pipe.deq().map(|v| seq_of(&v)));
        // The holder has the turn once it sleeps on the empty lane.
        a_receiver_sleeps(pipe);
        let (tx, rx) = std::sync::mpsc::channel();
        s.spawn(move || {
            STOP_HERE.with(|c| c.set(true));
            tx.send(pipe.deq().map(|v| seq_of(&v))).unwrap();
        });
        let stopped = rx.recv_timeout(Duration::from_secs(30));
        // A value for the holder, and one for the other thread should it still wait (so
        // that a failure ends instead of hanging).
        for i in [4, 5] {
            server
                .pipe()
                .try_enqueue(main.pool().share(&packet(i)).unwrap())
                .unwrap();
        }
        assert_eq!(holder.join().unwrap(), Ok(4));
        assert_eq!(stopped, Ok(Err(RecvError::Broken)));
    });
}

/// A one-to-one pipe made on a pool directly, without the directory: one handle sends,
/// another receives, a third is refused either side.
#[test]
fn a_pipe_made_one_to_one_on_a_pool_refuses_a_third_handle() {
    let name = TestName::new("o2o-pool");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let pool = main.pool();
    let base = settled(pool);
    let tx = shmval::queue::Pipe::create_one_to_one(pool, 2).unwrap();
    assert!(tx.is_one_to_one());
    let (rx, third) = (tx.clone(), tx.clone());
    tx.try_enqueue(pool.share(&packet(1)).unwrap()).unwrap();
    assert_eq!(seq_of(&rx.try_dequeue().unwrap()), 1);
    assert!(matches!(
        third.try_enqueue(pool.share(&packet(2)).unwrap()),
        Err(TrySendError::Taken(_))
    ));
    assert_eq!(third.try_dequeue().unwrap_err(), TryRecvError::Taken);
    drop((tx, rx, third));
    assert_eq!(settled(pool), base, "the last handle frees the pipe");
}
