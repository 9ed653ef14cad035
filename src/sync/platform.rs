//! The environment a lock runs in, as a trait so the protocol can be model-checked.

use std::time::Duration;

use super::atomic::AtomicU32;
use super::owner::Owner;

/// What a futex wait ended with. A wake-up may be spurious: callers always re-check the
/// condition they waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Taken off the futex by [`Platform::wake`] (or, rarely, woken for no reason).
    Woken,
    /// Interrupted, or the word no longer held the expected value.
    Changed,
    /// The timeout elapsed.
    TimedOut,
}

/// The operations [`ShmMutex`](super::ShmMutex) and [`ShmCondvar`](super::ShmCondvar) need
/// from their environment.
///
/// [`Os`](super::Os) binds them to the `futex` system call (shared, not private, since the
/// word lives in memory several processes map), the monotonic clock and `/proc`. The loom
/// model binds `wait` to a yield: a futex may wake spuriously, so returning at once is a
/// behaviour the real call also has, and a protocol correct under it is correct under the
/// real call.
pub trait Platform {
    /// How often a thread sleeping on a lock wakes to check that the owner still lives.
    /// `None`: an untimed `wait` itself returns [`Wake::TimedOut`] after a thread dies (the
    /// loom model).
    const LIVENESS_POLL: Option<Duration>;

    /// Sleeps while `word == expected`, for at most `timeout` (relative, monotonic).
    fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake;
    /// Wakes up to `n` threads sleeping in [`wait`](Self::wait) on `word`; how many it woke.
    fn wake(word: &AtomicU32, n: u32) -> u32;
    /// Nanoseconds on a monotonic clock shared by every process of the machine.
    fn now_ns() -> u64;
    /// The calling thread's identity, as stored in a lock word.
    fn current() -> Owner;
    /// Whether `owner` is still running. `true` when in doubt: a lock is only taken over
    /// from an owner known to be dead.
    fn is_alive(owner: Owner) -> bool;

    /// Whether the calling thread is being killed where it stands (only the loom model
    /// says so): its guards then release nothing, as a killed process's would not.
    fn exiting() -> bool {
        false
    }
}
