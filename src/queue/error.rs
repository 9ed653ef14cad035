//! The errors of the queue layer: one type per way of sending and receiving, as
//! crossbeam-channel has, so that a match names only what that call can answer. A value
//! that was not sent always comes back in the error: nothing is lost.

use std::fmt;

/// Why `try_enqueue` did not send: it never waits, not even for the pipe's lock.
#[derive(PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError<T> {
    /// The pipe is full, or a live process holds its lock right now.
    #[error("the pipe is full")]
    Full(T),
    /// The pipe was closed.
    #[error("the pipe is closed")]
    Closed(T),
    /// The value belongs to another region than the pipe: it cannot be linked there.
    #[error("the value belongs to another region than the pipe")]
    WrongRegion(T),
    /// The pipe is one-to-one and another handle, of a live process, sends on it.
    #[error("the pipe is one-to-one and another handle sends on it")]
    Taken(T),
    /// The pipe's shared state is inconsistent (found broken after a holder died, or
    /// written by a buggy process); it refuses all further traffic.
    #[error("the pipe's shared state is corrupted")]
    Corrupted(T),
}

/// Why `enqueue` (with a timeout or a deadline) did not send.
#[derive(PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendTimeoutError<T> {
    /// The pipe stayed full (or its lock held by a live process) until the deadline.
    #[error("timed out: the pipe stayed full")]
    Timeout(T),
    /// The pipe was closed.
    #[error("the pipe is closed")]
    Closed(T),
    /// The break checker asked to stop waiting.
    #[error("broken off by the break checker")]
    Broken(T),
    /// The value belongs to another region than the pipe.
    #[error("the value belongs to another region than the pipe")]
    WrongRegion(T),
    /// The pipe is one-to-one and another handle, of a live process, sends on it.
    #[error("the pipe is one-to-one and another handle sends on it")]
    Taken(T),
    /// The pipe's shared state is inconsistent.
    #[error("the pipe's shared state is corrupted")]
    Corrupted(T),
}

/// Why `enq` (which waits as long as the pipe is full) did not send.
#[derive(PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError<T> {
    /// The pipe was closed.
    #[error("the pipe is closed")]
    Closed(T),
    /// The break checker asked to stop waiting.
    #[error("broken off by the break checker")]
    Broken(T),
    /// The value belongs to another region than the pipe.
    #[error("the value belongs to another region than the pipe")]
    WrongRegion(T),
    /// The pipe is one-to-one and another handle, of a live process, sends on it.
    #[error("the pipe is one-to-one and another handle sends on it")]
    Taken(T),
    /// The pipe's shared state is inconsistent.
    #[error("the pipe's shared state is corrupted")]
    Corrupted(T),
}

/// The value a failed send hands back, and a bounded `Debug` that names the variant.
macro_rules! give_back {
    ($ty:ident, $($v:ident),+) => {
        impl<T> $ty<T> {
            /// The value that was not sent.
            pub fn into_inner(self) -> T {
                match self {
                    $($ty::$v(t))|+ => t,
                }
            }
        }

        impl<T> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($ty::$v(_) => f.write_str(concat!(stringify!($ty), "::", stringify!($v), "(..)")),)+
                }
            }
        }
    };
}
give_back!(TrySendError, Full, Closed, WrongRegion, Taken, Corrupted);
give_back!(
    SendTimeoutError,
    Timeout,
    Closed,
    Broken,
    WrongRegion,
    Taken,
    Corrupted
);
give_back!(SendError, Closed, Broken, WrongRegion, Taken, Corrupted);

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    /// An unbounded send's failure as a timed one's (it never timed out).
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Closed(t) => SendTimeoutError::Closed(t),
            SendError::Broken(t) => SendTimeoutError::Broken(t),
            SendError::WrongRegion(t) => SendTimeoutError::WrongRegion(t),
            SendError::Taken(t) => SendTimeoutError::Taken(t),
            SendError::Corrupted(t) => SendTimeoutError::Corrupted(t),
        }
    }
}

/// Why `try_dequeue` (or `try_dequeue_batch`) received nothing: it never waits, not even
/// for the pipe's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryRecvError {
    /// The pipe is empty, or a live process holds its lock right now.
    #[error("the pipe is empty")]
    Empty,
    /// The pipe was closed and everything sent before has been received.
    #[error("the pipe is closed and drained")]
    Closed,
    /// Every handle that sent to the pipe has gone and everything it sent has been
    /// received: nothing more can come (a persisted pipe never says so).
    #[error("every sender has gone and the pipe is drained")]
    Disconnected,
    /// The pipe is one-to-one and another handle, of a live process, receives from it.
    #[error("the pipe is one-to-one and another handle receives from it")]
    Taken,
    /// The pipe's shared state is inconsistent, or a slot held something that is not a
    /// value.
    #[error("the pipe's shared state is corrupted")]
    Corrupted,
}

/// Why `dequeue` (with a timeout or a deadline, or `dequeue_batch`) received nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvTimeoutError {
    /// The pipe stayed empty (or its lock held by a live process) until the deadline.
    #[error("timed out: the pipe stayed empty")]
    Timeout,
    /// The pipe was closed and drained.
    #[error("the pipe is closed and drained")]
    Closed,
    /// Every sender has gone and the pipe is drained.
    #[error("every sender has gone and the pipe is drained")]
    Disconnected,
    /// The break checker asked to stop waiting.
    #[error("broken off by the break checker")]
    Broken,
    /// The pipe is one-to-one and another handle, of a live process, receives from it.
    #[error("the pipe is one-to-one and another handle receives from it")]
    Taken,
    /// The pipe's shared state is inconsistent.
    #[error("the pipe's shared state is corrupted")]
    Corrupted,
}

/// Why `deq` (which waits as long as the pipe is empty) received nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The pipe was closed and drained.
    #[error("the pipe is closed and drained")]
    Closed,
    /// Every sender has gone and the pipe is drained.
    #[error("every sender has gone and the pipe is drained")]
    Disconnected,
    /// The break checker asked to stop waiting.
    #[error("broken off by the break checker")]
    Broken,
    /// The pipe is one-to-one and another handle, of a live process, receives from it.
    #[error("the pipe is one-to-one and another handle receives from it")]
    Taken,
    /// The pipe's shared state is inconsistent.
    #[error("the pipe's shared state is corrupted")]
    Corrupted,
}

impl From<RecvError> for RecvTimeoutError {
    /// An unbounded receive's failure as a timed one's (it never timed out).
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Closed => RecvTimeoutError::Closed,
            RecvError::Disconnected => RecvTimeoutError::Disconnected,
            RecvError::Broken => RecvTimeoutError::Broken,
            RecvError::Taken => RecvTimeoutError::Taken,
            RecvError::Corrupted => RecvTimeoutError::Corrupted,
        }
    }
}

/// What a ring's send can fail with (crate-internal; the pipe turns it into the error of
/// the call that was made). The item comes back.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(shmval_loom, allow(dead_code))] // the pipe's variants
pub(crate) enum SendFail<T> {
    Timeout(T),
    Full(T),
    Closed(T),
    Corrupted(T),
    Broken(T),
    WrongRegion(T),
    Taken(T),
}

impl<T> SendFail<T> {
    #[cfg_attr(shmval_loom, allow(dead_code))]
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> SendFail<U> {
        match self {
            SendFail::Timeout(t) => SendFail::Timeout(f(t)),
            SendFail::Full(t) => SendFail::Full(f(t)),
            SendFail::Closed(t) => SendFail::Closed(f(t)),
            SendFail::Corrupted(t) => SendFail::Corrupted(f(t)),
            SendFail::Broken(t) => SendFail::Broken(f(t)),
            SendFail::WrongRegion(t) => SendFail::WrongRegion(f(t)),
            SendFail::Taken(t) => SendFail::Taken(f(t)),
        }
    }
}

/// What a ring's receive can fail with (crate-internal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(shmval_loom, allow(dead_code))] // the pipe's variants
pub(crate) enum RecvFail {
    Timeout,
    Empty,
    Closed,
    Disconnected,
    Corrupted,
    Broken,
    Taken,
}

/// Why a pipe could not be created or opened.
#[cfg(not(shmval_loom))]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipeError {
    /// Capacity 0, or above [`MAX_CAPACITY`](super::MAX_CAPACITY).
    #[error("bad pipe capacity {0}: it must be 1 to 2^24")]
    BadCapacity(u64),
    /// The block at the offset is not a pipe, or does not check out.
    #[error("not a valid pipe: {0}")]
    BadPipe(&'static str),
    /// The pool could not allocate or free the block.
    #[error(transparent)]
    Alloc(#[from] crate::alloc::AllocError),
    /// An offset did not resolve.
    #[error(transparent)]
    Region(#[from] crate::region::RegionError),
}
