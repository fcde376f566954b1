"""The tests of :func:`modelkin.compare` run on two fingerprints, at the power their contents allow."""

from __future__ import annotations

import math
import os
import time
from dataclasses import replace

import numpy as np

from .._types import Method
from ..align import Alignment, Pairing, align, sample_z
from ..diff import DiffResult, TensorDiff, TensorSummary
from ..evidence.profiles import compare_profiles
from ..evidence.spectra import SpectrumCheck, check_spectra
from ..evidence.tokens import TokenEvidence, token_test
from ..evidence.weights import PairEvidence, assess, learnt_matrix, log10_sf
from ..fingerprint import Fingerprint, TensorPrint, is_fingerprint
from ..fingerprint import fingerprint as make_print
from ..fingerprint import load as load_print
from ..names import canonical, layer_index
from ..progress import ProgressArg
from ..stats import Moments, PairStats, ValueStats
from ..verdict import decide
from .result import CompareResult, PrintEvidence

__all__ = ["PRINT_LIMITS", "compare_fingerprints", "print_of", "screen"]


def print_of(
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


def screen(a: Fingerprint, b: Fingerprint) -> float | None:
    """A cheap first look (what :meth:`modelkin.Registry.identify` screens entries with): the adjusted
    log10 p of the most related name-aligned matrix pair; None when no name is shared
    (then only the full comparison, which aligns by content, can tell)."""
    if a.sample_size != b.sample_size:
        return None
    by_name = {canonical(t.name): t for t in b.tensors}
    zs = []
    for t in a.tensors:
        o = by_name.get(canonical(t.name))
        if o is None or o.shape != t.shape or not learnt_matrix(t.name, t.shape):
            continue
        z = sample_z(t.centred(), o.centred())
        if math.isfinite(z):
            zs.append(z)
    if not zs:
        return None
    return min(0.0, log10_sf(max(zs)) + math.log10(len(zs)))
