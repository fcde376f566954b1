"""What a checkpoint holds, read from its headers alone (no tensor data is touched)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _engine
from .hub import resolve

if TYPE_CHECKING:
    from ._engine import CheckpointDict

__all__ = ["CheckpointInfo", "FileInfo", "TensorInfo", "gguf_metadata", "open"]


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's header entry.

    ``dtype`` is a safetensors name (``"F32"``, ``"BF16"``, …) or, in a GGUF file, a ggml
    block-quantised format (``"Q8_0"``, ``"Q4_K"``, …), decoded as llama.cpp does. ``shape`` is
    row-major (the Hugging Face order; GGUF's extents reversed).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: int
    offset: int
    nbytes: int

    @property
    def numel(self) -> int:
        """Number of elements."""
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class FileInfo:
    """One file of a checkpoint. ``metadata`` is a safetensors header's ``__metadata__``, or a GGUF
    file's scalar metadata as text (its arrays, such as the vocabulary, are in
    :func:`gguf_metadata`)."""

    path: str
    size: int
    n_tensors: int
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointInfo:
    """A validated checkpoint: its files and its tensors, sorted by name."""

    path: str
    format: str
    files: tuple[FileInfo, ...]
    tensors: tuple[TensorInfo, ...]

    @classmethod
    def from_raw(cls, raw: CheckpointDict) -> CheckpointInfo:
        """Builds from the engine's dict."""
        return cls(
            path=raw["path"],
            format=raw["format"],
            files=tuple(
                FileInfo(f["path"], f["size"], f["n_tensors"], dict(f["metadata"])) for f in raw["files"]
            ),
            tensors=tuple(
                TensorInfo(t["name"], t["dtype"], tuple(t["shape"]), t["file"], t["offset"], t["nbytes"])
                for t in raw["tensors"]
            ),
        )

    @property
    def n_params(self) -> int:
        """Total number of elements over all tensors."""
        return sum(t.numel for t in self.tensors)

    @property
    def nbytes(self) -> int:
        """Total bytes of tensor data."""
        return sum(t.nbytes for t in self.tensors)

    @property
    def dtypes(self) -> dict[str, int]:
        """Elements per dtype."""
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.dtype] = out.get(t.dtype, 0) + t.numel
        return out

    def __getitem__(self, name: str) -> TensorInfo:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def __len__(self) -> int:
        return len(self.tensors)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        return {
            "path": self.path,
            "format": self.format,
            "n_params": self.n_params,
            "nbytes": self.nbytes,
            "dtypes": self.dtypes,
            "files": [vars(f) for f in self.files],
            "n_tensors": len(self.tensors),
        }


def open(path: str | os.PathLike[str]) -> CheckpointInfo:
    """Opens and validates a checkpoint and returns what it holds, without reading tensor data.

    ``path`` is a ``.safetensors`` file, a GGUF file (llama.cpp, versions 2 and 3, quantized ones
    too), a PyTorch ``.bin``/``.pt``/``.pth`` file written by ``torch.save`` (read without
    unpickling: only tensors rebuilt by an allow-list of torch globals are accepted), a NumPy ``.npy``
    or uncompressed ``.npz`` file, a sharded index (``*.safetensors.index.json``,
    ``pytorch_model.bin.index.json``), a folder holding any of these, or a Hugging Face id
    (``org/name[@revision]``) in the local hub cache. A file's format is told by its first bytes.
    ``format`` says which: ``"safetensors"``, ``"gguf"``, ``"pytorch"``, ``"npy"``, ``"npz"``,
    ``"safetensors-sharded"`` or ``"pytorch-sharded"``. Raises :class:`FileNotFoundError` for a
    missing path and a :class:`~modelkin.errors.ModelkinError` naming the file and the problem for a
    malformed one (an :class:`~modelkin.errors.UnsupportedFormatError` for a pickle that asks for
    anything else).
    """
    return CheckpointInfo.from_raw(_engine.open_checkpoint(path))


def gguf_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The key/value metadata of a GGUF checkpoint, with its types: ``int``, ``float``, ``bool``,
    ``str``, and lists for arrays (nested where they nest), e.g. ``general.architecture``,
    ``llama.block_count``, ``tokenizer.ggml.tokens``.

    ``path`` is a ``.gguf`` file or a folder holding one. The file is validated as by :func:`open`;
    a checkpoint that is not a GGUF file raises :class:`ValueError`.
    """
    p = resolve(path)
    kv = _engine.gguf_metadata(p)
    if kv is None:
        raise ValueError(f"{p}: not a GGUF checkpoint")
    return kv
