//! The summary data model: what the kernels compute of one tensor ([`ValueStats`]) and of a pair
//! ([`PairStats`]), and how the summaries of two parts merge. A new statistic extends these.

use super::moments::{CoMoment, Moments};

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
    #[inline]
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
    #[inline]
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

    /// The statistics of a block whose two sides are bit-identical, from those of one side: what
    /// the pair kernel finds (d = 0 wherever the values are finite), for the work of one side.
    #[inline]
    pub fn identical(s: &ValueStats) -> PairStats {
        let m = s.moments;
        let (d_min, d_max) = if m.n > 0 {
            (0.0, 0.0)
        } else {
            (f64::INFINITY, f64::NEG_INFINITY)
        };
        PairStats {
            a: *s,
            b: *s,
            d: Moments {
                n: m.n,
                ..Moments::default()
            },
            d_min,
            d_max,
            a_on_pair: m,
            b_on_pair: m,
            da: CoMoment {
                n: m.n,
                mean_x: 0.0,
                mean_y: m.mean,
                c: 0.0,
            },
            ab: CoMoment {
                n: m.n,
                mean_x: m.mean,
                mean_y: m.mean,
                c: m.m2,
            },
            equal: s.count,
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
