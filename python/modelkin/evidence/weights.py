"""Per-tensor evidence: what the difference between two aligned tensors says about how they relate.

For each aligned pair the streaming pass gives exact moments of a, b and d = b − a, and the row and
column sums of both. The kinship test correlates the two samples (a and b at the same pseudo-random
positions) after removing each matrix's row and column effects: rows tied to tokens (embeddings, LM
heads) are alike in models trained on similar text even when they share nothing else, and the
residuals leave that out. Under independence the residual correlation's Fisher z is ≈ N(0, 1); for
relatives the p-value is astronomically small (reported as a log, so 1e-4000 is not printed as 0).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._types import Kind
from ..align import Pairing, sample_z
from ..stats import PairStats

if TYPE_CHECKING:
    from .._engine import MarginsDict

__all__ = ["PairEvidence", "assess", "double_centred", "kinship_z", "learnt_matrix", "log10_sf"]

#: Names of buffers that are fixed by the architecture, not learnt: equal in unrelated models.
FIXED = re.compile(r"(inv_freq|position_ids|rotary|causal_mask|masked_bias|attn\.bias$|mel_filters|_cached)")
#: Tensors smaller than this, or with fewer distinct sampled values, carry too little information.
MIN_NUMEL = 1024
MIN_DISTINCT = 32
#: A tensor pair is "related" below this log10 p (one-sided, per tensor).
RELATED_LOG10_P = -6.0


def log10_sf(z: float) -> float:
    """log10 of the upper tail probability of N(0, 1) at z, accurate far into the tail."""
    if not math.isfinite(z):
        return math.nan
    # scipy loads on first use: importing it takes longer than a small diff runs.
    from scipy.stats import norm

    return float(norm.logsf(z)) / math.log(10)


_FLOAT_BITS = {"BF16": 8, "F16": 11, "F8_E4M3": 4, "F8_E5M2": 3, "F32": 24}

#: Code bits of ggml's block-quantised formats (GGUF files): each block of 32 or 256 elements holds
#: codes of this many bits on a grid set by the block's own scale (and minimum).
BLOCK_BITS = {
    "Q2_K": 2,
    "Q3_K": 3,
    "Q4_0": 4,
    "Q4_1": 4,
    "Q4_K": 4,
    "Q5_0": 5,
    "Q5_1": 5,
    "Q5_K": 5,
    "Q6_K": 6,
    "Q8_0": 8,
    "Q8_K": 8,
}
#: Slack on the grid bound of a block format, for its scales being rounded (to f16, or to 6-bit
#: sub-block scales relative to a super-block scale) before the codes are chosen.
GRID_SLACK = 1.25


def block_grid_bound(dtype: str, amax: float) -> float | None:
    """The largest |d| that rounding values of magnitude ≤ ``amax`` to block format ``dtype`` can
    leave, or None when ``dtype`` is not a block format.

    Whatever its layout, a block of a b-bit format spans its values (at most [−amax, amax]) with
    2^b − 1 steps or more, so its grid step is at most 2·amax / (2^b − 1); rounding to the nearest
    code errs by half a step, and by up to a whole step for a value clipped at the far end of a
    symmetric format's codes (Q4_0's −8…7). ``GRID_SLACK`` covers the rounding of the scales.
    """
    bits = BLOCK_BITS.get(dtype)
    if bits is None or not math.isfinite(amax):
        return None
    return GRID_SLACK * 2.0 * amax / float(2**bits - 1)


def _round_to(x: npt.NDArray[np.float64], dtype: str) -> npt.NDArray[np.float64] | None:
    """x rounded to a float dtype (round to nearest even), or None where modelkin cannot round to it."""
    import ml_dtypes

    target: Any = {
        "F32": np.float32,
        "F16": np.float16,
        "F64": np.float64,
        "BF16": ml_dtypes.bfloat16,
        "F8_E4M3": ml_dtypes.float8_e4m3fn,
        "F8_E5M2": ml_dtypes.float8_e5m2,
    }.get(dtype)
    if target is None:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(x.astype(target), dtype=np.float64)


@dataclass(frozen=True)
class PairEvidence:
    """What one aligned tensor pair says.

    ``kind`` is the pair's own reading: ``identical``, ``cast`` (one side is the other rounded to
    another float format), ``quantized`` (bounded, flat-topped differences; or one side is stored in a
    GGUF block format and d stays within that format's grid bound, see :func:`block_grid_bound`),
    ``gaussian`` (d looks like added noise), ``scaled`` (b ≈ c·a), ``update`` (related, with
    structured changes), ``permuted`` (related once hidden units are matched, see
    :mod:`modelkin.evidence.units`) or ``unrelated``. For a cast or a block-quantised copy, ``derived`` says
    which side is the copy: ``"b"`` (B is A rounded) or ``"a"`` (A is B rounded).
    """

    pairing: Pairing
    shape: tuple[int, ...]
    dtype_a: str
    dtype_b: str
    stats: PairStats
    informative: bool
    z: float
    log10_p: float
    kind: Kind
    cast_to: str | None
    scale: float
    grid_levels: float
    derived: str = "b"

    @property
    def numel(self) -> int:
        """Elements compared."""
        return self.stats.a.count

    @property
    def related(self) -> bool:
        """Far more similar than independent tensors would be."""
        return self.kind != "unrelated"

    @property
    def rows_whole(self) -> bool:
        """Whether the whole tensors were compared (not only their leading rows)."""
        return self.pairing.rows is None

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        s = self.stats
        return {
            "a": self.pairing.a,
            "b": self.pairing.b,
            "method": self.pairing.method,
            "rows": self.pairing.rows,
            "first_a": self.pairing.first_a,
            "first_b": self.pairing.first_b,
            "shape": list(self.shape),
            "dtype_a": self.dtype_a,
            "dtype_b": self.dtype_b,
            "informative": self.informative,
            "kind": self.kind,
            "z": self.z,
            "log10_p": self.log10_p,
            "equal_fraction": s.equal_fraction,
            "d_mean": s.d.mean if s.n else math.nan,
            "d_std": s.d.std,
            "d_skewness": s.d.skewness,
            "d_kurtosis": s.d.kurtosis,
            "corr_d_a": s.corr_d_a,
            "corr_d_b": s.corr_d_b,
            "pearson": s.pearson,
            "one_minus_cosine": s.one_minus_cosine,
            "rel_change": s.rel_change,
            "max_abs_d": s.max_abs_d,
            "std_a": s.a_on_pair.std,
            "std_b": s.b_on_pair.std,
            "kurtosis_a": s.a_on_pair.kurtosis,
            "kurtosis_b": s.b_on_pair.kurtosis,
            "scale": self.scale,
            "cast_to": self.cast_to,
            "derived": self.derived,
        }


def learnt_matrix(name: str, shape: tuple[int, ...]) -> bool:
    """Whether a tensor can carry evidence of kinship: a matrix of some size that is not a fixed buffer."""
    return not FIXED.search(name) and len(shape) >= 2 and math.prod(shape) >= MIN_NUMEL


def _informative(name: str, shape: tuple[int, ...], s: PairStats, sample_a: npt.NDArray[np.float64]) -> bool:
    if not learnt_matrix(name, shape):
        return False
    if not (s.a_on_pair.m2 > 0 and s.b_on_pair.m2 > 0):
        return False
    return int(np.unique(sample_a[np.isfinite(sample_a)]).size) >= MIN_DISTINCT


def double_centred(
    sample: npt.NDArray[np.float64],
    positions: npt.NDArray[np.uint64],
    shape: tuple[int, ...],
    rows: npt.NDArray[np.float64],
    cols: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Sampled values minus their row and column means (plus the grand mean): x_ij − r_i − c_j + m."""
    n_rows, row_len = shape[0], math.prod(shape[1:])
    i = (positions // row_len).astype(np.intp)
    j = (positions % row_len).astype(np.intp)
    row_mean = rows / row_len
    col_mean = cols / n_rows
    grand = float(rows.sum()) / (n_rows * row_len)
    return np.asarray(sample - row_mean[i] - col_mean[j] + grand, dtype=np.float64)


def kinship_z(
    stats: PairStats,
    shape: tuple[int, ...],
    positions: npt.NDArray[np.uint64] | None,
    margins: MarginsDict | None,
) -> float:
    """The kinship z score of a pair: the residual correlation where row and column sums are known."""
    sa, sb = stats.sample_a, stats.sample_b
    matrix = len(shape) >= 2 and shape[0] >= 2 and math.prod(shape[1:]) >= 2
    if matrix and positions is not None and margins is not None and len(margins["rows_a"]) == shape[0]:
        sa = double_centred(sa, positions, shape, margins["rows_a"], margins["cols_a"])
        sb = double_centred(sb, positions, shape, margins["rows_b"], margins["cols_b"])
    return sample_z(sa, sb)


def assess(
    pairing: Pairing,
    shape: tuple[int, ...],
    dtype_a: str,
    dtype_b: str,
    stats: PairStats,
    z: float,
) -> PairEvidence:
    """Reads one aligned pair: its kinship test (``z``, see :func:`kinship_z`) and which kind of
    change d looks like."""
    s = stats
    sample_a = s.sample_a
    lp = log10_sf(z) if math.isfinite(z) else 0.0
    informative = _informative(pairing.a, shape, s, sample_a)
    scale = 1.0 + s.c_da / s.a_on_pair.m2 if s.a_on_pair.m2 > 0 else math.nan
    max_a = max(abs(s.a.min), abs(s.a.max)) if s.a.moments.n else math.nan
    levels = max_a / (2 * s.max_abs_d) if s.max_abs_d and s.max_abs_d > 0 else math.inf
    identical = s.equal == s.a.count and s.a.count == s.b.count
    related = identical or lp < RELATED_LOG10_P

    cast_to, derived = None, "b"
    if not identical and related:
        cast_to, derived = _cast(s, dtype_a, dtype_b)
    block = None if identical or not related or cast_to else _block_quantized(s, dtype_a, dtype_b)

    kind: Kind
    if identical:
        kind = "identical"
    elif not related:
        kind = "unrelated"
    elif cast_to is not None:
        kind = "cast"
    elif block is not None:
        kind, derived = "quantized", block
    elif abs(s.corr_d_a) > 0.99 and s.one_minus_pearson < 1e-6:
        kind = "scaled"
    elif s.d.kurtosis < -0.5 and levels >= 7 and abs(s.corr_d_a) < 0.2:
        kind = "quantized"
    elif abs(s.d.skewness) < 0.1 and abs(s.d.kurtosis) < 0.25 and min(abs(s.corr_d_a), abs(s.corr_d_b)) < 0.1:
        # Noise added to A leaves d uncorrelated with a; noise added to B (A is the copy) with b.
        kind = "gaussian"
    else:
        kind = "update"
    return PairEvidence(
        pairing, shape, dtype_a, dtype_b, s, informative, z, lp, kind, cast_to, scale, levels, derived
    )


def _extreme(v: Any) -> float:
    """The largest magnitude among a side's values (NaN when it has none)."""
    return max(abs(v.min), abs(v.max)) if v.moments.n else math.nan


def _cast(s: PairStats, dtype_a: str, dtype_b: str) -> tuple[str | None, str]:
    """The float format one side is the other rounded to, and which side is the copy ("b": B is A
    rounded; "a": A is B rounded); (None, "b") when neither is."""
    ok = np.isfinite(s.sample_a) & np.isfinite(s.sample_b)
    if not ok.any():
        return None, "b"
    for side, src, dst, src_dtype, dst_dtype, amax in (
        ("b", s.sample_a[ok], s.sample_b[ok], dtype_a, dtype_b, _extreme(s.a)),
        ("a", s.sample_b[ok], s.sample_a[ok], dtype_b, dtype_a, _extreme(s.b)),
    ):
        for target in dict.fromkeys((dst_dtype, "BF16", "F16", "F8_E4M3", "F8_E5M2")):
            if target == src_dtype or target not in _FLOAT_BITS:
                continue
            # The rounding bound first: it is one comparison, and rules out most pairs (any noise or
            # training moves values by more than a rounding step) before any sample is rounded.
            if s.max_abs_d > 2.0 ** -(_FLOAT_BITS[target]) * amax * (1 + 1e-9):
                continue
            rounded = _round_to(src, target)
            if rounded is not None and np.array_equal(rounded, dst):
                return target, side
    return None, "b"


def _block_quantized(s: PairStats, dtype_a: str, dtype_b: str) -> str | None:
    """Which side ("a" or "b") holds the other rounded to its GGUF block format, or None.

    That side is stored in a block format (the other is not), every |d| is within the format's grid
    bound (:func:`block_grid_bound`) for the other side's values, and d is not proportional to the
    other side (rounding errors are not a scaling or a shrinkage). When both sides are in block
    formats (two quantizations of one model) d is the difference of two rounding errors, bounded by
    the sum of the two bounds, and the coarser side (fewer bits; B on a tie) is the copy.
    """
    bits_a, bits_b = BLOCK_BITS.get(dtype_a), BLOCK_BITS.get(dtype_b)
    if bits_a is not None and bits_b is not None:
        amax = max(_extreme(s.a), _extreme(s.b))
        bound_a, bound_b = block_grid_bound(dtype_a, amax), block_grid_bound(dtype_b, amax)
        if bound_a is None or bound_b is None or s.max_abs_d > bound_a + bound_b:
            return None
        if min(abs(s.corr_d_a), abs(s.corr_d_b)) >= 0.2:
            return None
        return "a" if bits_a < bits_b else "b"
    for side, dtype, other_dtype, other, corr in (
        ("b", dtype_b, dtype_a, s.a, s.corr_d_a),
        ("a", dtype_a, dtype_b, s.b, s.corr_d_b),
    ):
        if other_dtype in BLOCK_BITS:
            continue
        bound = block_grid_bound(dtype, _extreme(other))
        if bound is not None and s.max_abs_d <= bound and abs(corr) < 0.2:
            return side
    return None
