//! What keeps a pipe and what ends a wait: values queued in a pipe stay until they are
//! taken (or the pipe is removed), a receiver is told when every sender has gone, a kept
//! pipe waits for senders that come and go, and a wait nobody bounded says so.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{role_entry, TestName};
use shmval::alloc::Pool;
use shmval::queue::{RecvError, RecvTimeoutError, TryRecvError};
use shmval::sides::{ClientSide, ServerSide, ShmMain, SidesError};
use shmval::{PoolExt, Val};

const BYTES: u64 = 1 << 20;

#[test]
fn child_role() {
    role_entry(&[
        ("wait_for_a_missing_region", wait_for_a_missing_region),
        ("deq_with_nobody_sending", deq_with_nobody_sending),
    ]);
}

fn in_use(pool: &Pool) -> (u64, u64) {
    // What this process's ledgers keep grows with the values held at once, and stays.
    let s = pool.stats().unwrap();
    let k = shmval::ledger::kept(pool);
    (s.used - k.bytes, s.live_allocations - k.blocks)
}

fn send(server: &ServerSide, v: impl Into<Val>) {
    let v = server.pool().share(&v.into()).unwrap();
    server.pipe().try_enqueue(v).unwrap();
}

#[test]
fn a_pipe_with_values_outlives_its_last_side_and_then_disconnects() {
    let name = TestName::new("ends-outlive");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let base = in_use(main.pool());
    let server = ServerSide::new(name.as_str(), "p", 200).start().unwrap();
    for i in 0..3 {
        send(&server, i);
    }
    drop(server);
    // Nobody uses it, but it holds values: it stays for a reader that comes later.
    let listed = main.pipes().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].users, listed[0].stats.len), (0, 3));
    let client = ClientSide::new(name.as_str(), "p").start().unwrap();
    for i in 0..3 {
        assert_eq!(client.pipe().deq().unwrap().to_val().unwrap(), Val::from(i));
    }
    // Its only sender has gone and it is empty: nothing more can come.
    assert_eq!(client.pipe().deq().unwrap_err(), RecvError::Disconnected);
    assert_eq!(
        client.pipe().dequeue(Duration::from_secs(30)).unwrap_err(),
        RecvTimeoutError::Disconnected
    );
    assert_eq!(
        client.pipe().try_dequeue().unwrap_err(),
        TryRecvError::Disconnected
    );
    drop(client);
    assert!(main.pipes().unwrap().is_empty());
    assert_eq!(in_use(main.pool()), base);
}

#[test]
fn a_receiver_waiting_is_woken_when_the_last_sender_goes() {
    let name = TestName::new("ends-wake");
    let _main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 4).start().unwrap();
    let client = ClientSide::new(name.as_str(), "p").start().unwrap();
    let receiver = std::thread::spawn(move || client.pipe().deq().map(|_| ()));
    // Wait until the receiver sleeps on the pipe, then let the only sender go.
    let pipe = server.pipe().clone();
    common::wait_until(Duration::from_secs(60), || {
        pipe.stats().unwrap().receivers_waiting == 1
    });
    drop(server);
    assert_eq!(receiver.join().unwrap(), Err(RecvError::Disconnected));
}

#[test]
fn a_persisted_pipe_waits_for_senders_that_come_and_go() {
    let name = TestName::new("ends-kept");
    let _main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let first = ServerSide::new(name.as_str(), "p", 4)
        .persist(true)
        .start()
        .unwrap();
    send(&first, 1);
    drop(first);
    let client = ClientSide::new(name.as_str(), "p").start().unwrap();
    assert_eq!(client.pipe().deq().unwrap().to_val().unwrap(), Val::from(1));
    // No sender now, but the pipe is kept: a receive waits (here until its timeout).
    let t = Instant::now();
    assert_eq!(
        client
            .pipe()
            .dequeue(Duration::from_millis(50))
            .unwrap_err(),
        RecvTimeoutError::Timeout
    );
    assert!(t.elapsed() >= Duration::from_millis(50));
    let second = ServerSide::new(name.as_str(), "p", 4)
        .reattach(true)
        .start()
        .unwrap();
    send(&second, 2);
    assert_eq!(client.pipe().deq().unwrap().to_val().unwrap(), Val::from(2));
}

#[test]
fn wait_idle_waits_for_queued_values_to_be_taken() {
    let name = TestName::new("ends-idle");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 200).start().unwrap();
    send(&server, "a");
    send(&server, "b");
    drop(server);
    // Nobody is attached, but two values wait for a reader.
    assert!(!main.wait_idle(Duration::from_millis(50)).unwrap());
    let client = ClientSide::new(name.as_str(), "p").start().unwrap();
    drop(client.pipe().deq().unwrap());
    drop(client.pipe().deq().unwrap());
    drop(client);
    assert!(main.wait_idle(Duration::from_secs(60)).unwrap());
}

#[test]
fn removing_a_pipe_drops_what_it_holds() {
    let name = TestName::new("ends-remove");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let base = in_use(main.pool());
    let server = ServerSide::new(name.as_str(), "p", 8).start().unwrap();
    send(&server, Val::from("queued"));
    drop(server);
    assert_eq!(main.pipes().unwrap().len(), 1);
    assert!(main.remove_pipe("p").unwrap());
    assert!(!main.remove_pipe("p").unwrap());
    assert!(main.pipes().unwrap().is_empty());
    assert_eq!(in_use(main.pool()), base);
}

/// The text of the error a client gets after waiting `for_` for pipe `pipe`.
fn start_error(region: &str, pipe: &str) -> String {
    let e = ClientSide::new(region, pipe)
        .timeout(Duration::from_millis(200))
        .notice_after(None)
        .start()
        .unwrap_err();
    assert!(matches!(e, SidesError::Timeout { .. }), "{e}");
    e.to_string()
}

#[test]
fn a_start_timeout_says_whether_the_name_never_existed_or_was_removed() {
    let name = TestName::new("ends-why");
    let missing = format!("{}-misspelt", name.as_str());
    let e = start_error(&missing, "p");
    assert!(e.contains("no region of that name exists"), "{e}");

    let _main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let e = start_error(name.as_str(), "never-made");
    assert!(e.contains("has no pipe of that name"), "{e}");

    drop(ServerSide::new(name.as_str(), "gone", 4).start().unwrap());
    let e = start_error(name.as_str(), "gone");
    assert!(e.contains("was removed"), "{e}");
}

/// Waits for a region that does not exist, saying so after 100 ms and giving up at 1 s.
fn wait_for_a_missing_region(args: &[String]) {
    let e = ClientSide::new(args[0].clone(), "p")
        .timeout(Duration::from_secs(1))
        .notice_after(Some(Duration::from_millis(100)))
        .start()
        .unwrap_err();
    assert!(matches!(e, SidesError::Timeout { .. }), "{e}");
}

/// Receives, with no time limit, from a pipe nobody sends to (until killed).
fn deq_with_nobody_sending(args: &[String]) {
    let client = ClientSide::new(args[0].clone(), "p")
        .notice_after(Some(Duration::from_millis(100)))
        .start()
        .unwrap();
    let _ = client.pipe().deq();
}

/// Runs `role` with `arg`, reading its standard error until a line contains `want`.
fn stderr_says(role: &str, arg: &str, want: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut child = common::ChildGuard(Some(
        std::process::Command::new(exe)
            .args([
                "--exact",
                "child_role",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env("SHMVAL_TEST_ROLE", role)
            .env("SHMVAL_TEST_ARGS", arg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let err = child.0.as_mut().unwrap().stderr.take().unwrap();
    for line in BufReader::new(err).lines() {
        let line = line.unwrap();
        if line.contains(want) {
            return line;
        }
    }
    panic!("the child's standard error never said {want:?}");
}

#[test]
fn a_long_wait_for_a_region_says_so_once_on_stderr() {
    let name = TestName::new("ends-notice-region");
    let line = stderr_says("wait_for_a_missing_region", name.as_str(), "still waiting");
    assert!(line.contains(name.as_str()), "{line}");
    assert!(line.contains("no region of that name exists"), "{line}");
}

#[test]
fn a_long_deq_says_so_once_on_stderr() {
    let name = TestName::new("ends-notice-deq");
    let _main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let _server = ServerSide::new(name.as_str(), "p", 4).start().unwrap();
    let line = stderr_says("deq_with_nobody_sending", name.as_str(), "deq on");
    assert!(line.contains("pipe p in region"), "{line}");
    assert!(line.contains("nothing has been sent to it yet"), "{line}");
}
