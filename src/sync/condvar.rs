//! [`ShmCondvar`]: a process-shared condition variable on a sequence word.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use super::atomic::{AtomicU32, AtomicU64, Ordering};
use super::mutex::{duration_ns, relock, LockTimeout, ShmMutexGuard};
use super::platform::{Platform, Wake};
use super::DefaultPlatform;

/// Where a waiter keeps the steps of its waiting, for survivors of its process: a word
/// (of the waiter's process's own records) that holds `tag` and the step, or 0 when not
/// waiting. A survivor gives back the count of a waiter recorded [`COUNTED`](Self::COUNTED)
/// ([`ShmCondvar::forget_waiter`]); one that died at [`ARMING`](Self::ARMING) or
/// [`LEAVING`](Self::LEAVING) may or may not be counted, and is left so (a count too high
/// only costs system calls).
#[derive(Clone, Copy, Debug)]
pub(crate) struct WaitRecord<'a> {
    pub(crate) word: &'a AtomicU64,
    /// Which condition variable (low byte, chosen by the caller).
    pub(crate) tag: u64,
}

impl WaitRecord<'_> {
    /// About to count itself a waiter.
    pub(crate) const ARMING: u64 = 1 << 8;
    /// Counted as a waiter.
    pub(crate) const COUNTED: u64 = 2 << 8;
    /// About to take its count back.
    pub(crate) const LEAVING: u64 = 3 << 8;
    /// The step's bits.
    #[cfg_attr(shmval_loom, allow(dead_code))]
    pub(crate) const STEP: u64 = 0xff << 8;
}

/// Whether a timed wait ended because its deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// `true` if the deadline passed without a notification.
    pub fn timed_out(self) -> bool {
        self.0
    }
}

/// A condition variable that lives in shared memory and works across processes, used with
/// a [`ShmMutex`](super::ShmMutex).
///
/// Notifying bumps a 32-bit sequence word and wakes sleepers on it; a waiter sleeps while
/// the word still holds the value it read under the mutex, so a notification between its
/// unlock and its sleep is never lost. As with every condition variable, a notification
/// meant for one waiter may release another, so callers re-check their predicate in a
/// loop.
///
/// An untimed [`wait`](ShmCondvar::wait) also returns, as if woken spuriously, when no
/// notification came for one liveness interval ([`Platform::LIVENESS_POLL`], 20 ms with
/// [`Os`](super::Os)): a notifier killed after changing the predicate but before notifying
/// cannot leave a waiter asleep for good with its condition already true. The caller's
/// loop re-checks and waits again. A timed wait sleeps until a notification or its
/// deadline.
///
/// A notification makes a system call only for a waiter that no earlier one has woken
/// yet: a producer that sends several items while its woken consumer waits for the CPU
/// wakes it once, not once per item.
///
/// `#[repr(C)]`, 8 bytes; all-zero bytes are a valid condvar.
#[repr(C)]
pub struct ShmCondvar<P: Platform = DefaultPlatform> {
    seq: AtomicU32,
    /// The waiters (low [`WAITER_BITS`] bits) and, above them, the waiters a wake has taken
    /// off the futex that have not yet said so (a wrapping count: a waiter may say so
    /// before its waker counts it).
    counts: AtomicU32,
    _platform: PhantomData<fn() -> P>,
}

/// Bits of [`ShmCondvar::counts`] that count waiters (up to about a million).
const WAITER_BITS: u32 = 20;
const WAITERS: u32 = (1 << WAITER_BITS) - 1;
/// One woken waiter in [`ShmCondvar::counts`].
const WOKEN: u32 = 1 << WAITER_BITS;

/// Whether the counts `c` show a waiter that no wake has taken off the futex: one that
/// sleeps, or is about to. While the woken count is "negative" (a woken waiter counted
/// itself off before its waker counted it on), every waiter counts as such.
fn unwoken(c: u32) -> bool {
    let waiters = c & WAITERS;
    let woken = c >> WAITER_BITS;
    // `woken` is a wrapping count of 12 bits: its upper half stands for "below zero".
    woken >= 1 << (31 - WAITER_BITS) || waiters > woken
}

// SAFETY: all fields are atomics.
unsafe impl<P: Platform> Sync for ShmCondvar<P> {}
// SAFETY: as above; nothing thread-bound.
unsafe impl<P: Platform> Send for ShmCondvar<P> {}

impl<P: Platform> Default for ShmCondvar<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> fmt::Debug for ShmCondvar<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmCondvar")
            .field("waiters", &self.waiters())
            .finish()
    }
}

impl<P: Platform> ShmCondvar<P> {
    /// A new condvar with no waiters.
    pub fn new() -> Self {
        ShmCondvar {
            seq: AtomicU32::new(0),
            counts: AtomicU32::new(0),
            _platform: PhantomData,
        }
    }

    /// Threads (of any process) waiting now. A waiter killed while it waited stays
    /// counted (until a survivor gives its count back); the count only lets `notify_*`
    /// skip system calls.
    pub fn waiters(&self) -> u32 {
        self.counts.load(Ordering::Relaxed) & WAITERS
    }

    /// Releases the guard's lock, sleeps until notified (or one liveness interval passes),
    /// and re-acquires the lock, waiting for it as long as a live owner holds it. The
    /// returned guard reports how the lock was re-acquired (a holder may have died in
    /// between).
    pub fn wait<'a>(&self, guard: ShmMutexGuard<'a, P>) -> ShmMutexGuard<'a, P> {
        match self.wait_polling(guard, None) {
            Ok((g, _)) => g,
            Err(LockTimeout) => unreachable!("a lock without a deadline does not time out"),
        }
    }

    /// Like [`wait`](Self::wait), but the whole call, re-acquiring the lock included,
    /// ends `timeout` after it began.
    ///
    /// # Errors
    ///
    /// [`LockTimeout`] if a live owner held the lock from the deadline on: the guard is
    /// gone, and so is the lock (the caller does not hold it).
    pub fn wait_timeout<'a>(
        &self,
        guard: ShmMutexGuard<'a, P>,
        timeout: Duration,
    ) -> Result<(ShmMutexGuard<'a, P>, WaitTimeoutResult), LockTimeout> {
        let deadline = P::now_ns().saturating_add(duration_ns(timeout));
        self.wait_inner(guard, Some(deadline), false, None)
    }

    /// Like [`wait_timeout`](Self::wait_timeout) with an absolute deadline.
    ///
    /// # Errors
    ///
    /// As [`wait_timeout`](Self::wait_timeout).
    pub fn wait_deadline<'a>(
        &self,
        guard: ShmMutexGuard<'a, P>,
        deadline: Instant,
    ) -> Result<(ShmMutexGuard<'a, P>, WaitTimeoutResult), LockTimeout> {
        self.wait_timeout(guard, deadline.saturating_duration_since(Instant::now()))
    }

    /// Waits until notified, until `deadline` on `P`'s clock (none: no deadline), or one
    /// liveness interval, whichever comes first, then re-acquires the lock by the
    /// deadline. For callers that loop on their predicate against a fixed deadline.
    pub(crate) fn wait_polling<'a>(
        &self,
        guard: ShmMutexGuard<'a, P>,
        deadline: Option<u64>,
    ) -> Result<(ShmMutexGuard<'a, P>, WaitTimeoutResult), LockTimeout> {
        self.wait_inner(guard, deadline, true, None)
    }

    /// [`wait_polling`](Self::wait_polling), keeping a record of the waiter count in
    /// `record` (see [`WaitRecord`]) for survivors of the waiting process.
    pub(crate) fn wait_polling_recorded<'a>(
        &self,
        guard: ShmMutexGuard<'a, P>,
        deadline: Option<u64>,
        record: Option<WaitRecord<'_>>,
    ) -> Result<(ShmMutexGuard<'a, P>, WaitTimeoutResult), LockTimeout> {
        self.wait_inner(guard, deadline, true, record)
    }

    /// Takes back the count of a waiter that died while counted (a survivor giving back
    /// what the dead process held), never below zero. The dead waiter may have been woken
    /// and not said so: the woken count starts again from zero. If a live waiter was woken
    /// then too, its own count-off later leaves the woken count below the truth for good,
    /// which only makes notifiers call where they could have skipped.
    pub(crate) fn forget_waiter(&self) {
        let _ = self
            .counts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                Some((c & WAITERS).saturating_sub(1))
            });
    }

    fn wait_inner<'a>(
        &self,
        guard: ShmMutexGuard<'a, P>,
        deadline: Option<u64>,
        poll: bool,
        record: Option<WaitRecord<'_>>,
    ) -> Result<(ShmMutexGuard<'a, P>, WaitTimeoutResult), LockTimeout> {
        // Read under the lock: a notifier changes the predicate under the same lock, so
        // any notification after this point changes `seq`.
        let seq = self.seq.load(Ordering::SeqCst);
        let note = |step: u64| {
            if let Some(r) = record {
                r.word.store(r.tag | step, Ordering::Release);
            }
        };
        note(WaitRecord::ARMING);
        self.counts.fetch_add(1, Ordering::SeqCst);
        note(WaitRecord::COUNTED);
        let mutex = guard.into_unlocked();
        let mut timed_out = false;
        while self.seq.load(Ordering::SeqCst) == seq {
            let mut timeout = if poll { P::LIVENESS_POLL } else { None };
            if let Some(d) = deadline {
                let now = P::now_ns();
                if now >= d {
                    timed_out = true;
                    break;
                }
                let left = Duration::from_nanos(d - now);
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            // Polling, a whole interval without a notification returns, so the caller
            // re-checks (its notifier may have died before notifying). Otherwise a timeout
            // goes round to the deadline check above.
            match P::wait(&self.seq, seq, timeout) {
                // Taken off the futex by a notifier, which counts it woken: say so, and
                // return to re-check even if `seq` still holds the value read (a wake
                // meant for an earlier change may take off a waiter that came after it,
                // and the notifiers since then counted on this one to look).
                Wake::Woken => {
                    super::pause("condvar.woken");
                    self.counts.fetch_sub(WOKEN, Ordering::SeqCst);
                    break;
                }
                Wake::TimedOut if poll => {
                    timed_out = deadline.is_some_and(|d| P::now_ns() >= d);
                    break;
                }
                Wake::TimedOut | Wake::Changed => {}
            }
        }
        note(WaitRecord::LEAVING);
        self.counts.fetch_sub(1, Ordering::SeqCst);
        if let Some(r) = record {
            r.word.store(0, Ordering::Release);
        }
        let g = relock(mutex, deadline)?;
        Ok((g, WaitTimeoutResult(timed_out)))
    }

    /// Wakes one waiter, if any.
    ///
    /// With nobody waiting it writes nothing, so a busy hand-off does not pay for it. That
    /// loses no wake-up: a waiter reads `seq` and counts itself in `counts` while it
    /// still holds the lock, so a notifier that changes the predicate under that lock
    /// afterwards sees the count and changes the `seq` the waiter sleeps on; a notifier
    /// that sees no waiter made its change before any waiter checked the predicate.
    ///
    /// Nor does it when every waiter has been woken already and not yet left: a woken
    /// waiter always returns (even when the wake was meant for a change before its wait),
    /// re-takes the lock after this notifier's change, and re-checks the predicate. A
    /// waiter counts itself off the woken before it leaves, and only a waiter a wake took
    /// off the futex does, so the woken count never stands for more waiters than there are.
    pub fn notify_one(&self) {
        if unwoken(self.counts.load(Ordering::SeqCst)) {
            self.seq.fetch_add(1, Ordering::SeqCst);
            self.count_woken(P::wake(&self.seq, 1));
        }
    }

    /// Wakes every waiter (writes nothing when there is none, or when every one has been
    /// woken already; see [`notify_one`](Self::notify_one)).
    pub fn notify_all(&self) {
        if unwoken(self.counts.load(Ordering::SeqCst)) {
            self.seq.fetch_add(1, Ordering::SeqCst);
            self.count_woken(P::wake(&self.seq, u32::MAX));
        }
    }

    /// Counts `n` waiters a wake took off the futex, until each says it left.
    fn count_woken(&self, n: u32) {
        if n > 0 {
            self.counts
                .fetch_add(n.wrapping_mul(WOKEN), Ordering::SeqCst);
        }
    }
}

#[cfg(all(test, not(shmval_loom)))]
mod tests {
    use super::*;
    use crate::sync::cell::UnsafeCell;
    use crate::sync::ShmMutex;
    use std::sync::Arc;

    struct Flag {
        m: ShmMutex,
        cv: ShmCondvar,
        set: UnsafeCell<bool>,
    }
    // SAFETY: `set` is only touched under `m`.
    unsafe impl Sync for Flag {}

    #[test]
    fn notify_wakes_a_waiter() {
        let f = Arc::new(Flag {
            m: ShmMutex::new(),
            cv: ShmCondvar::new(),
            set: UnsafeCell::new(false),
        });
        let f2 = f.clone();
        // A timed wait: an untimed one also returns every liveness interval, so only a
        // wait that ends long before its deadline shows that the notification woke it.
        let h = std::thread::spawn(move || {
            let mut g = f2.m.lock();
            // SAFETY: `m` is held whenever `set` is read.
            while !f2.set.with(|p| unsafe { *p }) {
                let (g2, r) = f2.cv.wait_timeout(g, Duration::from_secs(600)).unwrap();
                if r.timed_out() {
                    return false;
                }
                g = g2;
            }
            true
        });
        // Notify once the waiter sleeps on the condvar.
        let t0 = Instant::now();
        while f.cv.waiters() == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the waiter never slept"
            );
            std::thread::yield_now();
        }
        {
            let _g = f.m.lock();
            // SAFETY: `m` is held.
            f.set.with_mut(|p| unsafe { *p = true });
            f.cv.notify_one();
        }
        assert!(h.join().unwrap(), "the waiter reached its deadline");
        assert_eq!(f.cv.waiters(), 0);
    }

    #[test]
    fn an_untimed_wait_returns_when_no_notification_comes() {
        // The notifier that would have woken it is gone: the waiter still gets to re-check.
        let m = ShmMutex::<crate::sync::Os>::new();
        let cv = ShmCondvar::<crate::sync::Os>::new();
        let g = cv.wait(m.lock());
        assert_eq!(g.acquired(), crate::sync::Acquired::Clean);
        assert_eq!(cv.waiters(), 0);
    }

    #[test]
    fn a_timed_wait_gives_up_relocking_at_its_deadline() {
        let f = Arc::new(Flag {
            m: ShmMutex::new(),
            cv: ShmCondvar::new(),
            set: UnsafeCell::new(false),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let f2 = f.clone();
        let h = std::thread::spawn(move || {
            let g = f2.m.lock();
            // Releases the lock while it waits; the main thread takes it and keeps it.
            let r = f2.cv.wait_timeout(g, Duration::from_millis(50));
            tx.send(()).unwrap();
            r.map(|_| ()).unwrap_err()
        });
        // Wait until the other thread sleeps on the condvar, then hold the lock past its
        // deadline: it must come back without the lock.
        while f.cv.waiters() == 0 {
            std::thread::yield_now();
        }
        let g = f.m.lock();
        rx.recv().unwrap();
        drop(g);
        assert_eq!(h.join().unwrap(), LockTimeout);
    }

    #[test]
    fn timeout_bounds_the_wait() {
        let m = ShmMutex::<crate::sync::Os>::new();
        let cv = ShmCondvar::<crate::sync::Os>::new();
        let t = Instant::now();
        let (g, r) = cv
            .wait_timeout(m.lock(), Duration::from_millis(30))
            .unwrap();
        assert!(r.timed_out());
        assert!(t.elapsed() >= Duration::from_millis(30));
        drop(g);
    }
}
