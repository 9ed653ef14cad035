//! [`Lookup`]: a process that has nothing but a region's name and a value's name attaches
//! to the region and finds the value, waiting for both.

use std::time::{Duration, Instant};

use super::Names;
use crate::alloc::Pool;
use crate::region::RegionName;
use crate::sides::error::SidesError;
use crate::sides::name::ValueName;
use crate::sides::wait::{attach_region, WaitPolicy, Waiting};
use crate::ShmVal;

/// Builder of a wait for a named value: `Lookup::new(region, name)`, options, then
/// [`start`](Lookup::start), which waits for the region (as a
/// [`ClientSide`](crate::sides::ClientSide) does), attaches to it, and waits for a value to
/// be published under the name (as [`Names::lookup`] does).
///
/// ```no_run
/// use std::time::Duration;
/// use shmval::sides::Lookup;
///
/// let config = Lookup::new("mempool", "config")
///     .timeout(Duration::from_secs(10))
///     .start()?;
/// println!("rate {}", config.field("rate")?.as_i64()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The handle keeps the region mapped (and this process registered in it) while it lives.
#[derive(Clone, Debug)]
#[must_use = "nothing happens until start()"]
pub struct Lookup {
    region: String,
    name: String,
    wait: WaitPolicy,
}

impl Lookup {
    /// Starts building a wait for the value named `name` in region `region`.
    pub fn new(region: impl Into<String>, name: impl Into<String>) -> Lookup {
        Lookup {
            region: region.into(),
            name: name.into(),
            wait: WaitPolicy::default(),
        }
    }

    /// A function asked every `micro_sleep` while `start` waits (for the region, the
    /// names lock or the name); returning `true` ends the wait with
    /// [`SidesError::Broken`].
    pub fn break_checker(mut self, f: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.wait.brk = Some(std::sync::Arc::new(f));
        self
    }

    /// How often a waiting `start` wakes to run the break checker (default 100 ms).
    pub fn micro_sleep(mut self, d: Duration) -> Self {
        self.wait.micro_sleep = d.max(Duration::from_micros(100));
        self
    }

    /// How long `start` waits for the region and the name, in all, before giving up with
    /// [`SidesError::Timeout`] saying what was missing (default
    /// [`DEFAULT_START_TIMEOUT`](crate::sides::DEFAULT_START_TIMEOUT), 60 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.wait.timeout = Some(d);
        self
    }

    /// Lets `start` wait as long as it takes (the break checker still runs, and the wait
    /// still says so on standard error).
    pub fn wait_forever(mut self) -> Self {
        self.wait.timeout = None;
        self
    }

    /// After how long a waiting `start` says on standard error what it waits for (default
    /// [`DEFAULT_NOTICE_AFTER`](crate::sides::DEFAULT_NOTICE_AFTER), 5 s); `None` keeps it
    /// quiet.
    pub fn notice_after(mut self, d: Option<Duration>) -> Self {
        self.wait.notice_after = d;
        self
    }

    /// Reports each step (attaching, waiting) on standard error.
    pub fn debug(mut self, debug: bool) -> Self {
        self.wait.debug = debug;
        self
    }

    /// Waits for the region, attaches to it, then waits for a value to be published under
    /// the name and returns a new handle to it. If the region is replaced by a newer one of
    /// the same name while it waits, it follows the new one. The timeout covers the whole
    /// wait, whatever the other processes do (the names lock held by a stopped process
    /// included).
    ///
    /// # Errors
    ///
    /// [`SidesError::Timeout`] or [`SidesError::Broken`] while waiting; a bad region or
    /// value name; [`SidesError::NoDirectory`] for a region not made by `ShmMain`.
    pub fn start(self) -> Result<ShmVal, SidesError> {
        let region_name = RegionName::new(self.region.clone())?;
        let name = ValueName::new(self.name.clone())?;
        let what = || format!("value {name} in region {region_name}");
        let waiting = Waiting::new(&self.wait, &what);
        let mut seen_region = false;
        loop {
            // The region is waited for within what is left of the timeout.
            let left = WaitPolicy {
                timeout: waiting
                    .deadline()
                    .map(|d| d.saturating_duration_since(Instant::now())),
                ..self.wait.clone()
            };
            let region = attach_region(&region_name, &left, seen_region)?;
            seen_region = true;
            let pool = Pool::attach(region.clone())?;
            // A process attaching gives back what dead ones held (without waiting for a
            // lock a live process holds: the timeout stands).
            super::super::recover::install_resolvers();
            crate::ledger::reap_quick(&pool);
            let names = Names {
                wait: self.wait.clone(),
                ..Names::open(&pool)?
            };
            self.wait.log(format_args!(
                "waiting for value {name} in region {region_name}"
            ));
            while region.is_current() {
                if let Some(v) = names.look(&name, &waiting)? {
                    self.wait
                        .log(format_args!("found value {name} in region {region_name}"));
                    return Ok(v);
                }
            }
            // A newer region replaced this one under the name: wait on that.
        }
    }
}
