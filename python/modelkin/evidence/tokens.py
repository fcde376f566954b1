"""Embedding rows keyed by token: kinship across a changed or reordered vocabulary.

A fingerprint made beside a tokenizer (``tokenizer.json``, ``vocab.json`` or ``vocab.txt``, read by
:mod:`modelkin.sidecar`, added tokens included) keeps, for each matrix whose rows are tokens (the
embedding, and the LM head when it is not tied), the values at :data:`COLUMNS` fixed columns of every
row that has a token, keyed by a stable 64-bit hash of the token's text (:func:`token_key`). Two
fingerprints are then aligned token by token, whatever ids the tokens have, and the kinship test
runs on the tokens they share.

**The test.** For the ``k`` stored columns, the k × k matrix of Fisher z scores of the correlations,
over the shared tokens, of A's column i with B's column j. For a copy (even noised or fine-tuned)
the diagonal is huge and the rest small. For independent models every entry is ≈ N(0, 1) — except
that models trained on similar text share token structure (frequent tokens move along a common
direction, in each model's own random basis), which inflates every entry alike, diagonal or not:
with independent random bases no column of B is tied to its namesake of A more than to any other.
So the diagonal is measured against the off-diagonal entries: ``t = (mean diagonal − mean
off-diagonal) / (s·√(1/k + 1/(k² − k)))`` with ``s`` the off-diagonal entries' standard deviation, at
least 1 (never more optimistic than the plain test), read as Student's t with k² − k − 1 degrees of
freedom. Size: an 8-byte key per token (and a 4-byte id when the ids are not 0 … n − 1), and ``k``
float16 values per token per token-keyed matrix: for a 128k vocabulary (128 256 tokens) 1.0 MB of
keys and 2.05 MB per matrix, 5.1 MB with an untied LM head.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..names import layer_index

__all__ = [
    "COLUMNS",
    "TokenEvidence",
    "columns_for",
    "token_key",
    "token_keys",
    "token_matrices",
    "token_test",
]

#: Columns kept per token row.
COLUMNS = 8
#: Share of the tokenizer's ids that must be rows of a matrix for it to count as token-keyed.
_COVER = 0.9
#: Shared tokens below which no test is run.
MIN_SHARED = 64


def token_key(token: str) -> int:
    """A stable 64-bit key of a token's text: the BLAKE2b-64 digest of its UTF-8 bytes, little-endian."""
    return int.from_bytes(
        hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little"
    )


def token_keys(vocab: Mapping[str, int]) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64]]:
    """Token ids (sorted) and their keys, one per id (an id held by several texts keeps its first)."""
    by_id: dict[int, str] = {}
    for text, i in vocab.items():
        if isinstance(i, int) and 0 <= i < 2**32:
            by_id.setdefault(i, text)
    ids = np.array(sorted(by_id), dtype=np.uint32)
    keys = np.array([token_key(by_id[int(i)]) for i in ids], dtype=np.uint64)
    return ids, keys


def token_matrices(tensors: list[tuple[str, tuple[int, ...]]], ids: npt.NDArray[np.uint32]) -> list[str]:
    """Names of the matrices whose rows are tokens: 2-D tensors outside the layers whose row count
    covers at least 90 % of the token ids and is at most twice their number."""
    if ids.size == 0:
        return []
    out = []
    for name, shape in tensors:
        if len(shape) != 2 or layer_index(name) is not None or shape[1] < 2:
            continue
        rows = shape[0]
        if rows <= 2 * ids.size and np.count_nonzero(ids < rows) >= _COVER * ids.size:
            out.append(name)
    return out


def columns_for(row_len: int, k: int = COLUMNS) -> list[int]:
    """The ``k`` evenly spaced columns kept of rows of ``row_len`` (all of them when there are fewer)."""
    k = min(k, row_len)
    return [(2 * j + 1) * row_len // (2 * k) for j in range(k)]


@dataclass(frozen=True)
class TokenEvidence:
    """A token-keyed matrix of A against its counterpart in B, on their shared tokens."""

    a: str
    b: str
    shared: int  # tokens in both vocabularies (by key)
    tokens_a: int
    tokens_b: int
    same_ids: float  # share of shared tokens with the same id (row) in both
    t: float  # the diagonal-against-off-diagonal statistic (module docstring)
    log10_p: float
    diagonal_r: float  # median correlation of a column of A with the same column of B
    sample_a: npt.NDArray[np.float64]  # A's values on the shared tokens (tokens × columns, flattened)
    sample_b: npt.NDArray[np.float64]

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        return {
            "a": self.a,
            "b": self.b,
            "shared": self.shared,
            "tokens_a": self.tokens_a,
            "tokens_b": self.tokens_b,
            "same_ids": self.same_ids,
            "t": self.t,
            "log10_p": self.log10_p,
            "diagonal_r": self.diagonal_r,
        }


def _unique(keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
    """Keys that occur once (a hash collision, or one text under two ids, is left out)."""
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return np.asarray(counts[inverse] == 1)


def token_test(
    name_a: str,
    ids_a: npt.NDArray[np.uint32],
    keys_a: npt.NDArray[np.uint64],
    values_a: npt.NDArray[np.float64],
    name_b: str,
    ids_b: npt.NDArray[np.uint32],
    keys_b: npt.NDArray[np.uint64],
    values_b: npt.NDArray[np.float64],
) -> TokenEvidence | None:
    """Aligns two token-keyed matrices by token and tests their kinship (module docstring); None when
    they share fewer than :data:`MIN_SHARED` tokens or their columns differ in number."""
    if values_a.ndim != 2 or values_b.ndim != 2 or values_a.shape[1] != values_b.shape[1]:
        return None
    k = values_a.shape[1]
    ua, ub = _unique(keys_a), _unique(keys_b)
    common, ia, ib = np.intersect1d(keys_a[ua], keys_b[ub], assume_unique=True, return_indices=True)
    if common.size < MIN_SHARED or k < 2:
        return None
    ia, ib = np.flatnonzero(ua)[ia], np.flatnonzero(ub)[ib]
    xa, xb = values_a[ia].astype(np.float64), values_b[ib].astype(np.float64)
    ok = np.all(np.isfinite(xa), axis=1) & np.all(np.isfinite(xb), axis=1)
    xa, xb = xa[ok], xb[ok]
    n = xa.shape[0]
    if n < MIN_SHARED:
        return None
    ca, cb = xa - xa.mean(axis=0), xb - xb.mean(axis=0)
    na, nb = np.linalg.norm(ca, axis=0), np.linalg.norm(cb, axis=0)
    if not (np.all(na > 0) and np.all(nb > 0)):
        return None
    r = np.clip((ca / na).T @ (cb / nb), -1 + 1e-15, 1 - 1e-15)
    z = np.arctanh(r) * math.sqrt(n - 3)
    diag = np.diag(z)
    off = z[~np.eye(k, dtype=bool)]
    s = max(1.0, float(np.std(off, ddof=1))) if off.size > 1 else 1.0
    stat = (float(diag.mean()) - float(off.mean())) / (s * math.sqrt(1 / k + 1 / off.size))
    df = max(off.size - 1, 1)
    # scipy loads on first use: importing it takes longer than a small diff runs.
    from scipy.stats import t as student_t

    lp = float(student_t.logsf(stat, df)) / math.log(10)
    same = float(np.mean(ids_a[ia] == ids_b[ib]))
    return TokenEvidence(
        name_a,
        name_b,
        int(common.size),
        int(ua.sum()),
        int(ub.sum()),
        same,
        stat,
        lp,
        float(np.median(np.diag(r))),
        xa.ravel(),
        xb.ravel(),
    )
