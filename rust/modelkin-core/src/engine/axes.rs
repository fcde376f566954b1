//! Row and column sums of matrices, gathered in the same pass as the statistics: [`AxisSums`] of
//! one matrix (a fingerprint's row and column means and norms), [`Margins`] of both sides of a pair.

use crate::kernel::{add_columns, add_columns_f32, flush_columns, Columns};

/// Widest matrix whose column sums are kept: each work item holds one sum per column, so a
/// (hostile or degenerate) matrix of billions of columns would otherwise allocate without bound.
pub const MAX_MARGIN_COLS: u64 = 1 << 22;

/// Row and column sums and sums of squares of one matrix (a tensor viewed as rows of `row_len`
/// elements): its row and column means, and the L2 norms of its rows and columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AxisSums {
    /// Index of the first row summed in `row_sum` / `row_sq`.
    pub first_row: u64,
    /// Σx over each row.
    pub row_sum: Vec<f64>,
    /// Σx² over each row.
    pub row_sq: Vec<f64>,
    /// Σx over each column.
    pub col_sum: Vec<f64>,
    /// Σx² over each column.
    pub col_sq: Vec<f64>,
}

/// Calls `f(row, first column, i0, i1)` for each piece of the block `[pos, pos + n)` that lies in
/// one row of `row_len` elements: elements `i0..i1` of the block, starting at that column.
#[inline]
fn row_segments(pos: u64, n: usize, row_len: u64, mut f: impl FnMut(u64, usize, usize, usize)) {
    let end = pos + n as u64;
    let mut p = pos;
    while p < end {
        let r = p / row_len;
        let seg_end = ((r + 1) * row_len).min(end);
        f(
            r,
            (p - r * row_len) as usize,
            (p - pos) as usize,
            (seg_end - pos) as usize,
        );
        p = seg_end;
    }
}

/// The first row of elements `[start, start + len)` of a matrix of `row_len` columns, and how many
/// rows they touch.
fn row_span(start: u64, len: u64, row_len: u64) -> (u64, usize) {
    let first_row = start / row_len;
    (
        first_row,
        ((start + len - 1) / row_len - first_row + 1) as usize,
    )
}

/// Appends per-row and per-column sums of the next part of a tensor (rows from `o_first`) to sums
/// whose rows start at `first`: columns and the rows both parts touch are added, later rows
/// appended. `K` sums are kept side by side (both sides of a pair, or Σx and Σx²).
fn merge_axes<const K: usize>(
    first: u64,
    rows: [&mut Vec<f64>; K],
    cols: [&mut Vec<f64>; K],
    o_first: u64,
    o_rows: [Vec<f64>; K],
    o_cols: [Vec<f64>; K],
) {
    for (c, o) in cols.into_iter().zip(&o_cols) {
        for (c, v) in c.iter_mut().zip(o) {
            *c += v;
        }
    }
    for (r, o) in rows.into_iter().zip(o_rows) {
        let next = first + r.len() as u64;
        for (k, v) in o.into_iter().enumerate() {
            let row = o_first + k as u64;
            if row < next {
                r[(row - first) as usize] += v;
            } else {
                r.push(v);
            }
        }
    }
}

impl AxisSums {
    #[inline]
    pub(super) fn new(start: u64, len: u64, row_len: u64) -> AxisSums {
        let (first_row, rows) = row_span(start, len, row_len);
        AxisSums {
            first_row,
            row_sum: vec![0.0; rows],
            row_sq: vec![0.0; rows],
            col_sum: vec![0.0; row_len as usize],
            col_sq: vec![0.0; row_len as usize],
        }
    }

    /// Adds a block of values starting at element `pos`.
    #[inline]
    pub(super) fn add<T: Columns>(&mut self, pos: u64, x: &[T]) {
        let row_len = self.col_sum.len() as u64;
        row_segments(pos, x.len(), row_len, |r, c0, i0, i1| {
            let x = &x[i0..i1];
            let ri = (r - self.first_row) as usize;
            let cols = c0..c0 + x.len();
            let (sum, sq) =
                T::add_columns_sq(&mut self.col_sum[cols.clone()], &mut self.col_sq[cols], x);
            self.row_sum[ri] += sum;
            self.row_sq[ri] += sq;
        });
    }

    /// Appends the sums of the next part of the same tensor.
    pub(super) fn merge(&mut self, o: AxisSums) {
        merge_axes(
            self.first_row,
            [&mut self.row_sum, &mut self.row_sq],
            [&mut self.col_sum, &mut self.col_sq],
            o.first_row,
            [o.row_sum, o.row_sq],
            [o.col_sum, o.col_sq],
        );
    }
}

/// Row and column sums of the two tensors of a pair, viewed as matrices of `row_len` columns: what
/// it takes to remove row and column effects (e.g. rows tied to tokens) before correlating them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Margins {
    /// Index of the first row summed in `rows_a` / `rows_b`.
    pub first_row: u64,
    /// Σ over each row of a.
    pub rows_a: Vec<f64>,
    /// Σ over each row of b.
    pub rows_b: Vec<f64>,
    /// Σ over each column of a.
    pub cols_a: Vec<f64>,
    /// Σ over each column of b.
    pub cols_b: Vec<f64>,
}

impl Margins {
    #[inline]
    pub(super) fn new(start: u64, len: u64, row_len: u64) -> Margins {
        let (first_row, rows) = row_span(start, len, row_len);
        Margins {
            first_row,
            rows_a: vec![0.0; rows],
            rows_b: vec![0.0; rows],
            cols_a: vec![0.0; row_len as usize],
            cols_b: vec![0.0; row_len as usize],
        }
    }

    /// Adds a block of values starting at element `pos`.
    #[inline]
    pub(super) fn add(&mut self, pos: u64, xa: &[f64], xb: &[f64]) {
        let row_len = self.cols_a.len() as u64;
        row_segments(pos, xa.len(), row_len, |r, c0, i0, i1| {
            let ri = (r - self.first_row) as usize;
            for (rows, cols, x) in [
                (&mut self.rows_a, &mut self.cols_a, &xa[i0..i1]),
                (&mut self.rows_b, &mut self.cols_b, &xb[i0..i1]),
            ] {
                rows[ri] += add_columns(&mut cols[c0..c0 + x.len()], x);
            }
        });
    }

    /// [`Margins::add`] for values decoded to `f32`, whose column sums build up in `part` first.
    #[inline]
    pub(super) fn add_f32(&mut self, pos: u64, xa: &[f32], xb: &[f32], part: &mut PartColumns) {
        let row_len = self.cols_a.len() as u64;
        row_segments(pos, xa.len(), row_len, |r, c0, i0, i1| {
            let ri = (r - self.first_row) as usize;
            let [ca, cb] = &mut part.cols;
            for (rows, cols, x) in [
                (&mut self.rows_a, ca, &xa[i0..i1]),
                (&mut self.rows_b, cb, &xb[i0..i1]),
            ] {
                rows[ri] += add_columns_f32(&mut cols[c0..c0 + x.len()], x);
            }
            part.segments += 1;
            // Each row segment adds at most one term to a column.
            if part.segments == PartColumns::TERMS {
                self.flush(part);
            }
        });
    }

    /// Moves the column sums built up in `part` into these margins.
    #[inline]
    pub(super) fn flush(&mut self, part: &mut PartColumns) {
        flush_columns(&mut self.cols_a, &mut part.cols[0]);
        flush_columns(&mut self.cols_b, &mut part.cols[1]);
        part.segments = 0;
    }

    /// Appends the sums of the next part of the same tensor.
    pub(super) fn merge(&mut self, o: Margins) {
        merge_axes(
            self.first_row,
            [&mut self.rows_a, &mut self.rows_b],
            [&mut self.cols_a, &mut self.cols_b],
            o.first_row,
            [o.rows_a, o.rows_b],
            [o.cols_a, o.cols_b],
        );
    }
}

/// Column sums of both sides of a pair decoded to `f32`, kept in `f32` for at most
/// [`PartColumns::TERMS`] row segments before they move into the `f64` [`Margins`].
pub(super) struct PartColumns {
    cols: [Vec<f32>; 2],
    segments: usize,
}

impl PartColumns {
    /// Row segments summed in `f32` before a flush (see [`add_columns_f32`]).
    const TERMS: usize = 16;

    #[inline]
    pub(super) fn new(row_len: usize) -> PartColumns {
        PartColumns {
            cols: [vec![0.0; row_len], vec![0.0; row_len]],
            segments: 0,
        }
    }
}
