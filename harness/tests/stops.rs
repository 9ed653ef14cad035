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

/// Processes whose command line holds `needle`, by pid.
fn processes_with(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn ctrl_c_to_the_demo_stops_its_workers_and_removes_its_region() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    adopt_orphans();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmval"))
        .args(["demo", "--workers", "2", "--ops", "1000000000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start shmval demo");
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let region = format!("shmval-demo-{}", child.id());
    // Killed with its group and its region removed, whatever the test does.
    struct Cleanup(nix::unistd::Pid, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = nix::sys::signal::killpg(self.0, Signal::SIGKILL);
            let _ = std::fs::remove_file(std::path::Path::new("/dev/shm").join(&self.1));
        }
    }
    let _cleanup = Cleanup(group, region.clone());
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    // Its progress: the workers run.
    let mut seen = vec![];
    for line in lines.by_ref() {
        let line = line.expect("line");
        seen.push(line.clone());
        if line.contains("2 running") {
            break;
        }
    }
    assert!(seen.iter().any(|l| l.contains("2 running")), "{seen:?}");
    let workers = processes_with(&region);
    assert_eq!(workers.len(), 2, "{workers:?}");
    nix::sys::signal::killpg(group, Signal::SIGINT).expect("Ctrl-C");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}\n{rest:?}");
    assert!(err.contains("interrupted by SIGINT"), "{err}");
    assert!(!std::path::Path::new("/dev/shm").join(&region).exists());
    for pid in workers {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} is still there"
        );
    }
}
