//! The seed's three programs (examples/serverside, middleside, clientside) run as separate
//! processes, started in every order.

// The shared test helpers count with std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{blocked_in, wait_until, ChildGuard, TestName};

/// An example's binary: cargo builds examples beside the test binaries' `deps` folder.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(path.exists(), "{} not built", path.display());
    path
}

fn start(name: &str, args: &[&str]) -> ChildGuard {
    ChildGuard(Some(
        Command::new(example(name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn example"),
    ))
}

fn finish(mut child: ChildGuard, what: &str) -> Output {
    let c = child.0.take().expect("child");
    let pid = c.id();
    // Reap with a bound: a watchdog kills the child if it hangs, and stands down as soon
    // as the child has been reaped (so it never signals a reused pid).
    let (done, stand_down) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if stand_down.recv_timeout(Duration::from_secs(120)).is_err() {
            // SAFETY: kill(2) has no memory-safety preconditions; the child is not reaped
            // yet (the main thread is still waiting for it), so the pid is still its own.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    let out = c.wait_with_output().expect("wait");
    let _ = done.send(());
    watchdog.join().expect("watchdog");
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Checks the client's output: 100 packets in order, each with the middle's field.
fn check_client_output(text: &str) {
    let packets: Vec<&str> = text.split("}\n").filter(|p| !p.trim().is_empty()).collect();
    assert_eq!(packets.len(), 100, "{text}");
    for (n, p) in packets.iter().enumerate() {
        let expected = format!(
            "{{\n    'bi':{big}L,\n    'bu':{big}L,\n    'my_sequence':{},\n    'sequence_number':{n}\n",
            n + 100,
            big = format!("1{}", "0".repeat(47)),
        );
        assert_eq!(*p, expected, "packet {n}");
    }
}

/// The system calls an example sleeps in when it waits: for the region (poll on an
/// inotify watch, or a plain sleep without inotify), for the directory or a pipe (futex).
#[cfg(target_arch = "x86_64")]
const WAITS: &[libc::c_long] = &[
    libc::SYS_futex,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
];
#[cfg(not(target_arch = "x86_64"))]
const WAITS: &[libc::c_long] = &[
    libc::SYS_futex,
    libc::SYS_ppoll,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
];

/// Waits until the (single-threaded) example `child` has got as far as it can before the
/// next one starts: it sleeps in one of its waits, or (with room in its pipes for every
/// packet) it has finished. The first of the three can go no further without the others;
/// a later one has at least started its work.
fn wait_until_waiting(child: &mut ChildGuard, who: &str) {
    let pid = child.pid();
    assert!(
        wait_until(Duration::from_secs(60), || blocked_in(pid, pid, WAITS)
            || child.try_wait().is_some()),
        "the {who} never waited"
    );
}

fn run_in_order(order: [&str; 3]) {
    run_with(order, "4");
}

/// Runs the three examples in `order` with pipes of `capacity` slots.
fn run_with(order: [&str; 3], capacity: &str) {
    let region = TestName::new("seed");
    let r = region.as_str();
    let mut children: Vec<(&str, ChildGuard)> = Vec::new();
    for who in order {
        if let Some((before, child)) = children.last_mut() {
            wait_until_waiting(child, before);
        }
        let child = match who {
            "server" => start("serverside", &[r, "1000000", "pipe1", capacity]),
            "middle" => start("middleside", &[r, "pipe1", "pipe2", capacity]),
            _ => start("clientside", &[r, "pipe2"]),
        };
        children.push((who, child));
    }
    let mut client_out = None;
    for (who, child) in children {
        let out = finish(child, who);
        if who == "client" {
            client_out = Some(String::from_utf8(out.stdout).expect("utf-8"));
        }
    }
    check_client_output(&client_out.expect("client ran"));
    assert!(
        !region.file_path().exists(),
        "the region outlived the server"
    );
}

/// With room for every packet, the server and the middle send everything and finish their
/// sides before the client starts: what they sent waits in the pipes for it.
#[test]
fn every_order_with_room_for_every_packet() {
    for order in [
        ["server", "middle", "client"],
        ["server", "client", "middle"],
        ["middle", "server", "client"],
        ["middle", "client", "server"],
        ["client", "server", "middle"],
        ["client", "middle", "server"],
    ] {
        run_with(order, "200");
    }
}

#[test]
fn a_client_started_after_the_others_have_finished_gets_every_packet() {
    let region = TestName::new("seed-late");
    let r = region.as_str();
    let server = start("serverside", &[r, "1000000", "pipe1", "200"]);
    let middle = start("middleside", &[r, "pipe1", "pipe2", "200"]);
    // The middle has received, changed and sent all 100 packets, and exited; the server
    // waits for them to be taken.
    finish(middle, "middle");
    let mut server = server;
    wait_until_waiting(&mut server, "server");
    let client = start("clientside", &[r, "pipe2"]);
    let out = finish(client, "client");
    check_client_output(&String::from_utf8(out.stdout).expect("utf-8"));
    finish(server, "server");
    assert!(
        !region.file_path().exists(),
        "the region outlived the server"
    );
}

#[test]
fn server_middle_client() {
    run_in_order(["server", "middle", "client"]);
}

#[test]
fn server_client_middle() {
    run_in_order(["server", "client", "middle"]);
}

#[test]
fn middle_server_client() {
    run_in_order(["middle", "server", "client"]);
}

#[test]
fn middle_client_server() {
    run_in_order(["middle", "client", "server"]);
}

#[test]
fn client_server_middle() {
    run_in_order(["client", "server", "middle"]);
}

#[test]
fn client_middle_server() {
    run_in_order(["client", "middle", "server"]);
}

#[test]
fn wrong_arguments_print_usage_and_fail() {
    for (name, args) in [
        ("serverside", vec!["mempool"]),
        ("serverside", vec!["mempool", "lots", "pipe1", "4"]),
        ("middleside", vec!["mempool", "pipe1", "pipe2"]),
        ("middleside", vec!["mempool", "pipe1", "pipe2", "four"]),
        ("clientside", vec![]),
    ] {
        let out = Command::new(example(name)).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{name} {args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("usage:"), "{name}: {err}");
    }
}

/// The blackboard example: the board and two writers as three processes, the writers
/// started before the board exists (they wait for the region, then for the name). Every
/// update of both lands: the board ends with each writer's count and their sum.
#[test]
fn two_processes_write_one_table() {
    let region = TestName::new("blackboard");
    let r = region.as_str();
    let w1 = start("blackboard", &[r, "writer1", "500"]);
    let w2 = start("blackboard", &[r, "writer2", "500"]);
    let board = start("blackboard", &[r, "2"]);
    finish(w1, "writer1");
    finish(w2, "writer2");
    let out = finish(board, "board");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let last = text.lines().last().expect("the board printed the table");
    let v = shmval::Val::parse(last).unwrap_or_else(|e| panic!("{e}: {last}"));
    assert_eq!(v["a"], shmval::Val::from("hello"), "{last}");
    assert_eq!(v["updates"], shmval::Val::from(1000), "{last}");
    assert_eq!(v["writer1"], shmval::Val::from(500), "{last}");
    assert_eq!(v["writer2"], shmval::Val::from(500), "{last}");
    assert_eq!(v["done"], shmval::Val::from(2), "{last}");
    assert!(
        !region.file_path().exists(),
        "the region outlived the board"
    );
}

/// The seed's examples in a pool that starts at 64 KiB with a maximum: every packet and
/// both pipes of 200 slots fit only because the pool grows, and every packet arrives.
#[test]
fn the_seed_examples_run_in_a_64_kib_pool_that_grows() {
    let region = TestName::new("seed-grow");
    let r = region.as_str();
    let server = start("serverside", &[r, "65536", "pipe1", "200", "1000000000"]);
    let middle = start("middleside", &[r, "pipe1", "pipe2", "200"]);
    finish(middle, "middle");
    let mut server = server;
    wait_until_waiting(&mut server, "server");
    let peek = shmval::region::Region::peek(&shmval::region::RegionName::new(r).unwrap())
        .expect("the region is there");
    assert!(peek.committed > 65536, "the pool grew: {peek:?}");
    let client = start("clientside", &[r, "pipe2"]);
    let out = finish(client, "client");
    check_client_output(&String::from_utf8(out.stdout).expect("utf-8"));
    finish(server, "server");
}
