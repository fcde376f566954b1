"""Per-layer profiles: the std (and mean, and L2 norm) of each kind of tensor over the layers.

For every kind of tensor repeated in the layers (``self_attn.q_proj.weight``, ``mlp.down_proj.weight``,
``input_layernorm.weight``, …: the name with its layer number taken out) the profile is the vector over
layers of that tensor's std, mean and norm, taken from the per-tensor statistics (which every
comparison and every fingerprint has). This is the "weight-std fingerprint" argued over in the 2025
Pangu-vs-Qwen dispute: two models whose std profiles correlate highly were said to be related.

**Its weakness.** The profile is shaped by the architecture and the training recipe as much as by the
weights: initialisations scaled by depth give every model of a recipe the same profile, and training
moves the layers of independent models alike. ``benches/PROFILES.md`` measures it: independently
initialised models with a depth-scaled initialisation correlate at r ≈ 1, and over a few layers
even flat profiles correlate by chance (|r| up to 0.99 between independent 4-layer models). A high r
is therefore reported as a description, never as evidence of kinship; the kinship tests compare the
weights themselves. A low r between models claimed to be related is the informative case: a copy
keeps its profile.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..names import layer_index, module_of
from ..stats import ValueStats

__all__ = ["MIN_LAYERS", "KindProfile", "ProfileComparison", "compare_profiles", "layer_profiles"]

#: Layers two profiles must share for their correlation to be computed.
MIN_LAYERS = 3

Profiles = dict[str, dict[int, ValueStats]]


def layer_profiles(tensors: Iterable[tuple[str, ValueStats]]) -> Profiles:
    """Kind (the canonical name with ``*`` for the layer) → layer → that tensor's statistics."""
    out: Profiles = {}
    for name, stats in tensors:
        layer = layer_index(name)
        if layer is None or stats.moments.n == 0:
            continue
        out.setdefault(module_of(name), {})[layer] = stats
    return out


def _r(x: list[float], y: list[float]) -> float:
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < MIN_LAYERS:
        return math.nan
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    if den == 0:  # a flat profile has no shape to correlate
        return math.nan
    return float(a @ b) / den


@dataclass(frozen=True)
class KindProfile:
    """One kind of tensor over the layers both models have."""

    kind: str
    layers: tuple[int, ...]
    std_a: tuple[float, ...]
    std_b: tuple[float, ...]
    r_std: float
    r_mean: float
    r_norm: float

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        return {
            **vars(self),
            "layers": list(self.layers),
            "std_a": list(self.std_a),
            "std_b": list(self.std_b),
        }


@dataclass(frozen=True)
class ProfileComparison:
    """The per-layer profiles of A and B side by side (descriptive, see the module docstring)."""

    kinds: tuple[KindProfile, ...]

    @property
    def r_std(self) -> float:
        """Median over kinds of the correlation of the std profiles."""
        rs = [k.r_std for k in self.kinds if math.isfinite(k.r_std)]
        return float(np.median(rs)) if rs else math.nan

    @property
    def r_norm(self) -> float:
        """Median over kinds of the correlation of the norm profiles."""
        rs = [k.r_norm for k in self.kinds if math.isfinite(k.r_norm)]
        return float(np.median(rs)) if rs else math.nan

    @property
    def sentence(self) -> str:
        """One descriptive line, with the test's known weakness."""
        rs = [k.r_std for k in self.kinds if math.isfinite(k.r_std)]
        if not rs:
            return "per-layer std profiles: too few shared layers, or profiles too flat, to correlate"
        layers = max(len(k.layers) for k in self.kinds)
        return (
            f"per-layer std profiles correlate r = {self.r_std:.2f} (median of {len(rs)} kinds of tensor, "
            f"range {min(rs):.2f} to {max(rs):.2f}, up to {layers} layers); descriptive only: independent "
            "models of one architecture and recipe also correlate (r ≈ 1 with a depth-scaled "
            "initialisation, and |r| up to 0.99 by chance over few layers: benches/PROFILES.md)"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        return {
            "r_std": self.r_std,
            "r_norm": self.r_norm,
            "sentence": self.sentence,
            "kinds": [k.to_dict() for k in self.kinds],
        }


def compare_profiles(
    a: Iterable[tuple[str, ValueStats]], b: Iterable[tuple[str, ValueStats]]
) -> ProfileComparison | None:
    """The profiles of A and B compared kind by kind over the layers (by index) both have; None when
    no kind of tensor is repeated over :data:`MIN_LAYERS` layers in both."""
    pa, pb = layer_profiles(a), layer_profiles(b)
    kinds = []
    for kind in sorted(set(pa) & set(pb)):
        layers = sorted(set(pa[kind]) & set(pb[kind]))
        if len(layers) < MIN_LAYERS:
            continue
        sa = [pa[kind][i] for i in layers]
        sb = [pb[kind][i] for i in layers]
        std_a, std_b = [s.std for s in sa], [s.std for s in sb]
        kinds.append(
            KindProfile(
                kind,
                tuple(layers),
                tuple(std_a),
                tuple(std_b),
                _r(std_a, std_b),
                _r([s.mean for s in sa], [s.mean for s in sb]),
                _r([s.l2_norm for s in sa], [s.l2_norm for s in sb]),
            )
        )
    return ProfileComparison(tuple(kinds)) if kinds else None
