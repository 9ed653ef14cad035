//! Every command writing into a pipe whose reader has gone (`shmval ... | head -1`) exits
//! quietly with 141 (128 + SIGPIPE, as a shell reports a writer killed by SIGPIPE): no
//! panic message, and `run` still stops its run and cleans `/dev/shm`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::process::{Command, Output, Stdio};

use common::{adopt_orphans, LongRun};
use shmval::sides::ShmMain;

/// The write end of a pipe whose read end is already closed: every write to it fails
/// with EPIPE. Close-on-exec, so that a child another test spawns meanwhile does not
/// inherit the read end and keep the pipe open.
fn closed_pipe() -> OwnedFd {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    drop(read);
    write
}

/// Runs `shmval args` with `input` on standard input and its standard output closed.
fn into_closed_pipe(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmval"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(closed_pipe()))
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shmval");
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    child.wait_with_output().expect("wait for shmval")
}

fn assert_quiet_141(what: &str, out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(141),
        "{what}: {}; {err}",
        out.status
    );
    assert!(err.is_empty(), "{what} wrote on standard error: {err}");
}

#[test]
fn list_into_a_closed_pipe_exits_141_quietly() {
    assert_quiet_141("list", &into_closed_pipe(&["list"], ""));
    assert_quiet_141("list --json", &into_closed_pipe(&["list", "--json"], ""));
}

#[test]
fn val_into_a_closed_pipe_exits_141_quietly() {
    let input = "{'a': [1, 2.5, 'x']}\n(1, 2)\n";
    assert_quiet_141("val", &into_closed_pipe(&["val"], input));
    assert_quiet_141("val --json", &into_closed_pipe(&["val", "--json"], input));
}

#[test]
fn inspect_into_a_closed_pipe_exits_141_quietly() {
    let name = format!("shmval-test-epipe-inspect-{}", std::process::id());
    let main = ShmMain::new(name.as_str(), 1 << 20)
        .start()
        .expect("region");
    assert_quiet_141("inspect", &into_closed_pipe(&["inspect", &name], ""));
    assert_quiet_141(
        "inspect --json",
        &into_closed_pipe(&["inspect", "--json", &name], ""),
    );
    drop(main);
}

#[test]
fn run_piped_into_head_stops_its_run_exits_141_and_leaves_nothing() {
    adopt_orphans();
    let mut run = LongRun::start("epipe-run", false);
    // `head -1`: read one line, then close the pipe.
    let mut out = BufReader::new(run.stdout());
    let mut first = String::new();
    out.read_line(&mut first).expect("first line");
    assert!(first.starts_with("running scenario long"), "{first}");
    drop(out);
    let (status, err) = run.wait_exit();
    assert_eq!(status.code(), Some(141), "{status}; stderr:\n{err}");
    assert!(err.is_empty(), "{err}");
    assert_eq!(common::shm_files(&run.prefix), Vec::<String>::new());
}
