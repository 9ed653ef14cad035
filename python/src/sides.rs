//! `shmval.ShmMain`, `shmval.ServerSide` and `shmval.ClientSide`: the original's three
//! ways into a region, as context managers.

use std::sync::{Arc, Mutex};

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use shmval::sides::{ClientSide, ServerSide, ShmMain};

use crate::errors::{sides_err, Error};
use crate::pipe::{AnySide, PipeObj};
use crate::pool::{NamesObj, PoolObj};
use crate::wait::{seconds, Interrupts};

/// Creates (or takes over) a named shared-memory region of `bytes` bytes and owns it:
/// `close()` (or leaving the `with` block) takes its name away, unless it persists.
///
/// `max_bytes` lets the pool grow on demand up to that size while every process keeps
/// working; by default it stays at `bytes`.
#[pyclass(module = "shmval", name = "ShmMain", frozen)]
pub struct ShmMainObj {
    main: Mutex<Option<ShmMain>>,
    pool: shmval::alloc::Pool,
    name: String,
}

impl ShmMainObj {
    fn with<R>(&self, f: impl FnOnce(&ShmMain) -> R) -> PyResult<R> {
        let g = self.main.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_ref() {
            Some(m) => Ok(f(m)),
            None => Err(Error::new_err(format!("ShmMain {:?} is closed", self.name))),
        }
    }
}

#[pymethods]
impl ShmMainObj {
    #[new]
    #[pyo3(signature = (name, bytes, *, max_bytes=None, processes=None, mode=None, persist=false, debug=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: String,
        bytes: u64,
        max_bytes: Option<u64>,
        processes: Option<u32>,
        mode: Option<u32>,
        persist: bool,
        debug: bool,
    ) -> PyResult<ShmMainObj> {
        let mut b = ShmMain::new(name.clone(), bytes)
            .persist(persist)
            .debug(debug);
        if let Some(m) = max_bytes {
            b = b.max_bytes(m);
        }
        if let Some(p) = processes {
            b = b.processes(p);
        }
        if let Some(m) = mode {
            b = b.mode(m);
        }
        let main = py.detach(|| b.start()).map_err(sides_err)?;
        Ok(ShmMainObj {
            pool: main.pool().clone(),
            main: Mutex::new(Some(main)),
            name,
        })
    }

    /// The region's pool.
    #[getter]
    fn pool(&self) -> PoolObj {
        PoolObj::new(self.pool.clone())
    }

    /// The region's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The region's named values.
    fn names(&self, py: Python<'_>) -> PyResult<NamesObj> {
        self.pool().names(py)
    }

    /// Gives back now what dead processes held (it also happens by itself); returns what
    /// recovery has done so far: `processes`, `last_pid`, `last_handles`, `last_bytes`.
    fn recover<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let r = py.detach(|| self.with(|m| m.recover()))?;
        let d = PyDict::new(py);
        d.set_item("processes", r.processes)?;
        d.set_item("last_pid", r.last_pid)?;
        d.set_item("last_handles", r.last_handles)?;
        d.set_item("last_bytes", r.last_bytes)?;
        Ok(d)
    }

    /// The pipes in the region: a list of dicts with `name`, `len`, `capacity`, `users`,
    /// `persist`.
    fn pipes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = py.detach(|| self.with(|m| m.pipes()))?.map_err(sides_err)?;
        let out = PyList::empty(py);
        for e in list {
            let d = PyDict::new(py);
            d.set_item("name", e.name.as_str())?;
            d.set_item("len", e.stats.len)?;
            d.set_item("capacity", e.stats.capacity)?;
            d.set_item("users", e.users)?;
            d.set_item("persist", e.persist)?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// Waits up to `timeout` seconds until no pipe holds values and no side is attached;
    /// true if it came to that.
    fn wait_idle(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let t = seconds(timeout)?;
        py.detach(|| self.with(|m| m.wait_idle(t)))?
            .map_err(sides_err)
    }

    /// Releases the region: its name is taken away unless it persists. Values, pipes and
    /// views still held by this process keep their memory mapped until they go.
    fn close(&self, py: Python<'_>) {
        let m = self.main.lock().unwrap_or_else(|p| p.into_inner()).take();
        py.detach(|| drop(m));
    }

    fn __repr__(&self) -> String {
        format!("<shmval.ShmMain {:?}>", self.name)
    }
}

/// How long a blocking receive polls before it sleeps, by default (seconds): a reply
/// from a Python peer typically comes within it, and is then taken without waking a
/// sleeping thread (a wake-up costs tens of microseconds on a virtual machine).
const DEFAULT_SPIN: f64 = 100e-6;

/// What both sides hold: the started side (shared with their pipe objects) and the
/// interrupts of its waits.
struct Held {
    side: Mutex<Option<Arc<AnySide>>>,
    brk: Interrupts,
    spin: Duration,
    what: String,
}

impl Held {
    /// Starts a side with the GIL released; a wait broken by Python's signal handler
    /// raises that handler's exception.
    fn start(
        py: Python<'_>,
        brk: Interrupts,
        spin: f64,
        what: String,
        start: impl FnOnce() -> Result<AnySide, shmval::sides::SidesError> + Send,
    ) -> PyResult<Held> {
        let spin = seconds(spin)?;
        let side = py.detach(start).map_err(|e| match brk.take() {
            Some(p) => p,
            None => sides_err(e),
        })?;
        Ok(Held {
            side: Mutex::new(Some(Arc::new(side))),
            brk,
            spin,
            what,
        })
    }

    fn side(&self) -> PyResult<Arc<AnySide>> {
        self.side
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| Error::new_err(format!("{} is closed", self.what)))
    }

    fn close(&self, py: Python<'_>) {
        let s = self.side.lock().unwrap_or_else(|p| p.into_inner()).take();
        py.detach(|| drop(s));
    }
}

/// The common options of both sides' builders.
macro_rules! wait_opts {
    ($b:expr, $timeout:expr, $micro_sleep:expr, $notice_after:expr, $brk:expr, $debug:expr) => {{
        let mut b = $b
            .micro_sleep(seconds($micro_sleep)?)
            .break_checker($brk.checker())
            .notice_after($notice_after.map(seconds).transpose()?)
            .debug($debug);
        b = match $timeout {
            Some(t) => b.timeout(seconds(t)?),
            None => b.wait_forever(),
        };
        b
    }};
}

/// `with` support for a type whose `close(py)` releases what it holds: `__enter__` gives
/// the object back, `__exit__` closes it and lets an exception through.
macro_rules! closes_on_exit {
    ($ty:ty) => {
        #[pymethods]
        impl $ty {
            fn __enter__(slf: Py<Self>) -> Py<Self> {
                slf
            }

            #[pyo3(signature = (*_exc))]
            fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
                self.close(py);
                false
            }
        }
    };
}

closes_on_exit!(ShmMainObj);
closes_on_exit!(ServerSideObj);
closes_on_exit!(ClientSideObj);

macro_rules! side_methods {
    ($ty:ty) => {
        #[pymethods]
        impl $ty {
            /// The pipe.
            #[getter]
            fn pipe(&self) -> PyResult<PipeObj> {
                Ok(PipeObj::new(
                    self.held.side()?,
                    self.held.brk.clone(),
                    self.held.spin,
                ))
            }

            /// The pool, to share values in.
            #[getter]
            fn pool(&self) -> PyResult<PoolObj> {
                Ok(PoolObj::new(self.held.side()?.pool().clone()))
            }

            /// The region's named values.
            fn names(&self, py: Python<'_>) -> PyResult<NamesObj> {
                self.pool()?.names(py)
            }

            /// Releases the side. The pipe objects taken from it keep it until they go.
            fn close(&self, py: Python<'_>) {
                self.held.close(py)
            }

            fn __repr__(&self) -> String {
                format!("<shmval.{}>", self.held.what)
            }
        }
    };
}

/// Creates pipe `pipe` with `capacity` slots in region `region` (waiting up to `timeout`
/// seconds for the region to appear; `None` waits as long as it takes) and sends and
/// receives on it.
///
/// Waits wake every `micro_sleep` seconds to run Python's signal handlers (Ctrl-C) and
/// `break_checker`; a blocking receive polls for `spin` seconds before it sleeps (0 never).
#[pyclass(module = "shmval", name = "ServerSide", frozen)]
pub struct ServerSideObj {
    held: Held,
}

#[pymethods]
impl ServerSideObj {
    #[new]
    #[pyo3(signature = (region, pipe, capacity, *, persist=false, redeliver=false, reattach=false,
        one_to_one=false, timeout=Some(60.0), micro_sleep=0.1, notice_after=Some(5.0), spin=DEFAULT_SPIN, break_checker=None, debug=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        region: String,
        pipe: String,
        capacity: u64,
        persist: bool,
        redeliver: bool,
        reattach: bool,
        one_to_one: bool,
        timeout: Option<f64>,
        micro_sleep: f64,
        notice_after: Option<f64>,
        spin: f64,
        break_checker: Option<Py<PyAny>>,
        debug: bool,
    ) -> PyResult<ServerSideObj> {
        if capacity == 0 {
            return Err(PyValueError::new_err(
                "a pipe's capacity must be at least 1",
            ));
        }
        let brk = Interrupts::new(break_checker);
        let b = ServerSide::new(region.clone(), pipe.clone(), capacity)
            .persist(persist)
            .redeliver(redeliver)
            .reattach(reattach)
            .one_to_one(one_to_one);
        let b = wait_opts!(b, timeout, micro_sleep, notice_after, brk, debug);
        let what = format!("ServerSide of pipe {pipe:?} in region {region:?}");
        let held = Held::start(py, brk, spin, what, || b.start().map(AnySide::Server))?;
        Ok(ServerSideObj { held })
    }
}
side_methods!(ServerSideObj);

/// Attaches to pipe `pipe` of region `region`, waiting up to `timeout` seconds for both
/// to appear (`None` waits as long as it takes), and sends and receives on it.
///
/// Waits wake every `micro_sleep` seconds to run Python's signal handlers (Ctrl-C) and
/// `break_checker`; a blocking receive polls for `spin` seconds before it sleeps (0 never).
#[pyclass(module = "shmval", name = "ClientSide", frozen)]
pub struct ClientSideObj {
    held: Held,
}

#[pymethods]
impl ClientSideObj {
    #[new]
    #[pyo3(signature = (region, pipe, *, timeout=Some(60.0), micro_sleep=0.1, notice_after=Some(5.0),
        sends=false, spin=DEFAULT_SPIN, break_checker=None, debug=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        region: String,
        pipe: String,
        timeout: Option<f64>,
        micro_sleep: f64,
        notice_after: Option<f64>,
        sends: bool,
        spin: f64,
        break_checker: Option<Py<PyAny>>,
        debug: bool,
    ) -> PyResult<ClientSideObj> {
        let brk = Interrupts::new(break_checker);
        let b = ClientSide::new(region.clone(), pipe.clone()).sends(sends);
        let b = wait_opts!(b, timeout, micro_sleep, notice_after, brk, debug);
        let what = format!("ClientSide of pipe {pipe:?} in region {region:?}");
        let held = Held::start(py, brk, spin, what, || b.start().map(AnySide::Client))?;
        Ok(ClientSideObj { held })
    }
}
side_methods!(ClientSideObj);
