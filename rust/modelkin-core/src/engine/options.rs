//! The knobs of a run and their defaults (the single source of them), the progress counters the
//! caller polls, and the thread count and pool of a run.

use std::sync::atomic::{AtomicBool, AtomicU64};

use crate::error::{Error, Result};

/// Default elements per work item: large enough to amortise scheduling, small enough to balance.
pub const DEFAULT_CHUNK: u64 = 1 << 20;

/// Default number of values sampled per tensor, for histograms, distribution tests and alignment.
pub const DEFAULT_SAMPLE: usize = 4096;

/// Quantiles kept of a matrix's sorted row norms and of its sorted column norms by default.
pub const DEFAULT_QUANTILES: usize = 128;

/// Environment variable that sets the default thread count.
pub const THREADS_ENV: &str = "MODELKIN_NUM_THREADS";

/// Shared progress counters: workers add to them, the caller polls them and may ask to stop.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes of tensor data processed so far.
    pub done: AtomicU64,
    /// Bytes of tensor data to process in all.
    pub total: AtomicU64,
    /// Set by the caller to stop the run; workers then return [`Error::Cancelled`].
    pub cancel: AtomicBool,
}

/// Knobs of a streaming run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Worker threads; `None` means `MODELKIN_NUM_THREADS`, else the number of cores.
    pub threads: Option<usize>,
    /// Values sampled per tensor (deterministic, stratified positions that depend only on the
    /// tensor's element count, so equal-sized tensors of two models are sampled alike).
    pub sample_size: usize,
    /// Elements per work item.
    pub chunk: u64,
    /// Also sum the rows and columns of matrix pairs (see [`super::Margins`]).
    pub margins: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: None,
            sample_size: DEFAULT_SAMPLE,
            chunk: DEFAULT_CHUNK,
            margins: false,
        }
    }
}

/// The thread count a run uses: the argument, else `MODELKIN_NUM_THREADS`, else the core count.
pub fn resolve_threads(threads: Option<usize>) -> Result<usize> {
    if let Some(t) = threads {
        if t == 0 {
            return Err(Error::InvalidArgument("threads must be at least 1".into()));
        }
        return Ok(t);
    }
    if let Ok(v) = std::env::var(THREADS_ENV) {
        if !v.trim().is_empty() {
            return match v.trim().parse::<usize>() {
                Ok(t) if t > 0 => Ok(t),
                _ => Err(Error::InvalidArgument(format!(
                    "{THREADS_ENV} must be a positive integer, got '{v}'"
                ))),
            };
        }
    }
    Ok(std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1))
}

/// The thread pool of one run: `threads` workers named `modelkin-N`.
pub(crate) fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("modelkin-{i}"))
        .build()
        .map_err(|e| Error::InvalidArgument(format!("cannot start {threads} worker threads: {e}")))
}
