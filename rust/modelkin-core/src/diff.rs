//! Comparing two checkpoints tensor by tensor (matched by name, or along an explicit list of
//! pairs), and summarising one checkpoint.

use crate::checkpoint::{Checkpoint, Tensor};
use crate::dtype::DType;
use crate::engine::{run, Job, Margins, Options, Progress, Summary};
use crate::error::{Error, Result};
use crate::stats::summary::{PairStats, ValueStats};
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

/// One pair to compare: a tensor of A, a tensor of B, and optionally a block of rows of each.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PairSpec {
    /// Tensor name in A.
    pub a: String,
    /// Tensor name in B.
    pub b: String,
    /// Compare only `rows` rows (both tensors must have rows of equal length), starting at row
    /// `first_a` of A and `first_b` of B; `None` compares the whole tensors, which must hold the
    /// same number of elements.
    pub rows: Option<u64>,
    /// First row of A compared when `rows` is set.
    pub first_a: u64,
    /// First row of B compared when `rows` is set.
    pub first_b: u64,
    /// B holds A's matrix transposed (A is [R, C], B is [C, R]): compare a[i, j] with b[j, i].
    pub transpose_b: bool,
}

fn record(t: &Tensor, summary: Option<Summary>) -> TensorRecord {
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

fn pair_record(ta: &Tensor, tb: &Tensor, shape: Vec<u64>, summary: Option<Summary>) -> PairRecord {
    let (stats, sample_a, sample_b, margins) = match summary {
        Some(Summary::Pair {
            stats,
            sample_a,
            sample_b,
            margins,
        }) => (stats, sample_a, sample_b, margins),
        _ => (PairStats::default(), Vec::new(), Vec::new(), None),
    };
    PairRecord {
        name: ta.info.name.clone(),
        name_b: tb.info.name.clone(),
        shape,
        dtype_a: ta.info.dtype,
        dtype_b: tb.info.dtype,
        stats,
        sample_a,
        sample_b,
        margins,
    }
}

fn total(pairs: &[PairRecord]) -> PairStats {
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
        .map(|(ta, tb)| pair_record(ta, tb, ta.info.shape.clone(), results.next()))
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

/// What [`diff_pairs`] returns.
#[derive(Debug, Clone)]
pub struct PairsReport {
    /// One record per requested pair, in the order given.
    pub pairs: Vec<PairRecord>,
    /// The pairs' statistics merged in that order.
    pub total: PairStats,
    /// Statistics of the requested single tensors of A.
    pub singles_a: Vec<TensorRecord>,
    /// Statistics of the requested single tensors of B.
    pub singles_b: Vec<TensorRecord>,
}

/// Streams the listed pairs, and the listed single tensors of each side, in one pass.
pub fn diff_pairs<'a>(
    a: &'a Checkpoint,
    b: &'a Checkpoint,
    specs: &[PairSpec],
    singles_a: &[String],
    singles_b: &[String],
    opts: &Options,
    progress: &Progress,
) -> Result<PairsReport> {
    let mut planned = Vec::with_capacity(specs.len());
    for spec in specs {
        let (ta, tb) = (find(a, &spec.a)?, find(b, &spec.b)?);
        let (sa, sb) = (Source::of(a, ta), Source::of(b, tb));
        let (na, nb) = (ta.info.numel(), tb.info.numel());
        let planned_pair = match spec.rows {
            None if spec.transpose_b => {
                let (shape_a, shape_b) = (&ta.info.shape, &tb.info.shape);
                if shape_a.len() != 2
                    || shape_b.len() != 2
                    || shape_a[0] != shape_b[1]
                    || shape_a[1] != shape_b[0]
                {
                    return Err(Error::InvalidArgument(format!(
                        "'{}' {shape_a:?} is not the transpose of '{}' {shape_b:?}",
                        spec.a, spec.b
                    )));
                }
                let sb = Source {
                    row_len: shape_a[1],
                    transposed: true,
                    ..sb
                };
                (sa, sb, shape_a.clone())
            }
            None if na == nb => (sa, sb, ta.info.shape.clone()),
            None => {
                return Err(Error::InvalidArgument(format!(
                    "tensors '{}' ({na} elements) and '{}' ({nb} elements) differ in size",
                    spec.a, spec.b
                )))
            }
            Some(rows) => {
                let (shape_a, shape_b) = (&ta.info.shape, &tb.info.shape);
                let fits = |shape: &[u64], first: u64| {
                    shape
                        .first()
                        .is_some_and(|&r| first.checked_add(rows).is_some_and(|end| end <= r))
                };
                if shape_a.len() < 2
                    || shape_a[1..] != shape_b[1..]
                    || !fits(shape_a, spec.first_a)
                    || !fits(shape_b, spec.first_b)
                {
                    return Err(Error::InvalidArgument(format!(
                        "cannot compare rows {}..+{rows} of '{}' {shape_a:?} with rows {}..+{rows} of '{}' {shape_b:?}",
                        spec.first_a, spec.a, spec.first_b, spec.b
                    )));
                }
                let row_len: u64 = shape_a[1..].iter().product();
                let cut = |s: Source<'a>, first: u64, name: &str| -> Result<Source<'a>> {
                    // Rows in llama.cpp's Q/K order are regrouped within heads: only whole heads
                    // can be cut out.
                    let whole_heads = s.head_pairs.is_none_or(|hp| {
                        first.is_multiple_of(hp.group) && rows.is_multiple_of(hp.group)
                    });
                    let bytes = |n: u64| n.checked_mul(row_len).and_then(|e| s.dtype.nbytes(e));
                    let (Some(start), Some(len), true) = (bytes(first), bytes(rows), whole_heads)
                    else {
                        return Err(Error::InvalidArgument(format!(
                            "cannot cut rows {first}..+{rows} out of '{name}' ({}, rows stored by heads: {})",
                            s.dtype,
                            s.head_pairs.is_some()
                        )));
                    };
                    Ok(Source {
                        bytes: &s.bytes[start as usize..(start + len) as usize],
                        file: s.file.map(|(f, off)| (f, off + start)),
                        ..s
                    })
                };
                let mut shape = shape_a.clone();
                shape[0] = rows;
                (
                    cut(sa, spec.first_a, &spec.a)?,
                    cut(sb, spec.first_b, &spec.b)?,
                    shape,
                )
            }
        };
        planned.push((ta, tb, planned_pair));
    }
    let ones_a = singles_a
        .iter()
        .map(|n| find(a, n))
        .collect::<Result<Vec<_>>>()?;
    let ones_b = singles_b
        .iter()
        .map(|n| find(b, n))
        .collect::<Result<Vec<_>>>()?;
    let mut jobs: Vec<Job> = planned
        .iter()
        .map(|(_, _, (sa, sb, _))| Job::Pair(*sa, *sb))
        .collect();
    jobs.extend(ones_a.iter().map(|t| Job::Single(Source::of(a, t))));
    jobs.extend(ones_b.iter().map(|t| Job::Single(Source::of(b, t))));
    let mut results = run(&jobs, opts, progress)?.into_iter();
    let pairs: Vec<PairRecord> = planned
        .into_iter()
        .map(|(ta, tb, (_, _, shape))| pair_record(ta, tb, shape, results.next()))
        .collect();
    let singles_a = ones_a
        .into_iter()
        .map(|t| record(t, results.next()))
        .collect();
    let singles_b = ones_b
        .into_iter()
        .map(|t| record(t, results.next()))
        .collect();
    Ok(PairsReport {
        total: total(&pairs),
        pairs,
        singles_a,
        singles_b,
    })
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

pub(crate) fn find<'a>(ck: &'a Checkpoint, name: &str) -> Result<&'a Tensor> {
    ck.get(name)
        .ok_or_else(|| Error::InvalidArgument(format!("{}: no tensor '{name}'", ck.path.display())))
}

/// Streams one checkpoint and returns the statistics (and sampled values) of every tensor.
pub fn inspect(ck: &Checkpoint, opts: &Options, progress: &Progress) -> Result<Vec<TensorRecord>> {
    per_tensor(ck, Job::Single, opts, progress)
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

/// The leading values of a matrix along both axes: the first `k` columns of every row (rows × k,
/// row-major) and the first `k` rows (k × columns). Hidden units that a derived model permuted are
/// rows of one matrix and columns of the next; these are what matching them needs.
#[derive(Debug, Clone)]
pub struct Heads {
    /// Tensor name.
    pub name: String,
    /// Rows of the matrix (its first dimension).
    pub rows: u64,
    /// Columns (its trailing dimensions flattened).
    pub cols: u64,
    /// Columns actually taken from each row (≤ k).
    pub k_cols: u64,
    /// Rows actually taken (≤ k).
    pub k_rows: u64,
    /// `rows × k_cols` values.
    pub row_heads: Vec<f64>,
    /// `k_rows × cols` values.
    pub col_heads: Vec<f64>,
}

/// Most values [`heads`] reads along either axis of one matrix (bounds its memory).
pub const MAX_HEADS: u64 = 1 << 28;

/// Reads [`Heads`] of the named matrices (tensors of fewer than two dimensions are an error).
pub fn heads(ck: &Checkpoint, names: &[String], k: u64, opts: &Options) -> Result<Vec<Heads>> {
    use rayon::prelude::*;
    let tensors = names
        .iter()
        .map(|n| find(ck, n))
        .collect::<Result<Vec<_>>>()?;
    for t in &tensors {
        let (rows, cols) = (t.info.shape.first().copied().unwrap_or(0), t.info.numel());
        if rows.saturating_mul(k) > MAX_HEADS || k.saturating_mul(cols / rows.max(1)) > MAX_HEADS {
            return Err(Error::InvalidArgument(format!(
                "tensor '{}' of shape {:?} is too large to read the leading weights of",
                t.info.name, t.info.shape
            )));
        }
        if t.info.shape.len() < 2 {
            return Err(Error::InvalidArgument(format!(
                "tensor '{}' of shape {:?} is not a matrix",
                t.info.name, t.info.shape
            )));
        }
    }
    let pool = crate::engine::pool(crate::engine::resolve_threads(opts.threads)?)?;
    Ok(pool.install(|| {
        tensors
            .par_iter()
            .map(|t| {
                let src = Source::of(ck, t);
                let rows = t.info.shape[0];
                let cols: u64 = t.info.shape[1..].iter().product();
                let (k_cols, k_rows) = (k.min(cols), k.min(rows));
                let mut row_heads = vec![0.0; (rows * k_cols) as usize];
                if k_cols > 0 {
                    for (r, out) in row_heads.chunks_mut(k_cols as usize).enumerate() {
                        src.decode(r as u64 * cols, out);
                    }
                }
                let mut col_heads = vec![0.0; (k_rows * cols) as usize];
                src.decode(0, &mut col_heads);
                Heads {
                    name: t.info.name.clone(),
                    rows,
                    cols,
                    k_cols,
                    k_rows,
                    row_heads,
                    col_heads,
                }
            })
            .collect()
    }))
}
