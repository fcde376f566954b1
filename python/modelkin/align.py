"""Which tensor of B corresponds to which tensor of A — without trusting names.

Each model is first summarised tensor by tensor (:class:`TensorSketch`: moments, and the values at a
fixed set of pseudo-random positions that depend only on the tensor's size, so equal-sized tensors of
two models are sampled at the same positions). Tensors are then paired

1. by canonical name where the shapes agree and the content does not contradict it;
2. by content within groups of equal shape: the correlation of the two samples, turned into a z
   score, is maximised over one-to-one assignments (``scipy.optimize.linear_sum_assignment``), with a
   small bonus for agreeing names so that unrelated models keep their name pairing;
3. by canonical name with a different number of rows but the same row length (a changed vocabulary):
   the shared leading rows are compared;
4. separate Q, K and V projections against one fused QKV matrix: each against its block of rows;
5. by canonical name where one matrix is stored as the transpose of the other (GPT-2's Conv1D).

Every pair carries the method and the z score of its content match.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ._types import Method
from .names import canonical
from .stats import ValueStats

if TYPE_CHECKING:
    from ._engine import TensorRecordDict

__all__ = ["Alignment", "Pairing", "TensorSketch", "align", "sample_z"]

#: A content match needs at least this z score (one-sided p ≈ 1e-15) to override or add to names.
CONTENT_Z = 8.0
#: Score bonus for pairs whose canonical names agree: decides between equally (un)related candidates.
NAME_BONUS = 3.0
#: Matrices at least this large count as candidates when kinship is looked for by content.
MIN_MATRIX = 1024


@dataclass(frozen=True)
class TensorSketch:
    """A tensor's summary from one streaming pass: statistics and a deterministic sample of values."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    stats: ValueStats
    sample: npt.NDArray[np.float64]

    @classmethod
    def from_raw(cls, raw: TensorRecordDict) -> TensorSketch:
        """Builds from the engine's dict."""
        return cls(
            raw["name"],
            raw["dtype"],
            tuple(raw["shape"]),
            ValueStats.from_raw(raw["stats"]),
            np.asarray(raw["sample"], dtype=np.float64),
        )

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def canonical(self) -> str:
        """Canonical name."""
        return canonical(self.name)


@dataclass(frozen=True)
class Pairing:
    """One aligned pair: tensor ``a`` of A with tensor ``b`` of B."""

    a: str
    b: str
    method: Method  # "name", "content", "rows" (shared leading rows), "fused" (a row block of a fused matrix)
    z: float  # z score of the sample correlation (NaN where it cannot be computed)
    rows: int | None = None  # compare only `rows` rows, from `first_a` in A and `first_b` in B
    first_a: int = 0
    first_b: int = 0
    transposed: bool = False  # B stores the transpose of A's matrix

    @property
    def renamed(self) -> bool:
        """Whether the two names differ even after canonicalisation."""
        return canonical(self.a) != canonical(self.b)


@dataclass(frozen=True)
class Alignment:
    """The pairing of A's tensors with B's, and what is left over on each side.

    ``candidates`` counts the equal-shaped (A, B) matrix pairs whose samples were compared while
    looking for content matches for tensors left unpaired, and ``best_z`` is the highest z among them:
    when nothing pairs up, these say how hard kinship was looked for.
    """

    pairs: tuple[Pairing, ...]
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]
    candidates: int = 0
    best_z: float = math.nan

    @property
    def renamed(self) -> int:
        """Pairs whose canonical names differ."""
        return sum(p.renamed for p in self.pairs)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        return {
            "pairs": [
                {
                    "a": p.a,
                    "b": p.b,
                    "method": p.method,
                    "z": p.z,
                    "rows": p.rows,
                    "first_a": p.first_a,
                    "first_b": p.first_b,
                    "transposed": p.transposed,
                    "renamed": p.renamed,
                }
                for p in self.pairs
            ],
            "only_a": list(self.only_a),
            "only_b": list(self.only_b),
            "candidates": self.candidates,
            "best_z": self.best_z,
        }


def sample_z(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> float:
    """z score of the Pearson correlation of two equally long samples (Fisher transform).

    Under independence it is ≈ N(0, 1); NaN when either sample has no spread.
    """
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = x.size
    if n < 8:
        return math.nan
    xc, yc = x - x.mean(), y - y.mean()
    den = math.sqrt(float(xc @ xc) * float(yc @ yc))
    if den == 0:
        return math.nan
    r = min(max(float(xc @ yc) / den, -1 + 1e-15), 1 - 1e-15)
    return math.atanh(r) * math.sqrt(n - 3)


def _corr_matrix(
    xs: list[npt.NDArray[np.float64]], ys: list[npt.NDArray[np.float64]]
) -> npt.NDArray[np.float64]:
    """z scores of every (x, y) pair of equal-length samples, at once."""

    def prep(vs: list[npt.NDArray[np.float64]]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        m = np.nan_to_num(np.stack(vs), nan=0.0, posinf=0.0, neginf=0.0)
        m = m - m.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        dead = norms[:, 0] == 0
        return m / np.where(norms == 0, 1.0, norms), dead

    mx, dx = prep(xs)
    my, dy = prep(ys)
    r = np.clip(mx @ my.T, -1 + 1e-15, 1 - 1e-15)
    z = np.arctanh(r) * math.sqrt(max(mx.shape[1] - 3, 1))
    z[dx, :] = np.nan
    z[:, dy] = np.nan
    return z


_SPLIT = ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight")
_FUSED = "self_attn.qkv_proj.weight"


def _fused(a: list[TensorSketch], b: list[TensorSketch], used_a: set[str], used_b: set[str]) -> list[Pairing]:
    """Separate Q, K, V projections on one side, one fused QKV matrix ([Q; K; V] rows) on the other."""
    out: list[Pairing] = []

    def free(ts: list[TensorSketch], used: set[str]) -> dict[str, TensorSketch]:
        return {t.canonical: t for t in ts if t.name not in used and len(t.shape) == 2}

    fa, fb = free(a, used_a), free(b, used_b)
    for split_side, fused_side, split_is_a in ((fa, fb, True), (fb, fa, False)):
        for key, fused in fused_side.items():
            if not key.endswith(_FUSED):
                continue
            prefix = key[: -len(_FUSED)]
            parts = [split_side.get(prefix + s) for s in _SPLIT]
            if any(p is None or p.shape[1] != fused.shape[1] for p in parts):
                continue
            if sum(p.shape[0] for p in parts if p) != fused.shape[0]:
                continue
            first = 0
            for part in parts:
                assert part is not None
                rows = part.shape[0]
                if split_is_a:
                    out.append(Pairing(part.name, fused.name, "fused", math.nan, rows, 0, first))
                else:
                    out.append(Pairing(fused.name, part.name, "fused", math.nan, rows, first, 0))
                (used_a if split_is_a else used_b).add(part.name)
                first += rows
            (used_b if split_is_a else used_a).add(fused.name)
    return out


def _transposed(
    a: list[TensorSketch], b: list[TensorSketch], used_a: set[str], used_b: set[str]
) -> list[Pairing]:
    """Same canonical name, one matrix the transpose of the other (e.g. GPT-2 Conv1D vs Linear)."""
    out = []
    free_b = {t.canonical: t for t in b if t.name not in used_b and len(t.shape) == 2}
    for t in a:
        o = free_b.get(t.canonical)
        if (
            t.name in used_a
            or o is None
            or len(t.shape) != 2
            or o.shape != t.shape[::-1]
            or o.shape == t.shape
        ):
            continue
        out.append(Pairing(t.name, o.name, "transposed", math.nan, transposed=True))
        used_a.add(t.name)
        used_b.add(o.name)
    return out


def align(a: list[TensorSketch], b: list[TensorSketch]) -> Alignment:
    """Pairs the tensors of A with those of B (see the module docstring)."""
    pairs: list[Pairing] = []
    used_a: set[str] = set()
    used_b: set[str] = set()
    candidates, best_z = 0, -math.inf

    groups_a: dict[tuple[int, ...], list[TensorSketch]] = defaultdict(list)
    groups_b: dict[tuple[int, ...], list[TensorSketch]] = defaultdict(list)
    for t in a:
        groups_a[t.shape].append(t)
    for t in b:
        groups_b[t.shape].append(t)

    for shape, ga in groups_a.items():
        gb = groups_b.get(shape, [])
        if not gb:
            continue
        z = _corr_matrix([t.sample for t in ga], [t.sample for t in gb]) if len(ga[0].sample) >= 8 else None
        score = np.zeros((len(ga), len(gb)))
        if z is not None:
            score = np.where(np.isfinite(z), np.maximum(z, 0.0), 0.0)
        names_b = {t.canonical: j for j, t in enumerate(gb)}
        for i, t in enumerate(ga):
            j = names_b.get(t.canonical)
            if j is not None:
                score[i, j] += NAME_BONUS
        # scipy loads on first use: importing it takes longer than a small diff runs.
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(-score)
        for i, j in zip(rows, cols):
            ta, tb = ga[i], gb[j]
            zij = float(z[i, j]) if z is not None else math.nan
            same_name = ta.canonical == tb.canonical
            method: Method
            if same_name:
                method = "name"
            elif math.isfinite(zij) and zij >= CONTENT_Z:
                method = "content"
            else:
                continue  # neither names nor content tie these two together
            pairs.append(Pairing(ta.name, tb.name, method, zij))
            used_a.add(ta.name)
            used_b.add(tb.name)
        if z is not None and len(shape) >= 2 and math.prod(shape) >= MIN_MATRIX:
            left = [i for i, t in enumerate(ga) if t.name not in used_a]
            if left:
                candidates += len(left) * len(gb)
                zs = z[left, :]
                if np.isfinite(zs).any():
                    best_z = max(best_z, float(np.nanmax(zs)))

    # Same canonical name, same row length, different number of rows: a changed vocabulary.
    left_b = {t.canonical: t for t in b if t.name not in used_b}
    for t in a:
        if t.name in used_a or len(t.shape) < 2:
            continue
        o = left_b.get(t.canonical)
        if o is None or len(o.shape) != len(t.shape) or o.shape[1:] != t.shape[1:]:
            continue
        pairs.append(Pairing(t.name, o.name, "rows", math.nan, rows=min(t.shape[0], o.shape[0])))
        used_a.add(t.name)
        used_b.add(o.name)

    pairs.extend(_fused(a, b, used_a, used_b))
    pairs.extend(_transposed(a, b, used_a, used_b))
    pairs.sort(key=lambda p: (p.a, p.first_a))
    return Alignment(
        tuple(pairs),
        tuple(sorted(t.name for t in a if t.name not in used_a)),
        tuple(sorted(t.name for t in b if t.name not in used_b)),
        candidates,
        best_z if candidates else math.nan,
    )
