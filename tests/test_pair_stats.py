"""``modelkin.pair_stats`` against an independent float64 reference (``refstats``).

Every dtype modelkin reads decodes exactly to float64 (u64/i64 above 2⁵³ round the same way in numpy
and in Rust), and the engine reduces everything in float64, so one error model serves every dtype.
Tolerances follow the error bounds of the computation; each is stated where it is used:

* ``RTOL = 1e-9`` on anything computed from sums of like-signed terms (std, norms, Σx²).
* A mean carries a summation error of at most ``n·ε·mean|x|`` (ε = 2.2e-16); ``mean_floor`` allows
  8× that as an absolute floor (where values cancel, the mean is ≈ 0 and its error is not).
  Dropping or double-counting one element moves the mean by ~mean|x|/n, far beyond the floor.
* Skewness and kurtosis depend on the centring: an error δ in the mean moves g1 by ≈ 3δ/σ and g2 by
  ≈ 4δ/σ·|g1|. They are compared where ``c = floor/σ ≤ 1e-3``, with those terms added; beyond that
  the data are numerically constant and carry no digits of g1, g2 (scipy then returns NaN).
* Sums whose terms may cancel (Σab, the numerator of 1 − cos) carry an absolute error of at most
  ``SUM_EPS`` times the sum of the terms' magnitudes (lanes flushed every 256 elements: the true
  bound is ~(256/L + n/256)·ε ≈ 3e-14 for the lengths used here; SUM_EPS = 1e-10 leaves room).

Pairs whose two dtypes are both narrow (``NARROW``: values exact in float32) are reduced in float32
lanes, each lane summing at most 16 terms before the sum moves to float64 (see ``kernel.rs``). A
term (x−μ)^k is good to ~4 float32 roundings and a 16-term sum adds 15 more, so every bound above
takes ``NARROW_EPS = 2e-6`` (≥ 20·2⁻²⁴ = 1.2e-6) in place of RTOL, SUM_EPS, and 8·n·ε per element.
"""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any

import ml_dtypes
import modelkin
import numpy as np
import numpy.typing as npt
import pytest
import refstats
import scipy.stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

EPS = float(np.finfo(np.float64).eps)
RTOL = 1e-9
SUM_EPS = 1e-10
NARROW_EPS = 2e-6
#: Absolute floor for values near the bottom of the float64 range: the path for blocks holding NaN
#: or ±∞ pre-scales by 2⁻¹⁶ (so that Σx cannot overflow), which costs float64 subnormals their digits.
TINY = 1e-300
#: Relative centring error above which skewness/kurtosis/correlations are not compared.
ILL_CONDITIONED = 1e-3

BF16 = np.dtype(ml_dtypes.bfloat16)
E4M3 = np.dtype(ml_dtypes.float8_e4m3fn)
E5M2 = np.dtype(ml_dtypes.float8_e5m2)
FLOATS = [np.dtype(t) for t in (np.float64, np.float32, np.float16)] + [BF16, E4M3, E5M2]
INTS = [
    np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)
]
DTYPES = [*FLOATS, *INTS, np.dtype(np.bool_)]
#: Dtypes whose values are exact in float32 (the engine's ``DType::fits_f32``).
NARROW = {np.dtype(t) for t in (np.float16, np.int8, np.int16, np.uint8, np.uint16, np.bool_)}
NARROW |= {BF16, E4M3, E5M2}


def narrow(*arrays: npt.NDArray[Any]) -> bool:
    """Whether a pair of these arrays is reduced in float32 lanes."""
    return all(a.dtype in NARROW for a in arrays)


def rtol(nar: bool) -> float:
    """Relative tolerance of sums of like-signed terms."""
    return NARROW_EPS if nar else RTOL


def sum_eps(nar: bool) -> float:
    """Absolute tolerance of cancelling sums, per unit of the terms' magnitudes."""
    return NARROW_EPS if nar else SUM_EPS


UINT_OF_SIZE = {1: np.dtype(np.uint8), 2: np.dtype(np.uint16), 4: np.dtype(np.uint32), 8: np.dtype(np.uint64)}
#: Values planted at random positions of float arrays (cast to the array's dtype: ±3e38 saturates or
#: becomes ±∞ in the narrow types, NaN in float8_e4m3fn, which has no infinities).
SPECIALS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 3e38, -3e38, 65504.0, 1e-40]
#: Lengths around the engine's block (4096 elements) and lane (4) boundaries.
LONG_SHAPES = [(4095,), (4097,), (8193,), (10_001,), (12_289,), (3, 4099), (2, 3, 1367)]

#: Differences kept per pair for the histogram when the caller does not say.
DEFAULT_SAMPLE: int = inspect.signature(modelkin.pair_stats).parameters["sample_size"].default

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- generating arrays ---------------------------------------------------------------------------------
def _cast(v: npt.NDArray[np.float64], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """float64 values to ``dtype``: rounding for floats, rounded and clipped for integers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if dtype in FLOATS:
            return np.asarray(v.astype(dtype))
        if dtype == np.bool_:
            return np.asarray(v != 0)
        info = np.iinfo(dtype)
        hi = np.nextafter(float(info.max), 0.0)  # float(u64 max) rounds up to 2⁶⁴
        return np.asarray(np.clip(np.nan_to_num(np.rint(v)), float(info.min), hi).astype(dtype))


def _hyp_values(dtype: np.dtype[Any], shape: tuple[int, ...]) -> st.SearchStrategy[npt.NDArray[Any]]:
    """Arrays whose elements hypothesis picks: every bit pattern for the narrow floats (NaN payloads,
    subnormals, ±∞ included), bounded floats for float64, the full range for integers and bool."""
    if dtype == np.float64:  # |x| ≤ 1e60 keeps Σx⁴ finite
        return hnp.arrays(dtype, shape, elements=st.floats(-1e60, 1e60))
    if dtype in FLOATS:
        bits = hnp.arrays(UINT_OF_SIZE[dtype.itemsize], shape).map(lambda u: u.view(dtype))
        moderate = hnp.arrays(np.float64, shape, elements=st.floats(-300, 300)).map(lambda v: _cast(v, dtype))
        return st.one_of(bits, moderate)
    return hnp.arrays(dtype, shape)


def _rng_values(rng: np.random.Generator, dtype: np.dtype[Any], n: int, scale: float) -> npt.NDArray[Any]:
    """``n`` random elements of ``dtype`` (drawing long arrays element by element is too slow)."""
    if dtype == np.bool_:
        return rng.random(n) < 0.5
    if dtype in INTS:
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=n, dtype=dtype, endpoint=True)
    if dtype != np.float64 and rng.random() < 0.3:
        return rng.integers(0, 2 ** (8 * dtype.itemsize), size=n, dtype=UINT_OF_SIZE[dtype.itemsize]).view(
            dtype
        )
    return _cast(rng.normal(rng.normal(), 1.0, n) * scale, dtype)


@st.composite
def pairs(draw: st.DrawFn, dtypes: list[np.dtype[Any]] = DTYPES) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Two same-shaped arrays (x, y) of any supported dtypes (the same one half of the time): either
    independent, or y a rounded, perturbed copy of x; NaN/±∞/huge values planted at random places."""
    dx = draw(st.sampled_from(dtypes))
    dy = draw(st.one_of(st.just(dx), st.sampled_from(dtypes)))
    shape = draw(
        st.one_of(
            hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5), st.sampled_from(LONG_SHAPES)
        )
    )
    n = math.prod(shape)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1e-3, 0.02, 1.0, 1e3]))

    def values(dtype: np.dtype[Any]) -> npt.NDArray[Any]:
        if n <= 64:
            return np.array(draw(_hyp_values(dtype, shape)), copy=True)
        return _rng_values(rng, dtype, n, scale).reshape(shape)

    x = values(dx)
    relation = draw(st.sampled_from(["independent", "perturbed", "copy"]))
    if relation == "independent":
        y = values(dy)
    else:
        x64 = refstats.decode(x)
        noise = 0.0 if relation == "copy" else draw(st.sampled_from([1e-7, 1e-3, 0.1]))
        touched = rng.random(n) < draw(st.sampled_from([0.01, 0.5, 1.0]))
        with np.errstate(invalid="ignore", over="ignore"):  # ±∞·0 where x is not finite
            y64 = np.where(
                touched, x64 * (1 + noise * rng.normal(size=n)) + noise * scale * rng.normal(size=n), x64
            )
        y = _cast(y64, dy).reshape(shape)
    if n:
        plants = st.tuples(st.booleans(), st.integers(0, n - 1), st.sampled_from(SPECIALS))
        for in_x, i, v in draw(st.lists(plants, max_size=6)):
            arr = x if in_x else y
            if arr.dtype in FLOATS:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    arr.reshape(-1)[i] = v
    return x, y


# -- comparing ------------------------------------------------------------------------------------------
def _close(what: str, got: float, want: float, tol: float) -> None:
    if math.isnan(want):
        assert math.isnan(got), f"{what}: reference is NaN, modelkin gave {got!r}"
        return
    assert not math.isnan(got), f"{what}: modelkin gave NaN, reference {want!r}"
    assert abs(got - want) <= tol, (
        f"{what}: modelkin {got!r}, reference {want!r}, |Δ| {abs(got - want):.3g} > {tol:.3g}"
    )


def mean_floor(v: npt.NDArray[np.float64], nar: bool = False) -> float:
    """8× the worst-case rounding error of a computed mean of ``v`` (n·ε·mean|v|), plus TINY; in
    float32 lanes, plus NARROW_EPS·mean|v| (16-term float32 sums)."""
    if not v.size:
        return TINY
    per = 8 * v.size * EPS + (NARROW_EPS if nar else 0.0)
    return per * float(np.mean(np.abs(v))) + TINY


def centring(v: npt.NDArray[np.float64], std: float, nar: bool = False) -> float:
    """Relative error of the centring, δ/σ (∞ when σ = 0 or when (x−μ)⁴ would underflow)."""
    return mean_floor(v, nar) / std if std > 1e-70 else math.inf


def _finite(x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    v = refstats.decode(x)
    return v[np.isfinite(v)]


def _on_pair(x: npt.NDArray[Any], y: npt.NDArray[Any]) -> tuple[npt.NDArray[np.float64], ...]:
    """a, b and d = b − a at the positions where both are finite."""
    a, b = refstats.decode(x), refstats.decode(y)
    both = np.isfinite(a) & np.isfinite(b)
    return a[both], b[both], b[both] - a[both]


def _check_moments(
    what: str, got: dict[str, float], want: dict[str, float], v: npt.NDArray[np.float64], nar: bool = False
) -> None:
    """mean, std, skewness, kurtosis of values ``v`` (``nar``: reduced in float32 lanes)."""
    fl, rt = mean_floor(v, nar), rtol(nar)
    _close(f"{what} mean", got["mean"], want["mean"], rt * abs(want["mean"]) + fl)
    _close(f"{what} std", got["std"], want["std"], rt * want["std"] + fl)
    c = centring(v, want["std"], nar)
    if c <= ILL_CONDITIONED:
        g1, g2 = want["skewness"], want["kurtosis"]
        _close(f"{what} skewness", got["skewness"], g1, rt * (1 + abs(g1)) + 4 * c)
        _close(f"{what} kurtosis", got["kurtosis"], g2, rt * (3 + abs(g2)) + 8 * c * (1 + abs(g1)))
    elif want["std"] == 0:
        assert got["std"] == 0, f"{what}: constant values have a spread of exactly zero"
        assert math.isnan(got["skewness"]) and math.isnan(got["kurtosis"]), f"{what}: constant values"


def _check_side(
    what: str, got: dict[str, Any], want: dict[str, Any], x: npt.NDArray[Any], nar: bool = False
) -> None:
    for k in ("count", "finite", "nan", "pos_inf", "neg_inf"):
        assert got[k] == want[k], f"{what} {k}: modelkin {got[k]}, reference {want[k]}"
    for k in ("min", "max"):  # extremes of exactly decoded values: no rounding at all
        _close(f"{what} {k}", got[k], want[k], 0.0)
    _close(f"{what} l2_norm", got["l2_norm"], want["l2_norm"], rtol(nar) * want["l2_norm"] + TINY)
    _check_moments(what, got, want, _finite(x), nar)


def _d_moments(d: dict[str, Any]) -> dict[str, float]:
    return {k: d[f"d_{k}"] for k in ("mean", "std", "skewness", "kurtosis")}


def nan_equal(p: Any, q: Any) -> bool:
    """Deep equality in which NaN equals NaN and floats must match bit for bit."""
    if isinstance(p, dict):
        return isinstance(q, dict) and p.keys() == q.keys() and all(nan_equal(p[k], q[k]) for k in p)
    if isinstance(p, (list, tuple)):
        return type(p) is type(q) and len(p) == len(q) and all(nan_equal(u, v) for u, v in zip(p, q))
    if isinstance(p, float):
        return isinstance(q, float) and (np.float64(p).view(np.uint64) == np.float64(q).view(np.uint64))
    return bool(p == q) and type(p) is type(q)


# -- per-side statistics ------------------------------------------------------------------------------
@PROPERTY
@given(pairs())
def test_each_side_matches_numpy_and_scipy_for_every_dtype(xy: tuple[npt.NDArray[Any], ...]) -> None:
    x, y = xy
    got = modelkin.pair_stats(x, y).to_dict()
    _check_side("a", got["a"], refstats.value_stats(x), x, narrow(x, y))
    _check_side("b", got["b"], refstats.value_stats(y), y, narrow(x, y))


@PROPERTY
@given(
    st.sampled_from(FLOATS),
    st.sampled_from(FLOATS),
    st.sampled_from([(0,), (1,), (7,), (4097,), (10_000,)]),
    st.data(),
)
def test_non_finite_values_are_counted_and_left_out_of_every_moment(
    dx: np.dtype[Any], dy: np.dtype[Any], shape: tuple[int, ...], data: st.DataObject
) -> None:
    n = shape[0]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x, y = _cast(rng.normal(size=n), dx), _cast(rng.normal(size=n) * 0.5, dy)
    for arr in (x, y):
        k = data.draw(st.integers(0, min(n, 40)))
        where = rng.choice(n, size=k, replace=False)
        arr[where] = rng.choice(np.array([np.nan, np.inf, -np.inf]), size=k).astype(arr.dtype)
    got = modelkin.pair_stats(x, y).to_dict()
    want = refstats.pair_stats(x, y)
    _check_side("a", got["a"], want["a"], x, narrow(x, y))
    _check_side("b", got["b"], want["b"], y, narrow(x, y))
    both_finite = int(np.count_nonzero(np.isfinite(refstats.decode(x)) & np.isfinite(refstats.decode(y))))
    assert got["n"] == want["n"] == both_finite
    assert got["a"]["finite"] + got["a"]["nan"] + got["a"]["pos_inf"] + got["a"]["neg_inf"] == n
    _check_moments("d", _d_moments(got), _d_moments(want), _on_pair(x, y)[2], narrow(x, y))


# -- the difference d = b − a and the similarities ---------------------------------------------------
@PROPERTY
@given(pairs())
def test_difference_moments_cover_positions_where_both_are_finite(xy: tuple[npt.NDArray[Any], ...]) -> None:
    x, y = xy
    got = modelkin.pair_stats(x, y).to_dict()
    want = refstats.pair_stats(x, y)
    assert got["n"] == want["n"]
    for k in ("d_min", "d_max", "max_abs_d"):
        _close(k, got[k], want[k], extreme_tol(want[k], narrow(x, y)))
    _check_moments("d", _d_moments(got), _d_moments(want), _on_pair(x, y)[2], narrow(x, y))


def extreme_tol(want: float, nar: bool) -> float:
    """Tolerance of an extreme of d: b − a of exactly decoded values is exact in float64 lanes; in
    float32 lanes it is rounded once to float32 (within 2⁻²⁴ of itself, relative) when its terms lie
    far apart in magnitude."""
    return 2.0**-24 * abs(want) if nar else 0.0


def test_extremes_of_d_in_float32_lanes_are_the_float32_rounding_of_the_exact_ones() -> None:
    # Found by hypothesis: 65504 − 5.083e-4 in float16 needs 41 bits; float32 lanes round it to 65504.
    x = np.array([5.083e-4, 1.0], dtype=np.float16)
    y = np.array([65504.0, 1.0], dtype=np.float16)
    got = modelkin.pair_stats(x, y).to_dict()
    exact = float(y[0]) - float(x[0])
    assert exact != float(np.float32(exact))
    assert got["d_max"] == got["max_abs_d"] == float(np.float32(exact))
    _close("d_max", got["d_max"], exact, extreme_tol(exact, True))
    assert got["d_min"] == 0.0


@PROPERTY
@given(pairs())
def test_raw_sums_match_exactly_rounded_sums(xy: tuple[npt.NDArray[Any], ...]) -> None:
    x, y = xy
    got = modelkin.pair_stats(x, y).to_dict()
    want = refstats.pair_stats(x, y)
    a, b, _ = _on_pair(x, y)
    n, nar = a.size, narrow(x, y)
    rt = rtol(nar)
    _close("sum_a", got["sum_a"], want["sum_a"], rt * abs(want["sum_a"]) + n * mean_floor(a, nar))
    _close("sum_b", got["sum_b"], want["sum_b"], rt * abs(want["sum_b"]) + n * mean_floor(b, nar))
    _close("sum_a2", got["sum_a2"], want["sum_a2"], rt * want["sum_a2"] + TINY)
    _close("sum_b2", got["sum_b2"], want["sum_b2"], rt * want["sum_b2"] + TINY)
    # Σab may cancel: |error| ≲ SUM_EPS·Σ|ab| ≤ SUM_EPS·(Σa² + Σb²)/2.
    tol = rt * abs(want["sum_ab"]) + sum_eps(nar) * (want["sum_a2"] + want["sum_b2"]) + TINY
    _close("sum_ab", got["sum_ab"], want["sum_ab"], tol)


def _check_similarity(
    what: str,
    got: tuple[float, float],
    want: tuple[float, float],
    u: npt.NDArray[np.float64],
    w: npt.NDArray[np.float64],
    d: npt.NDArray[np.float64],
    nar: bool = False,
) -> None:
    """(similarity, 1 − similarity) of u, w with d = w − u: cosine, or for Pearson r that of the
    centred vectors (d centred on its own: w − u rounds away its digits when u and w are large)."""
    su, sw, sd = float(u @ u), float(w @ w), float(d @ d)
    if not u.any() or not w.any():  # a zero vector: undefined
        _close(what, got[0], math.nan, 0.0)
        _close(f"1 - {what}", got[1], math.nan, 0.0)
        return
    if su == 0 or sw == 0:
        return  # the squares underflow: no digits to compare
    nu, nw = math.sqrt(su), math.sqrt(sw)
    # Two ways to 1 − cos: 1 − Σuw/(‖u‖‖w‖), abs. error ~SUM_EPS, and (Σd² − (‖u‖−‖w‖)²)/(2‖u‖‖w‖),
    # abs. error ~SUM_EPS·(Σd² + ‖d‖(‖u‖+‖w‖))/(‖u‖‖w‖): tiny when u ≈ w (so 1 − cos keeps its relative
    # digits), large when w ≈ k·u with k ≫ 1 or ≪ 1. The library takes the second below
    # 1 − cos = 1e-3 (stats._NEAR) when the norms are within 2× (else the first, which is then the more
    # accurate); test_one_minus_cosine_of_a_scaled_copy_is_as_accurate_as_the_direct_formula pins that.
    from_d = (sd + math.sqrt(sd) * (nu + nw)) / (nu * nw)
    om = want[1]
    if abs(om) < 5e-4:
        scale = from_d
    elif abs(om) > 2e-3:
        scale = 1.0
    else:  # near the switch: either
        scale = max(1.0, from_d)
    tol = rtol(nar) * abs(om) + sum_eps(nar) * scale
    _close(what, got[0], want[0], tol + EPS)
    _close(f"1 - {what}", got[1], om, tol)


@PROPERTY
@given(pairs())
def test_similarities_match_the_reference_for_every_dtype_pair(xy: tuple[npt.NDArray[Any], ...]) -> None:
    x, y = xy
    got = modelkin.pair_stats(x, y).to_dict()
    want = refstats.pair_stats(x, y)
    a, b, d = _on_pair(x, y)
    nar = narrow(x, y)
    rt = rtol(nar)
    _close("rel_change", got["rel_change"], want["rel_change"], rt * abs(want["rel_change"]) + TINY)
    cos = ("cosine", "one_minus_cosine")
    _check_similarity("cosine", (got[cos[0]], got[cos[1]]), (want[cos[0]], want[cos[1]]), a, b, d, nar)
    if a.size == 0:
        return
    ca, cb, cd = (centring(v, float(np.std(v)), nar) for v in (a, b, d))
    if max(ca, cb, cd) > ILL_CONDITIONED:
        return  # a side or d is numerically constant: its centred sums carry no digits
    r = ("pearson", "one_minus_pearson")
    ac, bc = a - np.mean(a), b - np.mean(b)
    dc = d - np.mean(d)
    _check_similarity("pearson", (got[r[0]], got[r[1]]), (want[r[0]], want[r[1]]), ac, bc, dc, nar)
    # corr(d, a) = C/√(DA) from direct sums; an error δ in the means moves it by O((δ/σ)²).
    tol = rt + 3 * sum_eps(nar) + 4 * (ca + cd) ** 2
    _close("corr_d_a", got["corr_d_a"], want["corr_d_a"], tol)


# -- equal counts ------------------------------------------------------------------------------------------
@PROPERTY
@given(pairs())
def test_equal_counts_bit_identical_decoded_values(xy: tuple[npt.NDArray[Any], ...]) -> None:
    x, y = xy
    r = modelkin.pair_stats(x, y)
    a, b = refstats.decode(x), refstats.decode(y)
    both_nan = np.isnan(a) & np.isnan(b)
    same_bits = a.view(np.uint64) == b.view(np.uint64)
    exact = int(np.count_nonzero(same_bits & ~both_nan))
    # NaN payloads are not portable between decoders (ml_dtypes canonicalises float8 NaNs, F16C quiets
    # signalling NaNs), so where both are NaN the count is only bounded: identical bytes of one dtype
    # must count, and no more than all such positions can. The exact NaN rules are pinned below.
    lo = 0
    if x.dtype == y.dtype:
        raw = UINT_OF_SIZE[x.itemsize]
        lo = int(np.count_nonzero(both_nan & (x.reshape(-1).view(raw) == y.reshape(-1).view(raw))))
    hi = int(np.count_nonzero(both_nan))
    assert exact + lo <= r.equal <= exact + hi, (r.equal, exact, lo, hi)
    _close("equal_fraction", r.equal_fraction, r.equal / a.size if a.size else math.nan, 0.0)


@pytest.mark.parametrize(
    ("x", "y", "equal"),
    [
        pytest.param(np.array([0.0], np.float32), np.array([-0.0], np.float32), 0, id="+0 vs -0"),
        pytest.param(
            np.array([-0.0], np.float32), np.array([-0.0], ml_dtypes.bfloat16), 1, id="-0 vs -0 mixed"
        ),
        pytest.param(
            np.array([np.nan, np.inf, -np.inf]), np.array([np.nan, np.inf, -np.inf]), 3, id="same non-finite"
        ),
        pytest.param(np.array([np.inf]), np.array([-np.inf]), 0, id="+inf vs -inf"),
        pytest.param(
            np.array([0x7FC00001], np.uint32).view(np.float32),
            np.array([0x7FC00002], np.uint32).view(np.float32),
            0,
            id="NaN payloads differ",
        ),
        pytest.param(
            np.array([0x7FC00001], np.uint32).view(np.float32),
            np.array([0x7FC00001], np.uint32).view(np.float32),
            1,
            id="NaN same bits",
        ),
        pytest.param(
            np.array([1.0, 2.0], np.float32), np.array([1.0, 2.0], np.float16), 2, id="same value, f32 vs f16"
        ),
        pytest.param(np.array([0.1], np.float32), np.array([0.1], np.float64), 0, id="0.1 f32 vs f64"),
        pytest.param(np.array([3, -1], np.int8), np.array([3, -1], np.float32), 2, id="int8 vs f32"),
        pytest.param(
            np.array([0, 1, 7], np.uint8).view(np.bool_),
            np.array([0, 1, 1], np.uint8),
            3,
            id="bool bytes read as 0/1",
        ),
    ],
)
def test_equal_means_same_decoded_bits(x: npt.NDArray[Any], y: npt.NDArray[Any], equal: int) -> None:
    assert modelkin.pair_stats(x, y).equal == equal


def test_equal_distinguishes_the_sign_of_float8_e4m3_nan() -> None:
    codes = np.array([0x7F, 0xFF], np.uint8).view(ml_dtypes.float8_e4m3fn)  # +NaN and −NaN: different bytes
    assert np.signbit(codes.astype(np.float64)).tolist() == [False, True]
    assert modelkin.pair_stats(codes[:1], codes[1:]).equal == 0


# -- special shapes and values ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_empty_arrays_give_zero_counts_and_nan_statistics(dtype: np.dtype[Any]) -> None:
    e = np.zeros((0, 3), dtype)
    got = modelkin.pair_stats(e, e).to_dict()
    assert (got["n"], got["equal"], got["a"]["count"], got["b"]["finite"]) == (0, 0, 0, 0)
    for k in ("d_mean", "d_std", "max_abs_d", "cosine", "pearson", "rel_change", "equal_fraction"):
        assert math.isnan(got[k]), k
    for k in ("mean", "std", "min", "max"):
        assert math.isnan(got["a"][k]), k
    assert got["histogram"] is None


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_one_element_has_exact_mean_and_zero_spread(dtype: np.dtype[Any]) -> None:
    x, y = _cast(np.array(1.0), dtype), _cast(np.array(0.0), dtype)  # 0-d arrays
    got = modelkin.pair_stats(x, y).to_dict()
    assert (got["n"], got["equal"], got["d_mean"], got["d_std"], got["max_abs_d"]) == (1, 0, -1.0, 0.0, 1.0)
    assert got["a"]["mean"] == got["a"]["min"] == got["a"]["max"] == 1.0
    assert math.isnan(got["d_skewness"]) and math.isnan(got["a"]["kurtosis"])


@PROPERTY
@given(st.sampled_from([1, 2, 3, 4097, 10_003]), st.integers(0, 2**32 - 1))
def test_values_near_the_float32_limit_do_not_overflow(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.choice([-3e38, 3e38], size=n) * rng.uniform(0.5, 1, size=n)).astype(np.float32)
    y = np.where(rng.random(n) < 0.5, -x, x).astype(np.float32)  # |d| up to 6e38 > float32 max
    got = modelkin.pair_stats(x, y).to_dict()
    want = refstats.pair_stats(x, y)
    assert got["a"]["pos_inf"] == got["a"]["neg_inf"] == got["a"]["nan"] == 0
    _check_side("a", got["a"], want["a"], x)
    _check_moments("d", _d_moments(got), _d_moments(want), _on_pair(x, y)[2])
    _close("max_abs_d", got["max_abs_d"], want["max_abs_d"], 0.0)
    _close("sum_b2", got["sum_b2"], want["sum_b2"], 1e-9 * want["sum_b2"])
    _close("cosine", got["cosine"], want["cosine"], 1e-9)


def test_zeroed_tensor_has_no_cosine_and_changes_by_its_whole_norm() -> None:
    # A pruned tensor: b = 0. cos and r are undefined (‖b‖ = 0), ‖d‖/‖a‖ = 1, d = −a exactly.
    a = np.random.default_rng(2).normal(size=3 * (1 << 20) + 7).astype(np.float32)
    r = modelkin.pair_stats(a, np.zeros_like(a))
    assert r.sum_b2 == 0.0
    assert math.isnan(r.cosine) and math.isnan(r.pearson)
    assert r.rel_change == pytest.approx(1.0, rel=1e-12)
    assert r.corr_d_a == pytest.approx(-1.0, rel=1e-12)
    r = modelkin.pair_stats(np.zeros_like(a), a)
    assert math.isnan(r.cosine) and math.isnan(r.rel_change) and math.isnan(r.corr_d_a)


def test_constant_difference_has_exact_moments_and_no_histogram() -> None:
    x = np.arange(10_000, dtype=np.float32)
    got = modelkin.pair_stats(x, x + 2).to_dict()  # d = 2 exactly everywhere
    assert (got["d_mean"], got["d_std"], got["max_abs_d"]) == (2.0, 0.0, 2.0)
    assert math.isnan(got["d_skewness"]) and got["histogram"] is None
    assert got["pearson"] == 1.0 and got["one_minus_pearson"] == 0.0


@pytest.mark.parametrize("n", [3, 7, 4097])
def test_constant_inexact_difference_is_reported_as_constant(n: int) -> None:
    # Σ0.1/n is not 0.1 in floating point; a build that centred on it gave σ ≈ 1e-17, skewness −1
    # and a ValueError from the histogram (mean ± 5σ narrower than 64 representable bins).
    r = modelkin.pair_stats(np.zeros(n), np.full(n, 0.1))
    assert (r.d.mean, r.d.std) == (0.1, 0.0)
    assert math.isnan(r.d.skewness) and math.isnan(r.d.kurtosis)  # scipy: NaN for constant data
    assert r.to_dict()["histogram"] is None


def test_a_spread_near_the_resolution_of_a_huge_mean_gives_no_histogram() -> None:
    # Found by hypothesis: d ≈ −5.6e14 with σ = 0.5 (64 bins over mean ± 5σ would be narrower than
    # the float spacing there); numpy refused to bin it and to_dict raised ValueError.
    x, y = np.array([5.62949953e14, 5.62949953e14]), np.array([0, 1], dtype=np.int8)
    r = modelkin.pair_stats(x, y)
    assert r.d.std == pytest.approx(0.5) and r.to_dict()["histogram"] is None


def test_cosine_stays_accurate_when_b_is_much_smaller_than_a() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=10_000)
    for scale in (1e-6, 1e-8, 1e-9, 1e-12):
        b = scale * (a + rng.normal(size=10_000))  # cosine ≈ 0.71: a scaled-down, noisy copy
        got = modelkin.pair_stats(a, b)
        want = refstats.pair_stats(a, b)
        # A build deriving Σb² as Σa² + 2Σad + Σd² gave 2e-5 (1e-6), 0.52 instead of 0.71 (1e-8), NaN.
        assert got.cosine == pytest.approx(want["cosine"], rel=1e-9), scale
        assert got.pearson == pytest.approx(want["pearson"], rel=1e-9), scale
        assert got.sum_b2 == pytest.approx(want["sum_b2"], rel=1e-12), scale


@pytest.mark.parametrize(
    ("values", "other"),
    [
        pytest.param([1.0, 2.0, 3.0, 3e38], [1.0, 2.0, 3.0, 4.0], id="one 3e38"),
        pytest.param([1e20, -1e20, 3e20, 0.0], [0.0, 1e20, 0.0, 2e20], id="1e20"),
        pytest.param([1e10, -2e10, 3e10, 5e9], [1e10, -2e10, 3e10, 6e9], id="1e10"),
        pytest.param([1e-30, 2e-30, 0.0, 5e-30], [0.0, 1e-30, 2e-30, 0.0], id="1e-30"),
    ],
)
def test_bfloat16_pairs_keep_their_moments_over_the_whole_bfloat16_range(
    values: list[float], other: list[float]
) -> None:
    # bfloat16 has float32's exponent range: a build reducing bfloat16 pairs in float32 overflowed or
    # underflowed (x−μ)² and (x−μ)⁴ here (std = inf, std = inf, kurtosis = inf, std = 0).
    x, y = np.array(values, BF16), np.array(other, BF16)
    got = modelkin.pair_stats(x, y).to_dict()
    want = refstats.pair_stats(x, y)
    for side in ("a", "b"):
        for k in ("std", "skewness", "kurtosis"):
            assert got[side][k] == pytest.approx(want[side][k], rel=1e-9), (side, k)
    for k in ("d_std", "d_kurtosis", "d_min", "d_max"):
        assert got[k] == pytest.approx(want[k], rel=1e-9), k
    assert refstats.pair_stats(x.astype(np.float32), y)["a"]["std"] == want["a"]["std"]  # same values, f32


def test_bfloat16_against_float32_keeps_huge_values() -> None:
    # The same values as above, one side float32.
    x, y = np.array([1.0, 2.0, 3.0, 3e38], BF16), np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    got = modelkin.pair_stats(x, y).to_dict()
    want = refstats.pair_stats(x, y)
    assert got["a"]["std"] == pytest.approx(want["a"]["std"], rel=1e-12)
    assert got["d_std"] == pytest.approx(want["d_std"], rel=1e-12)


@pytest.mark.parametrize("k", [2.0**23, 1e7, 1e-7])
def test_one_minus_cosine_of_a_scaled_copy_is_as_accurate_as_the_direct_formula(k: float) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=1000)
    b = a * k + rng.normal(size=a.size) * k * 1e-9  # a rescaled copy: 1 − cos ≈ 5e-19
    got = modelkin.pair_stats(a, b)
    want = refstats.pair_stats(a, b)
    # 1 − Σab/(‖a‖‖b‖) from the same moments is good to ~1e-15 here. A build that used the d-based
    # formula whenever 1 − cos < 1e-3 gave −4.9e-10, 7.7e-10, −3.6e-9 (error ≈ ε·‖b‖/‖a‖).
    assert abs(got.one_minus_cosine - want["one_minus_cosine"]) < 1e-12
    assert abs(got.one_minus_pearson - want["one_minus_pearson"]) < 1e-12


@pytest.mark.parametrize("k", [2.0**23, 1e7, 1e-7, 1.0, -3.0])
def test_similarities_stay_within_their_ranges(k: float) -> None:
    # 1 − Σab/(‖a‖‖b‖) can round to −2.2e-16 for k = 1e-7 (a build reported cosine = 1 + 2.2e-16).
    rng = np.random.default_rng(0)
    a = rng.normal(size=1000)
    r = modelkin.pair_stats(a, a * k + rng.normal(size=a.size) * abs(k) * 1e-9)
    assert -1.0 <= r.cosine <= 1.0 and -1.0 <= r.pearson <= 1.0
    assert 0.0 <= r.one_minus_cosine <= 2.0 and 0.0 <= r.one_minus_pearson <= 2.0


@pytest.mark.parametrize("tiny", [2.6e-113, 1e-100])
def test_tiny_spread_gives_nan_or_exact_moments_instead_of_crashing(tiny: float) -> None:
    # σ ≈ 1e-113: m2 ≈ 3e-226 > 0 but m2^1.5 = 0 in float64 (σ ≈ 1e-100: m2² = 0); an earlier build
    # divided by them (ZeroDivisionError from to_dict). scipy gives NaN.
    r = modelkin.pair_stats(np.array([0.0, tiny]), np.zeros(2))
    d = r.to_dict()
    for k in ("skewness", "kurtosis"):
        g = d["a"][k]
        assert math.isnan(g) or abs(g - (0.0 if k == "skewness" else -2.0)) < 1e-6  # two points: 0 and −2


# -- determinism across thread counts -------------------------------------------------------------------
@settings(max_examples=6, deadline=None)
@given(
    st.sampled_from([(1 << 20) + 1, 2 * (1 << 20) + 4097, 3 * (1 << 20) - 5]),
    st.sampled_from([(np.float32, np.float32), (np.float32, BF16), (np.float16, np.float64), (BF16, BF16)]),
    st.integers(0, 2**32 - 1),
)
def test_results_are_bit_identical_for_1_2_and_3_threads(n: int, dtypes: tuple[Any, Any], seed: int) -> None:
    # Several work items of 2²⁰ elements, merged in a fixed order whatever the thread count.
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=n) * 0.02).astype(dtypes[0])
    y = (refstats.decode(x) + rng.normal(size=n) * 1e-4).astype(dtypes[1])
    y[rng.choice(n, size=5, replace=False)] = np.nan
    runs = [modelkin.pair_stats(x, y, threads=t) for t in (1, 2, 3)]
    first = runs[0].to_dict()
    for r in runs[1:]:
        assert nan_equal(r.to_dict(), first)
        assert r.sample.tobytes() == runs[0].sample.tobytes()


def test_nan_equal_tells_apart_what_it_must() -> None:
    assert nan_equal({"a": [math.nan, 1.0]}, {"a": [math.nan, 1.0]})
    assert not nan_equal({"a": 0.0}, {"a": -0.0})
    assert not nan_equal({"a": 1.0}, {"a": 1.0000000000000002})
    assert not nan_equal({"a": 1}, {"a": 1.0})


# -- accuracy where a ≈ b ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def near_identical() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """float32 a ~ N(0, 0.02²) and b = a + N(0, 1e-6²) rounded to float32, one million elements."""
    rng = np.random.default_rng(1234)
    a = (rng.normal(size=1_000_000) * 0.02).astype(np.float32)
    b = (a.astype(np.float64) + rng.normal(size=a.size) * 1e-6).astype(np.float32)
    return a, b


def test_one_minus_cosine_and_pearson_stay_accurate_when_b_is_a_plus_tiny_noise(
    near_identical: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]],
) -> None:
    a32, b32 = near_identical
    a, b = a32.astype(np.float64), b32.astype(np.float64)
    want_cos = refstats.one_minus_cosine_from_d(a, b)
    want_r = refstats.one_minus_pearson_from_d(a, b)
    assert 1e-10 < want_cos < 1e-8  # ≈ Σd²/(2Σa²) ≈ 1.25e-9: far below float32's ε of 6e-8
    # Two independent float64 references (from d, and from unit vectors) agree to 1e-9 first.
    assert refstats.pair_stats(a32, b32)["one_minus_cosine"] == pytest.approx(want_cos, rel=1e-9)
    r = modelkin.pair_stats(a32, b32)
    assert abs(r.one_minus_cosine - want_cos) < 1e-6 * want_cos
    assert abs(r.one_minus_pearson - want_r) < 1e-6 * want_r
    assert r.cosine == 1 - r.one_minus_cosine and r.pearson == 1 - r.one_minus_pearson


@pytest.mark.parametrize("dtype", [BF16, np.dtype(np.float16)], ids=["bfloat16", "float16"])
def test_narrow_pairs_reduced_in_float32_lanes_keep_one_minus_cosine_to_1e_6(dtype: np.dtype[Any]) -> None:
    # Half-precision pairs take the float32-lane kernel; 1 − cos of a lightly noised copy (≈ 1e-5,
    # Llama3-V's recipe: σ(d)/σ(a) ≈ 0.07) must still be good to 1e-6 relative, as must σ(d).
    rng = np.random.default_rng(7)
    a = (rng.normal(size=1_000_003) * 0.02).astype(dtype)
    b = (a.astype(np.float64) + rng.normal(size=a.size) * 1.4e-3).astype(dtype)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    r = modelkin.pair_stats(a, b)
    want_cos = refstats.one_minus_cosine_from_d(a64, b64)
    want_r = refstats.one_minus_pearson_from_d(a64, b64)
    assert abs(r.one_minus_cosine - want_cos) < 1e-6 * want_cos
    assert abs(r.one_minus_pearson - want_r) < 1e-6 * want_r
    assert r.d.std == pytest.approx(float(np.std(b64 - a64)), rel=1e-6)
    assert r.a.moments.std == pytest.approx(float(np.std(a64)), rel=1e-6)


def test_naive_float32_one_minus_cosine_is_off_by_more_than_30_percent(
    near_identical: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]],
) -> None:
    # The script users write: dot and norms in the tensors' own float32, then 1 − cos.
    a, b = near_identical
    naive = 1 - np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    assert naive.dtype == np.float32
    want = refstats.one_minus_cosine_from_d(a.astype(np.float64), b.astype(np.float64))
    assert abs(float(naive) - want) > 0.3 * want


# -- histogram and sample -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def noised_pair() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], modelkin.PairStats]:
    """a ~ N(0, 1), b = a + N(0, 1e-3²), one million float64 values, 1 % of b NaN."""
    rng = np.random.default_rng(7)
    a = rng.normal(size=1_000_000)
    b = a + rng.normal(size=a.size) * 1e-3
    b[rng.choice(a.size, size=10_000, replace=False)] = np.nan
    return a, b, modelkin.pair_stats(a, b)


def test_histogram_has_64_bins_over_mean_plus_minus_5_sd_that_account_for_every_finite_sample(
    noised_pair: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], modelkin.PairStats],
) -> None:
    _, _, r = noised_pair
    h = r.histogram()
    assert h is not None
    edges, counts, below, above = h
    assert len(counts) == 64 and len(edges) == 65
    assert edges[0] == pytest.approx(r.d.mean - 5 * r.d.std, rel=1e-12, abs=1e-15)
    assert edges[-1] == pytest.approx(r.d.mean + 5 * r.d.std, rel=1e-12, abs=1e-15)
    assert np.allclose(np.diff(edges), 10 * r.d.std / 64, rtol=1e-6)
    finite = int(np.count_nonzero(np.isfinite(r.sample)))
    assert 0.99 * DEFAULT_SAMPLE <= r.sample.size <= DEFAULT_SAMPLE
    assert 0 < r.sample.size - finite < 0.03 * r.sample.size  # ~1 % of the sampled positions are NaN
    assert sum(counts) + below + above == finite
    assert r.to_dict()["histogram"] == {"edges": edges, "counts": counts, "below": below, "above": above}


def test_histogram_counts_outliers_below_and_above() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=5000)
    b = a + rng.normal(size=a.size) * 0.01
    b[:3] -= 1.0  # d ≈ −100 σ
    b[3:5] += 1.0
    r = modelkin.pair_stats(a, b, sample_size=a.size)  # every position sampled
    _, counts, below, above = r.histogram() or ([], [], -1, -1)
    assert (below, above) == (3, 2)
    assert sum(counts) == 5000 - 5


def test_sampled_differences_follow_the_distribution_of_d(
    noised_pair: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], modelkin.PairStats],
) -> None:
    _, _, r = noised_pair
    s = r.sample[np.isfinite(r.sample)]
    assert r.d.std == pytest.approx(1e-3, rel=0.01)
    ks = scipy.stats.kstest(s, scipy.stats.norm(loc=r.d.mean, scale=r.d.std).cdf)
    assert ks.pvalue > 0.001, ks
    _, counts, below, above = r.histogram() or ([], [], 0, 0)
    assert below == above == 0  # nothing beyond 5 σ in 8 000 normal draws (p ≈ 5e-3)
    # χ² of the binned sample against the normal bin probabilities (outer bins pooled to expect ≥ 5).
    z = np.linspace(-5, 5, 65)
    p = np.diff(scipy.stats.norm.cdf(z))
    obs, exp = np.asarray(counts, float), p * sum(counts)
    keep = exp >= 5
    obs = np.concatenate([obs[keep], [obs[~keep].sum()]])
    exp = np.concatenate([exp[keep], [exp[~keep].sum()]])
    chi2 = scipy.stats.chisquare(obs, exp * obs.sum() / exp.sum())
    assert chi2.pvalue > 0.001, chi2


def test_sampled_differences_of_a_non_normal_d_are_rejected_as_normal() -> None:
    # The goodness-of-fit test above can fail: a uniform d is told apart from N(mean, sd).
    rng = np.random.default_rng(5)
    a = rng.normal(size=1_000_000)
    r = modelkin.pair_stats(a, a + rng.uniform(-1e-3, 1e-3, size=a.size))
    s = r.sample[np.isfinite(r.sample)]
    assert scipy.stats.kstest(s, scipy.stats.norm(loc=r.d.mean, scale=r.d.std).cdf).pvalue < 0.001


@pytest.mark.parametrize(
    ("n", "size"), [(1_000_000, None), (1_000_000, 100), (10_001, 100), (12_345, None), (100_000, 8192)]
)
def test_sample_length_is_about_sample_size(n: int, size: int | None) -> None:
    a = np.random.default_rng(0).normal(size=n).astype(np.float32)
    b = np.random.default_rng(1).normal(size=n).astype(np.float32)
    r = modelkin.pair_stats(a, b) if size is None else modelkin.pair_stats(a, b, sample_size=size)
    k = size or DEFAULT_SAMPLE
    # ⌈n/k⌉-element strata, one position each: between k/2 and k positions once n ≥ k, and within
    # 1 % of k once n ≥ 100·k.
    assert (0.99 if n >= 100 * k else 0.5) * k <= r.sample.size <= k
    # Stratified: the tensor is cut into strata of ⌈n/k⌉ elements and the j-th sampled value is d at
    # some position of the j-th stratum, so the sample covers the whole tensor evenly.
    d = refstats.decode(b) - refstats.decode(a)
    stratum = -(-n // k)
    strata = np.full(r.sample.size * stratum, np.nan)
    strata[: min(n, strata.size)] = d[: strata.size]
    assert (strata.reshape(-1, stratum) == r.sample[:, None]).any(axis=1).all()


def test_small_tensor_is_sampled_whole_with_nan_where_a_side_is_not_finite() -> None:
    a = np.array([1.0, 2.0, np.nan, 4.0, np.inf, 6.0], np.float32)
    b = np.array([1.5, 2.0, 3.0, -np.inf, 5.0, 7.0], np.float32)
    s = modelkin.pair_stats(a, b).sample
    assert s.size == 6
    np.testing.assert_array_equal(s, [0.5, 0.0, np.nan, np.nan, np.nan, 1.0])


# -- input checking ----------------------------------------------------------------------------------------
_M = np.arange(24, dtype=np.float32).reshape(4, 6)
_UNSUPPORTED = [np.complex64, object, np.str_, np.datetime64] + (
    [np.float128] if hasattr(np, "float128") else []
)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(_M[:, ::2], id="x[:, ::2]"),
        pytest.param(_M.T, id="x.T"),
        pytest.param(_M[::2], id="x[::2]"),
    ],
)
@pytest.mark.parametrize("side", ["x", "y"])
def test_non_contiguous_arrays_are_refused_with_type_error(bad: npt.NDArray[Any], side: str) -> None:
    good = np.ascontiguousarray(bad)
    args = (bad, good) if side == "x" else (good, bad)
    with pytest.raises(TypeError, match="C-contiguous"):
        modelkin.pair_stats(*args)
    modelkin.pair_stats(good, good)  # the same values, contiguous, are fine


@pytest.mark.parametrize("bad", [[1.0, 2.0], (1.0, 2.0), 3.0, None, memoryview(b"ab")], ids=repr)
def test_non_numpy_input_is_refused_with_type_error(bad: Any) -> None:
    ok = np.zeros(2, np.float32)
    with pytest.raises(TypeError):
        modelkin.pair_stats(bad, ok)
    with pytest.raises(TypeError):
        modelkin.pair_stats(ok, bad)


@pytest.mark.parametrize("dtype", _UNSUPPORTED, ids=str)
def test_unsupported_dtypes_are_refused_with_type_error(dtype: Any) -> None:
    bad = np.zeros(3, dtype)
    with pytest.raises(TypeError, match="dtype"):
        modelkin.pair_stats(bad, np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="dtype"):
        modelkin.pair_stats(np.zeros(3, np.float32), bad)


def test_big_endian_arrays_are_refused_with_type_error() -> None:
    with pytest.raises(TypeError, match="big-endian"):
        modelkin.pair_stats(np.zeros(3, ">f4"), np.zeros(3, "<f4"))


@pytest.mark.parametrize(
    ("sx", "sy"), [((2, 3), (3, 2)), ((6,), (2, 3)), ((4,), (5,)), ((), (1,)), ((0,), (0, 1))]
)
def test_shape_mismatch_is_refused_with_value_error(sx: tuple[int, ...], sy: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        modelkin.pair_stats(np.zeros(sx, np.float32), np.zeros(sy, np.float32))


@pytest.mark.parametrize("threads", [0, -1, 1.5])
def test_invalid_thread_counts_are_refused_with_value_error(threads: Any) -> None:
    with pytest.raises(ValueError, match="threads"):
        modelkin.pair_stats(np.zeros(3), np.zeros(3), threads=threads)


def test_large_array_is_read_in_place() -> None:
    n = (1 << 25) + 3  # 32 Mi float16 elements, 64 MiB per side
    a = np.ones(n, np.float16)
    b = np.full(n, 2.0, np.float16)
    b[-1] = 1.0
    r = modelkin.pair_stats(a, b)
    assert (r.n, r.equal, r.max_abs_d, r.sum_a) == (n, 1, 1.0, float(n))
