//! modelkin-core: stream two neural-network checkpoints once, in constant memory and on all cores,
//! and summarise how they differ.
//!
//! The pipeline is open ([`checkpoint::Checkpoint::open`] maps and validates the files) → plan
//! (tensor pairs matched by name, cut into chunks) → stream ([`engine::run`], rayon over chunks,
//! merged in a fixed order) → summaries (plain structs of moments, extremes and samples). [`print`]
//! gathers what a fingerprint keeps of one checkpoint in the same kind of pass.
//! Nothing here knows about Python.
#![deny(missing_docs)]

pub mod checkpoint;
pub mod diff;
pub mod dtype;
pub mod engine;
pub mod error;
pub mod format;
pub mod kernel;
pub mod print;
pub mod stats;
pub mod tensor;

pub use checkpoint::Checkpoint;
pub use diff::{
    diff, diff_pairs, heads, inspect, sample_values, DiffReport, Heads, PairRecord, PairSpec,
    PairsReport, TensorRecord,
};
pub use dtype::DType;
pub use engine::{Options, Progress};
pub use error::{Error, Result};
pub use print::{columns, fingerprint, Columns, MatrixPrint, PrintRecord};
