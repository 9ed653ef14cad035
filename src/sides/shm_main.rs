//! [`ShmMain`]: creates the named pool once, with its pipe and names directories.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::directory::{DirEntry, Directory};
use super::error::SidesError;
use crate::alloc::Pool;
use crate::region::{CreateOptions, Region, RegionError, RegionName};
use crate::sync::MadeIn;

/// Builder for [`ShmMain`]: `ShmMain::new(name, bytes)`, options, then
/// [`start`](ShmMainBuilder::start).
#[derive(Clone, Debug)]
#[must_use = "nothing happens until start()"]
pub struct ShmMainBuilder {
    name: String,
    bytes: u64,
    mode: u32,
    persist: bool,
    debug: bool,
    processes: Option<u32>,
    max: Option<u64>,
}

impl ShmMainBuilder {
    /// How many processes may be attached at once: the slots of the region's process
    /// registry, 64 bytes each (default: one per 4 KiB of the region, 16 to 512). A
    /// process attaching when all are taken gets [`RegionError::RegistryFull`]; a dead
    /// process's slot is reclaimed by the survivors.
    pub fn processes(mut self, n: u32) -> Self {
        self.processes = Some(n.max(1));
        self
    }

    /// The most the pool may grow to (default: its starting size: a pool grows only when
    /// asked to, so that a full pool stays the bound on memory it was; any maximum up to
    /// 1 TiB costs only address space until the pool grows into it). The region
    /// maps the maximum once in every process (address space, not memory) and its file
    /// grows in steps of at least 2 MiB, doubling, when an allocation does not fit; a
    /// growth past the free space of `/dev/shm` or the maximum is an error at that
    /// allocation, never a SIGBUS later.
    pub fn max_bytes(mut self, max: u64) -> Self {
        self.max = Some(max);
        self
    }

    /// Permission bits of the region file (default 0600).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Keep the region's name after this `ShmMain` drops (default: unlink it).
    pub fn persist(mut self, persist: bool) -> Self {
        self.persist = persist;
        self
    }

    /// Report each step on standard error.
    pub fn debug(mut self, debug: bool) -> Self {
        self.debug = debug;
        self
    }

    /// Removes a stale region of the same name (only one of ours whose creator is dead),
    /// creates the region, formats the pool and the pipe directory, and only then makes
    /// the region visible under its name.
    ///
    /// # Errors
    ///
    /// [`SidesError::Region`] (a bad name or size, no space, the name held by a region
    /// whose creator still runs: `AlreadyExists`), [`SidesError::NameTaken`] when a file
    /// that is not one of our regions holds the name, [`SidesError::Alloc`].
    #[must_use = "dropping the ShmMain unlinks the region's name: keep it while others attach"]
    pub fn start(self) -> Result<ShmMain, SidesError> {
        let name = RegionName::new(self.name.clone())?;
        match Region::remove_stale(&name) {
            Ok(true) => self.log(format_args!("removed stale region {name}")),
            Ok(false) => {}
            Err(RegionError::BadMagic(_)) => {
                return Err(SidesError::NameTaken {
                    name: name.to_string(),
                    why: "the file there is not a shmval region".into(),
                })
            }
            Err(e) => return Err(e.into()),
        }
        let mut options = CreateOptions::new().mode(self.mode).persist(self.persist);
        if let Some(n) = self.processes {
            options = options.registry(n);
        }
        if let Some(max) = self.max {
            options = options.max_size(max.max(self.bytes));
        }
        let building = options.build(&name, self.bytes)?;
        let pool = Pool::create(building.region().clone())?;
        super::recover::install_resolvers();
        Directory::format(&pool)?;
        let region = building.publish()?;
        super::wait::remember(&region);
        self.log(format_args!(
            "created region {name}: {} bytes, id {}",
            self.bytes,
            region.id()
        ));
        Ok(ShmMain {
            region,
            pool,
            persist: self.persist,
            debug: self.debug,
            made_in: MadeIn::this_process(),
        })
    }

    fn log(&self, msg: std::fmt::Arguments<'_>) {
        if self.debug {
            eprintln!("shmval: {msg}");
        }
    }
}

/// The named shared-memory pool, created once: the seed's `SHMMain`.
///
/// Keep it in a named variable for as long as the region should be found by name:
/// `let _ = ShmMain::new(..).start()?` drops it at once, which unlinks the name. A result
/// left unused is a warning (`#[must_use]`), an error where that lint is denied:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// fn serve() -> Result<(), shmval::sides::SidesError> {
///     shmval::sides::ShmMain::new("mempool", 1 << 20).start()?; // dropped at once
///     Ok(())
/// }
/// ```
///
/// It owns the region's name: dropping it unlinks the name (unless persisted), while
/// processes still attached keep working in their mapping. Sides find the region by name
/// and the pipes in it through its directory.
#[derive(Debug)]
#[must_use = "dropping the ShmMain unlinks the region's name: keep it while others attach"]
pub struct ShmMain {
    region: Arc<Region>,
    pool: Pool,
    persist: bool,
    debug: bool,
    /// A child forked from the process that started it never unlinks the name.
    made_in: MadeIn,
}

impl ShmMain {
    /// Gives back now what every dead process attached to the region held (see
    /// [`crate::ledger`]), as far as it can: what waits on a lock a live process holds, or
    /// on room in a full pipe to redeliver into, is given back later. Recovery also runs
    /// by itself (when a process attaches, takes a lock over from a dead one, wakes from a
    /// wait, or makes a call 50 ms after its last look); this is for a caller that wants it
    /// done at a known point. Returns what recovery has given back in the region so far.
    pub fn recover(&self) -> crate::ledger::Recovered {
        super::recover::recover(&self.pool)
    }

    /// Starts building the pool `name` of `bytes` bytes.
    // The seed's vocabulary: `new(...)` takes the required arguments, options follow,
    // `start()` makes the thing.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(name: impl Into<String>, bytes: u64) -> ShmMainBuilder {
        ShmMainBuilder {
            name: name.into(),
            bytes,
            mode: 0o600,
            persist: false,
            debug: false,
            processes: None,
            max: None,
        }
    }

    /// The pool, to share values in.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The region.
    pub fn region(&self) -> &Arc<Region> {
        &self.region
    }

    /// The region's named values: publish a value under a name, find one by name.
    ///
    /// # Errors
    ///
    /// [`SidesError::NamesCorrupted`] or a region error if the directory does not check
    /// out.
    pub fn names(&self) -> Result<super::Names, SidesError> {
        super::Names::open(&self.pool)
    }

    /// The pipes in the region's directory now.
    ///
    /// # Errors
    ///
    /// [`SidesError::Corrupted`] or a region error if the directory does not check out.
    pub fn pipes(&self) -> Result<Vec<DirEntry>, SidesError> {
        Directory::open(&self.pool)?.list(None)
    }

    /// Removes the pipe `name` from the region's directory, whatever it holds: the values
    /// still queued in it are dropped once no handle to it is left. Returns whether there
    /// was one. A pipe is otherwise removed only when nobody uses it and it is empty (or
    /// never, if persisted). Waits for the directory lock as long as a live thread holds it.
    ///
    /// # Errors
    ///
    /// A bad name, or [`SidesError::Corrupted`] or a region error if the directory does not
    /// check out.
    pub fn remove_pipe(&self, name: &str) -> Result<bool, SidesError> {
        let name = super::name::PipeName::new(name)?;
        Directory::open(&self.pool)?.remove(&name, None)
    }

    /// Waits until every queued value has been taken and no side uses any pipe, up to
    /// `timeout`; returns whether that happened. Call it before dropping `ShmMain`, so
    /// that readers started late still find the region and what was sent to them.
    ///
    /// # Errors
    ///
    /// As [`pipes`](Self::pipes).
    pub fn wait_idle(&self, timeout: Duration) -> Result<bool, SidesError> {
        let dir = Directory::open(&self.pool)?;
        let deadline = Instant::now() + timeout;
        loop {
            let seen = dir.generation()?;
            // A user that died is no user: give back what it held first.
            super::recover::reclaim(&self.pool);
            let busy = match dir.list(Some(deadline)) {
                Ok(l) => l.iter().any(|e| e.users > 0 || e.stats.len > 0),
                Err(SidesError::Timeout { .. }) => return Ok(false),
                Err(e) => return Err(e),
            };
            if !busy {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            // Users leave through the directory (a wake); items drain without one, so
            // look again at least every 10 ms.
            dir.wait_change(seen, (deadline - now).min(Duration::from_millis(10)))?;
        }
    }
}

impl Drop for ShmMain {
    fn drop(&mut self) {
        if !self.made_in.is_this_process() {
            return;
        }
        if !self.persist && self.region.unlink() && self.debug {
            eprintln!("shmval: unlinked region {}", self.region.name());
        }
    }
}
