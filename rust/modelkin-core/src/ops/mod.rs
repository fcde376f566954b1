//! The analyses the binding exposes, one file each: each takes opened checkpoints (or buffers) and
//! options and returns plain result types; the engine does the streaming.

mod diff;
mod fingerprint;
mod inspect;
mod pairs;
mod probe;

pub use diff::{diff, read_pair, DiffReport, Mismatch, PairRecord};
pub use fingerprint::{fingerprint, quantiles, MatrixPrint, PrintRecord, DEFAULT_QUANTILES};
pub use inspect::{inspect, sample_values, TensorRecord};
pub use pairs::{diff_pairs, PairSpec, PairsReport};
pub use probe::{columns, heads, Columns, Heads, MAX_COLUMN_VALUES, MAX_HEADS};
