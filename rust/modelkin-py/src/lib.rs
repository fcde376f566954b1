//! The Python binding of modelkin-core: converts arguments, releases the GIL around every long
//! call, maps errors to the `modelkin.errors` hierarchy. No statistics live here.
//!
//! [`functions`] holds the functions (extract → [`enter`] → `modelkin_core::ops` → [`convert`]),
//! [`errors`] the mapping of core errors to Python exceptions.

mod convert;
mod enter;
mod errors;
mod functions;

use modelkin_core::DType;
use pyo3::prelude::*;

/// The native part of modelkin.
#[pymodule]
fn _modelkin(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "DTYPES",
        DType::ALL.iter().map(|d| d.name()).collect::<Vec<_>>(),
    )?;
    m.add_function(wrap_pyfunction!(functions::open_checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(functions::gguf_metadata, m)?)?;
    m.add_function(wrap_pyfunction!(functions::inspect, m)?)?;
    m.add_function(wrap_pyfunction!(functions::diff, m)?)?;
    m.add_function(wrap_pyfunction!(functions::diff_pairs, m)?)?;
    m.add_function(wrap_pyfunction!(functions::sample_values, m)?)?;
    m.add_function(wrap_pyfunction!(functions::heads, m)?)?;
    m.add_function(wrap_pyfunction!(functions::fingerprint, m)?)?;
    m.add_function(wrap_pyfunction!(functions::columns, m)?)?;
    m.add_function(wrap_pyfunction!(functions::pair_stats, m)?)?;
    m.add_function(wrap_pyfunction!(functions::read_pair, m)?)?;
    m.add_function(wrap_pyfunction!(functions::default_threads, m)?)?;
    Ok(())
}
