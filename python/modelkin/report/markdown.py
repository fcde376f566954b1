"""The report as one Markdown file, plots embedded as PNG data URIs."""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Sequence

from .._engine import __version__
from .._util import visible
from ..compare import COMPARE_SCHEMA, CompareResult
from .document import Block, Items, Para, Section, Table
from .plots import png_bytes

__all__ = ["md_text", "render"]


_CELL = r"([\\|`])"
_TEXT = r"([\\`*_\[\]#|])"


def md_text(text: object, cell: bool = False) -> str:
    """``text`` safe to put in the Markdown report: control characters shown visibly, ``&``, ``<``
    and ``>`` as HTML entities (no raw tag from a tensor name or a config value reaches a renderer), and
    in running text (``cell`` False) the Markdown punctuation backslash-escaped; in a table cell
    (``cell`` True) only backslashes, pipes and backticks, and an empty cell as a space."""
    s = re.sub(_CELL if cell else _TEXT, r"\\\1", visible(text))
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s or (" " if cell else "")


def _md_block(block: Block) -> str:
    if isinstance(block, Para):
        text = md_text(block.text)
        return f"**{text}**" if block.cls.startswith("verdict") else text
    if isinstance(block, Items):
        return "\n".join(f"- {md_text(i)}" for i in block.items)
    if isinstance(block, Table):
        header = block.header if any(block.header) else tuple(" " for _ in block.header)
        rule = ["---:" if i in block.numeric else "---" for i in range(len(header))]
        lines = [
            "| " + " | ".join(md_text(h, cell=True) for h in header) + " |",
            "| " + " | ".join(rule) + " |",
        ]
        lines += ["| " + " | ".join(md_text(c, cell=True) for c in row) + " |" for row in block.rows]
        return "\n".join(lines)
    if block.figure is None:
        return f"*{md_text(block.caption)}*"
    data = base64.b64encode(png_bytes(block.figure)).decode("ascii")
    return f"![{md_text(block.alt)}](data:image/png;base64,{data})\n\n*{md_text(block.caption)}*"


def render(result: CompareResult, sections: Sequence[Section], now: dt.datetime) -> str:
    """The report as one Markdown file."""
    parts = [
        f"# How B relates to A: {result.verdict.relation.replace('_', ' ')}",
        f"A = {md_text(result.diff.a.path)}  \nB = {md_text(result.diff.b.path)}  \n"
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
