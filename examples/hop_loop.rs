//! `hop_loop [ring|o2o] [HOPS]`, e.g. `hop_loop o2o 100000`.
//!
//! Moves one shared 8-float array through a pipe and back out, `HOPS` times, in one
//! process: a `try_enqueue` then a `try_dequeue` per hop, over the ring or over a
//! one-to-one pipe (a lane). For counting what a hop costs in instructions, without the
//! noise of two CPUs:
//!
//! ```text
//! cargo build --release --example hop_loop
//! valgrind --tool=callgrind target/release/examples/hop_loop o2o 100000
//! ```
//!
//! Timing belongs to the benches (`ci/bench-gate`); the time this prints is only a hint.

use std::error::Error;
use std::process::ExitCode;
use std::time::Instant;

use shmval::sides::{ServerSide, ShmMain};
use shmval::PoolExt;

const USAGE: &str = "usage: hop_loop [ring|o2o] [HOPS]\n  e.g. hop_loop o2o 100000";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let one_to_one = match args.first().map(String::as_str) {
        None | Some("ring") => false,
        Some("o2o") => true,
        Some(_) => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Ok(hops) = args.get(1).map_or(Ok(100_000), |h| h.parse::<u64>()) else {
        eprintln!("hop_loop: HOPS must be a whole number\n{USAGE}");
        return ExitCode::from(2);
    };
    match run(one_to_one, hops) {
        Ok(ns) => {
            eprintln!("hop_loop: {hops} hops, {ns:.0} ns a hop");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hop_loop: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `hops` hops and returns the nanoseconds a hop took.
fn run(one_to_one: bool, hops: u64) -> Result<f64, Box<dyn Error>> {
    // A region of this process's own, taken away when `main` drops.
    let region = format!("shmval-hop-loop-{}", std::process::id());
    let main = ShmMain::new(region.as_str(), 4 << 20).start()?;
    let side = ServerSide::new(region.as_str(), "hops", 4)
        .one_to_one(one_to_one)
        .start()?;
    let pipe = side.pipe();
    let mut v = side.pool().array_from(&[0.5f64; 8][..])?;
    let start = Instant::now();
    for _ in 0..hops {
        pipe.try_enqueue(v)?;
        v = pipe.try_dequeue()?;
    }
    let ns = start.elapsed().as_nanos() as f64 / hops.max(1) as f64;
    drop((v, side, main));
    Ok(ns)
}
