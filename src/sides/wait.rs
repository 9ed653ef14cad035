//! Waiting for a region or a pipe to appear, with a timeout and a break checker, without
//! busy polling.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::error::SidesError;
use crate::region::{AttachOptions, Region, RegionError, RegionName, SHM_DIR};

pub use crate::queue::BreakChecker;

/// How long `start` waits for the region and the pipe unless told otherwise: long enough
/// for the other side to be started by hand, short enough that a misspelt name ends.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);

/// After how long a waiting `start` says on standard error what it waits for, unless told
/// otherwise.
pub const DEFAULT_NOTICE_AFTER: Duration = Duration::from_secs(5);

/// How long and how a side waits.
#[derive(Clone)]
pub(crate) struct WaitPolicy {
    pub(crate) timeout: Option<Duration>,
    pub(crate) micro_sleep: Duration,
    pub(crate) brk: Option<BreakChecker>,
    /// After how long a wait says so on standard error (`None`: never).
    pub(crate) notice_after: Option<Duration>,
    /// Report each step on standard error.
    pub(crate) debug: bool,
    /// Count the side as a sender from the start.
    pub(crate) sends: bool,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy {
            timeout: Some(DEFAULT_START_TIMEOUT),
            micro_sleep: Duration::from_millis(100),
            brk: None,
            notice_after: Some(DEFAULT_NOTICE_AFTER),
            debug: false,
            sends: false,
        }
    }
}

impl std::fmt::Debug for WaitPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitPolicy")
            .field("timeout", &self.timeout)
            .field("micro_sleep", &self.micro_sleep)
            .field("break_checker", &self.brk.is_some())
            .field("notice_after", &self.notice_after)
            .field("debug", &self.debug)
            .field("sends", &self.sends)
            .finish()
    }
}

impl WaitPolicy {
    /// Reports a step on standard error if asked to.
    pub(crate) fn log(&self, msg: std::fmt::Arguments<'_>) {
        if self.debug {
            eprintln!("shmval: {msg}");
        }
    }
}

/// One wait in progress: hands out sleep slices of at most `micro_sleep`, asking the break
/// checker and the clock before each, and says once on standard error when it has gone on
/// for `notice_after`.
pub(crate) struct Waiting<'a> {
    policy: &'a WaitPolicy,
    start: Instant,
    /// What is waited for, in words: made only for a notice or an error.
    what: &'a dyn Fn() -> String,
    noticed: std::cell::Cell<bool>,
}

impl<'a> Waiting<'a> {
    pub(crate) fn new(policy: &'a WaitPolicy, what: &'a dyn Fn() -> String) -> Self {
        Waiting {
            policy,
            start: Instant::now(),
            what,
            noticed: std::cell::Cell::new(false),
        }
    }

    /// When the wait gives up, if it has a timeout.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.policy.timeout.and_then(|t| self.start.checked_add(t))
    }

    /// The next slice to sleep, or why the wait is over. `why` says what is missing (for
    /// the notice and the timeout's message: a name that never existed, or one removed).
    pub(crate) fn next_slice(&self, why: impl FnOnce() -> String) -> Result<Duration, SidesError> {
        if self.policy.brk.as_ref().is_some_and(|f| f()) {
            return Err(SidesError::Broken((self.what)()));
        }
        let waited = self.start.elapsed();
        let mut slice = self.policy.micro_sleep;
        if let Some(t) = self.policy.timeout {
            if waited >= t {
                return Err(SidesError::Timeout {
                    what: format!("{}: {}", (self.what)(), why()),
                    waited,
                });
            }
            slice = slice.min(t - waited);
        }
        match self.policy.notice_after {
            Some(after) if waited >= after && !self.noticed.replace(true) => {
                let bound = match self.policy.timeout {
                    Some(t) => format!("gives up after {:.0} s", t.as_secs_f64()),
                    None => "has no time limit".into(),
                };
                eprintln!(
                    "shmval: still waiting after {:.0} s for {}: {} (the wait {bound})",
                    waited.as_secs_f64(),
                    (self.what)(),
                    why()
                );
            }
            Some(after) if waited < after => slice = slice.min(after - waited),
            _ => {}
        }
        Ok(slice)
    }
}

/// Attaches to region `name`, waiting for it to be created if it does not exist yet.
/// An inotify watch on `/dev/shm` (set up only once the region is found missing) wakes the
/// wait as soon as a file appears there; without inotify the wait sleeps a slice at a
/// time. `seen_before` says whether this side had already attached to a region of that
/// name, which the messages then call removed rather than never made.
/// The regions this process holds handles of (made by `ShmMain` or attached by a side),
/// so that its sides share one handle per region: one registry slot and one ledger per
/// process, not one per side.
static HELD: std::sync::Mutex<Vec<std::sync::Weak<Region>>> = std::sync::Mutex::new(Vec::new());

/// Remembers `region` as held by this process, for sides to share.
pub(crate) fn remember(region: &Arc<Region>) {
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    held.retain(|w| w.strong_count() > 0);
    held.push(Arc::downgrade(region));
}

/// How old a look at a held region's file may be for a side starting on it to trust it:
/// starting sides in a loop (a pipe per request) then costs no system call, and a region
/// unlinked by hand is left for a new one within this time. A region unlinked through this
/// library is seen at once.
const HELD_CURRENT_FOR: Duration = Duration::from_millis(10);

/// A handle this process holds of the region `name`, if it still stands under the name.
fn held(name: &RegionName) -> Option<Arc<Region>> {
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    held.retain(|w| w.strong_count() > 0);
    held.iter().filter_map(|w| w.upgrade()).find(|r| {
        r.name() == name && r.made_in_this_process() && r.is_current_within(HELD_CURRENT_FOR)
    })
}

pub(crate) fn attach_region(
    name: &RegionName,
    policy: &WaitPolicy,
    seen_before: bool,
) -> Result<Arc<Region>, SidesError> {
    if let Some(r) = held(name) {
        return Ok(r);
    }
    let what = || format!("region {name}");
    let waiting = Waiting::new(policy, &what);
    let why = || {
        if seen_before {
            "it was removed while this side waited, and no region of that name is back".into()
        } else {
            format!(
                "no region of that name exists in {SHM_DIR} (ShmMain creates it; `shmval list` \
                 shows the regions there)"
            )
        }
    };
    let mut watch: Option<Option<Inotify>> = None;
    loop {
        let mut opts = AttachOptions::new()
            .timeout(policy.timeout.unwrap_or(Duration::from_secs(5)))
            .micro_sleep(policy.micro_sleep);
        if let Some(f) = &policy.brk {
            let f = f.clone();
            opts = opts.break_checker(move || f());
        }
        match opts.attach(name) {
            Ok(r) => {
                policy.log(format_args!("attached to region {name}"));
                let r = Arc::new(r);
                remember(&r);
                return Ok(r);
            }
            Err(RegionError::NotFound(_)) => {}
            Err(RegionError::Broken(_)) => {
                return Err(SidesError::Broken(format!("region {name}")))
            }
            Err(e) => return Err(e.into()),
        }
        // The region is missing: watch the directory from now on (then attach once more,
        // so a region made in between is not missed).
        if watch.is_none() {
            policy.log(format_args!("waiting for region {name} to be created"));
            watch = Some(
                Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
                    .ok()
                    .filter(|i| {
                        i.add_watch(
                            SHM_DIR,
                            AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO,
                        )
                        .is_ok()
                    }),
            );
            continue;
        }
        let slice = waiting.next_slice(why)?;
        match watch.as_ref().and_then(Option::as_ref) {
            Some(i) => {
                let ms = u16::try_from(slice.as_millis().max(1)).unwrap_or(u16::MAX);
                let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(i), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::from(ms));
                // Empty the queue; what appeared is checked by the next attach.
                while matches!(i.read_events(), Ok(ev) if !ev.is_empty()) {}
            }
            None => std::thread::sleep(slice),
        }
    }
}

/// Takes `lock` (until `deadline`, if any): a timeout names `what` as held by a live
/// thread. The directories' locks are taken this way.
pub(crate) fn lock_until<'a>(
    lock: &'a crate::sync::ShmMutex,
    deadline: Option<Instant>,
    what: impl FnOnce() -> String,
) -> Result<crate::sync::ShmMutexGuard<'a>, SidesError> {
    let start = Instant::now();
    match deadline {
        None => Ok(lock.lock()),
        Some(d) => lock.lock_deadline(d).map_err(|_| SidesError::Timeout {
            what: format!("{} (its lock is held by a live thread)", what()),
            waited: start.elapsed(),
        }),
    }
}
