//! Core errors as Python exceptions: a class of `modelkin.errors`, or a built-in one where Python
//! has a fitting one. The one place where errors cross the seam.

use modelkin_core::Error;
use pyo3::exceptions::{PyFileNotFoundError, PyKeyboardInterrupt, PyOSError, PyValueError};
use pyo3::prelude::*;

/// Builds the Python exception for a core error: a class of `modelkin.errors`, or a built-in one
/// where Python has a fitting one (`FileNotFoundError`, `ValueError`).
pub(crate) fn to_pyerr(py: Python<'_>, e: Error) -> PyErr {
    let msg = e.to_string();
    let class = match &e {
        Error::NotFound { path } => {
            return PyFileNotFoundError::new_err((
                2,
                "No such file or directory",
                path.display().to_string(),
            ))
        }
        Error::Io { .. } => return PyOSError::new_err(msg),
        Error::InvalidArgument(_) => return PyValueError::new_err(msg),
        Error::Cancelled => return PyKeyboardInterrupt::new_err(msg),
        Error::UnsupportedFormat { .. } => "UnsupportedFormatError",
        Error::InvalidHeader { .. } | Error::InvalidFile { .. } | Error::InvalidTensor { .. } => {
            "InvalidCheckpointError"
        }
        Error::UnknownDtype { .. } => "UnknownDtypeError",
        Error::InvalidIndex { .. } => "InvalidIndexError",
        Error::MissingShard { .. } => "MissingShardError",
        Error::Changed { .. } => "CheckpointChangedError",
    };
    let class = py.import("modelkin.errors").and_then(|m| m.getattr(class));
    let made = match &e {
        // Also a FileNotFoundError: give it the errno and file name OSError carries.
        Error::MissingShard { path, .. } => {
            class.and_then(|c| c.call1((2, msg, path.display().to_string())))
        }
        _ => class.and_then(|c| c.call1((msg,))),
    };
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(err) => err,
    }
}

/// A `ModelkinError` for a panic in the core (its message asks to report it).
pub(crate) fn internal_error(py: Python<'_>, payload: Box<dyn std::any::Any + Send>) -> PyErr {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    let msg = format!("internal error in modelkin (please report it): {what}");
    match py
        .import("modelkin.errors")
        .and_then(|m| m.getattr("ModelkinError"))
        .and_then(|c| c.call1((msg,)))
    {
        Ok(exc) => PyErr::from_value(exc),
        Err(err) => err,
    }
}
