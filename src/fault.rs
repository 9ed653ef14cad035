//! Named pause points for crash tests.
//!
//! Code under test calls [`pause_point`] at the steps where a crash is interesting (inside
//! the allocator's critical sections). Normally that costs one relaxed atomic load. A test
//! child calls [`arm`] with a point's name before the operation; when the operation reaches
//! that point the thread sleeps forever, holding whatever it holds, and the test kills the
//! process there with SIGKILL to check that the survivors recover.

use std::sync::Mutex;
use std::time::Duration;

use crate::sync::atomic::{AtomicU8, Ordering};

/// Whether any point is armed in this process: the fast path reads only this.
static ARMED: AtomicU8 = AtomicU8::new(0);
/// The armed point's name.
static POINT: Mutex<String> = Mutex::new(String::new());

/// Arms the pause point `point` in this process: the next thread to reach it sleeps forever.
pub fn arm(point: &str) {
    let mut p = POINT.lock().unwrap_or_else(|e| e.into_inner());
    p.clear();
    p.push_str(point);
    ARMED.store(1, Ordering::SeqCst);
}

/// Disarms any armed point.
pub fn disarm() {
    ARMED.store(0, Ordering::SeqCst);
}

/// Marks a step named `name`. Returns at once unless `name` is armed, in which case the
/// calling thread never returns.
#[inline]
pub fn pause_point(name: &'static str) {
    if ARMED.load(Ordering::Relaxed) != 0 {
        pause_if_armed(name);
    }
}

#[cold]
#[inline(never)]
fn pause_if_armed(name: &'static str) {
    let hit = *POINT.lock().unwrap_or_else(|e| e.into_inner()) == name;
    if hit {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unarmed_or_other_point_returns() {
        pause_point("fault.test.unarmed");
        arm("fault.test.some-other-point");
        pause_point("fault.test.unarmed");
        disarm();
        pause_point("fault.test.some-other-point");
    }
}
