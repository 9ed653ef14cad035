//! Named values in a region: publish, get, replace and unpublish and their errors, a
//! lookup that waits (in another process, woken by the publish; bounded by its timeout and
//! its break checker, also while a stopped process holds the names lock), a publisher
//! killed at each step of each move (the pool back at its baseline after recovery, the
//! name published or not, never a reference given back twice), and a value that outlives
//! the process that published it.

// The shared test helpers count with std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::held::{assert_held_by, Bound, Holder, Slack, BOUND, CEILING, RUNS};
use common::kills::{packet, plus, seq_of, settled, size_of};
use common::{
    blocked_in, role_entry, spawn_paused, spawn_role_stdio, this_thread, wait_until, TestName,
};
use shmval::alloc::Pool;
use shmval::region::{AttachOptions, RegionName};
use shmval::sides::{ClientSide, Lookup, Names, ServerSide, ShmMain, SidesError, MAX_NAMES};
use shmval::{PoolExt, Tag, Val};

const BYTES: u64 = 1 << 20;

/// What a waiting child prints once its lookup waits.
const WAITING: &str = "names-test: waiting";
/// What a child prints before the value it found (its `seq`).
const GOT: &str = "names-test: got ";
/// What a child prints once it has published.
const PUBLISHED: &str = "names-test: published";

/// How long a wait below sleeps unless woken: far past any bound the tests assert, so
/// only a wake-up can end it in time.
const NEVER: Duration = Duration::from_secs(120);

#[test]
fn child_role() {
    role_entry(&[("names_act", names_act), ("lookup", lookup_role)]);
}

/// Attaches to region `region` as any process does (registered: its handles are
/// recorded in its ledger).
fn attach(region: &str) -> Pool {
    let name = RegionName::new(region).unwrap();
    let r = AttachOptions::new()
        .timeout(Duration::from_secs(30))
        .attach(&name)
        .unwrap();
    Pool::attach(Arc::new(r)).unwrap()
}

/// Arms `point` unless it is "-".
fn arm(point: &str) {
    if point != "-" {
        shmval::fault::arm(point);
    }
}

/// The role `names_act`: args region, action, point. Each action arms `point` right
/// before the call that reaches it; a child that gets past it panics.
///
/// - `publish`: shares packet 2, arms, publishes it as "t".
/// - `replace`: shares packet 2, arms, replaces "t" by it.
/// - `unpublish`: arms, unpublishes "t".
/// - `get`: arms, gets "t".
/// - `publish-exit`: publishes packet 2 as "t" and exits.
/// - `publish-wait`: publishes packet 2 as "t", says so, and sleeps until killed.
fn names_act(args: &[String]) {
    let pool = attach(&args[0]);
    let names = Names::open(&pool).unwrap();
    let point = args[2].as_str();
    match args[1].as_str() {
        "publish" => {
            let v = pool.share(&packet(2)).unwrap();
            arm(point);
            names.publish("t", v).unwrap();
        }
        "replace" => {
            let v = pool.share(&packet(2)).unwrap();
            arm(point);
            drop(names.replace("t", v).unwrap());
        }
        "unpublish" => {
            arm(point);
            drop(names.unpublish("t").unwrap());
        }
        "get" => {
            arm(point);
            drop(names.get("t").unwrap());
        }
        "publish-exit" => {
            names.publish("t", pool.share(&packet(2)).unwrap()).unwrap();
            return;
        }
        "publish-wait" => {
            names.publish("t", pool.share(&packet(2)).unwrap()).unwrap();
            say(PUBLISHED);
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        other => panic!("unknown action {other}"),
    }
    panic!("{} went past {point}", args[1]);
}

/// Prints a line of the protocol with the parent (on standard output, which the child's
/// test harness shares: the parent picks its lines by their prefix).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// The role `lookup`: args region, name. Looks the name up with [`Lookup`], its micro
/// sleep [`NEVER`] (only a wake can end the wait in time); its break checker says once that
/// the wait has begun. Prints the `seq` of what it found.
fn lookup_role(args: &[String]) {
    let said = AtomicBool::new(false);
    let v = Lookup::new(args[0].clone(), args[1].clone())
        .timeout(Duration::from_secs(600))
        .micro_sleep(NEVER)
        .notice_after(None)
        .break_checker(move || {
            if !said.swap(true, Ordering::SeqCst) {
                say(WAITING);
            }
            false
        })
        .start()
        .unwrap();
    say(&format!("{GOT}{}", seq_of(&v)));
}

/// Reads the child's standard output until a line starting with `prefix`; the rest of it.
fn read_until(lines: &mut impl Iterator<Item = std::io::Result<String>>, prefix: &str) -> String {
    for line in lines {
        let line = line.expect("the child's output");
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    panic!("the child ended without saying {prefix:?}");
}

fn region(tag: &str) -> (TestName, ShmMain) {
    let name = TestName::new(tag);
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    (name, main)
}

#[test]
fn publish_get_replace_and_unpublish() {
    let (_name, main) = region("names-ops");
    let pool = main.pool();
    let names = main.names().unwrap();
    let base = settled(pool);
    let one = pool.share(&packet(1)).unwrap();
    let off = one.offset();
    names.publish("t", one).unwrap();
    // The entry holds the value: published, it lives with no handle left.
    let got = names.get("t").unwrap().expect("published");
    assert_eq!((seq_of(&got), got.offset()), (1, off));
    assert_eq!(
        got.ref_count(),
        2,
        "the entry's reference and this handle's"
    );
    let listed = names.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].name.as_str(),
            listed[0].offset,
            listed[0].tag,
            listed[0].refs
        ),
        ("t", off, Tag::Tab, 2)
    );
    drop(got);
    assert_eq!(names.list().unwrap()[0].refs, 1);

    // Taken: publish fails (dropping what it was given), replace replaces.
    let e = names
        .publish("t", pool.share(&packet(9)).unwrap())
        .unwrap_err();
    assert!(
        matches!(e, SidesError::NameExists(ref n) if n == "t"),
        "{e:?}"
    );
    assert!(e.to_string().contains("already published"), "{e}");
    let two = pool.share(&packet(2)).unwrap();
    let old = names
        .replace("t", two.clone())
        .unwrap()
        .expect("the old value");
    assert_eq!((seq_of(&old), old.offset()), (1, off));
    assert_eq!(
        old.ref_count(),
        1,
        "moved out of the entry: the handle's only"
    );
    drop(old);
    assert_eq!(seq_of(&names.get("t").unwrap().unwrap()), 2);
    // The same value again: nothing moves.
    let same = names.replace("t", two.clone()).unwrap().unwrap();
    assert!(same.ptr_eq(&two));
    drop((same, two));
    // Replacing a name nobody published publishes it.
    assert!(names
        .replace("u", pool.share(&Val::from("u")).unwrap())
        .unwrap()
        .is_none());
    let mut listed: Vec<String> = names
        .list()
        .unwrap()
        .iter()
        .map(|e| e.name.to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, ["t", "u"]);

    let t = names.unpublish("t").unwrap().expect("published");
    assert_eq!((seq_of(&t), t.ref_count()), (2, 1));
    assert!(names.unpublish("t").unwrap().is_none());
    assert!(names.get("t").unwrap().is_none());
    drop(t);
    drop(names.unpublish("u").unwrap());
    assert!(names.list().unwrap().is_empty());
    assert_eq!(settled(pool), base, "everything given back");
    pool.verify().unwrap();
}

#[test]
fn every_side_sees_the_same_names() {
    let (name, main) = region("names-sides");
    let server = ServerSide::new(name.as_str(), "p", 2).start().unwrap();
    let client = ClientSide::new(name.as_str(), "p").start().unwrap();
    server
        .names()
        .unwrap()
        .publish("t", server.pool().share(&packet(4)).unwrap())
        .unwrap();
    let got = client.names().unwrap().get("t").unwrap().unwrap();
    assert_eq!(seq_of(&got), 4);
    assert_eq!(main.names().unwrap().list().unwrap()[0].refs, 2);
    drop(got);
    assert!(main.names().unwrap().unpublish("t").unwrap().is_some());
}

#[test]
fn bad_names_foreign_values_and_a_full_directory_are_errors() {
    let (_name, main) = region("names-errors");
    let pool = main.pool();
    let names = main.names().unwrap();
    let base = settled(pool);
    for bad in ["", ".t", "a b", &"x".repeat(65)] {
        let e = names
            .publish(bad, pool.share(&packet(1)).unwrap())
            .unwrap_err();
        assert!(matches!(e, SidesError::BadValueName { .. }), "{e:?}");
        assert!(e.to_string().contains("bad value name"), "{e}");
        assert!(matches!(
            names.get(bad),
            Err(SidesError::BadValueName { .. })
        ));
        assert!(matches!(
            names.lookup(bad, Duration::ZERO),
            Err(SidesError::BadValueName { .. })
        ));
    }
    // A value of another region.
    let (_other_name, other) = region("names-foreign");
    let foreign = other.pool().share(&packet(1)).unwrap();
    let e = names.publish("f", foreign.clone()).unwrap_err();
    assert!(
        matches!(e, SidesError::ForeignValue(ref n) if n == "f"),
        "{e:?}"
    );
    assert!(e.to_string().contains("another region"), "{e}");
    assert_eq!(foreign.ref_count(), 1, "the clone given was dropped");
    assert!(names.get("f").unwrap().is_none());
    // Full.
    for i in 0..MAX_NAMES {
        names
            .publish(&format!("n{i}"), pool.share(&Val::from(i as u64)).unwrap())
            .unwrap();
    }
    let e = names
        .publish("one-more", pool.share(&packet(1)).unwrap())
        .unwrap_err();
    assert!(matches!(e, SidesError::NamesFull(MAX_NAMES)), "{e:?}");
    assert_eq!(names.list().unwrap().len(), MAX_NAMES);
    for i in 0..MAX_NAMES {
        let v = names.unpublish(&format!("n{i}")).unwrap().unwrap();
        assert_eq!(v.to_val().unwrap(), Val::from(i as u64));
    }
    assert_eq!(settled(pool), base);
    pool.verify().unwrap();
}

#[test]
fn a_lookup_in_another_process_wakes_when_the_name_is_published() {
    let (name, main) = region("names-wake");
    let names = main.names().unwrap();
    let mut child = spawn_role_stdio("lookup", &[name.as_str(), "t"]);
    let out = child.0.as_mut().unwrap().stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    read_until(&mut lines, WAITING);
    let t = Instant::now();
    names
        .publish("t", main.pool().share(&packet(7)).unwrap())
        .unwrap();
    assert_eq!(read_until(&mut lines, GOT), "7");
    // Left alone the wait would sleep NEVER: the publish woke it.
    let took = t.elapsed();
    println!("the waiting lookup found the value {took:?} after the publish");
    assert!(took < Duration::from_secs(30), "{took:?}");
    child.wait_ok(Duration::from_secs(30));
    assert_eq!(names.list().unwrap()[0].refs, 1, "the child's handle went");
}

#[test]
fn a_lookup_started_first_waits_for_the_region_then_the_name() {
    let name = TestName::new("names-first");
    let n = name.as_str().to_string();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let looking = std::thread::spawn(move || {
        tid_tx.send(this_thread()).unwrap();
        Lookup::new(n, "t")
            .timeout(Duration::from_secs(600))
            .micro_sleep(NEVER)
            .notice_after(None)
            .start()
            .map(|v| seq_of(&v))
    });
    let (pid, tid) = (std::process::id(), tid_rx.recv().unwrap());
    #[cfg(target_arch = "x86_64")]
    let poll: &[libc::c_long] = &[libc::SYS_poll, libc::SYS_ppoll];
    #[cfg(not(target_arch = "x86_64"))]
    let poll: &[libc::c_long] = &[libc::SYS_ppoll];
    assert!(
        wait_until(Duration::from_secs(30), || blocked_in(pid, tid, poll)),
        "the lookup never waited for the region"
    );
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || blocked_in(
            pid,
            tid,
            &[libc::SYS_futex]
        )),
        "the lookup never waited for the name"
    );
    let t = Instant::now();
    let names = main.names().unwrap();
    names
        .publish("t", main.pool().share(&packet(3)).unwrap())
        .unwrap();
    assert_eq!(looking.join().unwrap().unwrap(), 3);
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
}

#[test]
fn a_lookup_gives_up_at_its_timeout_saying_what_is_missing() {
    let (name, main) = region("names-timeout");
    let names = main.names().unwrap();
    let t = Instant::now();
    let e = names
        .lookup("missing", Duration::from_millis(150))
        .unwrap_err();
    let took = t.elapsed();
    assert!(matches!(e, SidesError::Timeout { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("value missing") && msg.contains(name.as_str()),
        "{msg}"
    );
    assert!(msg.contains("no value of that name is published"), "{msg}");
    println!("a 150 ms lookup timed out after {took:?}");
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(took < Duration::from_millis(150) + CEILING, "{took:?}");

    // A Lookup of a region that does not exist, and of a name in one that does.
    let nowhere = TestName::new("names-nowhere");
    for (region, what) in [(nowhere.as_str(), "region"), (name.as_str(), "value")] {
        let t = Instant::now();
        let e = Lookup::new(region, "missing")
            .timeout(Duration::from_millis(150))
            .start()
            .unwrap_err();
        let took = t.elapsed();
        assert!(matches!(e, SidesError::Timeout { .. }), "{e:?}");
        assert!(e.to_string().contains(what), "{e}");
        assert!(took >= Duration::from_millis(150), "{took:?}");
        assert!(took < Duration::from_millis(150) + CEILING, "{took:?}");
    }
}

#[test]
fn the_break_checker_ends_a_waiting_lookup() {
    let (_name, main) = region("names-break");
    let stop = Arc::new(AtomicBool::new(false));
    let asked = Arc::new(AtomicU64::new(0));
    let (s2, a2) = (stop.clone(), asked.clone());
    let names = main
        .names()
        .unwrap()
        .micro_sleep(Duration::from_millis(50))
        .break_checker(move || {
            a2.fetch_add(1, Ordering::SeqCst);
            s2.load(Ordering::SeqCst)
        });
    let looking = std::thread::spawn(move || names.lookup("never", Duration::from_secs(600)));
    // The checker is asked before each sleep: once asked, the lookup waits.
    assert!(
        wait_until(Duration::from_secs(30), || asked.load(Ordering::SeqCst) > 0),
        "the lookup never waited"
    );
    let t = Instant::now();
    stop.store(true, Ordering::SeqCst);
    let e = looking.join().unwrap().unwrap_err();
    assert!(
        matches!(e, SidesError::Broken(ref w) if w.contains("never")),
        "{e:?}"
    );
    let took = t.elapsed();
    println!("the waiting lookup ended {took:?} after the checker said stop");
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn every_timeout_holds_while_a_stopped_process_holds_the_names_lock() {
    let (name, main) = region("names-held");
    let pool = main.pool();
    let names = main.names().unwrap();
    names.publish("p", pool.share(&packet(5)).unwrap()).unwrap();
    let base = settled(pool);
    let point = "names.publish.claimed";
    let child = spawn_paused("names_act", &[name.as_str(), "publish", point], point);
    assert_held_by(names.lock_owner(), child.pid(), "the names lock");
    let bounded = names.clone().lock_timeout(BOUND);
    let timed_out = |r: Result<(), SidesError>| {
        let e = r.unwrap_err();
        assert!(matches!(e, SidesError::Timeout { .. }), "{e:?}");
        e
    };
    let mut slack = Slack::new(
        "calls while a process holds the names lock (paused publishing)",
        child.pid(),
    );
    for holder in [Holder::Paused, Holder::Stopped] {
        if holder == Holder::Stopped {
            child.stop();
        }
        for _ in 0..RUNS {
            let e = slack.time("Names::lookup", holder, Bound::Timeout(BOUND), || {
                timed_out(names.lookup("p", BOUND).map(drop))
            });
            assert!(e.to_string().contains("lock is held"), "{e}");
            slack.time("Lookup::start", holder, Bound::Timeout(BOUND), || {
                timed_out(
                    Lookup::new(name.as_str(), "p")
                        .timeout(BOUND)
                        .start()
                        .map(drop),
                )
            });
            slack.time(
                "Names::get (lock_timeout)",
                holder,
                Bound::Timeout(BOUND),
                || timed_out(bounded.get("p").map(drop)),
            );
            slack.time(
                "Names::publish (lock_timeout)",
                holder,
                Bound::Timeout(BOUND),
                || timed_out(bounded.publish("q", pool.share(&packet(6)).unwrap())),
            );
            slack.time(
                "Names::list (lock_timeout)",
                holder,
                Bound::Timeout(BOUND),
                || timed_out(bounded.list().map(drop)),
            );
            // A break checker ends a lookup waiting for the lock.
            let broken = names
                .clone()
                .micro_sleep(Duration::from_millis(20))
                .break_checker(|| true);
            let r = slack.time("Names::lookup, broken", holder, Bound::AtOnce, || {
                broken.lookup("p", Duration::from_secs(600))
            });
            assert!(matches!(r, Err(SidesError::Broken(_))), "{r:?}");
        }
    }
    slack.print();
    child.kill();
    let r = main.recover();
    assert_eq!((r.processes, r.total.suspects), (1, 0), "{r:?}");
    assert!(names.lock_owner().is_none());
    assert_eq!(seq_of(&names.lookup("p", BOUND).unwrap()), 5);
    assert!(
        names.get("t").unwrap().is_none(),
        "the paused publish never stored"
    );
    assert_eq!(settled(pool), base);
    pool.verify().unwrap();
}

/// How the survivor first meets the dead publisher's leftovers.
#[derive(Clone, Copy, Debug)]
enum First {
    /// Recovery gives back its ledger first (taking the names lock over in the
    /// resolver).
    Recover,
    /// A call takes the names lock over first (its repair settles the move), recovery
    /// after.
    Lock,
}

/// A child killed at `point` of `action` on "t" (packet 1 published first unless the
/// action is a publish), checked both ways: after recovery "t" holds the packet `after`
/// (or nothing), with one reference (the entry's) besides the survivor's handle, and once
/// it is unpublished the pool is back at its baseline (but for `suspects` packets left
/// counted).
fn kill_at(action: &str, point: &str, after: Option<u64>, suspects: u64) {
    for first in [First::Recover, First::Lock] {
        let (name, main) = region("names-kill");
        let pool = main.pool();
        let names = main.names().unwrap();
        let leak = size_of(pool, &packet(1));
        let base = settled(pool);
        if action != "publish" {
            names.publish("t", pool.share(&packet(1)).unwrap()).unwrap();
        }
        let child = spawn_paused("names_act", &[name.as_str(), action, point], point);
        child.kill();
        if let First::Lock = first {
            names.list().unwrap();
        }
        let r = main.recover();
        assert_eq!(
            (r.processes, r.total.suspects),
            (1, suspects),
            "{action} {point} {first:?}: {r:?}"
        );
        let now = names.get("t").unwrap();
        assert!(
            names.lock_owner().is_none(),
            "taken over from the dead child"
        );
        assert_eq!(
            now.as_ref().map(seq_of),
            after,
            "{action} killed at {point} ({first:?}): what \"t\" holds"
        );
        if let Some(v) = now {
            assert_eq!(v.ref_count(), 2 + suspects, "{action} {point} {first:?}");
            drop(v);
            drop(names.unpublish("t").unwrap());
        }
        assert_eq!(
            settled(pool),
            plus(base, (leak.0 * suspects, leak.1 * suspects)),
            "{action} killed at {point} ({first:?}): the pool after recovery ({r:?})"
        );
        pool.verify().unwrap();
        // The names work on.
        names.publish("t", pool.share(&packet(8)).unwrap()).unwrap();
        assert_eq!(seq_of(&names.lookup("t", BOUND).unwrap()), 8);
    }
}

macro_rules! kills {
    ($($test:ident: $action:literal at $point:literal leaves $after:expr;)*) => {$(
        #[test]
        fn $test() {
            kill_at($action, $point, $after, 0);
        }
    )*};
}

kills! {
    // A publish: the value is the publisher's until the entry is live, then the entry's.
    publish_recorded: "publish" at "names.publish.recorded" leaves None;
    publish_claimed: "publish" at "names.publish.claimed" leaves None;
    publish_stored: "publish" at "names.publish.stored" leaves Some(2);
    publish_done: "publish" at "names.publish.done" leaves Some(2);
    publish_cleared: "publish" at "names.publish.cleared" leaves Some(2);
    // A replace: until the store the new value is the replacer's and the old one the
    // entry's; after it the other way round.
    replace_recorded: "replace" at "names.replace.recorded" leaves Some(1);
    replace_claimed: "replace" at "names.replace.claimed" leaves Some(1);
    replace_stored: "replace" at "names.replace.stored" leaves Some(2);
    replace_done: "replace" at "names.replace.done" leaves Some(2);
    replace_cleared: "replace" at "names.replace.cleared" leaves Some(2);
    // An unpublish: the value is the entry's until the entry is free, then the
    // unpublisher's.
    unpublish_recorded: "unpublish" at "names.unpublish.recorded" leaves Some(1);
    unpublish_claimed: "unpublish" at "names.unpublish.claimed" leaves Some(1);
    unpublish_stored: "unpublish" at "names.unpublish.stored" leaves None;
    unpublish_done: "unpublish" at "names.unpublish.done" leaves None;
    unpublish_cleared: "unpublish" at "names.unpublish.cleared" leaves None;
}

/// A get killed once it counted its new reference, before recording it as held: the
/// reference stays counted (a suspect), never given back twice.
#[test]
fn get_counted() {
    kill_at("get", "names.get.counted", Some(1), 1);
}

#[test]
fn a_published_value_outlives_its_publisher() {
    for killed in [false, true] {
        let (name, main) = region("names-outlive");
        let pool = main.pool();
        let names = main.names().unwrap();
        let size = size_of(pool, &packet(2));
        let base = settled(pool);
        if killed {
            let mut child = spawn_role_stdio("names_act", &[name.as_str(), "publish-wait", "-"]);
            let out = child.0.as_mut().unwrap().stdout.take().unwrap();
            read_until(&mut BufReader::new(out).lines(), PUBLISHED);
            child.kill();
            let r = main.recover();
            assert_eq!((r.processes, r.total.suspects), (1, 0), "{r:?}");
        } else {
            common::spawn_role("names_act", &[name.as_str(), "publish-exit", "-"])
                .wait_ok(Duration::from_secs(60));
        }
        let v = names.lookup("t", BOUND).unwrap();
        assert_eq!(v.to_val().unwrap(), packet(2), "killed: {killed}");
        assert_eq!(v.ref_count(), 2, "the entry's and this handle's");
        drop(v);
        assert_eq!(settled(pool), plus(base, size), "killed: {killed}");
        drop(names.unpublish("t").unwrap());
        assert_eq!(settled(pool), base, "killed: {killed}");
        pool.verify().unwrap();
    }
}
