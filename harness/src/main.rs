//! The `shmval` command: with no arguments, runs `scenarios/pipeline.toml`.

use clap::{Parser, Subcommand};

use crate::output::{errln, outln};

mod demo;
mod expect;
mod inspect;
mod keeper;
mod output;
mod registry;
mod report;
mod roles;
mod runner;
mod scenario;
mod shmdir;
mod signals;
mod valcmd;

/// The scenario `run` uses when given none.
const DEFAULT_SCENARIO: &str = "scenarios/pipeline.toml";

#[derive(Parser)]
#[command(
    name = "shmval",
    version,
    about = "Dynamic values and queues in shared memory",
    after_help = "Exit codes: 0 done, 1 failed (an expectation, a region that could not be \
                  read or removed), 2 a usage or scenario mistake, 130/143/129 stopped by \
                  SIGINT/SIGTERM/SIGHUP (after cleaning up), 141 standard output closed by \
                  its reader."
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
        /// Seed of the random choices (a fault's `at_random_item`), instead of the
        /// scenario's `seed` or a fresh one.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Show a live region without disturbing it: header, pool, pipes, live values.
    Inspect {
        /// The region: its name, or its path in /dev/shm.
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
    /// Remove a region whose creator is dead (only one of ours, checked by owner and inode),
    /// or with --recover give back what the dead processes of a live region held.
    Clean {
        /// The region to remove (or recover): its name, or its path in /dev/shm.
        #[arg(required_unless_present = "stale", conflicts_with = "stale")]
        region: Option<String>,
        /// Keep the region: attach to it and give back what its dead processes held
        /// (values, sends and receives in progress, pipe ends, counts), and say what.
        #[arg(long, conflicts_with = "stale")]
        recover: bool,
        /// With --recover: print the report as JSON.
        #[arg(long, requires = "recover")]
        json: bool,
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
    /// The process that holds and reads a run's region (started by `run`).
    #[command(hide = true)]
    Keeper { spec: String },
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command.unwrap_or(Cmd::Run {
        scenarios: vec![],
        json: false,
        prefix: None,
        seed: None,
    }) {
        Cmd::Run {
            scenarios,
            json,
            prefix,
            seed,
        } => run(scenarios, runner::Options { json, prefix, seed }),
        Cmd::Role { spec } => roles::run(&spec),
        Cmd::Keeper { spec } => keeper::serve(&spec),
        Cmd::Inspect { region, json } => match inspect::inspect(&region) {
            Ok(i) => {
                if json {
                    print_json(&i);
                } else {
                    i.print();
                }
                0
            }
            Err(inspect::InspectError::Usage(e)) => {
                errln!("shmval inspect: {e}");
                2
            }
            Err(inspect::InspectError::Failed(e)) => {
                errln!("shmval inspect: {region}: {e}");
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
                errln!("shmval list: {e}");
                1
            }
        },
        Cmd::Clean {
            region: Some(region),
            recover: true,
            json,
            ..
        } => registry::recover(&region, json),
        Cmd::Clean {
            region,
            stale,
            prefix,
            ..
        } => shmdir::clean(region.as_deref(), stale, prefix.as_deref().unwrap_or("")),
        Cmd::Demo {
            bytes,
            workers,
            ops,
            json,
        } => match signals::catch().and_then(|()| demo::run(bytes, workers, ops, json)) {
            Ok(report) => {
                if json {
                    match serde_json::to_string_pretty(&report) {
                        Ok(s) => outln!("{s}"),
                        Err(e) => errln!("shmval: {e}"),
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
            // A reader that has gone is told nothing.
            Err(_) if output::closed() => 1,
            Err(e) => {
                errln!("shmval demo: {e}");
                signals::pending().map_or(1, signals::exit_code)
            }
        },
        Cmd::Val(args) => valcmd::run(&args),
        Cmd::DemoWorker { region, ops, seed } => match demo::worker(&region, ops, seed) {
            Ok(()) => 0,
            Err(e) => {
                errln!("shmval demo worker: {e}");
                1
            }
        },
    };
    std::process::exit(output::exit_code(code));
}

fn print_json(v: &impl serde::Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => outln!("{s}"),
        Err(e) => errln!("shmval: {e}"),
    }
}

/// `shmval run`: each scenario in turn; exit 0 if all pass, 1 if one fails, 2 if a scenario
/// file is wrong; 130, 143 or 129 when stopped by SIGINT, SIGTERM or SIGHUP, 141 when its
/// standard output was closed (the run is stopped and cleaned up in every case).
fn run(mut files: Vec<String>, opts: runner::Options) -> i32 {
    let json = opts.json;
    if let Err(e) = signals::catch() {
        errln!("shmval run: {e}");
        return 1;
    }
    if files.is_empty() {
        files.push(DEFAULT_SCENARIO.to_string());
    }
    let mut code = 0;
    let mut summaries = vec![];
    for f in &files {
        let path = match scenario::resolve(f) {
            Ok(p) => p,
            Err(e) => {
                errln!("shmval run: {e}");
                code = code.max(2);
                continue;
            }
        };
        match runner::run_file(&path, &opts) {
            Ok(ran) => {
                let s = ran.summary;
                if !s.ok {
                    code = code.max(1);
                }
                if !json {
                    s.print();
                }
                // A reader that has gone is told nothing: the run stops quietly.
                if let (Some(why), false) =
                    (&s.stopped, ran.stop == Some(runner::Stop::OutputClosed))
                {
                    errln!("shmval run: {}: {why}", path.display());
                }
                summaries.push(s);
                if let Some(stop) = ran.stop {
                    code = code.max(stop.exit_code());
                    if stop.ends_the_command() {
                        break;
                    }
                }
                // A signal that came once the run had ended still ends the command.
                if let Some(sig) = signals::pending() {
                    code = code.max(signals::exit_code(sig));
                    break;
                }
            }
            Err(runner::RunError::Scenario(e)) => {
                errln!("shmval run: {e}");
                code = code.max(2);
            }
            Err(runner::RunError::Failed(e)) => {
                errln!("shmval run: {}: {e}", path.display());
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
            Ok(s) => outln!("{s}"),
            Err(e) => errln!("shmval: {e}"),
        }
    }
    code
}
