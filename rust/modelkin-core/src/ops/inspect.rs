//! One checkpoint, tensor by tensor: the statistics and sampled values of every tensor
//! ([`inspect`]), or only the sampled values ([`sample_values`]).

use crate::checkpoint::{Checkpoint, Tensor};
use crate::dtype::DType;
use crate::engine::{run, Job, Options, Progress, Summary};
use crate::error::Result;
use crate::stats::summary::ValueStats;
use crate::tensor::Source;

/// A tensor, its statistics and its sampled values.
#[derive(Debug, Clone)]
pub struct TensorRecord {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<u64>,
    /// Statistics of its values.
    pub stats: ValueStats,
    /// Values at deterministic stratified positions that depend only on the element count.
    pub sample: Vec<f64>,
}

pub(super) fn record(t: &Tensor, summary: Option<Summary>) -> TensorRecord {
    let (stats, sample) = match summary {
        Some(Summary::Single { stats, sample }) => (stats, sample),
        _ => (ValueStats::default(), Vec::new()),
    };
    TensorRecord {
        name: t.info.name.clone(),
        dtype: t.info.dtype,
        shape: t.info.shape.clone(),
        stats,
        sample,
    }
}

/// Streams one checkpoint and returns the statistics (and sampled values) of every tensor.
pub fn inspect(ck: &Checkpoint, opts: &Options, progress: &Progress) -> Result<Vec<TensorRecord>> {
    per_tensor(ck, Job::Single, opts, progress)
}

/// Reads only the values at the sample positions of every tensor (no statistics): a sketch for
/// aligning tensors by content, at a small fraction of the cost of a full pass.
pub fn sample_values(
    ck: &Checkpoint,
    opts: &Options,
    progress: &Progress,
) -> Result<Vec<TensorRecord>> {
    per_tensor(ck, Job::Sample, opts, progress)
}

/// Runs one job per tensor of `ck` and pairs each result with its tensor.
fn per_tensor<'a>(
    ck: &'a Checkpoint,
    job: impl Fn(Source<'a>) -> Job<'a>,
    opts: &Options,
    progress: &Progress,
) -> Result<Vec<TensorRecord>> {
    let jobs: Vec<Job> = ck.tensors.iter().map(|t| job(Source::of(ck, t))).collect();
    let results = run(&jobs, opts, progress)?;
    Ok(ck
        .tensors
        .iter()
        .zip(results)
        .map(|(t, s)| record(t, Some(s)))
        .collect())
}
