//! A lane side's turn among the threads of one handle. A lane has one sender and one
//! receiver, so threads sharing a handle take turns on its side: the turn is taken with
//! one compare-and-swap and given back with a plain store, so a handle used by one thread
//! pays one locked instruction a call (a mutex pays two). A thread that finds the turn
//! taken polls for it: threads of one handle are expected to contend rarely.

use std::time::{Duration, Instant};

use crate::sync::atomic::{AtomicU32, Ordering};

/// Whether some thread of the handle has the turn (1) or none (0).
#[derive(Debug, Default)]
pub(super) struct Turn(AtomicU32);

/// The turn, given back when dropped (also when its holder unwinds: the lane is valid
/// after every step).
#[must_use = "the turn is given back when this drops"]
pub(super) struct Held<'a>(&'a Turn);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // SYNC POINT: release, so that the next holder (acquire in `try_take`) sees this
        // holder's operation on the side.
        (self.0).0.store(0, Ordering::Release);
    }
}

/// How often a timed wait looks at the turn again.
const POLL: Duration = Duration::from_micros(100);

/// The longest pause between two looks of a wait without a limit.
const POLL_MAX: Duration = Duration::from_millis(1);

impl Turn {
    /// The turn, if no other thread has it.
    #[inline]
    pub(super) fn try_take(&self) -> Option<Held<'_>> {
        self.0
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Held(self))
    }

    /// The turn once the thread that has it gives it back: looking every [`POLL`] within
    /// `limit` ([`Missed::Over`] once it is over), or without a limit, backing off to a
    /// look every [`POLL_MAX`]. With `stop` (a break checker and how often to ask it),
    /// asks it that often and ends with [`Missed::Stopped`] when it says so; with
    /// `notice` (a time and what to call), calls it once with the time waited when the
    /// wait has lasted that long. Returns the turn and the time spent waiting.
    #[cold]
    #[inline(never)]
    pub(super) fn wait(
        &self,
        limit: Option<Duration>,
        stop: Option<(&dyn Fn() -> bool, Duration)>,
        mut notice: Option<(Duration, &dyn Fn(Duration))>,
    ) -> Result<(Held<'_>, Duration), Missed> {
        let start = Instant::now();
        let mut pause = match limit {
            Some(d) => POLL.min(d),
            None => POLL / 2,
        };
        let mut ask_at = stop.map(|(_, every)| every);
        loop {
            if let Some(h) = self.try_take() {
                return Ok((h, start.elapsed()));
            }
            let spent = start.elapsed();
            if let Some(d) = limit {
                if spent >= d {
                    return Err(Missed::Over);
                }
                pause = pause.min(d - spent);
            }
            if let Some((after, say)) = notice {
                if spent >= after {
                    say(spent);
                    notice = None;
                }
            }
            if let (Some((asked, every)), Some(at)) = (stop, ask_at) {
                if spent >= at {
                    if asked() {
                        return Err(Missed::Stopped);
                    }
                    ask_at = Some(spent + every);
                }
            }
            std::thread::sleep(pause);
            if limit.is_none() {
                pause = (pause * 2).min(POLL_MAX);
            }
        }
    }
}

/// Why [`Turn::wait`] ended without the turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Missed {
    /// Its limit passed.
    Over,
    /// The break checker said stop.
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_is_one_threads_at_a_time_and_comes_back_when_dropped() {
        let t = Turn::default();
        let held = t.try_take().expect("free at first");
        assert!(t.try_take().is_none(), "taken");
        let start = Instant::now();
        assert_eq!(
            t.wait(Some(Duration::from_millis(5)), None, None).err(),
            Some(Missed::Over)
        );
        assert!(start.elapsed() >= Duration::from_millis(5));
        drop(held);
        let (again, _) = t
            .wait(Some(Duration::ZERO), None, None)
            .expect("given back");
        drop(again);
        assert!(t.try_take().is_some());
    }

    #[test]
    fn a_wait_without_limit_gets_the_turn_once_it_is_given_back() {
        let t = Turn::default();
        let held = t.try_take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let t = &t;
            let waiter = s.spawn(move || {
                // Asked only once the waiter has found the turn taken: it tells the test
                // that it waits, and never stops it.
                let waiting = || {
                    let _ = tx.send(());
                    false
                };
                t.wait(None, Some((&waiting, Duration::ZERO)), None)
                    .map(drop)
                    .is_ok()
            });
            rx.recv().expect("the waiter waits");
            drop(held);
            assert!(waiter.join().unwrap());
        });
        assert!(t.try_take().is_some(), "the waiter gave it back");
    }

    #[test]
    fn a_wait_without_limit_ends_when_its_break_checker_says_so() {
        let t = Turn::default();
        let _held = t.try_take().unwrap();
        let asked = std::cell::Cell::new(0);
        let stop = || {
            asked.set(asked.get() + 1);
            asked.get() > 2
        };
        let every = Duration::from_micros(200);
        assert_eq!(
            t.wait(None, Some((&stop, every)), None).err(),
            Some(Missed::Stopped)
        );
        assert_eq!(asked.into_inner(), 3, "asked until it said stop");
    }

    #[test]
    fn a_long_wait_says_so_once() {
        let t = Turn::default();
        let held = t.try_take().unwrap();
        let said = std::sync::Mutex::new(Vec::new());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let (t, said) = (&t, &said);
            let waiter = s.spawn(move || {
                let say = |waited: Duration| {
                    said.lock().unwrap().push(waited);
                    let _ = tx.send(());
                };
                let after = Duration::from_millis(1);
                t.wait(None, None, Some((after, &say))).map(drop).is_ok()
            });
            // The notice came: the waiter has waited past its time, and still waits.
            rx.recv().expect("the waiter says it waits");
            drop(held);
            assert!(waiter.join().unwrap());
        });
        let said = said.into_inner().unwrap();
        assert_eq!(said.len(), 1, "said once: {said:?}");
        assert!(said[0] >= Duration::from_millis(1), "{said:?}");
    }
}
