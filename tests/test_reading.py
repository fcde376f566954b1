"""Checkpoints written by the official safetensors package read correctly, and the numbers modelkin
reports match numpy/scipy computed in float64."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import ml_dtypes
import modelkin
import numpy as np
import pytest
import scipy.stats
from models import INDEX_NAME, llama_state, noised, read_index, write_sharded, write_single

# -- helpers --------------------------------------------------------------------------------------------

#: Every dtype safetensors.numpy writes, with the numpy dtype used to write it.
WRITABLE_DTYPES = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U64": np.dtype(np.uint64),
    "U32": np.dtype(np.uint32),
    "U16": np.dtype(np.uint16),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2")


def sample_values(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Skewed values in the dtype's range; floats also get NaN and ±inf (E4M3FN turns inf into NaN)."""
    rng = np.random.default_rng(seed)
    dtype = WRITABLE_DTYPES[name]
    n = int(np.prod(shape))
    if name == "BOOL":
        return (rng.random(n) < 0.3).reshape(shape)
    if name in FLOAT_DTYPES:
        scale = 4.0 if name.startswith("F8") else 3.0
        x = (rng.gamma(2.0, size=n) - 2.0) * scale
        x[rng.choice(n, size=3, replace=False)] = [np.nan, np.inf, -np.inf]
        with np.errstate(invalid="ignore", over="ignore"):
            return x.astype(dtype).reshape(shape)
    info = np.iinfo(dtype)
    lo, hi = max(int(info.min), -(10**12)), min(int(info.max), 10**12)
    # A skewed integer distribution: gamma-shaped, clipped into the range.
    x = np.clip(lo + (rng.gamma(2.0, size=n) * (hi - lo) / 12.0), lo, hi)
    return x.astype(np.int64 if lo < 0 else np.uint64).astype(dtype).reshape(shape)


def reference_stats(x: np.ndarray) -> dict[str, float]:
    """numpy/scipy float64 statistics of the finite values, with counts of the others."""
    with np.errstate(invalid="ignore"):
        v = np.asarray(x).astype(np.float64).ravel()
    fin = v[np.isfinite(v)]
    return {
        "count": v.size,
        "finite": fin.size,
        "mean": float(fin.mean()),
        "std": float(fin.std()),
        "skewness": float(scipy.stats.skew(fin, bias=True)),
        "kurtosis": float(scipy.stats.kurtosis(fin, fisher=True, bias=True)),
        "min": float(fin.min()),
        "max": float(fin.max()),
        "l2_norm": float(np.sqrt(np.sum(fin * fin))),
        "nan": int(np.isnan(v).sum()),
        "pos_inf": int(np.isposinf(v).sum()),
        "neg_inf": int(np.isneginf(v).sum()),
    }


def assert_stats_match(got: modelkin.ValueStats, x: np.ndarray, what: str) -> None:
    """Counts, min and max exactly; moments to float64 precision: mean/std/l2 to 1e-9 relative,
    skewness/kurtosis to 1e-7 — or, for dtypes reduced in float32 lanes (values exact in float32:
    see tests/test_pair_stats.py), everything to 2e-6.
    """
    ref = reference_stats(x)
    d = got.to_dict()
    for k in ("count", "finite", "nan", "pos_inf", "neg_inf", "min", "max"):
        assert d[k] == ref[k], f"{what}: {k} = {d[k]!r}, numpy says {ref[k]!r}"
    narrow = x.dtype.itemsize <= 2
    rel, shape_tol = (2e-6, 2e-6) if narrow else (1e-9, 1e-7)
    scale = max(abs(ref["mean"]), ref["std"])
    mean_abs = (2e-6 if narrow else 1e-12) * scale  # the mean may be ~0 while the values are not
    assert d["mean"] == pytest.approx(ref["mean"], rel=rel, abs=mean_abs), f"{what}: mean"
    assert d["std"] == pytest.approx(ref["std"], rel=rel), f"{what}: std"
    assert d["l2_norm"] == pytest.approx(ref["l2_norm"], rel=rel), f"{what}: l2_norm"
    assert d["skewness"] == pytest.approx(ref["skewness"], rel=shape_tol, abs=shape_tol), f"{what}: skewness"
    assert d["kurtosis"] == pytest.approx(ref["kurtosis"], rel=shape_tol, abs=shape_tol), f"{what}: kurtosis"


def same(x: Any, y: Any) -> bool:
    """Equality that treats NaN as equal to NaN (recursively through dicts and lists)."""
    if isinstance(x, float) and isinstance(y, float):
        return x == y or (math.isnan(x) and math.isnan(y))
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(same(a, b) for a, b in zip(x, y))
    return bool(x == y)


def comparable(result: modelkin.DiffResult) -> dict[str, Any]:
    """Everything in a diff result's dict that must not depend on paths, layout, threads or timing."""
    d = result.to_dict()
    for key in ("a", "b", "threads", "seconds"):
        d.pop(key)
    return d


# -- open: the tensor table from headers ----------------------------------------------------------------


def test_open_single_file_lists_every_tensor_with_shape_dtype_and_metadata(base_file, base_state):
    ck = modelkin.open(base_file)
    assert ck.format == "safetensors"
    assert [t.name for t in ck.tensors] == sorted(base_state)
    for t in ck.tensors:
        assert t.shape == base_state[t.name].shape
        assert t.dtype == "F32"
        assert t.nbytes == base_state[t.name].nbytes
        assert t.numel == base_state[t.name].size
    assert ck.n_params == sum(v.size for v in base_state.values())
    assert ck.nbytes == sum(v.nbytes for v in base_state.values())
    assert ck.dtypes == {"F32": ck.n_params}
    assert len(ck.files) == 1
    assert ck.files[0].metadata == {"format": "pt"}
    assert ck.files[0].n_tensors == len(base_state)
    assert ck.files[0].size == base_file.stat().st_size


def test_open_accepts_str_and_pathlike(base_file):
    assert modelkin.open(str(base_file)).tensors == modelkin.open(base_file).tensors


def test_open_folder_with_one_file_reads_that_file(base_file, base_state):
    ck = modelkin.open(base_file.parent)
    assert ck.format == "safetensors"
    assert [t.name for t in ck.tensors] == sorted(base_state)


@pytest.mark.parametrize("via", ["folder", "index"])
def test_open_sharded_checkpoint_through_folder_or_index(noised_sharded, noised_state, via):
    path = noised_sharded if via == "folder" else noised_sharded / INDEX_NAME
    ck = modelkin.open(path)
    assert ck.format == "safetensors-sharded"
    assert len(ck.files) == 3
    assert sorted(Path(f.path).name for f in ck.files) == sorted(
        set(read_index(noised_sharded)["weight_map"].values())
    )
    assert all(f.metadata == {"format": "pt"} for f in ck.files)
    assert [t.name for t in ck.tensors] == sorted(noised_state)
    assert {t.name: t.shape for t in ck.tensors} == {k: v.shape for k, v in noised_state.items()}
    assert ck.n_params == sum(v.size for v in noised_state.values())
    # Each tensor is attributed to the shard the index puts it in.
    weight_map = read_index(noised_sharded)["weight_map"]
    for t in ck.tensors:
        assert Path(ck.files[t.file].path).name == weight_map[t.name]


def test_folder_of_shards_without_index_reads_all_shards(tmp_path, base_state):
    folder = write_sharded(tmp_path / "m", base_state, n_shards=2)
    (folder / INDEX_NAME).unlink()
    ck = modelkin.open(folder)
    assert len(ck.files) == 2
    assert [t.name for t in ck.tensors] == sorted(base_state)


def test_open_reads_every_writable_dtype_with_its_name(tmp_path):
    tensors = {name: np.zeros((2, 3), dtype=dt) for name, dt in WRITABLE_DTYPES.items()}
    ck = modelkin.open(write_single(tmp_path / "all.safetensors", tensors))
    assert {t.name: t.dtype for t in ck.tensors} == {name: name for name in WRITABLE_DTYPES}
    assert {t.name: t.nbytes for t in ck.tensors} == {n: a.nbytes for n, a in tensors.items()}


# -- inspect: per-tensor statistics against numpy/scipy ---------------------------------------------------


@pytest.mark.parametrize("dtype", list(WRITABLE_DTYPES))
def test_inspect_statistics_match_numpy_for_every_dtype(tmp_path, dtype):
    # 5000 elements: more than one 4096-element block, and not a multiple of it.
    x = sample_values(dtype, (50, 100), seed=len(dtype))
    path = write_single(tmp_path / f"{dtype}.safetensors", {"t": x, "u": x[:3, :7].copy()})
    res = modelkin.inspect(path, threads=2)
    by_name = {t.name: t for t in res.tensors}
    assert by_name["t"].dtype == dtype
    assert by_name["t"].shape == (50, 100)
    assert_stats_match(by_name["t"].stats, x, f"{dtype} t")
    assert_stats_match(by_name["u"].stats, x[:3, :7], f"{dtype} u")
    if dtype in FLOAT_DTYPES:
        assert by_name["t"].stats.nan >= 1  # the fixture really exercises non-finite values
        assert by_name["t"].stats.moments.n < x.size


def every_value(dtype: str) -> np.ndarray:
    """Every bit pattern of an 8- or 16-bit dtype; edge values of wider integers."""
    dt = WRITABLE_DTYPES[dtype]
    if dt.itemsize == 1:
        return np.arange(256, dtype=np.uint8).view(dt)
    if dt.itemsize == 2:
        return np.arange(65536, dtype=np.uint16).view(dt)
    info = np.iinfo(dt)
    edges = [
        info.min,
        info.min + 1,
        -(2**31),
        -1,
        0,
        1,
        2**24 + 1,
        2**31 - 1,
        2**53 + 1,
        info.max - 1,
        info.max,
    ]
    return np.array([v for v in edges if info.min <= v <= info.max], dtype=dt)


@pytest.mark.parametrize("dtype", [d for d in WRITABLE_DTYPES if d not in ("F64", "F32", "BOOL")] + ["F32"])
def test_every_value_decodes_like_numpy(tmp_path, dtype):
    # Compared element by element: the stored dtype against numpy's float64 decoding of it.
    x = (
        every_value(dtype)
        if dtype != "F32"
        else np.array(
            [0.0, -0.0, 1e-45, -1e-45, 1.17e-38, 3.4e38, -3.4e38, np.inf, -np.inf, np.nan, 1.5], np.float32
        )
    )
    with np.errstate(invalid="ignore", over="ignore"):
        ref = x.astype(np.float64)
    a = write_single(tmp_path / "a.safetensors", {"x": x})
    b = write_single(tmp_path / "b.safetensors", {"x": ref})
    (p,) = modelkin.diff(a, b).pairs
    assert (p.dtype_a, p.dtype_b) == (dtype, "F64")
    assert p.stats.n == int(np.isfinite(ref).sum())
    assert p.stats.max_abs_d == 0.0, "some element decodes differently from numpy"
    assert_stats_match(p.stats.a, x, dtype)


@pytest.mark.parametrize("dtype", ["I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64"])
def test_inspect_reports_integer_extremes(tmp_path, dtype):
    info = np.iinfo(WRITABLE_DTYPES[dtype])
    x = np.array([info.min, 0, 1, info.max], dtype=WRITABLE_DTYPES[dtype])
    (t,) = modelkin.inspect(write_single(tmp_path / "x.safetensors", {"x": x})).tensors
    assert t.stats.min == float(info.min)
    assert t.stats.max == float(info.max)


def test_bool_tensor_counts_true_as_one(tmp_path):
    x = np.array([True, False, True, True])
    (t,) = modelkin.inspect(write_single(tmp_path / "b.safetensors", {"b": x})).tensors
    assert t.stats.mean == 0.75
    assert (t.stats.min, t.stats.max) == (0.0, 1.0)


def test_inspect_of_llama_model_matches_numpy(base_file, base_state):
    res = modelkin.inspect(base_file)
    assert [t.name for t in res.tensors] == sorted(base_state)
    for t in res.tensors:
        assert_stats_match(t.stats, base_state[t.name], t.name)


def test_empty_and_scalar_tensors_are_read_and_summarised(tmp_path):
    path = write_single(
        tmp_path / "es.safetensors",
        {
            "empty": np.zeros((0,), np.float32),
            "scalar": np.array(-2.5, np.float32),
            "w": np.ones(3, np.float16),
        },
    )
    ck = modelkin.open(path)
    assert ck["empty"].shape == (0,) and ck["empty"].numel == 0 and ck["empty"].nbytes == 0
    assert ck["scalar"].shape == () and ck["scalar"].numel == 1 and ck["scalar"].nbytes == 4
    assert ck.n_params == 4
    stats = {t.name: t.stats for t in modelkin.inspect(path).tensors}
    assert stats["empty"].count == 0
    assert math.isnan(stats["empty"].mean) and math.isnan(stats["empty"].min)
    assert stats["scalar"].count == 1
    assert (stats["scalar"].mean, stats["scalar"].min, stats["scalar"].max) == (-2.5, -2.5, -2.5)
    assert stats["scalar"].std == 0.0


def test_diff_of_empty_and_scalar_tensors(tmp_path):
    a = write_single(
        tmp_path / "a.safetensors", {"e": np.zeros((0,), np.float32), "s": np.array(1.0, np.float32)}
    )
    b = write_single(
        tmp_path / "b.safetensors", {"e": np.zeros((0,), np.float32), "s": np.array(1.5, np.float32)}
    )
    res = modelkin.diff(a, b)
    assert [p.name for p in res.pairs] == ["e", "s"]
    e, s = res["e"], res["s"]
    assert e.shape == (0,) and e.numel == 0 and e.stats.n == 0
    assert s.shape == () and s.numel == 1
    assert s.stats.d.mean == 0.5 and s.stats.max_abs_d == 0.5
    json.dumps(res.to_dict(), allow_nan=False)


# -- diff: numbers, sharding, unmatched tensors ---------------------------------------------------------


def test_diff_pair_statistics_match_numpy(base_file, noised_file, base_state, noised_state):
    res = modelkin.diff(base_file, noised_file)
    assert [p.name for p in res.pairs] == sorted(base_state)
    for p in res.pairs:
        a = base_state[p.name].astype(np.float64).ravel()
        b = noised_state[p.name].astype(np.float64).ravel()
        d = b - a
        s = p.stats
        assert s.d.mean == pytest.approx(d.mean(), rel=1e-9, abs=1e-12 * d.std())
        assert s.d.std == pytest.approx(d.std(), rel=1e-9)
        assert s.d.skewness == pytest.approx(scipy.stats.skew(d), rel=1e-6, abs=1e-7)
        assert s.d.kurtosis == pytest.approx(scipy.stats.kurtosis(d), rel=1e-6, abs=1e-7)
        assert s.max_abs_d == np.abs(d).max()
        assert s.equal == int((base_state[p.name] == noised_state[p.name]).sum())
        assert s.rel_change == pytest.approx(np.linalg.norm(d) / np.linalg.norm(a), rel=1e-9)
        cos = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
        assert s.one_minus_cosine == pytest.approx(1 - cos, rel=1e-5, abs=1e-15)
    d_all = np.concatenate(
        [noised_state[k].astype(np.float64).ravel() - base_state[k].ravel() for k in sorted(base_state)]
    )
    assert res.totals()["d_std"] == pytest.approx(d_all.std(), rel=1e-9)
    assert res.totals()["elements"] == d_all.size


def test_diff_between_dtypes_compares_decoded_values(tmp_path):
    x = np.linspace(-1, 1, 101, dtype=np.float32)
    a = write_single(tmp_path / "a.safetensors", {"x": x})
    b = write_single(tmp_path / "b.safetensors", {"x": x.astype(ml_dtypes.bfloat16)})
    (p,) = modelkin.diff(a, b).pairs
    assert (p.dtype_a, p.dtype_b) == ("F32", "BF16")
    d = x.astype(ml_dtypes.bfloat16).astype(np.float64) - x.astype(np.float64)
    assert p.stats.max_abs_d == np.abs(d).max()
    assert p.stats.d.std == pytest.approx(d.std(), rel=1e-9)


def test_sharded_model_diffs_identically_to_the_same_model_in_one_file(
    base_file, noised_file, noised_sharded
):
    one_file = modelkin.diff(base_file, noised_file)
    for b in (noised_sharded, noised_sharded / INDEX_NAME):
        sharded = modelkin.diff(base_file, b)
        assert sharded.b.format == "safetensors-sharded"
        assert same(comparable(sharded), comparable(one_file))
        assert same(sharded.records(), one_file.records())


def test_a_model_compared_with_itself_is_bit_equal(base_file, base_state):
    t = modelkin.diff(base_file, base_file).totals()
    n = sum(v.size for v in base_state.values())
    assert (t["elements"], t["equal"], t["equal_fraction"]) == (n, n, 1.0)
    assert (t["d_std"], t["max_abs_d"], t["one_minus_cosine"]) == (0.0, 0.0, 0.0)


def test_diff_lists_unmatched_and_reshaped_tensors_with_their_own_stats(tmp_path):
    rng = np.random.default_rng(3)
    shared = rng.standard_normal((8, 8)).astype(np.float32)
    only_a, only_b = rng.standard_normal(10).astype(np.float32), rng.standard_normal(7).astype(np.float16)
    r_a, r_b = rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal((6, 4)).astype(np.float32)
    a = write_single(tmp_path / "a.safetensors", {"shared": shared, "gone": only_a, "reshaped": r_a})
    b = write_single(tmp_path / "b.safetensors", {"shared": shared + 1, "new": only_b, "reshaped": r_b})
    res = modelkin.diff(a, b)
    assert [p.name for p in res.pairs] == ["shared"]
    assert [t.name for t in res.only_a] == ["gone"]
    assert [t.name for t in res.only_b] == ["new"]
    assert res.only_b[0].dtype == "F16" and res.only_b[0].shape == (7,)
    assert_stats_match(res.only_a[0].stats, only_a, "only_a")
    assert_stats_match(res.only_b[0].stats, only_b, "only_b")
    ((ma, mb),) = res.shape_mismatch
    assert (ma.name, mb.name) == ("reshaped", "reshaped")
    assert (ma.shape, mb.shape) == ((4, 6), (6, 4))
    assert_stats_match(ma.stats, r_a, "mismatch a")
    assert_stats_match(mb.stats, r_b, "mismatch b")
    t = res.totals()
    assert (t["pairs"], t["only_a"], t["only_b"], t["shape_mismatch"]) == (1, 1, 1, 1)
    assert t["elements"] == 64  # totals cover compared pairs only
    d = res.to_dict()
    assert [x["name"] for x in d["only_a"]] == ["gone"]
    assert [x["name"] for x in d["only_b"]] == ["new"]
    assert d["shape_mismatch"][0]["shape_a"] == [4, 6] and d["shape_mismatch"][0]["shape_b"] == [6, 4]


def test_renamed_tensor_is_matched_by_name_only(tmp_path, base_state):
    old = "model.layers.0.mlp.up_proj.weight"
    new = "model.layers.0.mlp.up.weight"
    renamed = {(new if k == old else k): v for k, v in base_state.items()}
    a = write_single(tmp_path / "a.safetensors", base_state)
    b = write_single(tmp_path / "b.safetensors", renamed)
    res = modelkin.diff(a, b)
    assert [t.name for t in res.only_a] == [old]
    assert [t.name for t in res.only_b] == [new]
    assert old not in {p.name for p in res.pairs} and new not in {p.name for p in res.pairs}
    assert len(res.pairs) == len(base_state) - 1
    assert res.only_a[0].stats == res.only_b[0].stats  # same bytes, same statistics
    assert res.totals()["equal_fraction"] == 1.0


# -- threads --------------------------------------------------------------------------------------------


@pytest.fixture
def multi_chunk_pair(tmp_path):
    """A pair of models with a tensor of more than 2^20 elements (several engine chunks)."""
    rng = np.random.default_rng(11)
    big = rng.standard_normal(1_200_000).astype(np.float16)
    a_state = {"big": big, **llama_state(seed=5)}
    b_state = noised(a_state, 1e-2, seed=6)
    return (
        write_single(tmp_path / "a.safetensors", a_state),
        write_single(tmp_path / "b.safetensors", b_state),
    )


def test_results_do_not_depend_on_thread_count(multi_chunk_pair):
    a, b = multi_chunk_pair
    one = modelkin.diff(a, b, threads=1)
    two = modelkin.diff(a, b, threads=2)
    assert (one.threads, two.threads) == (1, 2)
    assert same(comparable(one), comparable(two))
    assert same(one.records(), two.records())
    i1, i2 = modelkin.inspect(a, threads=1), modelkin.inspect(a, threads=2)
    assert same([t.to_dict() for t in i1.tensors], [t.to_dict() for t in i2.tensors])


def test_thread_count_from_environment_variable(multi_chunk_pair, monkeypatch):
    a, b = multi_chunk_pair
    reference = modelkin.diff(a, b, threads=1)
    for n in ("1", "2"):
        monkeypatch.setenv("MODELKIN_NUM_THREADS", n)
        res = modelkin.diff(a, b)
        assert res.threads == int(n)
        assert same(comparable(res), comparable(reference))


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5"])
def test_invalid_thread_environment_variable_raises_value_error(base_file, monkeypatch, value):
    monkeypatch.setenv("MODELKIN_NUM_THREADS", value)
    with pytest.raises(ValueError, match="MODELKIN_NUM_THREADS"):
        modelkin.diff(base_file, base_file)
    with pytest.raises(ValueError, match="MODELKIN_NUM_THREADS"):
        modelkin.inspect(base_file)


@pytest.mark.parametrize("threads", [0, -2])
def test_non_positive_thread_argument_raises_value_error(base_file, threads):
    with pytest.raises(ValueError, match="threads"):
        modelkin.diff(base_file, base_file, threads=threads)


# -- result shapes --------------------------------------------------------------------------------------


def test_to_dict_is_strict_json_with_schema_tag(tmp_path):
    # NaN-producing cases: identical tensors (no skewness), an empty tensor, NaN values, unmatched tensors.
    x = np.array([1.0, np.nan, np.inf, -2.0], dtype=np.float32)
    a = write_single(tmp_path / "a.safetensors", {"same": x, "e": np.zeros(0, np.float32), "gone": x})
    b = write_single(tmp_path / "b.safetensors", {"same": x, "e": np.zeros(0, np.float32), "new": x * 2})
    res = modelkin.diff(a, b)
    d = res.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["schema"] == modelkin.SCHEMA == "modelkin.diff/1"
    assert {"a", "b", "totals", "pairs", "only_a", "only_b", "shape_mismatch"} <= back.keys()
    assert back["a"]["path"] == str(a) and back["b"]["path"] == str(b)
    assert [p["name"] for p in back["pairs"]] == ["e", "same"]
    assert back["pairs"][1]["d_skewness"] is None  # NaN becomes null


def test_llama_diff_to_dict_round_trips_through_json(base_file, noised_file):
    res = modelkin.diff(base_file, noised_file)
    back = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert back["totals"]["pairs"] == len(res.pairs)
    p = back["pairs"][0]
    for key in ("name", "shape", "d_std", "cosine", "one_minus_cosine", "histogram", "a", "b"):
        assert key in p
    assert sum(p["histogram"]["counts"]) + p["histogram"]["below"] + p["histogram"]["above"] > 0
    assert len(p["histogram"]["edges"]) == len(p["histogram"]["counts"]) + 1


def test_records_give_one_flat_scalar_row_per_pair(base_file, noised_file):
    res = modelkin.diff(base_file, noised_file)
    rows = res.records()
    assert len(rows) == len(res.pairs)
    assert [r["name"] for r in rows] == [p.name for p in res.pairs]
    for r in rows:
        for k, v in r.items():
            assert v is None or isinstance(v, (int, float, str, bool)), f"{k} is {type(v).__name__}"
    row = rows[0]
    assert row["shape"] == "x".join(map(str, res.pairs[0].shape))
    assert row["d_std"] == res.pairs[0].stats.d.std
    assert row["a_mean"] == res.pairs[0].stats.a.mean


# -- progress -------------------------------------------------------------------------------------------


def test_progress_callback_ends_with_done_equal_total(base_file, noised_file):
    calls: list[tuple[int, int]] = []
    res = modelkin.diff(base_file, noised_file, progress=lambda done, total: calls.append((done, total)))
    assert calls, "the callback was never called"
    assert all(isinstance(d, int) and isinstance(t, int) for d, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert calls[-1][0] == calls[-1][1] == res.a.nbytes + res.b.nbytes


def test_inspect_progress_callback_ends_with_done_equal_total(base_file):
    calls: list[tuple[int, int]] = []
    res = modelkin.inspect(base_file, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (res.checkpoint.nbytes, res.checkpoint.nbytes)


class Stop(Exception):
    pass


def test_exception_in_progress_callback_propagates_out_of_diff(base_file, noised_file):
    calls = []

    def progress(done, total):
        calls.append(done)
        raise Stop("from the callback")

    with pytest.raises(Stop, match="from the callback"):
        modelkin.diff(base_file, noised_file, progress=progress)
    assert calls


def test_exception_in_progress_callback_propagates_out_of_inspect(base_file):
    def progress(done, total):
        raise Stop

    with pytest.raises(Stop):
        modelkin.inspect(base_file, progress=progress)
