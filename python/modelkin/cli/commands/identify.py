"""``modelkin identify``: the registered models ranked as ancestors of a suspect."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.table import Table

from ..._util import json_safe, num
from ...registry import Registry
from ..console import console, finish_streaming_parser, term, warn

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``identify`` to the ``add_subparsers()`` object and returns its parser."""
    sp: argparse.ArgumentParser = subparsers.add_parser(
        "identify", help="rank the registered models as ancestors of a suspect"
    )
    sp.add_argument("suspect", help="checkpoint or fingerprint file")
    sp.add_argument(
        "--registry", default=None, help="registry file (default: MODELKIN_REGISTRY or the data dir)"
    )
    sp.add_argument("--top", type=int, default=10, help="entries shown (0 = all)")
    return finish_streaming_parser(sp, run)


def run(args: argparse.Namespace) -> int:
    """Runs ``modelkin identify`` for parsed arguments; returns the exit status."""
    out = console(sys.stdout)
    reg = Registry(args.registry, on_skip=warn)
    matches = reg.identify(args.suspect, top=args.top, threads=args.threads)
    if args.json:
        print(
            json.dumps(
                json_safe({"registry": str(reg.path), "matches": [m.to_dict() for m in matches]}),
                indent=1,
            )
        )
        return 0
    t = Table(show_edge=False, pad_edge=False)
    for col in ("rank", "model", "relation", "log10 p", "shared", "verdict"):
        t.add_column(col, justify="right" if col in ("rank", "log10 p", "shared") else "left")
    for i, m in enumerate(matches, 1):
        t.add_row(
            str(i),
            term(m.name),
            m.relation,
            num(m.log10_p, ".1f"),
            f"{m.shared_fraction:.0%}",
            term(m.sentence),
        )
    out.print(t)
    return 0
