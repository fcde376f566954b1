"""The model-level verdict: how B relates to A, from the per-tensor evidence.

Kinship is decided on informative tensors only (learnt matrices; not norms, biases or fixed buffers,
which can be equal in unrelated models): the smallest per-tensor p-value, Bonferroni-adjusted for the
number of tensors tested, which stays valid however the tensors depend on each other. Related models
are then told apart by the shape of d = b − a across tensors: all equal; equal to a rounding; bounded
and flat-topped (quantized); Gaussian with one σ everywhere (noised); proportional to a (scaled);
anything else is training (fine-tune). Dropped layers, renamed tensors and a changed vocabulary are
reported alongside.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ._types import Relation
from .align import Alignment
from .evidence.weights import PairEvidence, log10_sf
from .names import layer_index

__all__ = ["KIN_LOG10_P", "RELATIONS", "WORDS", "Verdict", "Words", "decide"]

#: Model-level threshold: adjusted log10 p below this calls the models kin.
KIN_LOG10_P = -6.0


@dataclass(frozen=True)
class Words:
    """How a verdict of one relation is worded."""

    text: str  # B's relation to A
    reverse: str | None = None  # the same when the weights say A is the copy (direction "b->a")
    detail: Callable[[Verdict], str | None] = lambda v: None  # the relation's own number, if any


def _sigma_words(v: Verdict) -> str | None:
    if v.sigma is None:
        return None
    lo, hi = v.sigma_ci or (math.nan, math.nan)
    return f"σ = {v.sigma:.3g} (95% CI {lo:.3g}–{hi:.3g})"


#: Every relation, most specific first, with its words. A new relation is one entry here, one rule in
#: ``_RULES`` (unless it is decided before them), ``_types.Relation`` and the schema's enum.
WORDS: dict[Relation, Words] = {
    "identical": Words("B is identical to A"),
    "cast_copy": Words(
        "B is A cast to another number format",
        "A is B cast to another number format",
        lambda v: f"to {v.cast_to}" if v.cast_to else None,
    ),
    "quantized_copy": Words("B is a quantized copy of A", "A is a quantized copy of B"),
    "noised_copy": Words(
        "B is a copy of A with Gaussian noise added",
        "A is a copy of B with Gaussian noise added",
        _sigma_words,
    ),
    "scaled_copy": Words(
        "B is A multiplied by a constant",
        detail=lambda v: f"factor {v.scale:.6g}" if v.scale is not None else None,
    ),
    "partial_copy": Words("B is an unchanged copy of part of A"),
    "fine_tune": Words(
        "B and A share their weights' origin: one is a fine-tune (continued training) of the other"
    ),
    "independent": Words("B and A are independent: no tensor is more similar than chance"),
    "inconclusive": Words("the checkpoints have no learnt matrices of matching shape to compare"),
}

RELATIONS: tuple[Relation, ...] = tuple(WORDS)


@dataclass(frozen=True)
class Verdict:
    """How B relates to A, with the numbers behind it."""

    relation: Relation
    log10_p: float  # adjusted log10 p of kinship (very negative: kin; near 0: no evidence)
    confidence: float  # kin: 1 − p; independent: the adjusted p of the strongest kinship signal
    sigma: float | None = None  # noised copy: σ of the added noise
    sigma_ci: tuple[float, float] | None = None
    scale: float | None = None  # scaled copy: the factor
    cast_to: str | None = None  # cast copy: the format
    # fine-tunes: "a->b", "b->a" or "shared-ancestor"; cast and quantized copies: "b->a" when A is the copy
    direction: str | None = None
    renamed: int = 0  # aligned pairs whose names differ
    layers_dropped: tuple[int, ...] = ()  # A's layers with no counterpart in B
    layers_added: tuple[int, ...] = ()
    vocab_rows: tuple[int, int] | None = None  # (rows in A, rows in B) of a resized or reordered embedding
    permuted_layers: tuple[int, ...] = ()  # layers whose MLP hidden units B holds in another order
    shared: tuple[str, ...] = ()  # where B keeps A's weights: "layer 3", "model.embed_tokens.weight", …
    replaced: tuple[str, ...] = ()  # where B's learnt matrices are unrelated to A's
    shared_fraction: float = 0.0  # share of A's learnt-matrix parameters found related in B
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def related(self) -> bool:
        """Whether the verdict says the two share weights."""
        return self.relation not in ("independent", "inconclusive")

    @property
    def sentence(self) -> str:
        """The verdict in one sentence."""
        words = WORDS[self.relation]
        reversed_words = self.direction == "b->a" and words.reverse is not None
        s = words.reverse if reversed_words and words.reverse else words.text
        extra = [d] if (d := words.detail(self)) is not None else []
        if self.direction == "b->a" and not reversed_words:
            extra.append("the weights suggest A was derived from B")
        elif self.direction == "shared-ancestor":
            extra.append("direction not determined: they may be siblings of one ancestor")
        if self.renamed:
            extra.append(f"{self.renamed} tensors renamed")
        if self.layers_dropped:
            extra.append(f"layers {list(self.layers_dropped)} of A dropped")
        if self.layers_added:
            extra.append(f"layers {list(self.layers_added)} of B not in A")
        if self.vocab_rows and self.vocab_rows[0] == self.vocab_rows[1]:
            extra.append(f"vocabulary reordered ({self.vocab_rows[0]} rows)")
        elif self.vocab_rows:
            extra.append(f"vocabulary resized {self.vocab_rows[0]} → {self.vocab_rows[1]} rows")
        if self.permuted_layers:
            extra.append(f"MLP hidden units permuted in layers {list(self.permuted_layers)}")
        if self.related and self.replaced:
            extra.append(f"shared: {_short(self.shared)}; replaced: {_short(self.replaced)}")
        if self.related:
            extra.append(f"log10 p = {self.log10_p:.1f}")
        return s + (" (" + "; ".join(extra) + ")" if extra else "") + "."

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        return {
            "relation": self.relation,
            "related": self.related,
            "sentence": self.sentence,
            "log10_p": self.log10_p,
            "confidence": self.confidence,
            "sigma": self.sigma,
            "sigma_ci": list(self.sigma_ci) if self.sigma_ci else None,
            "scale": self.scale,
            "cast_to": self.cast_to,
            "direction": self.direction,
            "renamed": self.renamed,
            "layers_dropped": list(self.layers_dropped),
            "layers_added": list(self.layers_added),
            "vocab_rows": list(self.vocab_rows) if self.vocab_rows else None,
            "permuted_layers": list(self.permuted_layers),
            "shared": list(self.shared),
            "replaced": list(self.replaced),
            "shared_fraction": self.shared_fraction,
            "notes": list(self.notes),
        }


def _short(groups: tuple[str, ...], most: int = 6) -> str:
    return ", ".join(groups[:most]) + (f" and {len(groups) - most} more" if len(groups) > most else "")


def _localise(informative: list[PairEvidence]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Groups (a layer, or a tensor outside the layers) whose learnt matrices are all related, and
    groups whose matrices are all unrelated."""
    groups: dict[str, list[bool]] = {}
    for e in informative:
        layer = layer_index(e.pairing.a)
        groups.setdefault(e.pairing.a if layer is None else f"layer {layer}", []).append(e.related)

    def order(g: str) -> tuple[int, int, str]:
        return (0, int(g.split()[1]), "") if g.startswith("layer ") else (1, 0, g)

    shared = tuple(sorted((g for g, r in groups.items() if all(r)), key=order))
    replaced = tuple(sorted((g for g, r in groups.items() if not any(r)), key=order))
    return shared, replaced


def _layers(names: list[str], all_names: list[str]) -> tuple[int, ...]:
    """Layers all of whose tensors are among ``names``."""
    left = Counter(layer_index(n) for n in names)
    total = Counter(layer_index(n) for n in all_names)
    return tuple(sorted(k for k, v in left.items() if k is not None and v == total[k]))


def _direction(ev: list[PairEvidence]) -> str:
    """Training spreads weights and fattens their tails: the side with more of both is the child."""
    votes = []
    for e in ev:
        sa, sb = e.stats.a_on_pair.std, e.stats.b_on_pair.std
        if sa > 0 and sb > 0:
            votes.append(math.log(sb / sa))
    if not votes:
        return "shared-ancestor"
    med = float(np.median(votes))
    agree = float(np.mean(np.sign(votes) == np.sign(med))) if med != 0 else 0.0
    if abs(med) > 1e-4 and agree >= 0.75:
        return "a->b" if med > 0 else "b->a"
    return "shared-ancestor"


def _copy_side(ev: list[PairEvidence], kind: str) -> str | None:
    """ "b->a" when most of the parameters read as ``kind`` have A as the rounded copy, else None."""
    sides: Counter[str] = Counter()
    for e in ev:
        if e.kind == kind:
            sides[e.derived] += e.numel
    return "b->a" if sides["a"] > sides["b"] else None


def decide(
    evidence: list[PairEvidence],
    alignment: Alignment,
    names_a: list[str],
    names_b: list[str],
    vocab_rows: tuple[int, int] | None = None,
    learnt_params_a: int | None = None,
) -> Verdict:
    """The verdict for B against A (see the module docstring).

    ``vocab_rows`` gives the row counts of an embedding whose rows were compared only in part;
    ``learnt_params_a`` the parameters in A's learnt matrices, aligned or not (the base of
    ``shared_fraction``).
    """
    informative = [e for e in evidence if e.informative]
    renamed = alignment.renamed
    aligned_layers = any(layer_index(p.a) is not None for p in alignment.pairs)
    dropped = _layers(list(alignment.only_a), names_a) if aligned_layers else ()
    added = _layers(list(alignment.only_b), names_b) if aligned_layers else ()
    permuted = tuple(sorted({layer_index(e.pairing.a) or 0 for e in evidence if e.kind == "permuted"}))
    common: dict[str, Any] = {
        "permuted_layers": permuted,
        "renamed": renamed,
        "layers_dropped": dropped,
        "layers_added": added,
        "vocab_rows": vocab_rows,
    }
    if not informative:
        if alignment.candidates and math.isfinite(alignment.best_z):
            # Nothing paired up by name, and no content match among the equal-shaped matrices:
            # the search itself is the test.
            adj = min(0.0, log10_sf(alignment.best_z) + math.log10(alignment.candidates))
            if adj <= KIN_LOG10_P:
                # A content match beyond chance yet too weak to pair by: raw sample correlations of
                # matrices with rows tied to tokens run high in models trained on similar text, so
                # this is no proof of kinship, and no proof of independence either.
                note = (
                    "no tensor names in common; the closest equal-shaped matrices correlate beyond chance "
                    f"(z = {alignment.best_z:.1f} over {alignment.candidates} candidate pairs) but too "
                    "weakly to pair them, which models trained on similar data can show without being related"
                )
                return Verdict("inconclusive", adj, 0.0, notes=(note,), **common)
            note = (
                f"no tensor names in common, and none of {alignment.candidates} equal-shaped matrix pairs "
                f"is more similar than chance (best z = {alignment.best_z:.1f})"
            )
            return Verdict("independent", adj, 10**adj, notes=(note,), **common)
        return Verdict("inconclusive", 0.0, 0.0, notes=("no learnt matrices could be aligned",), **common)

    k = len(informative)
    best = min(e.log10_p for e in informative)
    adjusted = min(0.0, best + math.log10(k))
    params = max(sum(e.numel for e in informative), learnt_params_a or 0)
    rel = [e for e in informative if e.related]
    shared = sum(e.numel for e in rel) / params if params else 0.0
    notes: list[str] = []
    fixed_equal = [e.pairing.a for e in evidence if not e.informative and e.kind == "identical"]
    if adjusted > KIN_LOG10_P:
        if fixed_equal:
            notes.append(
                f"{len(fixed_equal)} small or fixed tensors are equal in both (e.g. {fixed_equal[0]}); "
                "such tensors are equal in unrelated models too and are not counted"
            )
        return Verdict(
            "independent", adjusted, 10**adjusted, shared_fraction=shared, notes=tuple(notes), **common
        )

    confidence = 1.0 - 10**adjusted
    common["shared"], common["replaced"] = _localise(informative)
    kinds: Counter[str] = Counter()
    for e in rel:
        if e.kind != "permuted":  # their d, taken before unpermuting, says nothing about the change
            kinds[e.kind] += e.numel
    if shared < 0.5:
        notes.append(f"only {shared:.0%} of A's learnt parameters are shared: B keeps part of A")

    def verdict(relation: Relation, **kw: Any) -> Verdict:
        return Verdict(
            relation, adjusted, confidence, shared_fraction=shared, notes=tuple(notes), **common, **kw
        )

    case = _Case(evidence, rel, kinds, not alignment.only_a and not alignment.only_b and vocab_rows is None)
    for relation, rule in _RULES:
        found = rule(case)
        if found is not None:
            notes.extend(found.pop("notes", ()))
            return verdict(relation, **found)
    raise AssertionError("the last rule (fine_tune) always applies")


@dataclass(frozen=True)
class _Case:
    """What the rules for related models look at."""

    evidence: list[PairEvidence]  # every aligned pair
    related: list[PairEvidence]  # the informative pairs found related
    kinds: Counter[str]  # parameters per kind among ``related`` (units put back in place left out)
    whole: bool  # every tensor paired, and whole

    def share(self, kind: str) -> bool:
        """Whether ``kind`` holds at least 80% of the related parameters."""
        return self.kinds.get(kind, 0) >= 0.8 * sum(self.kinds.values())


#: A rule: the Verdict fields (and any ``notes`` to add) when its relation applies, else None.
_Rule = Callable[[_Case], Optional[dict[str, Any]]]


def _lossy_cast(c: _Case) -> dict[str, Any] | None:
    main = set(c.kinds)
    if not (main <= {"identical", "cast"} and "cast" in main):
        return None
    casts = Counter(e.cast_to for e in c.related if e.cast_to)
    return {"cast_to": casts.most_common(1)[0][0], "direction": _copy_side(c.related, "cast")}


def _lossless_cast(c: _Case) -> dict[str, Any] | None:
    if not set(c.kinds) <= {"identical"}:
        return None
    dtypes = {(e.dtype_a, e.dtype_b) for e in c.evidence}
    if not any(a != b for a, b in dtypes):  # equal values in another format: a lossless cast
        return None
    return {"cast_to": Counter(e.dtype_b for e in c.evidence).most_common(1)[0][0]}


def _identical(c: _Case) -> dict[str, Any] | None:
    # Units put back in place (kind "permuted") count as unchanged.
    unchanged = set(c.kinds) <= {"identical"}
    return (
        {} if unchanged and c.whole and all(e.kind in ("identical", "permuted") for e in c.evidence) else None
    )


def _partial(c: _Case) -> dict[str, Any] | None:
    # Whatever B shares with A it holds unchanged; the rest is missing or its own.
    return {} if set(c.kinds) <= {"identical"} else None


def _quantized(c: _Case) -> dict[str, Any] | None:
    return {"direction": _copy_side(c.related, "quantized")} if c.share("quantized") else None


def _scaled(c: _Case) -> dict[str, Any] | None:
    if not c.share("scaled"):
        return None
    factors = np.array([e.scale for e in c.related if e.kind == "scaled"])
    if factors.size and np.std(factors) <= 1e-3 * abs(np.mean(factors)):
        return {"scale": float(np.mean(factors))}
    return None


def _noised(c: _Case) -> dict[str, Any] | None:
    gaussian = [e for e in c.evidence if e.related and e.kind in ("gaussian", "identical") and e.stats.n > 1]
    if not c.share("gaussian"):
        return None
    # Noise added on purpose has one σ in every tensor, whatever the tensor's own scale.
    sig = np.array([e.stats.d.std for e in gaussian if e.kind == "gaussian" and e.stats.n >= 64])
    w = np.array([e.stats.n for e in gaussian if e.kind == "gaussian" and e.stats.n >= 64], dtype=float)
    if sig.size < 2:
        return None
    spread = float(np.sqrt(np.average((sig - np.average(sig, weights=w)) ** 2, weights=w)))
    centre = float(np.average(sig, weights=w))
    scales = np.array([e.stats.a_on_pair.std for e in gaussian if e.kind == "gaussian" and e.stats.n >= 64])
    if not spread <= 0.1 * centre:  # (NaN included)
        return None
    tot_n = float(w.sum())
    total_m2 = sum(e.stats.d.m2 for e in gaussian if e.kind == "gaussian" and e.stats.n >= 64)
    sigma = math.sqrt(total_m2 / tot_n)
    # SE of σ from its per-tensor estimates (robust to non-normal d), at least the sampling SE.
    se = max(float(np.std(sig)) / math.sqrt(sig.size), sigma / math.sqrt(2 * tot_n))
    notes = []
    if scales.size and scales.max() > 3 * scales.min():
        notes.append(
            f"the same σ of d in tensors whose own scales differ {scales.max() / scales.min():.0f}-fold"
        )
    noisy = [e for e in gaussian if e.kind == "gaussian"]
    reverse = sum(abs(e.stats.corr_d_b) < abs(e.stats.corr_d_a) for e in noisy) > len(noisy) / 2
    return {
        "sigma": sigma,
        "sigma_ci": (sigma - 1.96 * se, sigma + 1.96 * se),
        "direction": "b->a" if reverse else "a->b",
        "notes": notes,
    }


def _fine_tune(c: _Case) -> dict[str, Any] | None:
    return {"direction": _direction(c.related)}


#: How related models are told apart: the first rule that applies gives the relation.
_RULES: tuple[tuple[Relation, _Rule], ...] = (
    ("cast_copy", _lossy_cast),
    ("cast_copy", _lossless_cast),
    ("identical", _identical),
    ("partial_copy", _partial),
    ("quantized_copy", _quantized),
    ("scaled_copy", _scaled),
    ("noised_copy", _noised),
    ("fine_tune", _fine_tune),
)
