//! The summary data model, what a new statistic extends: moments and co-moments that merge
//! ([`moments`]), the per-tensor and per-pair summaries built from them ([`summary`]), the sample
//! positions ([`sample`]) and the content digest ([`digest`]).

pub mod digest;
pub mod moments;
pub mod sample;
pub mod summary;

pub use moments::{CoMoment, Moments};
pub use summary::{PairStats, ValueStats};
