//! A call without a timeout that waits long says so on standard error, once, and what it
//! waits for: a `deq` on a pipe nothing was sent to, and on a one-to-one pipe a `deq`
//! waiting for its turn while another thread of its handle is in a call.

mod common;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use common::{role_entry, spawn_role_stderr, TestName};
use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::PoolExt;

/// args: region, pipe. Two threads of one client side's handle receive without a
/// timeout, with notices after 50 ms: one waits in the pipe, the other for its turn.
fn two_receivers(args: &[String]) {
    let c = ClientSide::new(args[0].as_str(), args[1].as_str())
        .notice_after(Some(Duration::from_millis(50)))
        .start()
        .unwrap();
    let p = c.pipe();
    std::thread::scope(|s| {
        let a = s.spawn(|| p.deq().unwrap().to::<i64>().unwrap());
        let b = s.spawn(|| p.deq().unwrap().to::<i64>().unwrap());
        let mut got = [a.join().unwrap(), b.join().unwrap()];
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
    });
}

#[test]
fn child_role() {
    role_entry(&[("two_receivers", two_receivers)]);
}

#[test]
fn long_waits_without_a_timeout_say_what_they_wait_for() {
    let name = TestName::new("notices");
    let _main = ShmMain::new(name.as_str(), 1 << 20).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 4)
        .one_to_one(true)
        .start()
        .unwrap();
    let mut child = spawn_role_stderr("two_receivers", &[name.as_str(), "p"]);
    let stderr = child.0.as_mut().unwrap().stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Both notices come while both threads wait: nothing is sent before.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines: Vec<String> = Vec::new();
    let says = |lines: &[String], what: &str| {
        lines
            .iter()
            .filter(|l| l.starts_with("shmval: deq on pipe p in region") && l.contains(what))
            .count()
    };
    while says(&lines, "nothing has been sent to it yet") == 0 || says(&lines, "for its turn") == 0
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("the notices did not come: {lines:#?}"),
        }
    }
    for i in [1i64, 2] {
        let v = server.pool().share(&i.into()).unwrap();
        server.pipe().enq(v).unwrap();
    }
    child.wait_ok(Duration::from_secs(30));
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    // Each wait said so once.
    assert_eq!(
        says(&lines, "nothing has been sent to it yet"),
        1,
        "{lines:#?}"
    );
    assert_eq!(says(&lines, "for its turn"), 1, "{lines:#?}");
}
