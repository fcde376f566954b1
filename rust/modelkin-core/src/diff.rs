//! Comparing two checkpoints tensor by tensor (matched by name), and summarising one checkpoint.

use crate::checkpoint::{Checkpoint, Tensor};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernel::{PairStats, ValueStats};
use crate::stream::{run, Job, Options, Progress, Source, Summary};

/// A tensor and its statistics.
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
}

/// Two same-named, same-shaped tensors and the statistics of their difference.
#[derive(Debug, Clone)]
pub struct PairRecord {
    /// Tensor name.
    pub name: String,
    /// Shape (the same on both sides).
    pub shape: Vec<u64>,
    /// Element type in A.
    pub dtype_a: DType,
    /// Element type in B.
    pub dtype_b: DType,
    /// Statistics of a, b and d = b − a.
    pub stats: PairStats,
    /// Differences at deterministic stratified positions (NaN where a or b is not finite).
    pub sample: Vec<f64>,
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

fn source<'a>(ck: &'a Checkpoint, t: &'a Tensor) -> Source<'a> {
    Source {
        bytes: ck.data(t),
        dtype: t.info.dtype,
        file: Some((&ck.files[t.file], t.info.offset)),
    }
}

fn record(t: &Tensor, stats: ValueStats) -> TensorRecord {
    TensorRecord {
        name: t.info.name.clone(),
        dtype: t.info.dtype,
        shape: t.info.shape.clone(),
        stats,
    }
}

fn single(s: Summary) -> ValueStats {
    match s {
        Summary::Single(v) => v,
        Summary::Pair(p, _) => p.a,
    }
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
        .map(|(ta, tb)| Job::Pair(source(a, ta), source(b, tb)))
        .collect();
    jobs.extend(only_a.iter().map(|t| Job::Single(source(a, t))));
    jobs.extend(only_b.iter().map(|t| Job::Single(source(b, t))));
    for (ta, tb) in &mismatched {
        jobs.push(Job::Single(source(a, ta)));
        jobs.push(Job::Single(source(b, tb)));
    }
    let mut results = run(&jobs, opts, progress)?.into_iter();

    let pairs: Vec<PairRecord> = pairs
        .iter()
        .map(|(ta, tb)| {
            let (stats, sample) = match results.next() {
                Some(Summary::Pair(p, s)) => (p, s),
                _ => unreachable!("one pair summary per pair job"),
            };
            PairRecord {
                name: ta.info.name.clone(),
                shape: ta.info.shape.clone(),
                dtype_a: ta.info.dtype,
                dtype_b: tb.info.dtype,
                stats,
                sample,
            }
        })
        .collect();
    let mut take = |t: &Tensor| record(t, results.next().map(single).unwrap_or_default());
    let only_a = only_a.into_iter().map(&mut take).collect();
    let only_b = only_b.into_iter().map(&mut take).collect();
    let shape_mismatch = mismatched
        .into_iter()
        .map(|(ta, tb)| Mismatch {
            a: take(ta),
            b: take(tb),
        })
        .collect();
    let total = pairs
        .iter()
        .fold(PairStats::default(), |acc, p| acc.merge(&p.stats));
    Ok(DiffReport {
        pairs,
        total,
        only_a,
        only_b,
        shape_mismatch,
    })
}

/// Streams one checkpoint and returns the statistics of every tensor.
pub fn inspect(ck: &Checkpoint, opts: &Options, progress: &Progress) -> Result<Vec<TensorRecord>> {
    let jobs: Vec<Job> = ck
        .tensors
        .iter()
        .map(|t| Job::Single(source(ck, t)))
        .collect();
    let results = run(&jobs, opts, progress)?;
    Ok(ck
        .tensors
        .iter()
        .zip(results)
        .map(|(t, s)| record(t, single(s)))
        .collect())
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
        .map(|t| Job::Single(source(a, t)))
        .chain(b.tensors.iter().map(|t| Job::Single(source(b, t))))
        .collect();
    crate::stream::read_only(&jobs, opts, progress)
}
