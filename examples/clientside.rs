//! `clientside REGION PIPE`, e.g. `clientside mempool pipe2`.
//!
//! Receives 100 packets from PIPE and pretty-prints each.

use std::error::Error;
use std::process::ExitCode;

use shmval::sides::ClientSide;

const USAGE: &str = "usage: clientside REGION PIPE\n  e.g. clientside mempool pipe2";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [region, pipe] = &args[..] else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match run(region, pipe) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clientside: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(region: &str, pipe: &str) -> Result<(), Box<dyn Error>> {
    let client = ClientSide::new(region, pipe).start()?;
    for _ in 0..100 {
        let packet = client.pipe().deq()?;
        println!("{}", packet.to_val()?.pretty());
    }
    Ok(())
}
