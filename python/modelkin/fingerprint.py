"""Fingerprints: a compact summary of one model, from which ``compare`` runs its tests without the
model's weights.

A fingerprint is a small safetensors file (``FORMAT`` in its metadata). For every tensor it holds the
exact statistics of the values (count, moments, extremes, NaN/Inf counts), the values at a
deterministic set of positions that depends only on the tensor's size (so two models' tensors of one
shape are sampled alike), and, for matrices, the means of the row and of the column of each sampled
position (so the kinship test can remove row and column effects, as it does on full weights). The
header also records the model's files with their SHA-256, sizes and formats.

What a fingerprint cannot give: bit-equality over every element (only the sampled positions and the
file hashes), statistics of d = b − a over every element (they are estimated from the samples), and
the leading weights that permuted hidden units are matched on. Comparisons say so in their notes.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save_file

from . import _modelkin
from .align import TensorSketch
from .checkpoint import CheckpointInfo
from .diff import _threads
from .hub import resolve
from .progress import ProgressArg, progress_callback
from .stats import ValueStats

__all__ = ["FORMAT", "Fingerprint", "TensorPrint", "fingerprint", "is_fingerprint", "load", "loads"]

#: Format tag (and version) written into every fingerprint's metadata.
FORMAT = "modelkin.fingerprint/1"
#: Values sampled per tensor by default: about 24 KB per tensor, a few MB for an 8B model.
SAMPLE = 2048
_KEY = "modelkin_fingerprint"


@dataclass(frozen=True)
class TensorPrint:
    """One tensor's part of a fingerprint."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    stats: ValueStats
    sample: npt.NDArray[np.float64]  # float32 values (exact for every dtype of 32 bits or fewer)
    row_mean: npt.NDArray[np.float64] | None  # mean of the row of each sampled position (matrices)
    col_mean: npt.NDArray[np.float64] | None  # mean of the column of each sampled position

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    def sketch(self) -> TensorSketch:
        """The part alignment uses."""
        return TensorSketch(self.name, self.dtype, self.shape, self.stats, self.sample)

    def centred(self) -> npt.NDArray[np.float64]:
        """The sample with its row and column effects removed (the sample itself for non-matrices)."""
        if self.row_mean is None or self.col_mean is None:
            return self.sample
        return self.sample - self.row_mean - self.col_mean + self.stats.mean


@dataclass(frozen=True)
class Fingerprint:
    """A model's fingerprint: its checkpoint description and one :class:`TensorPrint` per tensor."""

    source: str
    created: str
    sample_size: int
    checkpoint: CheckpointInfo
    files: tuple[dict[str, Any], ...]  # path, size, sha256
    tensors: tuple[TensorPrint, ...] = field(repr=False)

    def __getitem__(self, name: str) -> TensorPrint:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def sketches(self) -> list[TensorSketch]:
        """Sketches for alignment."""
        return [t.sketch() for t in self.tensors]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes the fingerprint atomically (temporary file, then rename)."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {}
        entries = []
        for i, t in enumerate(self.tensors):
            arrays[f"{i}.sample"] = t.sample.astype(np.float32)
            if t.row_mean is not None and t.col_mean is not None:
                arrays[f"{i}.row_mean"] = t.row_mean.astype(np.float16)
                arrays[f"{i}.col_mean"] = t.col_mean.astype(np.float16)
            s = t.stats
            entries.append(
                {
                    "name": t.name,
                    "dtype": t.dtype,
                    "shape": list(t.shape),
                    "stats": {
                        "count": s.count,
                        "n": s.moments.n,
                        "mean": s.moments.mean,
                        "m2": s.moments.m2,
                        "m3": s.moments.m3,
                        "m4": s.moments.m4,
                        "min": s.min,
                        "max": s.max,
                        "nan": s.nan,
                        "pos_inf": s.pos_inf,
                        "neg_inf": s.neg_inf,
                    },
                }
            )
        header = {
            "format": FORMAT,
            "modelkin_version": _modelkin.__version__,
            "source": self.source,
            "created": self.created,
            "sample_size": self.sample_size,
            "checkpoint_format": self.checkpoint.format,
            "files": list(self.files),
            "tensors": entries,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file(arrays, tmp, metadata={_KEY: json.dumps(header, allow_nan=True)})
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def _metadata(head: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header at the start of ``head``; ValueError if malformed."""
    n = int.from_bytes(head[:8], "little")
    if len(head) < 8 or n > len(head) - 8:
        raise ValueError("truncated header")
    meta = json.loads(head[8 : 8 + n]).get("__metadata__") or {}
    return dict(meta)


def is_fingerprint(path: object) -> bool:
    """Whether ``path`` names a fingerprint file (not a model checkpoint); reads only the header."""
    if not isinstance(path, (str, os.PathLike)):
        return False
    p = Path(path)
    if not p.is_file():
        return False
    try:
        with open(p, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n > p.stat().st_size:
                return False
            return _KEY in _metadata(n.to_bytes(8, "little") + f.read(n))
    except (OSError, ValueError, AttributeError):
        return False


def load(path: str | os.PathLike[str]) -> Fingerprint:
    """Reads a fingerprint file; a ``ValueError`` names the file when it is not one modelkin wrote."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", str(p))
    return loads(p.read_bytes(), str(p))


def loads(data: bytes, name: str = "<bytes>") -> Fingerprint:
    """Reads a fingerprint from its bytes (``name`` is used in messages)."""
    try:
        meta = _metadata(data)
        if _KEY not in meta:
            raise ValueError(f"{name}: not a modelkin fingerprint")
        header = json.loads(meta[_KEY])
        if header.get("format") != FORMAT:
            raise ValueError(f"{name}: fingerprint format {header.get('format')!r}, expected {FORMAT!r}")
        arrays = load_arrays(data)
    except ValueError as e:
        if str(e).startswith(name):
            raise
        raise ValueError(f"{name}: not a readable fingerprint ({e})") from e
    except Exception as e:  # a malformed file: say which one
        raise ValueError(f"{name}: not a readable fingerprint ({e})") from e
    tensors = []
    for i, entry in enumerate(header["tensors"]):
        raw = dict(entry["stats"])
        row = arrays.get(f"{i}.row_mean")
        col = arrays.get(f"{i}.col_mean")
        tensors.append(
            TensorPrint(
                entry["name"],
                entry["dtype"],
                tuple(entry["shape"]),
                ValueStats.from_raw(raw),
                np.asarray(arrays[f"{i}.sample"], dtype=np.float64),
                None if row is None else np.asarray(row, dtype=np.float64),
                None if col is None else np.asarray(col, dtype=np.float64),
            )
        )
    ck = CheckpointInfo.from_raw(
        {
            "path": header["source"],
            "format": header["checkpoint_format"],
            "files": [
                {"path": f["path"], "size": f["size"], "n_tensors": f.get("n_tensors", 0), "metadata": {}}
                for f in header["files"]
            ],
            "tensors": [
                {
                    "name": t.name,
                    "dtype": t.dtype,
                    "shape": list(t.shape),
                    "file": 0,
                    "offset": 0,
                    "nbytes": 0,
                }
                for t in tensors
            ],
        }
    )
    return Fingerprint(
        header["source"],
        header["created"],
        int(header["sample_size"]),
        ck,
        tuple(header["files"]),
        tuple(tensors),
    )


def _f16(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(x.astype(np.float16), dtype=np.float64)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(
    path: str | os.PathLike[str],
    *,
    threads: int | None = None,
    progress: ProgressArg = None,
    sample_size: int = SAMPLE,
    hash_files: bool = True,
) -> Fingerprint:
    """Fingerprints a checkpoint in one streaming pass over its tensors (plus one read of each file for
    its SHA-256 when ``hash_files``). Pure: the same checkpoint gives the same fingerprint (but for the
    creation time)."""
    n = _threads(threads)
    p = resolve(path)
    info = CheckpointInfo.from_raw(_modelkin.open_checkpoint(p))
    names = [t.name for t in info.tensors]
    with progress_callback(progress, "fingerprint") as cb:
        # The pair engine on (model, model) gives each tensor's statistics, its sample and, for
        # matrices, its row and column sums in the same pass.
        raw = _modelkin.diff_pairs(
            p, p, [(t, t, None, 0, 0, False) for t in names], [], [], n, cb, sample_size
        )
    tensors = []
    for t, rp in zip(info.tensors, raw["pairs"]):
        sample = np.asarray(rp["sample_a"], dtype=np.float64)
        positions = np.asarray(rp.get("positions", np.zeros(0, np.uint64)), dtype=np.uint64)
        row_mean = col_mean = None
        margins = rp.get("margins")
        if margins is not None and len(t.shape) >= 2 and positions.size == sample.size:
            rows, row_len = t.shape[0], math.prod(t.shape[1:])
            i = (positions // row_len).astype(np.intp)
            j = (positions % row_len).astype(np.intp)
            # Stored as float16: a row mean is tiny next to the spread it is subtracted from.
            row_mean = _f16(np.asarray(margins["rows_a"])[i] / row_len)
            col_mean = _f16(np.asarray(margins["cols_a"])[j] / rows)
        # Rounded as they will be stored, so a fingerprint compares the same saved or not.
        sample = sample.astype(np.float32).astype(np.float64)
        tensors.append(
            TensorPrint(t.name, t.dtype, t.shape, ValueStats.from_raw(rp["a"]), sample, row_mean, col_mean)
        )
    files = tuple(
        {
            "path": f.path,
            "size": f.size,
            "n_tensors": f.n_tensors,
            "sha256": _sha256(f.path) if hash_files else None,
        }
        for f in info.files
    )
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return Fingerprint(p, created, sample_size, info, files, tuple(tensors))
