"""Type stubs of the native module (modelkin-core through PyO3). Use the public API in ``modelkin``."""

from collections.abc import Callable
from typing import Any, TypedDict, type_check_only

import numpy as np
import numpy.typing as npt

__all__ = [
    "DTYPES",
    "__version__",
    "columns",
    "default_threads",
    "diff",
    "diff_pairs",
    "fingerprint",
    "gguf_metadata",
    "heads",
    "inspect",
    "open_checkpoint",
    "pair_stats",
    "read_pair",
    "sample_values",
]

# The dicts the functions below return. They exist in these stubs only (hence @type_check_only):
# tests/test_native_keys.py checks that every call's keys equal its TypedDict's, both ways.

@type_check_only
class FileDict(TypedDict):
    """One file of a checkpoint."""

    path: str
    size: int
    n_tensors: int
    metadata: dict[str, str]

@type_check_only
class TensorEntryDict(TypedDict):
    """One tensor's header entry."""

    name: str
    dtype: str
    shape: list[int]
    file: int
    offset: int
    nbytes: int

@type_check_only
class CheckpointDict(TypedDict):
    """A validated checkpoint: its format, files and tensor table."""

    path: str
    format: str
    files: list[FileDict]
    tensors: list[TensorEntryDict]

@type_check_only
class MomentsDict(TypedDict):
    """Count, mean and central moment sums of a stream of values."""

    n: int
    mean: float
    m2: float
    m3: float
    m4: float

@type_check_only
class ValueStatsDict(MomentsDict):
    """Moments of the finite values plus the count, range and non-finite counts of all of them."""

    count: int
    min: float
    max: float
    nan: int
    pos_inf: int
    neg_inf: int

@type_check_only
class TensorRecordDict(TypedDict):
    """One tensor's statistics and sampled values."""

    name: str
    dtype: str
    shape: list[int]
    stats: ValueStatsDict
    sample: npt.NDArray[np.float64]

@type_check_only
class PairStatsDict(TypedDict):
    """Statistics of two tensors and of their difference d = b − a."""

    a: ValueStatsDict
    b: ValueStatsDict
    d: MomentsDict
    a_on_pair: MomentsDict
    b_on_pair: MomentsDict
    c_da: float
    c_ab: float
    d_min: float
    d_max: float
    max_abs_d: float
    equal: int
    sample_a: npt.NDArray[np.float64]
    sample_b: npt.NDArray[np.float64]

@type_check_only
class MarginsDict(TypedDict):
    """Row and column sums of both tensors of a pair."""

    rows_a: npt.NDArray[np.float64]
    rows_b: npt.NDArray[np.float64]
    cols_a: npt.NDArray[np.float64]
    cols_b: npt.NDArray[np.float64]

@type_check_only
class _PairRecordKeys(PairStatsDict):
    name: str
    name_b: str
    shape: list[int]
    dtype_a: str
    dtype_b: str

@type_check_only
class PairRecordDict(_PairRecordKeys, total=False):
    """One compared pair. ``positions`` only when the samples sit at the standard positions of the
    pair's shape; ``margins`` only from :func:`diff_pairs`, for matrices."""

    positions: npt.NDArray[np.uint64]
    margins: MarginsDict

@type_check_only
class ShapeMismatchDict(TypedDict):
    """A name both sides hold with different shapes."""

    a: TensorRecordDict
    b: TensorRecordDict

@type_check_only
class TensorsDict(TypedDict):
    """One checkpoint and a record per tensor (:func:`inspect`, :func:`sample_values`)."""

    checkpoint: CheckpointDict
    tensors: list[TensorRecordDict]

@type_check_only
class DiffDict(TypedDict):
    """What :func:`diff` returns."""

    a: CheckpointDict
    b: CheckpointDict
    pairs: list[PairRecordDict]
    total: PairStatsDict
    only_a: list[TensorRecordDict]
    only_b: list[TensorRecordDict]
    shape_mismatch: list[ShapeMismatchDict]

@type_check_only
class DiffPairsDict(TypedDict):
    """What :func:`diff_pairs` returns."""

    a: CheckpointDict
    b: CheckpointDict
    total: PairStatsDict
    pairs: list[PairRecordDict]
    singles_a: list[TensorRecordDict]
    singles_b: list[TensorRecordDict]

@type_check_only
class _PrintRecordKeys(TensorRecordDict):
    digest: str

@type_check_only
class PrintRecordDict(_PrintRecordKeys, total=False):
    """What a fingerprint keeps of one tensor; the row and column summaries for matrices only."""

    row_mean: npt.NDArray[np.float64]
    col_mean: npt.NDArray[np.float64]
    row_norms: npt.NDArray[np.float64]
    col_norms: npt.NDArray[np.float64]

@type_check_only
class FingerprintDict(TypedDict):
    """What :func:`fingerprint` returns."""

    checkpoint: CheckpointDict
    tensors: list[PrintRecordDict]

__version__: str
DTYPES: list[str]

def open_checkpoint(path: str) -> CheckpointDict:
    """Opens and validates a checkpoint (safetensors, PyTorch zip, .npy/.npz, index or folder); returns
    its format, files and tensor table (no tensor data is read, no pickle is executed)."""

def gguf_metadata(path: str) -> dict[str, Any] | None:
    """The key/value metadata of a GGUF checkpoint (a `.gguf` file or a folder holding one), with
    Python types: int, float, bool, str, and lists for arrays (nested where they nest). `None` when
    the checkpoint is not a GGUF file."""

def inspect(
    path: str,
    threads: int | None = None,
    progress: Callable[[int, int], object] | None = None,
    sample_size: int = 0,
) -> TensorsDict:
    """Streams one checkpoint; returns its summary and per-tensor statistics and sampled values."""

def diff(
    a: str,
    b: str,
    threads: int | None = None,
    progress: Callable[[int, int], object] | None = None,
    sample_size: int = 4096,
) -> DiffDict:
    """Streams two checkpoints once and compares same-named tensors."""

def diff_pairs(
    a: str,
    b: str,
    pairs: list[tuple[str, str, int | None, int, int, bool]],
    singles_a: list[str] = ...,
    singles_b: list[str] = ...,
    threads: int | None = None,
    progress: Callable[[int, int], object] | None = None,
    sample_size: int = 4096,
) -> DiffPairsDict:
    """Streams the listed pairs — (name in A, name in B, rows or None, first row of A, first row of B,
    B transposed) — and the listed single tensors of each side in one pass."""

def sample_values(path: str, threads: int | None = None, sample_size: int = 4096) -> TensorsDict:
    """Reads only the values at the sample positions of every tensor: a cheap sketch for alignment."""

def pair_stats(
    a: npt.NDArray[np.uint8],
    a_dtype: str,
    b: npt.NDArray[np.uint8],
    b_dtype: str,
    threads: int | None = None,
    sample_size: int = 4096,
) -> PairStatsDict:
    """Pair statistics of two equal-length byte buffers holding `a_dtype` and `b_dtype` elements."""

def heads(
    path: str, names: list[str], k: int = 64, threads: int | None = None
) -> dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """The first `k` columns of every row and the first `k` rows of each named matrix."""

def fingerprint(
    path: str,
    threads: int | None = None,
    progress: Callable[[int, int], object] | None = None,
    sample_size: int = 2048,
    quantiles: int = 128,
) -> FingerprintDict:
    """Streams one checkpoint once and returns what a fingerprint keeps of every tensor: statistics,
    sampled values, content digest (hex) and, for matrices, the row and column means at the sampled
    positions and the sorted row and column L2 norms at `quantiles` levels."""

def columns(
    path: str, names: list[str], cols: list[int], threads: int | None = None
) -> dict[str, npt.NDArray[np.float64]]:
    """The values at columns `cols` of every row of each named matrix (rows × len(cols) arrays)."""

def read_pair(a: str, b: str, threads: int | None = None) -> int:
    """Reads every tensor byte of two checkpoints without statistics; returns a checksum."""

def default_threads() -> int:
    """The thread count a call without `threads` uses."""
