"""The report as one self-contained HTML page: inline SVG plots, no scripts, fonts or external images, and a
Content-Security-Policy that forbids loading anything."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from pathlib import Path

from .._engine import __version__
from .._util import visible
from ..compare import COMPARE_SCHEMA, CompareResult
from .document import Block, Items, Para, Section, Table
from .plots import inline_svg

__all__ = ["render"]


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
    """Text for the page: control characters shown visibly (as in a terminal), then HTML-escaped."""
    return html.escape(visible(text), quote=True)


def _html_block(block: Block, n: int) -> str:
    if isinstance(block, Para):
        cls = f' class="{_e(block.cls)}"' if block.cls else ""
        return f"<p{cls}>{_e(block.text)}</p>"
    if isinstance(block, Items):
        return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Table):
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
    svg = inline_svg(block.figure, f"f{n}", block.alt)
    return f'<figure id="plot-{block.key}">{svg}<figcaption>{_e(block.caption)}</figcaption></figure>'


def render(result: CompareResult, sections: Sequence[Section], now: dt.datetime) -> str:
    """The report as one self-contained HTML page."""
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
