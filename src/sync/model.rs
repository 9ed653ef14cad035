//! The loom side of the shim: loom's atomics and cell, and [`Model`], a platform whose
//! waits are yields, whose clock is logical, and whose threads can be declared dead.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use super::owner::Owner;
use super::platform::{Platform, Wake};

pub(crate) mod atomic {
    #[allow(unused_imports)] // the full set is the shim's contract
    pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, Ordering};
}

pub(crate) mod cell {
    #[allow(unused_imports)] // used by the layers above and the loom tests
    pub(crate) use loom::cell::UnsafeCell;
}

use atomic::{AtomicU32, AtomicU64, Ordering};

loom::lazy_static! {
    /// Next model thread id.
    static ref NEXT_ID: AtomicU32 = AtomicU32::new(1);
    /// Bit `i` set: model thread `i` has "died".
    static ref DEAD: AtomicU64 = AtomicU64::new(0);
    /// Deaths so far (changed under `PARK`).
    static ref DEATHS: AtomicU32 = AtomicU32::new(0);
    /// The "futex table": sleepers wait here, checking their word under the lock; each
    /// sleeper is an entry (word address, thread id, woken) until it returns.
    static ref PARK: loom::sync::Mutex<Vec<Sleeper>> = loom::sync::Mutex::new(Vec::new());
    static ref PARKED: loom::sync::Condvar = loom::sync::Condvar::new();
}

/// A thread asleep in [`Model::wait`].
#[derive(Debug)]
struct Sleeper {
    word: usize,
    id: u32,
    woken: bool,
}

loom::thread_local! {
    static ID: Cell<u32> = Cell::new(0);
    static CLOCK: Cell<u64> = Cell::new(0);
    /// Per futex word this thread has slept on: the deaths it had seen there.
    static SEEN_DEATHS: RefCell<Vec<(usize, u32)>> = RefCell::new(Vec::new());
    /// The pause point at which this thread is to die (see [`Model::die_at`]).
    static DIE_AT: Cell<Option<&'static str>> = Cell::new(None);
}

/// The loom model of the platform.
///
/// - `wait` without a timeout blocks on a loom condition variable until a `wake` of its
///   word picks it (as a futex does: the word is checked under the same lock `wake`
///   takes, so no wake-up is lost), which lets loom see a thread that would sleep forever
///   as a deadlock.
/// - `wait` with a timeout yields once and reports the timeout, advancing the calling
///   thread's logical clock by it: a timed futex wait may return at any time.
/// - `wake(word, n)` wakes at most `n` of the sleepers on `word`, as `FUTEX_WAKE` does:
///   a protocol that wakes too few leaves the others asleep, and loom reports it.
/// - Identities are small counters; [`Model::die`] marks the calling thread dead, as if it
///   had been killed where it stands. Every untimed sleeper then returns `TimedOut` once
///   per word it sleeps on, standing in for the liveness poll after which a real waiter
///   notices the death (and so a waiter that moves on to another word, say from a condvar
///   to the lock, notices it there too).
/// - [`Model::die_at`] arms a pause point of the code under test: the thread dies there,
///   holding whatever it holds (its guards release nothing once it is dead).
#[derive(Clone, Copy, Debug, Default)]
pub struct Model;

impl Model {
    /// Arms the pause point `point` for the calling thread: when it gets there it dies
    /// ([`die`](Self::die)) and unwinds, releasing nothing. Run the operation inside
    /// `catch_unwind`.
    pub fn die_at(point: &'static str) {
        DIE_AT.with(|d| d.set(Some(point)));
    }

    /// The pause point `point` of the code under test: dies there if armed.
    pub(crate) fn pause(point: &'static str) {
        if DIE_AT.with(|d| d.get()) == Some(point) {
            DIE_AT.with(|d| d.set(None));
            Self::die();
            panic!("killed at {point}");
        }
    }

    /// Marks the calling thread dead: `is_alive` answers `false` for it from now on. A
    /// test thread calls this and then returns without releasing what it holds.
    pub fn die() {
        let id = Self::current().tid();
        DEAD.fetch_or(1 << id, Ordering::SeqCst);
        let _g = PARK.lock().unwrap();
        DEATHS.fetch_add(1, Ordering::SeqCst);
        PARKED.notify_all();
    }
}

impl Platform for Model {
    const LIVENESS_POLL: Option<Duration> = None;

    fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
        if timeout.is_none() {
            let mut g = PARK.lock().unwrap();
            // The futex's entry check, under the table lock.
            if word.load(Ordering::SeqCst) != expected {
                return Wake::Changed;
            }
            let me = Self::current().tid();
            let addr = word as *const AtomicU32 as usize;
            g.push(Sleeper {
                word: addr,
                id: me,
                woken: false,
            });
            loop {
                let at = g
                    .iter()
                    .position(|s| s.id == me && s.word == addr)
                    .expect("a sleeper stays in the table until it returns");
                if g[at].woken {
                    g.swap_remove(at);
                    return Wake::Woken;
                }
                // A death since this thread last looked stands for the liveness poll
                // firing: report a timeout so the caller checks the owner.
                let deaths = DEATHS.load(Ordering::SeqCst);
                let fresh = SEEN_DEATHS.with(|c| {
                    let mut seen = c.borrow_mut();
                    match seen.iter_mut().find(|(w, _)| *w == addr) {
                        Some((_, n)) if *n == deaths => false,
                        Some((_, n)) => {
                            *n = deaths;
                            true
                        }
                        None => {
                            seen.push((addr, deaths));
                            deaths != 0
                        }
                    }
                });
                if fresh {
                    g.swap_remove(at);
                    return Wake::TimedOut;
                }
                g = PARKED.wait(g).unwrap();
            }
        }
        if word.load(Ordering::SeqCst) != expected {
            return Wake::Changed;
        }
        loom::thread::yield_now();
        let step = timeout.unwrap_or(Duration::from_millis(1)).as_nanos() as u64;
        CLOCK.with(|c| c.set(c.get().saturating_add(step.max(1))));
        Wake::TimedOut
    }

    fn wake(word: &AtomicU32, n: u32) -> u32 {
        let mut g = PARK.lock().unwrap();
        let addr = word as *const AtomicU32 as usize;
        let mut left = n;
        for s in g.iter_mut().filter(|s| s.word == addr && !s.woken) {
            if left == 0 {
                break;
            }
            s.woken = true;
            left -= 1;
        }
        PARKED.notify_all();
        n - left
    }

    fn now_ns() -> u64 {
        CLOCK.with(|c| c.get())
    }

    fn current() -> Owner {
        ID.with(|c| {
            if c.get() == 0 {
                c.set(NEXT_ID.fetch_add(1, Ordering::Relaxed));
            }
            Owner::new(c.get(), 0)
        })
    }

    fn is_alive(owner: Owner) -> bool {
        DEAD.load(Ordering::SeqCst) & (1 << owner.tid()) == 0
    }

    fn exiting() -> bool {
        !Self::is_alive(Self::current())
    }
}
