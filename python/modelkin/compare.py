"""``modelkin.compare``: how checkpoint B relates to checkpoint A, with the evidence.

First each model is sketched on its own: the values at a deterministic set of positions per tensor
(a few thousand reads, not a pass over the data), so that tensors can be aligned without trusting
their names. Then one streaming pass over the aligned pairs accumulates the statistics of their
differences (and of the tensors left unpaired). The verdict is drawn from both.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import _modelkin
from .align import Alignment, TensorSketch, align, sample_z
from .behavior import BehaviorResult
from .checkpoint import CheckpointInfo
from .diff import DiffResult, TensorDiff, TensorSummary, _threads, json_safe
from .evidence import PairEvidence, assess, kinship_z, learnt_matrix, log10_sf
from .fingerprint import Fingerprint, TensorPrint, is_fingerprint
from .fingerprint import fingerprint as make_print
from .fingerprint import load as load_print
from .hub import resolve
from .metadata import MetadataEvidence, compare_metadata
from .progress import ProgressArg, progress_callback
from .stats import Moments, PairStats, ValueStats
from .units import FAMILIES, HEAD, match_units, unit_groups
from .verdict import Verdict, decide

__all__ = ["COMPARE_SCHEMA", "CompareResult", "compare", "compare_fingerprints"]

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
    metadata: MetadataEvidence | None = None  # configs and tokenizers beside the weights
    behavior: BehaviorResult | None = None  # per-item answers, when they were given

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with a versioned schema tag (``"schema": "modelkin.compare/1"``)."""
        out: dict[str, Any] = json_safe(
            {
                "schema": COMPARE_SCHEMA,
                "modelkin_version": _modelkin.__version__,
                "a": self.diff.a.to_dict(),
                "b": self.diff.b.to_dict(),
                "verdict": self.verdict.to_dict(),
                "metadata": None if self.metadata is None else self.metadata.to_dict(),
                "behavior": None if self.behavior is None else self.behavior.to_dict(),
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
    a: str | os.PathLike[str] | Fingerprint,
    b: str | os.PathLike[str] | Fingerprint,
    *,
    threads: int | None = None,
    progress: ProgressArg = None,
    sample_size: int = 4096,
) -> CompareResult:
    """Compares checkpoint ``b`` against ``a`` and says how they relate (see :mod:`modelkin.verdict`).

    Tensors are aligned by canonical name and by content, so renamed, re-indexed (layer-dropped) and
    resized (vocabulary) tensors are still compared. ``threads`` and ``progress`` are as in
    :func:`modelkin.diff`. Either side may be a fingerprint (a file written by
    :func:`modelkin.fingerprint`, or the object): the same tests then run on what it holds (see
    :func:`compare_fingerprints`).
    """
    n = _threads(threads)
    a = a if isinstance(a, Fingerprint) else resolve(a)
    b = b if isinstance(b, Fingerprint) else resolve(b)
    if isinstance(a, Fingerprint) or isinstance(b, Fingerprint) or is_fingerprint(a) or is_fingerprint(b):
        return compare_fingerprints(
            _print_of(a, b, n, progress, sample_size), _print_of(b, a, n, progress, sample_size)
        )
    pa, pb = os.fspath(a), os.fspath(b)
    start = time.perf_counter()
    with progress_callback(progress, "compare") as cb:
        sk_a = _sketches(_modelkin.sample_values(pa, n, sample_size))
        sk_b = _sketches(_modelkin.sample_values(pb, n, sample_size))
        alignment = align(sk_a, sk_b)
        plan = [(p.a, p.b, p.rows, p.first_a, p.first_b, p.transposed) for p in alignment.pairs]
        raw = _modelkin.diff_pairs(
            pa, pb, plan, list(alignment.only_a), list(alignment.only_b), n, cb, sample_size
        )

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
    # Configs and tokenizers are a separate, weaker line of evidence: reported, never decisive.
    return CompareResult(verdict, tuple(evidence), alignment, diff, compare_metadata(pa, pb))


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
    heads_a = _modelkin.heads(a, names_a, HEAD, threads)
    heads_b = _modelkin.heads(b, names_b, HEAD, threads)
    for family, block, layer, group in suspects:
        m = match_units(layer, group, heads_a, heads_b, block, family)
        if m is None or not m.permuted:
            continue
        for name_a, _ in m.tensors:
            by_a[name_a] = replace(by_a[name_a], kind="permuted", z=m.z, log10_p=log10_sf(m.z))
    return [by_a[e.pairing.a] for e in evidence]


def _print_of(
    x: str | os.PathLike[str] | Fingerprint,
    other: str | os.PathLike[str] | Fingerprint,
    threads: int,
    progress: ProgressArg,
    sample_size: int,
) -> Fingerprint:
    """``x`` as a fingerprint: loaded, or computed with the other side's sample size."""
    if isinstance(x, Fingerprint):
        return x
    if is_fingerprint(x):
        return load_print(x)
    if isinstance(other, Fingerprint):
        sample_size = other.sample_size
    elif is_fingerprint(other):
        sample_size = load_print(other).sample_size
    return make_print(x, threads=threads, progress=progress, sample_size=sample_size, hash_files=True)


#: What a comparison of fingerprints cannot do, said in its notes.
PRINT_LIMITS = (
    "compared from fingerprints: statistics of b − a are estimated from the sampled positions, "
    "bit-equality is known at those positions and from file hashes, and permuted hidden units, "
    "resized vocabularies, fused QKV and transposed matrices cannot be matched"
)


def compare_fingerprints(fa: Fingerprint, fb: Fingerprint) -> CompareResult:
    """Runs the tests of :func:`compare` on two fingerprints, at the power their samples allow."""
    start = time.perf_counter()
    if fa.sample_size != fb.sample_size:
        raise ValueError(
            f"fingerprints sampled {fa.sample_size} and {fb.sample_size} values per tensor: their positions "
            "differ, so they cannot be compared; make both with the same sample size"
        )
    alignment = align(fa.sketches(), fb.sketches())
    whole = [p for p in alignment.pairs if p.method in ("name", "content")]
    left_a = tuple(sorted(set(alignment.only_a) | {p.a for p in alignment.pairs if p not in whole}))
    left_b = tuple(sorted(set(alignment.only_b) | {p.b for p in alignment.pairs if p not in whole}))
    alignment = Alignment(tuple(whole), left_a, left_b, alignment.candidates, alignment.best_z)
    evidence, diffs = [], []
    for pairing in whole:
        ta, tb = fa[pairing.a], fb[pairing.b]
        stats = PairStats.from_samples(ta.stats, tb.stats, ta.sample, tb.sample)
        z = sample_z(ta.centred(), tb.centred())
        evidence.append(assess(pairing, ta.shape, ta.dtype, tb.dtype, stats, z))
        diffs.append(TensorDiff(pairing.a, ta.shape, ta.dtype, tb.dtype, stats))
    same_files = bool(fa.files) and [f.get("sha256") for f in fa.files] == [f.get("sha256") for f in fb.files]
    total = PairStats.from_samples(
        _pooled_stats(fa, [p.a for p in whole]),
        _pooled_stats(fb, [p.b for p in whole]),
        np.concatenate([fa[p.a].sample for p in whole]) if whole else np.zeros(0),
        np.concatenate([fb[p.b].sample for p in whole]) if whole else np.zeros(0),
    )

    def summary(t: TensorPrint) -> TensorSummary:
        return TensorSummary(t.name, t.dtype, t.shape, t.stats)

    diff = DiffResult(
        a=fa.checkpoint,
        b=fb.checkpoint,
        pairs=tuple(diffs),
        only_a=tuple(summary(fa[n]) for n in alignment.only_a),
        only_b=tuple(summary(fb[n]) for n in alignment.only_b),
        shape_mismatch=(),
        total=total,
        threads=1,
        seconds=time.perf_counter() - start,
    )
    learnt = sum(t.numel for t in fa.tensors if learnt_matrix(t.name, t.shape))
    verdict = decide(
        evidence, alignment, [t.name for t in fa.tensors], [t.name for t in fb.tensors], None, learnt
    )
    notes = (*verdict.notes, PRINT_LIMITS)
    if same_files:
        notes = (*notes, "every file of the two checkpoints has the same SHA-256")
    return CompareResult(replace(verdict, notes=notes), tuple(evidence), alignment, diff)


def _pooled_stats(fp: Fingerprint, names: list[str]) -> ValueStats:
    """Statistics of several tensors' values together (counts and extremes only; for totals)."""
    ts = [fp[n].stats for n in names]
    return ValueStats(
        count=sum(t.count for t in ts),
        moments=Moments(0, 0.0, 0.0, 0.0, 0.0),
        min=min((t.min for t in ts), default=math.nan),
        max=max((t.max for t in ts), default=math.nan),
        nan=sum(t.nan for t in ts),
        pos_inf=sum(t.pos_inf for t in ts),
        neg_inf=sum(t.neg_inf for t in ts),
    )
