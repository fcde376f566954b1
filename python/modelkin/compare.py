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
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _engine
from ._types import Method
from ._util import json_safe
from .align import Alignment, Pairing, TensorSketch, align, sample_z
from .checkpoint import CheckpointInfo
from .diff import DiffResult, TensorDiff, TensorSummary
from .evidence.behavior import BehaviorResult
from .evidence.metadata import MetadataEvidence, compare_metadata
from .evidence.profiles import ProfileComparison, compare_profiles
from .evidence.spectra import SpectrumCheck, check_spectra
from .evidence.tokens import TokenEvidence, token_test
from .evidence.units import FAMILIES, HEAD, match_units, unit_groups
from .evidence.weights import PairEvidence, assess, kinship_z, learnt_matrix, log10_sf
from .fingerprint import Fingerprint, TensorPrint, is_fingerprint
from .fingerprint import fingerprint as make_print
from .fingerprint import load as load_print
from .hub import resolve
from .names import canonical, layer_index
from .progress import ProgressArg
from .stats import Moments, PairStats, ValueStats
from .verdict import Verdict, decide

if TYPE_CHECKING:
    from ._engine import TensorsDict

__all__ = ["COMPARE_SCHEMA", "CompareResult", "compare", "compare_fingerprints"]

#: Version tag of :meth:`CompareResult.to_dict`.
COMPARE_SCHEMA = "modelkin.compare/1"


@dataclass(frozen=True)
class PrintEvidence:
    """The parts of a comparison of fingerprints that the position-based tests do not give.

    ``identical``: (A, B) tensor pairs whose content digests are equal (bit-identical tensors,
    whatever their names); ``digests_compared``: tensors of A whose digest was compared with a tensor of
    B's (0 when either fingerprint has no digests). ``spectra``: norm spectra of matrices that look
    unrelated position by position (:mod:`modelkin.evidence.spectra`; supporting evidence only). ``tokens``:
    token-keyed matrices compared on their shared tokens (:mod:`modelkin.evidence.tokens`). ``not_run``: the
    tests a fingerprint could not run, each with the reason.
    """

    identical: tuple[tuple[str, str], ...]
    digests_compared: int
    spectra: tuple[SpectrumCheck, ...]
    tokens: tuple[TokenEvidence, ...]
    not_run: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        return {
            "identical": [list(p) for p in self.identical],
            "digests_compared": self.digests_compared,
            "spectra": [c.to_dict() for c in self.spectra],
            "tokens": [t.to_dict() for t in self.tokens],
            "not_run": list(self.not_run),
        }


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
    profiles: ProfileComparison | None = None  # per-layer std/mean/norm profiles (descriptive)
    prints: PrintEvidence | None = None  # what only fingerprints give: digests, spectra, token rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with a versioned schema tag (``"schema": "modelkin.compare/1"``)."""
        out: dict[str, Any] = json_safe(
            {
                "schema": COMPARE_SCHEMA,
                "modelkin_version": _engine.__version__,
                "a": self.diff.a.to_dict(),
                "b": self.diff.b.to_dict(),
                "verdict": self.verdict.to_dict(),
                "metadata": None if self.metadata is None else self.metadata.to_dict(),
                "behavior": None if self.behavior is None else self.behavior.to_dict(),
                "profiles": None if self.profiles is None else self.profiles.to_dict(),
                "fingerprints": None if self.prints is None else self.prints.to_dict(),
                "evidence": [e.to_dict() for e in self.evidence],
                "alignment": self.alignment.to_dict(),
                "totals": self.diff.totals(),
                "threads": self.diff.threads,
                "seconds": self.diff.seconds,
            }
        )
        return out


def _sketches(raw: TensorsDict) -> list[TensorSketch]:
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
    n = _engine.threads(threads)
    a = a if isinstance(a, Fingerprint) else resolve(a)
    b = b if isinstance(b, Fingerprint) else resolve(b)
    if isinstance(a, Fingerprint) or isinstance(b, Fingerprint) or is_fingerprint(a) or is_fingerprint(b):
        return compare_fingerprints(
            _print_of(a, b, n, progress, sample_size), _print_of(b, a, n, progress, sample_size)
        )
    pa, pb = os.fspath(a), os.fspath(b)
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
    "compared from fingerprints: statistics of b − a are estimated from the sampled positions, and "
    "permuted hidden units, fused QKV and transposed matrices cannot be matched"
)


def _has_digests(fp: Fingerprint) -> bool:
    """Whether a fingerprint holds tensor digests (version 2, not converted from version 1)."""
    return any(t.digest for t in fp.tensors)


def _digest_pairs(fa: Fingerprint, fb: Fingerprint) -> list[Pairing]:
    """Tensors bit-identical to one tensor of the other side: equal digests, dtypes and shapes, each
    digest held by one tensor on each side (constant tensors, equal in many places, are left to the
    alignment)."""
    if not (_has_digests(fa) and _has_digests(fb)):
        return []

    def once(fp: Fingerprint) -> dict[tuple[str, str, tuple[int, ...]], TensorPrint]:
        seen: dict[tuple[str, str, tuple[int, ...]], list[TensorPrint]] = {}
        for t in fp.tensors:
            if t.digest:
                seen.setdefault((t.digest, t.dtype, t.shape), []).append(t)
        return {k: v[0] for k, v in seen.items() if len(v) == 1}

    ua, ub = once(fa), once(fb)
    out = []
    for key, ta in ua.items():
        tb = ub.get(key)
        if tb is None:
            continue
        method: Method = "name" if canonical(ta.name) == canonical(tb.name) else "content"
        out.append(Pairing(ta.name, tb.name, method, sample_z(ta.sample, tb.sample)))
    return out


def _sigma(evidence: list[PairEvidence]) -> float:
    """The typical σ of b − a over the informative pairs found related (NaN if none): what noise or
    training changed elsewhere in the model."""
    sig = [e.stats.d.std for e in evidence if e.informative and e.related and e.kind != "permuted"]
    sig = [x for x in sig if math.isfinite(x)]
    return float(np.median(sig)) if sig else math.nan


def _token_evidence(
    fa: Fingerprint, fb: Fingerprint, pairs: list[Pairing]
) -> tuple[list[TokenEvidence], list[str]]:
    """Token-keyed matrices of A against B's (same canonical name, or paired by the alignment), with
    the reasons why none could be compared."""
    if fa.tokens is None or fb.tokens is None:
        missing = [side for side, f in (("A", fa), ("B", fb)) if f.tokens is None]
        why = (
            "version-1 fingerprint"
            if any(f.version < 2 for f in (fa, fb))
            else "no tokenizer beside the weights"
        )
        return [], [f"token-keyed embedding rows: not available for {' and '.join(missing)} ({why})"]
    keyed_b = {canonical(t.name): t for t in fb.tensors if t.token_values is not None}
    paired = {p.a: p.b for p in pairs}
    out = []
    for ta in fa.tensors:
        if ta.token_values is None:
            continue
        tb = keyed_b.get(canonical(ta.name))
        if tb is None and paired.get(ta.name) is not None:
            other = fb[paired[ta.name]]
            tb = other if other.token_values is not None else None
        if tb is None or tb.token_columns != ta.token_columns or tb.token_values is None:
            continue
        ids_a, keys_a = fa.tokens.below(ta.shape[0])
        ids_b, keys_b = fb.tokens.below(tb.shape[0])
        ev = token_test(ta.name, ids_a, keys_a, ta.token_values, tb.name, ids_b, keys_b, tb.token_values)
        if ev is not None:
            out.append(ev)
    return out, ([] if out else ["token-keyed embedding rows: no token-keyed matrices with tokens in common"])


def _z_of_log10_p(lp: float) -> float:
    """The N(0, 1) z score whose upper tail has log10 probability ``lp``."""
    from scipy.special import ndtri_exp

    return float(-ndtri_exp(min(lp, -1e-300) * math.log(10)))


def compare_fingerprints(fa: Fingerprint, fb: Fingerprint) -> CompareResult:
    """Runs the tests of :func:`compare` on two fingerprints, at the power their contents allow.

    Tensors with equal content digests are paired first (bit-identical, whatever their names); the
    rest are aligned on their samples. Matrices whose rows are tokens are compared token by token when
    both fingerprints hold token-keyed rows and the vocabularies differ in size or order; matrices
    that look unrelated position by position get their norm spectra checked (supporting evidence
    only). The notes say which tests could not run, and why.
    """
    start = time.perf_counter()
    if fa.sample_size != fb.sample_size:
        raise ValueError(
            f"fingerprints sampled {fa.sample_size} and {fb.sample_size} values per tensor: their positions "
            "differ, so they cannot be compared; make both with the same sample size"
        )
    not_run: list[str] = []
    by_digest = _digest_pairs(fa, fb)
    done_a, done_b = {p.a for p in by_digest}, {p.b for p in by_digest}
    rest = align(
        [t.sketch() for t in fa.tensors if t.name not in done_a],
        [t.sketch() for t in fb.tensors if t.name not in done_b],
    )
    pairs = sorted([*by_digest, *rest.pairs], key=lambda p: (p.a, p.first_a))
    whole = [p for p in pairs if p.method in ("name", "content")]

    tokens, why = _token_evidence(fa, fb, pairs)
    not_run += why
    # Token rows stand in for the position-based test where the vocabularies differ in size or order.
    by_tokens = [
        ev
        for ev in tokens
        if ev.same_ids < 1.0 or fa[ev.a].shape != fb[ev.b].shape or ev.shared < min(ev.tokens_a, ev.tokens_b)
    ]
    replaced_a, replaced_b = {ev.a for ev in by_tokens}, {ev.b for ev in by_tokens}
    whole = [p for p in whole if p.a not in replaced_a and p.b not in replaced_b]
    used_a = {p.a for p in whole} | replaced_a
    used_b = {p.b for p in whole} | replaced_b
    left_a = tuple(sorted(t.name for t in fa.tensors if t.name not in used_a))
    left_b = tuple(sorted(t.name for t in fb.tensors if t.name not in used_b))
    token_pairs = [Pairing(ev.a, ev.b, "tokens", _z_of_log10_p(ev.log10_p)) for ev in by_tokens]
    alignment = Alignment(
        tuple(sorted([*whole, *token_pairs], key=lambda p: (p.a, p.first_a))),
        left_a,
        left_b,
        rest.candidates,
        rest.best_z,
    )

    identical: list[tuple[str, str]] = []
    digests_compared = 0
    evidence, diffs = [], []
    for pairing in alignment.pairs:
        ta, tb = fa[pairing.a], fb[pairing.b]
        if pairing.method == "tokens":
            # The shared tokens' rows are what is compared: counted as such, like resized rows.
            ev = next(e for e in by_tokens if e.a == pairing.a)
            shape = (ev.shared, math.prod(ta.shape[1:]))
            n = math.prod(shape)
            stats = PairStats.from_samples(
                replace(ta.stats, count=n), replace(tb.stats, count=n), ev.sample_a, ev.sample_b
            )
            evidence.append(assess(pairing, shape, ta.dtype, tb.dtype, stats, pairing.z))
            diffs.append(TensorDiff(pairing.a, shape, ta.dtype, tb.dtype, stats))
            continue
        stats = PairStats.from_samples(ta.stats, tb.stats, ta.sample, tb.sample)
        if ta.digest and tb.digest:
            digests_compared += 1
            if ta.digest == tb.digest and ta.dtype == tb.dtype:
                stats = replace(stats, equal=ta.stats.count)
                identical.append((ta.name, tb.name))
            elif stats.equal >= ta.stats.count:  # equal where sampled, different somewhere else
                stats = replace(stats, equal=max(ta.stats.count - 1, 0))
        z = sample_z(ta.centred(), tb.centred())
        evidence.append(assess(pairing, ta.shape, ta.dtype, tb.dtype, stats, z))
        diffs.append(TensorDiff(pairing.a, ta.shape, ta.dtype, tb.dtype, stats))
    missing = [side for side, f in (("A", fa), ("B", fb)) if not _has_digests(f)]
    if missing:
        not_run.append(
            f"tensor digests and norm spectra: not available for {' and '.join(missing)} (a version-1 "
            "fingerprint); bit-equality is known only at the sampled positions and from file hashes"
        )

    spectra = _spectra(fa, fb, evidence, not_run)
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
    vocab = (fa[by_tokens[0].a].shape[0], fb[by_tokens[0].b].shape[0]) if by_tokens else None
    verdict = decide(
        evidence, alignment, [t.name for t in fa.tensors], [t.name for t in fb.tensors], vocab, learnt
    )
    notes = [*verdict.notes, PRINT_LIMITS]
    if same_files:
        notes.append("every file of the two checkpoints has the same SHA-256")
    if identical:
        renamed = sum(canonical(a) != canonical(b) for a, b in identical)
        notes.append(
            f"{len(identical)} of {digests_compared} tensor pairs compared by digest are bit-identical "
            "(equal SHA-256 of their bytes)" + (f", {renamed} of them under another name" if renamed else "")
        )
    for ev in tokens:
        notes.append(
            f"token-keyed rows of {ev.a}: {ev.shared} shared tokens "
            f"({100 * ev.same_ids:.0f}% at the same row), column correlation {ev.diagonal_r:.3f}, "
            f"log10 p = {ev.log10_p:.1f}"
            + (
                ""
                if any(ev is x for x in by_tokens)
                else " (the position-based test was used: same vocabulary order)"
            )
        )
    notes += _spectra_notes(spectra)
    notes += [f"not run: {w}" for w in not_run]
    profiles = compare_profiles(
        [(t.name, t.stats) for t in fa.tensors], [(t.name, t.stats) for t in fb.tensors]
    )
    prints = PrintEvidence(tuple(identical), digests_compared, tuple(spectra), tuple(tokens), tuple(not_run))
    return CompareResult(
        replace(verdict, notes=tuple(notes)),
        tuple(evidence),
        alignment,
        diff,
        profiles=profiles,
        prints=prints,
    )


def _spectra(
    fa: Fingerprint, fb: Fingerprint, evidence: list[PairEvidence], not_run: list[str]
) -> list[SpectrumCheck]:
    """Norm spectra of the informative matrices that look unrelated position by position."""
    unrelated = [e for e in evidence if e.informative and not e.related and e.pairing.method != "tokens"]
    if not unrelated:
        return []
    sigma = _sigma(evidence)
    out = []
    for e in unrelated:
        ta, tb = fa[e.pairing.a], fb[e.pairing.b]
        if ta.row_norms is None or ta.col_norms is None or tb.row_norms is None or tb.col_norms is None:
            continue
        if ta.shape != tb.shape:
            continue
        out.append(
            check_spectra(
                ta.name, tb.name, ta.shape, ta.row_norms, ta.col_norms, tb.row_norms, tb.col_norms, sigma
            )
        )
    if out and not math.isfinite(sigma):
        not_run.append(
            "norm spectra judged against noise: no related tensor pair to take the noise level from "
            "(spectra reported as relative deviations only)"
        )
    return out


def _spectra_notes(spectra: list[SpectrumCheck]) -> list[str]:
    """One note on the norm spectra of the matrices that look unrelated position by position."""
    if not spectra:
        return []
    judged = [c for c in spectra if c.consistent is not None]
    if not judged:
        worst = max(max(c.rows_dev, c.cols_dev) for c in spectra)
        return [
            f"{len(spectra)} learnt matrices look unrelated element by element; their sorted row and column "
            f"norms differ from A's by up to {100 * worst:.1f}% of the median norm (no noise level to judge "
            "this against; similar spectra are common in independent models and prove nothing)"
        ]
    ok = [c for c in judged if c.consistent]
    layers = sorted({i for c in ok if (i := layer_index(c.a)) is not None})
    sigma = judged[0].sigma
    out = []
    if ok:
        out.append(
            f"{len(ok)} of {len(judged)} matrices that look unrelated element by element"
            + (f" (layers {layers})" if layers else "")
            + f" have sorted row and column norms that agree with A's within what noise of σ = {sigma:.3g} "
            "explains: consistent with hidden units permuted (supporting evidence only; independent "
            "models can have matching spectra too)"
        )
    if len(ok) < len(judged):
        out.append(
            f"{len(judged) - len(ok)} matrices that look unrelated element by element have norm spectra that "
            f"differ from A's beyond noise of σ = {sigma:.3g}: changed, not merely permuted"
        )
    return out


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
