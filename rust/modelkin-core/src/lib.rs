//! modelkin-core: stream two neural-network checkpoints once, in constant memory and on all cores,
//! and summarise how they differ.
//!
//! The pipeline is open ([`Checkpoint::open`] maps and validates the files, [`format`](mod@format) reads each
//! one) → plan (tensor pairs matched by name, cut into chunks) → stream ([`engine::run`], rayon over
//! chunks, the [`kernel`] on each block, merged in a fixed order) → summaries (the plain structs of
//! [`stats`]). Each analysis the binding exposes is one function of [`ops`], re-exported here.
//! Nothing here knows about Python.
#![deny(missing_docs)]

pub mod checkpoint;
pub mod dtype;
pub mod engine;
pub mod error;
pub mod format;
pub mod fs;
pub mod kernel;
pub mod ops;
pub mod stats;
pub mod tensor;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use checkpoint::Checkpoint;
pub use dtype::DType;
pub use engine::{Options, Progress};
pub use error::{Error, Result};
pub use ops::*;
pub use stats::{CoMoment, Moments, PairStats, ValueStats};
