"""Small helpers shared by the result types, the report and the CLI (one copy of each)."""

from __future__ import annotations

import hashlib
import math
import os
from typing import Any

__all__ = ["json_safe", "num", "sha256_file"]

# Big enough that hashing a multi-gigabyte shard is bound by the disk, not by Python's loop.
_HASH_CHUNK = 1 << 22


def json_safe(value: Any) -> Any:
    """Replaces non-finite floats by None (JSON has no NaN) throughout nested dicts and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, in hex, read in chunks (constant memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def num(x: float | None, fmt: str = ".3g") -> str:
    """A number for a table or a sentence; "–" for a missing or non-finite one."""
    if x is None or not math.isfinite(x):
        return "–"
    return format(x, fmt)
