//! A hand-off rig for the benches (feature `fault-injection`, not part of the API): two
//! threads bounce a 64-bit item through a pair of queues, the ring or the lane, on the
//! heap, both sides spinning on `try` receives. It measures a protocol's cache-line cost
//! apart from the pipe and value layers above it.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::error::RecvFail;
use super::lane::HeapLane;
use super::ring::HeapRing;
use super::Wait;
use crate::sync::DefaultPlatform;

/// Which protocol a [`HopRig`] measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HopKind {
    /// The lock-based multi-producer multi-consumer ring pipes use.
    Ring,
    /// The lock-free single-producer single-consumer lane.
    Lane,
}

/// Capacity of each queue, as the benches' pipes have.
const CAP: u64 = 4;

/// Polls after which a waiting echo naps between polls.
const IDLE_POLLS: u32 = 1 << 16;

/// The nap of an idle echo.
const IDLE_NAP: Duration = Duration::from_millis(1);

// Made once per rig and kept in an `Arc`: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Pair {
    Ring(HeapRing<DefaultPlatform>, HeapRing<DefaultPlatform>),
    Lane(HeapLane<DefaultPlatform>, HeapLane<DefaultPlatform>),
}

impl Pair {
    fn new(kind: HopKind) -> Pair {
        match kind {
            HopKind::Ring => Pair::Ring(HeapRing::make(CAP), HeapRing::make(CAP)),
            HopKind::Lane => Pair::Lane(HeapLane::make(CAP), HeapLane::make(CAP)),
        }
    }

    /// Sends `v` on queue `to` (0 or 1), waiting while it is full.
    fn send(&self, to: usize, v: u64) -> bool {
        match self {
            Pair::Ring(a, b) => [a, b][to]
                .ring()
                .send_recorded(v, Wait::Forever, None)
                .is_ok(),
            Pair::Lane(a, b) => [a, b][to].lane().send(v, Wait::Forever, None).is_ok(),
        }
    }

    /// Spins on queue `from` until an item comes (`None`: closed). Past [`IDLE_POLLS`]
    /// polls the wait is idle (another rig is being measured), and each poll first naps
    /// [`IDLE_NAP`], so that an idle echo leaves the CPU to the measured rig.
    fn spin_recv(&self, from: usize) -> Option<u64> {
        let mut polls = 0u32;
        loop {
            polls = polls.saturating_add(1);
            if polls > IDLE_POLLS {
                std::thread::sleep(IDLE_NAP);
            }
            let r = match self {
                Pair::Ring(a, b) => [a, b][from].ring().recv(Wait::No),
                Pair::Lane(a, b) => [a, b][from].lane().recv(Wait::No, None),
            };
            match r {
                Ok(v) => return Some(v),
                Err(RecvFail::Empty) => std::hint::spin_loop(),
                Err(_) => return None,
            }
        }
    }

    fn close(&self) {
        match self {
            Pair::Ring(a, b) => {
                a.ring().close();
                b.ring().close();
            }
            Pair::Lane(a, b) => {
                a.lane().close();
                b.lane().close();
            }
        }
    }
}

/// Two queues and an echo thread sending back what comes.
pub struct HopRig {
    pair: Arc<Pair>,
    echo: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HopRig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HopRig").finish_non_exhaustive()
    }
}

impl HopRig {
    /// Starts the echo thread, which first runs `on_echo` (to pin itself).
    pub fn start(kind: HopKind, on_echo: impl FnOnce() + Send + 'static) -> HopRig {
        let pair = Arc::new(Pair::new(kind));
        let p = pair.clone();
        let echo = std::thread::spawn(move || {
            on_echo();
            while let Some(v) = p.spin_recv(0) {
                if !p.send(1, v) {
                    return;
                }
            }
        });
        HopRig {
            pair,
            echo: Some(echo),
        }
    }

    /// The time of `n` round trips.
    pub fn round_trips(&self, n: u64) -> Duration {
        let start = Instant::now();
        for i in 0..n {
            assert!(self.pair.send(0, i), "the echo's queue is open");
            assert_eq!(self.pair.spin_recv(1), Some(i), "the echo");
        }
        start.elapsed()
    }
}

impl Drop for HopRig {
    fn drop(&mut self) {
        self.pair.close();
        if let Some(e) = self.echo.take() {
            let _ = e.join();
        }
    }
}
