"""Validation of a fingerprint file's header and arrays before :func:`modelkin.fingerprint.loads` uses them.

A fingerprint is often someone else's file. Everything the loader and the comparisons rely on is
checked here, against the layout :mod:`modelkin.fingerprint` documents: the header's keys and their
types, the format tag, the statistics (counts that add up, finite moments and extremes when there are
finite values), every array's dtype and length against what the header implies (the sample positions
of the tensor's size, the norm quantiles, the token rows and columns), and no array the header does not
account for. The first problem found raises :class:`~modelkin.errors.InvalidFingerprintError` naming
the file and the key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import InvalidFingerprintError

__all__ = ["check", "sample_length"]

#: At most this many dimensions per tensor (what the reference safetensors allows).
MAX_DIMS = 64
#: At most this many elements per tensor (the engine counts them in 64 bits).
MAX_NUMEL = 1 << 63
_HEX = re.compile(r"[0-9a-f]{64}")
_COUNTS = ("count", "n", "nan", "pos_inf", "neg_inf")
_MOMENTS = ("mean", "m2", "m3", "m4", "min", "max")


def sample_length(numel: int, sample_size: int) -> int:
    """How many values a fingerprint samples of a tensor of ``numel`` elements: one per stratum of
    ``ceil(numel / sample_size)`` elements (``rust/modelkin-core/src/stats/sample.rs``)."""
    if numel <= 0 or sample_size <= 0:
        return 0
    stratum = max(-(-numel // sample_size), 1)
    return -(-numel // stratum)


class _Checker:
    """Raises :class:`InvalidFingerprintError` with the file's name in front of each problem."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, problem: str) -> InvalidFingerprintError:
        return InvalidFingerprintError(f"{self.name}: invalid fingerprint: {problem}")

    def key(self, obj: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
        if key not in obj:
            raise self.fail(f"{where or 'the header'} has no {key!r}")
        return self.typed(obj[key], types, f"{where}{'.' if where else ''}{key}")

    def typed(self, value: Any, types: type | tuple[type, ...], what: str) -> Any:
        kinds = types if isinstance(types, tuple) else (types,)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            names = " or ".join("null" if t is type(None) else t.__name__ for t in kinds)
            raise self.fail(f"{what or 'the header'} is {type(value).__name__}, expected {names}")
        return value

    def count(self, obj: Mapping[str, Any], key: str, where: str, lo: int = 0) -> int:
        v: int = self.key(obj, key, int, where)
        if v < lo:
            raise self.fail(f"{where}{'.' if where else ''}{key} is {v}, expected at least {lo}")
        return v

    def array(self, arrays: Mapping[str, np.ndarray], key: str, dtype: type, shape: tuple[int, ...]) -> None:
        a = arrays.get(key)
        if a is None:
            raise self.fail(f"array {key!r} is missing")
        if a.dtype != np.dtype(dtype):
            raise self.fail(f"array {key!r} is {a.dtype}, expected {np.dtype(dtype)}")
        if a.shape != shape:
            got = "×".join(map(str, a.shape)) or "a scalar"
            raise self.fail(f"array {key!r} has shape {got}, expected {'×'.join(map(str, shape))}")


def check(header: Any, arrays: Mapping[str, np.ndarray], name: str, formats: tuple[str, ...]) -> int:
    """Checks a fingerprint's header (parsed JSON) and arrays; returns its format version. Raises
    :class:`~modelkin.errors.InvalidFingerprintError` naming ``name`` and the first problem."""
    c = _Checker(name)
    c.typed(header, dict, "")
    fmt = c.key(header, "format", str, "")
    if fmt not in formats:
        raise InvalidFingerprintError(
            f"{name}: fingerprint format {fmt!r}, expected one of {', '.join(formats)} "
            "(a newer modelkin may read it)"
        )
    version = int(fmt.rsplit("/", 1)[1])
    for key in ("source", "created", "checkpoint_format"):
        c.key(header, key, str, "")
    sample_size = c.count(header, "sample_size", "", 1)
    # 0 (and no norms) in a version-1 fingerprint saved again, e.g. by ``registry add``
    quantiles = c.count(header, "norm_quantiles", "") if version >= 2 else 0
    for i, f in enumerate(c.key(header, "files", list, "")):
        where = f"files[{i}]"
        c.typed(f, dict, where)
        c.key(f, "path", str, where)
        c.count(f, "size", where)
        if "n_tensors" in f:
            c.count(f, "n_tensors", where)
        if f.get("sha256") is not None:
            c.key(f, "sha256", str, where)
    tokens = header.get("tokens")
    ids = _tokens(c, tokens, arrays)
    expected = (
        set() if ids is None else {"tokens.keys"} | ({"tokens.ids"} if "tokens.ids" in arrays else set())
    )
    seen: set[str] = set()
    for i, t in enumerate(c.key(header, "tensors", list, "")):
        expected |= _tensor(c, i, t, arrays, sample_size, quantiles, version, ids, seen)
    extra = sorted(set(arrays) - expected)
    if extra:
        raise c.fail(f"array {extra[0]!r} belongs to no tensor of the header")
    return version


def _tokens(c: _Checker, tokens: Any, arrays: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """The token ids, when the header has a token index (checked against its arrays)."""
    if tokens is None:
        return None
    c.typed(tokens, dict, "tokens")
    n = c.count(tokens, "count", "tokens")
    c.key(tokens, "source", str, "tokens")
    c.array(arrays, "tokens.keys", np.uint64, (n,))
    if "tokens.ids" in arrays:
        c.array(arrays, "tokens.ids", np.uint32, (n,))
        return np.asarray(arrays["tokens.ids"])
    return np.arange(n, dtype=np.uint64)


def _tensor(
    c: _Checker,
    i: int,
    t: Any,
    arrays: Mapping[str, np.ndarray],
    sample_size: int,
    quantiles: int,
    version: int,
    ids: np.ndarray | None,
    seen: set[str],
) -> set[str]:
    """Checks tensor ``i`` of the header and its arrays; returns the names of its arrays."""
    where = f"tensors[{i}]"
    c.typed(t, dict, where)
    name = c.key(t, "name", str, where)
    if name in seen:
        raise c.fail(f"tensor {name!r} is listed twice")
    seen.add(name)
    c.key(t, "dtype", str, where)
    shape = c.key(t, "shape", list, where)
    if len(shape) > MAX_DIMS:
        raise c.fail(f"{where}.shape has {len(shape)} dimensions, at most {MAX_DIMS} are allowed")
    for d in shape:
        if c.typed(d, int, f"{where}.shape") < 0:
            raise c.fail(f"{where}.shape has a negative dimension")
    numel = math.prod(shape)
    if numel > MAX_NUMEL:
        raise c.fail(f"{where}.shape has {numel} elements, more than 2^63")
    stats = c.key(t, "stats", dict, where)
    counts = {k: c.count(stats, k, f"{where}.stats") for k in _COUNTS}
    values = {k: float(c.key(stats, k, (int, float), f"{where}.stats")) for k in _MOMENTS}
    if counts["count"] != numel or sum(counts[k] for k in _COUNTS[1:]) != numel:
        raise c.fail(f"{where}.stats counts ({counts}) do not add up to the {numel} elements of its shape")
    if counts["n"]:
        bad = [
            k
            for k in _MOMENTS
            if math.isnan(values[k]) or (k in ("mean", "min", "max") and math.isinf(values[k]))
        ]
        if bad:
            raise c.fail(f"{where}.stats.{bad[0]} is {values[bad[0]]} with {counts['n']} finite values")
        if values["min"] > values["max"]:
            raise c.fail(f"{where}.stats.min is above its max")
    digest = t.get("digest")
    if digest is not None and not (isinstance(digest, str) and _HEX.fullmatch(digest)):
        raise c.fail(f"{where}.digest is not 64 lower-case hex digits")
    n = sample_length(numel, sample_size)
    mine = {f"{i}.sample"}
    c.array(arrays, f"{i}.sample", np.float32, (n,))
    matrix = len(shape) >= 2
    for part, dtype, length in (
        ("mean", np.float16, (n, n)),
        (
            "norms",
            np.float32,
            (min(shape[0], quantiles), min(math.prod(shape[1:]), quantiles)) if matrix else (0, 0),
        ),
    ):
        keys = (f"{i}.row_{part}", f"{i}.col_{part}")
        present = [k in arrays for k in keys]
        if not any(present):
            continue
        if not matrix or (part == "norms" and version < 2):
            raise c.fail(f"array {keys[present.index(True)]!r} does not belong to a tensor of shape {shape}")
        for k, m in zip(keys, length):
            c.array(arrays, k, dtype, (m,))
        mine |= set(keys)
    columns = t.get("token_columns")
    if columns is not None or f"{i}.token_values" in arrays:
        c.typed(columns, list, f"{where}.token_columns")
        row_len = math.prod(shape[1:]) if matrix else 0
        for col in columns:
            if not 0 <= c.typed(col, int, f"{where}.token_columns") < row_len:
                raise c.fail(f"{where}.token_columns has a column outside the tensor's rows")
        if ids is None:
            raise c.fail(f"{where} has token rows but the header has no token index")
        rows = int(np.count_nonzero(ids < shape[0]))
        c.array(arrays, f"{i}.token_values", np.float16, (rows, len(columns)))
        mine.add(f"{i}.token_values")
    return mine
