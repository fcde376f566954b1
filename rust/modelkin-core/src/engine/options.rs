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

/// Most worker threads a run starts. Each is an OS thread with its own stack and its own partial
/// summaries, and the work is cut into chunks of about a million elements, so past a few times the
/// core count more threads only cost memory and start-up time; 10 000 of them left a run hanging.
/// 1024 is well above the core count of any machine modelkin runs on today, so no user meets it.
pub const MAX_THREADS: usize = 1024;

/// Most values sampled per tensor: 256 × the default. Each sampled value is kept (and compared)
/// per tensor, so the sample stays a sample, not a second copy of the model.
pub const MAX_SAMPLE: usize = 1 << 20;

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

impl Options {
    /// The thread count of the run (see [`resolve_threads`]), once every knob is known to be in
    /// range: the one check the analyses make before they start.
    pub fn resolve(&self) -> Result<usize> {
        check_sample_size(self.sample_size)?;
        resolve_threads(self.threads)
    }
}

/// `got` as a message shows it: a value saturated at the largest `usize` (a caller's integer too
/// large for one) is "2^64 or more", not a number the caller never wrote.
fn shown(got: usize) -> String {
    if got == usize::MAX {
        format!("{} or more", usize::MAX)
    } else {
        got.to_string()
    }
}

/// Fails unless `threads` lies in 1..=[`MAX_THREADS`].
pub fn check_threads(threads: usize) -> Result<usize> {
    if threads == 0 {
        return Err(Error::InvalidArgument("threads must be at least 1".into()));
    }
    if threads > MAX_THREADS {
        return Err(Error::InvalidArgument(format!(
            "threads must be at most {MAX_THREADS}, got {}",
            shown(threads)
        )));
    }
    Ok(threads)
}

/// Fails unless `sample_size` is at most [`MAX_SAMPLE`].
pub fn check_sample_size(sample_size: usize) -> Result<usize> {
    if sample_size > MAX_SAMPLE {
        return Err(Error::InvalidArgument(format!(
            "sample size must be at most {MAX_SAMPLE} values per tensor, got {}",
            shown(sample_size)
        )));
    }
    Ok(sample_size)
}

/// The thread count a run uses: the argument, else `MODELKIN_NUM_THREADS`, else the core count
/// (at most [`MAX_THREADS`]).
pub fn resolve_threads(threads: Option<usize>) -> Result<usize> {
    if let Some(t) = threads {
        return check_threads(t);
    }
    if let Ok(v) = std::env::var(THREADS_ENV) {
        if !v.trim().is_empty() {
            return match v.trim().parse::<usize>() {
                Ok(t) if t > 0 => check_threads(t).map_err(|_| {
                    Error::InvalidArgument(format!(
                        "{THREADS_ENV} must be at most {MAX_THREADS}, got '{v}'"
                    ))
                }),
                _ => Err(Error::InvalidArgument(format!(
                    "{THREADS_ENV} must be a positive integer, got '{v}'"
                ))),
            };
        }
    }
    Ok(std::thread::available_parallelism()
        .map(|n| n.get().min(MAX_THREADS))
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
