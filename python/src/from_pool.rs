//! Values of the pool as Python objects: scalars and strings copied out, containers as
//! read-only views, typed arrays as read-only NumPy arrays over the pool's memory.

use num_complex::{Complex32, Complex64};
use numpy::ndarray::ArrayView1;
use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyTuple, PyType};
use pyo3::IntoPyObjectExt;
use shmval::val::shared::ShmRef;
use shmval::val::shared::{MAX_COPY_BYTES, MAX_NESTING};
use shmval::{Array, ElemType, ShmVal, Tag, Val, ValError};

use crate::errors::val_err;
use crate::locked::Locked;
use crate::views::{ArrayOwner, SeqView, TabView};

/// The Python object for a handle, which it takes over (no reference count change for
/// containers and arrays).
pub(crate) fn handle(py: Python<'_>, h: ShmVal) -> PyResult<Py<PyAny>> {
    if h.is_locked() {
        let l = h.into_locked().map_err(val_err)?;
        return Locked::from_locked(l).into_py_any(py);
    }
    match h.tag() {
        Tag::Tab | Tag::OTab => TabView::new(h).into_py_any(py),
        Tag::Arr | Tag::Tup => SeqView::new(h).into_py_any(py),
        Tag::Array => array(py, h),
        Tag::Str => {
            let s = h.as_str().map_err(val_err)?;
            Ok(PyString::new(py, s.as_str()).into_any().unbind())
        }
        _ => val(py, &h.to_val().map_err(val_err)?),
    }
}

/// The Python object for a value inside another: containers and arrays get handles of
/// their own.
pub(crate) fn nested(py: Python<'_>, r: &ShmRef<'_>) -> PyResult<Py<PyAny>> {
    match r.tag() {
        Tag::Tab | Tag::OTab | Tag::Arr | Tag::Tup | Tag::Array => {
            handle(py, r.to_handle().map_err(val_err)?)
        }
        Tag::Str => {
            let s = r.as_str().map_err(val_err)?;
            Ok(PyString::new(py, s.as_str()).into_any().unbind())
        }
        _ => val(py, &r.to_val().map_err(val_err)?),
    }
}

/// A plain Python copy of a value of the pool, read in place (no heap copy in between):
/// `dict`/`OrderedDict`, `list`, `tuple`, writable NumPy arrays, scalars and strings.
///
/// As the crate's own copies, it stops at [`MAX_NESTING`] levels (a graph linking back to
/// itself, which only a corrupted pool can hold) and after [`MAX_COPY_BYTES`] worth of
/// values (a value holding the same child many times expands past any memory).
pub(crate) fn plain(py: Python<'_>, r: &ShmRef<'_>) -> PyResult<Py<PyAny>> {
    let mut budget = MAX_COPY_BYTES / 16;
    plain_at(py, r, 0, &mut budget)
}

fn plain_at(py: Python<'_>, r: &ShmRef<'_>, depth: usize, budget: &mut u64) -> PyResult<Py<PyAny>> {
    if depth > MAX_NESTING {
        return Err(val_err(ValError::TooDeep { limit: MAX_NESTING }));
    }
    let tag = r.tag();
    let n = match tag {
        Tag::Tab | Tag::OTab | Tag::Arr | Tag::Tup => r.len().map_err(val_err)? as u64,
        _ => 1,
    };
    *budget = budget.checked_sub(n.max(1)).ok_or_else(|| {
        pyo3::exceptions::PyMemoryError::new_err(format!(
            "the value expands past {MAX_COPY_BYTES} bytes when copied out (it holds the same \
             parts many times); read it through its views instead"
        ))
    })?;
    match tag {
        Tag::Tab | Tag::OTab => {
            let t = r.as_tab().map_err(val_err)?;
            let d = if t.is_ordered() {
                ordered_dict(py)?.call0()?
            } else {
                PyDict::new(py).into_any()
            };
            for kv in t.iter() {
                let (k, v) = kv.map_err(val_err)?;
                d.set_item(
                    plain_at(py, &k, depth + 1, budget)?,
                    plain_at(py, &v, depth + 1, budget)?,
                )?;
            }
            Ok(d.unbind())
        }
        Tag::Arr | Tag::Tup => {
            let s = r.as_seq().map_err(val_err)?;
            let items = s
                .iter()
                .map(|x| plain_at(py, &x.map_err(val_err)?, depth + 1, budget))
                .collect::<PyResult<Vec<_>>>()?;
            Ok(if s.is_tuple() {
                PyTuple::new(py, items)?.into_any().unbind()
            } else {
                PyList::new(py, items)?.into_any().unbind()
            })
        }
        Tag::Array => {
            let a = r.as_array().map_err(val_err)?;
            macro_rules! copy {
                ($($e:ident => $t:ty),*) => {
                    match a.elem_type() {
                        $(ElemType::$e => PyArray1::from_slice(py, a.as_slice::<$t>().map_err(val_err)?)
                            .into_any()
                            .unbind(),)*
                    }
                };
            }
            Ok(copy!(
                Bool => bool, I8 => i8, U8 => u8, I16 => i16, U16 => u16, I32 => i32,
                U32 => u32, I64 => i64, U64 => u64, F32 => f32, F64 => f64,
                C32 => Complex32, C64 => Complex64
            ))
        }
        Tag::Str => Ok(PyString::new(py, r.as_str().map_err(val_err)?.as_str())
            .into_any()
            .unbind()),
        _ => val(py, &r.to_val().map_err(val_err)?),
    }
}

/// A table's key as a plain (hashable) Python value: a tuple key comes out as a tuple.
pub(crate) fn key(py: Python<'_>, r: &ShmRef<'_>) -> PyResult<Py<PyAny>> {
    plain(py, r)
}

/// A plain Python copy of a heap value: dict, OrderedDict, list, tuple, int, float,
/// complex, str, bool, None, and writable NumPy arrays.
pub(crate) fn val(py: Python<'_>, v: &Val) -> PyResult<Py<PyAny>> {
    Ok(match v {
        Val::None => py.None(),
        Val::Bool(b) => b.into_py_any(py)?,
        Val::I8(n) => n.into_py_any(py)?,
        Val::U8(n) => n.into_py_any(py)?,
        Val::I16(n) => n.into_py_any(py)?,
        Val::U16(n) => n.into_py_any(py)?,
        Val::I32(n) => n.into_py_any(py)?,
        Val::U32(n) => n.into_py_any(py)?,
        Val::I64(n) => n.into_py_any(py)?,
        Val::U64(n) => n.into_py_any(py)?,
        Val::BigInt(n) => n.into_py_any(py)?,
        Val::BigUint(n) => n.into_py_any(py)?,
        Val::F32(x) => f64::from(*x).into_py_any(py)?,
        Val::F64(x) => x.into_py_any(py)?,
        Val::C32(c) => Complex64::new(f64::from(c.re), f64::from(c.im)).into_py_any(py)?,
        Val::C64(c) => c.into_py_any(py)?,
        Val::Str(s) => s.into_py_any(py)?,
        Val::Tab(t) => {
            let d = PyDict::new(py);
            for (k, x) in t {
                d.set_item(val(py, k)?, val(py, x)?)?;
            }
            d.into_any().unbind()
        }
        Val::OTab(t) => {
            let d = ordered_dict(py)?.call0()?;
            for (k, x) in t {
                d.set_item(val(py, k)?, val(py, x)?)?;
            }
            d.unbind()
        }
        Val::Arr(a) => PyList::new(
            py,
            a.iter().map(|x| val(py, x)).collect::<PyResult<Vec<_>>>()?,
        )?
        .into_any()
        .unbind(),
        Val::Tup(a) => PyTuple::new(
            py,
            a.iter().map(|x| val(py, x)).collect::<PyResult<Vec<_>>>()?,
        )?
        .into_any()
        .unbind(),
        Val::Array(a) => owned_array(py, a)?,
    })
}

fn ordered_dict(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static ORDERED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    ORDERED.import(py, "collections", "OrderedDict")
}

/// A writable NumPy copy of a heap array.
fn owned_array(py: Python<'_>, a: &Array) -> PyResult<Py<PyAny>> {
    macro_rules! copy {
        ($($v:ident),*) => {
            match a {
                $(Array::$v(x) => PyArray1::from_slice(py, x).into_any().unbind(),)*
            }
        };
    }
    Ok(copy!(
        I8, U8, I16, U16, I32, U32, I64, U64, F32, F64, C32, C64, Bool
    ))
}

/// A read-only NumPy array over the pool's memory of `h`'s typed array. The array's base
/// holds the handle, so the block stays allocated and mapped while the array lives.
fn array(py: Python<'_>, h: ShmVal) -> PyResult<Py<PyAny>> {
    let et = h.as_array().map_err(val_err)?.elem_type();
    macro_rules! view {
        ($($e:ident => $t:ty),*) => {
            match et {
                $(ElemType::$e => {
                    let (ptr, n) = {
                        let data = h.as_slice::<$t>().map_err(val_err)?;
                        (data.as_ptr(), data.len())
                    };
                    let bytes = n * std::mem::size_of::<$t>();
                    let dtype = numpy::dtype::<$t>(py).unbind();
                    let owner = Bound::new(py, ArrayOwner::new(h, ptr as usize, bytes, dtype))?;
                    // SAFETY: `ptr` and `n` are those of the block's elements, a valid
                    // `[$t]` (`as_slice` checked it), which the handle now in `owner`
                    // keeps allocated; the view only carries them into NumPy.
                    let v = unsafe { ArrayView1::from_shape_ptr(n, ptr) };
                    // SAFETY: the memory lives as long as `owner`, which becomes the
                    // array's base: it holds the handle, so the block stays allocated (its
                    // reference is counted) and the region mapped (the handle's pool holds
                    // it). A block with a reference held here is never written: writes
                    // need the only handle, and this one is never handed out mutably; the
                    // array is made read-only before it is returned, and NumPy refuses to
                    // make it writable again, its base exporting no writable buffer.
                    let arr = unsafe {
                        PyArray1::<$t>::borrow_from_array(&v, owner.into_any())
                    };
                    arr.readwrite().make_nonwriteable();
                    arr.into_any().unbind()
                })*
            }
        };
    }
    Ok(view!(
        Bool => bool, I8 => i8, U8 => u8, I16 => i16, U16 => u16, I32 => i32, U32 => u32,
        I64 => i64, U64 => u64, F32 => f32, F64 => f64, C32 => Complex32, C64 => Complex64
    ))
}
