//! Two checkpoints compared tensor by tensor, matched by name ([`diff`]), and the read-only floor
//! of that pass ([`read_pair`]).

use super::inspect::{record, TensorRecord};
use crate::checkpoint::{Checkpoint, Tensor};
use crate::dtype::DType;
use crate::engine::{run, Job, Margins, Options, Progress, Summary};
use crate::error::Result;
use crate::stats::sample::sample_positions;
use crate::stats::summary::PairStats;
use crate::tensor::Source;

/// Two tensors compared element by element, and the statistics of their difference.
#[derive(Debug, Clone)]
pub struct PairRecord {
    /// Tensor name in A.
    pub name: String,
    /// Tensor name in B.
    pub name_b: String,
    /// Shape of the compared part (A's shape, or its leading rows).
    pub shape: Vec<u64>,
    /// Element type in A.
    pub dtype_a: DType,
    /// Element type in B.
    pub dtype_b: DType,
    /// Statistics of a, b and d = b − a.
    pub stats: PairStats,
    /// Values of a at deterministic stratified positions.
    pub sample_a: Vec<f64>,
    /// Values of b at the same positions.
    pub sample_b: Vec<f64>,
    /// The sample positions (element indices of the compared part), when the samples are the
    /// ones [`sample_positions`] gives for its shape and [`Options::sample_size`].
    pub positions: Option<Vec<u64>>,
    /// Row and column sums of both tensors, when [`Options::margins`] asked for them.
    pub margins: Option<Margins>,
}

/// Same name, different shapes: listed with each side's own statistics.
#[derive(Debug, Clone)]
pub struct Mismatch {
    /// The tensor in A.
    pub a: TensorRecord,
    /// The tensor in B.
    pub b: TensorRecord,
}

/// The outcome of [`diff`].
#[derive(Debug, Clone)]
pub struct DiffReport {
    /// Tensor pairs that could be compared, by name.
    pub pairs: Vec<PairRecord>,
    /// Tensors only in A.
    pub only_a: Vec<TensorRecord>,
    /// Tensors only in B.
    pub only_b: Vec<TensorRecord>,
    /// Same name, different shape.
    pub shape_mismatch: Vec<Mismatch>,
    /// All pairs merged in name order: the model-level statistics of a, b and d.
    pub total: PairStats,
}

pub(super) fn pair_record(
    ta: &Tensor,
    tb: &Tensor,
    shape: Vec<u64>,
    summary: Option<Summary>,
    sample_size: usize,
) -> PairRecord {
    let (stats, sample_a, sample_b, margins) = match summary {
        Some(Summary::Pair {
            stats,
            sample_a,
            sample_b,
            margins,
        }) => (stats, sample_a, sample_b, margins),
        _ => (PairStats::default(), Vec::new(), Vec::new(), None),
    };
    let numel: u64 = shape.iter().product();
    let positions = sample_positions(numel, sample_size);
    let positions = (positions.len() == sample_a.len()).then_some(positions);
    PairRecord {
        name: ta.info.name.clone(),
        name_b: tb.info.name.clone(),
        shape,
        dtype_a: ta.info.dtype,
        dtype_b: tb.info.dtype,
        stats,
        sample_a,
        sample_b,
        positions,
        margins,
    }
}

pub(super) fn total(pairs: &[PairRecord]) -> PairStats {
    pairs
        .iter()
        .fold(PairStats::default(), |acc, p| acc.merge(&p.stats))
}

/// Streams both checkpoints once and compares every same-named tensor pair.
pub fn diff(
    a: &Checkpoint,
    b: &Checkpoint,
    opts: &Options,
    progress: &Progress,
) -> Result<DiffReport> {
    let mut pairs = Vec::new();
    let mut mismatched = Vec::new();
    let mut only_a = Vec::new();
    for ta in &a.tensors {
        match b.get(&ta.info.name) {
            Some(tb) if tb.info.shape == ta.info.shape => pairs.push((ta, tb)),
            Some(tb) => mismatched.push((ta, tb)),
            None => only_a.push(ta),
        }
    }
    let only_b: Vec<&Tensor> = b
        .tensors
        .iter()
        .filter(|t| a.get(&t.info.name).is_none())
        .collect();

    let mut jobs: Vec<Job> = pairs
        .iter()
        .map(|(ta, tb)| Job::Pair(Source::of(a, ta), Source::of(b, tb)))
        .collect();
    jobs.extend(only_a.iter().map(|t| Job::Single(Source::of(a, t))));
    jobs.extend(only_b.iter().map(|t| Job::Single(Source::of(b, t))));
    for (ta, tb) in &mismatched {
        jobs.push(Job::Single(Source::of(a, ta)));
        jobs.push(Job::Single(Source::of(b, tb)));
    }
    let mut results = run(&jobs, opts, progress)?.into_iter();

    let pairs: Vec<PairRecord> = pairs
        .iter()
        .map(|(ta, tb)| {
            pair_record(
                ta,
                tb,
                ta.info.shape.clone(),
                results.next(),
                opts.sample_size,
            )
        })
        .collect();
    let mut take = |t: &Tensor| record(t, results.next());
    let only_a = only_a.into_iter().map(&mut take).collect();
    let only_b = only_b.into_iter().map(&mut take).collect();
    let shape_mismatch = mismatched
        .into_iter()
        .map(|(ta, tb)| Mismatch {
            a: take(ta),
            b: take(tb),
        })
        .collect();
    Ok(DiffReport {
        total: total(&pairs),
        pairs,
        only_a,
        only_b,
        shape_mismatch,
    })
}

/// Reads every tensor byte of both checkpoints without computing statistics (the speed floor).
pub fn read_pair(
    a: &Checkpoint,
    b: &Checkpoint,
    opts: &Options,
    progress: &Progress,
) -> Result<u64> {
    let jobs: Vec<Job> = a
        .tensors
        .iter()
        .map(|t| Job::Single(Source::of(a, t)))
        .chain(b.tensors.iter().map(|t| Job::Single(Source::of(b, t))))
        .collect();
    crate::engine::read_only(&jobs, opts, progress)
}
