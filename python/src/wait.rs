//! Waiting from Python: timeouts in seconds, and the break checker that ends a wait when
//! Python has a signal to handle (Ctrl-C) or the user's own checker says stop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// The longest wait a timeout in seconds stands for (longer ones are this).
const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Seconds as a `Duration`: negative is zero, NaN an error.
pub(crate) fn seconds(s: f64) -> PyResult<Duration> {
    if s.is_nan() {
        return Err(PyValueError::new_err("a timeout cannot be NaN"));
    }
    Ok(Duration::try_from_secs_f64(s.max(0.0)).map_or(LONGEST, |d| d.min(LONGEST)))
}

/// What ends a side's waits: a pending Python signal (its exception is kept and raised by
/// the call that was waiting) or the user's break checker returning true.
#[derive(Clone)]
pub(crate) struct Interrupts {
    pending: Arc<Mutex<Option<PyErr>>>,
    user: Option<Arc<Py<PyAny>>>,
}

impl Interrupts {
    pub(crate) fn new(user: Option<Py<PyAny>>) -> Interrupts {
        Interrupts {
            pending: Arc::new(Mutex::new(None)),
            user: user.map(Arc::new),
        }
    }

    /// The break checker for the crate's sides: runs Python's signal handlers (in the main
    /// thread; elsewhere that is a no-op), then the user's checker.
    pub(crate) fn checker(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let me = self.clone();
        move || me.check()
    }

    fn check(&self) -> bool {
        Python::attach(|py| {
            if let Err(e) = py.check_signals() {
                self.keep(e);
                return true;
            }
            match &self.user {
                None => false,
                Some(f) => match f.call0(py).and_then(|r| r.bind(py).is_truthy()) {
                    Ok(stop) => stop,
                    Err(e) => {
                        self.keep(e);
                        true
                    }
                },
            }
        })
    }

    fn keep(&self, e: PyErr) {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        p.get_or_insert(e);
    }

    /// The exception that broke the last wait, if Python raised one.
    pub(crate) fn take(&self) -> Option<PyErr> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// Carries a value that is not `Send` out of [`Python::detach`], whose closure runs on the
/// calling thread: the value never changes threads.
pub(crate) struct SameThread<T>(pub(crate) T);

// SAFETY: a `SameThread` is only made inside a `detach` closure and unwrapped by the same
// call after it returns; `detach` runs its closure on the calling thread, so the value is
// created, moved and used on one thread.
unsafe impl<T> Send for SameThread<T> {}
