"""Hidden units that a derived model permuted: finding them again.

Reordering the hidden units of an MLP (rows of ``gate_proj``/``up_proj``, columns of ``down_proj``),
or the heads of an attention layer (blocks of rows of ``q_proj``/``k_proj``/``v_proj``, blocks of
columns of ``o_proj``), changes no output, so a copied model can be disguised that way; compared
element by element those matrices then look unrelated. Heads are matched as blocks of
:data:`HEAD_BLOCK` rows, which divides every usual head size, so a moved head moves whole blocks.

Each unit is summarised by its leading weights in the matrices of its group (the engine reads the
first k columns of every row and the first k rows), units of B are matched to units of A on half of
those features, and the match is tested on the other half: for independent models the held-out
features of matched units are uncorrelated (z ≈ N(0, 1)), for a permuted copy they are as alike as
the rest of the model. No units × units matrix is held in memory at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..align import sample_z
from ..names import canonical, layer_index

__all__ = ["FAMILIES", "UnitMatch", "match_units", "unit_groups"]

#: Leading weights read per unit from each matrix.
HEAD = 64
#: Units of B matched at a time (bounds the similarity block to CHUNK × units).
CHUNK = 512
#: Rows (or columns) matched together as one attention unit.
HEAD_BLOCK = 32

_MLP = {"mlp.gate_proj.weight": "rows", "mlp.up_proj.weight": "rows", "mlp.down_proj.weight": "cols"}
_QUERY = {"self_attn.q_proj.weight": "rows", "self_attn.o_proj.weight": "cols"}
_KEY_VALUE = {"self_attn.k_proj.weight": "rows", "self_attn.v_proj.weight": "rows"}
#: Families of matrices whose units move together, and the block of rows/columns one unit spans.
FAMILIES = (
    ("mlp", _MLP, 1),
    ("query heads", _QUERY, HEAD_BLOCK),
    ("key/value heads", _KEY_VALUE, HEAD_BLOCK),
)


@dataclass(frozen=True)
class UnitMatch:
    """The hidden units of one MLP block of B matched to A's."""

    layer: int
    family: str  # "mlp", "query heads" or "key/value heads"
    tensors: tuple[tuple[str, str], ...]  # (name in A, name in B) of the matrices involved
    permutation: npt.NDArray[np.intp]  # permutation[j] = the unit of A that B's unit j matches
    z: float  # held-out test of the match
    moved: float  # share of units not in their original place

    @property
    def permuted(self) -> bool:
        """Whether the units match far beyond chance, in another order than their own."""
        return self.z > 8.0 and self.moved > 0.0


def unit_groups(
    pairs: list[tuple[str, str]], family: dict[str, str] = _MLP
) -> dict[int, list[tuple[str, str, str]]]:
    """Aligned (A, B) pairs of one family's matrices by layer, with each matrix's unit axis."""
    out: dict[int, list[tuple[str, str, str]]] = {}
    for a, b in pairs:
        layer = layer_index(canonical(a))
        for suffix, role in family.items():
            if layer is not None and canonical(a).endswith(suffix):
                out.setdefault(layer, []).append((a, b, role))
    return {k: v for k, v in out.items() if len(v) >= 2}


def _signature(
    heads: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]],
    names: list[str],
    roles: list[str],
    block: int,
) -> npt.NDArray[np.float64] | None:
    """One row per unit: its leading weights in every matrix of the group (None if shapes disagree)."""
    parts = []
    for n, role in zip(names, roles):
        m = heads[n][0] if role == "rows" else heads[n][1].T
        if m.shape[0] % block:
            return None
        parts.append(m.reshape(m.shape[0] // block, block * m.shape[1]))
    if len({p.shape[0] for p in parts}) != 1:
        return None
    return np.hstack(parts)


def _standardise(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    x = x - x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def match_units(
    layer: int,
    triple: list[tuple[str, str, str]],
    heads_a: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]],
    heads_b: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]],
    block: int = 1,
    family: str = "mlp",
) -> UnitMatch | None:
    """Matches B's units of one group of matrices to A's; None when their unit counts differ."""
    roles = [r for _, _, r in triple]
    ua = _signature(heads_a, [a for a, _, _ in triple], roles, block)
    ub = _signature(heads_b, [b for _, b, _ in triple], roles, block)
    if ua is None or ub is None or ua.shape != ub.shape or ua.shape[0] < 2 or ua.shape[1] < 4:
        return None
    # Features alternate between matching and testing, so both halves cover every matrix.
    fit_a, fit_b = _standardise(ua[:, 0::2]), _standardise(ub[:, 0::2])
    perm = np.empty(ub.shape[0], dtype=np.intp)
    for start in range(0, ub.shape[0], CHUNK):
        perm[start : start + CHUNK] = np.argmax(fit_b[start : start + CHUNK] @ fit_a.T, axis=1)
    held_a, held_b = ua[perm, 1::2], ub[:, 1::2]

    # Remove unit and feature effects before correlating what is left.
    def residual(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + x.mean())

    z = sample_z(residual(held_a).ravel(), residual(held_b).ravel())
    moved = float(np.mean(perm != np.arange(perm.size)))
    return UnitMatch(
        layer, family, tuple((a, b) for a, b, _ in triple), perm, z if math.isfinite(z) else 0.0, moved
    )
