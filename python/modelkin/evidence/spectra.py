"""Norm spectra: do two matrices have the same sorted row and column norms, within what noise explains?

Permuting the hidden units of a layer (rows of one matrix, columns of the next) leaves each matrix's
*sorted* row norms and sorted column norms unchanged, so where a fingerprint cannot align a permuted
copy position by position (it holds no per-unit data to match units on), the spectra can still say
whether a permutation is *consistent* with what is seen. Fingerprints keep them at up to 128
quantiles (:mod:`modelkin.fingerprint`).

If B's matrix is A's with its rows and columns permuted and N(0, σ²) added, a row of length n keeps
its norm up to ‖a + e‖ ≈ √(‖a‖² + nσ²) + N(0, σ²): each sorted norm of B is within a few σ of
√(q² + nσ²), q being A's norm at the same quantile (sorting cannot increase the largest
deviation). σ is taken from the tensor pairs of the same comparison that did align (the noise or
update there). The check says *consistent* when no quantile deviates by more than :data:`TOLERANCE` σ
along either axis.

This is supporting evidence only and never enters the kinship test: independently initialised
matrices of one shape and scale have nearly identical norm spectra too (the norms of random rows
concentrate), and independently trained models of one architecture have similar ones. A spectrum that
does *not* agree, however, shows that the matrix was changed beyond the noise seen elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["TOLERANCE", "SpectrumCheck", "check_spectra"]

#: Largest deviation, in σ, of a sorted norm from its expected value that counts as agreement.
TOLERANCE = 6.0


@dataclass(frozen=True)
class SpectrumCheck:
    """The sorted row and column norms of a matrix of A against those of its counterpart in B."""

    a: str
    b: str
    sigma: float  # the noise level the deviations are measured against (NaN: none known)
    rows_dev: (
        float  # largest deviation of a row-norm quantile, in σ (relative to the median norm if σ is NaN)
    )
    cols_dev: float  # the same for the column norms
    consistent: bool | None  # within TOLERANCE σ on both axes; None when no σ is known

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        return dict(vars(self))


def _deviation(qa: npt.NDArray[np.float64], qb: npt.NDArray[np.float64], length: int, sigma: float) -> float:
    """Largest |qb − √(qa² + length·σ²)| in units of σ (or, when σ is NaN, of A's median norm)."""
    if qa.size != qb.size or qa.size == 0:
        return math.nan
    if not math.isfinite(sigma):
        scale = float(np.median(qa))
        return float(np.max(np.abs(qb - qa))) / scale if scale > 0 else math.nan
    expected = np.sqrt(qa * qa + length * sigma * sigma)
    # Rounding floor: the norms are stored as float32, and σ may be 0 (an exact permuted copy).
    unit = max(sigma, 1e-6 * float(np.median(qa)), 1e-30)
    return float(np.max(np.abs(qb - expected))) / unit


def check_spectra(
    a: str,
    b: str,
    shape: tuple[int, ...],
    rows_a: npt.NDArray[np.float64],
    cols_a: npt.NDArray[np.float64],
    rows_b: npt.NDArray[np.float64],
    cols_b: npt.NDArray[np.float64],
    sigma: float,
) -> SpectrumCheck:
    """Compares the norm spectra of two equal-shaped matrices, given the noise level σ (NaN: unknown)."""
    n_rows, row_len = shape[0], math.prod(shape[1:])
    rd = _deviation(rows_a, rows_b, row_len, sigma)
    cd = _deviation(cols_a, cols_b, n_rows, sigma)
    consistent = None
    if math.isfinite(sigma) and math.isfinite(rd) and math.isfinite(cd):
        consistent = rd <= TOLERANCE and cd <= TOLERANCE
    return SpectrumCheck(a, b, sigma, rd, cd, consistent)
