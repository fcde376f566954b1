//! What the engine runs and what it returns: a [`Job`] per tensor or pair, a [`Summary`] per job.

use super::axes::{AxisSums, Margins};
use crate::error::Result;
use crate::stats::summary::{PairStats, ValueStats};
use crate::tensor::Source;

/// A unit of work: one tensor, or a pair of same-length tensors.
#[derive(Debug, Clone, Copy)]
pub enum Job<'a> {
    /// Statistics of one tensor.
    Single(Source<'a>),
    /// Statistics of a pair and of its difference b − a.
    Pair(Source<'a>, Source<'a>),
    /// Only the values at the sample positions: reads a few thousand elements, not the tensor.
    Sample(Source<'a>),
    /// What a fingerprint keeps of one tensor (see [`PrintPart`]): the statistics and sample of
    /// [`Job::Single`], the row and column sums and sums of squares of a matrix (when its
    /// `row_len` is set and at most [`MAX_MARGIN_COLS`](super::MAX_MARGIN_COLS)), and the digests of its byte pieces.
    Print(Source<'a>),
}

impl Job<'_> {
    /// The mapped files this job reads, checked to be as they were when mapped.
    pub(super) fn check_files(&self) -> Result<()> {
        let sources: &[&Source] = match self {
            Job::Single(x) | Job::Sample(x) | Job::Print(x) => &[x],
            Job::Pair(a, b) => &[a, b],
        };
        for s in sources {
            if let Some((file, _)) = s.file {
                file.check_unchanged()?;
            }
        }
        Ok(())
    }

    pub(super) fn numel(&self) -> u64 {
        match self {
            Job::Single(x) | Job::Sample(x) | Job::Print(x) => x.numel(),
            Job::Pair(a, _) => a.numel(),
        }
    }

    pub(super) fn bytes(&self) -> u64 {
        match self {
            Job::Single(x) | Job::Sample(x) | Job::Print(x) => x.bytes.len() as u64,
            Job::Pair(a, b) => (a.bytes.len() + b.bytes.len()) as u64,
        }
    }
}

/// The merged result of a job, with the values at its sample positions (see
/// [`Options::sample_size`](super::Options::sample_size)).
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // one per chunk of a million elements: boxing buys nothing
pub enum Summary {
    /// Result of a [`Job::Single`] and its sampled values (for a [`Job::Sample`]: default
    /// statistics and the sampled values).
    Single {
        /// Statistics of the values.
        stats: ValueStats,
        /// Values at the sample positions.
        sample: Vec<f64>,
    },
    /// Result of a [`Job::Pair`], the sampled values of a and of b (same positions), and the
    /// row and column sums when they were asked for.
    Pair {
        /// Statistics of a, b and d = b − a.
        stats: PairStats,
        /// Values of a at the sample positions.
        sample_a: Vec<f64>,
        /// Values of b at the same positions.
        sample_b: Vec<f64>,
        /// Row and column sums of both sides, when [`Options::margins`](super::Options::margins) asked for them.
        margins: Option<Margins>,
    },
    /// Result of a [`Job::Print`].
    Print(Box<PrintPart>),
}

/// What a [`Job::Print`] gathers from one tensor.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PrintPart {
    /// Statistics of the values.
    pub stats: ValueStats,
    /// Values at the sample positions.
    pub sample: Vec<f64>,
    /// Row and column sums and sums of squares, for matrices.
    pub axes: Option<AxisSums>,
    /// SHA-256 of each [`PIECE`](crate::stats::digest::PIECE)-byte piece of the tensor's bytes, in order (the last piece may be
    /// shorter). A work item hashes the pieces that *start* in its byte range, reading past its end
    /// to finish the last one, so the list depends only on the bytes, never on chunking or threads.
    pub pieces: Vec<[u8; 32]>,
}
