//! Two parties doing alloc+free pairs at once: the control block the parent and the
//! contending child share in the pool, and their loops.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmval::alloc::Pool;
use shmval::region::{Offset, Region, RegionName};

use std::process::Stdio;

use super::{env_var, Patience, Peer, CHILD_IDLE, REGION, WAIT};

/// The environment variable giving the child the control block's offset.
pub const CTRL: &str = "SHMVAL_BENCH_CTRL";

/// Words of the control block shared by the two contending processes.
pub const GO: usize = 0; // generation the parent starts; the child runs `ITERS` pairs for it
pub const ITERS: usize = 1;
pub const DONE: usize = 2; // generation the child has finished
pub const READY: usize = 3; // set by the child once attached
pub const STOP: u64 = u64::MAX;

/// An alloc+free pair of `size` bytes from `pool`.
pub fn pool_pair(pool: &Pool, size: u64) {
    let off = pool.alloc(black_box(size), 8).expect("alloc");
    // SAFETY: the block was allocated just above and nothing else uses it.
    unsafe { pool.free(black_box(off)) }.expect("free");
}

/// Spins until `word` reaches `want` (or [`STOP`]), or panics past `limit`.
pub fn await_word(word: &AtomicU64, want: u64, limit: Duration) -> u64 {
    let mut patience = Patience::new(limit);
    loop {
        let v = word.load(Ordering::Acquire);
        if v == want || v == STOP {
            return v;
        }
        if patience.exhausted() {
            panic!("the other party did not reach {want} within {limit:?}");
        }
        std::hint::spin_loop();
    }
}

/// The other party's batches, through the control words: the parent starts one
/// generation of `iters` pairs and waits for it to be done.
pub struct Batches<'a> {
    pub ctrl: &'a [AtomicU64; 8],
    pub generation: u64,
}

impl Batches<'_> {
    /// Times `iters` pairs here while the other party does as many there.
    pub fn contended(&mut self, iters: u64, pair: impl Fn()) -> Duration {
        self.generation += 1;
        self.ctrl[ITERS].store(iters, Ordering::Relaxed);
        self.ctrl[GO].store(self.generation, Ordering::Release);
        let start = Instant::now();
        for _ in 0..iters {
            pair();
        }
        let t = start.elapsed();
        await_word(&self.ctrl[DONE], self.generation, WAIT);
        t
    }

    /// Tells the other party to return.
    pub fn stop(&self) {
        self.ctrl[GO].store(STOP, Ordering::Release);
    }
}

/// The loop of the contending party: waits for each generation, runs its pairs, reports.
pub fn contend(ctrl: &[AtomicU64; 8], pair: impl Fn()) {
    let mut generation = 0u64;
    loop {
        // Any generation but the last one done (or STOP); the parent may take a while
        // between batches (criterion's analysis): wait long, napping once idle.
        let mut patience = Patience::new(CHILD_IDLE);
        let g = loop {
            let g = ctrl[GO].load(Ordering::Acquire);
            if g != generation {
                break g;
            }
            if patience.exhausted() {
                panic!("no batch within {CHILD_IDLE:?}");
            }
            std::hint::spin_loop();
        };
        if g == STOP {
            return;
        }
        for _ in 0..ctrl[ITERS].load(Ordering::Relaxed) {
            pair();
        }
        generation = g;
        ctrl[DONE].store(g, Ordering::Release);
    }
}

/// The child role (after `child_setup`): attaches the pool and contends until told to
/// stop.
pub fn pool_child() {
    let name = RegionName::new(env_var(REGION)).expect("a valid name");
    let region = Arc::new(Region::attach(&name).expect("attach the bench region"));
    let pool = Pool::attach(region.clone()).expect("attach the pool");
    let off = Offset::new(env_var(CTRL).parse().expect("an offset"));
    // SAFETY: the control block is a raw block of the bench, accessed only atomically by both
    // processes.
    let ctrl: &[AtomicU64; 8] = unsafe { region.resolve(off) }.expect("the control block");
    ctrl[READY].store(1, Ordering::Release);
    contend(ctrl, || pool_pair(&pool, 16));
}

/// A child process attached to `pool`, pinned to a CPU, doing pairs in batches this
/// process starts; the pool's name is unlinked once the child has attached.
pub struct Contender<'a> {
    pool: &'a Pool,
    off: Offset,
    child: Peer,
    pub batches: Batches<'a>,
}

impl<'a> Contender<'a> {
    /// Starts the child on `cpu` and runs one batch untimed.
    pub fn start(pool: &'a Pool, cpu: usize) -> Contender<'a> {
        let region = pool.region();
        let off = pool.alloc(64, 64).expect("the control block");
        // SAFETY: the control block is a raw block of the bench, accessed only atomically
        // by both processes.
        let ctrl: &[AtomicU64; 8] = unsafe { region.resolve(off) }.expect("the control block");
        for w in ctrl {
            w.store(0, Ordering::Relaxed);
        }
        let child = Peer::spawn(
            "alloc-pairs",
            cpu,
            &[
                (REGION, region.name().as_str().to_owned()),
                (CTRL, off.get().to_string()),
            ],
            Stdio::null(),
            Stdio::null(),
        );
        let mut batches = Batches {
            ctrl,
            generation: 0,
        };
        await_word(&ctrl[READY], 1, WAIT);
        region.unlink();
        batches.contended(1000, || pool_pair(pool, 16));
        Contender {
            pool,
            off,
            child,
            batches,
        }
    }

    /// Stops the child and frees the control block.
    pub fn finish(self) {
        self.batches.stop();
        self.child.finish();
        // SAFETY: the control block is ours; both processes are done with it.
        unsafe { self.pool.free(self.off) }.expect("free the control block");
    }
}
