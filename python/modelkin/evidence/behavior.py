"""Behavioural evidence: do two models make the *same mistakes* more often than chance?

Input, per model, a JSONL or CSV file of per-item predictions (``id``, ``prediction``), scored
against a gold file (``id``, ``answer``), or per-item correctness given directly (``id``, ``correct``
as 0/1/true/false). For each pair of models, on the items common to all files:

- accuracy of each, agreement of their answers, errors of each and the errors they share, and the
  shared *identical* wrong answers (a copied model repeats its parent's wrong answers word for word);
- the shared errors expected if the two erred independently (``e_a · e_b / n``) and the one-sided
  hypergeometric p-value of the observed count, reported as log10 p (``logsf``, so 1e-300 is not 0);
- error consistency κ (Geirhos et al. 2020): ``κ = (c_obs − c_exp) / (1 − c_exp)`` with ``c_obs``
  the share of items on which both are right or both wrong and ``c_exp = p_a p_b + (1 − p_a)(1 − p_b)``
  (``p`` = accuracy), with a percentile bootstrap 95% interval (items resampled, seeded; Klein et al.
  2025 on why intervals matter for κ).

The hypergeometric null assumes every item is equally hard. It is not: independent models share
errors on hard items, so against it *every* pair of real models looks related. With three or more
models a **panel null** is used instead: a pair is flagged only when its κ stands out from the κ of
the other pairs (see :data:`PANEL_RULE`). Like the metadata line, behaviour is supporting evidence:
it never decides a weight verdict on its own.

Answers are compared as text after stripping surrounding whitespace (JSON numbers and booleans as
their JSON text, ``1.0`` as ``1``); a gold answer may be a JSON list of accepted answers. An empty
or null prediction is an abstention: wrong, and never counted as an identical wrong answer.

Reading the answer files is :mod:`modelkin.answers`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from .._util import json_safe
from ..answers import ModelAnswers, PathArg, load_answers, load_gold

__all__ = [
    "BEHAVIOR_SCHEMA",
    "PANEL_MIN_Z",
    "PANEL_RULE",
    "BehaviorResult",
    "ModelSummary",
    "PairBehavior",
    "bootstrap_kappa",
    "compare_behavior",
    "error_consistency",
    "pair_behavior",
    "shared_error_log10_p",
]


#: Version tag of :meth:`BehaviorResult.to_dict`.
BEHAVIOR_SCHEMA = "modelkin.behavior/1"

#: Robust z above which a pair's κ stands out from the panel.
PANEL_MIN_Z = 3.5

#: The panel rule, stated in reports.
PANEL_RULE = (
    "a pair is flagged when its κ exceeds the median κ of the other pairs by more than "
    f"{PANEL_MIN_Z:g} robust standard deviations, z = (κ − median) / √((1.4826·MAD)² + se²), where MAD is "
    "the median absolute deviation of the other pairs' κ and se the pair's bootstrap standard error "
    "(95% interval width / 3.92), and when it shares more errors than independence predicts"
)


def error_consistency(correct_a: npt.ArrayLike, correct_b: npt.ArrayLike) -> float:
    """Error consistency κ of two correctness vectors (Geirhos et al. 2020); NaN when undefined
    (``c_exp = 1``: one model right everywhere and the other too, or wrong everywhere)."""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    n = a.size
    if n == 0 or b.size != n:
        raise ValueError("error_consistency needs two non-empty vectors of equal length")
    ea, eb = int(n - a.sum()), int(n - b.sum())
    s = int(np.count_nonzero(~a & ~b))
    return float(_kappa(np.float64(n), np.float64(ea), np.float64(eb), np.float64(s)))


def _kappa(
    n: npt.ArrayLike, ea: npt.ArrayLike, eb: npt.ArrayLike, shared: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """κ from counts (vectorised): n items, errors of each, shared errors."""
    n_, ea_, eb_, s_ = (np.asarray(x, dtype=np.float64) for x in (n, ea, eb, shared))
    pa, pb = 1 - ea_ / n_, 1 - eb_ / n_
    c_obs = (n_ - ea_ - eb_ + 2 * s_) / n_
    c_exp = pa * pb + (1 - pa) * (1 - pb)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = (c_obs - c_exp) / (1 - c_exp)
    return np.where(1 - c_exp > 1e-12, k, np.nan)


def shared_error_log10_p(n: int, errors_a: int, errors_b: int, shared: int) -> float:
    """log10 P(S ≥ shared) for S ~ Hypergeometric(n items, errors_a of them A's errors, errors_b
    drawn): the one-sided p-value of the shared-error count if B's errors fell on items
    independently of A's, every item being equally likely. Accurate far into the tail."""
    from scipy.special import logsumexp
    from scipy.stats import hypergeom

    if not 0 <= shared <= min(errors_a, errors_b) or max(errors_a, errors_b) > n:
        raise ValueError(f"impossible counts: n={n}, errors {errors_a} and {errors_b}, shared {shared}")
    if shared == 0:
        return 0.0
    lp = float(hypergeom.logsf(shared - 1, n, errors_a, errors_b))
    if not math.isfinite(lp):  # fall back to summing the tail's log-pmf
        k = np.arange(shared, min(errors_a, errors_b) + 1)
        lp = float(logsumexp(hypergeom.logpmf(k, n, errors_a, errors_b)))
    return min(lp, 0.0) / math.log(10)


def _weights(rng: np.random.Generator, n: int, count: int) -> npt.NDArray[np.float64]:
    """``count`` bootstrap resamples of n items, as how many times each item was drawn."""
    # One call per resample, so the draws do not depend on how resamples are batched.
    idx = np.stack([rng.integers(0, n, size=n) for _ in range(count)])
    offsets = (np.arange(count) * n)[:, None]
    return np.bincount((idx + offsets).ravel(), minlength=count * n).reshape(count, n).astype(np.float64)


def bootstrap_kappa(
    errors: npt.ArrayLike, n_boot: int = 1000, seed: int = 0, batch: int = 256
) -> npt.NDArray[np.float64]:
    """Bootstrap replicates of κ for every pair of models: items (rows of the ``(n, m)`` boolean error
    matrix) resampled with replacement, the same resamples for every pair.

    Returns an ``(n_boot, m, m)`` array (NaN where κ is undefined in a replicate). Deterministic for a
    given seed, whatever the batch size.
    """
    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] == 0:
        raise ValueError("bootstrap_kappa needs an (items, models) error matrix with at least one item")
    n, m = e.shape
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, m, m))
    batch = max(1, min(batch, (1 << 23) // (n * m)))  # bound the (batch, n, m) temporary to 64 MB
    for lo in range(0, n_boot, batch):
        hi = min(lo + batch, n_boot)
        w = _weights(rng, n, hi - lo)
        err = w @ e  # (b, m) errors per model
        shared = np.matmul((w[:, :, None] * e[None]).transpose(0, 2, 1), e)  # (b, m, m)
        out[lo:hi] = _kappa(n, err[:, :, None], err[:, None, :], shared)
    return out


def _ci(values: npt.NDArray[np.float64]) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return (math.nan, math.nan)
    lo, hi = np.percentile(v, [2.5, 97.5])
    return (float(lo), float(hi))


@dataclass(frozen=True)
class PairBehavior:
    """How two models' answers relate on the items they share."""

    a: str
    b: str
    n: int  # items compared
    accuracy_a: float
    accuracy_b: float
    agreement: float | None  # share of items with the same answer (None: no predictions to compare)
    correctness_agreement: float  # c_obs: share of items both right or both wrong
    errors_a: int
    errors_b: int
    shared_errors: int
    shared_identical_wrong: int | None  # shared errors with the same wrong answer (None: no predictions)
    expected_shared_errors: float  # e_a · e_b / n, if errors fell independently on equally hard items
    kappa: float  # error consistency κ
    kappa_ci: tuple[float, float]  # bootstrap 95% interval (NaN without bootstrap)
    log10_p: float  # one-sided hypergeometric p of the shared errors, log10
    panel_z: float | None = None  # robust z of κ against the other pairs (≥ 3 models)
    flagged: bool | None = None  # stands out from the panel (None: no panel)

    @property
    def excess_shared_errors(self) -> float:
        """Shared errors beyond what independence predicts, as a ratio (1 = as expected)."""
        e = self.expected_shared_errors
        return self.shared_errors / e if e > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        out: dict[str, Any] = json_safe(
            {
                "a": self.a,
                "b": self.b,
                "n": self.n,
                "accuracy_a": self.accuracy_a,
                "accuracy_b": self.accuracy_b,
                "agreement": self.agreement,
                "correctness_agreement": self.correctness_agreement,
                "errors_a": self.errors_a,
                "errors_b": self.errors_b,
                "shared_errors": self.shared_errors,
                "shared_identical_wrong": self.shared_identical_wrong,
                "expected_shared_errors": self.expected_shared_errors,
                "excess_shared_errors": self.excess_shared_errors,
                "kappa": self.kappa,
                "kappa_ci": list(self.kappa_ci),
                "log10_p": self.log10_p,
                "panel_z": self.panel_z,
                "flagged": self.flagged,
            }
        )
        return out


@dataclass(frozen=True)
class ModelSummary:
    """One model's file and how many of its items were compared."""

    name: str
    path: str
    items: int  # items in its file
    compared: int  # items common to every file
    accuracy: float  # on the compared items

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        out: dict[str, Any] = json_safe(
            {
                "name": self.name,
                "path": self.path,
                "items": self.items,
                "compared": self.compared,
                "accuracy": self.accuracy,
            }
        )
        return out


@dataclass(frozen=True)
class BehaviorResult:
    """Pairwise behavioural evidence for two or more models on their common items."""

    models: tuple[ModelSummary, ...]
    n_items: int
    pairs: tuple[PairBehavior, ...]  # (0, 1), (0, 2), …, (1, 2), … in model order
    seed: int
    bootstrap: int
    panel: bool  # whether a panel null was applied (≥ 3 models)
    notes: tuple[str, ...] = ()

    @property
    def flagged(self) -> tuple[PairBehavior, ...]:
        """The pairs that stand out from the panel."""
        return tuple(p for p in self.pairs if p.flagged)

    def pair(self, a: str, b: str) -> PairBehavior:
        """The pair of the two named models (either order)."""
        for p in self.pairs:
            if {p.a, p.b} == {a, b}:
                return p
        raise KeyError((a, b))

    def kappa_matrix(self) -> npt.NDArray[np.float64]:
        """κ of every pair as a symmetric (m, m) matrix, 1 on the diagonal."""
        names = [m.name for m in self.models]
        k = np.eye(len(names))
        for p in self.pairs:
            i, j = names.index(p.a), names.index(p.b)
            k[i, j] = k[j, i] = p.kappa
        return k

    @property
    def sentence(self) -> str:
        """The finding in one sentence."""
        if self.panel:
            if not self.flagged:
                return (
                    f"No pair of the {len(self.models)} models shares errors beyond what the panel shows "
                    "for the other pairs."
                )
            names = "; ".join(
                f"{p.a} and {p.b} (κ = {p.kappa:.2f}, z = {p.panel_z:.1f})" for p in self.flagged
            )
            return f"Stand out from the panel: {names}."
        (p,) = self.pairs
        return (
            f"{p.a} and {p.b} share {p.shared_errors} errors where {p.expected_shared_errors:.1f} are "
            f"expected if they erred independently (κ = {p.kappa:.2f}, log10 p = {p.log10_p:.1f}); "
            "without a panel of other models this ignores item difficulty, which makes independent models "
            "share errors too."
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with a versioned schema tag (``"schema": "modelkin.behavior/1"``)."""
        out: dict[str, Any] = json_safe(
            {
                "schema": BEHAVIOR_SCHEMA,
                "n_items": self.n_items,
                "seed": self.seed,
                "bootstrap": self.bootstrap,
                "panel": self.panel,
                "panel_rule": PANEL_RULE if self.panel else None,
                "sentence": self.sentence,
                "models": [m.to_dict() for m in self.models],
                "pairs": [p.to_dict() for p in self.pairs],
                "kappa_matrix": self.kappa_matrix().tolist(),
                "notes": list(self.notes),
            }
        )
        return out


def pair_behavior(
    correct_a: npt.ArrayLike,
    correct_b: npt.ArrayLike,
    predictions_a: Sequence[str | None] | None = None,
    predictions_b: Sequence[str | None] | None = None,
    *,
    names: tuple[str, str] = ("A", "B"),
    n_boot: int = 1000,
    seed: int = 0,
) -> PairBehavior:
    """The pairwise statistics of two aligned correctness vectors (and predictions, where given)."""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError("pair_behavior needs two non-empty correctness vectors of equal length")
    preds = None
    if predictions_a is not None and predictions_b is not None:
        if not len(predictions_a) == len(predictions_b) == a.size:
            raise ValueError("predictions must be as long as the correctness vectors")
        preds = (list(predictions_a), list(predictions_b))
    errors = np.stack([~a, ~b], axis=1)
    boot = bootstrap_kappa(errors, n_boot, seed)[:, 0, 1] if n_boot > 0 else np.empty(0)
    return _pair(names, errors, preds, boot)


def _pair(
    names: tuple[str, str],
    errors: npt.NDArray[np.bool_],
    preds: tuple[list[str | None], list[str | None]] | None,
    boot: npt.NDArray[np.float64],
) -> PairBehavior:
    ea_v, eb_v = errors[:, 0], errors[:, 1]
    n = int(errors.shape[0])
    ea, eb = int(ea_v.sum()), int(eb_v.sum())
    shared_v = ea_v & eb_v
    s = int(shared_v.sum())
    agreement = identical = None
    if preds is not None:
        pa, pb = preds
        same = np.array([x is not None and x == y for x, y in zip(pa, pb)], dtype=bool)
        agreement = float(same.mean())
        identical = int(np.count_nonzero(same & shared_v))
    return PairBehavior(
        a=names[0],
        b=names[1],
        n=n,
        accuracy_a=1 - ea / n,
        accuracy_b=1 - eb / n,
        agreement=agreement,
        correctness_agreement=(n - ea - eb + 2 * s) / n,
        errors_a=ea,
        errors_b=eb,
        shared_errors=s,
        shared_identical_wrong=identical,
        expected_shared_errors=ea * eb / n,
        kappa=float(_kappa(n, ea, eb, s)),
        kappa_ci=_ci(boot),
        log10_p=shared_error_log10_p(n, ea, eb, s),
    )


def _robust_z(kappa: float, others: Sequence[float], ci: tuple[float, float]) -> float:
    """κ against the median/MAD of the other pairs' κ, widened by the pair's own sampling error."""
    o = np.asarray([k for k in others if math.isfinite(k)])
    if o.size < 2 or not math.isfinite(kappa):
        return math.nan
    med = float(np.median(o))
    spread = 1.4826 * float(np.median(np.abs(o - med)))
    se = (ci[1] - ci[0]) / 3.92 if all(map(math.isfinite, ci)) else 0.0
    scale = math.hypot(spread, se)
    if scale == 0:
        return math.inf if kappa > med else (-math.inf if kappa < med else 0.0)
    return (kappa - med) / scale


def _unique_names(answers: Sequence[ModelAnswers]) -> list[str]:
    names = [a.name for a in answers]
    if len(set(names)) == len(names):
        return names
    return (
        [a.path for a in answers]
        if len({a.path for a in answers}) == len(answers)
        else [f"{a.name}#{i + 1}" for i, a in enumerate(answers)]
    )


def compare_behavior(
    models: Sequence[ModelAnswers | PathArg],
    gold: Mapping[str, frozenset[str]] | PathArg | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> BehaviorResult:
    """Pairwise behavioural evidence for two or more models (files or :class:`ModelAnswers`).

    Models with predictions only need ``gold`` (a file or :func:`load_gold`'s mapping); models with
    ``correct`` use it directly (their predictions, if any, still count for identical wrong answers).
    Items are those common to every model (and to the gold file where it is used). With three or more
    models each pair's κ is also judged against the panel (:data:`PANEL_RULE`).
    """
    if len(models) < 2:
        raise ValueError("behavioural comparison needs at least two models")
    if n_boot < 0:
        raise ValueError(f"bootstrap resamples must be ≥ 0, not {n_boot}")
    answers = [m if isinstance(m, ModelAnswers) else load_answers(m) for m in models]
    gold_map = load_gold(gold) if gold is not None and not isinstance(gold, Mapping) else gold
    needs_gold = [a for a in answers if a.correct is None]
    if needs_gold and gold_map is None:
        raise ValueError(
            f"{needs_gold[0].path}: has predictions but no 'correct' field; give the gold answers (--gold)"
        )
    common = set.intersection(*(set(a.ids) for a in answers))
    notes = []
    if needs_gold and gold_map is not None:
        scored = common & set(gold_map)
        if len(scored) < len(common):
            notes.append(f"{len(common) - len(scored)} common item(s) have no gold answer and are left out")
        common = scored
    if not common:
        raise ValueError("no item is common to all files (ids are compared as text)")
    items = sorted(common)
    names = _unique_names(answers)
    correct = np.empty((len(items), len(answers)), dtype=bool)
    preds: list[list[str | None] | None] = []
    for j, ans in enumerate(answers):
        given = ans.predictions
        preds.append([given[i] for i in items] if given is not None else None)
        if ans.correct is not None:
            c = ans.correct
            correct[:, j] = [c[i] for i in items]
        else:
            assert given is not None and gold_map is not None
            correct[:, j] = [given[i] is not None and given[i] in gold_map[i] for i in items]
    for ans, name in zip(answers, names):
        dropped = len(ans.ids) - len(items)
        if dropped:
            notes.append(f"{name}: {dropped} of {len(ans.ids)} item(s) not common to all files, left out")
    errors = ~correct
    m = len(answers)
    boot = bootstrap_kappa(errors, n_boot, seed) if n_boot > 0 else np.empty((0, m, m))
    pairs = []
    for i in range(m):
        for j in range(i + 1, m):
            pi, pj = preds[i], preds[j]
            pp = (pi, pj) if pi is not None and pj is not None else None
            pairs.append(_pair((names[i], names[j]), errors[:, [i, j]], pp, boot[:, i, j]))
    panel = m >= 3
    if panel:
        kappas = [p.kappa for p in pairs]
        judged = []
        for k, p in enumerate(pairs):
            z = _robust_z(p.kappa, kappas[:k] + kappas[k + 1 :], p.kappa_ci)
            flag = bool(z > PANEL_MIN_Z and p.shared_errors > p.expected_shared_errors)  # NaN: False
            judged.append(replace(p, panel_z=z, flagged=flag))
        pairs = judged
        if len(pairs) < 6:
            notes.append(
                f"the panel has only {len(pairs)} pairs ({m} models): its spread is rough; "
                "more reference models make the null sharper"
            )
    summaries = tuple(
        ModelSummary(name, ans.path, len(ans.ids), len(items), float(correct[:, j].mean()))
        for j, (name, ans) in enumerate(zip(names, answers))
    )
    return BehaviorResult(summaries, len(items), tuple(pairs), seed, n_boot, panel, tuple(notes))
