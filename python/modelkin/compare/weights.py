"""The streaming pipeline of :func:`modelkin.compare` for two checkpoints.

First each model is sketched on its own: the values at a deterministic set of positions per tensor
(a few thousand reads, not a pass over the data), so that tensors can be aligned without trusting
their names. Then one streaming pass over the aligned pairs accumulates the statistics of their
differences (and of the tensors left unpaired). The verdict is drawn from both.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from .. import _engine
from ..align import TensorSketch, align
from ..checkpoint import CheckpointInfo
from ..diff import DiffResult, TensorDiff, TensorSummary
from ..evidence.metadata import compare_metadata
from ..evidence.profiles import compare_profiles
from ..evidence.units import FAMILIES, HEAD, match_units, unit_groups
from ..evidence.weights import PairEvidence, assess, kinship_z, learnt_matrix, log10_sf
from ..progress import ProgressArg
from ..stats import PairStats, ValueStats
from ..verdict import decide
from .result import CompareResult

if TYPE_CHECKING:
    from .._engine import TensorsDict

__all__ = ["compare_checkpoints"]


def _sketches(raw: TensorsDict) -> list[TensorSketch]:
    return [TensorSketch.from_raw(t) for t in raw["tensors"]]


def compare_checkpoints(pa: str, pb: str, n: int, progress: ProgressArg, sample_size: int) -> CompareResult:
    """Compares checkpoint ``pb`` against ``pa`` (resolved paths) on ``n`` threads: sketch both, align,
    stream the aligned pairs once, then weigh the lines of evidence (see :func:`modelkin.compare`)."""
    start = time.perf_counter()
    with _engine.callback(progress, "compare") as cb:
        sk_a = _sketches(_engine.sample_values(pa, n, sample_size))
        sk_b = _sketches(_engine.sample_values(pb, n, sample_size))
        alignment = align(sk_a, sk_b)
        plan = [(p.a, p.b, p.rows, p.first_a, p.first_b, p.transposed) for p in alignment.pairs]
        raw = _engine.diff_pairs(pa, pb, plan, alignment.only_a, alignment.only_b, n, cb, sample_size)

    by_a = {t.name: t for t in sk_a}
    by_b = {t.name: t for t in sk_b}
    singles = [TensorSummary.from_raw(t) for t in raw["singles_a"] + raw["singles_b"]]
    single_a = {t.name: t for t in singles[: len(raw["singles_a"])]}
    single_b = {t.name: t for t in singles[len(raw["singles_a"]) :]}
    evidence = []
    diffs = []
    for pairing, rp in zip(alignment.pairs, raw["pairs"]):
        stats = PairStats.from_raw(rp)
        shape = tuple(rp["shape"])
        z = kinship_z(stats, shape, rp.get("positions"), rp.get("margins"))
        evidence.append(assess(pairing, shape, rp["dtype_a"], rp["dtype_b"], stats, z))
        diffs.append(TensorDiff(pairing.a, tuple(rp["shape"]), rp["dtype_a"], rp["dtype_b"], stats))

    evidence = _unpermute(pa, pb, evidence, n)
    seconds = time.perf_counter() - start
    total = PairStats.from_raw(raw["total"])
    diff = DiffResult(
        a=CheckpointInfo.from_raw(raw["a"]),
        b=CheckpointInfo.from_raw(raw["b"]),
        pairs=tuple(diffs),
        only_a=tuple(single_a[name] for name in alignment.only_a),
        only_b=tuple(single_b[name] for name in alignment.only_b),
        shape_mismatch=(),
        total=total,
        threads=n,
        seconds=seconds,
    )
    resized = next((p for p in alignment.pairs if p.method == "rows"), None)
    vocab = (by_a[resized.a].shape[0], by_b[resized.b].shape[0]) if resized else None
    learnt = sum(t.numel for t in sk_a if learnt_matrix(t.name, t.shape))
    verdict = decide(evidence, alignment, [t.name for t in sk_a], [t.name for t in sk_b], vocab, learnt)
    # Per-layer profiles from every tensor's own statistics (pairs over part of a tensor left out).
    whole = [(p, rp) for p, rp in zip(alignment.pairs, raw["pairs"]) if p.rows is None]
    stats_a = {rp["name"]: ValueStats.from_raw(rp["a"]) for _, rp in whole}
    stats_b = {rp["name_b"]: ValueStats.from_raw(rp["b"]) for _, rp in whole}
    stats_a |= {t.name: t.stats for t in single_a.values()}
    stats_b |= {t.name: t.stats for t in single_b.values()}
    profiles = compare_profiles(stats_a.items(), stats_b.items())
    # Configs and tokenizers are a separate, weaker line of evidence: reported, never decisive.
    return CompareResult(
        verdict, tuple(evidence), alignment, diff, compare_metadata(pa, pb), profiles=profiles
    )


#: A related matrix correlating less than this with its counterpart may hold some units moved.
_LOW_R = 0.9


def _scrambled(e: PairEvidence) -> bool:
    """Whether a matrix looks unrelated, or related only weakly, element by element: what a
    permutation of its units that left some of them in place would look like."""
    return not e.related or (e.kind == "update" and e.stats.pearson < _LOW_R)


def _unpermute(a: str, b: str, evidence: list[PairEvidence], threads: int) -> list[PairEvidence]:
    """Looks for permuted hidden units (MLP units, attention heads) where some of a layer's matrices
    look unrelated in an otherwise related model.

    Their evidence is replaced by the test of the unit matching (kind ``"permuted"``).
    """
    if not any(e.related and e.informative for e in evidence):
        return evidence
    by_a = {e.pairing.a: e for e in evidence}
    whole = [(e.pairing.a, e.pairing.b) for e in evidence if e.rows_whole]
    suspects = [
        (family, block, layer, group)
        for family, members, block in FAMILIES
        for layer, group in unit_groups(whole, members).items()
        if any(_scrambled(by_a[t[0]]) for t in group)
    ]
    if not suspects:
        return evidence
    names_a = sorted({t[0] for *_, group in suspects for t in group})
    names_b = sorted({t[1] for *_, group in suspects for t in group})
    heads_a = _engine.heads(a, names_a, HEAD, threads)
    heads_b = _engine.heads(b, names_b, HEAD, threads)
    for family, block, layer, group in suspects:
        m = match_units(layer, group, heads_a, heads_b, block, family)
        if m is None or not m.permuted:
            continue
        for name_a, _ in m.tensors:
            by_a[name_a] = replace(by_a[name_a], kind="permuted", z=m.z, log10_p=log10_sf(m.z))
    return [by_a[e.pairing.a] for e in evidence]
