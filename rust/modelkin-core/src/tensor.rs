//! A tensor as the engine reads it: a [`Source`] over its bytes (memory-mapped or in memory), in
//! logical order — block-quantised elements decoded, stored transposes and llama.cpp's Q/K row
//! order ([`HeadPairs`]) undone.

use std::ops::Range;

use crate::checkpoint::{Checkpoint, MappedFile, Tensor};
use crate::dtype::quant::QK_K;
use crate::dtype::{decode_f32, decode_into, DType};
use crate::format::RowOrder;

/// Rows of a source stored in llama.cpp's Q/K order (see [`crate::format::RowOrder::HeadPairs`]),
/// read back in logical order one row at a time; no copy of the tensor is made. `group` is even and
/// at least 2, `row_elems` at least 1, and the rows are a whole number of groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadPairs {
    /// Rows per head: 2h, the two halves of h rows each.
    pub group: u64,
    /// Elements per row.
    pub row_elems: u64,
}

impl HeadPairs {
    /// The stored row of logical row `r`: within its head, row s·h + k is stored as 2k + s.
    #[inline]
    pub fn stored_row(&self, r: u64) -> u64 {
        let half = self.group / 2;
        let (head, i) = (r / self.group, r % self.group);
        head * self.group + if i < half { 2 * i } else { 2 * (i - half) + 1 }
    }
}

/// Where one side of a job reads its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The tensor's bytes.
    pub bytes: &'a [u8],
    /// Their element type.
    pub dtype: DType,
    /// The mapped file and the bytes' offset in it, for paging hints; `None` for memory buffers.
    pub file: Option<(&'a MappedFile, u64)>,
    /// Elements per row when the tensor is a matrix (its trailing dimensions flattened), else 0:
    /// pair jobs then also sum rows and columns when the run's `Options::margins` asks for it.
    pub row_len: u64,
    /// The bytes hold the transpose of the matrix to read (`row_len` columns): element (i, j) is
    /// stored at (j, i). Used for weights that one framework stores transposed (GPT-2's Conv1D).
    pub transposed: bool,
    /// The rows are stored in llama.cpp's Q/K order and are read back in logical order.
    pub head_pairs: Option<HeadPairs>,
}

impl<'a> Source<'a> {
    /// The source that reads tensor `t` of `ck` in its logical order: its bytes in the mapped
    /// file, its rows when it is a matrix, and the llama.cpp Q/K row order undone.
    pub fn of(ck: &'a Checkpoint, t: &'a Tensor) -> Source<'a> {
        let shape = &t.info.shape;
        let numel = t.info.numel();
        let head_pairs = match t.info.rows {
            RowOrder::Plain => None,
            RowOrder::HeadPairs { heads } => {
                let rows = shape.first().copied().unwrap_or(1);
                let halves = heads
                    .checked_mul(2)
                    .is_some_and(|g| g > 0 && rows.is_multiple_of(g));
                (rows > 0 && numel > 0 && halves).then(|| HeadPairs {
                    group: rows / heads,
                    row_elems: numel / rows,
                })
            }
        };
        Source {
            bytes: ck.data(t),
            dtype: t.info.dtype,
            file: Some((&ck.files[t.file], t.info.offset)),
            row_len: if shape.len() >= 2 {
                shape[1..].iter().product()
            } else {
                0
            },
            transposed: false,
            head_pairs,
        }
    }

    /// A source over a buffer read as stored: no file, no matrix view, no reordering.
    pub fn plain(bytes: &'a [u8], dtype: DType) -> Source<'a> {
        Source {
            bytes,
            dtype,
            file: None,
            row_len: 0,
            transposed: false,
            head_pairs: None,
        }
    }

    /// Number of elements.
    #[inline]
    pub fn numel(&self) -> u64 {
        self.dtype.numel(self.bytes.len() as u64)
    }

    /// The bytes of stored elements `[start, start + len)`, widened to whole blocks.
    #[inline]
    pub(crate) fn byte_range(&self, start: u64, len: u64) -> Range<usize> {
        let (block, size) = (self.dtype.block_len() as u64, self.dtype.size() as u64);
        (start / block * size) as usize..((start + len).div_ceil(block) * size) as usize
    }

    /// Decodes `out.len()` stored elements from stored element `start`. Element types and whole
    /// blocks go straight to the decoder; a part of a block decodes the blocks that cover it.
    #[inline]
    fn decode_stored(&self, start: u64, out: &mut [f64]) {
        let block = self.dtype.block_len();
        if block == 1 || (start.is_multiple_of(block as u64) && out.len().is_multiple_of(block)) {
            decode_into(
                self.dtype,
                &self.bytes[self.byte_range(start, out.len() as u64)],
                out,
            );
            return;
        }
        let mut stage = [0.0f64; QK_K];
        let size = self.dtype.size();
        let end = start + out.len() as u64;
        let (mut p, mut o) = (start, 0usize);
        while p < end {
            let b = p / block as u64;
            let at = b as usize * size;
            decode_into(self.dtype, &self.bytes[at..at + size], &mut stage[..block]);
            let from = (p - b * block as u64) as usize;
            let n = (block - from).min((end - p) as usize);
            out[o..o + n].copy_from_slice(&stage[from..from + n]);
            (p, o) = (p + n as u64, o + n);
        }
    }

    /// Decodes `out.len()` elements starting at element `start` of the matrix this source reads,
    /// in logical order (transposed and reordered rows undone).
    #[inline]
    pub fn decode(&self, start: u64, out: &mut [f64]) {
        let transposed = self.transposed && self.row_len > 0;
        match (transposed, self.head_pairs) {
            (false, None) => self.decode_stored(start, out),
            (false, Some(hp)) => {
                // Whole rows are contiguous in storage: one decode per row segment.
                let end = start + out.len() as u64;
                let mut p = start;
                while p < end {
                    let r = p / hp.row_elems;
                    let seg_end = ((r + 1) * hp.row_elems).min(end);
                    let at = hp.stored_row(r) * hp.row_elems + (p - r * hp.row_elems);
                    self.decode_stored(
                        at,
                        &mut out[(p - start) as usize..(seg_end - start) as usize],
                    );
                    p = seg_end;
                }
            }
            (true, hp) => {
                let (cols, rows) = (self.row_len, self.numel() / self.row_len);
                for (k, o) in out.iter_mut().enumerate() {
                    let p = start + k as u64;
                    let mut q = (p % cols) * rows + p / cols;
                    if let Some(hp) = hp {
                        let r = q / hp.row_elems;
                        q = hp.stored_row(r) * hp.row_elems + (q - r * hp.row_elems);
                    }
                    self.decode_stored(q, std::slice::from_mut(o));
                }
            }
        }
    }

    /// The bytes holding logical elements `[start, start + len)` (whole blocks; for reordered rows,
    /// the whole heads that hold them), for paging hints; `None` for a transposed source.
    #[inline]
    pub(crate) fn span(&self, start: u64, len: u64) -> Option<Range<usize>> {
        if self.transposed {
            return None;
        }
        match self.head_pairs {
            None => Some(self.byte_range(start, len)),
            Some(hp) => {
                let heads = hp.group * hp.row_elems;
                let lo = start / heads * heads;
                let hi = (start + len)
                    .div_ceil(heads)
                    .saturating_mul(heads)
                    .min(self.numel());
                Some(self.byte_range(lo, hi.saturating_sub(lo)))
            }
        }
    }

    /// Whether [`Source::decode32`] can read this source: values exact in `f32`, one per stored
    /// element, stored in order.
    #[inline]
    pub(crate) fn narrow(&self) -> bool {
        self.dtype.fits_f32()
            && self.dtype.block_len() == 1
            && !(self.transposed && self.row_len > 0)
            && self.head_pairs.is_none()
    }

    /// [`Source::decode`] into `f32`, for sources where [`Source::narrow`] holds.
    #[inline]
    pub(crate) fn decode32(&self, start: u64, out: &mut [f32]) {
        let bytes = &self.bytes[self.byte_range(start, out.len() as u64)];
        decode_f32(self.dtype, bytes, out);
    }

    /// The bytes a contiguous range of elements occupies, when they are contiguous in storage.
    #[inline]
    pub(crate) fn stored(&self, start: u64, len: u64) -> Option<&[u8]> {
        (!self.transposed && self.head_pairs.is_none())
            .then(|| &self.bytes[self.byte_range(start, len)])
    }
}
