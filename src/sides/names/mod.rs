//! [`Names`]: the directory of named values in a region, where a set of processes finds
//! its shared tables by name (the original's "boot information", generalised).
//!
//! The names directory is a pool block linked from the pipe directory's head, made with
//! it by [`ShmMain`](super::ShmMain). It holds a lock (a [`ShmMutex`](crate::sync::ShmMutex):
//! a holder that died is taken over), a generation word bumped on every change (with a
//! futex wake when a [`lookup`](Names::lookup) sleeps on it), an operation word (below), and
//! [`MAX_NAMES`] entries:
//!
//! | word  | field                                |
//! |-------|--------------------------------------|
//! | 0     | state: 0 free, 1 live                |
//! | 1     | offset of the value's object         |
//! | 2..10 | the name, 64 bytes, zero-padded      |
//!
//! A live entry holds one reference to its value, like a handle: the value lives while it
//! is published, whoever published it and whether that process still runs. Every change
//! is made under the lock; reading a name ([`get`](Names::get), [`lookup`](Names::lookup))
//! makes a new reference under the lock, and the entry keeps its own.
//!
//! # Why a death at any step gives back exactly what it held
//!
//! [`publish`](Names::publish), [`replace`](Names::replace) and
//! [`unpublish`](Names::unpublish) move a reference between a handle of the caller and an
//! entry, and a process may be killed at any instruction. A handle's reference is
//! recorded in the process's [ledger](crate::ledger) (one entry per reference), so the
//! move is recorded there too, and resolved by looking at the names entry under the names
//! lock. The ledger entry is taken before the lock (taking one may run recovery, which
//! may need the lock); everything below happens under the lock, in this order:
//!
//! 1. **Recorded** (`names.*.recorded`): the ledger entry says `Naming`, with the names
//!    entry's offset, the value moving in (publish), out (unpublish) or both (replace:
//!    the new value in, the old one out), and "not stored".
//! 2. **Claimed** (`names.*.claimed`): the directory's operation word names the ledger
//!    entry.
//! 3. **Stored** (`names.*.stored`): one store moves the reference: a publish makes the
//!    entry live (name and value written before), an unpublish makes it free, a replace
//!    writes the new value's offset over the old one's.
//! 4. **Done** (`names.*.done`): the ledger entry says "stored".
//! 5. **Cleared** (`names.*.cleared`): the operation word is cleared.
//! 6. The ledger entry becomes what the caller holds after the call: nothing (publish:
//!    it goes back to the free list), the value taken out (unpublish), the old value
//!    (replace). Then the lock is released.
//!
//! A process that dies with a `Naming` entry died holding the names lock (the entry is
//! `Naming` only between steps 1 and 6). Two things resolve it, both under the lock:
//!
//! - The next locker takes the lock over from the dead holder; its repair finds the
//!   operation word set (steps 2 to 5) and settles the entry it names: it writes into the
//!   ledger entry whether the names entry was stored, read from the names entry itself,
//!   which nobody changed since step 2 (the lock was held all along). Then it clears the
//!   word. A repairer that dies does it again from the same facts.
//! - The ledger's resolver (the survivor giving back the dead process's holdings) takes
//!   the names lock (taking it over, and so repairing, if the dead process holds it; a
//!   live holder is waited for briefly, else the slot is left for later), and reads the
//!   "stored" flag, now exact: before step 2 nothing was stored and the flag says so;
//!   from step 2 to 5 the repair settled it; after step 5 the process had written it.
//!   The reference the ledger entry holds is then the value moving in if not stored,
//!   the value moving out if stored (nothing else): that one, if any, is dropped.
//!
//! The dead process's ledger chunks are freed only once every entry in them is resolved,
//! and a `Naming` entry is resolved only under the lock, after the repair cleared an
//! operation word naming it: the word never names freed (and maybe reused) memory.
//!
//! So no window is ambiguous: each death leaves the reference either in the names entry
//! or recorded in the ledger, and exactly one of them gives it back. Reading a name
//! ([`get`](Names::get), `names.get.counted`) makes a new reference as any clone does
//! (recorded as `Acquiring`, then counted): a death between the two leaves the value
//! counted once too many, as a suspect, never freed early (see [`crate::ledger`]).
//!
//! A process without a ledger (a region without a process registry, an observer) moves
//! references unrecorded: nothing tells a survivor what it held.

mod lookup;
mod moves;
mod table;

use std::time::{Duration, Instant};

pub use lookup::Lookup;
pub use table::MAX_NAMES;
pub(crate) use table::{format, resolve_naming};

use table::{name_of, peek, LIVE};

use super::error::SidesError;
use super::name::ValueName;
use super::wait::{WaitPolicy, Waiting};
use crate::alloc::Pool;
use crate::region::Offset;
use crate::sync::atomic::Ordering;
use crate::val::Tag;
use crate::ShmVal;

/// One named value as [`Names::list`] shows it: a snapshot, not a handle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedEntry {
    /// The name.
    pub name: ValueName,
    /// The value's object offset in the region.
    pub offset: Offset,
    /// The kind of value.
    pub tag: Tag,
    /// Its references when listed: the entry's own, and every handle, container and pipe
    /// slot holding it (a process's clones of a handle count once).
    pub refs: u64,
}

/// The named values of a region: publish a value under a name, and find it by name from any
/// process attached to the region.
///
/// Open it with [`Names::open`], [`ShmMain::names`](super::ShmMain::names) or a side's
/// `names()`; a process that has nothing but the region's name and the value's starts with
/// a [`Lookup`]. A published value lives as long as it is published, whoever published it.
///
/// ```
/// use std::time::Duration;
/// use shmval::sides::ShmMain;
/// use shmval::{val, PoolExt};
/// # let region = format!("shmval-doc-names-{}", std::process::id());
/// # let region = region.as_str();
///
/// let main = ShmMain::new(region, 1 << 20).start()?;
/// let names = main.names()?;
///
/// // One process publishes a table under a name (the entry takes the handle's reference)...
/// let table = main.pool().share(&val!({"rate": 48000, "channels": ["left", "right"]}))?;
/// names.publish("config", table)?;
///
/// // ...another finds it, waiting up to a second for it to be published.
/// let config = names.lookup("config", Duration::from_secs(1))?;
/// assert_eq!(config.field("rate")?.as_i64()?, 48000);
///
/// // A name is taken until it is unpublished; `replace` publishes or replaces.
/// let again = main.pool().share(&val!({"rate": 44100}))?;
/// assert!(names.publish("config", again.clone()).is_err());
/// let old = names.replace("config", again)?.expect("the previous value");
/// assert!(old.ptr_eq(&config));
/// assert_eq!(names.list()?.len(), 1);
/// assert!(names.unpublish("config")?.is_some());
/// assert!(names.get("config")?.is_none());
/// # drop((config, old, names));
/// # drop(main);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Waits: [`lookup`](Self::lookup) waits for the name within its timeout, whatever the
/// other processes do (a lock held by a stopped process included). The other calls wait
/// for the names lock only: as long as a live thread holds it, or until
/// [`lock_timeout`](Self::lock_timeout) if one is set; a holder that died is taken over
/// within about 20 ms.
#[derive(Clone, Debug)]
pub struct Names {
    pool: Pool,
    off: Offset,
    /// How long a call waits for the lock (`None`: as long as a live thread holds it).
    lock_timeout: Option<Duration>,
    /// How a lookup waits (its timeout is the call's).
    wait: WaitPolicy,
}

impl Names {
    /// The names directory of `pool`'s region.
    ///
    /// # Errors
    ///
    /// [`SidesError::NoDirectory`] for a region not made by [`ShmMain`](super::ShmMain),
    /// [`SidesError::NamesCorrupted`] if the directory does not check out.
    pub fn open(pool: &Pool) -> Result<Names, SidesError> {
        super::recover::install_resolvers();
        let off = super::directory::Directory::open(pool)?.names_block()?;
        table::check(pool, off)?;
        Ok(Names {
            pool: pool.clone(),
            off,
            lock_timeout: None,
            wait: WaitPolicy {
                timeout: None,
                notice_after: None,
                ..WaitPolicy::default()
            },
        })
    }

    /// A function asked every `micro_sleep` while a [`lookup`](Self::lookup) waits;
    /// returning `true` ends the wait with [`SidesError::Broken`].
    #[must_use]
    pub fn break_checker(mut self, f: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.wait.brk = Some(std::sync::Arc::new(f));
        self
    }

    /// How often a waiting [`lookup`](Self::lookup) wakes to run the break checker
    /// (default 100 ms), also while another process holds the names lock.
    #[must_use]
    pub fn micro_sleep(mut self, d: Duration) -> Self {
        self.wait.micro_sleep = d.max(Duration::from_micros(100));
        self
    }

    /// After how long a waiting [`lookup`](Self::lookup) says on standard error what it
    /// waits for (default `None`: never).
    #[must_use]
    pub fn notice_after(mut self, d: Option<Duration>) -> Self {
        self.wait.notice_after = d;
        self
    }

    /// How long [`publish`](Self::publish), [`replace`](Self::replace),
    /// [`unpublish`](Self::unpublish), [`get`](Self::get) and [`list`](Self::list) wait
    /// for the names lock before [`SidesError::Timeout`] (default: as long as a live
    /// thread holds it).
    #[must_use]
    pub fn lock_timeout(mut self, d: Duration) -> Self {
        self.lock_timeout = Some(d);
        self
    }

    /// The pool the named values live in.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The offset of the names directory's block in the region (for tools that show it).
    pub fn block(&self) -> Offset {
        self.off
    }

    fn deadline(&self) -> Option<Instant> {
        self.lock_timeout
            .and_then(|t| Instant::now().checked_add(t))
    }

    /// Publishes `value` under `name`: the names entry takes over the handle's reference
    /// (pass a clone to keep using the value). Waits for the names lock (see
    /// [`lock_timeout`](Self::lock_timeout)).
    ///
    /// # Errors
    ///
    /// [`SidesError::NameExists`] if the name is taken, [`SidesError::NamesFull`],
    /// [`SidesError::BadValueName`], [`SidesError::ForeignValue`] for a value of another
    /// region, [`SidesError::Timeout`] past the lock timeout; the value is dropped then.
    pub fn publish(&self, name: &str, value: ShmVal) -> Result<(), SidesError> {
        let name = ValueName::new(name)?;
        self.put(&name, value, false).map(|_| ())
    }

    /// Publishes `value` under `name`, replacing the value published there if any, whose
    /// handle it returns (the entry's reference, moved out). Waits as
    /// [`publish`](Self::publish).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), but for [`SidesError::NameExists`].
    pub fn replace(&self, name: &str, value: ShmVal) -> Result<Option<ShmVal>, SidesError> {
        let name = ValueName::new(name)?;
        self.put(&name, value, true)
    }

    /// Takes the value published under `name` out of the directory: its handle (the entry's
    /// reference, moved out), or `None` if nothing is published under that name. Waits for
    /// the names lock (see [`lock_timeout`](Self::lock_timeout)).
    ///
    /// # Errors
    ///
    /// [`SidesError::BadValueName`], [`SidesError::Timeout`] past the lock timeout,
    /// [`SidesError::NamesCorrupted`] if the entry does not hold a value.
    pub fn unpublish(&self, name: &str) -> Result<Option<ShmVal>, SidesError> {
        let name = ValueName::new(name)?;
        let e = self.take_entry();
        let r = self.take_out(&name, e);
        if !matches!(r, Ok(Some(_))) {
            self.put_entry(e);
        }
        r.map(|h| h.map(ShmVal::tracked))
    }

    /// A new handle to the value published under `name`, or `None` if there is none now
    /// (without waiting for one: see [`lookup`](Self::lookup)). The entry keeps its own
    /// reference. Waits for the names lock (see [`lock_timeout`](Self::lock_timeout)).
    ///
    /// # Errors
    ///
    /// [`SidesError::BadValueName`], [`SidesError::Timeout`] past the lock timeout,
    /// [`SidesError::NamesCorrupted`] if the entry does not hold a value.
    pub fn get(&self, name: &str) -> Result<Option<ShmVal>, SidesError> {
        let name = ValueName::new(name)?;
        self.get_by(&name, self.deadline())
    }

    /// Waits up to `timeout` for a value to be published under `name` and returns a new
    /// handle to it, as a client waits for a pipe: sleeping on the directory's generation
    /// word (woken by every change), asking the break checker every `micro_sleep`, and
    /// waiting for the names lock a slice at a time, so that `timeout` holds whatever the
    /// other processes do.
    ///
    /// # Errors
    ///
    /// [`SidesError::Timeout`] saying what was missing (the name, or the lock held by a
    /// live process), [`SidesError::Broken`] when the break checker says so,
    /// [`SidesError::BadValueName`].
    pub fn lookup(&self, name: &str, timeout: Duration) -> Result<ShmVal, SidesError> {
        let name = ValueName::new(name)?;
        let policy = WaitPolicy {
            timeout: Some(timeout),
            ..self.wait.clone()
        };
        let what = || format!("value {name} in region {}", self.pool.region().name());
        let waiting = Waiting::new(&policy, &what);
        loop {
            if let Some(v) = self.look(&name, &waiting)? {
                return Ok(v);
            }
        }
    }

    /// One look for `name` by a waiting lookup: its value, or `None` after a slice of the
    /// wait (asleep on the generation word, or waiting for the lock).
    fn look(&self, name: &ValueName, waiting: &Waiting<'_>) -> Result<Option<ShmVal>, SidesError> {
        let head = self.head()?;
        let seen = head.generation().get();
        // The lock is waited for a slice at a time: the break checker runs meanwhile.
        let slice_end = Instant::now() + self.wait.micro_sleep;
        let by = waiting.deadline().map_or(slice_end, |d| d.min(slice_end));
        match self.get_by(name, Some(by)) {
            Ok(Some(v)) => Ok(Some(v)),
            Ok(None) => {
                let slice = waiting.next_slice(|| {
                    "no value of that name is published there (Names::publish publishes one)".into()
                })?;
                head.generation().wait_change(seen, Some(slice));
                Ok(None)
            }
            Err(SidesError::Timeout { .. }) => {
                waiting.next_slice(|| {
                    "the names directory's lock is held by a live process (stopped, or slow)".into()
                })?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The named values now, in directory order, as snapshots. Entries that do not check
    /// out are skipped. Waits for the names lock (see [`lock_timeout`](Self::lock_timeout)).
    ///
    /// # Errors
    ///
    /// [`SidesError::Timeout`] past the lock timeout.
    pub fn list(&self) -> Result<Vec<NamedEntry>, SidesError> {
        let head = self.head()?;
        let g = self.lock(head, self.deadline())?;
        let out = head
            .slots
            .iter()
            .filter(|s| s.state.load(Ordering::Relaxed) == LIVE)
            .filter_map(|s| {
                let offset = Offset::new(s.value.load(Ordering::Relaxed));
                let (tag, refs) = peek(&self.pool, offset).ok()?;
                Some(NamedEntry {
                    name: name_of(s)?,
                    offset,
                    tag,
                    refs,
                })
            })
            .collect();
        drop(g);
        Ok(out)
    }

    /// The thread holding the names lock now, if any (a snapshot, for diagnostics).
    pub fn lock_owner(&self) -> Option<crate::sync::Owner> {
        self.head().ok()?.lock.owner()
    }

    /// The generation word's value now: it changes (with a wake) on every change.
    pub fn generation(&self) -> Result<u32, SidesError> {
        Ok(self.head()?.generation().get())
    }
}
