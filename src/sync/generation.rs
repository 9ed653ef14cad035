//! [`Generation`]: a word that counts changes, which waiters sleep on until it moves.
//!
//! A change wakes the sleepers only when there are any. Each sleeper counts itself in a
//! word beside the generation, then takes its last look at the generation with a
//! read-modify-write; a change bumps the generation with one, then reads the count. The
//! two read-modify-writes of the generation are ordered: if the sleeper's comes second it
//! sees the change and does not sleep; if first, the change reads from it and so sees
//! the sleeper's count, and wakes it.
//!
//! A sleeper killed while counted leaves the count one too high for good (no survivor
//! knows it slept): every later change then makes its system call, as before the count
//! existed. Sleeps are always bounded by the caller's timeout, so a count made too low by
//! a buggy process delays a waiter, never strands it.

use std::marker::PhantomData;
use std::time::Duration;

use super::atomic::{AtomicU32, Ordering};
use super::platform::Platform;
use super::DefaultPlatform;

/// A generation word and its sleepers' count: two adjacent `u32`s of a shared structure.
pub(crate) struct Generation<'a, P: Platform = DefaultPlatform> {
    generation: &'a AtomicU32,
    sleepers: &'a AtomicU32,
    _platform: PhantomData<fn() -> P>,
}

impl<'a, P: Platform> Generation<'a, P> {
    /// The generation in `generation`, its sleepers counted in `sleepers`.
    pub(crate) fn new(generation: &'a AtomicU32, sleepers: &'a AtomicU32) -> Self {
        Generation {
            generation,
            sleepers,
            _platform: PhantomData,
        }
    }

    /// The generation now.
    pub(crate) fn get(&self) -> u32 {
        self.generation.load(Ordering::Acquire)
    }

    /// Records a change and wakes every sleeper, if any.
    pub(crate) fn bump(&self) {
        // SYNC POINT: a read-modify-write, pairing with `wait_change`'s.
        self.generation.fetch_add(1, Ordering::AcqRel);
        if self.sleepers.load(Ordering::Acquire) != 0 {
            P::wake(self.generation, u32::MAX);
        }
    }

    /// Sleeps while the generation is `seen`, for at most `timeout` (none: until a change,
    /// which only the loom model asks for).
    pub(crate) fn wait_change(&self, seen: u32, timeout: Option<Duration>) {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        // SYNC POINT: a read-modify-write (see the module docs), pairing with `bump`'s.
        if self.generation.fetch_add(0, Ordering::AcqRel) == seen {
            P::wait(self.generation, seen, timeout);
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(all(test, not(shmval_loom)))]
mod tests {
    use super::*;
    use crate::sync::atomic::AtomicU64;
    use crate::sync::{Os, Owner, Wake};
    use std::sync::Arc;
    use std::time::Instant;

    /// The real platform, counting its wakes, whose waits return only at a change of the
    /// word or the timeout: a futex wait may return for no reason, and a sleeper between
    /// two sleeps is rightly not woken, which would leave the wake count to chance.
    struct Counting;

    static WAKES: AtomicU64 = AtomicU64::new(0);

    impl Platform for Counting {
        const LIVENESS_POLL: Option<Duration> = Os::LIVENESS_POLL;
        fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
            loop {
                let r = Os::wait(word, expected, timeout);
                if matches!(r, Wake::TimedOut) || word.load(Ordering::SeqCst) != expected {
                    return r;
                }
            }
        }
        fn wake(word: &AtomicU32, n: u32) -> u32 {
            WAKES.fetch_add(1, Ordering::SeqCst);
            Os::wake(word, n)
        }
        fn now_ns() -> u64 {
            Os::now_ns()
        }
        fn current() -> Owner {
            Os::current()
        }
        fn is_alive(owner: Owner) -> bool {
            Os::is_alive(owner)
        }
    }

    #[test]
    fn a_change_wakes_only_when_someone_sleeps() {
        let words = Arc::new((AtomicU32::new(0), AtomicU32::new(0)));
        let g = Generation::<Counting>::new(&words.0, &words.1);
        g.bump();
        g.bump();
        assert_eq!(g.get(), 2);
        assert_eq!(WAKES.load(Ordering::SeqCst), 0);
        let w2 = words.clone();
        let sleeper = std::thread::spawn(move || {
            let g = Generation::<Counting>::new(&w2.0, &w2.1);
            let t = Instant::now();
            // A deadline far away: only the wake ends the sleep in time.
            while g.get() == 2 {
                g.wait_change(2, Some(Duration::from_secs(600)));
            }
            t.elapsed()
        });
        while words.1.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        g.bump();
        let slept = sleeper.join().unwrap();
        assert!(slept < Duration::from_secs(300), "woken by the change");
        assert_eq!(WAKES.load(Ordering::SeqCst), 1);
        assert_eq!(words.1.load(Ordering::SeqCst), 0);
    }
}
