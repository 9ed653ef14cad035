//! SIGINT, SIGTERM and SIGHUP for commands that own shared memory (`run`, `demo`): the
//! signal only sets a flag, and the command's loop, which polls it every few milliseconds,
//! stops its processes, removes its files from `/dev/shm` and exits with 128 + the signal
//! number (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP), as a shell reports a process
//! killed by it.
//!
//! The processes such a command starts ignore these signals ([`ignore_in_child`]): a
//! Ctrl-C reaches the whole foreground process group, and the command alone decides how
//! its run ends. Each child still dies with its parent (`PR_SET_PDEATHSIG`).

// The workspace steers atomics through the library's loom shim; this flag is the
// harness's own, set by a signal handler, and no loom model covers it.
#[allow(clippy::disallowed_types)]
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// The signals that stop a command.
const STOPPING: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// The last stopping signal received (0: none).
#[allow(clippy::disallowed_types)]
static PENDING: AtomicI32 = AtomicI32::new(0);

/// The handler: one atomic store, which is async-signal-safe.
extern "C" fn record(sig: nix::libc::c_int) {
    PENDING.store(sig, Ordering::Relaxed);
}

/// Makes SIGINT, SIGTERM and SIGHUP set the flag [`pending`] reads instead of killing the
/// process. `SA_RESTART`: a system call they interrupt carries on.
pub fn catch() -> Result<(), String> {
    let action = SigAction::new(
        SigHandler::Handler(record),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in STOPPING {
        // SAFETY: `record` only stores to an atomic, which is async-signal-safe, and it
        // replaces no handler that other code in this process relies on.
        unsafe { signal::sigaction(sig, &action) }
            .map_err(|e| format!("cannot handle {sig}: {e}"))?;
    }
    Ok(())
}

/// The stopping signal received since [`catch`], if any.
pub fn pending() -> Option<Signal> {
    match PENDING.load(Ordering::Relaxed) {
        0 => None,
        n => Signal::try_from(n).ok(),
    }
}

/// Makes this process ignore SIGINT, SIGTERM and SIGHUP: a child of `run` or `demo`,
/// ended by its parent alone.
pub fn ignore_in_child() {
    for sig in STOPPING {
        // SAFETY: SIG_IGN installs no code to run in the process.
        let _ = unsafe { signal::signal(sig, SigHandler::SigIgn) };
    }
}

/// The exit code for a command stopped by `sig`: 128 + its number.
pub fn exit_code(sig: Signal) -> i32 {
    128 + sig as i32
}
