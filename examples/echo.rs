//! `echo REGION IN_PIPE OUT_PIPE CAPACITY`, e.g. `echo mempool pipe1 pipe2 4`.
//!
//! Copies each value it receives on IN_PIPE out of the pool into an ordinary Rust value,
//! shares a fresh copy of that, and sends it on OUT_PIPE (which it creates with CAPACITY
//! slots), until IN_PIPE is closed or its senders have gone. Every value crosses the
//! language boundary twice: a Python test sends all kinds of values and gets them back.

use std::error::Error;
use std::process::ExitCode;

use shmval::queue::RecvError;
use shmval::sides::{ClientSide, ServerSide};
use shmval::PoolExt;

const USAGE: &str =
    "usage: echo REGION IN_PIPE OUT_PIPE CAPACITY\n  e.g. echo mempool pipe1 pipe2 4";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [region, input, output, capacity] = &args[..] else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let Ok(capacity) = capacity.parse::<u64>() else {
        eprintln!("echo: CAPACITY must be a whole number\n{USAGE}");
        return ExitCode::from(2);
    };
    match run(region, input, output, capacity) {
        Ok(n) => {
            eprintln!("echo: {n} values echoed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("echo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(region: &str, input: &str, output: &str, capacity: u64) -> Result<u64, Box<dyn Error>> {
    let out = ServerSide::new(region, output, capacity).start()?;
    let inp = ClientSide::new(region, input).start()?;
    let mut n = 0;
    loop {
        let h = match inp.pipe().deq() {
            Ok(h) => h,
            Err(RecvError::Closed | RecvError::Disconnected) => return Ok(n),
            Err(e) => return Err(e.into()),
        };
        let copy = out.pool().share(&h.to_val()?)?;
        drop(h);
        out.pipe().enq(copy)?;
        n += 1;
    }
}
