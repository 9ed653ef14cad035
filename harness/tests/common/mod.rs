//! What the tests of `shmval run` as a Unix tool share: a run started as a user starts
//! it, read line by line as it goes, and the checks that it left nothing behind.
//!
//! A run is started in a process group of its own (so a test can signal the group
//! without signalling itself), under a region prefix of its own. Whatever happens to the
//! test, dropping the [`LongRun`] kills that group and removes every file of the prefix
//! from `/dev/shm`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How long any wait in these tests may take before it fails the test.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A scenario that runs until it is stopped: a source sending 2000 packets a second
/// through a middle to a sink, with a time bound of five minutes.
pub const LONG: &str = r#"
name = "long"
description = "runs until it is stopped"
[region]
prefix = "unused"
bytes = 4_194_304
[[pipe]]
name = "p"
capacity = 16
[[pipe]]
name = "q"
capacity = 16
[[process]]
name = "src"
kind = "source"
out = "p"
count = 1_000_000_000
rate = 2000
[[process]]
name = "mid"
kind = "middle"
in = "p"
out = "q"
[[process]]
name = "snk"
kind = "sink"
in = "q"
[expect]
max_seconds = 300
"#;

/// A scratch folder removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh folder for test `name`.
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("shmval-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch folder");
        Scratch(dir)
    }

    /// Writes `text` to `file` in it; returns its path.
    pub fn file(&self, file: &str, text: &str) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, text).expect("write scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Files in `/dev/shm` whose names start with `prefix`.
pub fn shm_files(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| f.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// `shmval run` of [`LONG`], started in its own process group, its standard output read
/// line by line.
pub struct LongRun {
    /// The runner.
    pub child: Child,
    /// Its region prefix: every file of the run starts with it.
    pub prefix: String,
    lines: Option<Receiver<String>>,
    stdout: Option<ChildStdout>,
    /// Every line read so far.
    pub seen: Vec<String>,
    _scratch: Scratch,
}

impl LongRun {
    /// Starts the run for test `test`; `read_lines` false leaves its standard output to
    /// the test ([`LongRun::stdout`]).
    pub fn start(test: &str, read_lines: bool) -> LongRun {
        let scratch = Scratch::new(test);
        let file = scratch.file("long.toml", LONG);
        let prefix = format!("shmval-test-{test}-{}", std::process::id());
        let mut child = Command::new(env!("CARGO_BIN_EXE_shmval"))
            .args(["run", "--prefix", &prefix])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start shmval run");
        let mut run = LongRun {
            stdout: child.stdout.take(),
            child,
            prefix,
            lines: None,
            seen: vec![],
            _scratch: scratch,
        };
        if read_lines {
            let out = run.stdout.take().expect("stdout");
            let (tx, rx) = channel();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            run.lines = Some(rx);
        }
        run
    }

    /// Its standard output, when the test reads it itself.
    pub fn stdout(&mut self) -> ChildStdout {
        self.stdout.take().expect("stdout not taken")
    }

    /// Reads lines until one satisfies `pick`; returns it. Fails the test if the output
    /// ends or [`PATIENCE`] passes first.
    pub fn wait_for(&mut self, what: &str, pick: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let rx = self.lines.as_ref().expect("lines are read");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pick(&line) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no line {what} ({e}); output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits until the progress shows the sink has received packets: the run is running.
    /// Returns the region's name.
    pub fn wait_running(&mut self) -> String {
        let first = self.wait_for("naming the region", |l| l.contains(", region "));
        let region = first
            .rsplit(", region ")
            .next()
            .expect("region name")
            .trim()
            .to_string();
        assert!(region.starts_with(&self.prefix), "{first}");
        self.wait_for("showing the sink's progress", |l| {
            l.split([',', ';'])
                .filter_map(|part| part.trim().strip_prefix("snk "))
                .any(|n| n.trim().parse::<u64>().is_ok_and(|n| n > 0))
        });
        region
    }

    /// The pids of the processes the runner said it started, the keeper's included.
    pub fn pids(&self) -> Vec<u32> {
        self.seen
            .iter()
            .filter_map(|l| l.split("(pid ").nth(1)?.split(')').next()?.parse().ok())
            .collect()
    }

    /// Sends `sig` to the runner alone.
    pub fn signal(&self, sig: Signal) {
        nix::sys::signal::kill(Pid::from_raw(self.child.id() as i32), sig).expect("signal");
    }

    /// Sends `sig` to the runner's process group, as a terminal sends Ctrl-C.
    pub fn signal_group(&self, sig: Signal) {
        killpg(Pid::from_raw(self.child.id() as i32), sig).expect("signal the group");
    }

    /// Waits for the runner to exit (failing the test after [`PATIENCE`]); returns its
    /// status and standard error. Lines still coming on standard output are kept.
    pub fn wait_exit(&mut self) -> (ExitStatus, String) {
        let mut err = self.child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "the runner did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        if let Some(rx) = &self.lines {
            // The reader thread may still be passing the last lines on: take them all, to
            // the end of the output (the thread then drops its sender).
            while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                self.seen.push(line);
            }
        }
        (status, reader.join().unwrap_or_default())
    }

    /// Checks that nothing of the run is left: no file of its prefix in `/dev/shm`, and
    /// none of the processes it started still there (a child the runner did not reap
    /// would be left to this test, a subreaper, as a zombie).
    pub fn assert_nothing_left(&self) {
        assert_eq!(shm_files(&self.prefix), Vec::<String>::new(), "files left");
        let pids = self.pids();
        assert!(
            pids.len() >= 4,
            "pids of the keeper and 3 processes: {pids:?}"
        );
        for pid in pids {
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "process {pid} of the run is still there:\n{}",
                std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default()
            );
        }
    }
}

impl Drop for LongRun {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
        for f in shm_files(&self.prefix) {
            let _ = std::fs::remove_file(PathBuf::from("/dev/shm").join(f));
        }
    }
}

/// Makes this test process adopt the orphans of its children's children, so that a
/// process a runner leaves unreaped stays visible (as a zombie) instead of being reaped
/// by init.
pub fn adopt_orphans() {
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
}

/// Runs the `shmval` binary with `args` to the end.
pub fn shmval(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shmval"))
        .args(args)
        .output()
        .expect("run shmval")
}

/// A successful run's standard output, as JSON.
pub fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}
