//! Deterministic stratified sample positions: which elements of a tensor a summary keeps the values
//! of. They depend only on the element count, so equal-sized tensors of two models are sampled alike
//! and the positions can be recomputed from the shape.

/// Deterministic stratified sample positions: the tensor is cut into strata of equal size and one
/// pseudo-random position is drawn in each, so the sample covers the tensor evenly without
/// aliasing with its row length.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sampler {
    n: u64,
    stratum: u64,
}

impl Sampler {
    /// The sampler of a tensor of `n` elements with (at most) `size` positions.
    #[inline]
    pub(crate) fn new(n: u64, size: usize) -> Sampler {
        let stratum = if size == 0 {
            0
        } else {
            n.div_ceil(size as u64).max(1)
        };
        Sampler { n, stratum }
    }

    #[inline]
    fn position(&self, j: u64) -> u64 {
        let lo = j * self.stratum;
        let width = self.stratum.min(self.n - lo);
        lo + splitmix64(j ^ 0x6d6f_6465_6c6b_696e) % width
    }

    /// How many positions the whole tensor has: one per stratum.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        if self.stratum == 0 {
            0
        } else {
            self.n.div_ceil(self.stratum) as usize
        }
    }

    /// Sample positions inside `[lo, hi)`, increasing.
    #[inline]
    pub(crate) fn positions(&self, lo: u64, hi: u64) -> impl Iterator<Item = u64> + '_ {
        let strata = if self.stratum == 0 || lo >= hi {
            0..0
        } else {
            lo / self.stratum..(hi - 1) / self.stratum + 1
        };
        strata
            .map(|j| self.position(j))
            .filter(move |&p| p >= lo && p < hi)
    }
}

/// The sample positions of a tensor of `numel` elements (what the engine's summaries hold sampled values at).
pub fn sample_positions(numel: u64, sample_size: usize) -> Vec<u64> {
    let s = Sampler::new(numel, sample_size);
    s.positions(0, numel).collect()
}

/// SplitMix64: the pseudo-random positions of [`Sampler`] (and test data).
#[inline]
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_covers_every_stratum_once() {
        let s = Sampler::new(10_007, 100);
        let all: Vec<u64> = s.positions(0, 10_007).collect();
        let split: Vec<u64> = s
            .positions(0, 5000)
            .chain(s.positions(5000, 10_007))
            .collect();
        assert_eq!(all, split);
        assert!(all.len() <= 100 && all.len() >= 99);
        assert_eq!(all.len(), s.len());
        assert_eq!(Sampler::new(7, 100).len(), 7);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert!(*all.last().unwrap() < 10_007);
    }
}
