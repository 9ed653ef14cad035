//! Read-only views of the pool's containers (`shmval.Tab`, `shmval.Seq`) and the owner of
//! a NumPy array over the pool (`shmval.ArrayOwner`). Each holds a handle: what it views
//! stays allocated while the view lives.

use numpy::{PyArrayDescr, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::basic::CompareOp;
use pyo3::exceptions::{PyIndexError, PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PySlice, PyTuple};
use pyo3::IntoPyObjectExt;
use shmval::ShmVal;

use crate::errors::val_err;
use crate::{from_pool, into_pool};

/// A read-only view of a `Tab` or `OTab` in the pool, a `collections.abc.Mapping`.
///
/// Lookups read the pool in place; nested containers come out as views, typed arrays as
/// read-only NumPy arrays, everything else as a Python copy. `to_python()` copies the
/// whole table into a `dict` (an `OrderedDict` for an `OTab`). Sent on a pipe, the view
/// goes by handle, without a copy.
#[pyclass(module = "shmval", name = "Tab", frozen, mapping)]
pub struct TabView {
    h: ShmVal,
}

impl TabView {
    pub(crate) fn new(h: ShmVal) -> TabView {
        TabView { h }
    }

    pub(crate) fn handle(&self) -> &ShmVal {
        &self.h
    }
}

#[pymethods]
impl TabView {
    fn __len__(&self) -> PyResult<usize> {
        Ok(self.h.as_tab().map_err(val_err)?.len())
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let k = into_pool::key(key)?;
        let tab = self.h.as_tab().map_err(val_err)?;
        match tab.get(&k).map_err(val_err)? {
            Some(r) => from_pool::nested(py, &r),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
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
        let Ok(k) = into_pool::key(key) else {
            return Ok(default.unwrap_or_else(|| py.None()));
        };
        match self.h.as_tab().map_err(val_err)?.get(&k).map_err(val_err)? {
            Some(r) => from_pool::nested(py, &r),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(k) = into_pool::key(key) else {
            return Ok(false);
        };
        self.h
            .as_tab()
            .map_err(val_err)?
            .contains(&k)
            .map_err(val_err)
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.keys(py)?.bind(py).try_iter()?.into_any().unbind())
    }

    /// The keys, as a list (in insertion order for an `OTab`).
    fn keys(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let mut out = Vec::new();
        for kv in self.h.as_tab().map_err(val_err)?.iter() {
            out.push(from_pool::key(py, &kv.map_err(val_err)?.0)?);
        }
        Ok(PyList::new(py, out)?.unbind())
    }

    /// The values, as a list in the order of `keys()`.
    fn values(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let mut out = Vec::new();
        for kv in self.h.as_tab().map_err(val_err)?.iter() {
            out.push(from_pool::nested(py, &kv.map_err(val_err)?.1)?);
        }
        Ok(PyList::new(py, out)?.unbind())
    }

    /// The `(key, value)` pairs, as a list in the order of `keys()`.
    fn items(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let mut out = Vec::new();
        for kv in self.h.as_tab().map_err(val_err)?.iter() {
            let (k, v) = kv.map_err(val_err)?;
            let pair = (from_pool::key(py, &k)?, from_pool::nested(py, &v)?);
            out.push(PyTuple::new(py, [pair.0, pair.1])?);
        }
        Ok(PyList::new(py, out)?.unbind())
    }

    /// Whether this is an `OTab` (it keeps insertion order).
    #[getter]
    fn ordered(&self) -> PyResult<bool> {
        Ok(self.h.as_tab().map_err(val_err)?.is_ordered())
    }
}

/// A read-only view of an `Arr` or `Tup` in the pool, a `collections.abc.Sequence`.
///
/// As [`TabView`]: elements are read in place, `to_python()` copies into a `list` (a
/// `tuple` for a `Tup`), and the view goes on a pipe by handle.
#[pyclass(module = "shmval", name = "Seq", frozen, sequence)]
pub struct SeqView {
    h: ShmVal,
}

impl SeqView {
    pub(crate) fn new(h: ShmVal) -> SeqView {
        SeqView { h }
    }

    pub(crate) fn handle(&self) -> &ShmVal {
        &self.h
    }

    fn at(&self, py: Python<'_>, i: usize) -> PyResult<Py<PyAny>> {
        let seq = self.h.as_seq().map_err(val_err)?;
        match seq.get(i).map_err(val_err)? {
            Some(r) => from_pool::nested(py, &r),
            None => Err(PyIndexError::new_err("Seq index out of range")),
        }
    }

    fn all(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        let seq = self.h.as_seq().map_err(val_err)?;
        seq.iter()
            .map(|r| from_pool::nested(py, &r.map_err(val_err)?))
            .collect()
    }
}

#[pymethods]
impl SeqView {
    fn __len__(&self) -> PyResult<usize> {
        Ok(self.h.as_seq().map_err(val_err)?.len())
    }

    fn __getitem__(&self, py: Python<'_>, index: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let len = self.__len__()?;
        if let Ok(s) = index.cast::<PySlice>() {
            let ind = s.indices(len as isize)?;
            let mut out = Vec::with_capacity(ind.slicelength);
            let mut i = ind.start;
            for _ in 0..ind.slicelength {
                out.push(self.at(py, i as usize)?);
                i += ind.step;
            }
            return Ok(PyList::new(py, out)?.into_any().unbind());
        }
        let i: isize = index
            .extract()
            .map_err(|_| PyTypeError::new_err("Seq indices must be integers or slices"))?;
        let i = if i < 0 { i + len as isize } else { i };
        if i < 0 || i as usize >= len {
            return Err(PyIndexError::new_err("Seq index out of range"));
        }
        self.at(py, i as usize)
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(PyList::new(py, self.all(py)?)?
            .try_iter()?
            .into_any()
            .unbind())
    }

    fn __contains__(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<bool> {
        for e in self.all(py)? {
            if e.bind(py).eq(x)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The index of the first element equal to `x` (`ValueError` if there is none).
    fn index(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<usize> {
        for (i, e) in self.all(py)?.into_iter().enumerate() {
            if e.bind(py).eq(x)? {
                return Ok(i);
            }
        }
        Err(pyo3::exceptions::PyValueError::new_err(
            "value is not in the Seq",
        ))
    }

    /// How many elements equal `x`.
    fn count(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<usize> {
        let mut n = 0;
        for e in self.all(py)? {
            if e.bind(py).eq(x)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Whether this is a `Tup`.
    #[getter]
    fn is_tuple(&self) -> PyResult<bool> {
        Ok(self.h.as_seq().map_err(val_err)?.is_tuple())
    }
}

/// What both views share: the plain copy, the reference count, `==` and `repr`.
macro_rules! view_common {
    ($ty:ty, $name:literal, $copy:literal) => {
        #[pymethods]
        impl $ty {
            #[doc = concat!("A plain copy: ", $copy, ".")]
            fn to_python(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                from_pool::plain(py, &self.h.view())
            }

            /// References to the value: handles in any process, and containers holding it.
            #[getter]
            fn ref_count(&self) -> u64 {
                self.h.ref_count()
            }

            fn __richcmp__(
                &self,
                py: Python<'_>,
                other: &Bound<'_, PyAny>,
                op: CompareOp,
            ) -> PyResult<Py<PyAny>> {
                compare(py, self.to_python(py)?, other, op)
            }

            fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
                Ok(format!(
                    concat!("shmval.", $name, "({})"),
                    self.to_python(py)?.bind(py).repr()?
                ))
            }
        }
    };
}

view_common!(
    TabView,
    "Tab",
    "a `dict`, or an `OrderedDict` for an `OTab`"
);
view_common!(SeqView, "Seq", "a `list`, or a `tuple` for a `Tup`");

/// `==` and `!=` as between the plain copies; no ordering.
fn compare(
    py: Python<'_>,
    mine: Py<PyAny>,
    other: &Bound<'_, PyAny>,
    op: CompareOp,
) -> PyResult<Py<PyAny>> {
    let other = if let Ok(t) = other.cast::<TabView>() {
        t.get().to_python(py)?.into_bound(py)
    } else if let Ok(s) = other.cast::<SeqView>() {
        s.get().to_python(py)?.into_bound(py)
    } else {
        other.clone()
    };
    match op {
        CompareOp::Eq => mine.bind(py).eq(other)?.into_py_any(py),
        CompareOp::Ne => mine.bind(py).ne(other)?.into_py_any(py),
        _ => Ok(py.NotImplemented()),
    }
}

/// The base of a NumPy array over the pool: holds the array's handle, so its memory stays
/// allocated and mapped while any array viewing it lives.
#[pyclass(module = "shmval", frozen)]
pub struct ArrayOwner {
    h: ShmVal,
    start: usize,
    len: usize,
    dtype: Py<PyArrayDescr>,
}

impl ArrayOwner {
    /// The owner of `h`, whose elements of type `dtype` take `len` bytes from address
    /// `start`.
    pub(crate) fn new(h: ShmVal, start: usize, len: usize, dtype: Py<PyArrayDescr>) -> ArrayOwner {
        ArrayOwner {
            h,
            start,
            len,
            dtype,
        }
    }

    /// The handle of the array.
    pub(crate) fn handle(&self) -> &ShmVal {
        &self.h
    }

    /// Whether address `at` lies among the array's elements.
    pub(crate) fn contains(&self, at: usize) -> bool {
        at >= self.start && at < self.start + self.len.max(1)
    }

    /// The handle of the array, if `a` views all of it as it is: same start, length and
    /// element type (not a slice of it, nor a view under another dtype).
    pub(crate) fn handle_if_whole(&self, a: &Bound<'_, PyUntypedArray>) -> Option<&ShmVal> {
        let data = crate::pool::data_address(a);
        let bytes = a.len() * a.dtype().itemsize();
        let whole = a.ndim() == 1
            && data == self.start
            && bytes == self.len
            && a.is_c_contiguous()
            && a.dtype().is_equiv_to(self.dtype.bind(a.py()));
        whole.then_some(&self.h)
    }
}

#[pymethods]
impl ArrayOwner {
    fn __repr__(&self) -> String {
        format!(
            "<shmval.ArrayOwner of {} bytes at pool offset {}>",
            self.len,
            self.h.offset()
        )
    }
}
