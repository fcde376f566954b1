//! Reading chosen values of chosen matrices, without a streaming pass: the leading rows and columns
//! ([`heads`]) and the values at fixed columns ([`columns`]).

use crate::checkpoint::Checkpoint;
use crate::engine::Options;
use crate::error::{Error, Result};
use crate::tensor::Source;

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
        .map(|n| ck.find(n))
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
    let pool = crate::engine::pool(opts.resolve()?)?;
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

/// Most values [`columns`] returns for one matrix (bounds its memory).
pub const MAX_COLUMN_VALUES: u64 = 1 << 28;

/// Values of one matrix at fixed columns of every row.
#[derive(Debug, Clone, PartialEq)]
pub struct Columns {
    /// Tensor name.
    pub name: String,
    /// Rows of the matrix.
    pub rows: u64,
    /// `rows × columns.len()` values, row by row.
    pub values: Vec<f64>,
}

/// Reads the values at `cols` (column indices of the matrix viewed as rows of its trailing
/// dimensions flattened) of every row of each named matrix.
pub fn columns(
    ck: &Checkpoint,
    names: &[String],
    cols: &[u64],
    opts: &Options,
) -> Result<Vec<Columns>> {
    use rayon::prelude::*;
    let tensors = names
        .iter()
        .map(|n| ck.find(n))
        .collect::<Result<Vec<_>>>()?;
    for t in &tensors {
        let shape = &t.info.shape;
        if shape.len() < 2 {
            return Err(Error::InvalidArgument(format!(
                "tensor '{}' of shape {shape:?} is not a matrix",
                t.info.name
            )));
        }
        let row_len: u64 = shape[1..].iter().product();
        if let Some(c) = cols.iter().find(|&&c| c >= row_len) {
            return Err(Error::InvalidArgument(format!(
                "tensor '{}' of shape {shape:?} has no column {c}",
                t.info.name
            )));
        }
        if shape[0].saturating_mul(cols.len() as u64) > MAX_COLUMN_VALUES {
            return Err(Error::InvalidArgument(format!(
                "tensor '{}' of shape {shape:?} is too large to read {} columns of",
                t.info.name,
                cols.len()
            )));
        }
    }
    let pool = crate::engine::pool(opts.resolve()?)?;
    Ok(pool.install(|| {
        tensors
            .par_iter()
            .map(|t| {
                // Through the tensor's source, which decodes block formats and undoes stored row
                // orders (GGUF), as every other reader does.
                let src = Source::of(ck, t);
                let rows = t.info.shape[0];
                let row_len: u64 = t.info.shape[1..].iter().product();
                let mut values = vec![0.0; rows as usize * cols.len()];
                for (r, out) in values.chunks_mut(cols.len().max(1)).enumerate() {
                    for (o, &c) in out.iter_mut().zip(cols) {
                        src.decode(r as u64 * row_len + c, std::slice::from_mut(o));
                    }
                }
                Columns {
                    name: t.info.name.clone(),
                    rows,
                    values,
                }
            })
            .collect()
    }))
}
