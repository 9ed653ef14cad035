//! Standard output and error that a reader closing early cannot crash
//! (`shmval run | head -1`).
//!
//! Rust ignores SIGPIPE, so a write into a closed pipe fails with EPIPE, on which
//! `println!` panics. Every line the harness prints goes through [`outln!`] instead: the
//! first failed write marks standard output closed and later lines are dropped. The
//! command then finishes its work (`run` stops its run and cleans up `/dev/shm`) and exits
//! with [`EXIT_CLOSED`]. Lines on standard error ([`errln!`]) are best effort: a closed
//! standard error is ignored.

use std::io::{ErrorKind, Write};
// The workspace steers atomics through the library's loom shim; this flag is the
// harness's own, and no loom model covers it.
#[allow(clippy::disallowed_types)]
use std::sync::atomic::{AtomicU8, Ordering};

/// Exit code when standard output was closed under the command: 128 + SIGPIPE, what a
/// shell reports for a writer killed by SIGPIPE (`ls | head -1` under `pipefail`).
pub const EXIT_CLOSED: i32 = 141;

const OPEN: u8 = 0;
const BROKEN_PIPE: u8 = 1;
const FAILED: u8 = 2;

/// Whether writing to standard output has failed, and how.
#[allow(clippy::disallowed_types)]
static STATE: AtomicU8 = AtomicU8::new(OPEN);

/// Prints a line on standard output unless it has been closed (see the module docs).
macro_rules! outln {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

/// Prints a line on standard error, ignoring a closed standard error.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::err_line(format_args!($($arg)*))
    };
}

pub(crate) use {errln, outln};

/// Writes one line to standard output; a failure closes it for the rest of the command.
pub fn line(args: std::fmt::Arguments<'_>) {
    if closed() {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}").and_then(|()| out.flush()) {
        let state = if e.kind() == ErrorKind::BrokenPipe {
            BROKEN_PIPE
        } else {
            err_line(format_args!("shmval: cannot write standard output: {e}"));
            FAILED
        };
        STATE.store(state, Ordering::Relaxed);
    }
}

/// Writes one line to standard error, if it can.
pub fn err_line(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// Whether standard output has been closed (or failed) under the command.
pub fn closed() -> bool {
    STATE.load(Ordering::Relaxed) != OPEN
}

/// The exit code a command ends with: `code`, unless its output was lost on the way
/// ([`EXIT_CLOSED`] for a closed pipe, 1 for any other write error).
pub fn exit_code(code: i32) -> i32 {
    match STATE.load(Ordering::Relaxed) {
        BROKEN_PIPE => EXIT_CLOSED,
        FAILED => code.max(1),
        _ => code,
    }
}
