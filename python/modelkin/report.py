"""A report people can read, share and trust: one self-contained file per comparison.

:func:`write_report` turns a :class:`~modelkin.compare.CompareResult` into a single HTML page (or a
Markdown file when the path ends in ``.md``) that holds everything needed to read and check it:

1. the verdict and its confidence, each in one sentence, and the facts behind them;
2. how to read the report, for someone who is not a statistician;
3. the inputs: paths, sizes and SHA-256 of every file, the modelkin version, the date and the command
   line, so that anyone can check they are looking at the same files and rerun the comparison;
4. plots: the distribution of d = b − a for the three most telling tensors with the fitted normal curve
   and a Q–Q plot; σ of d per tensor across the model (a flat line is the signature of added noise);
   the kinship z of every tensor by layer against the chance band; the localisation of what B shares
   with A; the alignment map (which tensor of B matched which of A);
5. the evidence line by line: per tensor pair the kinship z, log10 p, effect sizes (Pearson r, σ of
   d, 1 − cos) and the kind of change; then configs and tokenizers, and behaviour, when present.

The order is :data:`SECTIONS`: pictures before the long table, so that a printed first pages tell.

The page needs nothing from the network: no scripts, no fonts, no external images (the plots are inline
SVG in HTML and PNG data URIs in Markdown), and a Content-Security-Policy that forbids loading anything
says so to the browser. It prints cleanly (a print style sheet keeps figures and table rows whole).

Plots are drawn with matplotlib's object API (:class:`matplotlib.figure.Figure`, rendered by the Agg and
SVG backends), never through ``pyplot``: no global state is touched, so a report can be written from a
notebook or a server thread without changing the caller's plotting backend.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import html
import io
import math
import os
import platform
import re
import shlex
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from scipy.stats import norm

from ._engine import __version__
from ._util import num, sha256_file
from .compare import COMPARE_SCHEMA, CompareResult
from .evidence.weights import RELATED_LOG10_P, PairEvidence
from .names import layer_index
from .verdict import KIN_LOG10_P, Verdict

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["SECTIONS", "confidence_sentence", "write_report"]

PathArg = Union[str, "os.PathLike[str]"]

#: The report's sections, in order: (anchor, title). Config/tokenizer and behaviour sections appear
#: only when the result carries that evidence.
SECTIONS = (
    ("verdict", "Verdict"),
    ("how-to-read", "How to read this report"),
    ("inputs", "Inputs"),
    ("distribution", "The differences d = b − a"),
    ("sigma", "σ of d across the model"),
    ("similarity", "Similarity by layer"),
    ("localisation", "Localisation: what B shares with A"),
    ("alignment", "Alignment: which tensor of B matched which of A"),
    ("weights", "Weights: evidence per tensor pair"),
    ("metadata", "Configs and tokenizers"),
    ("behavior", "Behaviour"),
)

#: Colours of the kinds of change (Okabe–Ito, readable with colour-blindness and in grey print).
KIND_COLOURS = {
    "identical": "#000000",
    "cast": "#56B4E9",
    "quantized": "#009E73",
    "gaussian": "#D55E00",
    "scaled": "#CC79A7",
    "update": "#0072B2",
    "permuted": "#E69F00",
    "unrelated": "#999999",
}

#: Colours of the alignment methods.
METHOD_COLOURS = {
    "name": "#0072B2",
    "content": "#D55E00",
    "rows": "#009E73",
    "fused": "#CC79A7",
    "transposed": "#E69F00",
}

#: The per-tensor z above which a pair is "related" (one-sided p < 1e-6).
RELATED_Z = float(norm.isf(10**RELATED_LOG10_P))
#: Half-width of the chance band of the kinship z drawn in the similarity plot.
CHANCE_Z = 3.0
#: Tensors whose histograms are drawn.
TOP_TENSORS = 3

_PRE = re.compile(r"emb|wte|wpe|tok_|token", re.IGNORECASE)


# -- the document, independent of its output format ------------------------------------------------------


@dataclass(frozen=True)
class _Para:
    text: str
    cls: str = ""


@dataclass(frozen=True)
class _List:
    items: tuple[str, ...]


@dataclass(frozen=True)
class _Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: frozenset[int] = frozenset()  # right-aligned columns
    cls: str = ""


@dataclass(frozen=True)
class _Plot:
    key: str
    caption: str
    alt: str
    figure: Figure | None  # None: nothing to draw (the caption says why)


_Block = Union[_Para, _List, _Table, _Plot]


@dataclass
class _Section:
    id: str
    title: str
    blocks: list[_Block] = field(default_factory=list)


# -- numbers and words ------------------------------------------------------------------------------------


def _bytes(n: int) -> str:
    units = ("bytes", "KiB", "MiB", "GiB", "TiB")
    size, unit = float(n), 0
    while size >= 1024 and unit < len(units) - 1:
        size, unit = size / 1024, unit + 1
    return f"{n:,} bytes" if unit == 0 else f"{size:.1f} {units[unit]} ({n:,} bytes)"


def confidence_sentence(verdict: Verdict, tested: int) -> str:
    """The confidence of a verdict in one sentence, for a reader who does not know p-values.

    ``tested`` is the number of learnt matrices the model-level p-value was adjusted over.
    """
    lp = verdict.log10_p
    if verdict.relation == "inconclusive":
        why = verdict.notes[0] if verdict.notes else "nothing could be tested"
        return f"No confidence can be given either way: {why}."
    if verdict.related:
        return (
            f"Confidence: the chance that two independent models look this alike is about 1 in "
            f"10^{-lp:.0f} (model-level log10 p = {lp:.1f}, Bonferroni-adjusted over {tested} learnt "
            f"matrices; kinship needs log10 p below {KIN_LOG10_P:.0f})."
        )
    return (
        f"Confidence: no tensor pair is more alike than chance allows; the strongest kinship signal has "
        f"an adjusted p of {10**lp:.2g} (log10 p = {lp:.2f}, over {tested} learnt matrices), where "
        f"kinship would need log10 p below {KIN_LOG10_P:.0f}."
    )


# -- model order --------------------------------------------------------------------------------------------


def _group(name: str) -> str:
    """A tensor's place in the model: ``"layer N"``, or ``"pre"`` / ``"post"`` for tensors outside."""
    layer = layer_index(name)
    if layer is not None:
        return f"layer {layer}"
    return "pre" if _PRE.search(name) else "post"


def _short_group(group: str) -> str:
    return "L" + group.split()[1] if group.startswith("layer ") else group


def _in_model_order(result: CompareResult) -> list[PairEvidence]:
    """The evidence in the model's order: embeddings, then layer by layer, then the rest; within a
    group, in A's file order."""
    where = {t.name: (t.file, t.offset) for t in result.diff.a.tensors}

    def key(e: PairEvidence) -> tuple[int, int, int, int, str]:
        name = e.pairing.a
        file, offset = where.get(name, (0, 0))
        layer = layer_index(name)
        if layer is not None:
            return (1, layer, file, offset, name)
        return (0 if _PRE.search(name) else 2, 0, file, offset, name)

    return sorted(result.evidence, key=key)


def _group_ticks(ax: Axes, ordered: Sequence[PairEvidence]) -> None:
    """Labels the x axis by layer (at most ~24 labels) and separates the groups with faint lines."""
    spans: list[tuple[str, int, int]] = []
    for i, e in enumerate(ordered):
        g = _group(e.pairing.a)
        if spans and spans[-1][0] == g:
            spans[-1] = (g, spans[-1][1], i)
        else:
            spans.append((g, i, i))
    step = max(1, math.ceil(len(spans) / 24))
    ticks = [(lo + hi) / 2 for _, lo, hi in spans]
    labels = [_short_group(g) if k % step == 0 else "" for k, (g, _, _) in enumerate(spans)]
    ax.set_xticks(ticks, labels, fontsize=7)
    for _, lo, _ in spans[1:]:
        ax.axvline(lo - 0.5, color="#dddddd", lw=0.6, zorder=0)
    ax.set_xlim(-1, len(ordered))


# -- plots -----------------------------------------------------------------------------------------------


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig


def _telling(result: CompareResult) -> list[PairEvidence]:
    """The tensors whose d tells most: learnt matrices first, most significant kinship first."""
    drawable = [e for e in result.evidence if e.stats.n > 1 and e.stats.histogram() is not None]
    drawable.sort(key=lambda e: (not e.informative, e.log10_p, -e.numel))
    return drawable[:TOP_TENSORS]


def _plot_histograms(top: Sequence[PairEvidence]) -> Figure | None:
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
        ax.set_title(_ellipsis(e.pairing.a, 38), fontsize=8)
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


def _plot_qq(top: Sequence[PairEvidence]) -> Figure | None:
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
            label=_ellipsis(e.pairing.a, 40),
        )
    ax.plot([-4, 4], [-4, 4], color="#000000", lw=1, label="normal")
    ax.set_xlabel("normal quantiles", fontsize=8)
    ax.set_ylabel("standardised d quantiles", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6.5, loc="upper left", frameon=False)
    return fig


def _plot_sigma(result: CompareResult, ordered: Sequence[PairEvidence]) -> Figure | None:
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


def _plot_similarity(ordered: Sequence[PairEvidence]) -> Figure | None:
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


def _plot_alignment(result: CompareResult, ordered: Sequence[PairEvidence]) -> Figure | None:
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
class _Place:
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


def _places(result: CompareResult, ordered: Sequence[PairEvidence]) -> list[_Place]:
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
        return (0 if _PRE.search(label) else 2, 0, label)

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
        places.append(_Place(label, state, related, tested, label in permuted))
    return places


def _plot_localisation(places: Sequence[_Place]) -> Figure | None:
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
        (_short_group(p.label) if p.label.startswith("layer ") else _ellipsis(_module(p.label), 14))
        if i % step == 0
        else ""
        for i, p in enumerate(places)
    ]
    ax.set_xticks(ticks, labels, fontsize=7, rotation=0 if len(places) <= 12 else 90)
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


def _ellipsis(s: str, n: int) -> str:
    return s if len(s) <= n else "…" + s[-(n - 1) :]


# -- rendering figures --------------------------------------------------------------------------------------

_RC: Any = {  # typed loosely: matplotlib types rc keys as a Literal of every name
    "svg.fonttype": "none",  # text stays text: searchable, and no glyph outlines to embed
    "svg.hashsalt": "modelkin",  # deterministic ids
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial", "sans-serif"],
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_NO_META = {"Date": None, "Creator": None, "Format": None, "Type": None}


def _svg(fig: Figure, prefix: str, alt: str) -> str:
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
    label = html.escape(alt, quote=True)
    width = round(fig.get_figwidth() * 96)  # CSS pixels at the figure's own size, never wider
    attrs = f'role="img" aria-label="{label}" class="plot" style="max-width: {width}px"'
    return svg.replace("<svg", f"<svg {attrs}", 1)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return buf.getvalue()


# -- the sections ----------------------------------------------------------------------------------------


def _hash_or_why(path: str) -> str:
    try:
        return sha256_file(path)
    except FileNotFoundError:
        return "(not found here: not hashed)"
    except OSError as e:
        return f"(cannot be read: {e.strerror})"


def _verdict_section(result: CompareResult, tested: int) -> _Section:
    v = result.verdict
    s = _Section("verdict", "Verdict")
    s.blocks.append(_Para(v.sentence, "verdict " + ("related" if v.related else v.relation)))
    s.blocks.append(_Para(confidence_sentence(v, tested), "confidence"))
    facts: list[tuple[str, str]] = [("relation", v.relation)]
    if v.direction:
        facts.append(("direction", v.direction))
    if v.sigma is not None:
        lo, hi = v.sigma_ci or (math.nan, math.nan)
        facts.append(("σ of the added noise", f"{v.sigma:.4g} (95% CI {lo:.4g} – {hi:.4g})"))
    if v.scale is not None:
        facts.append(("scale factor", f"{v.scale:.6g}"))
    if v.cast_to:
        facts.append(("cast to", v.cast_to))
    facts.append(("model-level log10 p", num(v.log10_p, ".2f")))
    related = sum(e.related for e in result.evidence if e.informative)
    facts.append(("learnt matrices tested / related", f"{tested} / {related}"))
    if v.related:
        facts.append(("share of A's learnt parameters found in B", f"{v.shared_fraction:.1%}"))
    facts.append(("tensors renamed", str(v.renamed)))
    if v.layers_dropped:
        facts.append(("layers of A dropped", ", ".join(map(str, v.layers_dropped))))
    if v.layers_added:
        facts.append(("layers of B not in A", ", ".join(map(str, v.layers_added))))
    if v.vocab_rows:
        facts.append(("vocabulary rows", f"{v.vocab_rows[0]:,} → {v.vocab_rows[1]:,}"))
    if v.permuted_layers:
        facts.append(("MLP units permuted in layers", ", ".join(map(str, v.permuted_layers))))
    s.blocks.append(_Table(("fact", "value"), tuple(facts), cls="facts"))
    if v.notes:
        s.blocks.append(_Para("Notes:"))
        s.blocks.append(_List(tuple(v.notes)))
    return s


def _how_to_read() -> _Section:
    s = _Section("how-to-read", "How to read this report")
    s.blocks.append(
        _Para(
            "A is the reference checkpoint, B the one under suspicion. modelkin pairs every weight tensor of "
            "B with the tensor of A it corresponds to, by name or, when names were changed, by content, and "
            "looks at the difference d = b − a of each pair."
        )
    )
    s.blocks.append(
        _List(
            (
                "Kinship z: how far two tensors are more alike than unrelated ones would be, in standard "
                f"deviations. Unrelated tensors give |z| < {CHANCE_Z:g} almost always (the green band in "
                "the similarity plot); copies and fine-tunes give z in the tens or hundreds.",
                "log10 p: the same as a probability. log10 p = −20 means that a match this close would "
                "happen by chance once in 10^20 tries. The model-level value is corrected for the number "
                "of tensors tested, so many tensors cannot produce a match by luck.",
                "Kind of change, read from the shape of d: identical (d = 0); cast (B is A rounded to a "
                "shorter number format); quantized (bounded, flat-topped d); gaussian (a bell curve with "
                "no skew and no heavy tails, unrelated to the weights: noise added on purpose); scaled "
                "(d proportional to a); update (structured changes, as training makes); permuted (related "
                "once B's hidden units are put back in A's order); unrelated.",
                "The signature of a disguised copy (the Llama3-V case): gaussian d with the same σ in "
                "every tensor, whatever the tensor's own scale: a flat line in the σ plot. Training "
                "changes each tensor by a different amount and leaves heavy tails.",
                "Only learnt matrices count towards the verdict (filled markers; marked ✓ in the tables). "
                "Norm gains, biases, small or fixed tensors are shown (hollow markers) but can be equal in "
                "unrelated models.",
                "Configs, tokenizers and behaviour are supporting evidence: independent models can share "
                "them, so they never decide the verdict on their own.",
                "What this is not: a statement about intent or licences. It says how the numbers in the "
                "two files relate; the direction of a fine-tune (which came first) is a hint, not a proof.",
                "To check this report: the SHA-256 of every input file is listed under Inputs; rerun the "
                "command line shown there with the same modelkin version to get the same numbers.",
            )
        )
    )
    return s


def _inputs_section(result: CompareResult, argv: Sequence[str] | None, now: dt.datetime) -> _Section:
    s = _Section("inputs", "Inputs")
    rows = []
    for side, ck in (("A", result.diff.a), ("B", result.diff.b)):
        rows.append(
            (
                side,
                ck.path,
                ck.format,
                str(len(ck.files)),
                f"{len(ck.tensors):,}",
                f"{ck.n_params:,}",
                ", ".join(f"{k} {v:,}" for k, v in ck.dtypes.items()),
            )
        )
    s.blocks.append(
        _Table(("", "path", "format", "files", "tensors", "parameters", "elements per dtype"), tuple(rows))
    )
    files = []
    for side, ck in (("A", result.diff.a), ("B", result.diff.b)):
        for f in ck.files:
            files.append((side, f.path, _bytes(f.size), _hash_or_why(f.path)))
    s.blocks.append(
        _Table(("", "file", "size", "SHA-256"), tuple(files), numeric=frozenset({2}), cls="files")
    )
    run = [
        ("modelkin", __version__),
        ("report schema of the JSON output", COMPARE_SCHEMA),
        ("date (UTC)", now.strftime("%Y-%m-%d %H:%M:%S")),
        ("Python / platform", f"{platform.python_version()} / {platform.platform(terse=True)}"),
        ("threads / seconds", f"{result.diff.threads} / {result.diff.seconds:.2f}"),
    ]
    if argv is not None:
        run.insert(2, ("command line", shlex.join(argv)))
    s.blocks.append(_Table(("run", ""), tuple(run), cls="facts"))
    return s


def _weights_section(result: CompareResult, ordered: Sequence[PairEvidence]) -> _Section:
    s = _Section("weights", "Weights: evidence per tensor pair")
    informative = [e for e in ordered if e.informative]
    kinds: dict[str, int] = {}
    for e in informative:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
    tot = result.diff.totals()
    s.blocks.append(
        _Para(
            f"{len(informative)} learnt matrices tested ({summary or 'none'}); "
            f"{len(ordered) - len(informative)} other tensors shown but not counted. "
            f"Over the whole model σ of d = {num(tot['d_std'])} "
            f"(per tensor {num(tot['d_std_min'])} … {num(tot['d_std_max'])}), "
            f"{100 * (tot['equal_fraction'] or 0) if tot['pairs'] else 0:.2f}% of values bit-equal, "
            f"1 − cos = {num(tot['one_minus_cosine'])}."
        )
    )
    header = (
        "tensor of A",
        "tensor of B",
        "matched by",
        "kind",
        "counts",
        "z",
        "log10 p",
        "Pearson r",
        "σ of d",
        "‖d‖/‖a‖",
        "1 − cos",
        "skew d",
        "ex. kurt d",
        "corr(d, a)",
        "equal",
    )
    rows = []
    for e in ordered:
        st = e.stats
        rows.append(
            (
                e.pairing.a,
                "=" if e.pairing.b == e.pairing.a else e.pairing.b,
                e.pairing.method,
                e.kind,
                "✓" if e.informative else "",
                num(e.z, ".1f"),
                num(e.log10_p, ".1f"),
                num(st.pearson, ".6f"),
                num(st.d.std),
                num(st.rel_change),
                num(st.one_minus_cosine),
                num(st.d.skewness, ".2f"),
                num(st.d.kurtosis, ".2f"),
                num(st.corr_d_a, ".2f"),
                f"{100 * st.equal_fraction:.1f}%" if math.isfinite(st.equal_fraction) else "–",
            )
        )
    s.blocks.append(_Table(header, tuple(rows), numeric=frozenset(range(5, 15)), cls="evidence"))
    return s


def _distribution_section(result: CompareResult) -> _Section:
    s = _Section("distribution", "The differences d = b − a")
    top = _telling(result)
    names = ", ".join(e.pairing.a for e in top)
    why = (
        "d is zero (or has no spread) in every tensor: B holds A's values unchanged, nothing to draw"
        if not top
        else f"the {len(top)} most telling tensors ({names})"
    )
    s.blocks.append(
        _Plot(
            "hist",
            f"Histogram of d at the sampled positions of {why}, with the normal curve of the same mean "
            "and σ. Added noise fits the curve; training leaves a sharp peak and heavy tails; "
            "quantization a flat top with hard edges.",
            "Histograms of d with fitted normal curves",
            _plot_histograms(top),
        )
    )
    s.blocks.append(
        _Plot(
            "qq",
            "Q–Q plot: the sorted, standardised d against the quantiles of a normal distribution. Points on "
            "the diagonal: d is Gaussian; an S-shape or bent tails: it is not.",
            "Normal Q–Q plot of d",
            _plot_qq(top),
        )
    )
    return s


def _sigma_section(result: CompareResult, ordered: Sequence[PairEvidence]) -> _Section:
    s = _Section("sigma", "σ of d across the model")
    s.blocks.append(
        _Plot(
            "sigma",
            "σ of d for every tensor pair in model order (embeddings, layer by layer, then the head; log "
            "scale), coloured by kind; hollow markers are not counted. Grey dashes: σ of the tensor itself. "
            "A flat line whatever the tensor's own scale is the signature of noise added on purpose; a "
            "fine-tune changes each tensor by its own amount.",
            "σ of d per tensor across the model",
            _plot_sigma(result, ordered),
        )
    )
    return s


def _similarity_section(ordered: Sequence[PairEvidence]) -> _Section:
    s = _Section("similarity", "Similarity by layer")
    s.blocks.append(
        _Plot(
            "similarity",
            f"Kinship z of every tensor pair by layer. Unrelated tensors fall in the green chance band "
            f"(|z| < {CHANCE_Z:g}); above the dashed line (z > {RELATED_Z:.2f}, p < 1e-6) a pair is "
            "related. A layer above the band shares A's weights; a layer inside it was replaced.",
            "Kinship z by layer against the chance band",
            _plot_similarity(ordered),
        )
    )
    return s


def _alignment_section(result: CompareResult, ordered: Sequence[PairEvidence]) -> _Section:
    al = result.alignment
    s = _Section("alignment", "Alignment: which tensor of B matched which of A")
    methods: dict[str, int] = {}
    for p in al.pairs:
        methods[p.method] = methods.get(p.method, 0) + 1
    s.blocks.append(
        _Para(
            f"{len(al.pairs)} pairs ({', '.join(f'{n} by {k}' for k, n in methods.items()) or 'none'}), "
            f"{al.renamed} renamed; {len(al.only_a)} tensors only in A, {len(al.only_b)} only in B."
            + (
                f" {al.candidates} equal-shaped candidate pairs were searched by content (best z = "
                f"{num(al.best_z, '.1f')})."
                if al.candidates
                else ""
            )
        )
    )
    s.blocks.append(
        _Plot(
            "alignment",
            "Each dot pairs a tensor of A (across, in model order) with a tensor of B (up, in B's file "
            "order), coloured by how they were matched. Crosses below the axis: A's tensors without a "
            "counterpart; plus signs left of it: B's. Dots along a diagonal: B keeps A's names and order; "
            "scattered dots: B's tensors were renamed or reordered and were matched by their content.",
            "Alignment map of tensors of A and B",
            _plot_alignment(result, ordered),
        )
    )
    rank = {e.pairing.a: i for i, e in enumerate(ordered)}
    odd = [
        (
            p.a,
            p.b,
            p.method,
            num(p.z, ".1f"),
            "yes" if p.renamed else "",
            "; ".join(
                x
                for x in (
                    f"rows {p.first_a}…{p.first_a + p.rows - 1} of A vs {p.first_b}… of B" if p.rows else "",
                    "B stores the transpose" if p.transposed else "",
                )
                if x
            ),
        )
        for p in sorted(al.pairs, key=lambda p: rank.get(p.a, len(rank)))
        if p.renamed or p.method != "name" or p.rows or p.transposed
    ]
    if odd:
        s.blocks.append(_Para("Pairs not matched plainly by name:"))
        s.blocks.append(
            _Table(
                ("tensor of A", "tensor of B", "method", "z", "renamed", "detail"), tuple(odd), frozenset({3})
            )
        )
    else:
        s.blocks.append(_Para("Every pair was matched by its name."))
    for label, names in (("Only in A", al.only_a), ("Only in B", al.only_b)):
        if names:
            s.blocks.append(_Para(f"{label} ({len(names)}):"))
            s.blocks.append(_List(tuple(names)))
    return s


def _localisation_section(result: CompareResult, ordered: Sequence[PairEvidence]) -> _Section:
    s = _Section("localisation", "Localisation: what B shares with A")
    places = _places(result, ordered)
    v = result.verdict
    if v.related:
        s.blocks.append(
            _Para(
                f"B holds {v.shared_fraction:.0%} of A's learnt parameters in related form. "
                f"Shared: {', '.join(v.shared) or 'none'}. Replaced: {', '.join(v.replaced) or 'none'}."
            )
        )
    else:
        s.blocks.append(_Para("No place of A is shared with B (the verdict finds no kinship)."))
    s.blocks.append(
        _Plot(
            "localisation",
            "A's places (embeddings, each layer, the head) from left to right: shared (every learnt matrix "
            "related to B's), replaced (none related), mixed, dropped (B has no counterpart), or not tested "
            "(no learnt matrix). Hatched: MLP hidden units permuted.",
            "Localisation of shared and replaced layers",
            _plot_localisation(places),
        )
    )
    s.blocks.append(
        _Table(
            ("place in A", "state", "related / tested learnt matrices", "units permuted"),
            tuple(
                (p.label, p.state, f"{p.related} / {p.tested}", "yes" if p.permuted else "") for p in places
            ),
        )
    )
    return s


def _metadata_section(result: CompareResult) -> _Section | None:
    m = result.metadata
    if m is None:
        return None
    s = _Section("metadata", "Configs and tokenizers")
    s.blocks.append(_Para(m.sentence))
    if m.files:
        s.blocks.append(
            _Table(
                ("file", "SHA-256 in A", "SHA-256 in B", "byte-identical"),
                tuple(
                    (
                        f.name,
                        f.sha256_a or "(absent)",
                        f.sha256_b or "(absent)",
                        "yes" if f.identical else "no",
                    )
                    for f in m.files
                ),
                cls="files",
            )
        )
    else:
        s.blocks.append(
            _Para("No config, tokenizer or chat-template files were found beside either checkpoint.")
        )
    if m.config is not None:
        c = m.config
        s.blocks.append(
            _Para(
                f"config.json: {'equal' if c.equal else 'different'} over {c.compared} keys"
                + (f"; differing: {', '.join(c.differing)}" if c.differing else "")
                + (f"; only in A: {', '.join(c.only_a)}" if c.only_a else "")
                + (f"; only in B: {', '.join(c.only_b)}" if c.only_b else "")
                + "."
            )
        )
        if c.side_by_side:
            s.blocks.append(
                _Table(
                    ("hyper-parameter", "A", "B"),
                    tuple((k, _value(a), _value(b)) for k, (a, b) in c.side_by_side.items()),
                )
            )
    if m.tokenizer is not None:
        t = m.tokenizer
        rows = [
            ("tokens (A / B)", f"{t.vocab_a:,} / {t.vocab_b:,}"),
            ("shared tokens", f"{t.shared_tokens:,} (Jaccard {num(t.jaccard, '.3f')})"),
            ("shared tokens with the same id", num(t.id_agreement, ".1%")),
            ("merges (A / B)", f"{_value(t.merges_a)} / {_value(t.merges_b)}"),
            ("merges identical, in order", _value(t.merges_identical)),
            ("leading merges in common", _value(t.merges_common_prefix)),
            ("added tokens equal", _value(t.added_tokens_equal)),
            ("special tokens equal", _value(t.special_tokens_equal)),
            ("same tokenizer / derived", f"{_value(t.identical)} / {_value(t.derived)}"),
        ]
        s.blocks.append(_Table(("tokenizer", ""), tuple(rows), cls="facts"))
    other = [
        ("generation_config.json equal", m.generation_config_equal),
        ("chat template equal", m.chat_template_equal),
    ]
    shown = tuple((k, _value(x)) for k, x in other if x is not None)
    if shown:
        s.blocks.append(_Table(("", ""), shown, cls="facts"))
    if m.problems:
        s.blocks.append(_Para("Files that could not be read:"))
        s.blocks.append(_List(tuple(m.problems)))
    return s


def _value(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return num(x, ".6g")
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _behavior_section(result: CompareResult) -> _Section | None:
    b = result.behavior
    if b is None:
        return None
    s = _Section("behavior", "Behaviour")
    s.blocks.append(_Para(b.sentence))
    s.blocks.append(
        _Table(
            ("model", "file", "items", "compared", "accuracy"),
            tuple(
                (m.name, m.path, f"{m.items:,}", f"{m.compared:,}", num(m.accuracy, ".1%")) for m in b.models
            ),
            numeric=frozenset({2, 3, 4}),
        )
    )
    rows = []
    for p in b.pairs:
        rows.append(
            (
                p.a,
                p.b,
                f"{p.n:,}",
                str(p.shared_errors),
                num(p.expected_shared_errors, ".1f"),
                "–" if p.shared_identical_wrong is None else str(p.shared_identical_wrong),
                f"{p.kappa:.3f} ({num(p.kappa_ci[0], '.2f')} – {num(p.kappa_ci[1], '.2f')})",
                num(p.log10_p, ".1f"),
                num(p.panel_z, ".1f"),
                _value(p.flagged),
            )
        )
    s.blocks.append(
        _Table(
            (
                "model",
                "model",
                "items",
                "shared errors",
                "expected",
                "same wrong answer",
                "κ (95% CI)",
                "log10 p",
                "panel z",
                "flagged",
            ),
            tuple(rows),
            numeric=frozenset(range(2, 9)),
        )
    )
    if b.notes:
        s.blocks.append(_List(tuple(b.notes)))
    return s


def _document(result: CompareResult, argv: Sequence[str] | None, now: dt.datetime) -> list[_Section]:
    ordered = _in_model_order(result)
    tested = sum(e.informative for e in result.evidence)
    sections = [
        _verdict_section(result, tested),
        _how_to_read(),
        _inputs_section(result, argv, now),
        _distribution_section(result),
        _sigma_section(result, ordered),
        _similarity_section(ordered),
        _localisation_section(result, ordered),
        _alignment_section(result, ordered),
        _weights_section(result, ordered),
    ]
    for extra in (_metadata_section(result), _behavior_section(result)):
        if extra is not None:
            sections.append(extra)
    return sections


# -- HTML ---------------------------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; --ink: #1d1d1f; --muted: #5b5b60; --line: #d8d8dc;
  --kin: #b3261e; --ok: #1b6e2d; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--ink); margin: 0 auto; max-width: 1120px; padding: 24px 28px 64px; background: #fff; }
h1 { font-size: 1.5rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 2.2em 0 0.6em; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
header p { margin: 0; color: var(--muted); }
nav { margin: 16px 0 8px; font-size: 0.9rem; }
nav a { color: var(--muted); margin-right: 14px; white-space: nowrap; }
p.verdict { font-size: 1.2rem; font-weight: 600; padding: 14px 18px; border-left: 6px solid var(--ok);
  background: #f1f7f2; margin: 0.4em 0; }
p.verdict.related { border-color: var(--kin); background: #fbf0ef; }
p.verdict.inconclusive { border-color: #888; background: #f3f3f3; }
p.confidence { font-size: 1rem; margin: 0.4em 0 1em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.82rem; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.facts td:first-child { color: var(--muted); }
table.files td:last-child, table.files td:nth-child(2), table.files td:nth-child(3) {
  font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.75rem;
  word-break: break-all; }
.scroll { overflow-x: auto; }
table.evidence td:first-child, table.evidence td:nth-child(2) {
  font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.75rem; }
figure { margin: 0.8em 0 1.4em; }
svg.plot { width: 100%; height: auto; display: block; }
figcaption { font-size: 0.85rem; color: var(--muted); margin-top: 4px; }
figure.empty { padding: 10px 14px; background: #f5f5f7; }
footer { margin-top: 3em; font-size: 0.8rem; color: var(--muted); }
@media print {
  @page { margin: 14mm; }
  body { max-width: none; padding: 0; font-size: 10pt; }
  nav { display: none; }
  h2 { break-after: avoid; }
  figure, tr, p.verdict { break-inside: avoid; }
  thead { display: table-header-group; }
  .scroll { overflow: visible; }
  table { font-size: 7.5pt; }
  p.verdict { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _html_block(block: _Block, n: int) -> str:
    if isinstance(block, _Para):
        cls = f' class="{_e(block.cls)}"' if block.cls else ""
        return f"<p{cls}>{_e(block.text)}</p>"
    if isinstance(block, _List):
        return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, _Table):
        head = "".join(f"<th>{_e(h)}</th>" for h in block.header) if any(block.header) else ""
        body = "".join(
            "<tr>"
            + "".join(
                f'<td class="num">{_e(c)}</td>' if i in block.numeric else f"<td>{_e(c)}</td>"
                for i, c in enumerate(row)
            )
            + "</tr>"
            for row in block.rows
        )
        cls = f' class="{_e(block.cls)}"' if block.cls else ""
        thead = f"<thead><tr>{head}</tr></thead>" if head else ""
        return f'<div class="scroll"><table{cls}>{thead}<tbody>{body}</tbody></table></div>'
    if block.figure is None:
        caption = f"<figcaption>{_e(block.caption)}</figcaption>"
        return f'<figure class="empty" id="plot-{block.key}">{caption}</figure>'
    svg = _svg(block.figure, f"f{n}", block.alt)
    return f'<figure id="plot-{block.key}">{svg}<figcaption>{_e(block.caption)}</figcaption></figure>'


def _html(result: CompareResult, sections: Sequence[_Section], now: dt.datetime) -> str:
    title = f"modelkin: {Path(result.diff.b.path).name} against {Path(result.diff.a.path).name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        # Nothing may be loaded: no scripts, no fonts, no images but the embedded ones.
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="generator" content="modelkin {_e(__version__)}">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>How B relates to A: {_e(result.verdict.relation.replace('_', ' '))}</h1>",
        f"<p>A = {_e(result.diff.a.path)}<br>B = {_e(result.diff.b.path)}</p>",
        f"<p>modelkin {_e(__version__)}, {now.strftime('%Y-%m-%d %H:%M UTC')}</p>",
        "</header>",
        "<nav>" + " ".join(f'<a href="#{s.id}">{_e(s.title)}</a>' for s in sections) + "</nav>",
        "<main>",
    ]
    n = 0
    for s in sections:
        parts.append(f'<section id="{s.id}"><h2>{_e(s.title)}</h2>')
        for block in s.blocks:
            n += 1
            parts.append(_html_block(block, n))
        parts.append("</section>")
    parts += [
        "</main>",
        f"<footer>Written by modelkin {_e(__version__)}. This page is self-contained: it loads nothing from "
        f"the network. The machine-readable result is <code>modelkin compare --json</code> (schema "
        f"{_e(COMPARE_SCHEMA)}).</footer>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


# -- Markdown -----------------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ") or " "


def _md_text(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", text)


def _md_block(block: _Block) -> str:
    if isinstance(block, _Para):
        text = _md_text(block.text)
        return f"**{text}**" if block.cls.startswith("verdict") else text
    if isinstance(block, _List):
        return "\n".join(f"- {_md_text(i)}" for i in block.items)
    if isinstance(block, _Table):
        header = block.header if any(block.header) else tuple(" " for _ in block.header)
        rule = ["---:" if i in block.numeric else "---" for i in range(len(header))]
        lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "| " + " | ".join(rule) + " |"]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
        return "\n".join(lines)
    if block.figure is None:
        return f"*{_md_text(block.caption)}*"
    data = base64.b64encode(_png(block.figure)).decode("ascii")
    return f"![{_md_text(block.alt)}](data:image/png;base64,{data})\n\n*{_md_text(block.caption)}*"


def _markdown(result: CompareResult, sections: Sequence[_Section], now: dt.datetime) -> str:
    parts = [
        f"# How B relates to A: {result.verdict.relation.replace('_', ' ')}",
        f"A = `{result.diff.a.path}`  \nB = `{result.diff.b.path}`  \n"
        f"modelkin {__version__}, {now.strftime('%Y-%m-%d %H:%M UTC')}",
    ]
    for s in sections:
        parts.append(f"## {s.title}")
        parts += [_md_block(b) for b in s.blocks]
    parts.append(
        f"*Written by modelkin {__version__}; self-contained (plots are embedded PNG). "
        f"Machine-readable: `modelkin compare --json` (schema {COMPARE_SCHEMA}).*"
    )
    return "\n\n".join(parts) + "\n"


# -- writing ------------------------------------------------------------------------------------------------

_FORMATS = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md"}


def write_report(result: CompareResult, path: PathArg, *, argv: Sequence[str] | None = None) -> Path:
    """Writes a self-contained report of ``result`` to ``path`` and returns the path.

    The format follows the suffix: ``.html``/``.htm`` (inline SVG plots) or ``.md``/``.markdown``
    (plots as PNG data URIs); any other suffix is a ``ValueError``. ``argv``, when given, is shown as
    the command line that produced the result (``sys.argv`` for a CLI). Every input file is read once
    more to compute its SHA-256. The file is written atomically: to a temporary file in the same
    folder, then renamed over ``path`` (mode 0644), so a reader never sees half a report; ``path``
    must not be one of the compared files.
    """
    out = Path(path)
    fmt = _FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"{out}: a report is written as .html or .md, not {out.suffix or 'a file without suffix'}"
        )
    target = out.resolve()
    for ck in (result.diff.a, result.diff.b):
        for f in ck.files:
            if Path(f.path).resolve() == target:
                raise ValueError(
                    f"{out}: is one of the compared files; the report must not overwrite an input"
                )
    try:
        import matplotlib
    except ImportError as e:  # pragma: no cover - matplotlib is a dependency of reports
        raise ImportError("modelkin reports need matplotlib: pip install matplotlib") from e
    now = dt.datetime.now(dt.timezone.utc)
    with matplotlib.rc_context(_RC):  # the report's style, for this call only
        sections = _document(result, argv, now)
        text = _html(result, sections, now) if fmt == "html" else _markdown(result, sections, now)
    folder = target.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return out
