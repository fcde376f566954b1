"""An independent float64 reference for the statistics that modelkin computes, in plain numpy/scipy.

Nothing here imports modelkin. Values are decoded with numpy's own ``astype(np.float64)`` (ml_dtypes
registers its casts with numpy), sums are exactly rounded (``math.fsum``), moments are two-pass about
an accurate mean, skewness and kurtosis come from scipy, and the similarities that must stay accurate
when a ≈ b are computed from unit vectors (1 − cos = ½‖a/‖a‖ − b/‖b‖‖²), a different formula from the
library's. The dict keys are those of ``ValueStats.to_dict()`` and ``PairStats.to_dict()``.

Callers keep magnitudes where float64 cannot overflow (|x| ≲ 1e70: Σx⁴ stays finite).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.stats

__all__ = [
    "decode",
    "moments",
    "one_minus_cosine_from_d",
    "one_minus_pearson_from_d",
    "pair_stats",
    "value_stats",
]

NAN = math.nan
F64 = npt.NDArray[np.float64]


def decode(x: npt.NDArray[Any]) -> F64:
    """The values of ``x`` as a flat float64 array (numpy's own cast, incl. ml_dtypes types)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # casting NaN payloads warns
        return np.ascontiguousarray(x).astype(np.float64).reshape(-1)


def _fsum(v: F64) -> float:
    return math.fsum(v.tolist()) if v.size else 0.0


def _ratio(num: float, den: float) -> float:
    return num / den if den != 0 else NAN


def moments(v: F64) -> dict[str, float]:
    """Mean, population std, skewness (g1) and excess kurtosis (g2) of finite values ``v``."""
    n = v.size
    if n == 0:
        return {"mean": NAN, "std": NAN, "skewness": NAN, "kurtosis": NAN}
    mean = _fsum(v) / n
    e = v - mean
    var = _fsum(e * e) / n
    with warnings.catch_warnings():
        # scipy warns (and returns NaN) for data it judges constant.
        warnings.simplefilter("ignore", RuntimeWarning)
        skew = float(scipy.stats.skew(v, bias=True))
        kurt = float(scipy.stats.kurtosis(v, fisher=True, bias=True))
    return {"mean": mean, "std": math.sqrt(var), "skewness": skew, "kurtosis": kurt}


def value_stats(x: npt.NDArray[Any]) -> dict[str, Any]:
    """Statistics of one array; moments, extremes and norm cover its finite values only."""
    v = decode(x)
    f = v[np.isfinite(v)]
    return {
        "count": v.size,
        "finite": f.size,
        **moments(f),
        "min": float(f.min()) if f.size else NAN,
        "max": float(f.max()) if f.size else NAN,
        "l2_norm": math.sqrt(_fsum(f * f)),
        "nan": int(np.count_nonzero(np.isnan(v))),
        "pos_inf": int(np.count_nonzero(v == np.inf)),
        "neg_inf": int(np.count_nonzero(v == -np.inf)),
    }


def _one_minus_cos_unit(u: F64, w: F64) -> float:
    """1 − cos(u, w) as ½‖u/‖u‖ − w/‖w‖‖²: no cancellation when u ≈ w."""
    nu, nw = math.sqrt(_fsum(u * u)), math.sqrt(_fsum(w * w))
    if nu == 0 or nw == 0:
        return NAN
    r = u / nu - w / nw
    return 0.5 * _fsum(r * r)


def one_minus_cosine_from_d(a: F64, b: F64) -> float:
    """1 − cos(a, b) from d = b − a: (Σd² − (‖a‖−‖b‖)²) / (2‖a‖‖b‖), ‖a‖−‖b‖ = −Σd(a+b)/(‖a‖+‖b‖)."""
    d = b - a
    na, nb = math.sqrt(_fsum(a * a)), math.sqrt(_fsum(b * b))
    if na == 0 or nb == 0:
        return NAN
    gap = -_fsum(d * (a + b)) / (na + nb)
    return (_fsum(d * d) - gap * gap) / (2 * na * nb)


def one_minus_pearson_from_d(a: F64, b: F64) -> float:
    """1 − r(a, b): :func:`one_minus_cosine_from_d` of the centred vectors."""
    if a.size == 0:
        return NAN
    return one_minus_cosine_from_d(a - _fsum(a) / a.size, b - _fsum(b) / b.size)


def pair_stats(x: npt.NDArray[Any], y: npt.NDArray[Any]) -> dict[str, Any]:
    """Statistics of a pair (a, b) = (x, y) and of d = b − a over positions where both are finite."""
    a_all, b_all = decode(x), decode(y)
    both = np.isfinite(a_all) & np.isfinite(b_all)
    a, b = a_all[both], b_all[both]
    d = b - a
    n = int(a.size)
    dm = moments(d)
    sum_a2, sum_b2, sum_d2 = _fsum(a * a), _fsum(b * b), _fsum(d * d)
    na, nb = math.sqrt(sum_a2), math.sqrt(sum_b2)
    ac = a - _fsum(a) / n if n else a
    bc = b - _fsum(b) / n if n else b
    dc = d - _fsum(d) / n if n else d
    saa, sbb, sdd = _fsum(ac * ac), _fsum(bc * bc), _fsum(dc * dc)
    equal = int(np.count_nonzero(a_all.view(np.uint64) == b_all.view(np.uint64)))
    omc = _one_minus_cos_unit(a, b)
    omp = _one_minus_cos_unit(ac, bc)
    return {
        "n": n,
        "equal": equal,
        "equal_fraction": _ratio(equal, a_all.size),
        "d_mean": dm["mean"],
        "d_std": dm["std"],
        "d_skewness": dm["skewness"],
        "d_kurtosis": dm["kurtosis"],
        "d_min": float(d.min()) if n else NAN,
        "d_max": float(d.max()) if n else NAN,
        "max_abs_d": float(np.abs(d).max()) if n else NAN,
        "rel_change": _ratio(math.sqrt(sum_d2), na),
        "cosine": _ratio(_fsum(a * b), na * nb),
        "one_minus_cosine": omc,
        "pearson": _ratio(_fsum(ac * bc), math.sqrt(saa * sbb)),
        "one_minus_pearson": omp,
        "corr_d_a": _ratio(_fsum(dc * ac), math.sqrt(sdd * saa)),
        "sum_a": _fsum(a),
        "sum_b": _fsum(b),
        "sum_a2": sum_a2,
        "sum_b2": sum_b2,
        "sum_ab": _fsum(a * b),
        "sum_d2": sum_d2,
        "a": value_stats(x),
        "b": value_stats(y),
    }
