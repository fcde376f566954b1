//! The hot path: statistics of one block of decoded values (a few thousand elements, in cache).
//!
//! A block is summarised in two passes: sums, extremes and equal counts first, then central moment
//! sums about the block means. Both passes keep `L` independent lane accumulators (one SIMD
//! register's worth) so the compiler vectorises them, and move them into `f64` block totals every
//! [`Lane::TERMS`] terms per lane. Values of dtypes that are exact in `f32` (bf16, f16, fp8, small
//! integers) are reduced in `f32` lanes, twice as many per register, at a stated cost in rounding
//! (see [`Lane`]); everything else in `f64`. x86-64 builds carry AVX-512 and AVX2 copies of the
//! kernels, picked at run time; results do not depend on the thread count on a given machine.
//!
//! Blocks holding NaN or infinities (detected from the sums) take a scalar path that leaves those
//! elements out. A block whose values are all equal gets that value as its exact mean, so constant
//! tensors (and identical pairs) report a spread of exactly zero rather than rounding noise.

use crate::stats::moments::{CoMoment, Moments};
use crate::stats::summary::{PairStats, ValueStats};

/// A lane element type the block kernels run in: `f64`, or `f32` for values that are exact in it.
///
/// Each lane sums at most [`Lane::TERMS`] terms before its sum moves into an `f64` total, so errors
/// do not grow with the tensor. In `f32` lanes a term (x − c)^k costs up to ~4 roundings of 2⁻²⁴
/// and a 16-term sum 15 more: sums of like-signed terms are good to 1.2e-6 relative at worst
/// (about 3e-7 measured on noised bf16 and f16 copies), which `tests/test_pair_stats.py` checks at
/// 2e-6. Deviations are taken about the block mean rounded to `f32`, which Sterbenz's lemma makes
/// exact for values within a factor of two of it, and are moved to the exact mean in `f64`.
pub trait Lane:
    Copy
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::AddAssign
{
    /// Terms each lane sums before they are moved into `f64` totals (a sub-block is `L` times as
    /// many elements).
    const TERMS: usize;
    /// Zero.
    const ZERO: Self;
    /// +∞.
    const INF: Self;
    /// −∞.
    const NEG_INF: Self;
    /// Exact widening.
    fn wide(self) -> f64;
    /// Rounding narrowing.
    fn narrow(v: f64) -> Self;
    /// `self · y + z`, fused when `F` (the kernel copy is compiled for a CPU with FMA).
    fn fma<const F: bool>(self, y: Self, z: Self) -> Self;
    /// Bit-identical values.
    fn same_bits(self, o: Self) -> bool;
    /// The public pair kernel of this lane type.
    fn pair(a: &[Self], b: &[Self]) -> PairStats;
}

impl Lane for f64 {
    const TERMS: usize = 256 / 8;
    const ZERO: f64 = 0.0;
    const INF: f64 = f64::INFINITY;
    const NEG_INF: f64 = f64::NEG_INFINITY;
    #[inline(always)]
    fn wide(self) -> f64 {
        self
    }
    #[inline(always)]
    fn narrow(v: f64) -> f64 {
        v
    }
    #[inline(always)]
    fn fma<const F: bool>(self, y: f64, z: f64) -> f64 {
        if F {
            self.mul_add(y, z)
        } else {
            self * y + z
        }
    }
    #[inline(always)]
    fn same_bits(self, o: f64) -> bool {
        self.to_bits() == o.to_bits()
    }
    fn pair(a: &[f64], b: &[f64]) -> PairStats {
        pair_block(a, b)
    }
}

impl Lane for f32 {
    const TERMS: usize = 16;
    const ZERO: f32 = 0.0;
    const INF: f32 = f32::INFINITY;
    const NEG_INF: f32 = f32::NEG_INFINITY;
    #[inline(always)]
    fn wide(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn narrow(v: f64) -> f32 {
        v as f32
    }
    #[inline(always)]
    fn fma<const F: bool>(self, y: f32, z: f32) -> f32 {
        if F {
            self.mul_add(y, z)
        } else {
            self * y + z
        }
    }
    #[inline(always)]
    fn same_bits(self, o: f32) -> bool {
        self.to_bits() == o.to_bits()
    }
    fn pair(a: &[f32], b: &[f32]) -> PairStats {
        pair_block_f32(a, b)
    }
}

/// Block totals kept in `W` lanes of `f64`, so that adding a sub-block's lane sums into them is a
/// few vector operations (lane `l` of the lane type goes to total lane `l % W`: one register of
/// `f64` takes one register of `f64` lanes, or half of one of `f32` lanes). The lanes are added up
/// once, at the end of the block, in a fixed order.
struct Totals<const W: usize, const K: usize>([[f64; W]; K]);

impl<const W: usize, const K: usize> Totals<W, K> {
    #[inline(always)]
    fn new() -> Self {
        Totals([[0.0; W]; K])
    }

    /// Adds lane partial sums into the totals and clears them.
    #[inline(always)]
    fn flush<T: Lane, const L: usize>(&mut self, lanes: &mut [[T; L]; K]) {
        for (t, lane) in self.0.iter_mut().zip(lanes.iter_mut()) {
            let (low, high) = lane.split_at(W.min(L));
            for (u, v) in t.iter_mut().zip(low) {
                *u += v.wide();
            }
            for (u, v) in t.iter_mut().zip(high) {
                *u += v.wide();
            }
            *lane = [T::ZERO; L];
        }
    }

    #[inline(always)]
    fn sum(&self) -> [f64; K] {
        self.0.map(|t| t.iter().sum::<f64>())
    }
}

#[inline(always)]
fn lane_min<T: Lane, const L: usize>(v: &[T; L]) -> f64 {
    v.iter()
        .fold(T::INF, |m, &x| if x < m { x } else { m })
        .wide()
}

#[inline(always)]
fn lane_max<T: Lane, const L: usize>(v: &[T; L]) -> f64 {
    v.iter()
        .fold(T::NEG_INF, |m, &x| if x > m { x } else { m })
        .wide()
}

/// One step of a [`sweep`]: an element pair (lane, a, b), or the end of a sub-block.
enum Step<T> {
    Elem(usize, T, T),
    Flush,
}

/// Calls `f(Step::Elem(lane, a[i], b[i]))` for every position, `L` lanes at a time, in sub-blocks of
/// [`Lane::TERMS`]` · L` elements, and `f(Step::Flush)` after each sub-block. Whole lanes come from `as_chunks`,
/// so the loop has no bounds checks; callers pass `#[inline(always)]` closures so it vectorises.
#[inline(always)]
fn sweep<T: Lane, const L: usize>(a: &[T], b: &[T], mut f: impl FnMut(Step<T>)) {
    let n = a.len().min(b.len());
    let mut start = 0;
    while start < n {
        let end = (start + T::TERMS * L).min(n);
        let (ca, ra) = a[start..end].as_chunks::<L>();
        let (cb, rb) = b[start..end].as_chunks::<L>();
        for (x, y) in ca.iter().zip(cb) {
            for l in 0..L {
                f(Step::Elem(l, x[l], y[l]));
            }
        }
        if !ra.is_empty() {
            // The tail goes through the same constant lane indices as whole chunks (with the
            // lanes past its end skipped), so the accumulators can live in registers throughout.
            let (mut x, mut y) = ([T::ZERO; L], [T::ZERO; L]);
            x[..ra.len()].copy_from_slice(ra);
            y[..rb.len()].copy_from_slice(rb);
            for l in 0..L {
                if l < ra.len() {
                    f(Step::Elem(l, x[l], y[l]));
                }
            }
        }
        f(Step::Flush);
        start = end;
    }
}

/// The stored bytes (of each side) that the next block will read.
///
/// A kernel given them requests them from memory a few cache lines at a time while it computes.
/// Requested all at once, they would exceed the misses a core can have outstanding and stall it
/// until most had arrived, so reading and arithmetic would take turns instead of overlapping.
#[derive(Debug, Clone, Copy)]
pub struct Ahead<'a>(pub [&'a [u8]; 2]);

impl<'a> Ahead<'a> {
    /// Nothing to request.
    pub const NONE: Ahead<'static> = Ahead([&[], &[]]);

    /// Requests in `steps` equal parts.
    fn spread(self, steps: usize) -> Fetch<'a> {
        let longest = self.0[0].len().max(self.0[1].len());
        Fetch {
            parts: self.0,
            at: 0,
            step: longest.div_ceil(steps.max(1)).next_multiple_of(64),
        }
    }
}

/// [`Ahead`] being requested one part at a time.
struct Fetch<'a> {
    parts: [&'a [u8]; 2],
    at: usize,
    step: usize,
}

impl Fetch<'_> {
    /// Requests the next part of each side.
    #[inline(always)]
    fn next(&mut self) {
        let (at, end) = (self.at, self.at + self.step);
        self.at = end;
        for part in self.parts {
            if at < part.len() {
                prefetch(&part[at..end.min(part.len())]);
            }
        }
    }
}

/// Hints the CPU to start loading `bytes` into cache.
#[inline(always)]
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: prefetching is a hint with no architectural effect; the pointer is valid.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Whether `f32` lanes hold every power up to the fourth of deviations spanning `[lo, hi]` without
/// overflow, and without the largest of them falling near the subnormal range.
fn f32_safe(lo: f64, hi: f64) -> bool {
    let (big, spread) = (lo.abs().max(hi.abs()), hi - lo);
    big <= (1u64 << 28) as f64 && (spread == 0.0 || spread >= 1.0 / (1u64 << 20) as f64)
}

/// Central moments about `mean` from power sums `s = [Σe², Σe³, Σe⁴]` of deviations e = x − c taken
/// about `c`, a rounding of the mean to the lane type (`c == mean` in `f64` lanes: no correction).
fn recentre(n: u64, mean: f64, c: f64, s: [f64; 3]) -> Moments {
    let (nf, d) = (n as f64, mean - c);
    Moments {
        n,
        mean,
        m2: s[0] - nf * d * d,
        m3: s[1] - 3.0 * d * s[0] + 2.0 * nf * d * d * d,
        m4: s[2] - 4.0 * d * s[1] + 6.0 * d * d * s[0] - 3.0 * nf * d * d * d * d,
    }
}

/// [`sweep`] for one sequence: `f(Some((lane, x[i])))` for every position, `f(None)` after every
/// sub-block.
#[inline(always)]
fn sweep1<T: Lane, const L: usize>(x: &[T], mut f: impl FnMut(Option<(usize, T)>)) {
    let (chunks, tail) = x.as_chunks::<L>();
    for sub in chunks.chunks(T::TERMS) {
        for c in sub {
            for (l, &v) in c.iter().enumerate() {
                f(Some((l, v)));
            }
        }
        f(None);
    }
    if !tail.is_empty() {
        let mut c = [T::ZERO; L];
        c[..tail.len()].copy_from_slice(tail);
        for (l, &v) in c.iter().enumerate() {
            if l < tail.len() {
                f(Some((l, v)));
            }
        }
        f(None);
    }
}

#[inline(always)]
fn single_generic<T: Lane, const L: usize, const W: usize>(
    x: &[T],
    wide: fn(&[T]) -> Vec<f64>,
    ahead: Ahead<'_>,
) -> ValueStats {
    let n = x.len();
    if n == 0 {
        return ValueStats::default();
    }
    let (mut lo, mut hi) = ([T::INF; L], [T::NEG_INF; L]);
    let mut sums = [[T::ZERO; L]; 1];
    let mut total = Totals::<W, 1>::new();
    // Both sweeps flush once per `TERMS · L` elements (and once more after a tail, which then
    // requests nothing).
    let mut fetch = ahead.spread(2 * n.div_ceil(T::TERMS * L));
    sweep1::<T, L>(
        x,
        #[inline(always)]
        |step| match step {
            Some((l, v)) => {
                sums[0][l] += v;
                lo[l] = if v < lo[l] { v } else { lo[l] };
                hi[l] = if v > hi[l] { v } else { hi[l] };
            }
            None => {
                total.flush(&mut sums);
                fetch.next();
            }
        },
    );
    let total = total.sum();
    if !total[0].is_finite() {
        return single_masked(&wide(x));
    }
    let (min, max) = (lane_min(&lo), lane_max(&hi));
    if size_of::<T>() < 8 && !f32_safe(min, max) {
        return single_block(&wide(x));
    }
    let mean = if min == max { min } else { total[0] / n as f64 };
    let c = T::narrow(mean);
    let mut acc = [[T::ZERO; L]; 3];
    let mut s = Totals::<W, 3>::new();
    sweep1::<T, L>(
        x,
        #[inline(always)]
        |step| match step {
            Some((l, v)) => {
                let e = v - c;
                let e2 = e * e;
                acc[0][l] += e2;
                acc[1][l] += e2 * e;
                acc[2][l] += e2 * e2;
            }
            None => {
                s.flush(&mut acc);
                fetch.next();
            }
        },
    );
    let s = s.sum();
    ValueStats {
        count: n as u64,
        moments: recentre(n as u64, mean, c.wide(), s),
        min,
        max,
        ..ValueStats::default()
    }
}

fn widen(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

fn keep(x: &[f64]) -> Vec<f64> {
    x.to_vec()
}

/// The scalar path for blocks holding non-finite values (or sums that overflow).
fn single_masked(x: &[f64]) -> ValueStats {
    let mut st = ValueStats {
        count: x.len() as u64,
        ..ValueStats::default()
    };
    let mut finite = Vec::with_capacity(x.len());
    for &v in x {
        if v.is_nan() {
            st.nan += 1;
        } else if v == f64::INFINITY {
            st.pos_inf += 1;
        } else if v == f64::NEG_INFINITY {
            st.neg_inf += 1;
        } else {
            finite.push(v);
            st.min = st.min.min(v);
            st.max = st.max.max(v);
        }
    }
    st.moments = moments_robust(&finite);
    st
}

/// Two-pass moments that survive values near the f64 range: sums are taken after scaling by a
/// power of two (exact), so that `Σx` cannot overflow where every `x` is finite.
fn moments_robust(v: &[f64]) -> Moments {
    if v.is_empty() {
        return Moments::default();
    }
    let n = v.len() as f64;
    let (lo, hi) = v
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| {
            (l.min(x), h.max(x))
        });
    let mean = if lo == hi {
        lo
    } else {
        v.iter().map(|&x| x * 0.5f64.powi(16)).sum::<f64>() / n * 2f64.powi(16)
    };
    let (mut m2, mut m3, mut m4) = (0.0, 0.0, 0.0);
    for &x in v {
        let e = x - mean;
        let e2 = e * e;
        m2 += e2;
        m3 += e2 * e;
        m4 += e2 * e2;
    }
    Moments {
        n: v.len() as u64,
        mean,
        m2,
        m3,
        m4,
    }
}

#[inline(always)]
fn pair_generic<T: Lane, const L: usize, const W: usize, const F: bool>(
    a: &[T],
    b: &[T],
    wide: fn(&[T]) -> Vec<f64>,
    ahead: Ahead<'_>,
) -> PairStats {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    if n == 0 {
        return PairStats::default();
    }
    if n > u32::MAX as usize {
        // Keeps the 32-bit equal counts below overflow, whatever a caller passes.
        let (a0, a1) = a.split_at(n / 2);
        let (b0, b1) = b.split_at(n / 2);
        // Through the public kernel, not a direct recursion, which would keep this function from
        // being inlined into (and compiled with the features of) its SIMD copies.
        return T::pair(a0, b0).merge(&T::pair(a1, b1));
    }
    let (mut loa, mut hia) = ([T::INF; L], [T::NEG_INF; L]);
    let (mut lob, mut hib) = ([T::INF; L], [T::NEG_INF; L]);
    let (mut lod, mut hid) = ([T::INF; L], [T::NEG_INF; L]);
    // Equal counts in 32-bit lanes (the width of f32 lanes): fewer than 2³² elements get here.
    let mut eq = [0u32; L];
    let mut sums = [[T::ZERO; L]; 3];
    let mut tot = Totals::<W, 3>::new();
    // Both sweeps flush once per `TERMS · L` elements; each flush requests its share of `ahead`.
    let mut fetch = ahead.spread(2 * n.div_ceil(T::TERMS * L));
    sweep::<T, L>(
        a,
        b,
        #[inline(always)]
        |step| match step {
            Step::Elem(l, x, y) => {
                let d = y - x;
                sums[0][l] += x;
                sums[1][l] += y;
                sums[2][l] += d;
                loa[l] = if x < loa[l] { x } else { loa[l] };
                hia[l] = if x > hia[l] { x } else { hia[l] };
                lob[l] = if y < lob[l] { y } else { lob[l] };
                hib[l] = if y > hib[l] { y } else { hib[l] };
                lod[l] = if d < lod[l] { d } else { lod[l] };
                hid[l] = if d > hid[l] { d } else { hid[l] };
                eq[l] += x.same_bits(y) as u32;
            }
            Step::Flush => {
                tot.flush(&mut sums);
                fetch.next();
            }
        },
    );
    let tot = tot.sum();
    // A finite sum proves every term finite (a NaN or ±∞ term cannot cancel out).
    if !tot.iter().all(|t| t.is_finite()) {
        return pair_masked(&wide(a), &wide(b));
    }
    let nf = n as f64;
    let (mina, maxa) = (lane_min(&loa), lane_max(&hia));
    let (minb, maxb) = (lane_min(&lob), lane_max(&hib));
    let (mind, maxd) = (lane_min(&lod), lane_max(&hid));
    if size_of::<T>() < 8 && !(f32_safe(mina, maxa) && f32_safe(minb, maxb) && f32_safe(mind, maxd))
    {
        return pair_block(&wide(a), &wide(b));
    }
    let exact = |lo: f64, hi: f64, sum: f64| if lo == hi { lo } else { sum / nf };
    let (ma, mb, md) = (
        exact(mina, maxa, tot[0]),
        exact(minb, maxb, tot[1]),
        exact(mind, maxd, tot[2]),
    );
    // Deviations are taken about the means rounded to the lane type; `recentre` moves the sums to
    // the exact means afterwards (a no-op in f64 lanes).
    let (ca, cb, cd) = (T::narrow(ma), T::narrow(mb), T::narrow(md));
    let mut acc = [[T::ZERO; L]; 11];
    let mut c = Totals::<W, 11>::new();
    sweep::<T, L>(
        a,
        b,
        #[inline(always)]
        |step| match step {
            Step::Elem(l, x, y) => {
                let ea = x - ca;
                let eb = y - cb;
                let ed = (y - x) - cd;
                let (ea2, eb2, ed2) = (ea * ea, eb * eb, ed * ed);
                acc[0][l] += ea2;
                acc[1][l] = ea2.fma::<F>(ea, acc[1][l]);
                acc[2][l] = ea2.fma::<F>(ea2, acc[2][l]);
                acc[3][l] += eb2;
                acc[4][l] = eb2.fma::<F>(eb, acc[4][l]);
                acc[5][l] = eb2.fma::<F>(eb2, acc[5][l]);
                acc[6][l] += ed2;
                acc[7][l] = ed2.fma::<F>(ed, acc[7][l]);
                acc[8][l] = ed2.fma::<F>(ed2, acc[8][l]);
                acc[9][l] = ed.fma::<F>(ea, acc[9][l]);
                acc[10][l] = ea.fma::<F>(eb, acc[10][l]);
            }
            Step::Flush => {
                c.flush(&mut acc);
                fetch.next();
            }
        },
    );
    let c = c.sum();
    let n64 = n as u64;
    let (ka, kb, kd) = (ma - ca.wide(), mb - cb.wide(), md - cd.wide());
    let am = recentre(n64, ma, ca.wide(), [c[0], c[1], c[2]]);
    let bm = recentre(n64, mb, cb.wide(), [c[3], c[4], c[5]]);
    let dm = recentre(n64, md, cd.wide(), [c[6], c[7], c[8]]);
    let stats = |m: Moments, min: f64, max: f64| ValueStats {
        count: n64,
        moments: m,
        min,
        max,
        ..ValueStats::default()
    };
    PairStats {
        a: stats(am, mina, maxa),
        b: stats(bm, minb, maxb),
        d: dm,
        d_min: mind,
        d_max: maxd,
        a_on_pair: am,
        b_on_pair: bm,
        // Σ(x − c)(y − c') = Σ(x − x̄)(y − ȳ) + n·k·k' when c = x̄ − k and c' = ȳ − k'.
        da: CoMoment {
            n: n64,
            mean_x: md,
            mean_y: ma,
            c: c[9] - nf * kd * ka,
        },
        ab: CoMoment {
            n: n64,
            mean_x: ma,
            mean_y: mb,
            c: c[10] - nf * ka * kb,
        },
        equal: eq.iter().map(|&e| e as u64).sum(),
    }
}

/// The scalar path for pair blocks holding non-finite values.
fn pair_masked(a: &[f64], b: &[f64]) -> PairStats {
    let (mut fa, mut fb, mut fd) = (Vec::new(), Vec::new(), Vec::new());
    let mut equal = 0u64;
    for (&x, &y) in a.iter().zip(b) {
        equal += (x.to_bits() == y.to_bits()) as u64;
        if x.is_finite() && y.is_finite() {
            fa.push(x);
            fb.push(y);
            fd.push(y - x);
        }
    }
    let (am, bm, dm) = (
        moments_robust(&fa),
        moments_robust(&fb),
        moments_robust(&fd),
    );
    let co = |x: &[f64], mx: f64, y: &[f64], my: f64| -> f64 {
        x.iter().zip(y).map(|(&u, &v)| (u - mx) * (v - my)).sum()
    };
    PairStats {
        a: single_masked(a),
        b: single_masked(b),
        d: dm,
        d_min: fd.iter().copied().fold(f64::INFINITY, f64::min),
        d_max: fd.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        a_on_pair: am,
        b_on_pair: bm,
        da: CoMoment {
            n: dm.n,
            mean_x: dm.mean,
            mean_y: am.mean,
            c: co(&fd, dm.mean, &fa, am.mean),
        },
        ab: CoMoment {
            n: dm.n,
            mean_x: am.mean,
            mean_y: bm.mean,
            c: co(&fa, am.mean, &fb, bm.mean),
        },
        equal,
    }
}

/// Defines a public kernel with AVX-512+FMA, AVX2+FMA and portable copies, picked at run time.
macro_rules! dispatched {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $aty:ty),*) -> $ret:ty {
        avx512: $e512:expr, avx2: $e256:expr, portable: $ep:expr $(,)?
    }) => {
        $(#[$doc])*
        pub fn $name($($arg: $aty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,fma")]
                fn wide512($($arg: $aty),*) -> $ret {
                    $e512
                }
                #[target_feature(enable = "avx2,fma")]
                fn wide256($($arg: $aty),*) -> $ret {
                    $e256
                }
                if let Some(w) = simd() {
                    // SAFETY: `simd` checked that the CPU has the features of the copy it picks.
                    return unsafe {
                        if w == 512 {
                            wide512($($arg),*)
                        } else {
                            wide256($($arg),*)
                        }
                    };
                }
            }
            $ep
        }
    };
}

/// Statistics of one block of a tensor pair (`a` and `b` of equal length).
///
/// The AVX-512 and AVX2 copies also use fused multiply-adds where the CPU has them, so the last
/// bits of the higher moments can differ between machines (never between thread counts).
pub fn pair_block(a: &[f64], b: &[f64]) -> PairStats {
    pair_block_ahead(a, b, Ahead::NONE)
}

/// [`pair_block`] for values exact in `f32` (decoded from a dtype with [`DType::fits_f32`]): twice
/// the lanes per register. Blocks whose values or differences could overflow or lose their digits
/// in `f32` powers (see [`f32_safe`]) are widened and take the `f64` kernel, so the result differs
/// from [`pair_block`]'s only by the rounding of sub-block sums (relative 1.2e-6 at most) and in
/// the extremes of b − a, which are those of b − a rounded to `f32` (within 2⁻²⁴ of the exact ones,
/// relative: 65504 − 5.08e-4 in `f16` comes out as 65504). Taking them exactly, in `f64` lanes,
/// made this kernel about a fifth slower.
///
/// [`DType::fits_f32`]: crate::dtype::DType::fits_f32
pub fn pair_block_f32(a: &[f32], b: &[f32]) -> PairStats {
    pair_block_f32_ahead(a, b, Ahead::NONE)
}

dispatched! {
    /// [`pair_block`], requesting the bytes of `ahead` from memory while it computes.
    fn pair_block_ahead(a: &[f64], b: &[f64], ahead: Ahead<'_>) -> PairStats {
        avx512: pair_generic::<f64, 8, 8, true>(a, b, keep, ahead),
        avx2: pair_generic::<f64, 4, 4, true>(a, b, keep, ahead),
        portable: pair_generic::<f64, 2, 2, false>(a, b, keep, ahead),
    }
}

dispatched! {
    /// [`pair_block_f32`], requesting the bytes of `ahead` from memory while it computes.
    fn pair_block_f32_ahead(a: &[f32], b: &[f32], ahead: Ahead<'_>) -> PairStats {
        avx512: pair_generic::<f32, 16, 8, true>(a, b, widen, ahead),
        avx2: pair_generic::<f32, 8, 4, true>(a, b, widen, ahead),
        portable: pair_generic::<f32, 4, 2, false>(a, b, widen, ahead),
    }
}

/// Statistics of one block of a single tensor.
pub fn single_block(x: &[f64]) -> ValueStats {
    single_block_ahead(x, Ahead::NONE)
}

/// [`single_block`] for values exact in `f32`, as [`pair_block_f32`] is to [`pair_block`].
pub fn single_block_f32(x: &[f32]) -> ValueStats {
    single_block_f32_ahead(x, Ahead::NONE)
}

dispatched! {
    /// [`single_block`], requesting the bytes of `ahead` from memory while it computes.
    fn single_block_ahead(x: &[f64], ahead: Ahead<'_>) -> ValueStats {
        avx512: single_generic::<f64, 8, 8>(x, keep, ahead),
        avx2: single_generic::<f64, 4, 4>(x, keep, ahead),
        portable: single_generic::<f64, 2, 2>(x, keep, ahead),
    }
}

dispatched! {
    /// [`single_block_f32`], requesting the bytes of `ahead` from memory while it computes.
    fn single_block_f32_ahead(x: &[f32], ahead: Ahead<'_>) -> ValueStats {
        avx512: single_generic::<f32, 16, 8>(x, widen, ahead),
        avx2: single_generic::<f32, 8, 4>(x, widen, ahead),
        portable: single_generic::<f32, 4, 2>(x, widen, ahead),
    }
}

/// Adds one row segment `x` of a matrix to the sums of its columns (`cols`, of equal length) and
/// returns the segment's sum, so row and column margins take one read. The row sum is kept in eight
/// partial sums, which fixes the order of additions and so the result.
#[inline(always)]
fn columns_generic<T: Copy + Into<f64>>(cols: &mut [f64], x: &[T]) -> f64 {
    let (cc, cr) = cols.as_chunks_mut::<8>();
    let (xc, xr) = x.as_chunks::<8>();
    let mut acc = [0.0f64; 8];
    for (c, v) in cc.iter_mut().zip(xc) {
        for l in 0..8 {
            let v: f64 = v[l].into();
            c[l] += v;
            acc[l] += v;
        }
    }
    let mut tail = 0.0;
    for (c, &v) in cr.iter_mut().zip(xr) {
        let v: f64 = v.into();
        *c += v;
        tail += v;
    }
    acc.iter().sum::<f64>() + tail
}

/// [`columns_generic`] for sums and sums of squares: returns the segment's Σx and Σx².
#[inline(always)]
fn columns_sq_generic<T: Copy + Into<f64>>(
    cols: &mut [f64],
    cols_sq: &mut [f64],
    x: &[T],
) -> (f64, f64) {
    let (cc, cr) = cols.as_chunks_mut::<8>();
    let (qc, qr) = cols_sq.as_chunks_mut::<8>();
    let (xc, xr) = x.as_chunks::<8>();
    let (mut acc, mut sq) = ([0.0f64; 8], [0.0f64; 8]);
    for ((c, q), v) in cc.iter_mut().zip(qc.iter_mut()).zip(xc) {
        for l in 0..8 {
            let v: f64 = v[l].into();
            c[l] += v;
            q[l] += v * v;
            acc[l] += v;
            sq[l] += v * v;
        }
    }
    let (mut tail, mut tail_sq) = (0.0, 0.0);
    for ((c, q), &v) in cr.iter_mut().zip(qr.iter_mut()).zip(xr) {
        let v: f64 = v.into();
        *c += v;
        *q += v * v;
        tail += v;
        tail_sq += v * v;
    }
    (
        acc.iter().sum::<f64>() + tail,
        sq.iter().sum::<f64>() + tail_sq,
    )
}

dispatched! {
    /// Row and column sums of a matrix, one row segment at a time (see [`columns_generic`]).
    fn add_columns(cols: &mut [f64], x: &[f64]) -> f64 {
        avx512: columns_generic(cols, x),
        avx2: columns_generic(cols, x),
        portable: columns_generic(cols, x),
    }
}

/// Adds one row segment `x` to column sums kept in `f32` and returns the segment's sum (in `f64`,
/// from `f32` partial sums of at most 16 terms per lane). The caller moves the column sums into
/// `f64` (see [`flush_columns`]) before any column holds more than 16 terms, so the rounding stays
/// within 16 × 2⁻²⁴ of Σ|x|, as in [`pair_block_f32`], for a third of the work of `f64` sums.
#[inline(always)]
fn columns_f32_generic(cols: &mut [f32], x: &[f32]) -> f64 {
    // Two plain loops: fused into one, the compiler shuffles lanes between them.
    for (c, &v) in cols.iter_mut().zip(x) {
        *c += v;
    }
    let mut total = [0.0f64; 16];
    for part in x.chunks(256) {
        let (xv, xr) = part.as_chunks::<16>();
        let mut acc = [0.0f32; 16];
        for v in xv {
            for l in 0..16 {
                acc[l] += v[l];
            }
        }
        for (a, &v) in acc.iter_mut().zip(xr) {
            *a += v;
        }
        for l in 0..16 {
            total[l] += acc[l] as f64;
        }
    }
    total.iter().sum()
}

dispatched! {
    /// Row and column sums of a matrix decoded to `f32`, with the column sums in `f32` (see
    /// [`columns_f32_generic`]).
    fn add_columns_f32(cols: &mut [f32], x: &[f32]) -> f64 {
        avx512: columns_f32_generic(cols, x),
        avx2: columns_f32_generic(cols, x),
        portable: columns_f32_generic(cols, x),
    }
}

#[inline(always)]
fn flush_generic(cols: &mut [f64], part: &mut [f32]) {
    for (c, p) in cols.iter_mut().zip(part.iter_mut()) {
        *c += *p as f64;
        *p = 0.0;
    }
}

dispatched! {
    /// Moves column sums kept in `f32` (see [`add_columns_f32`]) into `f64` ones, zeroing them.
    fn flush_columns(cols: &mut [f64], part: &mut [f32]) -> () {
        avx512: flush_generic(cols, part),
        avx2: flush_generic(cols, part),
        portable: flush_generic(cols, part),
    }
}

dispatched! {
    /// Row and column sums and sums of squares of a matrix, one row segment at a time.
    fn add_columns_sq(cols: &mut [f64], cols_sq: &mut [f64], x: &[f64]) -> (f64, f64) {
        avx512: columns_sq_generic(cols, cols_sq, x),
        avx2: columns_sq_generic(cols, cols_sq, x),
        portable: columns_sq_generic(cols, cols_sq, x),
    }
}

dispatched! {
    /// [`add_columns_sq`] for values decoded to `f32`.
    fn add_columns_sq_f32(cols: &mut [f64], cols_sq: &mut [f64], x: &[f32]) -> (f64, f64) {
        avx512: columns_sq_generic(cols, cols_sq, x),
        avx2: columns_sq_generic(cols, cols_sq, x),
        portable: columns_sq_generic(cols, cols_sq, x),
    }
}

/// A decoded value type with SIMD row and column sums of squares.
pub trait Columns: Copy + Into<f64> {
    /// See [`add_columns_sq`].
    fn add_columns_sq(cols: &mut [f64], cols_sq: &mut [f64], x: &[Self]) -> (f64, f64);
}

impl Columns for f64 {
    fn add_columns_sq(cols: &mut [f64], cols_sq: &mut [f64], x: &[f64]) -> (f64, f64) {
        add_columns_sq(cols, cols_sq, x)
    }
}

impl Columns for f32 {
    fn add_columns_sq(cols: &mut [f64], cols_sq: &mut [f64], x: &[f32]) -> (f64, f64) {
        add_columns_sq_f32(cols, cols_sq, x)
    }
}

/// The register width (512 or 256 bits) of the SIMD kernel copies this CPU runs, with FMA; `None`
/// for the portable copies.
#[cfg(target_arch = "x86_64")]
fn simd() -> Option<u32> {
    if !std::arch::is_x86_feature_detected!("fma") {
        None
    } else if std::arch::is_x86_feature_detected!("avx512f") {
        Some(512)
    } else if std::arch::is_x86_feature_detected!("avx2") {
        Some(256)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_block_matches_two_pass() {
        let a: Vec<f64> = (0..1001)
            .map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.0)
            .collect();
        let b: Vec<f64> = a
            .iter()
            .enumerate()
            .map(|(i, x)| x + ((i % 13) as f64) * 1e-3)
            .collect();
        let p = pair_block(&a, &b);
        let d: Vec<f64> = a.iter().zip(&b).map(|(x, y)| y - x).collect();
        let want = Moments::of(&d);
        assert!((p.d.m2 - want.m2).abs() < 1e-12 * want.m2);
        assert!((p.d.m4 - want.m4).abs() < 1e-10 * want.m4);
        assert_eq!(p.a.moments.n, 1001);
        assert_eq!(
            p.equal,
            a.iter().zip(&b).filter(|(x, y)| x == y).count() as u64
        );
        assert_eq!(
            p.equal,
            pair_generic::<f64, 2, 2, false>(&a, &b, keep, Ahead::NONE).equal
        );
    }

    #[test]
    fn requests_ahead_cover_every_byte_and_change_no_result() {
        let bytes: Vec<u8> = (0..10_007).map(|i| i as u8).collect();
        for steps in [1, 7, 64, 500] {
            let mut fetch = Ahead([&bytes, &bytes[..99]]).spread(steps);
            for _ in 0..steps {
                fetch.next();
            }
            assert!(
                fetch.at >= bytes.len() && fetch.step % 64 == 0,
                "{steps} steps"
            );
        }
        let a: Vec<f32> = (0..5000).map(|i| (i % 97) as f32 * 0.25 - 3.0).collect();
        let b: Vec<f32> = a.iter().map(|x| x * 1.5 + 0.125).collect();
        let ahead = Ahead([&bytes, &bytes]);
        assert_eq!(pair_block_f32_ahead(&a, &b, ahead), pair_block_f32(&a, &b));
        assert_eq!(single_block_f32_ahead(&a, ahead), single_block_f32(&a));
        let (a, b) = (widen(&a), widen(&b));
        assert_eq!(pair_block_ahead(&a, &b, ahead), pair_block(&a, &b));
        assert_eq!(single_block_ahead(&a, ahead), single_block(&a));
    }

    #[test]
    fn non_finite_values_are_counted_and_left_out() {
        let a = [1.0, f64::NAN, 3.0, f64::INFINITY, 5.0];
        let b = [1.0, 2.0, f64::NEG_INFINITY, 4.0, 6.0];
        let p = pair_block(&a, &b);
        assert_eq!((p.a.nan, p.a.pos_inf, p.b.neg_inf), (1, 1, 1));
        assert_eq!(p.d.n, 2);
        assert_eq!(p.a.moments.n, 3);
        assert_eq!(p.max_abs_d(), 1.0);
        assert_eq!((p.a.min, p.a.max), (1.0, 5.0));
    }

    #[test]
    fn constant_blocks_have_zero_spread() {
        let a: Vec<f64> = (0..5000).map(|i| i as f64 * 0.37).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 0.1).collect();
        let s = single_block(&vec![0.1; 4097]);
        assert_eq!(
            (s.moments.mean, s.moments.m2, s.moments.m4),
            (0.1, 0.0, 0.0)
        );
        let c = vec![0.3f64; 300];
        let p = pair_block(&c, &c);
        assert_eq!(
            (p.d.m2, p.a.moments.m2, p.d_min, p.d_max),
            (0.0, 0.0, 0.0, 0.0)
        );
        // Not constant after rounding: d varies in its last bits, and says so honestly.
        let p = pair_block(&a, &b);
        assert!(p.d.m2 >= 0.0 && p.d_max > p.d_min);
    }

    #[test]
    fn identical_sides_give_what_the_pair_kernel_finds() {
        let mut x: Vec<f64> = (0..3000)
            .map(|i| ((i * 7919 % 1013) as f64 - 506.0) * 1e-3 + 0.25)
            .collect();
        let narrow: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let wide: Vec<f64> = narrow.iter().map(|&v| v as f64).collect();
        x[7] = f64::NAN;
        x[99] = f64::NEG_INFINITY;
        let cases = [
            (pair_block(&x, &x), PairStats::identical(&single_block(&x))),
            (
                pair_block(&[], &[]),
                PairStats::identical(&single_block(&[])),
            ),
            (
                pair_block_f32(&narrow, &narrow),
                PairStats::identical(&single_block_f32(&narrow)),
            ),
            (
                pair_block(&wide, &wide),
                PairStats::identical(&single_block(&wide)),
            ),
        ];
        for (k, (want, got)) in cases.into_iter().enumerate() {
            // Counts, extremes and the zero difference are exact; sums agree to their rounding.
            assert_eq!(
                (got.a.count, got.a.nan, got.a.neg_inf),
                (want.a.count, want.a.nan, want.a.neg_inf)
            );
            assert_eq!(
                (got.a.min, got.a.max, got.equal),
                (want.a.min, want.a.max, want.equal)
            );
            assert_eq!(
                (got.d, got.d_min, got.d_max),
                (want.d, want.d_min, want.d_max)
            );
            assert_eq!(
                (got.da.n, got.da.c, got.ab.n),
                (want.da.n, want.da.c, want.ab.n)
            );
            assert_eq!(got.b, got.a);
            // The single and pair kernels group and round their sums differently: each within
            // its bound (2e-6 relative in f32 lanes; the third moment against Σ|e|³, which
            // √(m2·m4) bounds).
            let (g, w) = (got.a.moments, want.a.moments);
            let tol = if k == 2 { 2e-6 } else { 1e-9 };
            assert!(
                rel(g.mean, w.mean) < tol && rel(g.m2, w.m2) < tol,
                "case {k}"
            );
            assert!(rel(g.m4, w.m4) < tol, "case {k}");
            assert!(
                (g.m3 - w.m3).abs() <= tol * (w.m2 * w.m4).sqrt(),
                "case {k}"
            );
            assert_eq!((got.b_on_pair, got.a_on_pair), (g, g));
            // Σ(a − ā)² by squares and by products of the two sides: roundings of positive terms.
            assert!(got.ab.c == want.ab.c || rel(got.ab.c, want.ab.c) < 1e-6);
        }
    }

    fn rel(x: f64, y: f64) -> f64 {
        (x - y).abs() / y.abs().max(f64::MIN_POSITIVE)
    }

    #[test]
    fn f32_lanes_agree_with_f64_lanes_within_their_bound() {
        // bf16-like values (8 significant bits) around a mean far from zero, and a noised copy.
        let round = |x: f64| f32::from_bits((x as f32).to_bits() & 0xffff_0000);
        let a: Vec<f32> = (0..4096)
            .map(|i| round(1.5 + ((i * 7919 % 1013) as f64 - 506.0) * 1e-3))
            .collect();
        let b: Vec<f32> = a
            .iter()
            .enumerate()
            .map(|(i, &x)| round(x as f64 + ((i * 31 % 17) as f64 - 8.0) * 2e-3))
            .collect();
        let (a64, b64): (Vec<f64>, Vec<f64>) = (widen(&a), widen(&b));
        let (n, w) = (pair_block_f32(&a, &b), pair_block(&a64, &b64));
        assert_eq!((n.equal, n.d_min, n.d_max), (w.equal, w.d_min, w.d_max));
        assert_eq!((n.a.min, n.a.max), (w.a.min, w.a.max));
        for (x, y) in [
            (n.a.moments.mean, w.a.moments.mean),
            (n.d.mean, w.d.mean),
            (n.a.moments.m2, w.a.moments.m2),
            (n.b.moments.m4, w.b.moments.m4),
            (n.d.m2, w.d.m2),
            (n.d.m4, w.d.m4),
            (n.ab.c, w.ab.c),
        ] {
            assert!(rel(x, y) < 2e-6, "{x} vs {y}");
        }
        let s = single_block_f32(&a);
        assert!(rel(s.moments.m2, w.a.moments.m2) < 2e-6);
        assert!(rel(s.moments.m4, w.a.moments.m4) < 2e-6);
    }

    #[test]
    fn f32_lanes_hand_blocks_they_cannot_hold_to_f64_lanes() {
        // Powers of 1e20 overflow f32, and a spread of 1e-12 would fall to subnormals.
        for (a, b) in [
            (
                vec![1e20f32, -1e20, 3e20, 0.0],
                vec![0.0f32, 1e20, 0.0, 2e20],
            ),
            (vec![1.0f32, 1.0 + 1e-7, 1.0, 1.0], vec![1.0f32; 4]),
        ] {
            let want = pair_block(&widen(&a), &widen(&b));
            assert_eq!(pair_block_f32(&a, &b), want);
            assert_eq!(single_block_f32(&a), single_block(&widen(&a)));
        }
    }

    #[test]
    fn f32_lanes_give_constant_blocks_zero_spread() {
        let c = vec![0.1f32; 5000];
        let p = pair_block_f32(&c, &c);
        assert_eq!((p.d.m2, p.a.moments.m2, p.a.moments.m4), (0.0, 0.0, 0.0));
        assert_eq!(p.a.moments.mean, 0.1f32 as f64);
        assert_eq!(p.equal, 5000);
    }

    #[test]
    fn huge_finite_values_do_not_overflow_the_mean() {
        let x = [f64::MAX, f64::MAX, -f64::MAX];
        let s = single_block(&x);
        assert_eq!(s.nan + s.pos_inf + s.neg_inf, 0);
        assert!((s.moments.mean - f64::MAX / 3.0).abs() < 1e-10 * f64::MAX);
    }
}
