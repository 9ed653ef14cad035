//! The exception hierarchy (`shmval.Error` and its subclasses) and the conversion of the
//! crate's error enums into it.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyIndexError, PyKeyError, PyTypeError, PyValueError};
use pyo3::PyErr;
use shmval::queue::{
    PipeError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use shmval::sides::SidesError;
use shmval::ValError;

create_exception!(
    shmval,
    Error,
    PyException,
    "Base class of every shmval error."
);
create_exception!(
    shmval,
    Timeout,
    Error,
    "A call that takes a timeout ran out of time (the pipe stayed empty or full, the region or pipe did not appear, the lock stayed held)."
);
create_exception!(shmval, Empty, Error, "`try_dequeue` found the pipe empty.");
create_exception!(shmval, Full, Error, "`try_enqueue` found the pipe full.");
create_exception!(
    shmval,
    Closed,
    Error,
    "The pipe was closed (a receive: closed and drained)."
);
create_exception!(
    shmval,
    Disconnected,
    Closed,
    "Every sender of the pipe has gone and the pipe is drained."
);
create_exception!(
    shmval,
    Broken,
    Error,
    "The break checker asked a waiting call to stop."
);
create_exception!(
    shmval,
    OutOfMemory,
    Error,
    "The pool has no block large enough (and cannot grow further)."
);
create_exception!(
    shmval,
    Corrupted,
    Error,
    "Shared state failed its checks; the message says which."
);
create_exception!(
    shmval,
    Exists,
    Error,
    "A pipe or named value of that name exists already."
);

/// Where a wait was broken: by Python's signal handler (its exception is raised instead of
/// `Broken`), or by the user's break checker.
pub(crate) fn broken(pending: Option<PyErr>, what: &str) -> PyErr {
    pending
        .unwrap_or_else(|| Broken::new_err(format!("{what} was broken off by the break checker")))
}

/// A value-layer error as the Python exception a Python user expects.
pub(crate) fn val_err(e: ValError) -> PyErr {
    let msg = e.to_string();
    match e {
        ValError::WrongType { .. } => PyTypeError::new_err(msg),
        ValError::MissingKey { .. } => PyKeyError::new_err(msg),
        ValError::IndexOutOfRange { .. } => PyIndexError::new_err(msg),
        ValError::OutOfRange { .. } | ValError::Element { .. } | ValError::Parse { .. } => {
            PyValueError::new_err(msg)
        }
        ValError::OutOfMemory { .. } => OutOfMemory::new_err(msg),
        ValError::LockTimeout { .. } => Timeout::new_err(msg),
        ValError::Corrupt { .. } => Corrupted::new_err(msg),
        ValError::NotUnique | ValError::Locked | ValError::Relock => PyValueError::new_err(msg),
        _ => Error::new_err(msg),
    }
}

/// A sides-layer error (starting a side, the directory, named values).
pub(crate) fn sides_err(e: SidesError) -> PyErr {
    let msg = e.to_string();
    match e {
        SidesError::Timeout { .. } => Timeout::new_err(msg),
        SidesError::PipeExists(_) | SidesError::NameExists(_) => Exists::new_err(msg),
        SidesError::BadPipeName { .. } | SidesError::BadValueName { .. } => {
            PyValueError::new_err(msg)
        }
        SidesError::Corrupted(_) | SidesError::NamesCorrupted(_) => Corrupted::new_err(msg),
        SidesError::Broken(_) => Broken::new_err(msg),
        _ => Error::new_err(msg),
    }
}

/// A pipe-layer error.
pub(crate) fn pipe_err(e: PipeError) -> PyErr {
    Error::new_err(e.to_string())
}

const WRONG_REGION: &str = "the value lives in another region than the pipe";
const TAKEN_SEND: &str = "the pipe is one-to-one and another side sends on it";
const TAKEN_RECV: &str = "the pipe is one-to-one and another side receives from it";

/// Failed sends: the value is dropped with the error (Python keeps its own object).
pub(crate) fn send_timeout_err<T>(e: SendTimeoutError<T>, pending: Option<PyErr>) -> PyErr {
    match e {
        SendTimeoutError::Timeout(_) => Timeout::new_err("the pipe stayed full until the timeout"),
        SendTimeoutError::Closed(_) => Closed::new_err("the pipe is closed"),
        SendTimeoutError::Broken(_) => broken(pending, "enqueue"),
        SendTimeoutError::WrongRegion(_) => PyValueError::new_err(WRONG_REGION),
        SendTimeoutError::Taken(_) => Error::new_err(TAKEN_SEND),
        _ => Corrupted::new_err("the pipe failed its checks"),
    }
}

pub(crate) fn send_err<T>(e: SendError<T>, pending: Option<PyErr>) -> PyErr {
    match e {
        SendError::Closed(_) => Closed::new_err("the pipe is closed"),
        SendError::Broken(_) => broken(pending, "enq"),
        SendError::WrongRegion(_) => PyValueError::new_err(WRONG_REGION),
        SendError::Taken(_) => Error::new_err(TAKEN_SEND),
        _ => Corrupted::new_err("the pipe failed its checks"),
    }
}

pub(crate) fn try_send_err<T>(e: TrySendError<T>) -> PyErr {
    match e {
        TrySendError::Full(_) => Full::new_err("the pipe is full"),
        TrySendError::Closed(_) => Closed::new_err("the pipe is closed"),
        TrySendError::WrongRegion(_) => PyValueError::new_err(WRONG_REGION),
        TrySendError::Taken(_) => Error::new_err(TAKEN_SEND),
        _ => Corrupted::new_err("the pipe failed its checks"),
    }
}

pub(crate) fn recv_timeout_err(e: RecvTimeoutError, pending: Option<PyErr>) -> PyErr {
    match e {
        RecvTimeoutError::Timeout => Timeout::new_err("the pipe stayed empty until the timeout"),
        RecvTimeoutError::Closed => Closed::new_err("the pipe is closed and drained"),
        RecvTimeoutError::Disconnected => {
            Disconnected::new_err("every sender has gone and the pipe is drained")
        }
        RecvTimeoutError::Broken => broken(pending, "dequeue"),
        RecvTimeoutError::Taken => Error::new_err(TAKEN_RECV),
        _ => Corrupted::new_err("the pipe failed its checks"),
    }
}

pub(crate) fn recv_err(e: RecvError, pending: Option<PyErr>) -> PyErr {
    match e {
        RecvError::Closed => Closed::new_err("the pipe is closed and drained"),
        RecvError::Disconnected => {
            Disconnected::new_err("every sender has gone and the pipe is drained")
        }
        RecvError::Broken => broken(pending, "deq"),
        RecvError::Taken => Error::new_err(TAKEN_RECV),
        _ => Corrupted::new_err("the pipe failed its checks"),
    }
}

pub(crate) fn try_recv_err(e: TryRecvError) -> PyErr {
    match e {
        TryRecvError::Empty => Empty::new_err("the pipe is empty"),
        TryRecvError::Closed => Closed::new_err("the pipe is closed and drained"),
        TryRecvError::Disconnected => {
            Disconnected::new_err("every sender has gone and the pipe is drained")
        }
        TryRecvError::Taken => Error::new_err(TAKEN_RECV),
        _ => Corrupted::new_err("the pipe failed its checks"),
    }
}
