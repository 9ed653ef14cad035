//! `shmval.Pool` (the region's allocator, to share values in) and `shmval.Names` (values
//! published in the region under a name).

use numpy::{PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use shmval::alloc::Pool;
use shmval::sides::Names;
use shmval::ShmVal;

use crate::errors::{sides_err, val_err};
use crate::locked::Locked;
use crate::views::ArrayOwner;
use crate::wait::seconds;
use crate::{from_pool, into_pool};

/// The shared pool of a region: where values live.
#[pyclass(module = "shmval", name = "Pool", frozen)]
pub struct PoolObj {
    pool: Pool,
}

impl PoolObj {
    pub(crate) fn new(pool: Pool) -> PoolObj {
        PoolObj { pool }
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }
}

#[pymethods]
impl PoolObj {
    /// A copy of `value` in the pool, as `dequeue` would give it back: a `Tab` or `Seq`
    /// view, a read-only NumPy array over the pool, or (for a scalar or string) the Python
    /// value. Sent on a pipe, a shared value goes by handle, without a copy, as often as
    /// it is sent.
    fn share(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let h = into_pool::share(&self.pool, value)?;
        from_pool::handle(py, h)
    }

    /// The allocator's figures: `capacity`, `used` and `free` bytes, `largest_free`,
    /// `live_allocations`, `high_water`, `free_blocks`. Waits for the pool lock (with the
    /// GIL released) as long as a live process holds it; a dead holder is taken over.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = py
            .detach(|| self.pool.stats())
            .map_err(|e| val_err(e.into()))?;
        let d = PyDict::new(py);
        d.set_item("capacity", s.capacity)?;
        d.set_item("used", s.used)?;
        d.set_item("free", s.free)?;
        d.set_item("largest_free", s.largest_free)?;
        d.set_item("live_allocations", s.live_allocations)?;
        d.set_item("high_water", s.high_water)?;
        d.set_item("free_blocks", s.free_blocks)?;
        Ok(d)
    }

    /// Whether NumPy array `array` views memory of this pool's region: true for an array
    /// that came out of a pipe or `share` (no copy was made), and for views of one.
    fn holds(&self, array: &Bound<'_, PyUntypedArray>) -> PyResult<bool> {
        let base = array.getattr("base")?;
        let Ok(owner) = base.cast::<ArrayOwner>() else {
            return Ok(false);
        };
        let owner = owner.get();
        Ok(
            owner.handle().pool().region().id() == self.pool.region().id()
                && owner.contains(data_address(array)),
        )
    }

    /// The region's named values.
    pub(crate) fn names(&self, py: Python<'_>) -> PyResult<NamesObj> {
        let names = py.detach(|| Names::open(&self.pool)).map_err(sides_err)?;
        Ok(NamesObj { names })
    }

    /// The region's name.
    #[getter]
    fn region(&self) -> String {
        self.pool.region().name().as_str().to_owned()
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmval.Pool of region {:?}>",
            self.pool.region().name().as_str()
        )
    }
}

/// The address of a NumPy array's first element.
pub(crate) fn data_address(a: &Bound<'_, PyUntypedArray>) -> usize {
    // SAFETY: `as_array_ptr` is the array object itself, alive while `a` is borrowed;
    // reading its `data` field reads no element.
    unsafe { (*a.as_array_ptr()).fields.data as usize }
}

/// Values published in the region under a name, found by any process attached to it.
#[pyclass(module = "shmval", name = "Names", frozen)]
pub struct NamesObj {
    names: Names,
}

/// A Python value in the pool of `names`, for publishing: a locked table goes as itself.
fn publishable(names: &Names, value: &Bound<'_, PyAny>) -> PyResult<ShmVal> {
    if let Ok(l) = value.cast::<Locked>() {
        return Ok(l.get().handle());
    }
    into_pool::share(names.pool(), value)
}

fn out(py: Python<'_>, h: Option<ShmVal>) -> PyResult<Py<PyAny>> {
    match h {
        Some(h) => from_pool::handle(py, h),
        None => Ok(py.None()),
    }
}

#[pymethods]
impl NamesObj {
    /// Publishes `value` under `name` (`Exists` if the name is taken).
    fn publish(&self, py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let h = publishable(&self.names, value)?;
        py.detach(|| self.names.publish(name, h)).map_err(sides_err)
    }

    /// Publishes `value` under `name`, in place of what was there; returns that, or None.
    fn replace(&self, py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let h = publishable(&self.names, value)?;
        let old = py
            .detach(|| self.names.replace(name, h))
            .map_err(sides_err)?;
        out(py, old)
    }

    /// Takes the value under `name` away; returns it, or None.
    fn unpublish(&self, py: Python<'_>, name: &str) -> PyResult<Py<PyAny>> {
        let old = py
            .detach(|| self.names.unpublish(name))
            .map_err(sides_err)?;
        out(py, old)
    }

    /// The value under `name` now, or None.
    fn get(&self, py: Python<'_>, name: &str) -> PyResult<Py<PyAny>> {
        let h = py.detach(|| self.names.get(name)).map_err(sides_err)?;
        out(py, h)
    }

    /// The value under `name`, waiting up to `timeout` seconds for it to be published
    /// (`Timeout` if it is not).
    fn lookup(&self, py: Python<'_>, name: &str, timeout: f64) -> PyResult<Py<PyAny>> {
        let t = seconds(timeout)?;
        let h = py
            .detach(|| self.names.lookup(name, t))
            .map_err(sides_err)?;
        from_pool::handle(py, h)
    }
}
