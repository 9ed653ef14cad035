//! `shmval.Locked`: a table (or list, or array) several processes write under its lock,
//! with crash-atomic updates; `shmval.LockedTable`: the lock held, as a context manager.

use std::sync::Arc;
use std::time::{Duration, Instant};

use num_complex::{Complex32, Complex64};
use numpy::{PyArray1, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyIndexError, PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use shmval::val::shared::ShmRef;
use shmval::{LockedGuard, LockedMut, ShmLocked, ShmVal, Tag, ValError};

use crate::errors::{val_err, Error};
use crate::from_pool;
use crate::into_pool::{self, Child};
use crate::pool::PoolObj;
use crate::wait::{seconds, SameThread};

/// How long a lock wait runs with the GIL released before Python's signals are checked.
const SLICE: Duration = Duration::from_millis(50);

/// A value several processes update in place under its lock: `Locked(pool, {"n": 0})`.
///
/// `with t.lock(timeout=1.0) as g: g["n"] += 1` holds the lock for the block. Each write
/// is atomic against a crash: a process killed in the middle of one leaves the value as
/// before or as after it, and the next holder sees `owner_died`. Publish it by name or
/// send it on a pipe to share it; whoever receives it gets a `Locked` too.
#[pyclass(module = "shmval", name = "Locked", frozen)]
pub struct Locked {
    l: Arc<ShmLocked>,
}

impl Locked {
    pub(crate) fn from_locked(l: ShmLocked) -> Locked {
        Locked { l: Arc::new(l) }
    }

    /// A new handle of the value, to send or publish.
    pub(crate) fn handle(&self) -> ShmVal {
        self.l.as_val().clone()
    }
}

#[pymethods]
impl Locked {
    /// A locked copy of `value` (a dict, OrderedDict, list, tuple or 1-D NumPy array) in
    /// `pool`.
    #[new]
    fn new(pool: &PoolObj, value: &Bound<'_, PyAny>) -> PyResult<Locked> {
        let l = match into_pool::child(pool.pool(), value)? {
            Child::Val(v) => ShmLocked::new(pool.pool(), v),
            Child::Handle(h) => ShmLocked::new(pool.pool(), h),
        }
        .map_err(val_err)?;
        Ok(Locked::from_locked(l))
    }

    /// Takes the lock, waiting up to `timeout` seconds while another thread or process
    /// holds it (`None`: as long as it takes; Ctrl-C still ends the wait). A holder that
    /// died is taken over, its last write settled first. Raises `Timeout`.
    #[pyo3(signature = (timeout=None))]
    fn lock(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<LockedTable> {
        let deadline = timeout
            .map(seconds)
            .transpose()?
            .map(|t| Instant::now() + t);
        loop {
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
                None => SLICE,
            };
            let got = py.detach(|| SameThread(self.l.lock(slice))).0;
            match got {
                Ok(g) => return Ok(LockedTable::new(self.l.clone(), g)),
                Err(ValError::LockTimeout { .. })
                    if deadline.is_none_or(|d| Instant::now() < d) =>
                {
                    py.check_signals()?;
                }
                Err(e) => return Err(val_err(e)),
            }
        }
    }

    /// Takes the lock if it is free (or its holder dead); `Timeout` if not.
    fn try_lock(&self) -> PyResult<LockedTable> {
        let g = self.l.try_lock().map_err(val_err)?;
        Ok(LockedTable::new(self.l.clone(), g))
    }

    /// A plain copy of the value, taken under the lock (waiting up to `timeout` seconds).
    #[pyo3(signature = (timeout=1.0))]
    fn snapshot(&self, py: Python<'_>, timeout: f64) -> PyResult<Py<PyAny>> {
        let t = seconds(timeout)?;
        let h = py.detach(|| self.l.snapshot(t)).map_err(val_err)?;
        from_pool::plain(py, &h.view())
    }

    /// The lock's state: `held`, `holder_pid`, `owner_died`, as the crate reports it.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.l.status().map_err(val_err)?;
        let d = PyDict::new(py);
        d.set_item("status", format!("{s:?}"))?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmval.Locked at pool offset {}>",
            self.l.as_val().offset()
        )
    }
}

/// A value that stays on the thread that made it: reached and dropped only there. Dropped
/// on another thread (a Python object collected there), it is forgotten instead: a lock
/// guard left so keeps its lock until the process ends, which recovery then settles.
struct ThreadBound<T> {
    value: std::mem::ManuallyDrop<T>,
    owner: std::thread::ThreadId,
}

// SAFETY: the value is only reached through `get`/`get_mut`, which check that the caller
// runs on the owner thread, and dropped only there; elsewhere the wrapper is moved and
// dropped without touching it.
unsafe impl<T> Send for ThreadBound<T> {}
// SAFETY: as for `Send`: a shared reference reaches the value only on the owner thread.
unsafe impl<T> Sync for ThreadBound<T> {}

impl<T> ThreadBound<T> {
    fn new(value: T) -> ThreadBound<T> {
        ThreadBound {
            value: std::mem::ManuallyDrop::new(value),
            owner: std::thread::current().id(),
        }
    }

    fn check(&self) -> PyResult<()> {
        if std::thread::current().id() == self.owner {
            Ok(())
        } else {
            Err(pyo3::exceptions::PyRuntimeError::new_err(
                "a held lock belongs to the thread that took it",
            ))
        }
    }

    fn get(&self) -> PyResult<&T> {
        self.check().map(|()| &*self.value)
    }

    fn get_mut(&mut self) -> PyResult<&mut T> {
        self.check()?;
        Ok(&mut *self.value)
    }
}

impl<T> Drop for ThreadBound<T> {
    fn drop(&mut self) {
        if std::thread::current().id() == self.owner {
            // SAFETY: dropped once, here, on the owner thread; never reached again.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.value) }
        }
    }
}

/// The lock of a `Locked` value, held; leaving the `with` block (or `unlock()`) releases
/// it. Reads and writes go through it: `g[key]`, `g[key] = value`, `del g[key]`,
/// `g.increment(key)`, `g.append(value)`. It belongs to the thread that took it.
#[pyclass(module = "shmval", name = "LockedTable")]
pub struct LockedTable {
    // Dropped before `_l`, which it borrows.
    g: Option<ThreadBound<LockedGuard<'static>>>,
    _l: Arc<ShmLocked>,
}

impl LockedTable {
    fn new(l: Arc<ShmLocked>, g: LockedGuard<'_>) -> LockedTable {
        // SAFETY: the guard borrows the `ShmLocked` inside `l`'s allocation, which does
        // not move and lives as long as the `Arc` kept beside the guard; the guard is
        // declared first, so it is dropped (or taken out by `unlock`, or forgotten) before
        // that `Arc`.
        let g = unsafe { std::mem::transmute::<LockedGuard<'_>, LockedGuard<'static>>(g) };
        LockedTable {
            g: Some(ThreadBound::new(g)),
            _l: l,
        }
    }

    fn guard(&self) -> PyResult<&LockedGuard<'static>> {
        self.g
            .as_ref()
            .ok_or_else(|| Error::new_err("the lock was released"))?
            .get()
    }

    fn guard_mut(&mut self) -> PyResult<&mut LockedGuard<'static>> {
        self.g
            .as_mut()
            .ok_or_else(|| Error::new_err("the lock was released"))?
            .get_mut()
    }

    /// The element at Python index `i` of a sequence's view.
    fn index(view: &ShmRef<'_>, key: &Bound<'_, PyAny>) -> PyResult<usize> {
        let len = view.len().map_err(val_err)? as isize;
        let i: isize = key
            .extract()
            .map_err(|_| PyTypeError::new_err("list indices must be integers"))?;
        let i = if i < 0 { i + len } else { i };
        if i < 0 || i >= len {
            return Err(PyIndexError::new_err("index out of range"));
        }
        Ok(i as usize)
    }
}

fn is_table(view: &ShmRef<'_>) -> bool {
    matches!(view.tag(), Tag::Tab | Tag::OTab)
}

/// One step down: the container under key `k` of a table, or at index `k` of a sequence.
fn step<'a>(m: &'a mut LockedMut<'_>, k: &Bound<'_, PyAny>) -> PyResult<LockedMut<'a>> {
    let view = m.view();
    if is_table(&view) {
        let key = into_pool::key(k)?;
        m.child_mut(&key).map_err(val_err)
    } else {
        let i = LockedTable::index(&view, k)?;
        m.item_mut(i).map_err(val_err)
    }
}

/// Runs `f` on the container at the end of `path`, walked down from `m`.
fn at_path<R>(
    mut m: LockedMut<'_>,
    path: &[Bound<'_, PyAny>],
    f: impl FnOnce(LockedMut<'_>) -> PyResult<R>,
) -> PyResult<R> {
    match path.split_first() {
        None => f(m),
        Some((k, rest)) => at_path(step(&mut m, k)?, rest, f),
    }
}

/// A path's parent part and its last step (a path of at least one step).
fn split_last<'a, 'py>(
    path: &'a [Bound<'py, PyAny>],
) -> PyResult<(&'a [Bound<'py, PyAny>], &'a Bound<'py, PyAny>)> {
    match path.split_last() {
        Some((last, parent)) => Ok((parent, last)),
        None => Err(pyo3::exceptions::PyValueError::new_err(
            "a path needs at least one key",
        )),
    }
}

#[pymethods]
impl LockedTable {
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&mut self, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.unlock()?;
        Ok(false)
    }

    /// Releases the lock (leaving the `with` block does it too).
    fn unlock(&mut self) -> PyResult<()> {
        if let Some(g) = &self.g {
            g.check()?;
        }
        self.g = None;
        Ok(())
    }

    /// Whether a previous holder died holding the lock; its last write was settled (made
    /// whole or undone) before this holder got it.
    #[getter]
    fn owner_died(&self) -> PyResult<bool> {
        Ok(self.guard()?.owner_died())
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let view = self.guard()?.view();
        if is_table(&view) {
            let k = into_pool::key(key)?;
            match view.get(&k).map_err(val_err)? {
                Some(r) => from_pool::nested(py, &r),
                None => Err(PyKeyError::new_err(key.clone().unbind())),
            }
        } else {
            let i = Self::index(&view, key)?;
            from_pool::nested(py, &view.at(i).map_err(val_err)?)
        }
    }

    /// The value under `key`, or `default`.
    #[pyo3(signature = (key, default=None))]
    fn get(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let view = self.guard()?.view();
        let k = into_pool::key(key)?;
        match view.get(&k).map_err(val_err)? {
            Some(r) => from_pool::nested(py, &r),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    fn __setitem__(&mut self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let pool = self._l.pool().clone();
        let c = into_pool::child(&pool, value)?;
        let g = self.guard_mut()?;
        let view = g.view();
        if is_table(&view) {
            let k = into_pool::key(key)?;
            match c {
                Child::Val(v) => g.insert(k, v),
                Child::Handle(h) => g.insert(k, h),
            }
            .map(|_| ())
            .map_err(val_err)
        } else {
            let i = Self::index(&view, key)?;
            match c {
                Child::Val(v) => g.set(i, v),
                Child::Handle(h) => g.set(i, h),
            }
            .map_err(val_err)
        }
    }

    fn __delitem__(&mut self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let k = into_pool::key(key)?;
        if self.guard_mut()?.remove(&k).map_err(val_err)? {
            Ok(())
        } else {
            Err(PyKeyError::new_err(key.clone().unbind()))
        }
    }

    fn __len__(&self) -> PyResult<usize> {
        self.guard()?.view().len().map_err(val_err)
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let view = self.guard()?.view();
        let Ok(k) = into_pool::key(key) else {
            return Ok(false);
        };
        Ok(view.get(&k).map_err(val_err)?.is_some())
    }

    /// Adds `by` to the integer under `key` (a missing key counts as 0) in one atomic
    /// write; returns the new value.
    #[pyo3(signature = (key, by=1))]
    fn increment(&mut self, key: &Bound<'_, PyAny>, by: i64) -> PyResult<i64> {
        let k = into_pool::key(key)?;
        self.guard_mut()?.increment(k, by).map_err(val_err)
    }

    /// Appends `value` to a list.
    fn append(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let pool = self._l.pool().clone();
        let c = into_pool::child(&pool, value)?;
        let g = self.guard_mut()?;
        match c {
            Child::Val(v) => g.push(v),
            Child::Handle(h) => g.push(h),
        }
        .map_err(val_err)
    }

    /// Sets the value at `path` (a list of keys and indexes from the top, the last one
    /// naming the entry), in one atomic write: `g.set_in(["a", 0, "b"], 5)`.
    fn set_in(&mut self, path: Vec<Bound<'_, PyAny>>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let pool = self._l.pool().clone();
        let c = into_pool::child(&pool, value)?;
        let (parent, last) = split_last(&path)?;
        at_path(self.guard_mut()?.root(), parent, |mut m| {
            let view = m.view();
            if is_table(&view) {
                let k = into_pool::key(last)?;
                match c {
                    Child::Val(v) => m.insert(k, v),
                    Child::Handle(h) => m.insert(k, h),
                }
                .map(|_| ())
                .map_err(val_err)
            } else {
                let i = Self::index(&view, last)?;
                match c {
                    Child::Val(v) => m.set(i, v),
                    Child::Handle(h) => m.set(i, h),
                }
                .map_err(val_err)
            }
        })
    }

    /// Adds `by` to the integer at `path` (a missing entry counts as 0); returns the new
    /// value.
    #[pyo3(signature = (path, by=1))]
    fn increment_in(&mut self, path: Vec<Bound<'_, PyAny>>, by: i64) -> PyResult<i64> {
        let (parent, last) = split_last(&path)?;
        let k = into_pool::key(last)?;
        at_path(self.guard_mut()?.root(), parent, |mut m| {
            m.increment(k, by).map_err(val_err)
        })
    }

    /// Appends `value` to the list at `path`.
    fn append_in(&mut self, path: Vec<Bound<'_, PyAny>>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let pool = self._l.pool().clone();
        let c = into_pool::child(&pool, value)?;
        at_path(self.guard_mut()?.root(), &path, |mut m| {
            match c {
                Child::Val(v) => m.push(v),
                Child::Handle(h) => m.push(h),
            }
            .map_err(val_err)
        })
    }

    /// Removes the entry at `path` (`KeyError` if it is not there).
    fn delete_in(&mut self, path: Vec<Bound<'_, PyAny>>) -> PyResult<()> {
        let (parent, last) = split_last(&path)?;
        let k = into_pool::key(last)?;
        let removed = at_path(self.guard_mut()?.root(), parent, |mut m| {
            m.remove(&k).map_err(val_err)
        })?;
        if removed {
            Ok(())
        } else {
            Err(PyKeyError::new_err(last.clone().unbind()))
        }
    }

    /// Copies NumPy array `values` into the typed array at `path` (`[]`: the value
    /// itself), from element `start` on, as one atomic write. The dtypes must match.
    #[pyo3(signature = (path, values, start=0))]
    fn write_array(
        &mut self,
        path: Vec<Bound<'_, PyAny>>,
        values: &Bound<'_, PyUntypedArray>,
        start: usize,
    ) -> PyResult<()> {
        macro_rules! write_as {
            ($($t:ty),*) => {$(
                if let Ok(typed) = values.cast::<PyArray1<$t>>() {
                    let ro = typed.readonly();
                    let src = ro.as_slice()?;
                    return at_path(self.guard_mut()?.root(), &path, |mut m| {
                        m.update_slice::<$t, _>(|xs| {
                            let end = start.checked_add(src.len()).filter(|&e| e <= xs.len());
                            match end {
                                Some(end) => {
                                    xs[start..end].copy_from_slice(src);
                                    Ok(())
                                }
                                None => Err(PyIndexError::new_err(format!(
                                    "{} values from {start} do not fit an array of {}",
                                    src.len(),
                                    xs.len()
                                ))),
                            }
                        })
                        .map_err(val_err)?
                    });
                }
            )*};
        }
        write_as!(f64, f32, i64, u64, i32, u32, i16, u16, i8, u8, bool, Complex64, Complex32);
        Err(PyTypeError::new_err(format!(
            "no shmval array of dtype {}",
            values.dtype()
        )))
    }

    /// The keys of a table, as a list.
    fn keys(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let view = self.guard()?.view();
        let tab = view.as_tab().map_err(val_err)?;
        let mut out = Vec::new();
        for kv in tab.iter() {
            out.push(from_pool::key(py, &kv.map_err(val_err)?.0)?);
        }
        Ok(PyList::new(py, out)?.unbind())
    }

    /// The `(key, value)` pairs of a table, as a list.
    fn items(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let view = self.guard()?.view();
        let tab = view.as_tab().map_err(val_err)?;
        let mut out = Vec::new();
        for kv in tab.iter() {
            let (k, v) = kv.map_err(val_err)?;
            out.push(PyTuple::new(
                py,
                [from_pool::key(py, &k)?, from_pool::nested(py, &v)?],
            )?);
        }
        Ok(PyList::new(py, out)?.unbind())
    }

    /// A plain copy of the value.
    fn to_python(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        from_pool::plain(py, &self.guard()?.view())
    }
}
