//! The `shmval` command: with no arguments, runs `scenarios/pipeline.toml`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod demo;
mod expect;
mod inspect;
mod report;
mod roles;
mod runner;
mod scenario;
mod shmdir;
mod valcmd;

/// The scenario `run` uses when given none.
const DEFAULT_SCENARIO: &str = "scenarios/pipeline.toml";

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
    /// Run scenarios: start their processes, inject their faults, check their
    /// expectations (the default; with no scenario, scenarios/pipeline.toml).
    Run {
        /// Scenario files (a name alone is looked up in the scenarios folder).
        scenarios: Vec<String>,
        /// Print the summary as JSON (one object per scenario; an array for several).
        #[arg(long)]
        json: bool,
        /// Region name prefix, instead of the scenario's.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Show a live region without disturbing it: header, pool, pipes, live values.
    Inspect {
        /// The region's name (as in /dev/shm).
        region: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List this project's regions in /dev/shm, their owners and whether their creators
    /// still run.
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a region whose creator is dead (only one of ours, checked by owner and inode).
    Clean {
        /// The region to remove.
        #[arg(required_unless_present = "stale", conflicts_with = "stale")]
        region: Option<String>,
        /// Remove every region of ours whose creator is dead, and every unfinished build
        /// of ours whose builder is.
        #[arg(long)]
        stale: bool,
        /// With --stale: only names that start with this.
        #[arg(long, requires = "stale")]
        prefix: Option<String>,
    },
    /// Create a region, let worker processes allocate and free in it, print the pool stats.
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
    /// Read Python-literal values from standard input and print them back (repr,
    /// `--pretty` or `--json`).
    Val(valcmd::ValArgs),
    /// One worker of the demo (started by `demo`).
    #[command(hide = true)]
    DemoWorker { region: String, ops: u64, seed: u64 },
    /// One process of a scenario (started by `run`).
    #[command(hide = true)]
    Role { spec: String },
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command.unwrap_or(Cmd::Run {
        scenarios: vec![],
        json: false,
        prefix: None,
    }) {
        Cmd::Run {
            scenarios,
            json,
            prefix,
        } => run(scenarios, json, prefix),
        Cmd::Role { spec } => roles::run(&spec),
        Cmd::Inspect { region, json } => match inspect::inspect(&region) {
            Ok(i) => {
                if json {
                    print_json(&i);
                } else {
                    i.print();
                }
                0
            }
            Err(e) => {
                eprintln!("shmval inspect: {region}: {e}");
                1
            }
        },
        Cmd::List { json } => match shmdir::list() {
            Ok(l) => {
                if json {
                    print_json(&l);
                } else {
                    shmdir::print(&l);
                }
                0
            }
            Err(e) => {
                eprintln!("shmval list: {e}");
                1
            }
        },
        Cmd::Clean {
            region,
            stale,
            prefix,
        } => shmdir::clean(region.as_deref(), stale, prefix.as_deref().unwrap_or("")),
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
        Cmd::Val(args) => valcmd::run(&args),
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

fn print_json(v: &impl serde::Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("shmval: {e}"),
    }
}

/// `shmval run`: each scenario in turn; exit 0 if all pass, 1 if one fails, 2 if a scenario
/// file is wrong.
fn run(mut files: Vec<String>, json: bool, prefix: Option<String>) -> i32 {
    if files.is_empty() {
        files.push(DEFAULT_SCENARIO.to_string());
    }
    let opts = runner::Options { json, prefix };
    let mut code = 0;
    let mut summaries = vec![];
    for f in &files {
        let path: PathBuf = scenario::resolve(f);
        match runner::run_file(&path, &opts) {
            Ok(s) => {
                if !s.ok {
                    code = code.max(1);
                }
                if !json {
                    s.print();
                }
                summaries.push(s);
            }
            Err(runner::RunError::Scenario(e)) => {
                eprintln!("shmval run: {e}");
                code = 2;
            }
            Err(runner::RunError::Failed(e)) => {
                eprintln!("shmval run: {}: {e}", path.display());
                code = code.max(1);
            }
        }
    }
    if json {
        let out = if summaries.len() == 1 && files.len() == 1 {
            serde_json::to_string_pretty(&summaries[0])
        } else {
            serde_json::to_string_pretty(&summaries)
        };
        match out {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("shmval: {e}"),
        }
    }
    code
}
