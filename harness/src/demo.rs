//! `shmval demo`: create a region, let worker processes allocate and free in it, and show
//! the pool's statistics before, during and after.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use shmval::alloc::{Pool, PoolStats};
use shmval::region::{Region, RegionName};

use crate::output::outln;

/// What the demo measured, printed as text or JSON.
#[derive(Debug, Serialize)]
pub struct DemoReport {
    region: String,
    region_bytes: u64,
    workers: u32,
    ops_per_worker: u64,
    seconds: f64,
    before: Stats,
    after: Stats,
    back_to_baseline: bool,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
struct Stats {
    capacity: u64,
    used: u64,
    free: u64,
    largest_free: u64,
    free_blocks: u64,
    live_allocations: u64,
    high_water: u64,
}

impl From<PoolStats> for Stats {
    fn from(s: PoolStats) -> Stats {
        Stats {
            capacity: s.capacity,
            used: s.used,
            free: s.free,
            largest_free: s.largest_free,
            free_blocks: s.free_blocks,
            live_allocations: s.live_allocations,
            high_water: s.high_water,
        }
    }
}

/// Kills and reaps a worker that is still running when the demo unwinds.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs the demo; `Err` carries a message for the user.
pub fn run(bytes: u64, workers: u32, ops: u64, json: bool) -> Result<DemoReport, String> {
    let name = RegionName::new(format!("shmval-demo-{}", std::process::id()))
        .map_err(|e| e.to_string())?;
    let region = Arc::new(Region::create(&name, bytes).map_err(|e| e.to_string())?);
    let pool = Pool::create(region).map_err(|e| e.to_string())?;
    let before = pool.stats().map_err(|e| e.to_string())?;
    if !json {
        outln!(
            "created region {name} ({bytes} bytes); pool: {}",
            show(&before)
        );
        outln!("starting {workers} worker processes, {ops} alloc/free pairs each");
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let start = Instant::now();
    let mut children = Vec::new();
    for i in 0..workers {
        let child = Command::new(&exe)
            .args([
                "demo-worker",
                name.as_str(),
                &ops.to_string(),
                &i.to_string(),
            ])
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start worker: {e}"))?;
        children.push(Worker(child));
    }
    let mut last = Instant::now();
    let mut failed = Vec::new();
    while !children.is_empty() {
        std::thread::sleep(Duration::from_millis(20));
        // Stopped from outside: returning drops the workers (killed and reaped) and the
        // region (its name removed).
        if let Some(sig) = crate::signals::pending() {
            return Err(format!(
                "interrupted by {sig}: its workers were stopped and region {name} removed"
            ));
        }
        if crate::output::closed() {
            return Err(format!("standard output was closed; region {name} removed"));
        }
        children.retain_mut(|w| match w.0.try_wait() {
            Ok(Some(status)) => {
                if !status.success() {
                    failed.push(status.to_string());
                }
                false
            }
            Ok(None) => true,
            Err(e) => {
                failed.push(e.to_string());
                false
            }
        });
        if !json && last.elapsed() >= Duration::from_millis(500) {
            last = Instant::now();
            outln!(
                "  {:>5.1}s  {} running  {}",
                start.elapsed().as_secs_f64(),
                children.len(),
                pool.stats().map_or_else(|e| e.to_string(), |s| show(&s))
            );
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    if !failed.is_empty() {
        return Err(format!("worker failed: {}", failed.join(", ")));
    }
    let after = pool.stats().map_err(|e| e.to_string())?;
    pool.verify()
        .map_err(|e| format!("pool failed verification: {e}"))?;
    let back = after.used == before.used
        && after.live_allocations == before.live_allocations
        && after.largest_free == before.largest_free
        && after.free_blocks == 1;
    Ok(DemoReport {
        region: name.to_string(),
        region_bytes: bytes,
        workers,
        ops_per_worker: ops,
        seconds,
        before: before.into(),
        after: after.into(),
        back_to_baseline: back,
    })
}

impl DemoReport {
    /// Whether the pool ended as it started.
    pub fn ok(&self) -> bool {
        self.back_to_baseline
    }

    /// The human-readable summary.
    pub fn print(&self) {
        let total = u64::from(self.workers) * self.ops_per_worker;
        outln!(
            "done in {:.2}s: {} alloc/free pairs from {} processes ({:.0} pairs/s)",
            self.seconds,
            total,
            self.workers,
            total as f64 / self.seconds.max(1e-9)
        );
        outln!("  before: {}", show_stats(&self.before));
        outln!("  after:  {}", show_stats(&self.after));
        outln!(
            "  pool back to its baseline: {}",
            if self.back_to_baseline { "yes" } else { "NO" }
        );
    }
}

fn show(s: &PoolStats) -> String {
    show_stats(&Stats::from(*s))
}

fn show_stats(s: &Stats) -> String {
    format!(
        "capacity {} B, used {} B, free {} B in {} block(s), largest free {} B, live {}, \
         high-water {} B",
        s.capacity, s.used, s.free, s.free_blocks, s.largest_free, s.live_allocations, s.high_water
    )
}

/// The worker process: attach, then `ops` random alloc/free pairs with a few blocks kept
/// live, each filled with a pattern that is checked before it is freed.
pub fn worker(name: &str, ops: u64, seed: u64) -> Result<(), String> {
    // Only the demo ends its workers: a Ctrl-C reaches it too.
    crate::signals::ignore_in_child();
    let name = RegionName::new(name).map_err(|e| e.to_string())?;
    let region = Arc::new(Region::attach(&name).map_err(|e| e.to_string())?);
    let pool = Pool::attach(region.clone()).map_err(|e| e.to_string())?;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (seed + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut live: Vec<(shmval::alloc::Block, usize, u8)> = Vec::new();
    for i in 0..ops {
        let size = 1 + next() % 2048;
        let align = 1u64 << (next() % 7);
        let mut block = pool.alloc_block(size, align).map_err(|e| e.to_string())?;
        let tag = (i % 251) as u8;
        let size = size as usize;
        block.as_bytes_mut()[..size].fill(tag);
        live.push((block, size, tag));
        if live.len() > 8 || next() % 2 == 0 {
            let (block, size, tag) = live.swap_remove((next() % live.len() as u64) as usize);
            if block.as_bytes()[..size].iter().any(|b| *b != tag) {
                return Err(format!("block at {} was overwritten", block.offset()));
            }
            block.free().map_err(|e| e.to_string())?;
        }
    }
    for (block, _, _) in live {
        block.free().map_err(|e| e.to_string())?;
    }
    Ok(())
}
