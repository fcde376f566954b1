"""Byte-level edits of a valid file, for the fuzz-style tests of the readers."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def edits(size: int) -> st.SearchStrategy[tuple[Any, ...]]:
    """One edit of a file of ``size`` bytes: overwrite, insert, delete or truncate at some position."""
    return st.one_of(
        st.tuples(st.just("set"), st.integers(0, size - 1), st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("insert"), st.integers(0, size), st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("delete"), st.integers(0, size - 1), st.integers(1, 16)),
        st.tuples(st.just("truncate"), st.integers(0, size - 1)),
    )


def apply(data: bytes, mutations: list[tuple[Any, ...]]) -> bytes:
    """``data`` with the edits applied in order (positions past the end clamp to it)."""
    b = bytearray(data)
    for m in mutations:
        kind, pos = m[0], min(m[1], len(b))
        if kind == "set":
            b[pos : pos + len(m[2])] = m[2]
        elif kind == "insert":
            b[pos:pos] = m[2]
        elif kind == "delete":
            del b[pos : pos + m[2]]
        elif kind == "truncate":
            del b[pos:]
    return bytes(b)
