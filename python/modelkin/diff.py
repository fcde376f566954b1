"""Comparing two checkpoints (or two arrays) tensor by tensor, in one streaming pass."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from . import _engine
from ._util import json_safe
from .checkpoint import CheckpointInfo
from .progress import ProgressArg
from .stats import PairStats, ValueStats

if TYPE_CHECKING:
    from ._engine import DiffDict, PairRecordDict, TensorRecordDict

__all__ = [
    "SCHEMA",
    "DiffResult",
    "InspectResult",
    "TensorDiff",
    "TensorSummary",
    "diff",
    "inspect",
    "pair_stats",
]

#: Version tag of the JSON produced by :meth:`DiffResult.to_dict`; bumped on incompatible changes.
SCHEMA = "modelkin.diff/1"
#: Version tag of the JSON produced by :meth:`InspectResult.to_dict`.
INSPECT_SCHEMA = "modelkin.inspect/1"


@dataclass(frozen=True)
class TensorSummary:
    """A tensor with the statistics of its values."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    stats: ValueStats

    @classmethod
    def from_raw(cls, raw: TensorRecordDict) -> TensorSummary:
        """Builds from the engine's dict."""
        return cls(raw["name"], raw["dtype"], tuple(raw["shape"]), ValueStats.from_raw(raw["stats"]))

    def to_dict(self) -> dict[str, Any]:
        """Flat, JSON-ready fields."""
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), **self.stats.to_dict()}


@dataclass(frozen=True)
class TensorDiff:
    """Two same-named, same-shaped tensors and how they differ."""

    name: str
    shape: tuple[int, ...]
    dtype_a: str
    dtype_b: str
    stats: PairStats

    @classmethod
    def from_raw(cls, raw: PairRecordDict) -> TensorDiff:
        """Builds from the engine's dict."""
        return cls(raw["name"], tuple(raw["shape"]), raw["dtype_a"], raw["dtype_b"], PairStats.from_raw(raw))

    @property
    def numel(self) -> int:
        """Number of elements."""
        return self.stats.a.count

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, with each side's statistics and the histogram of d nested."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype_a": self.dtype_a,
            "dtype_b": self.dtype_b,
            "numel": self.numel,
            **self.stats.to_dict(),
        }

    def record(self) -> dict[str, Any]:
        """One flat row (scalars only) for tables and data frames."""
        d = self.to_dict()
        row = {k: v for k, v in d.items() if not isinstance(v, (dict, list))}
        row["shape"] = "x".join(map(str, self.shape))
        for side in ("a", "b"):
            for k, v in d[side].items():
                row[f"{side}_{k}"] = v
        return row


@dataclass(frozen=True)
class DiffResult:
    """The comparison of checkpoint B against checkpoint A.

    ``pairs`` holds every same-named, same-shaped pair; tensors present on one side only and same-named
    tensors of different shapes are listed (with their own statistics), never dropped.
    """

    a: CheckpointInfo
    b: CheckpointInfo
    pairs: tuple[TensorDiff, ...]
    only_a: tuple[TensorSummary, ...]
    only_b: tuple[TensorSummary, ...]
    shape_mismatch: tuple[tuple[TensorSummary, TensorSummary], ...]
    total: PairStats
    threads: int
    seconds: float

    @classmethod
    def from_raw(cls, raw: DiffDict, threads: int, seconds: float) -> DiffResult:
        """Builds from the engine's dict."""
        return cls(
            a=CheckpointInfo.from_raw(raw["a"]),
            b=CheckpointInfo.from_raw(raw["b"]),
            pairs=tuple(TensorDiff.from_raw(p) for p in raw["pairs"]),
            only_a=tuple(TensorSummary.from_raw(t) for t in raw["only_a"]),
            only_b=tuple(TensorSummary.from_raw(t) for t in raw["only_b"]),
            shape_mismatch=tuple(
                (TensorSummary.from_raw(m["a"]), TensorSummary.from_raw(m["b"]))
                for m in raw["shape_mismatch"]
            ),
            total=PairStats.from_raw(raw["total"]),
            threads=threads,
            seconds=seconds,
        )

    def __getitem__(self, name: str) -> TensorDiff:
        for p in self.pairs:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def sigmas(self) -> npt.NDArray[np.float64]:
        """σ of d for every compared pair, in name order."""
        return np.array([p.stats.d.std for p in self.pairs], dtype=np.float64)

    def largest_first(self) -> list[TensorDiff]:
        """Pairs ordered by relative change ‖d‖/‖a‖, largest first (undefined ones last)."""

        def key(p: TensorDiff) -> float:
            r = p.stats.rel_change
            return -r if math.isfinite(r) else math.inf

        return sorted(self.pairs, key=key)

    def records(self) -> list[dict[str, Any]]:
        """One flat row per compared pair: ``pandas.DataFrame(result.records())`` works as is."""
        return [p.record() for p in self.pairs]

    def totals(self) -> dict[str, Any]:
        """Model-level numbers over all compared pairs."""
        t = self.total
        return {
            "pairs": len(self.pairs),
            "only_a": len(self.only_a),
            "only_b": len(self.only_b),
            "shape_mismatch": len(self.shape_mismatch),
            "elements": t.a.count,
            "equal": t.equal,
            "equal_fraction": t.equal_fraction,
            "d_mean": t.d.mean if t.n else math.nan,
            "d_std": t.d.std,
            "d_skewness": t.d.skewness,
            "d_kurtosis": t.d.kurtosis,
            "max_abs_d": t.max_abs_d,
            "rel_change": t.rel_change,
            "cosine": t.cosine,
            "one_minus_cosine": t.one_minus_cosine,
            "corr_d_a": t.corr_d_a,
            "d_std_min": float(np.nanmin(self.sigmas)) if self.pairs else math.nan,
            "d_std_max": float(np.nanmax(self.sigmas)) if self.pairs else math.nan,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with a versioned schema tag (``"schema": "modelkin.diff/1"``)."""
        out: dict[str, Any] = json_safe(
            {
                "schema": SCHEMA,
                "modelkin_version": _engine.__version__,
                "a": self.a.to_dict(),
                "b": self.b.to_dict(),
                "threads": self.threads,
                "seconds": self.seconds,
                "totals": self.totals(),
                "pairs": [p.to_dict() for p in self.pairs],
                "only_a": [t.to_dict() for t in self.only_a],
                "only_b": [t.to_dict() for t in self.only_b],
                "shape_mismatch": [
                    {
                        "name": a.name,
                        "shape_a": list(a.shape),
                        "shape_b": list(b.shape),
                        "a": a.to_dict(),
                        "b": b.to_dict(),
                    }
                    for a, b in self.shape_mismatch
                ],
            }
        )
        return out


@dataclass(frozen=True)
class InspectResult:
    """One checkpoint and the statistics of each of its tensors."""

    checkpoint: CheckpointInfo
    tensors: tuple[TensorSummary, ...]
    threads: int
    seconds: float

    def records(self) -> list[dict[str, Any]]:
        """One flat row per tensor."""
        return [t.to_dict() for t in self.tensors]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with a versioned schema tag."""
        out: dict[str, Any] = json_safe(
            {
                "schema": INSPECT_SCHEMA,
                "modelkin_version": _engine.__version__,
                "checkpoint": self.checkpoint.to_dict(),
                "threads": self.threads,
                "seconds": self.seconds,
                "tensors": [dict(t.to_dict(), shape=list(t.shape)) for t in self.tensors],
            }
        )
        return out


def diff(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    *,
    threads: int | None = None,
    progress: ProgressArg = None,
    sample_size: int = 4096,
) -> DiffResult:
    """Compares checkpoint ``b`` against checkpoint ``a``, tensor by tensor, in one streaming pass.

    Tensors are matched by name. Memory stays flat whatever the model size; ``threads`` defaults to
    ``MODELKIN_NUM_THREADS`` or the number of cores, and does not change the numbers. ``progress`` is
    ``True`` for a bar on stderr (on a terminal) or a callable receiving ``(done_bytes, total_bytes)``.
    ``sample_size`` differences per tensor are kept (at deterministic positions) for histograms.
    Ctrl-C stops the run with :class:`KeyboardInterrupt`.
    """
    n = _engine.threads(threads)
    with _engine.callback(progress, "diff") as cb:
        raw, seconds = _engine.timed(lambda: _engine.diff(a, b, n, cb, sample_size))
    return DiffResult.from_raw(raw, n, seconds)


def inspect(
    path: str | os.PathLike[str], *, threads: int | None = None, progress: ProgressArg = None
) -> InspectResult:
    """Streams one checkpoint and returns the statistics of every tensor."""
    n = _engine.threads(threads)
    with _engine.callback(progress, "inspect") as cb:
        raw, seconds = _engine.timed(lambda: _engine.inspect(path, n, cb))
    return InspectResult(
        CheckpointInfo.from_raw(raw["checkpoint"]),
        tuple(TensorSummary.from_raw(t) for t in raw["tensors"]),
        n,
        seconds,
    )


_NUMPY_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint64": "U64",
    "uint32": "U32",
    "uint16": "U16",
    "uint8": "U8",
    "bool": "BOOL",
}


def _as_bytes(x: Any, which: str) -> tuple[npt.NDArray[np.uint8], str]:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{which} must be a numpy array, got {type(x).__name__}")
    name = _NUMPY_DTYPES.get(x.dtype.name)
    if name is None:
        raise TypeError(
            f"{which} has dtype {x.dtype}, which modelkin does not read "
            f"(supported: {', '.join(sorted(_NUMPY_DTYPES))})"
        )
    if not x.dtype.isnative:
        raise TypeError(
            f"{which} is big-endian ({x.dtype.str}); convert it with x.astype(x.dtype.newbyteorder('='))"
        )
    if not x.flags.c_contiguous:
        raise TypeError(f"{which} is not C-contiguous; pass np.ascontiguousarray({which}) (a copy)")
    # A view, not a copy: the engine reads the array's own memory.
    return x.reshape(-1).view(np.uint8), name


def pair_stats(
    x: npt.NDArray[Any], y: npt.NDArray[Any], *, threads: int | None = None, sample_size: int = 4096
) -> PairStats:
    """Statistics of two arrays and of their difference ``y − x``, read in place (zero-copy).

    Both must be C-contiguous numpy arrays of the same shape, of any dtype modelkin reads (floats
    incl. ``ml_dtypes`` bfloat16 / float8, integers, bool). A clear :class:`TypeError` otherwise.
    """
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise TypeError("pair_stats takes two numpy arrays")
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {x.shape} and {y.shape}")
    bx, dx = _as_bytes(x, "x")
    by, dy = _as_bytes(y, "y")
    raw = _engine.pair_stats(bx, dx, by, dy, _engine.threads(threads), sample_size)
    return PairStats.from_raw(raw)
