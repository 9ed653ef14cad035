//! `serverside REGION BYTES PIPE CAPACITY [MAX_BYTES]`, e.g. `serverside mempool 1000000
//! pipe1 4`, or `serverside mempool 65536 pipe1 4 1000000000` for a pool that starts at
//! 64 KiB and grows as needed up to 1 GB.
//!
//! Creates the shared pool (it owns `ShmMain`) and a pipe in it, sends 100 packets
//! `{'sequence_number': n, 'bi': 10**47, 'bu': 10**47}`, then waits until every reader is
//! done before it takes the pool's name away. Start it before or after the others.

use std::error::Error;
use std::process::ExitCode;
use std::time::Duration;

use num_bigint::{BigInt, BigUint};
use shmval::sides::{ServerSide, ShmMain};
use shmval::{PoolExt, Val};

const USAGE: &str = "usage: serverside REGION BYTES PIPE CAPACITY [MAX_BYTES]\n  \
                     e.g. serverside mempool 1000000 pipe1 4";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (region, bytes, pipe, capacity, max) = match &args[..] {
        [r, b, p, c] => (r, b, p, c, None),
        [r, b, p, c, m] => (r, b, p, c, Some(m)),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let max = match max.map(|m| m.parse::<u64>()).transpose() {
        Ok(m) => m,
        Err(_) => {
            eprintln!("serverside: MAX_BYTES must be a whole number\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (Ok(bytes), Ok(capacity)) = (bytes.parse::<u64>(), capacity.parse::<u64>()) else {
        eprintln!("serverside: BYTES and CAPACITY must be whole numbers\n{USAGE}");
        return ExitCode::from(2);
    };
    match run(region, bytes, pipe, capacity, max) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serverside: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    region: &str,
    bytes: u64,
    pipe: &str,
    capacity: u64,
    max: Option<u64>,
) -> Result<(), Box<dyn Error>> {
    let mut main = ShmMain::new(region, bytes);
    if let Some(max) = max {
        main = main.max_bytes(max);
    }
    let main = main.start()?;
    let server = ServerSide::new(region, pipe, capacity).start()?;
    let big = BigInt::from(10u32).pow(47);
    let ubig = BigUint::from(10u32).pow(47);
    for n in 0..100i64 {
        // Built in place in the pool: no heap value, no copy.
        let mut packet = server.pool().tab()?;
        packet.insert("sequence_number", n)?;
        packet.insert("bi", Val::BigInt(big.clone()))?;
        packet.insert("bu", Val::BigUint(ubig.clone()))?;
        server.pipe().enq(packet)?;
    }
    drop(server);
    // What was sent stays in the pipe for readers not yet started: keep the region's name
    // until every packet has been taken and the readers are done.
    if !main.wait_idle(Duration::from_secs(600))? {
        eprintln!("serverside: readers still attached after 10 minutes; leaving");
    }
    Ok(())
}
