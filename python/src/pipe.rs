//! `shmval.Pipe`: a side's pipe, with the original's calls. Blocking calls release the GIL
//! and end early on Ctrl-C (`KeyboardInterrupt`) or the side's break checker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyList;
use shmval::alloc::Pool;
use shmval::queue::{Pipe as RawPipe, TryRecvError};
use shmval::sides::{ClientSide, ServerSide};
use shmval::ShmVal;

use crate::errors;
use crate::from_pool;
use crate::into_pool;
use crate::pool::PoolObj;
use crate::wait::{seconds, Interrupts};

/// A started side, held by the side object and by each of its pipe objects: the side is
/// released (its user count given back) when the last of them goes.
pub(crate) enum AnySide {
    Server(ServerSide),
    Client(ClientSide),
}

impl AnySide {
    pub(crate) fn pipe(&self) -> &RawPipe {
        match self {
            AnySide::Server(s) => s.pipe(),
            AnySide::Client(c) => c.pipe(),
        }
    }

    pub(crate) fn pool(&self) -> &Pool {
        match self {
            AnySide::Server(s) => s.pool(),
            AnySide::Client(c) => c.pool(),
        }
    }

    pub(crate) fn pipe_name(&self) -> &str {
        match self {
            AnySide::Server(s) => s.pipe_name(),
            AnySide::Client(c) => c.pipe_name(),
        }
    }
}

/// A bounded queue of values in the pool, shared by every process attached to it.
///
/// `enqueue(value, timeout)` copies a plain value into the pool (a value already there
/// goes by handle) and waits up to `timeout` seconds while the pipe is full; `dequeue(timeout)`
/// waits up to `timeout` seconds for a value. `enq`/`deq` wait as long as it takes,
/// `try_enqueue`/`try_dequeue` not at all. Waits release the GIL; Ctrl-C ends them with
/// `KeyboardInterrupt` within the side's `micro_sleep`. Several threads may use one pipe.
#[pyclass(module = "shmval", name = "Pipe", frozen)]
pub struct PipeObj {
    side: Arc<AnySide>,
    brk: Interrupts,
    spin: Duration,
}

impl PipeObj {
    pub(crate) fn new(side: Arc<AnySide>, brk: Interrupts, spin: Duration) -> PipeObj {
        PipeObj { side, brk, spin }
    }

    fn raw(&self) -> &RawPipe {
        self.side.pipe()
    }

    /// Polls for a value for up to the side's `spin` before a blocking receive goes to
    /// sleep: a reply that comes within it is taken without the wake-up of a sleeping
    /// thread. `None`: nothing came (or the pipe says more than "empty", which the
    /// blocking receive then reports).
    fn spin_recv(&self, within: Duration) -> Option<ShmVal> {
        let spin = self.spin.min(within);
        if spin.is_zero() {
            return None;
        }
        let end = Instant::now() + spin;
        loop {
            match self.raw().try_dequeue() {
                Ok(h) => return Some(h),
                Err(TryRecvError::Empty) if Instant::now() < end => std::hint::spin_loop(),
                Err(_) => return None,
            }
        }
    }
}

#[pymethods]
impl PipeObj {
    /// Sends `value`, waiting up to `timeout` seconds while the pipe is full (`None`:
    /// as long as it takes, like `enq`). Raises `Timeout`, `Closed`, `Broken`.
    #[pyo3(signature = (value, timeout=None))]
    fn enqueue(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let h = into_pool::share(self.side.pool(), value)?;
        match timeout {
            None => py
                .detach(|| self.raw().enq(h))
                .map_err(|e| errors::send_err(e, self.brk.take())),
            Some(t) => {
                let t = seconds(t)?;
                py.detach(|| self.raw().enqueue(h, t))
                    .map_err(|e| errors::send_timeout_err(e, self.brk.take()))
            }
        }
    }

    /// Sends `value`, waiting as long as the pipe is full: until there is room, the pipe
    /// is closed (`Closed`), or Ctrl-C / the break checker stops it. A wait that goes on
    /// says so on standard error.
    fn enq(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.enqueue(py, value, None)
    }

    /// Sends `value` if there is room now (`Full` if not). Never waits.
    fn try_enqueue(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let h = into_pool::share(self.side.pool(), value)?;
        self.raw().try_enqueue(h).map_err(errors::try_send_err)
    }

    /// Receives the oldest value, waiting up to `timeout` seconds while the pipe is empty
    /// (`None`: as long as it takes, like `deq`). Raises `Timeout`, `Closed` (closed and
    /// drained), `Disconnected` (every sender gone and drained), `Broken`.
    #[pyo3(signature = (timeout=None))]
    fn dequeue(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let h = match timeout {
            None => py
                .detach(|| match self.spin_recv(Duration::MAX) {
                    Some(h) => Ok(h),
                    None => self.raw().deq(),
                })
                .map_err(|e| errors::recv_err(e, self.brk.take()))?,
            Some(t) => {
                let t = seconds(t)?;
                let start = Instant::now();
                py.detach(|| match self.spin_recv(t) {
                    Some(h) => Ok(h),
                    None => self.raw().dequeue(t.saturating_sub(start.elapsed())),
                })
                .map_err(|e| errors::recv_timeout_err(e, self.brk.take()))?
            }
        };
        from_pool::handle(py, h)
    }

    /// Receives the oldest value, waiting as long as the pipe is empty: until a value
    /// comes, the pipe is closed and drained, every sender has gone, or Ctrl-C / the break
    /// checker stops it. A wait that goes on says so on standard error.
    fn deq(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.dequeue(py, None)
    }

    /// Receives the oldest value if there is one now (`Empty` if not). Never waits.
    fn try_dequeue(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let h = self.raw().try_dequeue().map_err(errors::try_recv_err)?;
        from_pool::handle(py, h)
    }

    /// Receives up to `max` of the oldest values in one go, waiting up to `timeout`
    /// seconds while the pipe is empty; a list of at least one value.
    #[pyo3(signature = (max, timeout=None))]
    fn dequeue_batch(
        &self,
        py: Python<'_>,
        max: usize,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyList>> {
        let t = match timeout {
            Some(t) => seconds(t)?,
            None => seconds(f64::INFINITY)?,
        };
        let mut got = Vec::new();
        py.detach(|| self.raw().dequeue_batch(&mut got, max, t))
            .map_err(|e| errors::recv_timeout_err(e, self.brk.take()))?;
        let out = got
            .into_iter()
            .map(|h| from_pool::handle(py, h))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, out)?.unbind())
    }

    /// Closes the pipe: blocked and later senders get `Closed`; receivers drain what is
    /// left, then get `Closed`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.raw().close()).map_err(errors::pipe_err)
    }

    /// Whether the pipe is closed.
    #[getter]
    fn closed(&self) -> bool {
        self.raw().is_closed()
    }

    /// Items in the pipe now.
    fn len(&self, py: Python<'_>) -> u64 {
        py.detach(|| self.raw().len())
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.len(py) as usize
    }

    /// How many items the pipe holds at most.
    #[getter]
    fn capacity(&self) -> u64 {
        self.raw().capacity()
    }

    /// The pipe's name.
    #[getter]
    fn name(&self) -> &str {
        self.side.pipe_name()
    }

    /// The pool the pipe's values live in.
    #[getter]
    fn pool(&self) -> PoolObj {
        PoolObj::new(self.side.pool().clone())
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmval.Pipe {:?} in region {:?}, {} of {} slots used>",
            self.side.pipe_name(),
            self.side.pool().region().name().as_str(),
            self.raw().len(),
            self.raw().capacity()
        )
    }
}
