//! [`ShmMutex`]: a process-shared lock that names its owner and survives the owner's death.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use super::atomic::{AtomicU32, AtomicU64, Ordering};
use super::owner::Owner;
use super::platform::{Platform, Wake};
use super::DefaultPlatform;

/// Bits 0..62 of the state: the owner (0 = unlocked).
const OWNER_MASK: u64 = (1 << 62) - 1;
/// The last owner died holding the lock and nobody has marked the data consistent since.
const INCONSISTENT: u64 = 1 << 62;
/// Someone may be sleeping on the sequence word: unlock must wake one.
const CONTENDED: u64 = 1 << 63;

/// Spins before the first sleep.
const SPINS: u32 = if cfg!(shmval_loom) { 0 } else { 64 };

/// How a lock was acquired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// The previous holder released it normally.
    Clean,
    /// A previous holder died holding the lock (or a holder that took it over from a dead
    /// one released it without [`ShmMutexGuard::mark_consistent`]). The guarded data may be
    /// half-updated: repair it, or poison it, then call `mark_consistent`.
    OwnerDied,
}

/// [`ShmMutex::lock_timeout`] gave up: the lock stayed held by a live owner until the
/// deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("timed out waiting for a lock held by a live owner")]
pub struct LockTimeout;

/// A mutual-exclusion lock that lives in shared memory and works across processes.
///
/// The lock word holds the owner's identity ([`Owner`]: thread id and start-time key), so a
/// waiter can tell a live owner from a dead one (see [`Os`](super::Os) for how). A waiter
/// that finds the owner dead takes the lock over and its guard reports
/// [`Acquired::OwnerDied`], like `EOWNERDEAD` from a robust pthread mutex; the report
/// repeats for every later locker until one calls [`ShmMutexGuard::mark_consistent`].
///
/// The lock holds no data: a shared structure places it beside the fields it guards.
/// It is `#[repr(C)]`, 16 bytes, and all-zero bytes are a valid unlocked lock.
///
/// # The state word
///
/// | bits   | meaning                                                        |
/// |--------|----------------------------------------------------------------|
/// | 0..32  | owner's thread id; 0 when unlocked                             |
/// | 32..62 | owner's start-time key (30 bits)                               |
/// | 62     | `INCONSISTENT`: a holder died and nobody has repaired the data |
/// | 63     | `CONTENDED`: a waiter may sleep; unlock must wake one          |
///
/// | state                           | meaning                          | next                                      |
/// |---------------------------------|----------------------------------|-------------------------------------------|
/// | `0`                             | free                             | lock: `owner`                             |
/// | `owner`                         | held, nobody waits               | unlock: `0`; waiter: `owner\|CONTENDED`    |
/// | `owner\|CONTENDED`              | held, waiters may sleep          | unlock: `0`, bump `seq`, wake one         |
/// | `dead\|…`                       | held by a dead thread            | waiter: `me\|INCONSISTENT\|CONTENDED`      |
/// | `INCONSISTENT`                  | free, data unrepaired            | lock: `me\|INCONSISTENT` (`OwnerDied`)    |
/// | `owner\|INCONSISTENT\|…`        | held by a repairer               | `mark_consistent` clears the bit          |
///
/// Sleepers wait on a separate 32-bit sequence word (a futex holds 32 bits; the owner needs
/// 62), which unlock bumps before waking; a sleeper wakes every
/// [`Platform::LIVENESS_POLL`] (20 ms with [`Os`](super::Os)) to check that the owner
/// still lives.
#[repr(C)]
pub struct ShmMutex<P: Platform = DefaultPlatform> {
    state: AtomicU64,
    seq: AtomicU32,
    _pad: AtomicU32,
    _platform: PhantomData<fn() -> P>,
}

// SAFETY: all fields are atomics; the lock protocol itself is what callers rely on.
unsafe impl<P: Platform> Sync for ShmMutex<P> {}
// SAFETY: as above; the type holds no thread-bound data.
unsafe impl<P: Platform> Send for ShmMutex<P> {}

impl<P: Platform> Default for ShmMutex<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> fmt::Debug for ShmMutex<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.load(Ordering::Relaxed);
        f.debug_struct("ShmMutex")
            .field("owner", &Owner::from_bits(s & OWNER_MASK))
            .field("inconsistent", &(s & INCONSISTENT != 0))
            .field("contended", &(s & CONTENDED != 0))
            .finish()
    }
}

impl<P: Platform> ShmMutex<P> {
    /// A new, unlocked lock. In shared memory, all-zero bytes are the same thing.
    pub fn new() -> Self {
        ShmMutex {
            state: AtomicU64::new(0),
            seq: AtomicU32::new(0),
            _pad: AtomicU32::new(0),
            _platform: PhantomData,
        }
    }

    /// Acquires the lock, sleeping while a live owner holds it.
    ///
    /// Never fails: an owner found dead is taken over and the guard says
    /// [`Acquired::OwnerDied`].
    ///
    /// # Panics
    ///
    /// If the calling thread already holds the lock (it would wait for itself forever).
    pub fn lock(&self) -> ShmMutexGuard<'_, P> {
        match self.acquire(None) {
            Ok(how) => ShmMutexGuard::new(self, how),
            Err(LockTimeout) => unreachable!("a lock without a deadline does not time out"),
        }
    }

    /// Acquires the lock if it is free or its owner is dead; `None` if a live thread holds
    /// it. Does not sleep.
    pub fn try_lock(&self) -> Option<ShmMutexGuard<'_, P>> {
        let me = P::current().bits();
        let s = self.state.load(Ordering::Relaxed);
        let holder = s & OWNER_MASK;
        if holder == 0 {
            let new = me | (s & (INCONSISTENT | CONTENDED));
            return self
                .state
                .compare_exchange(s, new, Ordering::Acquire, Ordering::Relaxed)
                .ok()
                .map(|_| ShmMutexGuard::new(self, acquired(s)));
        }
        self.take_over_if_dead(s, me)
            .map(|how| ShmMutexGuard::new(self, how))
    }

    /// Acquires the lock if it is free and consistent, with one compare-and-swap: no
    /// clock, no owner check, no sleep. The fast path of callers that would otherwise
    /// compute a deadline first.
    pub(crate) fn try_lock_free(&self) -> Option<ShmMutexGuard<'_, P>> {
        self.state
            .compare_exchange(0, P::current().bits(), Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| ShmMutexGuard::new(self, Acquired::Clean))
    }

    /// Acquires the lock, giving up after `timeout` if a live owner still holds it.
    ///
    /// # Errors
    ///
    /// [`LockTimeout`] when the deadline passes first.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<ShmMutexGuard<'_, P>, LockTimeout> {
        let deadline = P::now_ns().saturating_add(duration_ns(timeout));
        self.acquire(Some(deadline))
            .map(|how| ShmMutexGuard::new(self, how))
    }

    /// Acquires the lock, giving up at `deadline` if a live owner still holds it.
    ///
    /// # Errors
    ///
    /// [`LockTimeout`] when the deadline passes first.
    pub fn lock_deadline(&self, deadline: Instant) -> Result<ShmMutexGuard<'_, P>, LockTimeout> {
        self.lock_timeout(deadline.saturating_duration_since(Instant::now()))
    }

    /// Whether some thread holds the lock now (a snapshot, for diagnostics).
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & OWNER_MASK != 0
    }

    /// Whether the calling thread holds the lock (locking it again would wait for itself).
    #[cfg_attr(shmval_loom, allow(dead_code))]
    pub(crate) fn held_by_me(&self) -> bool {
        self.state.load(Ordering::Relaxed) & OWNER_MASK == P::current().bits()
    }

    /// Whether a waiter may be sleeping on the lock (a snapshot, for diagnostics).
    pub fn is_contended(&self) -> bool {
        self.state.load(Ordering::Relaxed) & CONTENDED != 0
    }

    /// The current holder, if any (a snapshot, for diagnostics).
    pub fn owner(&self) -> Option<Owner> {
        Owner::from_bits(self.state.load(Ordering::Relaxed) & OWNER_MASK)
    }

    fn acquire(&self, deadline: Option<u64>) -> Result<Acquired, LockTimeout> {
        let me = P::current().bits();
        // Fast path: free and clean.
        if self
            .state
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(Acquired::Clean);
        }
        // Once a thread has slept it acquires with CONTENDED set: others may still sleep,
        // and the flag makes its unlock wake the next one.
        let mut slept = false;
        let mut spins = 0;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            let holder = s & OWNER_MASK;
            if holder == 0 {
                let new = me | (s & (INCONSISTENT | CONTENDED)) | if slept { CONTENDED } else { 0 };
                if self
                    .state
                    .compare_exchange(s, new, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(acquired(s));
                }
                continue;
            }
            assert!(
                holder != me,
                "ShmMutex::lock called by the thread that already holds it"
            );
            if spins < SPINS {
                spins += 1;
                spin_or_yield();
                continue;
            }
            // Read the sequence, then announce ourselves with a CAS that also proves the
            // state is still `s`: any unlock after the CAS sees CONTENDED and bumps the
            // sequence, so the wait below cannot miss it. (The CAS runs even when CONTENDED
            // is already set: skipping it would let an unlock slip in between the load of
            // `s` and the load of `seq` unseen.)
            let seq = self.seq.load(Ordering::SeqCst);
            if self
                .state
                .compare_exchange(s, s | CONTENDED, Ordering::SeqCst, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let mut timeout = P::LIVENESS_POLL;
            if let Some(d) = deadline {
                let now = P::now_ns();
                if now >= d {
                    return Err(LockTimeout);
                }
                let left = Duration::from_nanos(d - now);
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            slept = true;
            // Woken means an unlock bumped `seq` (or a spurious wake-up); a timeout means
            // nobody released the lock for a whole poll interval: the owner may be dead.
            if P::wait(&self.seq, seq, timeout) == Wake::TimedOut {
                let s = self.state.load(Ordering::Relaxed);
                if let Some(how) = self.take_over_if_dead(s, me) {
                    return Ok(how);
                }
            }
        }
    }

    /// Takes the lock over from the holder named in `s` if that holder is dead.
    ///
    /// A holder field that names no thread (thread id 0 with key bits set: nothing this
    /// crate writes) is a corrupt lock word; waiting for it would never end, so it is taken
    /// over like a dead owner, and the guard says the data may need repair.
    fn take_over_if_dead(&self, s: u64, me: u64) -> Option<Acquired> {
        if let Some(holder) = Owner::from_bits(s & OWNER_MASK) {
            if P::is_alive(holder) {
                return None;
            }
        }
        // The CAS fails if the word changed since `s` was read, so a lock released and
        // re-taken by a live thread in between is never stolen.
        self.state
            .compare_exchange(
                s,
                me | INCONSISTENT | CONTENDED,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .ok()
            .map(|_| Acquired::OwnerDied)
    }

    fn unlock(&self, consistent: bool) {
        let keep = if consistent { 0 } else { INCONSISTENT };
        let old = self.state.swap(keep, Ordering::SeqCst);
        if old & CONTENDED != 0 {
            self.seq.fetch_add(1, Ordering::SeqCst);
            P::wake(&self.seq, 1);
        }
    }
}

fn acquired(prev: u64) -> Acquired {
    if prev & INCONSISTENT != 0 {
        Acquired::OwnerDied
    } else {
        Acquired::Clean
    }
}

pub(crate) fn duration_ns(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

#[cfg(not(shmval_loom))]
fn spin_or_yield() {
    std::hint::spin_loop();
}

#[cfg(shmval_loom)]
fn spin_or_yield() {
    loom::thread::yield_now();
}

/// Proof of holding a [`ShmMutex`]; unlocks on drop.
///
/// A lock is owned by a thread (its word names the thread), so a guard cannot be sent to
/// another thread: ending the locking thread while another thread still used the guard
/// would let a waiter judge the owner dead and take the lock while it is in use. A guard
/// dropped while its thread panics leaves the lock flagged inconsistent, as if its owner
/// had died: the data it guarded may be half-updated.
///
/// ```compile_fail
/// # use shmval::sync::ShmMutex;
/// fn needs_send<T: Send>(_: T) {}
/// let m: ShmMutex = ShmMutex::new();
/// needs_send(m.lock()); // error: the guard is not Send
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ShmMutexGuard<'a, P: Platform = DefaultPlatform> {
    mutex: &'a ShmMutex<P>,
    how: Acquired,
    consistent: bool,
    /// Not `Send`: the lock belongs to the thread that took it.
    _thread_bound: PhantomData<*const ()>,
}

impl<P: Platform> fmt::Debug for ShmMutexGuard<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmMutexGuard")
            .field("acquired", &self.how)
            .field("consistent", &self.consistent)
            .finish()
    }
}

impl<'a, P: Platform> ShmMutexGuard<'a, P> {
    fn new(mutex: &'a ShmMutex<P>, how: Acquired) -> Self {
        ShmMutexGuard {
            mutex,
            how,
            consistent: how == Acquired::Clean,
            _thread_bound: PhantomData,
        }
    }

    /// How the lock was acquired: [`Acquired::OwnerDied`] means the guarded data needs
    /// repair before use.
    pub fn acquired(&self) -> Acquired {
        self.how
    }

    /// Whether a previous holder died holding the lock (shorthand for
    /// `acquired() == Acquired::OwnerDied`).
    pub fn owner_died(&self) -> bool {
        self.how == Acquired::OwnerDied
    }

    /// Declares the guarded data repaired: later lockers get [`Acquired::Clean`]. Without
    /// this call, unlocking after [`Acquired::OwnerDied`] leaves the lock flagged.
    pub fn mark_consistent(&mut self) {
        if !self.consistent {
            self.mutex.state.fetch_and(!INCONSISTENT, Ordering::Relaxed);
            self.consistent = true;
        }
    }

    /// The lock this guard holds.
    pub fn mutex(&self) -> &'a ShmMutex<P> {
        self.mutex
    }

    /// Releases the lock and hands back the lock itself (used by the condvar).
    pub(crate) fn into_unlocked(self) -> &'a ShmMutex<P> {
        let m = self.mutex;
        let consistent = self.consistent;
        std::mem::forget(self);
        m.unlock(consistent);
        m
    }
}

impl<P: Platform> Drop for ShmMutexGuard<'_, P> {
    fn drop(&mut self) {
        if P::exiting() {
            return;
        }
        // A panic may have cut an update short: the next locker must repair.
        self.mutex
            .unlock(self.consistent && !std::thread::panicking());
    }
}

/// Re-acquires `m` after a condvar wait, giving up at `deadline` (a time on `P`'s clock).
pub(crate) fn relock<P: Platform>(
    m: &ShmMutex<P>,
    deadline: Option<u64>,
) -> Result<ShmMutexGuard<'_, P>, LockTimeout> {
    m.acquire(deadline).map(|how| ShmMutexGuard::new(m, how))
}

#[cfg(all(test, not(shmval_loom)))]
mod tests {
    use super::*;
    use crate::sync::cell::UnsafeCell;
    use std::sync::Arc;

    struct Counter {
        lock: ShmMutex,
        n: UnsafeCell<u64>,
    }
    // SAFETY: `n` is only touched while `lock` is held.
    unsafe impl Sync for Counter {}

    #[test]
    fn all_zero_bytes_are_an_unlocked_lock() {
        assert_eq!(std::mem::size_of::<ShmMutex>(), 16);
        let m = ShmMutex::<crate::sync::Os>::new();
        assert!(!m.is_locked());
        let g = m.lock();
        assert_eq!(g.acquired(), Acquired::Clean);
        assert_eq!(m.owner(), Some(crate::sync::Os::current()));
        assert!(m.try_lock().is_none() || cfg!(shmval_loom));
        drop(g);
        assert!(!m.is_locked());
        assert!(m.try_lock().is_some());
    }

    #[test]
    fn threads_exclude_each_other() {
        let c = Arc::new(Counter {
            lock: ShmMutex::new(),
            n: UnsafeCell::new(0),
        });
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let _g = c.lock.lock();
                        // SAFETY: the lock is held.
                        c.n.with_mut(|p| unsafe { *p += 1 });
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        // SAFETY: all writers have been joined.
        assert_eq!(c.n.with(|p| unsafe { *p }), 80_000);
    }

    #[test]
    fn timeout_while_a_live_thread_holds_it() {
        let m = Arc::new(ShmMutex::<crate::sync::Os>::new());
        let (tx, rx) = std::sync::mpsc::channel();
        let (tx2, rx2) = std::sync::mpsc::channel::<()>();
        let m2 = m.clone();
        let h = std::thread::spawn(move || {
            let _g = m2.lock();
            tx.send(()).unwrap();
            rx2.recv().unwrap();
        });
        rx.recv().unwrap();
        assert_eq!(
            m.lock_timeout(Duration::from_millis(60)).unwrap_err(),
            LockTimeout
        );
        assert!(m.try_lock().is_none());
        tx2.send(()).unwrap();
        h.join().unwrap();
        assert_eq!(
            m.lock_timeout(Duration::from_secs(5)).unwrap().acquired(),
            Acquired::Clean
        );
    }

    #[test]
    fn a_panic_while_holding_the_lock_leaves_it_inconsistent() {
        let m = Arc::new(ShmMutex::<crate::sync::Os>::new());
        let m2 = m.clone();
        let r = std::thread::spawn(move || {
            let _g = m2.lock();
            panic!("cut short while holding the lock");
        })
        .join();
        assert!(r.is_err());
        let mut g = m.lock();
        assert!(g.owner_died());
        g.mark_consistent();
        drop(g);
        assert_eq!(m.lock().acquired(), Acquired::Clean);
    }

    #[test]
    fn an_owner_field_naming_no_thread_is_taken_over() {
        // Thread id 0 with start-key bits: no thread; a waiter must not wait for it forever.
        let m = ShmMutex::<crate::sync::Os>::new();
        m.state.store(5 << 32, Ordering::Relaxed);
        assert!(m.is_locked());
        assert_eq!(m.owner(), None);
        let g = m.lock_timeout(Duration::from_secs(60)).unwrap();
        assert!(g.owner_died());
        drop(g);
        m.state.store(7 << 32 | CONTENDED, Ordering::Relaxed);
        assert!(m.try_lock().unwrap().owner_died());
    }

    /// The real platform, but judging liveness from a process table that is not there
    /// (a container without `/proc`): every owner must then count as alive.
    struct NoProc;

    impl Platform for NoProc {
        const LIVENESS_POLL: Option<Duration> = Some(Duration::from_millis(5));
        fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
            crate::sync::Os::wait(word, expected, timeout)
        }
        fn wake(word: &AtomicU32, n: u32) -> u32 {
            crate::sync::Os::wake(word, n)
        }
        fn now_ns() -> u64 {
            crate::sync::Os::now_ns()
        }
        fn current() -> Owner {
            crate::sync::Os::current()
        }
        fn is_alive(owner: Owner) -> bool {
            crate::sync::os::owner_alive(std::path::Path::new("/nonexistent-proc"), owner)
        }
    }

    #[test]
    fn without_a_process_table_a_dead_owner_is_never_taken_over() {
        let m = Arc::new(ShmMutex::<NoProc>::new());
        let m2 = m.clone();
        std::thread::spawn(move || std::mem::forget(m2.lock()))
            .join()
            .unwrap();
        // The owner has exited, but nothing here can tell: the lock stays held.
        assert!(m.try_lock().is_none());
        assert_eq!(
            m.lock_timeout(Duration::from_millis(50)).unwrap_err(),
            LockTimeout
        );
    }

    #[test]
    fn a_thread_that_exits_holding_the_lock_is_taken_over() {
        let m = Arc::new(ShmMutex::<crate::sync::Os>::new());
        let m2 = m.clone();
        std::thread::spawn(move || std::mem::forget(m2.lock()))
            .join()
            .unwrap();
        let mut g = m.lock();
        assert!(g.owner_died());
        drop(g);
        // Not marked consistent: the next locker is told too.
        g = m.lock();
        assert!(g.owner_died());
        g.mark_consistent();
        drop(g);
        assert_eq!(m.lock().acquired(), Acquired::Clean);
        // try_lock takes over from a dead owner as well.
        let m3 = m.clone();
        std::thread::spawn(move || std::mem::forget(m3.lock()))
            .join()
            .unwrap();
        // A joined thread may show in the process table a moment longer; `try_lock` does
        // not wait, so it is asked once the table says the owner has gone.
        let owner = m.owner().expect("the exited thread owns the lock");
        let start = std::time::Instant::now();
        while <crate::sync::Os as Platform>::is_alive(owner) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the thread never went"
            );
            std::thread::yield_now();
        }
        assert!(m.try_lock().unwrap().owner_died());
    }
}
