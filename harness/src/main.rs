//! The `shmval` command.

mod valcmd;

use clap::{Parser, Subcommand};

/// Dynamic values and bounded queues in cross-process shared memory.
#[derive(Debug, Parser)]
#[command(name = "shmval", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Read Python-literal values from standard input and print them back.
    Val(valcmd::ValArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Val(args) => valcmd::run(&args),
    };
    std::process::exit(code);
}
