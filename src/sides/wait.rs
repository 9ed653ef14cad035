//! Waiting for a region or a pipe to appear, with a timeout and a break checker, without
//! busy polling.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::error::SidesError;
use crate::region::{AttachOptions, Region, RegionError, RegionName, SHM_DIR};

pub use crate::queue::BreakChecker;

/// How long and how a side waits.
#[derive(Clone)]
pub(crate) struct WaitPolicy {
    pub(crate) timeout: Option<Duration>,
    pub(crate) micro_sleep: Duration,
    pub(crate) brk: Option<BreakChecker>,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy {
            timeout: None,
            micro_sleep: Duration::from_millis(100),
            brk: None,
        }
    }
}

impl std::fmt::Debug for WaitPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitPolicy")
            .field("timeout", &self.timeout)
            .field("micro_sleep", &self.micro_sleep)
            .field("break_checker", &self.brk.is_some())
            .finish()
    }
}

/// One wait in progress: hands out sleep slices of at most `micro_sleep`, asking the break
/// checker and the clock before each.
pub(crate) struct Waiting<'a> {
    policy: &'a WaitPolicy,
    start: Instant,
    what: String,
}

impl<'a> Waiting<'a> {
    pub(crate) fn new(policy: &'a WaitPolicy, what: String) -> Self {
        Waiting {
            policy,
            start: Instant::now(),
            what,
        }
    }

    /// When the wait gives up, if it has a timeout.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.policy.timeout.and_then(|t| self.start.checked_add(t))
    }

    /// The next slice to sleep, or why the wait is over.
    pub(crate) fn next_slice(&self) -> Result<Duration, SidesError> {
        if self.policy.brk.as_ref().is_some_and(|f| f()) {
            return Err(SidesError::Broken(self.what.clone()));
        }
        let mut slice = self.policy.micro_sleep;
        if let Some(t) = self.policy.timeout {
            let waited = self.start.elapsed();
            if waited >= t {
                return Err(SidesError::Timeout {
                    what: self.what.clone(),
                    waited,
                });
            }
            slice = slice.min(t - waited);
        }
        Ok(slice)
    }
}

/// Attaches to region `name`, waiting for it to be created if it does not exist yet.
/// An inotify watch on `/dev/shm` wakes the wait as soon as a file appears there; without
/// inotify the wait sleeps a slice at a time.
pub(crate) fn attach_region(
    name: &RegionName,
    policy: &WaitPolicy,
) -> Result<Arc<Region>, SidesError> {
    let waiting = Waiting::new(policy, format!("region {name}"));
    let watch = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .ok()
        .filter(|i| {
            i.add_watch(
                SHM_DIR,
                AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO,
            )
            .is_ok()
        });
    loop {
        let mut opts = AttachOptions::new()
            .timeout(policy.timeout.unwrap_or(Duration::from_secs(5)))
            .micro_sleep(policy.micro_sleep);
        if let Some(f) = &policy.brk {
            let f = f.clone();
            opts = opts.break_checker(move || f());
        }
        match opts.attach(name) {
            Ok(r) => return Ok(Arc::new(r)),
            Err(RegionError::NotFound(_)) => {}
            Err(RegionError::Broken(_)) => {
                return Err(SidesError::Broken(format!("region {name}")))
            }
            Err(e) => return Err(e.into()),
        }
        let slice = waiting.next_slice()?;
        match &watch {
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
