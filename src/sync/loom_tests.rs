//! Model checks of the lock and condvar protocol (run with `RUSTFLAGS="--cfg shmval_loom"`).

use std::sync::Arc;
use std::time::Duration;

use loom::thread;

use super::atomic::AtomicU32;
use super::cell::UnsafeCell;
use super::generation::Generation;
use super::{Acquired, Model, ShmCondvar, ShmMutex};

struct Guarded<T> {
    lock: ShmMutex<Model>,
    cv: ShmCondvar<Model>,
    data: UnsafeCell<T>,
}

// SAFETY: `data` is only accessed while `lock` is held; loom checks that claim.
unsafe impl<T: Send> Sync for Guarded<T> {}

impl<T> Guarded<T> {
    fn new(v: T) -> Arc<Self> {
        Arc::new(Guarded {
            lock: ShmMutex::new(),
            cv: ShmCondvar::new(),
            data: UnsafeCell::new(v),
        })
    }
}

#[test]
fn mutual_exclusion_of_three_threads() {
    loom::model(|| {
        let g = Guarded::new(0u32);
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let g = g.clone();
                thread::spawn(move || {
                    let _l = g.lock.lock();
                    // A non-atomic read-modify-write: loom reports a race if two threads
                    // ever overlap here.
                    // SAFETY: the lock is held.
                    let v = g.data.with(|p| unsafe { *p });
                    // SAFETY: the lock is held.
                    g.data.with_mut(|p| unsafe { *p = v + 1 });
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let _l = g.lock.lock();
        // SAFETY: the lock is held and every writer has been joined.
        assert_eq!(g.data.with(|p| unsafe { *p }), 3);
    });
}

#[test]
fn condvar_loses_no_wakeup() {
    loom::model(|| {
        let g = Guarded::new(false);
        let g2 = g.clone();
        let t = thread::spawn(move || {
            let l = g2.lock.lock();
            // SAFETY: the lock is held.
            g2.data.with_mut(|p| unsafe { *p = true });
            g2.cv.notify_one();
            drop(l);
        });
        let mut l = g.lock.lock();
        // SAFETY: the lock is held whenever `data` is read.
        while !g.data.with(|p| unsafe { *p }) {
            // No deadline: a lost wake-up would leave this thread waiting forever, which
            // loom reports as a deadlock.
            l = g.cv.wait(l);
        }
        drop(l);
        t.join().unwrap();
    });
}

/// Two items, each sent under the lock and notified with `notify_one`, to two waiters
/// that take one each: a notification skipped because a waiter was woken already and has
/// not yet left must still leave no waiter asleep with an item for it.
#[test]
fn notify_one_per_item_reaches_every_waiter_it_needs() {
    loom::model(|| {
        let g = Guarded::new(0u32);
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let g = g.clone();
                thread::spawn(move || {
                    let mut l = g.lock.lock();
                    // SAFETY: the lock is held whenever `data` is read or written.
                    while g.data.with(|p| unsafe { *p }) == 0 {
                        l = g.cv.wait(l);
                    }
                    // SAFETY: as above.
                    g.data.with_mut(|p| unsafe { *p -= 1 });
                    drop(l);
                })
            })
            .collect();
        for _ in 0..2 {
            let _l = g.lock.lock();
            // SAFETY: the lock is held.
            g.data.with_mut(|p| unsafe { *p += 1 });
            g.cv.notify_one();
        }
        for t in takers {
            t.join().unwrap();
        }
        assert_eq!(g.cv.waiters(), 0);
    });
}

/// A waiter that needs two items, each notified with `notify_one`: the second
/// notification may find it woken already, and must not leave it asleep.
#[test]
fn a_waiter_woken_once_sees_a_later_item() {
    loom::model(|| {
        let g = Guarded::new(0u32);
        let g2 = g.clone();
        let t = thread::spawn(move || {
            for _ in 0..2 {
                let _l = g2.lock.lock();
                // SAFETY: the lock is held.
                g2.data.with_mut(|p| unsafe { *p += 1 });
                g2.cv.notify_one();
            }
        });
        let mut l = g.lock.lock();
        // SAFETY: the lock is held whenever `data` is read.
        while g.data.with(|p| unsafe { *p }) < 2 {
            l = g.cv.wait(l);
        }
        drop(l);
        t.join().unwrap();
        assert_eq!(g.cv.waiters(), 0);
    });
}

/// A waiter that waits again after its first change can be taken off the futex by the
/// wake meant for that first change; the notifier of a second change, finding it counted
/// woken, makes no call: the waiter must return and look rather than sleep on.
#[test]
fn a_wake_meant_for_an_earlier_change_still_makes_its_waiter_look() {
    loom::model(|| {
        let g = Guarded::new(0u32);
        let g2 = g.clone();
        let t = thread::spawn(move || {
            {
                let _l = g2.lock.lock();
                // SAFETY: the lock is held.
                g2.data.with_mut(|p| unsafe { *p = 1 });
            }
            g2.cv.notify_one();
            {
                let _l = g2.lock.lock();
                // SAFETY: the lock is held.
                g2.data.with_mut(|p| unsafe { *p = 2 });
            }
            g2.cv.notify_all();
        });
        let mut l = g.lock.lock();
        for want in 1..=2 {
            // SAFETY: the lock is held whenever `data` is read.
            while g.data.with(|p| unsafe { *p }) < want {
                l = g.cv.wait(l);
            }
        }
        drop(l);
        t.join().unwrap();
    });
}

/// A waiter taken off the futex dies before it says so: another waiter still gets the
/// wake for a later item, and a survivor giving the dead waiter's count back leaves no
/// waiter counted.
#[test]
fn a_woken_waiter_that_dies_leaves_no_other_asleep() {
    loom::model(|| {
        let g = Guarded::new(0u32);
        let g2 = g.clone();
        let dying = thread::spawn(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Model::die_at("condvar.woken");
                let mut l = g2.lock.lock();
                // SAFETY: the lock is held whenever `data` is read.
                while g2.data.with(|p| unsafe { *p }) == 0 {
                    l = g2.cv.wait(l);
                }
            }))
            .is_err()
        });
        let g3 = g.clone();
        let second = thread::spawn(move || {
            let mut l = g3.lock.lock();
            // SAFETY: the lock is held whenever `data` is read.
            while g3.data.with(|p| unsafe { *p }) < 2 {
                l = g3.cv.wait(l);
            }
        });
        for _ in 0..2 {
            let _l = g.lock.lock();
            // SAFETY: the lock is held.
            g.data.with_mut(|p| unsafe { *p += 1 });
            g.cv.notify_one();
        }
        second.join().unwrap();
        if dying.join().unwrap() {
            // What recovery does for a waiter recorded as counted.
            g.cv.forget_waiter();
        }
        assert_eq!(g.cv.waiters(), 0);
    });
}

#[test]
fn notify_all_wakes_both_waiters() {
    loom::model(|| {
        let g = Guarded::new(false);
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let g = g.clone();
                thread::spawn(move || {
                    let mut l = g.lock.lock();
                    // SAFETY: the lock is held whenever `data` is read.
                    while !g.data.with(|p| unsafe { *p }) {
                        l = g.cv.wait(l);
                    }
                })
            })
            .collect();
        {
            let _l = g.lock.lock();
            // SAFETY: the lock is held.
            g.data.with_mut(|p| unsafe { *p = true });
            g.cv.notify_all();
        }
        for w in waiters {
            w.join().unwrap();
        }
    });
}

#[test]
fn lock_timeout_returns_or_acquires() {
    loom::model(|| {
        let g = Guarded::new(0u32);
        let held = g.lock.lock();
        let g2 = g.clone();
        let t = thread::spawn(
            move || match g2.lock.lock_timeout(Duration::from_millis(50)) {
                Ok(l) => {
                    // SAFETY: the lock is held.
                    g2.data.with_mut(|p| unsafe { *p += 1 });
                    drop(l);
                    true
                }
                Err(_) => false,
            },
        );
        // SAFETY: the lock is held.
        g.data.with_mut(|p| unsafe { *p += 1 });
        drop(held);
        let got = t.join().unwrap();
        let _l = g.lock.lock();
        // SAFETY: the lock is held.
        let n = g.data.with(|p| unsafe { *p });
        assert_eq!(n, if got { 2 } else { 1 });
    });
}

#[test]
fn condvar_wait_timeout_returns_without_notification() {
    loom::model(|| {
        let g = Guarded::new(());
        let l = g.lock.lock();
        let (l, r) = g.cv.wait_timeout(l, Duration::from_millis(30)).unwrap();
        assert!(r.timed_out());
        assert_eq!(l.acquired(), Acquired::Clean);
    });
}

#[test]
fn a_dead_owner_is_taken_over() {
    loom::model(|| {
        let g = Guarded::new(0u32);
        let g1 = g.clone();
        let dying = thread::spawn(move || {
            let l = g1.lock.lock();
            // SAFETY: the lock is held.
            g1.data.with_mut(|p| unsafe { *p = 99 });
            Model::die();
            // Stop holding the lock: the guard is never dropped.
            std::mem::forget(l);
        });
        let g2 = g.clone();
        let other = thread::spawn(move || {
            let mut l = g2.lock.lock();
            if l.owner_died() {
                // Repair: the dead thread's write is visible to the taker.
                // SAFETY: the lock is held.
                assert_eq!(g2.data.with(|p| unsafe { *p }), 99);
                // SAFETY: the lock is held.
                g2.data.with_mut(|p| unsafe { *p = 0 });
                l.mark_consistent();
            }
        });
        dying.join().unwrap();
        other.join().unwrap();
        let l = g.lock.lock();
        // Either `other` repaired the data, or it locked before the death and the main
        // thread is the one told.
        // SAFETY: the lock is held.
        let v = g.data.with(|p| unsafe { *p });
        assert_eq!(l.owner_died(), v == 99);
    });
}

/// A change of a generation word reaches a sleeper, though it makes no system call when
/// nobody sleeps: the sleeper counts itself before its last look at the word, the change
/// bumps the word before it reads the count. Untimed, a lost wake-up is a deadlock.
#[test]
fn a_generation_change_wakes_its_sleeper() {
    generation_change_wakes_a_sleeper(0);
}

/// A sleeper killed while counted leaves the count one too high: a change then always
/// makes its call, and a live sleeper is still woken.
#[test]
fn a_stale_sleeper_count_strands_nobody() {
    generation_change_wakes_a_sleeper(1);
}

/// One thread sleeps until a change that another makes, with `stale` sleepers counted
/// that no longer sleep; the count is back to `stale` after.
fn generation_change_wakes_a_sleeper(stale: u32) {
    loom::model(move || {
        let words = Arc::new((AtomicU32::new(0), AtomicU32::new(stale)));
        let w2 = words.clone();
        let t = thread::spawn(move || {
            Generation::<Model>::new(&w2.0, &w2.1).bump();
        });
        let g = Generation::<Model>::new(&words.0, &words.1);
        while g.get() == 0 {
            g.wait_change(0, None);
        }
        t.join().unwrap();
        assert_eq!(words.1.load(std::sync::atomic::Ordering::SeqCst), stale);
    });
}
