"""Fingerprints: a compact summary of one model, from which ``compare`` runs its tests without the
model's weights.

A fingerprint is a small safetensors file (``FORMAT`` in its metadata), written in one streaming
pass over the model. For every tensor it holds

- the exact statistics of the values (count, moments, extremes, NaN/Inf counts);
- the values at a deterministic set of positions that depends only on the tensor's size (so two
  models' tensors of one shape are sampled alike);
- a content digest of its bytes (version 2): the SHA-256 of the concatenated SHA-256 digests of its
  1 MiB pieces, in order (the last piece shorter; see ``rust/modelkin-core/src/print.rs``), so that
  it does not depend on how the pass was cut up; equal digests mean bit-identical tensors;

and, for matrices, the means of the row and of the column of each sampled position (so the kinship
test can remove row and column effects, as it does on full weights) and (version 2) the sorted L2
norms of the rows and of the columns at up to :data:`QUANTILES` evenly spaced quantiles (all of them
when there are fewer): a summary that permuting hidden units leaves unchanged. When a tokenizer lies
beside the weights, the matrices whose rows are tokens also keep the values at a few fixed columns
of every token's row, keyed by a hash of the token's text (:mod:`modelkin.evidence.tokens`), so that models
with changed or reordered vocabularies can be compared token by token. The header records the
model's files with their SHA-256, sizes and formats. Per-layer profiles (the std, mean and norm of
each kind of tensor over the layers, :mod:`modelkin.evidence.profiles`) come from the per-tensor statistics.

Layout (version 2). Metadata key ``modelkin_fingerprint``: JSON with ``format``, ``source``,
``created``, ``sample_size``, ``norm_quantiles``, ``digest`` (``{"algorithm": "sha256-of-1MiB-piece-
sha256s", "piece": 1048576}``), ``tokens`` (``null`` or ``{"count", "hash": "blake2b-64", "source"}``),
``files`` and ``tensors`` (name, dtype, shape, stats, ``digest`` hex, and ``token_columns`` for
token-keyed matrices). Arrays, tensor ``i`` being the i-th entry: ``i.sample`` (float32),
``i.row_mean`` and ``i.col_mean`` (float16), ``i.row_norms`` and ``i.col_norms`` (float32),
``i.token_values`` (float16, one row per token id below the matrix's row count, in ``tokens.ids``
order); ``tokens.keys`` (uint64) and ``tokens.ids`` (uint32; left out when the ids are 0 … n − 1).
Version-1 files (no digests, norms or tokens) are still read; what they lack is reported as not
available. Sizes: ``benches/FINGERPRINTS.md``; token-keyed rows: :mod:`modelkin.evidence.tokens`.

What a fingerprint cannot give: statistics of d = b − a over every element (they are estimated from
the samples), and the leading weights that permuted hidden units are matched on (the norm spectra
only show whether a permutation is consistent). Comparisons say so in their notes.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

from . import _engine
from ._output import write_bytes
from ._util import parse_json, sha256_file
from .align import TensorSketch
from .checkpoint import CheckpointInfo
from .errors import InvalidFingerprintError
from .evidence.tokens import columns_for, token_keys, token_matrices
from .fingerprint_check import check
from .hub import resolve
from .progress import ProgressArg
from .stats import ValueStats

if TYPE_CHECKING:
    from ._engine import ValueStatsDict

__all__ = [
    "FORMAT",
    "FORMATS",
    "Fingerprint",
    "TensorPrint",
    "TokenIndex",
    "fingerprint",
    "is_fingerprint",
    "load",
    "loads",
]

#: Format tag (and version) written into every fingerprint's metadata.
FORMAT = "modelkin.fingerprint/2"
#: Format tags that :func:`loads` reads.
FORMATS = ("modelkin.fingerprint/1", FORMAT)
#: Values sampled per tensor by default: about 24 KB per tensor, a few MB for an 8B model.
SAMPLE = 2048
#: Quantiles kept of each matrix's sorted row norms and of its sorted column norms.
QUANTILES = 128
#: How tensor digests are computed (recorded in the header).
DIGEST = {"algorithm": "sha256-of-1MiB-piece-sha256s", "piece": 1 << 20}
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
    digest: str | None = None  # content digest, hex (None in version-1 fingerprints)
    row_norms: npt.NDArray[np.float64] | None = None  # sorted row L2 norms at quantiles (matrices)
    col_norms: npt.NDArray[np.float64] | None = None  # sorted column L2 norms at quantiles
    token_columns: tuple[int, ...] = ()  # columns kept of each token's row (token-keyed matrices)
    token_values: npt.NDArray[np.float64] | None = None  # tokens × columns (ids below the row count)

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
class TokenIndex:
    """The tokenizer's ids and their tokens' text keys (see :func:`modelkin.evidence.tokens.token_key`)."""

    ids: npt.NDArray[np.uint32]
    keys: npt.NDArray[np.uint64]
    source: str  # the file the vocabulary was read from

    def below(self, rows: int) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64]]:
        """Ids (and keys) that are rows of a matrix of ``rows`` rows."""
        keep = self.ids < rows
        return self.ids[keep], self.keys[keep]


@dataclass(frozen=True)
class Fingerprint:
    """A model's fingerprint: its checkpoint description and one :class:`TensorPrint` per tensor."""

    source: str
    created: str
    sample_size: int
    checkpoint: CheckpointInfo
    files: tuple[dict[str, Any], ...]  # path, size, sha256
    tensors: tuple[TensorPrint, ...] = field(repr=False)
    version: int = 2  # the format version it was read from (or written in)
    norm_quantiles: int = QUANTILES
    tokens: TokenIndex | None = field(default=None, repr=False)

    def __getitem__(self, name: str) -> TensorPrint:
        index = self.__dict__.get("_index")
        if index is None:
            index = {t.name: t for t in self.tensors}
            object.__setattr__(self, "_index", index)
        try:
            return index[name]  # type: ignore[no-any-return]
        except KeyError:
            raise KeyError(name) from None

    def sketches(self) -> list[TensorSketch]:
        """Sketches for alignment."""
        return [t.sketch() for t in self.tensors]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes the fingerprint to ``path`` through :func:`modelkin._output.write_bytes`: atomically
        (temporary file in the same folder, then rename), never creating the folder; an
        :class:`~modelkin.errors.OutputError` names the file when it cannot be written (a full disk)."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {}
        entries = []
        for i, t in enumerate(self.tensors):
            arrays[f"{i}.sample"] = t.sample.astype(np.float32)
            if t.row_mean is not None and t.col_mean is not None:
                arrays[f"{i}.row_mean"] = t.row_mean.astype(np.float16)
                arrays[f"{i}.col_mean"] = t.col_mean.astype(np.float16)
            if t.row_norms is not None and t.col_norms is not None:
                arrays[f"{i}.row_norms"] = t.row_norms.astype(np.float32)
                arrays[f"{i}.col_norms"] = t.col_norms.astype(np.float32)
            if t.token_values is not None:
                arrays[f"{i}.token_values"] = t.token_values.astype(np.float16)
            s = t.stats
            entry: dict[str, Any] = {
                "name": t.name,
                "dtype": t.dtype,
                "shape": list(t.shape),
                "digest": t.digest,
            }
            if t.token_values is not None:
                entry["token_columns"] = list(t.token_columns)
            entries.append(
                {
                    **entry,
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
        if self.tokens is not None:
            ids = self.tokens.ids.astype(np.uint32)
            if not np.array_equal(ids, np.arange(ids.size)):  # the usual 0 … n−1 is left implicit
                arrays["tokens.ids"] = ids
            arrays["tokens.keys"] = self.tokens.keys.astype(np.uint64)
        header = {
            "format": FORMAT,
            "modelkin_version": _engine.__version__,
            "source": self.source,
            "created": self.created,
            "sample_size": self.sample_size,
            "norm_quantiles": self.norm_quantiles,
            "digest": DIGEST,
            "tokens": None
            if self.tokens is None
            else {"count": int(self.tokens.ids.size), "hash": "blake2b-64", "source": self.tokens.source},
            "checkpoint_format": self.checkpoint.format,
            "files": list(self.files),
            "tensors": entries,
        }
        data = save_arrays(arrays, metadata={_KEY: json.dumps(header, allow_nan=True)})
        return write_bytes(path, data, "fingerprint")


def _metadata(head: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header at the start of ``head``; ValueError if malformed."""
    n = int.from_bytes(head[:8], "little")
    if len(head) < 8 or n > len(head) - 8:
        raise ValueError("truncated header")
    meta = parse_json(head[8 : 8 + n]).get("__metadata__") or {}
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
    except (OSError, ValueError, AttributeError, TypeError, RecursionError):
        return False


def load(path: str | os.PathLike[str]) -> Fingerprint:
    """Reads a fingerprint file; an :class:`~modelkin.errors.InvalidFingerprintError` (a ``ValueError``)
    names the file when it is not one modelkin wrote."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", str(p))
    return loads(p.read_bytes(), str(p))


def loads(data: bytes, name: str = "<bytes>") -> Fingerprint:
    """Reads a fingerprint from its bytes (``name`` is used in messages). Everything is checked first
    (:func:`modelkin.fingerprint_check.check`): a file that is not a fingerprint modelkin wrote raises
    :class:`~modelkin.errors.InvalidFingerprintError` (a ``ValueError``) naming it and the problem."""
    try:
        meta = _metadata(data)
        if _KEY not in meta:
            raise InvalidFingerprintError(f"{name}: not a modelkin fingerprint")
        header = json.loads(meta[_KEY])
        if isinstance(header, dict) and header.get("format") not in FORMATS:
            raise InvalidFingerprintError(
                f"{name}: fingerprint format {header.get('format')!r}, expected one of {', '.join(FORMATS)} "
                "(a newer modelkin may read it)"
            )
        arrays = load_arrays(data)
    except InvalidFingerprintError:
        raise
    except Exception as e:  # a malformed file (RecursionError for deep JSON included): say which one
        raise InvalidFingerprintError(f"{name}: not a readable fingerprint ({e})") from e
    version = check(header, arrays, name, FORMATS)

    def f64(key: str) -> npt.NDArray[np.float64] | None:
        x = arrays.get(key)
        return None if x is None else np.asarray(x, dtype=np.float64)

    tensors = []
    for i, entry in enumerate(header["tensors"]):
        raw = dict(entry["stats"])
        tensors.append(
            TensorPrint(
                entry["name"],
                entry["dtype"],
                tuple(entry["shape"]),
                ValueStats.from_raw(cast("ValueStatsDict", raw)),
                np.asarray(arrays[f"{i}.sample"], dtype=np.float64),
                f64(f"{i}.row_mean"),
                f64(f"{i}.col_mean"),
                entry.get("digest"),
                f64(f"{i}.row_norms"),
                f64(f"{i}.col_norms"),
                tuple(entry.get("token_columns", ())),
                f64(f"{i}.token_values"),
            )
        )
    tokens = None
    if header.get("tokens") and "tokens.keys" in arrays:
        keys = np.asarray(arrays["tokens.keys"], dtype=np.uint64)
        ids = arrays.get("tokens.ids")
        tokens = TokenIndex(
            np.arange(keys.size, dtype=np.uint32) if ids is None else np.asarray(ids, dtype=np.uint32),
            keys,
            str(header["tokens"].get("source", "")),
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
        version,
        int(header.get("norm_quantiles", 0)),
        tokens,
    )


def _f16(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(x.astype(np.float16), dtype=np.float64)


def _f32(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(x.astype(np.float32), dtype=np.float64)


def _token_index(path: str) -> TokenIndex | None:
    """The tokenizer's ids and keys when one lies beside the checkpoint (None otherwise)."""
    from .sidecar import Folder, metadata_folder, read_tokenizer

    try:
        folder = Folder(metadata_folder(path))
        tok = read_tokenizer(folder)
    except (OSError, ValueError):
        return None
    if tok is None or not tok.vocab:
        return None
    ids, keys = token_keys(tok.vocab)
    return TokenIndex(ids, keys, tok.sources[0] if tok.sources else "")


def fingerprint(
    path: str | os.PathLike[str],
    *,
    threads: int | None = None,
    progress: ProgressArg = None,
    sample_size: int = SAMPLE,
    hash_files: bool = True,
    quantiles: int = QUANTILES,
    tokens: bool = True,
) -> Fingerprint:
    """Fingerprints a checkpoint in one streaming pass over its tensors (plus one read of each file for
    its SHA-256 when ``hash_files``, and of a few columns of the token-keyed matrices when ``tokens``
    and a tokenizer lies beside the weights). Pure: the same checkpoint gives the same fingerprint
    (but for the creation time)."""
    n = _engine.threads(threads)
    p = resolve(path)
    with _engine.callback(progress, "fingerprint") as cb:
        raw = _engine.fingerprint(p, n, cb, sample_size, quantiles)
    info = CheckpointInfo.from_raw(raw["checkpoint"])
    index = _token_index(p) if tokens else None
    keyed: dict[str, tuple[tuple[int, ...], npt.NDArray[np.float64]]] = {}
    if index is not None:
        for name in token_matrices([(t.name, t.shape) for t in info.tensors], index.ids):
            shape = next(t.shape for t in info.tensors if t.name == name)
            wanted = columns_for(shape[1])
            values = _engine.columns(p, [name], wanted, n)[name]
            ids, _ = index.below(shape[0])
            # Rounded as they will be stored, so a fingerprint compares the same saved or not.
            keyed[name] = (tuple(wanted), _f16(np.asarray(values, dtype=np.float64)[ids.astype(np.intp)]))
        if not keyed:
            index = None
    tensors = []
    for t in raw["tensors"]:
        sample = np.asarray(t["sample"], dtype=np.float64)
        row_mean = col_mean = row_norms = col_norms = None
        if "row_mean" in t:
            # Stored as float16: a row mean is tiny next to the spread it is subtracted from.
            row_mean = _f16(np.asarray(t["row_mean"], dtype=np.float64))
            col_mean = _f16(np.asarray(t["col_mean"], dtype=np.float64))
            row_norms = _f32(np.asarray(t["row_norms"], dtype=np.float64))
            col_norms = _f32(np.asarray(t["col_norms"], dtype=np.float64))
        cols, token_values = keyed.get(t["name"], ((), None))
        tensors.append(
            TensorPrint(
                t["name"],
                t["dtype"],
                tuple(t["shape"]),
                ValueStats.from_raw(t["stats"]),
                _f32(sample),
                row_mean,
                col_mean,
                t["digest"],
                row_norms,
                col_norms,
                cols,
                token_values,
            )
        )
    files = tuple(
        {
            "path": f.path,
            "size": f.size,
            "n_tensors": f.n_tensors,
            "sha256": sha256_file(f.path) if hash_files else None,
        }
        for f in info.files
    )
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return Fingerprint(p, created, sample_size, info, files, tuple(tensors), 2, quantiles, index)
