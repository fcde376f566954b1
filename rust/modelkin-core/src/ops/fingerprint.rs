//! What a fingerprint keeps of each tensor, gathered in one streaming pass ([`fingerprint`]).
//!
//! Per tensor: the statistics of its values, its values at the sample positions and a content
//! digest; per matrix also the means of the row and of the column of each sampled position, and the
//! sorted L2 norms of its rows and of its columns at a fixed number of quantiles (a summary that
//! does not change when hidden units, i.e. rows or columns, are permuted). The content digest is
//! [`crate::stats::digest`]'s.

use crate::checkpoint::Checkpoint;
use crate::dtype::DType;
use crate::engine::{run, AxisSums, Job, Options, Progress, Summary};
use crate::error::{Error, Result};
use crate::stats::digest::combine;
use crate::stats::sample::sample_positions;
use crate::stats::summary::ValueStats;
use crate::tensor::Source;

/// `k` quantiles of `values` (sorted in place, NaN last) at evenly spaced levels from 0 to 1, with
/// linear interpolation between order statistics (numpy's default); all the values, sorted, when
/// there are at most `k` of them.
pub fn quantiles(values: &mut [f64], k: usize) -> Vec<f64> {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n <= k {
        return values.to_vec();
    }
    if k == 1 {
        return vec![values[0]];
    }
    (0..k)
        .map(|i| {
            let h = (n - 1) as f64 * i as f64 / (k - 1) as f64;
            let lo = (h.floor() as usize).min(n - 1);
            let hi = (lo + 1).min(n - 1);
            let (a, b) = (values[lo], values[hi]);
            if a == b {
                a
            } else {
                a + (h - lo as f64) * (b - a)
            }
        })
        .collect()
}

/// The matrix part of a [`PrintRecord`].
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixPrint {
    /// Rows (the first dimension).
    pub rows: u64,
    /// Elements per row (the trailing dimensions flattened).
    pub row_len: u64,
    /// Mean of the row of each sampled position.
    pub row_mean: Vec<f64>,
    /// Mean of the column of each sampled position.
    pub col_mean: Vec<f64>,
    /// L2 norms of the rows, sorted, at [`quantiles`] (NaN or ∞ for rows holding NaN or ∞).
    pub row_norms: Vec<f64>,
    /// L2 norms of the columns, sorted, at [`quantiles`].
    pub col_norms: Vec<f64>,
}

/// What a fingerprint keeps of one tensor.
#[derive(Debug, Clone)]
pub struct PrintRecord {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<u64>,
    /// Statistics of its values.
    pub stats: ValueStats,
    /// Values at the sample positions ([`sample_positions`]).
    pub sample: Vec<f64>,
    /// Content digest (see [`crate::stats::digest`]).
    pub digest: [u8; 32],
    /// For tensors of two or more dimensions whose rows are at most
    /// [`crate::engine::MAX_MARGIN_COLS`] long.
    pub matrix: Option<MatrixPrint>,
}

fn matrix_print(
    axes: AxisSums,
    rows: u64,
    row_len: u64,
    sample_len: usize,
    sample_size: usize,
    k: usize,
) -> Option<MatrixPrint> {
    if axes.first_row != 0 || axes.row_sum.len() as u64 != rows || rows == 0 || row_len == 0 {
        return None;
    }
    let positions = sample_positions(rows * row_len, sample_size);
    if positions.len() != sample_len {
        return None;
    }
    let (r, c) = (row_len as f64, rows as f64);
    let row_mean = positions
        .iter()
        .map(|&p| axes.row_sum[(p / row_len) as usize] / r)
        .collect();
    let col_mean = positions
        .iter()
        .map(|&p| axes.col_sum[(p % row_len) as usize] / c)
        .collect();
    let norm = |v: Vec<f64>| -> Vec<f64> {
        let mut v: Vec<f64> = v.into_iter().map(|q| q.max(0.0).sqrt()).collect();
        quantiles(&mut v, k)
    };
    Some(MatrixPrint {
        rows,
        row_len,
        row_mean,
        col_mean,
        row_norms: norm(axes.row_sq),
        col_norms: norm(axes.col_sq),
    })
}

/// Streams every tensor of `ck` once and returns what a fingerprint keeps of it, with `quantiles`
/// row and column norm quantiles per matrix.
pub fn fingerprint(
    ck: &Checkpoint,
    opts: &Options,
    progress: &Progress,
    quantiles: usize,
) -> Result<Vec<PrintRecord>> {
    if quantiles == 0 {
        return Err(Error::InvalidArgument(
            "at least one norm quantile must be kept".into(),
        ));
    }
    let jobs: Vec<Job> = ck
        .tensors
        .iter()
        .map(|t| Job::Print(Source::of(ck, t)))
        .collect();
    let results = run(&jobs, opts, progress)?;
    Ok(ck
        .tensors
        .iter()
        .zip(results)
        .map(|(t, s)| {
            let part = match s {
                Summary::Print(p) => *p,
                _ => unreachable!("print jobs give print summaries"),
            };
            let shape = &t.info.shape;
            let matrix = match (shape.len() >= 2, part.axes) {
                (true, Some(axes)) => {
                    let row_len: u64 = shape[1..].iter().product();
                    matrix_print(
                        axes,
                        shape[0],
                        row_len,
                        part.sample.len(),
                        opts.sample_size,
                        quantiles,
                    )
                }
                _ => None,
            };
            PrintRecord {
                name: t.info.name.clone(),
                dtype: t.info.dtype,
                shape: shape.clone(),
                stats: part.stats,
                sample: part.sample,
                digest: combine(&part.pieces),
                matrix,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let mut v: Vec<f64> = (0..10).rev().map(|i| i as f64).collect();
        assert_eq!(
            quantiles(&mut v.clone(), 20),
            (0..10).map(|i| i as f64).collect::<Vec<_>>()
        );
        // numpy.quantile(range(10), [0, 1/3, 2/3, 1]) = [0, 3, 6, 9]
        assert_eq!(quantiles(&mut v, 4), vec![0.0, 3.0, 6.0, 9.0]);
        let mut w = vec![0.0, 1.0, 10.0];
        // numpy.quantile([0, 1, 10], [0, 0.5, 1]) with k = 2 levels: [0, 10]
        assert_eq!(quantiles(&mut w, 2), vec![0.0, 10.0]);
        let mut u = vec![0.0, 1.0, 2.0, 3.0, 4.0];
        // levels 0, 1/3, 2/3, 1 of 5 values: h = 0, 4/3, 8/3, 4
        let q = quantiles(&mut u, 4);
        assert!((q[1] - 4.0 / 3.0).abs() < 1e-12 && (q[2] - 8.0 / 3.0).abs() < 1e-12);
    }
}
