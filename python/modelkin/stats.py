"""Statistics derived from the moments that the native engine accumulates.

The engine returns, per tensor, the count, mean and central moment sums Σ(x−μ)^k (k = 2, 3, 4) of
the finite values, and per tensor pair the same for d = b − a plus the co-moment of d with a. Every
number users see is derived here. Quantities that must stay accurate when a ≈ b (1 − cosine,
1 − Pearson r) are computed from the moments of d, never as 1 − (Σab / …), which loses all digits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from ._engine import MomentsDict, PairStatsDict, ValueStatsDict

__all__ = ["Moments", "PairStats", "ValueStats", "histogram"]

#: Histogram range, in standard deviations of d either side of its mean.
HIST_WIDTH = 5.0
#: Number of histogram bins.
HIST_BINS = 64


def _div(num: float, den: float) -> float:
    return float(num / den) if den != 0 and math.isfinite(den) else math.nan


@dataclass(frozen=True)
class Moments:
    """Count, mean and central moment sums of a set of values."""

    n: int
    mean: float
    m2: float
    m3: float
    m4: float

    @classmethod
    def of(cls, x: npt.NDArray[np.float64]) -> Moments:
        """The moments of an array's finite values (two-pass, float64)."""
        x = np.asarray(x, dtype=np.float64)
        x = x[np.isfinite(x)]
        if x.size == 0:
            return cls(0, 0.0, 0.0, 0.0, 0.0)
        mean = float(x.mean())
        e = x - mean
        e2 = e * e
        return cls(int(x.size), mean, float(e2.sum()), float((e2 * e).sum()), float((e2 * e2).sum()))

    @classmethod
    def from_raw(cls, raw: MomentsDict) -> Moments:
        """Builds from the engine's dict."""
        return cls(int(raw["n"]), float(raw["mean"]), float(raw["m2"]), float(raw["m3"]), float(raw["m4"]))

    @property
    def var(self) -> float:
        """Population variance (ddof = 0); NaN for no values."""
        return _div(self.m2, self.n)

    @property
    def std(self) -> float:
        """Population standard deviation."""
        v = self.var
        return math.sqrt(v) if v >= 0 else math.nan

    @property
    def skewness(self) -> float:
        """Sample skewness g1 = √n·m3 / m2^1.5 (scipy.stats.skew, bias=True); NaN when constant."""
        if self.n == 0 or self.m2 <= 0:
            return math.nan
        # Ratios first: m2^1.5 underflows to 0 for spreads below ~1e-100, m3/m2/√m2 does not.
        return math.sqrt(self.n) * (self.m3 / self.m2) / math.sqrt(self.m2)

    @property
    def kurtosis(self) -> float:
        """Excess kurtosis n·m4 / m2² − 3 (scipy.stats.kurtosis, bias=True); NaN when constant."""
        if self.n == 0 or self.m2 <= 0 or self.m4 <= 0:  # m4 = 0 with m2 > 0: m4 underflowed
            return math.nan
        return self.n * (self.m4 / self.m2) / self.m2 - 3.0

    @property
    def sum(self) -> float:
        """Σx."""
        return self.n * self.mean

    @property
    def sum_sq(self) -> float:
        """Σx²."""
        return self.m2 + self.n * self.mean * self.mean


@dataclass(frozen=True)
class ValueStats:
    """Statistics of one tensor's values. Moments cover the finite values only."""

    count: int
    moments: Moments
    min: float
    max: float
    nan: int
    pos_inf: int
    neg_inf: int

    @classmethod
    def from_raw(cls, raw: ValueStatsDict) -> ValueStats:
        """Builds from the engine's dict."""
        return cls(
            count=int(raw["count"]),
            moments=Moments.from_raw(raw),
            min=float(raw["min"]) if raw["n"] else math.nan,
            max=float(raw["max"]) if raw["n"] else math.nan,
            nan=int(raw["nan"]),
            pos_inf=int(raw["pos_inf"]),
            neg_inf=int(raw["neg_inf"]),
        )

    @property
    def mean(self) -> float:
        """Mean of the finite values."""
        return self.moments.mean if self.moments.n else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation of the finite values."""
        return self.moments.std

    @property
    def skewness(self) -> float:
        """Skewness of the finite values."""
        return self.moments.skewness

    @property
    def kurtosis(self) -> float:
        """Excess kurtosis of the finite values."""
        return self.moments.kurtosis

    @property
    def l2_norm(self) -> float:
        """Euclidean norm of the finite values."""
        return math.sqrt(max(self.moments.sum_sq, 0.0))

    @property
    def inf(self) -> int:
        """Infinite values of either sign."""
        return self.pos_inf + self.neg_inf

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        return {
            "count": self.count,
            "finite": self.moments.n,
            "mean": self.mean,
            "std": self.std,
            "skewness": self.skewness,
            "kurtosis": self.kurtosis,
            "min": self.min,
            "max": self.max,
            "l2_norm": self.l2_norm,
            "nan": self.nan,
            "pos_inf": self.pos_inf,
            "neg_inf": self.neg_inf,
        }


def histogram(
    sample: npt.NDArray[np.float64], mean: float, std: float
) -> tuple[list[float], list[int], int, int] | None:
    """Histogram of sampled differences over mean ± 5σ in 64 bins, with the counts below and above.

    None when the spread is zero or undefined (e.g. identical tensors).
    """
    if not (math.isfinite(std) and std > 0 and math.isfinite(mean)):
        return None
    finite = sample[np.isfinite(sample)]
    lo, hi = mean - HIST_WIDTH * std, mean + HIST_WIDTH * std
    # A spread near the resolution of the mean (σ ≈ 0.5 at |mean| ≈ 5.6e14, say) leaves no room for 64
    # distinct bin edges: nothing to draw.
    if not (hi - lo) / HIST_BINS > 4 * float(np.spacing(max(abs(lo), abs(hi)))):
        return None
    counts, edges = np.histogram(finite, bins=HIST_BINS, range=(lo, hi))
    below = int(np.count_nonzero(finite < lo))
    above = int(np.count_nonzero(finite > hi))
    return [float(e) for e in edges], [int(c) for c in counts], below, above


#: Below this, 1 − cos and 1 − r are taken from the moments of d (exact when a ≈ b); above it,
#: from Σab directly (exact when a and b differ a lot, e.g. ‖b‖ ≪ ‖a‖).
_NEAR = 1e-3


def _one_minus(direct: float, d2: float, gap_num: float, na: float, nb: float) -> float:
    """1 − Σxy/(‖x‖‖y‖), choosing the formula that keeps its digits.

    ``gap_num`` is ‖x‖² − ‖y‖² computed from d (−(2Σxd + Σd²)), so ‖x‖ − ‖y‖ = gap_num / (‖x‖ + ‖y‖)
    without cancellation, and 1 − cos = (Σd² − (‖x‖ − ‖y‖)²) / (2‖x‖‖y‖).
    """
    if na == 0 or nb == 0 or not (math.isfinite(na) and math.isfinite(nb)):
        return math.nan
    # The d-based form cancels unless ‖x‖ ≈ ‖y‖ (its error grows like ε·max(‖x‖/‖y‖, ‖y‖/‖x‖)).
    if direct > _NEAR or not 0.5 <= nb / na <= 2.0:
        value = direct
    else:
        gap = gap_num / (na + nb)
        value = (d2 - gap * gap) / (2 * na * nb)
    return min(max(value, 0.0), 2.0)  # rounding must not push a cosine past ±1


@dataclass(frozen=True)
class PairStats:
    """Statistics of a tensor pair (a, b) and of their difference d = b − a.

    ``a`` and ``b`` describe each side on its own; everything else covers the positions where a and b
    are both finite (``n`` of them).
    """

    a: ValueStats
    b: ValueStats
    d: Moments
    d_min: float
    d_max: float
    a_on_pair: Moments
    b_on_pair: Moments
    c_da: float
    c_ab: float
    max_abs_d: float
    equal: int
    sample_a: npt.NDArray[np.float64]
    sample_b: npt.NDArray[np.float64]

    @classmethod
    def from_raw(cls, raw: PairStatsDict) -> PairStats:
        """Builds from the engine's dict."""
        some = raw["d"]["n"] > 0
        return cls(
            a=ValueStats.from_raw(raw["a"]),
            b=ValueStats.from_raw(raw["b"]),
            d=Moments.from_raw(raw["d"]),
            d_min=float(raw["d_min"]) if some else math.nan,
            d_max=float(raw["d_max"]) if some else math.nan,
            a_on_pair=Moments.from_raw(raw["a_on_pair"]),
            b_on_pair=Moments.from_raw(raw["b_on_pair"]),
            c_da=float(raw["c_da"]),
            c_ab=float(raw["c_ab"]),
            max_abs_d=float(raw["max_abs_d"]) if some else math.nan,
            equal=int(raw["equal"]),
            sample_a=np.asarray(raw["sample_a"], dtype=np.float64),
            sample_b=np.asarray(raw["sample_b"], dtype=np.float64),
        )

    @property
    def sample(self) -> npt.NDArray[np.float64]:
        """b − a at the sampled positions (NaN where either is not finite).

        The positions are pseudo-random, one per stratum of the tensor, and depend only on its size.
        """
        with np.errstate(invalid="ignore", over="ignore"):
            d = self.sample_b - self.sample_a
        return np.where(np.isfinite(self.sample_a) & np.isfinite(self.sample_b), d, np.nan)

    @classmethod
    def from_samples(
        cls,
        a: ValueStats,
        b: ValueStats,
        sample_a: npt.NDArray[np.float64],
        sample_b: npt.NDArray[np.float64],
    ) -> PairStats:
        """Pair statistics estimated from two samples at the same positions (what fingerprints allow).

        ``a`` and ``b`` are each tensor's exact statistics; everything about d, the co-moments and the
        equal count come from the samples, the count scaled to the whole tensor.
        """
        sa, sb = np.asarray(sample_a, dtype=np.float64), np.asarray(sample_b, dtype=np.float64)
        ok = np.isfinite(sa) & np.isfinite(sb)
        fa, fb = sa[ok], sb[ok]
        d = fb - fa
        ma, mb, md = Moments.of(fa), Moments.of(fb), Moments.of(d)
        equal = int(np.count_nonzero(sa.view(np.uint64) == sb.view(np.uint64)))
        scale = a.count / sa.size if sa.size else 0.0
        return cls(
            a=a,
            b=b,
            d=md,
            d_min=float(d.min()) if d.size else math.nan,
            d_max=float(d.max()) if d.size else math.nan,
            a_on_pair=ma,
            b_on_pair=mb,
            c_da=float(((d - md.mean) * (fa - ma.mean)).sum()) if d.size else 0.0,
            c_ab=float(((fa - ma.mean) * (fb - mb.mean)).sum()) if d.size else 0.0,
            max_abs_d=float(np.abs(d).max()) if d.size else math.nan,
            equal=a.count if equal == sa.size else round(equal * scale),
            sample_a=sa,
            sample_b=sb,
        )

    # -- raw sums over the positions where both are finite --------------------------------------
    @property
    def n(self) -> int:
        """Positions where a and b are both finite."""
        return self.d.n

    @property
    def sum_a(self) -> float:
        """Σa."""
        return self.a_on_pair.sum

    @property
    def sum_b(self) -> float:
        """Σb."""
        return self.b_on_pair.sum

    @property
    def sum_a2(self) -> float:
        """Σa²."""
        return self.a_on_pair.sum_sq

    @property
    def sum_b2(self) -> float:
        """Σb²."""
        return self.b_on_pair.sum_sq

    @property
    def sum_d2(self) -> float:
        """Σd²."""
        return self.d.sum_sq

    @property
    def sum_ab(self) -> float:
        """Σab."""
        return self.c_ab + self.n * self.a_on_pair.mean * self.b_on_pair.mean

    @property
    def _sum_ad(self) -> float:
        return self.c_da + self.n * self.a_on_pair.mean * self.d.mean

    # -- similarity ------------------------------------------------------------------------------
    @property
    def one_minus_cosine(self) -> float:
        """1 − cos(a, b), accurate both when a ≈ b and when they differ a lot."""
        na, nb = math.sqrt(self.sum_a2), math.sqrt(self.sum_b2)
        direct = 1.0 - _div(self.sum_ab, na * nb)
        return _one_minus(direct, self.sum_d2, -(2 * self._sum_ad + self.sum_d2), na, nb)

    @property
    def cosine(self) -> float:
        """Cosine similarity of a and b."""
        return 1.0 - self.one_minus_cosine

    @property
    def one_minus_pearson(self) -> float:
        """1 − r(a, b), accurate both when a ≈ b and when they differ a lot."""
        sa, sb = math.sqrt(self.a_on_pair.m2), math.sqrt(self.b_on_pair.m2)
        direct = 1.0 - _div(self.c_ab, sa * sb)
        return _one_minus(direct, self.d.m2, -(2 * self.c_da + self.d.m2), sa, sb)

    @property
    def pearson(self) -> float:
        """Pearson correlation of a and b."""
        return 1.0 - self.one_minus_pearson

    @property
    def rel_change(self) -> float:
        """‖d‖ / ‖a‖."""
        return _div(math.sqrt(self.sum_d2), math.sqrt(self.sum_a2))

    @property
    def corr_d_a(self) -> float:
        """Pearson correlation of d with a (≈ 0 for added noise, ≠ 0 for scaling or shrinkage)."""
        return _div(self.c_da, math.sqrt(self.d.m2 * self.a_on_pair.m2))

    @property
    def corr_d_b(self) -> float:
        """Pearson correlation of d with b (≈ 0 when A is B with noise added: the reverse direction)."""
        return _div(self.c_da + self.d.m2, math.sqrt(self.d.m2 * self.b_on_pair.m2))

    @property
    def equal_fraction(self) -> float:
        """Share of positions whose values are bit-identical."""
        return _div(self.equal, self.a.count)

    def histogram(self) -> tuple[list[float], list[int], int, int] | None:
        """Histogram of the sampled differences (see :func:`histogram`)."""
        return histogram(self.sample, self.d.mean, self.d.std)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields (the sample itself is left out; the histogram is in)."""
        h = self.histogram()
        return {
            "n": self.n,
            "equal": self.equal,
            "equal_fraction": self.equal_fraction,
            "d_mean": self.d.mean if self.n else math.nan,
            "d_std": self.d.std,
            "d_skewness": self.d.skewness,
            "d_kurtosis": self.d.kurtosis,
            "d_min": self.d_min,
            "d_max": self.d_max,
            "max_abs_d": self.max_abs_d,
            "rel_change": self.rel_change,
            "cosine": self.cosine,
            "one_minus_cosine": self.one_minus_cosine,
            "pearson": self.pearson,
            "one_minus_pearson": self.one_minus_pearson,
            "corr_d_a": self.corr_d_a,
            "sum_a": self.sum_a,
            "sum_b": self.sum_b,
            "sum_a2": self.sum_a2,
            "sum_b2": self.sum_b2,
            "sum_ab": self.sum_ab,
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "histogram": None if h is None else dict(zip(("edges", "counts", "below", "above"), h)),
        }
