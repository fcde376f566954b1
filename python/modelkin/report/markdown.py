"""The report as one Markdown file, plots embedded as PNG data URIs."""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Sequence

from .._engine import __version__
from ..compare import COMPARE_SCHEMA, CompareResult
from .document import Block, Items, Para, Section, Table
from .plots import png_bytes

__all__ = ["render"]


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ") or " "


def _md_text(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", text)


def _md_block(block: Block) -> str:
    if isinstance(block, Para):
        text = _md_text(block.text)
        return f"**{text}**" if block.cls.startswith("verdict") else text
    if isinstance(block, Items):
        return "\n".join(f"- {_md_text(i)}" for i in block.items)
    if isinstance(block, Table):
        header = block.header if any(block.header) else tuple(" " for _ in block.header)
        rule = ["---:" if i in block.numeric else "---" for i in range(len(header))]
        lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "| " + " | ".join(rule) + " |"]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
        return "\n".join(lines)
    if block.figure is None:
        return f"*{_md_text(block.caption)}*"
    data = base64.b64encode(png_bytes(block.figure)).decode("ascii")
    return f"![{_md_text(block.alt)}](data:image/png;base64,{data})\n\n*{_md_text(block.caption)}*"


def render(result: CompareResult, sections: Sequence[Section], now: dt.datetime) -> str:
    """The report as one Markdown file."""
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
