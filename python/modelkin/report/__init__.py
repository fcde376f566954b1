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

import datetime as dt
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Union

from .._output import refuse_inputs, write_bytes
from ..compare import CompareResult
from . import html, markdown, sections
from .document import Context, Section, confidence_sentence, in_model_order
from .plots import RC

__all__ = ["SECTIONS", "confidence_sentence", "report_format", "write_report"]

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


#: Each section's builder in :mod:`modelkin.report.sections`, named after its id (``how-to-read`` →
#: ``how_to_read``); a section listed above without a builder fails here, on import.
_BUILDERS: dict[str, Callable[[Section, Context], Section | None]] = {
    sid: getattr(sections, sid.replace("-", "_")) for sid, _ in SECTIONS
}


def _document(result: CompareResult, argv: Sequence[str] | None, now: dt.datetime) -> list[Section]:
    """The sections of the report, in the order of :data:`SECTIONS` (those with nothing to show left out)."""
    c = Context(result, argv, now, in_model_order(result), sum(e.informative for e in result.evidence))
    built = (_BUILDERS[sid](Section(sid, title), c) for sid, title in SECTIONS)
    return [s for s in built if s is not None]


_FORMATS = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md"}


def report_format(path: PathArg) -> str:
    """``"html"`` or ``"md"``, as ``path``'s suffix says; a ``ValueError`` naming the file otherwise."""
    out = Path(path)
    fmt = _FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"{out}: a report is written as .html or .md, not {out.suffix or 'a file without suffix'}"
        )
    return fmt


def write_report(result: CompareResult, path: PathArg, *, argv: Sequence[str] | None = None) -> Path:
    """Writes a self-contained report of ``result`` to ``path`` and returns the path.

    The format follows the suffix: ``.html``/``.htm`` (inline SVG plots) or ``.md``/``.markdown``
    (plots as PNG data URIs); any other suffix is a ``ValueError``. ``argv``, when given, is shown as
    the command line that produced the result (``sys.argv`` for a CLI). Every input file is read once
    more to compute its SHA-256. The file is written atomically: to a temporary file in the same
    folder, then renamed over ``path`` (mode 0644), so a reader never sees half a report
    (:mod:`modelkin._output`); ``path`` must not be one of the compared files
    (:class:`~modelkin.errors.OutputError`).
    """
    out = Path(path)
    fmt = report_format(out)
    refuse_inputs(out, (f.path for ck in (result.diff.a, result.diff.b) for f in ck.files), "report")
    try:
        import matplotlib
    except ImportError as e:  # pragma: no cover - matplotlib is a dependency of reports
        raise ImportError("modelkin reports need matplotlib: pip install matplotlib") from e
    now = dt.datetime.now(dt.timezone.utc)
    with matplotlib.rc_context(RC):  # the report's style, for this call only
        parts = _document(result, argv, now)
        text = (html if fmt == "html" else markdown).render(result, parts, now)
    write_bytes(out, text.encode("utf-8"), "report")
    return out
