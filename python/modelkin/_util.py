"""Small helpers shared by the result types, the report and the CLI (one copy of each)."""

from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Any

__all__ = ["MAX_JSON_DEPTH", "json_safe", "num", "parse_json", "sha256_file", "visible"]

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


def _escape(code: int) -> str:
    return {9: "\\t", 10: "\\n", 13: "\\r"}.get(code, f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


#: Characters a terminal (or a viewer) acts on rather than shows, each mapped to a visible escape: C0
#: controls (ESC, so CSI and OSC sequences, among them), DEL, C1 controls (0x9b is a one-byte CSI), and
#: the Unicode line separators and bidirectional overrides that make text read otherwise than it is.
_CONTROLS = {
    c: _escape(c)
    for c in [
        *range(0x20),
        *range(0x7F, 0xA0),
        0x2028,
        0x2029,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]
}


def visible(value: object) -> str:
    """``str(value)`` with every control character shown as an escape (ESC as ``\\x1b``, a newline as
    ``\\n``): the base of the terminal escape (:func:`modelkin.cli.console.term`), the Markdown one
    (:func:`modelkin.report.markdown.md_text`) and the plots' labels. Other text is left as it is."""
    return str(value).translate(_CONTROLS)


#: JSON nested deeper than this is refused: no config, tokenizer or header needs more than a handful of
#: levels, and Python's parser and every recursive walk after it would hit the recursion limit.
MAX_JSON_DEPTH = 100


def _depth_ok(value: Any) -> bool:
    """Whether ``value`` nests at most :data:`MAX_JSON_DEPTH` containers deep (iteratively)."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        items = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        if items is None:
            continue
        if d > MAX_JSON_DEPTH:
            return False
        stack.extend((x, d + 1) for x in items if isinstance(x, (dict, list)))
    return True


def parse_json(text: str | bytes) -> Any:
    """``text`` parsed as JSON; a ``ValueError`` that says why for anything a hostile file can do to
    the parser: malformed JSON (with its line), nesting deeper than :data:`MAX_JSON_DEPTH`, and an
    integer too long for Python to convert (its digit limit). Never a ``RecursionError``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg} at line {e.lineno})") from None
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as e:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise ValueError(f"not readable JSON ({str(e).split(':')[0]})") from None
    if not _depth_ok(value):
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value
