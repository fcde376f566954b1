//! Streaming moments that merge exactly: each block is summarised by its count, mean and central
//! moment sums, and summaries are combined with the pairwise update formulas of Chan et al. (1979)
//! and Pébay (2008). Blocks are merged in a fixed order, so the numbers do not depend on how many
//! threads computed them.

/// Count, mean and central moment sums Σ(x−μ)^k for k = 2, 3, 4 of a set of values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    /// Number of values.
    pub n: u64,
    /// Arithmetic mean (0 when `n == 0`).
    pub mean: f64,
    /// Σ(x−μ)².
    pub m2: f64,
    /// Σ(x−μ)³.
    pub m3: f64,
    /// Σ(x−μ)⁴.
    pub m4: f64,
}

impl Moments {
    /// Combines the moments of two disjoint sets of values.
    pub fn merge(&self, o: &Moments) -> Moments {
        if o.n == 0 {
            return *self;
        }
        if self.n == 0 {
            return *o;
        }
        let (na, nb) = (self.n as f64, o.n as f64);
        let n = na + nb;
        let delta = o.mean - self.mean;
        let d_n = delta / n;
        let d2 = delta * d_n * na * nb; // δ² na nb / n
        Moments {
            n: self.n + o.n,
            mean: self.mean + d_n * nb,
            m2: self.m2 + o.m2 + d2,
            m3: self.m3 + o.m3 + d2 * d_n * (na - nb) + 3.0 * d_n * (na * o.m2 - nb * self.m2),
            m4: self.m4
                + o.m4
                + d2 * d_n * d_n * (na * na - na * nb + nb * nb)
                + 6.0 * d_n * d_n * (na * na * o.m2 + nb * nb * self.m2)
                + 4.0 * d_n * (na * o.m3 - nb * self.m3),
        }
    }

    /// The moments of a slice, by the two-pass method (for tests and small inputs).
    pub fn of(values: &[f64]) -> Moments {
        if values.is_empty() {
            return Moments::default();
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let (mut m2, mut m3, mut m4) = (0.0, 0.0, 0.0);
        for &v in values {
            let d = v - mean;
            let d2 = d * d;
            m2 += d2;
            m3 += d2 * d;
            m4 += d2 * d2;
        }
        Moments {
            n: values.len() as u64,
            mean,
            m2,
            m3,
            m4,
        }
    }
}

/// Merged co-moment of two variables x, y observed together: Σ(x−x̄)(y−ȳ), with both means.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CoMoment {
    /// Number of (x, y) observations.
    pub n: u64,
    /// Mean of x.
    pub mean_x: f64,
    /// Mean of y.
    pub mean_y: f64,
    /// Σ(x−x̄)(y−ȳ).
    pub c: f64,
}

impl CoMoment {
    /// Combines the co-moments of two disjoint sets of observations.
    pub fn merge(&self, o: &CoMoment) -> CoMoment {
        if o.n == 0 {
            return *self;
        }
        if self.n == 0 {
            return *o;
        }
        let (na, nb) = (self.n as f64, o.n as f64);
        let n = na + nb;
        let dx = o.mean_x - self.mean_x;
        let dy = o.mean_y - self.mean_y;
        CoMoment {
            n: self.n + o.n,
            mean_x: self.mean_x + dx * nb / n,
            mean_y: self.mean_y + dy * nb / n,
            c: self.c + o.c + dx * dy * na * nb / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
    }

    proptest! {
        #[test]
        fn merge_equals_direct(xs in proptest::collection::vec(-1e3f64..1e3, 0..200), cut in 0usize..200) {
            let cut = cut.min(xs.len());
            let m = Moments::of(&xs[..cut]).merge(&Moments::of(&xs[cut..]));
            let d = Moments::of(&xs);
            prop_assert_eq!(m.n, d.n);
            prop_assert!(close(m.mean, d.mean, 1e-12));
            prop_assert!(close(m.m2, d.m2, 1e-10));
            prop_assert!(close(m.m3, d.m3, 1e-9 * (1.0 + d.m2.powf(1.5))));
            prop_assert!(close(m.m4, d.m4, 1e-9));
        }

        #[test]
        fn comoment_merge_equals_direct(xy in proptest::collection::vec((-1e3f64..1e3, -1e3f64..1e3), 1..100), cut in 0usize..100) {
            let cut = cut.min(xy.len());
            let direct = |s: &[(f64, f64)]| {
                if s.is_empty() { return CoMoment::default(); }
                let n = s.len() as f64;
                let mx = s.iter().map(|p| p.0).sum::<f64>() / n;
                let my = s.iter().map(|p| p.1).sum::<f64>() / n;
                CoMoment { n: s.len() as u64, mean_x: mx, mean_y: my, c: s.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum() }
            };
            let m = direct(&xy[..cut]).merge(&direct(&xy[cut..]));
            let d = direct(&xy);
            prop_assert!(close(m.c, d.c, 1e-9));
            prop_assert!(close(m.mean_x, d.mean_x, 1e-12));
        }
    }
}
