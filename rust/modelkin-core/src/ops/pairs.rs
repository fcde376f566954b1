//! Two checkpoints compared along an explicit list of pairs, whole tensors or blocks of rows,
//! transposed or not ([`diff_pairs`]).

use super::diff::{pair_record, total, PairRecord};
use super::inspect::{record, TensorRecord};
use crate::checkpoint::Checkpoint;
use crate::dtype::DType;
use crate::engine::{run, Job, Options, Progress, Summary};
use crate::error::{Error, Result};
use crate::stats::summary::PairStats;
use crate::tensor::Source;

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
        let (ta, tb) = (a.find(&spec.a)?, b.find(&spec.b)?);
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
        .map(|n| a.find(n))
        .collect::<Result<Vec<_>>>()?;
    let ones_b = singles_b
        .iter()
        .map(|n| b.find(n))
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
        .map(|(ta, tb, (_, _, shape))| pair_record(ta, tb, shape, results.next(), opts.sample_size))
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

/// What [`pair_stats`] returns: the statistics of two buffers and their values at the sample
/// positions.
#[derive(Debug, Clone)]
pub struct BufferPair {
    /// Statistics of a, b and d = b − a.
    pub stats: PairStats,
    /// Values of a at the sample positions.
    pub sample_a: Vec<f64>,
    /// Values of b at the same positions.
    pub sample_b: Vec<f64>,
}

/// Pair statistics of two byte buffers holding `a_dtype` and `b_dtype` elements, which must hold
/// whole elements and as many of them.
pub fn pair_stats(
    a: &[u8],
    a_dtype: DType,
    b: &[u8],
    b_dtype: DType,
    opts: &Options,
    progress: &Progress,
) -> Result<BufferPair> {
    for (x, d) in [(a, a_dtype), (b, b_dtype)] {
        if x.len() % d.size() != 0 {
            return Err(Error::InvalidArgument(format!(
                "{} bytes is not a whole number of {d} elements",
                x.len()
            )));
        }
    }
    if a.len() / a_dtype.size() != b.len() / b_dtype.size() {
        return Err(Error::InvalidArgument(format!(
            "the arrays hold {} and {} elements",
            a.len() / a_dtype.size(),
            b.len() / b_dtype.size()
        )));
    }
    let job = Job::Pair(Source::plain(a, a_dtype), Source::plain(b, b_dtype));
    match run(&[job], opts, progress)?.into_iter().next() {
        Some(Summary::Pair {
            stats,
            sample_a,
            sample_b,
            ..
        }) => Ok(BufferPair {
            stats,
            sample_a,
            sample_b,
        }),
        _ => Err(Error::InvalidArgument("no result".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::encode;

    #[test]
    fn buffers_must_hold_whole_elements_and_as_many_on_both_sides() {
        let (opts, p) = (Options::default(), Progress::default());
        let message = |r: Result<BufferPair>| match r {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("an invalid argument expected, got {other:?}"),
        };
        let five = [0u8; 5];
        let f32s = encode(DType::F32, &[1.0, 2.0]);
        assert_eq!(
            message(pair_stats(&five, DType::F32, &f32s, DType::F32, &opts, &p)),
            "5 bytes is not a whole number of F32 elements"
        );
        let bf16s = encode(DType::BF16, &[1.0, 2.0, 3.0]);
        assert_eq!(
            message(pair_stats(
                &f32s,
                DType::F32,
                &bf16s,
                DType::BF16,
                &opts,
                &p
            )),
            "the arrays hold 2 and 3 elements"
        );
        let same = pair_stats(&f32s, DType::F32, &f32s, DType::F32, &opts, &p).unwrap();
        assert_eq!((same.stats.equal, same.sample_a.len()), (2, 2));
    }
}
