//! The one helper every long call goes through: the work runs on a worker thread with the GIL
//! released, while this thread handles Ctrl-C and progress callbacks; panics become exceptions.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use modelkin_core::ops::Progress;
use modelkin_core::Error;
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;

use crate::errors::{internal_error, to_pyerr};

/// Runs `work` on a worker thread with the GIL released. Meanwhile this thread wakes every 100 ms
/// to let Python handle Ctrl-C and to call `progress(done_bytes, total_bytes)`; either one failing
/// cancels the run. A panic in the core becomes a `ModelkinError`, never a crash.
pub(crate) fn enter<T: Send>(
    py: Python<'_>,
    progress: Option<&Bound<'_, PyAny>>,
    work: impl FnOnce(&Progress) -> modelkin_core::Result<T> + Send,
) -> PyResult<T> {
    let state = Progress::default();
    let finished = AtomicBool::new(false);
    let mut interrupt: Option<PyErr> = None;
    let caller = std::thread::current();
    let outcome = std::thread::scope(|s| {
        let handle = s.spawn(|| {
            let r = catch_unwind(AssertUnwindSafe(|| work(&state)));
            finished.store(true, Ordering::Release);
            caller.unpark();
            r
        });
        let report = |interrupt: &mut Option<PyErr>| {
            if let Some(cb) = progress {
                let done = state.done.load(Ordering::Relaxed);
                let total = state.total.load(Ordering::Relaxed);
                if let Err(e) = cb.call1((done, total)) {
                    state.cancel.store(true, Ordering::Relaxed);
                    interrupt.get_or_insert(e);
                }
            }
        };
        while !finished.load(Ordering::Acquire) {
            py.detach(|| {
                if !finished.load(Ordering::Acquire) {
                    std::thread::park_timeout(Duration::from_millis(100));
                }
            });
            if let Err(e) = py.check_signals() {
                state.cancel.store(true, Ordering::Relaxed);
                interrupt.get_or_insert(e);
            }
            if !finished.load(Ordering::Acquire) {
                report(&mut interrupt);
            }
        }
        let joined = handle.join();
        if interrupt.is_none() {
            report(&mut interrupt);
        }
        joined
    });
    match outcome {
        Ok(Ok(Ok(value))) => match interrupt {
            Some(e) => Err(e),
            None => Ok(value),
        },
        Ok(Ok(Err(Error::Cancelled))) => {
            Err(interrupt.unwrap_or_else(|| PyKeyboardInterrupt::new_err("cancelled")))
        }
        Ok(Ok(Err(e))) => Err(to_pyerr(py, e)),
        Ok(Err(panic)) | Err(panic) => Err(internal_error(py, panic)),
    }
}
