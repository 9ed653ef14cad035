//! The lane's waits: a bounded spin while the other side runs elsewhere, then a sleep on
//! an event word with a flag raised, which the other side's commit looks at (see the
//! parent module); and the close that wakes both sides.

use std::time::Duration;

use super::Lane;
use crate::queue::ring::{note_cpu, worth_spinning, Wait, SPINS};
use crate::sync::atomic::{fence, AtomicU32, Ordering};
use crate::sync::Platform;

impl<P: Platform> Lane<'_, P> {
    /// Waits as `wait` allows until `ready` answers, the lane is closed or poisoned (a
    /// close counts before `ready` when `closed_first`: a sender, not a receiver draining).
    /// Spins first while the other side (last on `peer_cpu`) runs on another CPU, then
    /// sleeps on `event` with `flag` raised; a side that waits notes its CPU in `own_cpu`.
    pub(super) fn wait_for<R>(
        &self,
        wait: Wait,
        (own_cpu, peer_cpu): (&AtomicU32, &AtomicU32),
        (flag, event): (&AtomicU32, &AtomicU32),
        closed_first: bool,
        ready: impl Fn() -> Option<R>,
    ) -> Waited<R> {
        let rare = &self.hdr.rare;
        let check = || {
            let closed = || rare.closed.load(Ordering::Acquire) != 0;
            if self.poisoned() {
                Some(Waited::Poisoned)
            } else if closed_first && closed() {
                Some(Waited::Closed)
            } else if let Some(r) = ready() {
                Some(Waited::Ready(r))
            } else if closed() {
                Some(Waited::Closed)
            } else if !closed_first && self.gone.is_some_and(|g| g()) {
                Some(Waited::Gone)
            } else {
                None
            }
        };
        if let Some(w) = check() {
            return w;
        }
        if wait == Wait::No {
            return Waited::Over;
        }
        let me = note_cpu(own_cpu);
        if SPINS > 0 && worth_spinning(peer_cpu.load(Ordering::Relaxed), me) {
            for _ in 0..SPINS {
                std::hint::spin_loop();
                if let Some(w) = check() {
                    return w;
                }
            }
        }
        loop {
            if wait.over::<P>() {
                return Waited::Over;
            }
            let seen = event.load(Ordering::Acquire);
            flag.store(1, Ordering::Relaxed);
            // SYNC POINT: the flag before the re-check, against the other side's commit
            // before its look at the flag (see `wake`): one of the two sees the other.
            fence(Ordering::SeqCst);
            if let Some(w) = check() {
                flag.store(0, Ordering::Relaxed);
                return w;
            }
            let timeout = wait
                .deadline()
                .map(|d| Duration::from_nanos(d.saturating_sub(P::now_ns())));
            P::wait(event, seen, timeout);
            flag.store(0, Ordering::Relaxed);
            if let Some(w) = check() {
                return w;
            }
        }
    }

    /// After a commit: wakes the other side if its `flag` says it sleeps on `event`.
    pub(super) fn wake(flag: &AtomicU32, event: &AtomicU32) {
        // SYNC POINT: the commit before the look at the flag (see `wait_for`).
        fence(Ordering::SeqCst);
        if flag.load(Ordering::Relaxed) != 0 {
            event.fetch_add(1, Ordering::Release);
            P::wake(event, 1);
        }
    }

    /// Wakes the receiver if it sleeps: a sender went (see [`with_gone`](Self::with_gone)).
    pub fn wake_receiver(&self) {
        let rare = &self.hdr.rare;
        rare.not_empty.fetch_add(1, Ordering::Release);
        P::wake(&rare.not_empty, u32::MAX);
    }

    /// Closes the lane: later sends get [`SendFail::Closed`] with their item back;
    /// receives drain what is left, then get [`RecvFail::Closed`]. Wakes both sides.
    pub fn close(&self) {
        let rare = &self.hdr.rare;
        rare.closed.store(1, Ordering::Release);
        for event in [&rare.not_empty, &rare.not_full] {
            event.fetch_add(1, Ordering::Release);
            P::wake(event, u32::MAX);
        }
    }
}

/// How [`Lane::wait_for`] ended.
pub(super) enum Waited<R> {
    Ready(R),
    Closed,
    /// Every sender has gone for good (receivers only).
    Gone,
    Poisoned,
    Over,
}
