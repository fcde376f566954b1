"""Small checkpoints for the tests: Llama-shaped state dicts written with the official safetensors
package (one file or sharded the way Hugging Face shards), and hand-built safetensors bytes for
malformed-file cases."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from modelkin.demo import DemoShape, llama_like
from safetensors.numpy import save_file

#: A Llama-shaped model of ~60k parameters (about 240 kB in float32).
TINY = DemoShape(vocab=128, hidden=64, intermediate=96, layers=2, heads=4, kv_heads=2)

INDEX_NAME = "model.safetensors.index.json"


def llama_state(seed: int = 0, shape: DemoShape = TINY) -> dict[str, np.ndarray]:
    """A random Llama-shaped float32 state dict with Hugging Face tensor names."""
    return llama_like(shape, seed)


def noised(state: Mapping[str, np.ndarray], sigma: float, seed: int = 1) -> dict[str, np.ndarray]:
    """A copy of ``state`` with N(0, sigma²) added to every tensor, in each tensor's own dtype."""
    rng = np.random.default_rng(seed)
    return {k: (v + rng.standard_normal(v.shape) * sigma).astype(v.dtype) for k, v in state.items()}


def write_single(
    path: Path, tensors: Mapping[str, np.ndarray], metadata: dict[str, str] | None = None
) -> Path:
    """Writes one ``.safetensors`` file with the official writer and returns its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(dict(tensors), str(path), metadata=metadata)
    return path


def shard_plan(names: list[str], n_shards: int) -> list[list[str]]:
    """Splits tensor names (in the given order) into ``n_shards`` contiguous, non-empty groups."""
    if not 1 <= n_shards <= len(names):
        raise ValueError(f"cannot cut {len(names)} tensors into {n_shards} shards")
    bounds = np.linspace(0, len(names), n_shards + 1).round().astype(int)
    return [names[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


def write_sharded(
    folder: Path,
    tensors: Mapping[str, np.ndarray],
    n_shards: int = 3,
    metadata: dict[str, str] | None = None,
    index_name: str = INDEX_NAME,
) -> Path:
    """Writes ``model-0000i-of-0000n.safetensors`` shards and an index as Hugging Face does.

    The index is ``{"metadata": {"total_size": …}, "weight_map": {tensor: shard file name}}``.
    Returns the folder.
    """
    folder.mkdir(parents=True, exist_ok=True)
    weight_map: dict[str, str] = {}
    total = 0
    groups = shard_plan(list(tensors), n_shards)
    for i, names in enumerate(groups, start=1):
        shard = f"model-{i:05d}-of-{n_shards:05d}.safetensors"
        part = {n: tensors[n] for n in names}
        save_file(part, str(folder / shard), metadata=metadata)
        weight_map.update(dict.fromkeys(names, shard))
        total += sum(a.nbytes for a in part.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / index_name).write_text(json.dumps(index, indent=2))
    return folder


def read_index(folder: Path) -> dict[str, Any]:
    """The parsed index of a sharded folder."""
    return json.loads((folder / INDEX_NAME).read_text())


def write_index(folder: Path, index: dict[str, Any]) -> Path:
    """Writes ``index`` as the folder's index file and returns its path."""
    path = folder / INDEX_NAME
    path.write_text(json.dumps(index, indent=2))
    return path


# -- hand-built files ----------------------------------------------------------------------------------


def raw_file(
    header: bytes | str | Mapping[str, Any], data: bytes = b"", header_len: int | None = None
) -> bytes:
    """Safetensors bytes built by hand: 8-byte little-endian header length, header, data.

    ``header`` is a JSON-able mapping, or already-encoded text/bytes (for invalid JSON). ``header_len``
    overrides the length prefix (for lengths that lie).
    """
    if isinstance(header, Mapping):
        header = json.dumps(header)
    if isinstance(header, str):
        header = header.encode()
    n = len(header) if header_len is None else header_len
    return struct.pack("<Q", n) + header + data


def entry(dtype: str, shape: list[Any], begin: Any, end: Any) -> dict[str, Any]:
    """One tensor entry of a safetensors header."""
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def valid_small_file() -> bytes:
    """A valid, small safetensors file of a few dtypes, written by the official package."""
    from safetensors.numpy import save

    rng = np.random.default_rng(7)
    return save(
        {
            "w": rng.standard_normal((4, 6)).astype(np.float32),
            "h": rng.standard_normal(5).astype(np.float16),
            "i": np.arange(-3, 5, dtype=np.int64),
            "b": np.array([True, False, True]),
            "s": np.array(2.5, dtype=np.float64),
        },
        metadata={"format": "pt"},
    )
