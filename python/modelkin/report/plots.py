"""The report's plots, drawn with matplotlib's object API (never ``pyplot``: no global state is touched),
and their rendering as inline SVG or PNG."""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import norm

from .._util import num, visible
from ..compare import CompareResult
from ..evidence.weights import PairEvidence
from ..names import layer_index
from .document import (
    CHANCE_Z,
    KIND_COLOURS,
    METHOD_COLOURS,
    PRE,
    RELATED_Z,
    group_of,
    short_group,
    shorten,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "RC",
    "Place",
    "find_places",
    "inline_svg",
    "plot_alignment",
    "plot_histograms",
    "plot_localisation",
    "plot_qq",
    "plot_sigma",
    "plot_similarity",
    "png_bytes",
]


def _group_ticks(ax: Axes, ordered: Sequence[PairEvidence]) -> None:
    """Labels the x axis by layer (at most ~24 labels) and separates the groups with faint lines."""
    spans: list[tuple[str, int, int]] = []
    for i, e in enumerate(ordered):
        g = group_of(e.pairing.a)
        if spans and spans[-1][0] == g:
            spans[-1] = (g, spans[-1][1], i)
        else:
            spans.append((g, i, i))
    step = max(1, math.ceil(len(spans) / 24))
    ticks = [(lo + hi) / 2 for _, lo, hi in spans]
    labels = [short_group(g) if k % step == 0 else "" for k, (g, _, _) in enumerate(spans)]
    ax.set_xticks(ticks, [visible(x) for x in labels], fontsize=7)
    for _, lo, _ in spans[1:]:
        ax.axvline(lo - 0.5, color="#dddddd", lw=0.6, zorder=0)
    ax.set_xlim(-1, len(ordered))


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig


def plot_histograms(top: Sequence[PairEvidence]) -> Figure | None:
    """Histograms of d for the most telling tensors, with the fitted normal curve."""
    if not top:
        return None
    fig = _new_figure(9.6, 2.9)
    axes = fig.subplots(1, len(top), squeeze=False)[0]
    for ax, e in zip(axes, top):
        hist = e.stats.histogram()
        assert hist is not None
        edges, counts, below, above = hist
        edge = np.asarray(edges)
        ax.stairs(counts, edge, fill=True, color=KIND_COLOURS.get(e.kind, "#0072B2"), alpha=0.55)
        mean, std = e.stats.d.mean, e.stats.d.std
        n = sum(counts) + below + above
        x = np.linspace(edge[0], edge[-1], 256)
        width = float(edge[1] - edge[0])
        ax.plot(x, n * width * norm.pdf(x, mean, std), color="#000000", lw=1.2, label="normal fit")
        ax.set_title(visible(shorten(e.pairing.a, 38)), fontsize=8)
        ax.set_xlabel("d = b − a", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
        ax.text(
            0.02,
            0.97,
            f"{e.kind}\nσ = {std:.3g}\nskew {num(e.stats.d.skewness, '.2f')}\n"
            f"ex. kurt {num(e.stats.d.kurtosis, '.2f')}",
            transform=ax.transAxes,
            va="top",
            fontsize=7,
        )
    axes[0].set_ylabel("sampled positions", fontsize=8)
    axes[-1].legend(fontsize=7, loc="upper right", frameon=False)
    return fig


def plot_qq(top: Sequence[PairEvidence]) -> Figure | None:
    """Normal Q–Q plots of d for the most telling tensors."""
    if not top:
        return None
    fig = _new_figure(4.6, 4.0)
    ax = fig.add_subplot()
    markers = ("o", "s", "^")
    for k, e in enumerate(top):
        d = e.stats.sample
        d = np.sort(d[np.isfinite(d)])
        if d.size < 8 or not e.stats.d.std > 0:
            continue
        z = (d - e.stats.d.mean) / e.stats.d.std
        theory = norm.ppf((np.arange(1, d.size + 1) - 0.5) / d.size)
        keep = np.unique(np.linspace(0, d.size - 1, min(d.size, 400)).astype(int))  # a light SVG
        ax.plot(
            theory[keep],
            np.clip(z[keep], -8, 8),
            markers[k % 3],
            ms=2.5,
            alpha=0.7,
            label=visible(shorten(e.pairing.a, 40)),
        )
    ax.plot([-4, 4], [-4, 4], color="#000000", lw=1, label="normal")
    ax.set_xlabel("normal quantiles", fontsize=8)
    ax.set_ylabel("standardised d quantiles", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6.5, loc="upper left", frameon=False)
    return fig


def plot_sigma(result: CompareResult, ordered: Sequence[PairEvidence]) -> Figure | None:
    """σ of d per tensor across the model, in model order (log scale)."""
    sig = np.array([e.stats.d.std for e in ordered], dtype=np.float64)
    own = np.array([e.stats.a_on_pair.std for e in ordered], dtype=np.float64)
    positive = sig[np.isfinite(sig) & (sig > 0)]
    if positive.size == 0:
        return None
    fig = _new_figure(9.6, 3.3)
    ax = fig.add_subplot()
    ax.set_yscale("log")
    x = np.arange(len(ordered))
    ok_own = np.isfinite(own) & (own > 0)
    ax.scatter(
        x[ok_own], own[ok_own], s=40, color="#9a9a9a", marker="_", label="σ of a (the tensor's own scale)"
    )
    floor = float(positive.min()) / 3
    for kind in dict.fromkeys(e.kind for e in ordered):
        idx = np.array([i for i, e in enumerate(ordered) if e.kind == kind], dtype=np.intp)
        ys = sig[idx]
        pos = np.isfinite(ys) & (ys > 0)
        filled = np.array([ordered[i].informative for i in idx])
        colour = KIND_COLOURS.get(kind, "#333333")
        ax.scatter(idx[pos & filled], ys[pos & filled], s=16, color=colour, label=kind)
        ax.scatter(idx[pos & ~filled], ys[pos & ~filled], s=16, facecolors="none", edgecolors=colour)
        zero = np.isfinite(ys) & (ys == 0)
        if zero.any():
            ax.scatter(idx[zero], np.full(int(zero.sum()), floor), s=18, marker="v", color=colour)
    v = result.verdict
    if v.relation == "noised_copy" and v.sigma is not None:
        ax.axhline(v.sigma, color=KIND_COLOURS["gaussian"], lw=1, ls="--", label=f"noise σ = {v.sigma:.3g}")
    from matplotlib.ticker import LogLocator, NullFormatter

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_minor_formatter(NullFormatter())
    _group_ticks(ax, ordered)
    ax.set_ylabel("σ of d = b − a", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return fig


def plot_similarity(ordered: Sequence[PairEvidence]) -> Figure | None:
    """The kinship z of every tensor pair by layer, against the chance band."""
    z = np.array([e.z for e in ordered], dtype=np.float64)
    if not np.isfinite(z).any():
        return None
    fig = _new_figure(9.6, 3.3)
    ax = fig.add_subplot()
    ax.set_yscale("symlog", linthresh=10)
    ax.axhspan(-CHANCE_Z, CHANCE_Z, color="#cfe8cf", zorder=0, label=f"chance band |z| < {CHANCE_Z:g}")
    ax.axhline(RELATED_Z, color="#555555", lw=0.8, ls="--", label=f"related: z > {RELATED_Z:.2f} (p < 1e-6)")
    x = np.arange(len(ordered))
    for kind in dict.fromkeys(e.kind for e in ordered):
        idx = np.array(
            [i for i, e in enumerate(ordered) if e.kind == kind and math.isfinite(e.z)], dtype=np.intp
        )
        if idx.size == 0:
            continue
        filled = np.array([ordered[i].informative for i in idx])
        colour = KIND_COLOURS.get(kind, "#333333")
        ax.scatter(x[idx][filled], z[idx][filled], s=16, color=colour, label=kind)
        ax.scatter(x[idx][~filled], z[idx][~filled], s=16, facecolors="none", edgecolors=colour)
    _group_ticks(ax, ordered)
    ax.set_ylabel("kinship z (symlog)", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return fig


def plot_alignment(result: CompareResult, ordered: Sequence[PairEvidence]) -> Figure | None:
    """Which tensor of B matched which of A, and how."""
    al = result.alignment
    if not al.pairs and not al.only_a and not al.only_b:
        return None
    a_order = [e.pairing.a for e in ordered]
    a_order += [n for n in al.only_a if n not in set(a_order)]
    b_tensors = sorted(result.diff.b.tensors, key=lambda t: (t.file, t.offset, t.name))
    b_pos = {t.name: i for i, t in enumerate(b_tensors)}
    a_pos = {n: i for i, n in enumerate(a_order)}
    fig = _new_figure(5.6, 5.0)
    ax = fig.add_subplot()
    by_method: dict[str, list[tuple[int, int]]] = {}
    for p in al.pairs:
        if p.a in a_pos and p.b in b_pos:
            by_method.setdefault(p.method, []).append((a_pos[p.a], b_pos[p.b]))
    for method, pts in by_method.items():
        xy = np.array(pts)
        ax.scatter(
            xy[:, 0], xy[:, 1], s=12, color=METHOD_COLOURS.get(method, "#333333"), label=f"by {method}"
        )
    if al.only_a:
        xs = [a_pos[n] for n in al.only_a if n in a_pos]
        ax.scatter(xs, [-2] * len(xs), marker="x", s=18, color="#b00000", label="only in A")
    if al.only_b:
        ys = [b_pos[n] for n in al.only_b if n in b_pos]
        ax.scatter([-2] * len(ys), ys, marker="+", s=24, color="#7a3db8", label="only in B")
    ax.set_xlabel("tensor of A (model order)", fontsize=8)
    ax.set_ylabel("tensor of B (B's file order)", fontsize=8)
    ax.set_xlim(-4, max(len(a_order), 1) + 1)
    ax.set_ylim(-4, max(len(b_tensors), 1) + 1)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    return fig


@dataclass(frozen=True)
class Place:
    """One place of A (a layer, or a tensor outside the layers) and what B holds of it."""

    label: str
    state: str  # "shared", "replaced", "mixed", "dropped", "not tested"
    related: int
    tested: int
    permuted: bool


_PLACE_COLOURS = {
    "shared": "#0072B2",
    "mixed": "#56B4E9",
    "replaced": "#E69F00",
    "dropped": "#ffffff",
    "not tested": "#dddddd",
}


def find_places(result: CompareResult, ordered: Sequence[PairEvidence]) -> list[Place]:
    """A's places in model order with the share of their learnt matrices related in B."""
    counts: dict[str, list[int]] = {}
    for e in ordered:
        layer = layer_index(e.pairing.a)
        label = f"layer {layer}" if layer is not None else e.pairing.a
        c = counts.setdefault(label, [0, 0])
        if e.informative:
            c[0] += e.related
            c[1] += 1
    dropped = {f"layer {i}" for i in result.verdict.layers_dropped}
    permuted = {f"layer {i}" for i in result.verdict.permuted_layers}
    for label in dropped:
        counts.setdefault(label, [0, 0])

    def key(label: str) -> tuple[int, int, str]:
        if label.startswith("layer "):
            return (1, int(label.split()[1]), "")
        return (0 if PRE.search(label) else 2, 0, label)

    places = []
    for label in sorted(counts, key=key):
        related, tested = counts[label]
        if label in dropped and tested == 0:
            state = "dropped"
        elif tested == 0:
            state = "not tested"
        elif related == tested:
            state = "shared"
        elif related == 0:
            state = "replaced"
        else:
            state = "mixed"
        places.append(Place(label, state, related, tested, label in permuted))
    return places


def plot_localisation(places: Sequence[Place]) -> Figure | None:
    """Where B keeps A's weights: one cell per place (a layer, or a tensor outside the layers), coloured
    by what B holds there."""
    if not places:
        return None
    from matplotlib.patches import Patch, Rectangle

    fig = _new_figure(9.6, 1.5)
    ax = fig.add_subplot()
    for i, p in enumerate(places):
        ax.add_patch(
            Rectangle(
                (i, 0),
                0.92,
                1,
                facecolor=_PLACE_COLOURS[p.state],
                edgecolor="#b00000" if p.state == "dropped" else "#666666",
                hatch="//" if p.permuted else None,
                lw=0.8,
                ls="--" if p.state == "dropped" else "-",
            )
        )
    step = max(1, math.ceil(len(places) / 30))
    ticks = [i + 0.46 for i in range(len(places))]
    labels = [
        (short_group(p.label) if p.label.startswith("layer ") else shorten(_module(p.label), 14))
        if i % step == 0
        else ""
        for i, p in enumerate(places)
    ]
    ax.set_xticks(ticks, [visible(x) for x in labels], fontsize=7, rotation=0 if len(places) <= 12 else 90)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(places) + 0.1)
    ax.set_ylim(0, 1)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    states = list(dict.fromkeys(p.state for p in places))
    handles = [Patch(facecolor=_PLACE_COLOURS[s], edgecolor="#666666", label=s) for s in states]
    if any(p.permuted for p in places):
        handles.append(Patch(facecolor="#ffffff", edgecolor="#666666", hatch="//", label="units permuted"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return fig


def _module(name: str) -> str:
    """A short label for a tensor outside the layers: its module (``embed_tokens``, ``lm_head``, …)."""
    parts = [p for p in name.split(".") if p not in ("weight", "bias", "model")]
    return parts[-1] if parts else name


RC: Any = {  # typed loosely: matplotlib types rc keys as a Literal of every name
    "svg.fonttype": "none",  # text stays text: searchable, and no glyph outlines to embed
    "svg.hashsalt": "modelkin",  # deterministic ids
    "text.parse_math": False,  # a "$" in a tensor name is a dollar, not mathtext
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial", "sans-serif"],
    "axes.spines.top": False,
    "axes.spines.right": False,
}

_NO_META = {"Date": None, "Creator": None, "Format": None, "Type": None}


def inline_svg(fig: Figure, prefix: str, alt: str) -> str:
    """The figure as an ``<svg>`` element to inline in HTML: no XML prolog, no namespace URLs, ids
    prefixed so that several figures can share a page."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata=_NO_META)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    svg = re.sub(r'\s+(width|height)="[\d.]+pt"', "", svg, count=2)
    svg = svg.replace("xlink:href=", "href=")
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)
    label = html.escape(visible(alt), quote=True)
    width = round(fig.get_figwidth() * 96)  # CSS pixels at the figure's own size, never wider
    attrs = f'role="img" aria-label="{label}" class="plot" style="max-width: {width}px"'
    return svg.replace("<svg", f"<svg {attrs}", 1)


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (no software tag, so the bytes depend on the figure only)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return buf.getvalue()
