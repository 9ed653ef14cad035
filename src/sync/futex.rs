//! Raw `FUTEX_WAIT` / `FUTEX_WAKE` on a word in shared memory.
//!
//! The private flag is never set: the word lives in a mapping several processes share, and
//! a private futex is keyed by the address in one process only.

use std::time::Duration;

use super::atomic::AtomicU32;
use super::platform::Wake;

/// Sleeps while `*word == expected`, for at most `timeout` (a relative time on the
/// monotonic clock, as `FUTEX_WAIT` takes it). `EINTR` and `EAGAIN` are reported as
/// [`Wake::Changed`]: the caller re-checks its condition either way.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call (it is borrowed);
    // `ts_ptr` is null or points to a timespec that lives until the call returns. The
    // kernel only reads both.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if r == 0 {
        return Wake::Woken;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ETIMEDOUT) => Wake::TimedOut,
        _ => Wake::Changed,
    }
}

/// Wakes up to `n` threads of any process sleeping in [`wait`] on `word`.
/// Returns how many it woke.
pub(crate) fn wake(word: &AtomicU32, n: u32) -> u32 {
    let n = n.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: `word` is a valid, aligned u32 (it is borrowed); FUTEX_WAKE does not access
    // user memory beyond using the address as a key.
    let woken = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    u32::try_from(woken).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn wait_returns_at_once_when_word_differs() {
        let w = AtomicU32::new(1);
        assert_eq!(wait(&w, 0, Some(Duration::from_secs(5))), Wake::Changed);
    }

    #[test]
    fn wait_times_out() {
        let w = AtomicU32::new(0);
        let t = Instant::now();
        assert_eq!(wait(&w, 0, Some(Duration::from_millis(20))), Wake::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn wake_reaches_a_sleeper() {
        use std::sync::atomic::Ordering;
        let w = Arc::new(AtomicU32::new(0));
        let w2 = w.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tx.send(unsafe { libc::gettid() }).unwrap();
            // A deadline far away: only the wake ends the sleep in time.
            let mut woke = Wake::Woken;
            while w2.load(Ordering::SeqCst) == 0 {
                woke = wait(&w2, 0, Some(Duration::from_secs(600)));
            }
            woke
        });
        // Wake once the sleeper is in FUTEX_WAIT (where /proc cannot tell, at once).
        let path = format!("/proc/self/task/{}/syscall", rx.recv().unwrap());
        let futex = libc::SYS_futex.to_string();
        let t0 = Instant::now();
        while !std::fs::read_to_string(&path).map_or(true, |s| {
            s.split_whitespace().next() == Some(futex.as_str())
        }) {
            assert!(t0.elapsed() < Duration::from_secs(30), "never slept");
            std::thread::yield_now();
        }
        w.store(1, Ordering::SeqCst);
        assert_eq!(wake(&w, 1), 1, "the sleeper was taken off the futex");
        assert_eq!(t.join().unwrap(), Wake::Woken);
        assert_eq!(wake(&w, 1), 0, "nobody sleeps now");
    }
}
