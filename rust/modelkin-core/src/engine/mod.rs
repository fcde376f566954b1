//! The streaming engine: cut jobs (tensor pairs or single tensors) into fixed-size chunks, run the
//! chunks on a thread pool owned by the call, and merge the partial results in chunk order.
//!
//! Chunk boundaries depend only on the data, never on the thread count, and partial results are
//! merged sequentially in a fixed order: the numbers are the same with 1 thread or 64.

mod axes;
mod job;
mod options;
mod paging;

use std::sync::atomic::Ordering;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::kernel::{
    pair_block_ahead, pair_block_f32_ahead, single_block_ahead, single_block_f32_ahead, Ahead,
};
use crate::stats::digest::{piece_digest, PIECE};
use crate::stats::sample::Sampler;
use crate::stats::summary::{PairStats, ValueStats};
use crate::tensor::Source;
use axes::PartColumns;
use paging::{prefault, Releases};

pub use axes::{AxisSums, Margins, MAX_MARGIN_COLS};
pub use job::{Job, PrintPart, Summary};
pub(crate) use options::pool;
pub use options::{
    resolve_threads, Options, Progress, DEFAULT_CHUNK, DEFAULT_QUANTILES, DEFAULT_SAMPLE,
    MAX_SAMPLE, MAX_THREADS, THREADS_ENV,
};

/// Elements decoded and reduced at a time (two f64 buffers of this size stay in L1/L2).
pub const BLOCK: usize = 4096;

struct Item {
    job: usize,
    start: u64,
    len: u64,
}

fn plan(jobs: &[Job], chunk: u64) -> Vec<Item> {
    // A whole number of blocks, so that every chunk and every block in it starts at a multiple of
    // any block-quantised format's block length (32 or 256, which divide BLOCK).
    let chunk = chunk.max(BLOCK as u64).next_multiple_of(BLOCK as u64);
    let mut items = Vec::new();
    for (j, job) in jobs.iter().enumerate() {
        let n = job.numel();
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            items.push(Item { job: j, start, len });
            start += len;
        }
    }
    items
}

/// Per-worker scratch space: one block of decoded values per side, in `f64` and in `f32` (for
/// dtypes whose values are exact in `f32`, which the kernels reduce twice as many at a time).
struct Scratch<'a>([Vec<f64>; 2], [Vec<f32>; 2], Releases<'a>);

impl Scratch<'_> {
    fn new() -> Self {
        Scratch(
            [vec![0.0; BLOCK], vec![0.0; BLOCK]],
            [vec![0.0; BLOCK], vec![0.0; BLOCK]],
            Releases::default(),
        )
    }
}

/// One block of decoded values of one side, in the width its dtype allows.
#[derive(Clone, Copy)]
enum Values<'s> {
    Wide(&'s [f64]),
    Narrow(&'s [f32]),
}

impl Values<'_> {
    fn get(&self, i: usize) -> f64 {
        match self {
            Values::Wide(v) => v[i],
            Values::Narrow(v) => v[i] as f64,
        }
    }
}

/// Decodes `n` elements of `x` from `pos` into the scratch buffer of its width.
fn decode_block<'s>(
    x: &Source,
    pos: u64,
    n: usize,
    wide: &'s mut [f64],
    narrow: &'s mut [f32],
    use_narrow: bool,
) -> Values<'s> {
    if use_narrow {
        x.decode32(pos, &mut narrow[..n]);
        Values::Narrow(&narrow[..n])
    } else {
        x.decode(pos, &mut wide[..n]);
        Values::Wide(&wide[..n])
    }
}

/// Statistics and sampled values of one work item of a single tensor, and its row and column sums
/// when `axes` is given.
fn single_pass<'a>(
    x: &Source<'a>,
    item: &Item,
    sample_size: usize,
    scratch: &mut Scratch<'a>,
    mut axes: Option<&mut AxisSums>,
) -> (ValueStats, Vec<f64>) {
    let (wide, narrow) = (&mut scratch.0[0], &mut scratch.1[0]);
    let end = item.start + item.len;
    prefault(x, item.start, item.len);
    let sampler = Sampler::new(x.numel(), sample_size);
    let mut acc = ValueStats::default();
    let mut sample = Vec::new();
    let use_narrow = x.narrow();
    for pos in (item.start..end).step_by(BLOCK) {
        let n = (BLOCK as u64).min(end - pos);
        let v = decode_block(x, pos, n as usize, wide, narrow, use_narrow);
        let next = (BLOCK as u64).min(end.saturating_sub(pos + n));
        let ahead = Ahead([x.stored(pos + n, next).unwrap_or_default(), &[]]);
        sample.extend(
            sampler
                .positions(pos, pos + n)
                .map(|p| v.get((p - pos) as usize)),
        );
        let block = match v {
            Values::Wide(v) => {
                if let Some(m) = axes.as_deref_mut() {
                    m.add(pos, v);
                }
                single_block_ahead(v, ahead)
            }
            Values::Narrow(v) => {
                if let Some(m) = axes.as_deref_mut() {
                    m.add(pos, v);
                }
                single_block_f32_ahead(v, ahead)
            }
        };
        acc = acc.merge(&block);
    }
    scratch.2.release(x, item.start, item.len);
    (acc, sample)
}

fn run_item<'a>(job: &Job<'a>, item: &Item, opts: &Options, scratch: &mut Scratch<'a>) -> Summary {
    let sample_size = opts.sample_size;
    let end = item.start + item.len;
    let blocks = (item.start..end)
        .step_by(BLOCK)
        .map(|pos| (pos, (BLOCK as u64).min(end - pos)));
    match job {
        Job::Single(x) => {
            let (stats, sample) = single_pass(x, item, sample_size, scratch, None);
            Summary::Single { stats, sample }
        }
        Job::Print(x) => {
            // The pieces that start in this item's bytes, hashed first: this pulls the bytes into
            // cache for the statistics below.
            // Byte offsets of the item's elements (whole blocks for block-quantised types).
            let span = x.byte_range(item.start, item.len);
            let (lo, hi, total) = (span.start as u64, span.end as u64, x.bytes.len() as u64);
            let pieces = (lo.div_ceil(PIECE)..hi.div_ceil(PIECE))
                .map(|k| {
                    piece_digest(
                        &x.bytes[(k * PIECE) as usize..total.min((k + 1) * PIECE) as usize],
                    )
                })
                .collect();
            let mut axes = (x.row_len > 0 && x.row_len <= MAX_MARGIN_COLS)
                .then(|| AxisSums::new(item.start, item.len, x.row_len));
            let (stats, sample) = single_pass(x, item, sample_size, scratch, axes.as_mut());
            Summary::Print(Box::new(PrintPart {
                stats,
                sample,
                axes,
                pieces,
            }))
        }
        Job::Sample(x) => {
            let sampler = Sampler::new(x.numel(), sample_size);
            let mut one = [0.0f64];
            let sample = sampler
                .positions(item.start, end)
                .map(|p| {
                    x.decode(p, &mut one);
                    one[0]
                })
                .collect();
            Summary::Single {
                stats: ValueStats::default(),
                sample,
            }
        }
        Job::Pair(a, b) => {
            let Scratch([wa, wb], [na, nb], done) = scratch;
            prefault(a, item.start, item.len);
            prefault(b, item.start, item.len);
            let sampler = Sampler::new(a.numel(), sample_size);
            let mut acc = PairStats::default();
            let (mut sample_a, mut sample_b) = (Vec::new(), Vec::new());
            let mut margins = (opts.margins && a.row_len > 0 && a.row_len <= MAX_MARGIN_COLS)
                .then(|| Margins::new(item.start, item.len, a.row_len));
            let mut part: Option<PartColumns> = None;
            // Both sides in f32 lanes, or both in f64: the kernels take one width.
            let narrow = a.narrow() && b.narrow();
            for (pos, n) in blocks {
                // Bit-identical stored bytes of one dtype hold identical values, so one side's
                // statistics give the pair's for half the work (copies, frozen tensors of a
                // fine-tune). Differing blocks differ within their first bytes: the test is free.
                let same = a.dtype == b.dtype
                    && matches!((a.stored(pos, n), b.stored(pos, n)), (Some(x), Some(y)) if x == y);
                let xa = decode_block(a, pos, n as usize, wa, na, narrow);
                let xb = if same {
                    xa
                } else {
                    decode_block(b, pos, n as usize, wb, nb, narrow)
                };
                // The kernel requests the next block while it reduces this one: it touches only
                // cached data, so without this the memory system idles until the next decode.
                let next = (BLOCK as u64).min(end.saturating_sub(pos + n));
                let ahead = Ahead([a, b].map(|x| x.stored(pos + n, next).unwrap_or_default()));
                for p in sampler.positions(pos, pos + n) {
                    let i = (p - pos) as usize;
                    sample_a.push(xa.get(i));
                    sample_b.push(xb.get(i));
                }
                let block = match (xa, xb) {
                    (Values::Narrow(xa), Values::Narrow(xb)) => {
                        if let Some(m) = margins.as_mut() {
                            let part = part.get_or_insert_with(|| PartColumns::new(m.cols_a.len()));
                            m.add_f32(pos, xa, xb, part);
                        }
                        if same {
                            PairStats::identical(&single_block_f32_ahead(xa, ahead))
                        } else {
                            pair_block_f32_ahead(xa, xb, ahead)
                        }
                    }
                    (Values::Wide(xa), Values::Wide(xb)) => {
                        if let Some(m) = margins.as_mut() {
                            m.add(pos, xa, xb);
                        }
                        if same {
                            PairStats::identical(&single_block_ahead(xa, ahead))
                        } else {
                            pair_block_ahead(xa, xb, ahead)
                        }
                    }
                    _ => unreachable!("both sides are decoded to the same width"),
                };
                acc = acc.merge(&block);
            }
            if let (Some(m), Some(part)) = (margins.as_mut(), part.as_mut()) {
                m.flush(part);
            }
            done.release(a, item.start, item.len);
            done.release(b, item.start, item.len);
            Summary::Pair {
                stats: acc,
                sample_a,
                sample_b,
                margins,
            }
        }
    }
}

/// The bytes of a job that an item covers (a block-quantised element is a fraction of a byte).
fn bytes_of(job: &Job, item: &Item) -> u64 {
    (job.bytes() as u128 * item.len as u128 / job.numel().max(1) as u128) as u64
}

/// A job's summary before its first item, with room for all its samples: growing the sample
/// vectors item by item copied them over and over on the thread that merges.
fn empty_summary(job: &Job, sample_size: usize) -> Summary {
    let room = || Vec::with_capacity(Sampler::new(job.numel(), sample_size).len());
    match job {
        Job::Single(_) | Job::Sample(_) => Summary::Single {
            stats: ValueStats::default(),
            sample: room(),
        },
        Job::Pair(..) => Summary::Pair {
            stats: PairStats::default(),
            sample_a: room(),
            sample_b: room(),
            margins: None,
        },
        Job::Print(_) => Summary::Print(Box::new(PrintPart {
            sample: room(),
            ..PrintPart::default()
        })),
    }
}

/// Runs `jobs` on a pool of the resolved thread count and returns one summary per job, in order.
pub fn run(jobs: &[Job], opts: &Options, progress: &Progress) -> Result<Vec<Summary>> {
    let threads = opts.resolve()?;
    for (i, job) in jobs.iter().enumerate() {
        if let Job::Pair(a, b) = job {
            if a.numel() != b.numel() {
                return Err(Error::InvalidArgument(format!(
                    "job {i}: the two sides hold {} and {} elements",
                    a.numel(),
                    b.numel()
                )));
            }
        }
    }
    let items = plan(jobs, opts.chunk);
    progress
        .total
        .fetch_add(jobs.iter().map(Job::bytes).sum(), Ordering::Relaxed);
    let partials: Vec<Summary> = pool(threads)?.install(|| {
        items
            .par_iter()
            .map_init(Scratch::new, |scratch, item| {
                if progress.cancel.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                let job = &jobs[item.job];
                job.check_files()?;
                let out = run_item(job, item, opts, scratch);
                progress
                    .done
                    .fetch_add(bytes_of(job, item), Ordering::Relaxed);
                Ok(out)
            })
            .collect::<Result<Vec<_>>>()
    })?;
    // A file written during the last chunks would otherwise go unnoticed.
    for job in jobs {
        job.check_files()?;
    }
    let mut out: Vec<Summary> = jobs
        .iter()
        .map(|job| empty_summary(job, opts.sample_size))
        .collect();
    for (item, part) in items.iter().zip(partials) {
        let slot = &mut out[item.job];
        *slot = match (
            std::mem::replace(
                slot,
                Summary::Single {
                    stats: ValueStats::default(),
                    sample: Vec::new(),
                },
            ),
            part,
        ) {
            (
                Summary::Single {
                    stats: acc,
                    sample: mut s,
                },
                Summary::Single {
                    stats: p,
                    sample: ps,
                },
            ) => {
                s.extend(ps);
                Summary::Single {
                    stats: acc.merge(&p),
                    sample: s,
                }
            }
            (
                Summary::Pair {
                    stats: acc,
                    sample_a: mut sa,
                    sample_b: mut sb,
                    margins: ma,
                },
                Summary::Pair {
                    stats: p,
                    sample_a: pa,
                    sample_b: pb,
                    margins: mp,
                },
            ) => {
                sa.extend(pa);
                sb.extend(pb);
                let margins = match (ma, mp) {
                    (Some(mut m), Some(o)) => {
                        m.merge(o);
                        Some(m)
                    }
                    (m, o) => m.or(o),
                };
                Summary::Pair {
                    stats: acc.merge(&p),
                    sample_a: sa,
                    sample_b: sb,
                    margins,
                }
            }
            (Summary::Print(mut acc), Summary::Print(part)) => {
                let PrintPart {
                    stats,
                    sample,
                    axes,
                    pieces,
                } = *part;
                acc.stats = acc.stats.merge(&stats);
                acc.sample.extend(sample);
                acc.pieces.extend(pieces);
                acc.axes = match (acc.axes.take(), axes) {
                    (Some(mut m), Some(o)) => {
                        m.merge(o);
                        Some(m)
                    }
                    (m, o) => m.or(o),
                };
                Summary::Print(acc)
            }
            _ => unreachable!("a job's items all have the job's kind"),
        };
    }
    Ok(out)
}

/// Reads every byte of the jobs through the same chunking, paging and thread pool, doing no
/// arithmetic beyond a checksum: the floor that the statistics pass is measured against.
pub fn read_only<'a>(jobs: &[Job<'a>], opts: &Options, progress: &Progress) -> Result<u64> {
    let threads = opts.resolve()?;
    let items = plan(jobs, opts.chunk);
    progress
        .total
        .fetch_add(jobs.iter().map(Job::bytes).sum(), Ordering::Relaxed);
    let touch = |src: &Source<'a>, item: &Item, done: &mut Releases<'a>| -> u64 {
        prefault(src, item.start, item.len);
        let bytes = &src.bytes[src.span(item.start, item.len).unwrap_or(0..0)];
        let words = bytes.chunks_exact(8);
        let tail: u64 = words.remainder().iter().map(|&b| b as u64).sum();
        let sum = words.fold(tail, |acc, w| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(w);
            acc.wrapping_add(u64::from_le_bytes(raw))
        });
        done.release(src, item.start, item.len);
        sum
    };
    let sums: Vec<u64> = pool(threads)?.install(|| {
        items
            .par_iter()
            .map_init(Releases::default, |done, item| {
                if progress.cancel.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                let job = &jobs[item.job];
                job.check_files()?;
                let s = match job {
                    Job::Single(x) | Job::Sample(x) | Job::Print(x) => touch(x, item, done),
                    Job::Pair(a, b) => touch(a, item, done).wrapping_add(touch(b, item, done)),
                };
                progress
                    .done
                    .fetch_add(bytes_of(job, item), Ordering::Relaxed);
                Ok(s)
            })
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(sums.into_iter().fold(0u64, u64::wrapping_add))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::{decode_into, DType};
    use crate::stats::digest::{combine, content_digest};
    use crate::stats::sample::{sample_positions, splitmix64};
    use crate::tensor::HeadPairs;
    use crate::testing::encode;
    use sha2::{Digest, Sha256};

    fn src(bytes: &[u8], dtype: DType) -> Source<'_> {
        Source::plain(bytes, dtype)
    }

    #[test]
    fn results_do_not_depend_on_threads_or_chunking() {
        let a: Vec<f64> = (0..100_003)
            .map(|i| ((i * 7919 % 1000) as f64 - 500.0) * 1e-3)
            .collect();
        let b: Vec<f64> = a
            .iter()
            .enumerate()
            .map(|(i, x)| x + ((i * 31 % 17) as f64 - 8.0) * 1e-4)
            .collect();
        let (ea, eb) = (encode(DType::F32, &a), encode(DType::BF16, &b));
        let jobs = [
            Job::Pair(src(&ea, DType::F32), src(&eb, DType::BF16)),
            Job::Single(src(&ea, DType::F32)),
        ];
        let run_with = |threads, chunk| {
            let opts = Options {
                threads: Some(threads),
                chunk,
                ..Options::default()
            };
            run(&jobs, &opts, &Progress::default()).unwrap()
        };
        let one = run_with(1, 4096);
        assert_eq!(one, run_with(2, 4096));
        assert_eq!(one, run_with(3, 4096));
        let other_chunking = run_with(2, 8192);
        match (&one[0], &other_chunking[0]) {
            (
                Summary::Pair {
                    stats: p,
                    sample_a: s,
                    ..
                },
                Summary::Pair {
                    stats: q,
                    sample_a: t,
                    ..
                },
            ) => {
                assert_eq!(s, t, "sample positions depend only on the tensor");
                assert!((p.d.m2 - q.d.m2).abs() <= 1e-12 * p.d.m2);
            }
            _ => panic!("pair expected"),
        }
    }

    #[test]
    fn identical_blocks_are_told_apart_from_a_single_changed_value() {
        let a: Vec<f64> = (0..20_000)
            .map(|i| ((i * 7919 % 1013) as f64) * 1e-3)
            .collect();
        let mut b = a.clone();
        b[17_000] += 0.5;
        let (ea, eb) = (encode(DType::BF16, &a), encode(DType::BF16, &b));
        let same = encode(DType::BF16, &a);
        let opts = Options {
            threads: Some(2),
            chunk: 8192,
            ..Options::default()
        };
        let pair = |x: &[u8], y: &[u8]| {
            let out = run(
                &[Job::Pair(src(x, DType::BF16), src(y, DType::BF16))],
                &opts,
                &Progress::default(),
            )
            .unwrap();
            let Summary::Pair { stats: p, .. } = &out[0] else {
                panic!("pair expected")
            };
            *p
        };
        let (copy, changed) = (pair(&ea, &same), pair(&ea, &eb));
        assert_eq!((copy.equal, copy.d.n, copy.d.m2), (20_000, 20_000, 0.0));
        assert_eq!((copy.d_min, copy.d_max), (0.0, 0.0));
        // The one changed value (0.5 after bf16 rounding of both sides) is seen, in its block only.
        let d = {
            let mut v = [0.0; 2];
            crate::dtype::decode_into(DType::BF16, &eb[34_000..34_002], &mut v[..1]);
            crate::dtype::decode_into(DType::BF16, &ea[34_000..34_002], &mut v[1..]);
            v[0] - v[1]
        };
        assert_eq!(changed.equal, 19_999);
        assert_eq!((changed.d_min, changed.d_max), (0.0, d));
        assert!((changed.d.mean - d / 20_000.0).abs() < 1e-12);
        // A's own statistics, from the single kernel where blocks were identical and from the
        // pair kernel where not, agree to the rounding of f32 lanes.
        let (x, y) = (changed.a.moments, copy.a.moments);
        assert_eq!(
            (x.n, changed.a.min, changed.a.max),
            (y.n, copy.a.min, copy.a.max)
        );
        assert!((x.mean - y.mean).abs() <= 2e-6 * y.mean && (x.m2 - y.m2).abs() <= 2e-6 * y.m2);
    }

    /// The margins of a pair of `dtype` tensors with rows of `cols` elements, on 2 threads.
    fn pair_margins(ea: &[u8], eb: &[u8], dtype: DType, cols: usize, chunk: u64) -> Margins {
        let side = |bytes| Source {
            row_len: cols as u64,
            ..src(bytes, dtype)
        };
        let opts = Options {
            threads: Some(2),
            chunk,
            margins: true,
            ..Options::default()
        };
        let out = run(
            &[Job::Pair(side(ea), side(eb))],
            &opts,
            &Progress::default(),
        )
        .unwrap();
        let Summary::Pair {
            margins: Some(m), ..
        } = &out[0]
        else {
            panic!("margins expected")
        };
        m.clone()
    }

    #[test]
    fn row_and_column_sums_survive_chunks_that_split_rows() {
        let (rows, cols) = (300usize, 77usize);
        let a: Vec<f64> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1009) as f64) * 0.01)
            .collect();
        let b: Vec<f64> = a.iter().map(|x| x * 2.0 + 1.0).collect();
        let (ea, eb) = (encode(DType::F64, &a), encode(DType::F64, &b));
        let m = pair_margins(&ea, &eb, DType::F64, cols, 4096);
        assert_eq!(
            (m.first_row, m.rows_a.len(), m.cols_b.len()),
            (0, rows, cols)
        );
        for r in [0, 53, 299] {
            let want: f64 = a[r * cols..(r + 1) * cols].iter().sum();
            assert!(
                (m.rows_a[r] - want).abs() < 1e-9 * want.abs().max(1.0),
                "row {r}"
            );
        }
        for c in [0, 40, 76] {
            let want: f64 = (0..rows).map(|r| b[r * cols + c]).sum();
            assert!(
                (m.cols_b[c] - want).abs() < 1e-9 * want.abs().max(1.0),
                "col {c}"
            );
        }
    }

    /// Margins of values decoded to `f32` (column sums built up in `f32`, 16 terms at most) stay
    /// within 16 × 2⁻²⁴ of Σ|x| of exact sums, for rows shorter and longer than a block. (Without
    /// the flushes, or with longer `f32` partial row sums, this test fails.)
    #[test]
    fn f32_margins_stay_within_their_rounding_bound() {
        for (rows, cols) in [(300usize, 77usize), (9, 5000), (40, 1024)] {
            // Large values at the head of every 100th row and of every row, small ones elsewhere:
            // long runs of small terms added to a large sum are where f32 sums lose the most.
            let value = |i: usize, s: f64| {
                let (r, c) = (i / cols, i % cols);
                if r % 100 == 0 || c == 0 {
                    4096.0 * s
                } else {
                    (1.0 + (i * 7919 % 100) as f64 / 128.0) * 2f64.powi(-12) * s
                }
            };
            let encode_round = |s: f64| {
                let v: Vec<f64> = (0..rows * cols).map(|i| value(i, s)).collect();
                let bytes = encode(DType::BF16, &v);
                let mut exact = vec![0.0; v.len()];
                crate::dtype::decode_into(DType::BF16, &bytes, &mut exact);
                (bytes, exact)
            };
            let ((ea, a), (eb, b)) = (encode_round(1.0), encode_round(-0.37));
            let m = pair_margins(&ea, &eb, DType::BF16, cols, 8192);
            let bound = |xs: &mut dyn Iterator<Item = f64>| {
                let (sum, abs) = xs.fold((0.0, 0.0), |(s, t), x| (s + x, t + x.abs()));
                (sum, 16.0 * 2f64.powi(-24) * abs)
            };
            for (x, got_rows, got_cols) in [(&a, &m.rows_a, &m.cols_a), (&b, &m.rows_b, &m.cols_b)]
            {
                for r in 0..rows {
                    let (want, tol) = bound(&mut x[r * cols..(r + 1) * cols].iter().copied());
                    assert!((got_rows[r] - want).abs() <= tol, "{rows}x{cols} row {r}");
                }
                for c in 0..cols {
                    let (want, tol) = bound(&mut (0..rows).map(|r| x[r * cols + c]));
                    assert!((got_cols[c] - want).abs() <= tol, "{rows}x{cols} col {c}");
                }
            }
        }
    }

    /// Q4_K blocks with valid scales and pseudo-random codes, and their values decoded in one go.
    fn q4_k_tensor(blocks: usize) -> (Vec<u8>, Vec<f64>) {
        let mut bytes = Vec::with_capacity(blocks * 144);
        for b in 0..blocks {
            bytes.extend(half::f16::from_f32(0.01 + b as f32 * 1e-4).to_le_bytes());
            bytes.extend(half::f16::from_f32(0.003).to_le_bytes());
            bytes.extend((0..12).map(|i| (i * 37 + b * 11) as u8));
            bytes.extend((0..128).map(|i| splitmix64((b * 128 + i) as u64) as u8));
        }
        let mut values = vec![0.0; blocks * 256];
        decode_into(DType::Q4_K, &bytes, &mut values);
        (bytes, values)
    }

    #[test]
    fn block_quantised_sources_read_any_range_single_elements_and_pairs() {
        let (bytes, values) = q4_k_tensor(40);
        let x = src(&bytes, DType::Q4_K);
        assert_eq!(x.numel(), 40 * 256);
        for (start, len) in [(0, 256), (3, 1), (255, 2), (300, 1000), (10_000, 240)] {
            let mut out = vec![0.0; len];
            x.decode(start, &mut out);
            assert_eq!(
                out,
                values[start as usize..start as usize + len],
                "{start}+{len}"
            );
        }
        let wide = encode(DType::F64, &values);
        let jobs = [
            Job::Sample(x),
            Job::Pair(x, src(&wide, DType::F64)),
            Job::Single(x),
        ];
        let opts = Options {
            threads: Some(2),
            chunk: 5000, // rounded up to whole blocks
            sample_size: 300,
            ..Options::default()
        };
        let out = run(&jobs, &opts, &Progress::default()).unwrap();
        let want: Vec<f64> = sample_positions(x.numel(), 300)
            .into_iter()
            .map(|p| values[p as usize])
            .collect();
        let Summary::Single { sample, .. } = &out[0] else {
            panic!("single expected")
        };
        assert_eq!(sample, &want);
        let Summary::Pair {
            stats: p,
            sample_a: sa,
            sample_b: sb,
            ..
        } = &out[1]
        else {
            panic!("pair expected")
        };
        assert_eq!((p.equal, sa, sb), (values.len() as u64, &want, &want));
        let Summary::Single { stats: v, .. } = &out[2] else {
            panic!("single expected")
        };
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!((v.moments.mean - mean).abs() < 1e-12);
    }

    #[test]
    fn head_pair_rows_are_read_in_logical_order() {
        // 2 heads of 2 × 3 rows, 32 columns (one Q8_0 block per row); logical row r holds r.
        let (rows, cols) = (12u64, 32u64);
        let hp = HeadPairs {
            group: 6,
            row_elems: cols,
        };
        let mut stored = vec![0.0; (rows * cols) as usize];
        for r in 0..rows {
            let g = hp.stored_row(r) as usize;
            for c in 0..cols as usize {
                stored[g * cols as usize + c] = r as f64 + c as f64 / 8.0;
            }
        }
        assert_eq!(
            (0..6).map(|r| hp.stored_row(r)).collect::<Vec<_>>(),
            [0, 2, 4, 1, 3, 5]
        );
        let mut q8 = Vec::new();
        for row in stored.chunks(32) {
            q8.extend(half::f16::from_f32(0.125).to_le_bytes());
            q8.extend(row.iter().map(|v| (v / 0.125).round() as i8 as u8));
        }
        for bytes_dtype in [(encode(DType::F32, &stored), DType::F32), (q8, DType::Q8_0)] {
            let x = Source {
                row_len: cols,
                head_pairs: Some(hp),
                ..src(&bytes_dtype.0, bytes_dtype.1)
            };
            let mut all = vec![0.0; (rows * cols) as usize];
            x.decode(0, &mut all);
            for (i, v) in all.iter().enumerate() {
                assert_eq!(
                    *v,
                    (i as u64 / cols) as f64 + (i as u64 % cols) as f64 / 8.0
                );
            }
            let mut part = vec![0.0; 40];
            x.decode(5 * cols + 30, &mut part);
            assert_eq!(part, all[(5 * cols + 30) as usize..][..40]);
            // Read transposed: element (i, j) of the transpose is logical (j, i).
            let t = Source {
                row_len: rows,
                transposed: true,
                ..x
            };
            let mut tr = vec![0.0; (rows * cols) as usize];
            t.decode(0, &mut tr);
            assert_eq!(tr[(3 * rows + 7) as usize], all[(7 * cols + 3) as usize]);
        }
    }

    #[test]
    fn cancelled_runs_stop() {
        let bytes = encode(DType::F32, &vec![1.0; 10_000]);
        let p = Progress::default();
        p.cancel.store(true, Ordering::Relaxed);
        let r = run(
            &[Job::Single(src(&bytes, DType::F32))],
            &Options::default(),
            &p,
        );
        assert!(matches!(r, Err(Error::Cancelled)));
    }

    #[test]
    fn zero_threads_is_refused() {
        assert!(resolve_threads(Some(0)).is_err());
        assert_eq!(resolve_threads(Some(3)).unwrap(), 3);
        assert_eq!(resolve_threads(Some(MAX_THREADS)).unwrap(), MAX_THREADS);
        let msg = resolve_threads(Some(10_000)).unwrap_err().to_string();
        assert_eq!(msg, "threads must be at most 1024, got 10000");
        let msg = resolve_threads(Some(usize::MAX)).unwrap_err().to_string();
        assert!(msg.contains("18446744073709551615 or more"), "{msg}");
        let big = Options {
            sample_size: MAX_SAMPLE + 1,
            ..Options::default()
        };
        assert!(big
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("sample size"));
    }

    fn print_of(bytes: &[u8], dtype: DType, row_len: u64, threads: usize, chunk: u64) -> PrintPart {
        let src = Source {
            row_len,
            ..Source::plain(bytes, dtype)
        };
        let opts = Options {
            threads: Some(threads),
            chunk,
            ..Options::default()
        };
        match run(&[Job::Print(src)], &opts, &Progress::default())
            .unwrap()
            .pop()
        {
            Some(Summary::Print(p)) => *p,
            _ => panic!("print summary expected"),
        }
    }

    #[test]
    fn the_streamed_digest_is_the_one_of_the_whole_bytes_whatever_the_chunking() {
        // 700k bf16 values: 1.4 MB, two pieces, the second one short; chunks that split pieces.
        let x: Vec<f64> = (0..700_001u64)
            .map(|i| ((i * 7919 % 2003) as f64) * 1e-3)
            .collect();
        let bytes = encode(DType::BF16, &x);
        let want = content_digest(&bytes);
        for (threads, chunk) in [(1, 1 << 20), (2, 4096), (3, 100_000), (2, 1 << 22)] {
            let p = print_of(&bytes, DType::BF16, 0, threads, chunk);
            assert_eq!(p.pieces.len(), 2);
            assert_eq!(combine(&p.pieces), want, "threads {threads}, chunk {chunk}");
        }
        // One piece: the SHA-256 of the piece's digest, not of the bytes.
        let small = encode(DType::F32, &[1.0, 2.0, 3.0]);
        assert_eq!(
            content_digest(&small),
            <[u8; 32]>::from(Sha256::digest(Sha256::digest(&small)))
        );
        assert_eq!(content_digest(&[]), <[u8; 32]>::from(Sha256::digest(b"")));
    }

    #[test]
    fn row_and_column_squares_survive_chunks_that_split_rows() {
        let (rows, cols) = (301usize, 77usize);
        let a: Vec<f64> = (0..rows * cols)
            .map(|i| (((i * 7919 % 1009) as f64 - 500.0) * 0.01) as f32 as f64)
            .collect();
        let bytes = encode(DType::F32, &a);
        let one = print_of(&bytes, DType::F32, cols as u64, 1, 4096);
        assert_eq!(one, print_of(&bytes, DType::F32, cols as u64, 2, 4096));
        let m = one.axes.expect("axes");
        assert_eq!((m.row_sq.len(), m.col_sq.len()), (rows, cols));
        for r in [0, 53, 300] {
            let row = &a[r * cols..(r + 1) * cols];
            let sq: f64 = row.iter().map(|v| v * v).sum();
            assert!((m.row_sq[r] - sq).abs() < 1e-9 * sq, "row {r}");
            let s: f64 = row.iter().sum();
            assert!(
                (m.row_sum[r] - s).abs() < 1e-9 * s.abs().max(1.0),
                "row {r}"
            );
        }
        for c in [0, 40, 76] {
            let sq: f64 = (0..rows).map(|r| a[r * cols + c].powi(2)).sum();
            assert!((m.col_sq[c] - sq).abs() < 1e-9 * sq, "col {c}");
        }
    }
}
