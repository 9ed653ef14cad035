//! The `shmval` command: with no arguments, runs the region demo.

use clap::{Parser, Subcommand};

mod demo;

#[derive(Parser)]
#[command(
    name = "shmval",
    version,
    about = "Dynamic values and queues in shared memory"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a region, let worker processes allocate and free in it, print the pool stats
    /// (the default).
    Demo {
        /// Region size in bytes.
        #[arg(long, default_value_t = 8 << 20)]
        bytes: u64,
        /// Worker processes.
        #[arg(long, default_value_t = 2)]
        workers: u32,
        /// Alloc/free pairs per worker.
        #[arg(long, default_value_t = 1_000_000)]
        ops: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One worker of the demo (started by `demo`).
    #[command(hide = true)]
    DemoWorker { region: String, ops: u64, seed: u64 },
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command.unwrap_or(Cmd::Demo {
        bytes: 8 << 20,
        workers: 2,
        ops: 1_000_000,
        json: false,
    }) {
        Cmd::Demo {
            bytes,
            workers,
            ops,
            json,
        } => match demo::run(bytes, workers, ops, json) {
            Ok(report) => {
                if json {
                    match serde_json::to_string_pretty(&report) {
                        Ok(s) => println!("{s}"),
                        Err(e) => eprintln!("shmval: {e}"),
                    }
                } else {
                    report.print();
                }
                if report.ok() {
                    0
                } else {
                    1
                }
            }
            Err(e) => {
                eprintln!("shmval demo: {e}");
                1
            }
        },
        Cmd::DemoWorker { region, ops, seed } => match demo::worker(&region, ops, seed) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("shmval demo worker: {e}");
                1
            }
        },
    };
    std::process::exit(code);
}
