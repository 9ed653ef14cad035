//! Model checks of the lock and condvar protocol (run with `RUSTFLAGS="--cfg shmval_loom"`).

use std::sync::Arc;
use std::time::Duration;

use loom::thread;

use super::cell::UnsafeCell;
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
