//! `middleside REGION IN_PIPE OUT_PIPE CAPACITY`, e.g. `middleside mempool pipe1 pipe2 4`.
//!
//! Receives 100 packets from IN_PIPE, adds `'my_sequence': n + 100` to each in place (the
//! handle it received is the only one, so it may write), and forwards it on OUT_PIPE,
//! which it creates with CAPACITY slots.

use std::error::Error;
use std::process::ExitCode;

use shmval::sides::{ClientSide, ServerSide};

const USAGE: &str = "usage: middleside REGION IN_PIPE OUT_PIPE CAPACITY\n  \
                     e.g. middleside mempool pipe1 pipe2 4";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [region, input, output, capacity] = &args[..] else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let Ok(capacity) = capacity.parse::<u64>() else {
        eprintln!("middleside: CAPACITY must be a whole number\n{USAGE}");
        return ExitCode::from(2);
    };
    match run(region, input, output, capacity) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("middleside: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(region: &str, input: &str, output: &str, capacity: u64) -> Result<(), Box<dyn Error>> {
    let out = ServerSide::new(region, output, capacity).start()?;
    let inp = ClientSide::new(region, input).start()?;
    for _ in 0..100 {
        let mut packet = inp.pipe().deq()?;
        let n = packet.field("sequence_number")?.as_i64()?;
        packet.insert("my_sequence", n + 100)?; // the only handle: it may write
        out.pipe().enq(packet)?;
    }
    Ok(())
}
