"""The report as a document, before it is HTML or Markdown: sections of paragraphs, lists, tables and
plots, and the words and orderings the sections share."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from scipy.stats import norm

from .._util import num, sha256_file
from ..compare import CompareResult
from ..evidence.weights import RELATED_LOG10_P, PairEvidence
from ..names import layer_index
from ..verdict import KIN_LOG10_P, Verdict

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CHANCE_Z",
    "KIND_COLOURS",
    "METHOD_COLOURS",
    "RELATED_Z",
    "TOP_TENSORS",
    "Block",
    "Context",
    "Items",
    "Para",
    "Plot",
    "Section",
    "Table",
    "confidence_sentence",
]


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

PRE = re.compile(r"emb|wte|wpe|tok_|token", re.IGNORECASE)


@dataclass(frozen=True)
class Para:
    """A paragraph; ``cls`` styles it in HTML (``verdict …``, ``confidence``)."""

    text: str
    cls: str = ""


@dataclass(frozen=True)
class Items:
    """A bulleted list."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table: header, rows of text, the right-aligned (numeric) columns."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: frozenset[int] = frozenset()  # right-aligned columns
    cls: str = ""


@dataclass(frozen=True)
class Plot:
    """A figure with its caption and alternative text."""

    key: str
    caption: str
    alt: str
    figure: Figure | None  # None: nothing to draw (the caption says why)


Block = Union[Para, Items, Table, Plot]


@dataclass
class Section:
    """One section of the report: its id (the page anchor), title and blocks."""

    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)


def bytes_text(n: int) -> str:
    """A byte count for people: ``1.5 MiB (1,572,864 bytes)``."""
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


def group_of(name: str) -> str:
    """A tensor's place in the model: ``"layer N"``, or ``"pre"`` / ``"post"`` for tensors outside."""
    layer = layer_index(name)
    if layer is not None:
        return f"layer {layer}"
    return "pre" if PRE.search(name) else "post"


def short_group(group: str) -> str:
    """A group's axis label: ``L3`` for ``layer 3``, else the group itself."""
    return "L" + group.split()[1] if group.startswith("layer ") else group


def in_model_order(result: CompareResult) -> list[PairEvidence]:
    """The evidence in the model's order: embeddings, then layer by layer, then the rest; within a
    group, in A's file order."""
    where = {t.name: (t.file, t.offset) for t in result.diff.a.tensors}

    def key(e: PairEvidence) -> tuple[int, int, int, int, str]:
        name = e.pairing.a
        file, offset = where.get(name, (0, 0))
        layer = layer_index(name)
        if layer is not None:
            return (1, layer, file, offset, name)
        return (0 if PRE.search(name) else 2, 0, file, offset, name)

    return sorted(result.evidence, key=key)


def most_telling(result: CompareResult) -> list[PairEvidence]:
    """The tensors whose d tells most: learnt matrices first, most significant kinship first."""
    drawable = [e for e in result.evidence if e.stats.n > 1 and e.stats.histogram() is not None]
    drawable.sort(key=lambda e: (not e.informative, e.log10_p, -e.numel))
    return drawable[:TOP_TENSORS]


def shorten(s: str, n: int) -> str:
    """``s`` cut to ``n`` characters from the left, an ellipsis marking the cut."""
    return s if len(s) <= n else "…" + s[-(n - 1) :]


@dataclass(frozen=True)
class Context:
    """What every section builder may draw on."""

    result: CompareResult
    argv: Sequence[str] | None  # the command line shown in the inputs, when given
    now: dt.datetime  # the report's date
    ordered: Sequence[PairEvidence]  # the evidence in the model's order
    tested: int  # learnt matrices the model-level p-value was adjusted over


def hash_or_why(path: str) -> str:
    """A file's SHA-256, or why it could not be hashed here (the report may be written elsewhere)."""
    try:
        return sha256_file(path)
    except FileNotFoundError:
        return "(not found here: not hashed)"
    except OSError as e:
        return f"(cannot be read: {e.strerror})"


def value_text(x: Any) -> str:
    """A config value for a table: "–" for none, yes/no, numbers grouped or to 6 digits."""
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return num(x, ".6g")
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)
