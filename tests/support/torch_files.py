"""PyTorch checkpoints built by hand, without torch: the zip layout of ``torch.save`` (since 1.6) and
its pickle assembled opcode by opcode, so that the reader is tested where torch is not installed."""

from __future__ import annotations

import pickle as pk
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path

import ml_dtypes
import numpy as np

#: The torch storage class of each numpy dtype.
STORAGE_CLASS = {
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(ml_dtypes.bfloat16): "BFloat16Storage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
    np.dtype(np.int16): "ShortStorage",
    np.dtype(np.int8): "CharStorage",
    np.dtype(np.uint8): "ByteStorage",
    np.dtype(np.bool_): "BoolStorage",
}


def s(text: str) -> bytes:
    """``BINUNICODE text``."""
    raw = text.encode()
    return pk.BINUNICODE + struct.pack("<I", len(raw)) + raw


def short(text: str) -> bytes:
    """``SHORT_BINUNICODE text`` (protocol 4)."""
    raw = text.encode()
    return pk.SHORT_BINUNICODE + bytes([len(raw)]) + raw


def glob(module: str, name: str) -> bytes:
    """``GLOBAL module name``."""
    return pk.GLOBAL + f"{module}\n{name}\n".encode()


def i(v: int) -> bytes:
    """``BININT v``."""
    return pk.BININT + struct.pack("<i", v)


def ints(values: tuple[int, ...] | list[int]) -> bytes:
    """A tuple of integers."""
    return pk.MARK + b"".join(i(v) for v in values) + pk.TUPLE


def tensor(
    storage_class: str,
    key: str,
    numel: int,
    offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
) -> bytes:
    """``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``, the
    storage being the persistent id ``('storage', torch.<class>, key, 'cpu', numel)``."""
    return (
        glob("torch._utils", "_rebuild_tensor_v2")
        + pk.MARK
        + pk.MARK
        + s("storage")
        + glob("torch", storage_class)
        + s(key)
        + s("cpu")
        + i(numel)
        + pk.TUPLE
        + pk.BINPERSID
        + i(offset)
        + ints(size)
        + ints(stride)
        + pk.NEWFALSE
        + glob("collections", "OrderedDict")
        + pk.EMPTY_TUPLE
        + pk.REDUCE
        + pk.TUPLE
        + pk.REDUCE
    )


def ordered_dict(items: list[tuple[str, bytes]]) -> bytes:
    """An ``OrderedDict`` whose values are the given pickle fragments (no PROTO, no STOP)."""
    body = glob("collections", "OrderedDict") + pk.EMPTY_TUPLE + pk.REDUCE
    if items:
        body += pk.MARK + b"".join(s(k) + v for k, v in items) + pk.SETITEMS
    return body


def whole(body: bytes) -> bytes:
    """A protocol-2 pickle of ``body``."""
    return pk.PROTO + b"\x02" + body + pk.STOP


def row_major_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The strides, in elements, of a C-ordered array of ``shape``."""
    return tuple(int(np.prod(shape[k + 1 :], dtype=np.int64)) for k in range(len(shape)))


def contiguous_tensor(key: str, x: np.ndarray) -> bytes:
    """The rebuild call of array ``x`` stored whole, in C order, in storage ``key``."""
    return tensor(STORAGE_CLASS[x.dtype], key, x.size, 0, x.shape, row_major_strides(x.shape))


def state_dict_pickle(state: Mapping[str, np.ndarray]) -> tuple[bytes, dict[str, bytes]]:
    """The pickle of ``state`` as ``torch.save(state_dict)`` writes it, and its storages by key."""
    storages = {}
    items = []
    for n, (name, x) in enumerate(state.items()):
        storages[str(n)] = x.tobytes(order="C")
        items.append((name, contiguous_tensor(str(n), x)))
    return whole(ordered_dict(items)), storages


def write_torch_zip(
    path: Path,
    pickle_bytes: bytes,
    storages: Mapping[str, bytes] | None = None,
    folder: str = "archive",
    storage_compression: int = zipfile.ZIP_STORED,
) -> Path:
    """Writes the layout of a ``torch.save`` archive: ``data.pkl``, ``byteorder``, ``data/<key>``,
    ``version``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(f"{folder}/data.pkl", pickle_bytes)
        z.writestr(f"{folder}/byteorder", b"little")
        for key, data in (storages or {}).items():
            z.writestr(f"{folder}/data/{key}", data, compress_type=storage_compression)
        z.writestr(f"{folder}/version", b"3\n")
    return path


def write_state_dict(path: Path, state: Mapping[str, np.ndarray], folder: str = "archive") -> Path:
    """``state`` saved as ``torch.save(state_dict, path)`` would, built without torch."""
    pkl, storages = state_dict_pickle(state)
    return write_torch_zip(path, pkl, storages, folder)
