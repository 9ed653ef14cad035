//! Timing the calls other processes make while a child holds a lock: each call must return
//! within its bound whatever the holder does (paused inside the lock, or stopped), and the
//! slack (how far past its bound it returned) is collected into a table the test prints
//! (`cargo test --test NAME -- --nocapture` shows it).

use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How far past its bound a call may return before the test fails. Generous, so that a
/// loaded machine cannot fail it: only a call that waits for the holder can.
pub const CEILING: Duration = Duration::from_secs(2);

/// How long a call may block before the watchdog kills the holder to free it: the call
/// then returns and the test fails on the ceiling instead of hanging.
pub const HANG: Duration = Duration::from_secs(30);

/// The bound a timed call takes: 100 ms, short enough to repeat, long enough to sleep.
pub const BOUND: Duration = Duration::from_millis(100);

/// Measurements per call and holder state.
pub const RUNS: usize = 5;

/// What the lock holder is doing while a call is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// Alive and sleeping at its pause point, inside the lock.
    Paused,
    /// The same, and stopped by SIGSTOP as well.
    Stopped,
}

impl Holder {
    fn label(self) -> &'static str {
        match self {
            Holder::Paused => "paused",
            Holder::Stopped => "stopped",
        }
    }
}

/// What a call promises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// Gives up at its timeout: never earlier, and soon after.
    Timeout(Duration),
    /// Returns at once (a `try_` call, a drop, a call that needs no held lock).
    AtOnce,
}

impl Bound {
    fn budget(self) -> Duration {
        match self {
            Bound::Timeout(d) => d,
            Bound::AtOnce => Duration::ZERO,
        }
    }
}

struct Row {
    call: String,
    holder: Holder,
    bound: Bound,
    slack: Vec<Duration>,
}

/// The slack of every call measured against one held lock.
pub struct Slack {
    title: String,
    holder_pid: u32,
    rows: Vec<Row>,
}

impl Slack {
    /// A table for the lock held by process `holder_pid`.
    pub fn new(title: impl Into<String>, holder_pid: u32) -> Slack {
        Slack {
            title: title.into(),
            holder_pid,
            rows: Vec::new(),
        }
    }

    /// Runs `f`, the call named `call`, while the holder is `holder`. Asserts that it
    /// returned no earlier than its timeout (if it has one) and within its bound plus
    /// [`CEILING`], and records the slack. A call still blocked after [`HANG`] has the
    /// holder killed, so that the test fails instead of hanging.
    pub fn time<R>(
        &mut self,
        call: &str,
        holder: Holder,
        bound: Bound,
        f: impl FnOnce() -> R,
    ) -> R {
        let watchdog = Watchdog::arm(self.holder_pid, call);
        let t = Instant::now();
        let r = f();
        let took = t.elapsed();
        drop(watchdog);
        let budget = bound.budget();
        assert!(
            took >= budget,
            "{call} (holder {}) returned after {took:?}, before its bound {budget:?}",
            holder.label()
        );
        assert!(
            took <= budget + CEILING,
            "{call} (holder {}) returned after {took:?}: its bound is {budget:?}",
            holder.label()
        );
        let slack = took - budget;
        match self
            .rows
            .iter_mut()
            .find(|r| r.call == call && r.holder == holder)
        {
            Some(row) => row.slack.push(slack),
            None => self.rows.push(Row {
                call: call.to_string(),
                holder,
                bound,
                slack: vec![slack],
            }),
        }
        r
    }

    /// Prints the table: per call and holder state, the bound, the runs, and the median
    /// and largest slack.
    pub fn print(&self) {
        let mut out = format!(
            "\n{}\n{:<44} {:<8} {:>8} {:>5} {:>14} {:>11}\n",
            self.title, "call", "holder", "bound", "runs", "median slack", "max slack"
        );
        for r in &self.rows {
            let mut s = r.slack.clone();
            s.sort();
            let bound = match r.bound {
                Bound::Timeout(d) => format!("{} ms", d.as_millis()),
                Bound::AtOnce => "at once".to_string(),
            };
            out.push_str(&format!(
                "{:<44} {:<8} {:>8} {:>5} {:>14} {:>11}\n",
                r.call,
                r.holder.label(),
                bound,
                s.len(),
                ms(s[s.len() / 2]),
                ms(s[s.len() - 1]),
            ));
        }
        // One write, so that tables of tests running at once do not interleave.
        print!("{out}");
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Kills the holder if the call it watches is still blocked after [`HANG`]; stands down
/// when dropped.
struct Watchdog {
    stand_down: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn arm(pid: u32, call: &str) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let call = call.to_string();
        let thread = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(HANG) {
                eprintln!("{call} is still blocked after {HANG:?}: killing the lock holder");
                // The holder is not reaped while the test thread is blocked in the call,
                // so the pid is still its own. SIGKILL ends a stopped process too.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        });
        Watchdog {
            stand_down: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stand_down.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A pool's use: bytes in used blocks, and their number.
pub fn in_use(pool: &shmval::alloc::Pool) -> (u64, u64) {
    // What this process's ledgers keep is not counted: it grows with the values held at
    // once, and stays while the region handle lives.
    let s = pool.stats().expect("pool stats");
    let k = shmval::ledger::kept(pool);
    (s.used - k.bytes, s.live_allocations - k.blocks)
}

/// Asserts that the pool lock, a pipe's lock or the directory's lock (whose owner is
/// `owner`) is held by a thread of process `pid`.
pub fn assert_held_by(owner: Option<shmval::sync::Owner>, pid: u32, what: &str) {
    let owner = owner.unwrap_or_else(|| panic!("nobody holds {what}"));
    let task = format!("/proc/{pid}/task/{}", owner.tid());
    assert!(
        std::path::Path::new(&task).exists(),
        "{what} is held by thread {}, not by the paused child {pid}",
        owner.tid()
    );
}
