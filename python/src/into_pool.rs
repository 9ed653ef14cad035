//! Python values into the pool: plain values are copied in, values already in the pool
//! (views, arrays over the pool, locked tables) go in by handle.

use num_bigint::BigInt;
use num_complex::{Complex32, Complex64};
use numpy::{PyArray0, PyArray1, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyComplex, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
    PyType,
};
use shmval::alloc::Pool;
use shmval::{FixedState, OTab, PoolExt, ShmVal, Tab, Tag, Val};

use crate::errors::val_err;
use crate::locked::Locked;
use crate::views::{ArrayOwner, SeqView, TabView};

/// How deep containers may nest: deeper (or a container holding itself) is refused.
const MAX_DEPTH: usize = 256;

/// Above this many bytes, an array is copied into the pool with the GIL released.
const COPY_WITHOUT_GIL: usize = 1 << 20;

/// A converted value: still on the heap (scalars, and containers of scalars, shared in
/// one go) or already in the pool.
pub(crate) enum Child {
    Val(Val),
    Handle(ShmVal),
}

/// `obj` in the pool: a copy of a plain value, or the handle of one already there.
pub(crate) fn share(pool: &Pool, obj: &Bound<'_, PyAny>) -> PyResult<ShmVal> {
    match child_at(pool, obj, 0)? {
        Child::Val(v) => pool.share(&v).map_err(val_err),
        Child::Handle(h) => Ok(h),
    }
}

/// `obj` as a heap value, for keys and lookups: no handles, no arrays of the pool.
pub(crate) fn key(obj: &Bound<'_, PyAny>) -> PyResult<Val> {
    match scalar(obj)? {
        Some(v) => Ok(v),
        None => {
            if let Ok(t) = obj.cast::<PyTuple>() {
                let items = t.iter().map(|x| key(&x)).collect::<PyResult<Vec<Val>>>()?;
                Ok(Val::Tup(items))
            } else if is_numpy_scalar(obj)? {
                numpy_scalar(obj)
            } else {
                Err(PyTypeError::new_err(format!(
                    "unhashable or unsupported key type: '{}'",
                    obj.get_type().name()?
                )))
            }
        }
    }
}

/// A scalar or string as a heap value; `None` for anything else.
fn scalar(obj: &Bound<'_, PyAny>) -> PyResult<Option<Val>> {
    if obj.is_none() {
        return Ok(Some(Val::None));
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Some(Val::Bool(b.is_true())));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        return Ok(Some(match i.extract::<i64>() {
            Ok(n) => Val::I64(n),
            Err(_) => Val::BigInt(i.extract::<BigInt>()?),
        }));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Some(Val::F64(f.value())));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Some(Val::Str(s.to_str()?.to_owned())));
    }
    if let Ok(c) = obj.cast::<PyComplex>() {
        return Ok(Some(Val::C64(Complex64::new(c.real(), c.imag()))));
    }
    Ok(None)
}

/// `obj` converted for putting into a container or a locked value.
pub(crate) fn child(pool: &Pool, obj: &Bound<'_, PyAny>) -> PyResult<Child> {
    child_at(pool, obj, 0)
}

fn child_at(pool: &Pool, obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Child> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "containers nest deeper than {MAX_DEPTH} levels (or one holds itself)"
        )));
    }
    if let Some(v) = scalar(obj)? {
        return Ok(Child::Val(v));
    }
    if let Ok(t) = obj.cast::<TabView>() {
        return in_pool(pool, t.get().handle());
    }
    if let Ok(s) = obj.cast::<SeqView>() {
        return in_pool(pool, s.get().handle());
    }
    if let Ok(l) = obj.cast::<Locked>() {
        return in_pool(pool, &l.get().handle());
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let tag = if obj.is_instance(ordered_dict(obj.py())?)? {
            Tag::OTab
        } else {
            Tag::Tab
        };
        let mut items = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            items.push((key(&k)?, child_at(pool, &v, depth + 1)?));
        }
        return table(pool, tag, items);
    }
    if let Ok(l) = obj.cast::<PyList>() {
        let items = l
            .iter()
            .map(|x| child_at(pool, &x, depth + 1))
            .collect::<PyResult<Vec<Child>>>()?;
        return seq(pool, Tag::Arr, items);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        let items = t
            .iter()
            .map(|x| child_at(pool, &x, depth + 1))
            .collect::<PyResult<Vec<Child>>>()?;
        return seq(pool, Tag::Tup, items);
    }
    if let Ok(a) = obj.cast::<PyUntypedArray>() {
        return array(pool, a).map(Child::Handle);
    }
    if is_numpy_scalar(obj)? {
        return numpy_scalar(obj).map(Child::Val);
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return pool
            .array_from::<u8>(b.as_bytes())
            .map(Child::Handle)
            .map_err(val_err);
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return pool
            .array_from::<u8>(&b.to_vec())
            .map(Child::Handle)
            .map_err(val_err);
    }
    Err(PyTypeError::new_err(format!(
        "cannot put a value of type '{}' in the pool (dict, OrderedDict, list, tuple, str, int, \
         float, complex, bool, None, bytes and 1-D NumPy arrays can go)",
        obj.get_type().name()?
    )))
}

/// A handle already in the pool goes in as it is; one of another region is copied.
fn in_pool(pool: &Pool, h: &ShmVal) -> PyResult<Child> {
    if h.pool().region().id() == pool.region().id() {
        Ok(Child::Handle(h.clone()))
    } else {
        h.to_val().map(Child::Val).map_err(val_err)
    }
}

fn table(pool: &Pool, tag: Tag, items: Vec<(Val, Child)>) -> PyResult<Child> {
    if items.iter().all(|(_, c)| matches!(c, Child::Val(_))) {
        let plain = items.into_iter().map(|(k, c)| match c {
            Child::Val(v) => (k, v),
            Child::Handle(_) => unreachable!("checked above"),
        });
        return Ok(Child::Val(if tag == Tag::OTab {
            let mut t = OTab::with_capacity_and_hasher(plain.len(), FixedState);
            t.extend(plain);
            Val::OTab(t)
        } else {
            let mut t = Tab::with_capacity_and_hasher(plain.len(), FixedState);
            t.extend(plain);
            Val::Tab(t)
        }));
    }
    let mut h = pool.with_capacity(tag, items.len()).map_err(val_err)?;
    for (k, c) in items {
        match c {
            Child::Val(v) => h.insert(k, v),
            Child::Handle(x) => h.insert(k, x),
        }
        .map_err(val_err)?;
    }
    Ok(Child::Handle(h))
}

fn seq(pool: &Pool, tag: Tag, items: Vec<Child>) -> PyResult<Child> {
    if items.iter().all(|c| matches!(c, Child::Val(_))) {
        let plain: Vec<Val> = items
            .into_iter()
            .map(|c| match c {
                Child::Val(v) => v,
                Child::Handle(_) => unreachable!("checked above"),
            })
            .collect();
        return Ok(Child::Val(if tag == Tag::Tup {
            Val::Tup(plain)
        } else {
            Val::Arr(plain)
        }));
    }
    let mut h = pool.with_capacity(tag, items.len()).map_err(val_err)?;
    for c in items {
        match c {
            Child::Val(v) => h.push(v),
            Child::Handle(x) => h.push(x),
        }
        .map_err(val_err)?;
    }
    Ok(Child::Handle(h))
}

/// A NumPy array: the handle of the pool's array it views, or a copy in the pool.
fn array(pool: &Pool, a: &Bound<'_, PyUntypedArray>) -> PyResult<ShmVal> {
    if let Some(h) = viewed_handle(a)? {
        if h.pool().region().id() == pool.region().id() {
            return Ok(h);
        }
    }
    match a.ndim() {
        1 => {}
        0 => {
            let item = a.call_method0("item")?;
            return share(pool, &item);
        }
        n => {
            return Err(PyTypeError::new_err(format!(
                "shmval arrays have one dimension and this one has {n}: send a.ravel() and \
                 its shape beside it"
            )))
        }
    }
    macro_rules! copy_as {
        ($($t:ty),*) => {$(
            if let Ok(typed) = a.cast::<PyArray1<$t>>() {
                let contiguous;
                let typed = if typed.is_c_contiguous() {
                    typed
                } else {
                    contiguous = a
                        .py()
                        .import("numpy")?
                        .call_method1("ascontiguousarray", (typed,))?
                        .cast_into::<PyArray1<$t>>()?;
                    &contiguous
                };
                let ro = typed.readonly();
                let data = ro.as_slice()?;
                let bytes = std::mem::size_of_val(data);
                return if bytes >= COPY_WITHOUT_GIL {
                    a.py().detach(|| pool.array_from::<$t>(data))
                } else {
                    pool.array_from::<$t>(data)
                }
                .map_err(val_err);
            }
        )*};
    }
    copy_as!(f64, f32, i64, u64, i32, u32, i16, u16, i8, u8, bool, Complex64, Complex32);
    Err(PyTypeError::new_err(format!(
        "shmval has no arrays of NumPy dtype {} (it has bool, int8-64, uint8-64, float32/64, \
         complex64/128 in native byte order)",
        a.dtype()
    )))
}

/// The handle behind a read-only array this package made over the pool, if `a` is such
/// an array whole (same start, length and type): sending it needs no copy.
fn viewed_handle(a: &Bound<'_, PyUntypedArray>) -> PyResult<Option<ShmVal>> {
    let Ok(base) = a.getattr("base") else {
        return Ok(None);
    };
    let Ok(owner) = base.cast::<ArrayOwner>() else {
        return Ok(None);
    };
    Ok(owner.get().handle_if_whole(a).cloned())
}

fn is_numpy_scalar(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    static GENERIC: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let generic = GENERIC.import(obj.py(), "numpy", "generic")?;
    obj.is_instance(generic)
}

fn ordered_dict(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static ORDERED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    ORDERED.import(py, "collections", "OrderedDict")
}

/// A NumPy scalar (`np.int32(5)`) as the value of the same type.
fn numpy_scalar(obj: &Bound<'_, PyAny>) -> PyResult<Val> {
    let py = obj.py();
    let a = py.import("numpy")?.call_method1("asarray", (obj,))?;
    macro_rules! as_val {
        ($($t:ty => $v:expr),*) => {$(
            if let Ok(x) = a.cast::<PyArray0<$t>>() {
                let x: $t = x.readonly().as_array()[()];
                return Ok($v(x));
            }
        )*};
    }
    as_val!(
        bool => Val::Bool, i8 => Val::I8, u8 => Val::U8, i16 => Val::I16, u16 => Val::U16,
        i32 => Val::I32, u32 => Val::U32, i64 => Val::I64, u64 => Val::U64, f32 => Val::F32,
        f64 => Val::F64, Complex32 => Val::C32, Complex64 => Val::C64
    );
    // Other NumPy scalars (float16, longdouble, str_, datetime64) as their Python value.
    let item = obj.call_method0("item")?;
    if is_numpy_scalar(&item)? {
        return Err(PyTypeError::new_err(format!(
            "cannot put NumPy scalar of dtype {} in the pool",
            a.getattr("dtype")?
        )));
    }
    key(&item)
}
