//! The analyses the binding exposes, one file each: each takes opened checkpoints (or buffers) and
//! options and returns plain result types; the engine does the streaming.

mod diff;
mod fingerprint;
mod inspect;
mod pairs;
mod probe;

pub use diff::{diff, read_pair, DiffReport, Mismatch, PairRecord};
pub use fingerprint::{fingerprint, quantiles, MatrixPrint, PrintRecord};
pub use inspect::{inspect, sample_values, TensorRecord};
pub use pairs::{diff_pairs, pair_stats, BufferPair, PairSpec, PairsReport};
pub use probe::{columns, heads, Columns, Heads, MAX_COLUMN_VALUES, MAX_HEADS};

/// What the analyses take besides their inputs: the knobs of a run, their defaults and the
/// progress counters.
pub use crate::engine::{
    Options, Progress, DEFAULT_QUANTILES, DEFAULT_SAMPLE, MAX_SAMPLE, MAX_THREADS,
};

/// The thread count a call without `threads` uses (`MODELKIN_NUM_THREADS`, else the cores).
pub fn default_threads() -> crate::error::Result<usize> {
    crate::engine::resolve_threads(None)
}
