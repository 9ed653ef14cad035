//! `shmval run` stopped from outside while its scenario runs: by SIGINT (to the runner, or
//! to its whole process group as Ctrl-C does), SIGTERM or SIGHUP, or by its region's
//! file being truncated under it. Each time the runner exits with the code a shell
//! expects, says why it stopped, and leaves nothing behind: no file of the run in
//! `/dev/shm`, no process it started.

mod common;

use common::{adopt_orphans, LongRun};
use nix::sys::signal::Signal;

/// Runs [`common::LONG`] until it is running, stops it with `sig` (to the group when
/// `group`), and checks the exit code, the message and that nothing is left.
fn stop_with(test: &str, sig: Signal, group: bool, code: i32) {
    adopt_orphans();
    let mut run = LongRun::start(test, true);
    let region = run.wait_running();
    if group {
        run.signal_group(sig);
    } else {
        run.signal(sig);
    }
    let (status, err) = run.wait_exit();
    assert_eq!(status.code(), Some(code), "{status}; stderr:\n{err}");
    assert!(err.contains(&format!("interrupted by {sig}")), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // It said what it was doing: each process's items so far.
    assert!(err.contains("items so far: src "), "{err}");
    assert!(
        run.seen
            .iter()
            .any(|l| l.contains(&format!("stopped: interrupted by {sig}"))),
        "{}",
        run.seen.join("\n")
    );
    assert!(!std::path::Path::new("/dev/shm").join(&region).exists());
    run.assert_nothing_left();
}

#[test]
fn sigint_to_the_runner_stops_the_run_with_130_and_leaves_nothing() {
    stop_with("sigint", Signal::SIGINT, false, 130);
}

#[test]
fn ctrl_c_to_the_process_group_stops_the_run_with_130_and_leaves_nothing() {
    stop_with("sigint-group", Signal::SIGINT, true, 130);
}

#[test]
fn sigterm_stops_the_run_with_143_and_leaves_nothing() {
    stop_with("sigterm", Signal::SIGTERM, false, 143);
}

#[test]
fn sighup_to_the_process_group_stops_the_run_with_129_and_leaves_nothing() {
    stop_with("sighup-group", Signal::SIGHUP, true, 129);
}

#[test]
fn a_region_truncated_under_the_run_fails_it_clearly_and_leaves_nothing() {
    adopt_orphans();
    let mut run = LongRun::start("truncated", true);
    let region = run.wait_running();
    // What `truncate -s 4096 /dev/shm/NAME` does: every page past the first now faults.
    std::fs::OpenOptions::new()
        .write(true)
        .open(std::path::Path::new("/dev/shm").join(&region))
        .and_then(|f| f.set_len(4096))
        .expect("truncate the region");
    let (status, err) = run.wait_exit();
    assert_eq!(status.code(), Some(1), "{status}; stderr:\n{err}");
    assert!(
        err.contains(&format!(
            "region {region} was truncated under the run (4096 of its 4194304 bytes left)"
        )),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let out = run.seen.join("\n");
    assert!(out.contains("FAIL: "), "{out}");
    // Each process was either stopped by the runner or died of the fault, and is
    // reported as such.
    for p in ["src", "mid", "snk"] {
        let row = run
            .seen
            .iter()
            .find(|l| l.trim_start().starts_with(&format!("{p}: ")))
            .unwrap_or_else(|| panic!("no outcome for {p}:\n{out}"));
        assert!(
            row.contains("stopped: region truncated") || row.contains("died of SIGBUS"),
            "{row}"
        );
    }
    run.assert_nothing_left();
}
