//! The `shmval` Python package's native module, `shmval._shmval`: pools, pipes and values
//! in shared memory, from Python. The package's `__init__.py` re-exports it.

mod errors;
mod from_pool;
mod into_pool;
mod locked;
mod pipe;
mod pool;
mod sides;
mod views;
mod wait;

use pyo3::prelude::*;

#[pymodule]
fn _shmval(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<sides::ShmMainObj>()?;
    m.add_class::<sides::ServerSideObj>()?;
    m.add_class::<sides::ClientSideObj>()?;
    m.add_class::<pipe::PipeObj>()?;
    m.add_class::<pool::PoolObj>()?;
    m.add_class::<pool::NamesObj>()?;
    m.add_class::<views::TabView>()?;
    m.add_class::<views::SeqView>()?;
    m.add_class::<views::ArrayOwner>()?;
    m.add_class::<locked::Locked>()?;
    m.add_class::<locked::LockedTable>()?;
    m.add("Error", py.get_type::<errors::Error>())?;
    m.add("Timeout", py.get_type::<errors::Timeout>())?;
    m.add("Empty", py.get_type::<errors::Empty>())?;
    m.add("Full", py.get_type::<errors::Full>())?;
    m.add("Closed", py.get_type::<errors::Closed>())?;
    m.add("Disconnected", py.get_type::<errors::Disconnected>())?;
    m.add("Broken", py.get_type::<errors::Broken>())?;
    m.add("OutOfMemory", py.get_type::<errors::OutOfMemory>())?;
    m.add("Corrupted", py.get_type::<errors::Corrupted>())?;
    m.add("Exists", py.get_type::<errors::Exists>())?;
    Ok(())
}
