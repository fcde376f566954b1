//! The hot path: statistics of one block of decoded values (a few thousand elements, in cache).
//!
//! A block is summarised in two passes: sums, extremes and equal counts first, then central moment
//! sums about the block means. Both passes keep `L` independent `f64` accumulators (one SIMD
//! register's worth) so the compiler vectorises them, and add them into block totals every [`SUB`]
//! elements. x86-64 builds carry AVX-512 and AVX2 copies of the kernels, picked at run time; results
//! do not depend on the thread count on a given machine.
//!
//! Blocks holding NaN or infinities (detected from the sums) take a scalar path that leaves those
//! elements out. A block whose values are all equal gets that value as its exact mean, so constant
//! tensors (and identical pairs) report a spread of exactly zero rather than rounding noise.

use crate::moments::{CoMoment, Moments};

/// Elements per partial sum: lane accumulators are added into block totals this often.
pub const SUB: usize = 256;

/// Statistics of one tensor's values: moments of the finite values, extremes, non-finite counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueStats {
    /// Number of elements, finite or not.
    pub count: u64,
    /// Moments of the finite elements.
    pub moments: Moments,
    /// Smallest finite element (+∞ when there is none).
    pub min: f64,
    /// Largest finite element (−∞ when there is none).
    pub max: f64,
    /// NaN elements.
    pub nan: u64,
    /// +∞ elements.
    pub pos_inf: u64,
    /// −∞ elements.
    pub neg_inf: u64,
}

impl Default for ValueStats {
    fn default() -> Self {
        ValueStats {
            count: 0,
            moments: Moments::default(),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            nan: 0,
            pos_inf: 0,
            neg_inf: 0,
        }
    }
}

impl ValueStats {
    /// Combines the statistics of two disjoint parts of a tensor.
    pub fn merge(&self, o: &ValueStats) -> ValueStats {
        ValueStats {
            count: self.count + o.count,
            moments: self.moments.merge(&o.moments),
            min: self.min.min(o.min),
            max: self.max.max(o.max),
            nan: self.nan + o.nan,
            pos_inf: self.pos_inf + o.pos_inf,
            neg_inf: self.neg_inf + o.neg_inf,
        }
    }
}

/// Statistics of a pair of equal-length value sequences a, b and of their difference d = b − a.
///
/// Everything but `a`, `b` and `equal` covers the positions where a and b are both finite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairStats {
    /// Statistics of a alone.
    pub a: ValueStats,
    /// Statistics of b alone.
    pub b: ValueStats,
    /// Moments of d.
    pub d: Moments,
    /// Smallest d (+∞ when there is none).
    pub d_min: f64,
    /// Largest d (−∞ when there is none).
    pub d_max: f64,
    /// Moments of a.
    pub a_on_pair: Moments,
    /// Moments of b.
    pub b_on_pair: Moments,
    /// Co-moment of (d, a).
    pub da: CoMoment,
    /// Co-moment of (a, b).
    pub ab: CoMoment,
    /// Positions where a and b decode to bit-identical values (over all positions).
    pub equal: u64,
}

impl Default for PairStats {
    fn default() -> Self {
        PairStats {
            a: ValueStats::default(),
            b: ValueStats::default(),
            d: Moments::default(),
            d_min: f64::INFINITY,
            d_max: f64::NEG_INFINITY,
            a_on_pair: Moments::default(),
            b_on_pair: Moments::default(),
            da: CoMoment::default(),
            ab: CoMoment::default(),
            equal: 0,
        }
    }
}

impl PairStats {
    /// Combines the statistics of two disjoint parts of a tensor pair.
    pub fn merge(&self, o: &PairStats) -> PairStats {
        PairStats {
            a: self.a.merge(&o.a),
            b: self.b.merge(&o.b),
            d: self.d.merge(&o.d),
            d_min: self.d_min.min(o.d_min),
            d_max: self.d_max.max(o.d_max),
            a_on_pair: self.a_on_pair.merge(&o.a_on_pair),
            b_on_pair: self.b_on_pair.merge(&o.b_on_pair),
            da: self.da.merge(&o.da),
            ab: self.ab.merge(&o.ab),
            equal: self.equal + o.equal,
        }
    }

    /// Largest |d| (0 when there is no finite pair).
    pub fn max_abs_d(&self) -> f64 {
        if self.d.n == 0 {
            0.0
        } else {
            self.d_min.abs().max(self.d_max.abs())
        }
    }
}

/// x·y + z, fused (one rounding) where the copy of the kernel is compiled for a CPU with FMA.
#[inline(always)]
fn fma<const F: bool>(x: f64, y: f64, z: f64) -> f64 {
    if F {
        x.mul_add(y, z)
    } else {
        x * y + z
    }
}

/// Adds lane partial sums into totals, in a fixed order.
#[inline(always)]
fn flush<const L: usize, const K: usize>(totals: &mut [f64; K], lanes: &mut [[f64; L]; K]) {
    for (t, lane) in totals.iter_mut().zip(lanes.iter_mut()) {
        *t += lane.iter().sum::<f64>();
        *lane = [0.0; L];
    }
}

#[inline(always)]
fn lane_min<const L: usize>(v: &[f64; L]) -> f64 {
    v.iter()
        .fold(f64::INFINITY, |m, &x| if x < m { x } else { m })
}

#[inline(always)]
fn lane_max<const L: usize>(v: &[f64; L]) -> f64 {
    v.iter()
        .fold(f64::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

/// One step of a [`sweep`]: an element pair (lane, a, b), or the end of a sub-block.
enum Step {
    Elem(usize, f64, f64),
    Flush,
}

/// Calls `f(Step::Elem(lane, a[i], b[i]))` for every position, `L` lanes at a time, in sub-blocks of
/// [`SUB`] elements, and `f(Step::Flush)` after each sub-block. Whole lanes come from `as_chunks`,
/// so the loop has no bounds checks; callers pass `#[inline(always)]` closures so it vectorises.
#[inline(always)]
fn sweep<const L: usize>(a: &[f64], b: &[f64], mut f: impl FnMut(Step)) {
    let n = a.len().min(b.len());
    let mut start = 0;
    while start < n {
        let end = (start + SUB).min(n);
        let (ca, ra) = a[start..end].as_chunks::<L>();
        let (cb, rb) = b[start..end].as_chunks::<L>();
        for (x, y) in ca.iter().zip(cb) {
            for l in 0..L {
                f(Step::Elem(l, x[l], y[l]));
            }
        }
        for (l, (&x, &y)) in ra.iter().zip(rb).enumerate() {
            f(Step::Elem(l, x, y));
        }
        f(Step::Flush);
        start = end;
    }
}

#[inline(always)]
fn single_generic<const L: usize>(x: &[f64]) -> ValueStats {
    let n = x.len();
    if n == 0 {
        return ValueStats::default();
    }
    let (mut lo, mut hi) = ([f64::INFINITY; L], [f64::NEG_INFINITY; L]);
    let mut sums = [[0.0; L]; 1];
    let mut total = [0.0; 1];
    sweep::<L>(
        x,
        x,
        #[inline(always)]
        |step| match step {
            Step::Elem(l, v, _) => {
                sums[0][l] += v;
                lo[l] = if v < lo[l] { v } else { lo[l] };
                hi[l] = if v > hi[l] { v } else { hi[l] };
            }
            Step::Flush => flush(&mut total, &mut sums),
        },
    );
    if !total[0].is_finite() {
        return single_masked(x);
    }
    let (min, max) = (lane_min(&lo), lane_max(&hi));
    let mean = if min == max { min } else { total[0] / n as f64 };
    let mut acc = [[0.0; L]; 3];
    let mut c = [0.0; 3];
    sweep::<L>(
        x,
        x,
        #[inline(always)]
        |step| match step {
            Step::Elem(l, v, _) => {
                let e = v - mean;
                let e2 = e * e;
                acc[0][l] += e2;
                acc[1][l] += e2 * e;
                acc[2][l] += e2 * e2;
            }
            Step::Flush => flush(&mut c, &mut acc),
        },
    );
    ValueStats {
        count: n as u64,
        moments: Moments {
            n: n as u64,
            mean,
            m2: c[0],
            m3: c[1],
            m4: c[2],
        },
        min,
        max,
        ..ValueStats::default()
    }
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
fn pair_generic<const L: usize, const F: bool>(a: &[f64], b: &[f64]) -> PairStats {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    if n == 0 {
        return PairStats::default();
    }
    let (mut loa, mut hia) = ([f64::INFINITY; L], [f64::NEG_INFINITY; L]);
    let (mut lob, mut hib) = ([f64::INFINITY; L], [f64::NEG_INFINITY; L]);
    let (mut lod, mut hid) = ([f64::INFINITY; L], [f64::NEG_INFINITY; L]);
    let mut eq = [0u64; L];
    let mut sums = [[0.0; L]; 3];
    let mut tot = [0.0; 3];
    sweep::<L>(
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
                eq[l] += (x.to_bits() == y.to_bits()) as u64;
            }
            Step::Flush => flush(&mut tot, &mut sums),
        },
    );
    // A finite sum proves every term finite (a NaN or ±∞ term cannot cancel out).
    if !tot.iter().all(|t| t.is_finite()) {
        return pair_masked(a, b);
    }
    let nf = n as f64;
    let (mina, maxa) = (lane_min(&loa), lane_max(&hia));
    let (minb, maxb) = (lane_min(&lob), lane_max(&hib));
    let (mind, maxd) = (lane_min(&lod), lane_max(&hid));
    let exact = |lo: f64, hi: f64, sum: f64| if lo == hi { lo } else { sum / nf };
    let (ma, mb, md) = (
        exact(mina, maxa, tot[0]),
        exact(minb, maxb, tot[1]),
        exact(mind, maxd, tot[2]),
    );
    let mut acc = [[0.0; L]; 11];
    let mut c = [0.0; 11];
    sweep::<L>(
        a,
        b,
        #[inline(always)]
        |step| match step {
            Step::Elem(l, x, y) => {
                let ea = x - ma;
                let eb = y - mb;
                let ed = (y - x) - md;
                let (ea2, eb2, ed2) = (ea * ea, eb * eb, ed * ed);
                acc[0][l] += ea2;
                acc[1][l] = fma::<F>(ea2, ea, acc[1][l]);
                acc[2][l] = fma::<F>(ea2, ea2, acc[2][l]);
                acc[3][l] += eb2;
                acc[4][l] = fma::<F>(eb2, eb, acc[4][l]);
                acc[5][l] = fma::<F>(eb2, eb2, acc[5][l]);
                acc[6][l] += ed2;
                acc[7][l] = fma::<F>(ed2, ed, acc[7][l]);
                acc[8][l] = fma::<F>(ed2, ed2, acc[8][l]);
                acc[9][l] = fma::<F>(ed, ea, acc[9][l]);
                acc[10][l] = fma::<F>(ea, eb, acc[10][l]);
            }
            Step::Flush => flush(&mut c, &mut acc),
        },
    );
    let n64 = n as u64;
    let moments = |mean: f64, k: usize| Moments {
        n: n64,
        mean,
        m2: c[k],
        m3: c[k + 1],
        m4: c[k + 2],
    };
    let (am, bm) = (moments(ma, 0), moments(mb, 3));
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
        d: moments(md, 6),
        d_min: mind,
        d_max: maxd,
        a_on_pair: am,
        b_on_pair: bm,
        da: CoMoment {
            n: n64,
            mean_x: md,
            mean_y: ma,
            c: c[9],
        },
        ab: CoMoment {
            n: n64,
            mean_x: ma,
            mean_y: mb,
            c: c[10],
        },
        equal: eq.iter().sum(),
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

/// Defines a public kernel that dispatches at run time to AVX-512, AVX2 or portable copies of a
/// generic function, each with the lane count that fills one register.
macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident, $generic:ident, ($($arg:ident: $aty:ty),*) -> $ret:ty) => {
        $(#[$doc])*
        pub fn $name($($arg: $aty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn wide512($($arg: $aty),*) -> $ret {
                    $generic::<8>($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn wide256($($arg: $aty),*) -> $ret {
                    $generic::<4>($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F, checked just above.
                    return unsafe { wide512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2, checked just above.
                    return unsafe { wide256($($arg),*) };
                }
            }
            $generic::<2>($($arg),*)
        }
    };
}

/// Statistics of one block of a tensor pair (`a` and `b` of equal length).
///
/// The AVX-512 and AVX2 copies also use fused multiply-adds where the CPU has them, so the last
/// bits of the higher moments can differ between machines (never between thread counts).
pub fn pair_block(a: &[f64], b: &[f64]) -> PairStats {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,fma")]
        fn wide512(a: &[f64], b: &[f64]) -> PairStats {
            pair_generic::<8, true>(a, b)
        }
        #[target_feature(enable = "avx2,fma")]
        fn wide256(a: &[f64], b: &[f64]) -> PairStats {
            pair_generic::<4, true>(a, b)
        }
        let fma = std::arch::is_x86_feature_detected!("fma");
        if fma && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F and FMA, checked just above.
            return unsafe { wide512(a, b) };
        }
        if fma && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { wide256(a, b) };
        }
    }
    pair_generic::<2, false>(a, b)
}
dispatch!(
    /// Statistics of one block of a single tensor.
    single_block, single_generic, (x: &[f64]) -> ValueStats
);

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
        assert_eq!(p.equal, pair_generic::<2, false>(&a, &b).equal);
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
    fn huge_finite_values_do_not_overflow_the_mean() {
        let x = [f64::MAX, f64::MAX, -f64::MAX];
        let s = single_block(&x);
        assert_eq!(s.nan + s.pos_inf + s.neg_inf, 0);
        assert!((s.moments.mean - f64::MAX / 3.0).abs() < 1e-10 * f64::MAX);
    }
}
