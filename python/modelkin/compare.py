"""``modelkin.compare``: how checkpoint B relates to checkpoint A, with the evidence.

Two streaming passes: the first sketches each model on its own (moments and a deterministic sample of
values per tensor) so that tensors can be aligned without trusting their names; the second streams the
aligned pairs and accumulates the statistics of their differences. The verdict is drawn from both.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from . import _modelkin
from .align import Alignment, TensorSketch, align
from .checkpoint import CheckpointInfo
from .diff import DiffResult, TensorDiff, TensorSummary, _threads, json_safe
from .evidence import PairEvidence, assess, learnt_matrix
from .progress import ProgressArg, progress_callback
from .stats import PairStats
from .verdict import Verdict, decide

__all__ = ["COMPARE_SCHEMA", "CompareResult", "compare"]

#: Version tag of :meth:`CompareResult.to_dict`.
COMPARE_SCHEMA = "modelkin.compare/1"


@dataclass(frozen=True)
class CompareResult:
    """The answer to "how does B relate to A": the verdict, the evidence per tensor pair, the alignment
    and the underlying diff of the aligned pairs."""

    verdict: Verdict
    evidence: tuple[PairEvidence, ...]
    alignment: Alignment
    diff: DiffResult

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with a versioned schema tag (``"schema": "modelkin.compare/1"``)."""
        out: dict[str, Any] = json_safe(
            {
                "schema": COMPARE_SCHEMA,
                "modelkin_version": _modelkin.__version__,
                "a": self.diff.a.to_dict(),
                "b": self.diff.b.to_dict(),
                "verdict": self.verdict.to_dict(),
                "evidence": [e.to_dict() for e in self.evidence],
                "alignment": self.alignment.to_dict(),
                "totals": self.diff.totals(),
                "threads": self.diff.threads,
                "seconds": self.diff.seconds,
            }
        )
        return out


def _sketches(raw: dict[str, Any]) -> list[TensorSketch]:
    return [TensorSketch.from_raw(t) for t in raw["tensors"]]


def compare(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    *,
    threads: int | None = None,
    progress: ProgressArg = None,
    sample_size: int = 4096,
) -> CompareResult:
    """Compares checkpoint ``b`` against ``a`` and says how they relate (see :mod:`modelkin.verdict`).

    Tensors are aligned by canonical name and by content, so renamed, re-indexed (layer-dropped) and
    resized (vocabulary) tensors are still compared. ``threads`` and ``progress`` are as in
    :func:`modelkin.diff`.
    """
    n = _threads(threads)
    pa, pb = os.fspath(a), os.fspath(b)
    start = time.perf_counter()
    with progress_callback(progress, "compare") as cb:
        raw_a = _modelkin.inspect(pa, n, cb, sample_size)
        raw_b = _modelkin.inspect(pb, n, cb, sample_size)
        sk_a, sk_b = _sketches(raw_a), _sketches(raw_b)
        alignment = align(sk_a, sk_b)
        plan = [(p.a, p.b, p.rows) for p in alignment.pairs]
        raw = _modelkin.diff_pairs(pa, pb, plan, n, cb, sample_size)
    seconds = time.perf_counter() - start

    by_a = {t.name: t for t in sk_a}
    by_b = {t.name: t for t in sk_b}
    evidence = []
    diffs = []
    for pairing, rp in zip(alignment.pairs, raw["pairs"]):
        stats = PairStats.from_raw(rp)
        evidence.append(
            assess(
                pairing,
                tuple(rp["shape"]),
                rp["dtype_a"],
                rp["dtype_b"],
                stats,
                stats.sample_a,
                stats.sample_b,
            )
        )
        diffs.append(TensorDiff(pairing.a, tuple(rp["shape"]), rp["dtype_a"], rp["dtype_b"], stats))

    def summary(t: TensorSketch) -> TensorSummary:
        return TensorSummary(t.name, t.dtype, t.shape, t.stats)

    total = PairStats.from_raw(raw["total"])
    diff = DiffResult(
        a=CheckpointInfo.from_raw(raw["a"]),
        b=CheckpointInfo.from_raw(raw["b"]),
        pairs=tuple(diffs),
        only_a=tuple(summary(by_a[name]) for name in alignment.only_a),
        only_b=tuple(summary(by_b[name]) for name in alignment.only_b),
        shape_mismatch=(),
        total=total,
        threads=n,
        seconds=seconds,
    )
    resized = next((p for p in alignment.pairs if p.method == "rows"), None)
    vocab = (by_a[resized.a].shape[0], by_b[resized.b].shape[0]) if resized else None
    learnt = sum(t.numel for t in sk_a if learnt_matrix(t.name, t.shape))
    verdict = decide(evidence, alignment, [t.name for t in sk_a], [t.name for t in sk_b], vocab, learnt)
    return CompareResult(verdict, tuple(evidence), alignment, diff)
