"""Type stubs of the native module (modelkin-core through PyO3). Use the public API in ``modelkin``."""

from collections.abc import Callable
from typing import Any

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

__version__: str
DTYPES: list[str]

def open_checkpoint(path: str) -> dict[str, Any]:
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
) -> dict[str, Any]:
    """Streams one checkpoint; returns its summary and per-tensor statistics and sampled values."""

def diff(
    a: str,
    b: str,
    threads: int | None = None,
    progress: Callable[[int, int], object] | None = None,
    sample_size: int = 4096,
) -> dict[str, Any]:
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
) -> dict[str, Any]:
    """Streams the listed pairs — (name in A, name in B, rows or None, first row of A, first row of B,
    B transposed) — and the listed single tensors of each side in one pass."""

def sample_values(path: str, threads: int | None = None, sample_size: int = 4096) -> dict[str, Any]:
    """Reads only the values at the sample positions of every tensor: a cheap sketch for alignment."""

def pair_stats(
    a: npt.NDArray[np.uint8],
    a_dtype: str,
    b: npt.NDArray[np.uint8],
    b_dtype: str,
    threads: int | None = None,
    sample_size: int = 4096,
) -> dict[str, Any]:
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
) -> dict[str, Any]:
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
