"""The one door to the native engine (``modelkin._modelkin``, modelkin-core through PyO3).

Every other module calls the engine through these functions, so the things every call needs are done in
one place: the thread count is validated (and defaulted by the engine), hub ids are resolved to the
cached snapshot, the user's ``progress`` argument becomes the engine's callback, calls can be timed,
and results carry the ``TypedDict`` the stubs declare for them (``_modelkin.pyi``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import numpy as np
import numpy.typing as npt

from . import _modelkin
from .hub import resolve
from .progress import ProgressArg, progress_callback

if TYPE_CHECKING:
    # Declared in the stubs only (these names do not exist in the compiled module); the rest of the
    # package imports them from here, so that this module stays the one that names ``_modelkin``.
    from ._modelkin import CheckpointDict as CheckpointDict
    from ._modelkin import DiffDict as DiffDict
    from ._modelkin import DiffPairsDict as DiffPairsDict
    from ._modelkin import FingerprintDict as FingerprintDict
    from ._modelkin import MarginsDict as MarginsDict
    from ._modelkin import MomentsDict as MomentsDict
    from ._modelkin import PairRecordDict as PairRecordDict
    from ._modelkin import PairStatsDict as PairStatsDict
    from ._modelkin import PrintRecordDict as PrintRecordDict
    from ._modelkin import TensorRecordDict as TensorRecordDict
    from ._modelkin import TensorsDict as TensorsDict
    from ._modelkin import ValueStatsDict as ValueStatsDict

__all__ = [
    "DTYPES",
    "Callback",
    "PairPlan",
    "__version__",
    "callback",
    "columns",
    "default_threads",
    "diff",
    "diff_pairs",
    "fingerprint",
    "gguf_metadata",
    "heads",
    "inspect",
    "native_file",
    "open_checkpoint",
    "pair_stats",
    "read_pair",
    "sample_values",
    "threads",
    "timed",
]

#: The engine's version (the crate's, which is the package's).
__version__: str = _modelkin.__version__

#: Names of the element types the engine decodes.
DTYPES: list[str] = _modelkin.DTYPES

#: What the engine calls with ``(done_bytes, total_bytes)`` while it streams.
Callback = Callable[[int, int], object]

#: One pair for :func:`diff_pairs`: (name in A, name in B, rows or None, first row of A, first row of B,
#: B transposed).
PairPlan = tuple[str, str, Optional[int], int, int, bool]

T = TypeVar("T")


def native_file() -> str:
    """The path of the compiled extension (benchmarks hash it and look for debug info in it)."""
    return _modelkin.__file__ or ""


def threads(n: int | None) -> int:
    """The thread count a call runs on: ``n`` itself (a positive integer) or the engine's default
    (``MODELKIN_NUM_THREADS`` or the number of cores)."""
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    return n if n is not None else _modelkin.default_threads()


def _size(n: int, what: str) -> int:
    """``n`` checked as a count the engine takes (a non-negative integer below 2⁶⁴): the native module
    would raise ``OverflowError`` on a negative or huge one. The engine's own caps (2²⁰ sampled values
    per tensor) are checked by the core, which names them."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 2**64:
        raise ValueError(f"{what} must be a non-negative integer below 2**64, got {n!r}")
    return n


def default_threads() -> int:
    """The thread count a call without ``threads`` uses."""
    return _modelkin.default_threads()


def callback(progress: ProgressArg, label: str) -> AbstractContextManager[Callback | None]:
    """The user's ``progress`` argument as the engine's callback, for the length of a ``with`` block
    (a bar on stderr named ``label`` for ``True`` on a terminal)."""
    return progress_callback(progress, label)


def timed(call: Callable[[], T]) -> tuple[T, float]:
    """``call()`` and the wall-clock seconds it took."""
    start = time.perf_counter()
    out = call()
    return out, time.perf_counter() - start


def open_checkpoint(path: str | os.PathLike[str]) -> CheckpointDict:
    """Opens and validates a checkpoint; its format, files and tensor table (no tensor data is read)."""
    return _modelkin.open_checkpoint(resolve(path))


def gguf_metadata(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The key/value metadata of a GGUF checkpoint; ``None`` when it is not one."""
    return _modelkin.gguf_metadata(resolve(path))


def inspect(
    path: str | os.PathLike[str], threads: int, progress: Callback | None = None, sample_size: int = 0
) -> TensorsDict:
    """Streams one checkpoint: its summary, per-tensor statistics and sampled values."""
    return _modelkin.inspect(resolve(path), threads, progress, _size(sample_size, "sample_size"))


def diff(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    threads: int,
    progress: Callback | None = None,
    sample_size: int = 4096,
) -> DiffDict:
    """Streams two checkpoints once and compares same-named tensors."""
    return _modelkin.diff(resolve(a), resolve(b), threads, progress, _size(sample_size, "sample_size"))


def diff_pairs(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    pairs: Sequence[PairPlan],
    singles_a: Sequence[str],
    singles_b: Sequence[str],
    threads: int,
    progress: Callback | None = None,
    sample_size: int = 4096,
) -> DiffPairsDict:
    """Streams the listed pairs and single tensors of each side in one pass."""
    return _modelkin.diff_pairs(
        resolve(a),
        resolve(b),
        list(pairs),
        list(singles_a),
        list(singles_b),
        threads,
        progress,
        _size(sample_size, "sample_size"),
    )


def sample_values(path: str | os.PathLike[str], threads: int, sample_size: int = 4096) -> TensorsDict:
    """Only the values at the sample positions of every tensor: a cheap sketch for alignment."""
    return _modelkin.sample_values(resolve(path), threads, _size(sample_size, "sample_size"))


def pair_stats(
    a: npt.NDArray[np.uint8],
    a_dtype: str,
    b: npt.NDArray[np.uint8],
    b_dtype: str,
    threads: int,
    sample_size: int,
) -> PairStatsDict:
    """Pair statistics of two equal-length byte buffers holding ``a_dtype`` and ``b_dtype`` elements."""
    return _modelkin.pair_stats(a, a_dtype, b, b_dtype, threads, _size(sample_size, "sample_size"))


def heads(
    path: str | os.PathLike[str], names: list[str], k: int, threads: int
) -> dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """The first ``k`` columns of every row and the first ``k`` rows of each named matrix."""
    return _modelkin.heads(resolve(path), names, k, threads)


def fingerprint(
    path: str | os.PathLike[str],
    threads: int,
    progress: Callback | None,
    sample_size: int,
    quantiles: int,
) -> FingerprintDict:
    """Streams one checkpoint once: what a fingerprint keeps of every tensor."""
    return _modelkin.fingerprint(
        resolve(path), threads, progress, _size(sample_size, "sample_size"), _size(quantiles, "quantiles")
    )


def columns(
    path: str | os.PathLike[str], names: list[str], cols: list[int], threads: int
) -> dict[str, npt.NDArray[np.float64]]:
    """The values at columns ``cols`` of every row of each named matrix."""
    return _modelkin.columns(resolve(path), names, cols, threads)


def read_pair(a: str | os.PathLike[str], b: str | os.PathLike[str], threads: int | None = None) -> int:
    """Reads every tensor byte of two checkpoints without statistics (the benchmarks' floor)."""
    return _modelkin.read_pair(resolve(a), resolve(b), threads)
