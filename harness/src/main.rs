//! The `shmval` command.

fn main() {
    eprintln!("shmval: no subcommand yet");
    std::process::exit(2);
}
