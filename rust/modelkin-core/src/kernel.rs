//! The hot path: statistics of one block of decoded values (a few thousand elements, in cache).
//!
//! A block is summarised in two passes: sums, extremes and equal counts first, then central moment
//! sums about the block means. Both passes keep [`LANES`] independent accumulators so the compiler
//! can vectorise them; the x86-64 build carries an AVX2 copy chosen at run time, and both copies do
//! the same operations in the same order, so they give the same numbers. Blocks holding NaN or
//! infinities (detected from the sums) take a scalar path that leaves those elements out.

use crate::moments::{CoMoment, Moments};

const LANES: usize = 4;

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
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PairStats {
    /// Statistics of a alone.
    pub a: ValueStats,
    /// Statistics of b alone.
    pub b: ValueStats,
    /// Moments of d over the positions where a and b are both finite.
    pub d: Moments,
    /// Moments of a over those same positions.
    pub a_on_pair: Moments,
    /// Co-moment of (d, a) over those positions.
    pub da: CoMoment,
    /// Largest |d| over those positions.
    pub max_abs_d: f64,
    /// Positions where a and b decode to bit-identical values.
    pub equal: u64,
}

impl PairStats {
    /// Combines the statistics of two disjoint parts of a tensor pair.
    pub fn merge(&self, o: &PairStats) -> PairStats {
        PairStats {
            a: self.a.merge(&o.a),
            b: self.b.merge(&o.b),
            d: self.d.merge(&o.d),
            a_on_pair: self.a_on_pair.merge(&o.a_on_pair),
            da: self.da.merge(&o.da),
            max_abs_d: self.max_abs_d.max(o.max_abs_d),
            equal: self.equal + o.equal,
        }
    }
}

#[inline(always)]
fn hsum(v: [f64; LANES]) -> f64 {
    (v[0] + v[1]) + (v[2] + v[3])
}

#[inline(always)]
fn hmin(v: [f64; LANES]) -> f64 {
    v.iter()
        .fold(f64::INFINITY, |m, &x| if x < m { x } else { m })
}

#[inline(always)]
fn hmax(v: [f64; LANES]) -> f64 {
    v.iter()
        .fold(f64::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

/// Central sums (Σ(x−m)², Σ(x−m)³, Σ(x−m)⁴) about `m`, lane-parallel.
#[inline(always)]
fn central(xs: &[f64], m: f64) -> (f64, f64, f64) {
    let (mut s2, mut s3, mut s4) = ([0.0; LANES], [0.0; LANES], [0.0; LANES]);
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            let e = c[i] - m;
            let e2 = e * e;
            s2[i] += e2;
            s3[i] += e2 * e;
            s4[i] += e2 * e2;
        }
    }
    for (i, &x) in rest.iter().enumerate() {
        let e = x - m;
        let e2 = e * e;
        s2[i] += e2;
        s3[i] += e2 * e;
        s4[i] += e2 * e2;
    }
    (hsum(s2), hsum(s3), hsum(s4))
}

#[inline(always)]
fn single_generic(x: &[f64]) -> ValueStats {
    let n = x.len();
    if n == 0 {
        return ValueStats::default();
    }
    let (mut s, mut lo, mut hi) = (
        [0.0; LANES],
        [f64::INFINITY; LANES],
        [f64::NEG_INFINITY; LANES],
    );
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            s[i] += c[i];
            lo[i] = if c[i] < lo[i] { c[i] } else { lo[i] };
            hi[i] = if c[i] > hi[i] { c[i] } else { hi[i] };
        }
    }
    for (i, &v) in rest.iter().enumerate() {
        s[i] += v;
        lo[i] = if v < lo[i] { v } else { lo[i] };
        hi[i] = if v > hi[i] { v } else { hi[i] };
    }
    let total = hsum(s);
    if !total.is_finite() {
        return single_masked(x);
    }
    let mean = total / n as f64;
    let (m2, m3, m4) = central(x, mean);
    ValueStats {
        count: n as u64,
        moments: Moments {
            n: n as u64,
            mean,
            m2,
            m3,
            m4,
        },
        min: hmin(lo),
        max: hmax(hi),
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
    let mean = v.iter().map(|&x| x * 0.5f64.powi(16)).sum::<f64>() / n * 2f64.powi(16);
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
fn pair_generic(a: &[f64], b: &[f64]) -> PairStats {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    if n == 0 {
        return PairStats::default();
    }
    let (mut sa, mut sb, mut sd) = ([0.0; LANES], [0.0; LANES], [0.0; LANES]);
    let (mut loa, mut hia) = ([f64::INFINITY; LANES], [f64::NEG_INFINITY; LANES]);
    let (mut lob, mut hib) = ([f64::INFINITY; LANES], [f64::NEG_INFINITY; LANES]);
    let mut maxd = [0.0f64; LANES];
    let mut eq = [0u64; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let mut step = |i: usize, x: f64, y: f64| {
        let d = y - x;
        sa[i] += x;
        sb[i] += y;
        sd[i] += d;
        loa[i] = if x < loa[i] { x } else { loa[i] };
        hia[i] = if x > hia[i] { x } else { hia[i] };
        lob[i] = if y < lob[i] { y } else { lob[i] };
        hib[i] = if y > hib[i] { y } else { hib[i] };
        let ad = d.abs();
        maxd[i] = if ad > maxd[i] { ad } else { maxd[i] };
        eq[i] += (x.to_bits() == y.to_bits()) as u64;
    };
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            step(i, x[i], y[i]);
        }
    }
    for (i, (&x, &y)) in ra.iter().zip(rb).enumerate() {
        step(i, x, y);
    }
    let (ta, tb, td) = (hsum(sa), hsum(sb), hsum(sd));
    // A finite sum proves every term finite (a NaN or ±∞ term cannot cancel out).
    if !(ta.is_finite() && tb.is_finite() && td.is_finite()) {
        return pair_masked(a, b);
    }
    let nf = n as f64;
    let (ma, mb, md) = (ta / nf, tb / nf, td / nf);
    let mut acc = [[0.0f64; LANES]; 10];
    let mut step2 = |i: usize, x: f64, y: f64| {
        let ea = x - ma;
        let eb = y - mb;
        let ed = (y - x) - md;
        let (ea2, eb2, ed2) = (ea * ea, eb * eb, ed * ed);
        acc[0][i] += ea2;
        acc[1][i] += ea2 * ea;
        acc[2][i] += ea2 * ea2;
        acc[3][i] += eb2;
        acc[4][i] += eb2 * eb;
        acc[5][i] += eb2 * eb2;
        acc[6][i] += ed2;
        acc[7][i] += ed2 * ed;
        acc[8][i] += ed2 * ed2;
        acc[9][i] += ed * ea;
    };
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            step2(i, x[i], y[i]);
        }
    }
    for (i, (&x, &y)) in ra.iter().zip(rb).enumerate() {
        step2(i, x, y);
    }
    let s = acc.map(hsum);
    let n64 = n as u64;
    let am = Moments {
        n: n64,
        mean: ma,
        m2: s[0],
        m3: s[1],
        m4: s[2],
    };
    let stats = |m: Moments, lo: [f64; LANES], hi: [f64; LANES]| ValueStats {
        count: n64,
        moments: m,
        min: hmin(lo),
        max: hmax(hi),
        ..ValueStats::default()
    };
    PairStats {
        a: stats(am, loa, hia),
        b: stats(
            Moments {
                n: n64,
                mean: mb,
                m2: s[3],
                m3: s[4],
                m4: s[5],
            },
            lob,
            hib,
        ),
        d: Moments {
            n: n64,
            mean: md,
            m2: s[6],
            m3: s[7],
            m4: s[8],
        },
        a_on_pair: am,
        da: CoMoment {
            n: n64,
            mean_x: md,
            mean_y: ma,
            c: s[9],
        },
        max_abs_d: hmax(maxd),
        equal: hsum_u(eq),
    }
}

#[inline(always)]
fn hsum_u(v: [u64; LANES]) -> u64 {
    v.iter().sum()
}

/// The scalar path for pair blocks holding non-finite values.
fn pair_masked(a: &[f64], b: &[f64]) -> PairStats {
    let mut both_a = Vec::new();
    let mut both_d = Vec::new();
    let mut equal = 0u64;
    for (&x, &y) in a.iter().zip(b) {
        equal += (x.to_bits() == y.to_bits()) as u64;
        if x.is_finite() && y.is_finite() {
            both_a.push(x);
            both_d.push(y - x);
        }
    }
    let a_on_pair = moments_robust(&both_a);
    let d = moments_robust(&both_d);
    let c = both_d
        .iter()
        .zip(&both_a)
        .map(|(&dd, &aa)| (dd - d.mean) * (aa - a_on_pair.mean))
        .sum();
    PairStats {
        a: single_masked(a),
        b: single_masked(b),
        d,
        a_on_pair,
        da: CoMoment {
            n: d.n,
            mean_x: d.mean,
            mean_y: a_on_pair.mean,
            c,
        },
        max_abs_d: both_d.iter().fold(0.0, |m, v| m.max(v.abs())),
        equal,
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn pair_avx2(a: &[f64], b: &[f64]) -> PairStats {
    pair_generic(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn single_avx2(x: &[f64]) -> ValueStats {
    single_generic(x)
}

/// Statistics of one block of a tensor pair (`a` and `b` of equal length).
pub fn pair_block(a: &[f64], b: &[f64]) -> PairStats {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { pair_avx2(a, b) };
    }
    pair_generic(a, b)
}

/// Statistics of one block of a single tensor.
pub fn single_block(x: &[f64]) -> ValueStats {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { single_avx2(x) };
    }
    single_generic(x)
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
        assert_eq!(p, pair_generic(&a, &b));
    }

    #[test]
    fn non_finite_values_are_counted_and_left_out() {
        let a = [1.0, f64::NAN, 3.0, f64::INFINITY, 5.0];
        let b = [1.0, 2.0, f64::NEG_INFINITY, 4.0, 6.0];
        let p = pair_block(&a, &b);
        assert_eq!((p.a.nan, p.a.pos_inf, p.b.neg_inf), (1, 1, 1));
        assert_eq!(p.d.n, 2);
        assert_eq!(p.a.moments.n, 3);
        assert_eq!(p.max_abs_d, 1.0);
        assert_eq!((p.a.min, p.a.max), (1.0, 5.0));
    }

    #[test]
    fn huge_finite_values_do_not_overflow_the_mean() {
        let x = [f64::MAX, f64::MAX, -f64::MAX];
        let s = single_block(&x);
        assert_eq!(s.nan + s.pos_inf + s.neg_inf, 0);
        assert!((s.moments.mean - f64::MAX / 3.0).abs() < 1e-10 * f64::MAX);
    }
}
