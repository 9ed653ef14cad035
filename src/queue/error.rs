//! The errors of the queue layer.

/// Why an item could not be sent. The item comes back in every case: nothing is lost.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError<T> {
    /// The queue stayed full until the deadline.
    #[error("timed out: the queue stayed full")]
    Timeout(T),
    /// The queue is full (from a `try_` call, which does not wait).
    #[error("the queue is full")]
    Full(T),
    /// The queue was closed.
    #[error("the queue is closed")]
    Closed(T),
    /// The queue's shared state is inconsistent (a holder died mid-update and the state
    /// could not be repaired); it refuses all further traffic.
    #[error("the queue's shared state is corrupted")]
    Corrupted(T),
    /// The break checker asked to stop waiting.
    #[error("broken off by the break checker")]
    Broken(T),
    /// The item belongs to another region than the queue: it cannot be linked there.
    #[error("the value belongs to another region than the pipe")]
    WrongRegion(T),
}

impl<T> SendError<T> {
    /// The item that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Timeout(t)
            | SendError::Full(t)
            | SendError::Closed(t)
            | SendError::Corrupted(t)
            | SendError::Broken(t)
            | SendError::WrongRegion(t) => t,
        }
    }

    /// Maps the carried item.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> SendError<U> {
        match self {
            SendError::Timeout(t) => SendError::Timeout(f(t)),
            SendError::Full(t) => SendError::Full(f(t)),
            SendError::Closed(t) => SendError::Closed(f(t)),
            SendError::Corrupted(t) => SendError::Corrupted(f(t)),
            SendError::Broken(t) => SendError::Broken(f(t)),
            SendError::WrongRegion(t) => SendError::WrongRegion(f(t)),
        }
    }
}

/// Why nothing was received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The queue stayed empty until the deadline.
    #[error("timed out: the queue stayed empty")]
    Timeout,
    /// The queue is empty (from a `try_` call, which does not wait).
    #[error("the queue is empty")]
    Empty,
    /// The queue was closed and everything sent before has been received.
    #[error("the queue is closed and drained")]
    Closed,
    /// Every handle that sent to the queue has gone and everything it sent has been
    /// received: nothing more can come (a kept pipe never says so).
    #[error("every sender has gone and the queue is drained")]
    Disconnected,
    /// The queue's shared state is inconsistent; see [`SendError::Corrupted`].
    #[error("the queue's shared state is corrupted")]
    Corrupted,
    /// The break checker asked to stop waiting.
    #[error("broken off by the break checker")]
    Broken,
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
