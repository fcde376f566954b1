"""``modelkin demo``: a small model and a Llama3-V-style noised copy of it, compared."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from typing import Any

from ..._util import num
from ...diff import diff
from ..console import console, finish_streaming_parser, progress_wanted, term
from .diff import print_diff

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``demo`` to the ``add_subparsers()`` object and returns its parser."""
    sp: argparse.ArgumentParser = subparsers.add_parser(
        "demo", help="write a small model and a Llama3-V-style noised copy, and compare them"
    )
    sp.add_argument("--out", default=None, help="folder to keep the two models in (default: a temporary one)")
    return finish_streaming_parser(sp, run)


def run(args: argparse.Namespace) -> int:
    """Runs ``modelkin demo`` for parsed arguments; returns the exit status."""
    out, progress = console(sys.stdout), progress_wanted(args)
    from ...demo import NOISE_SIGMA, write_demo_pair

    with tempfile.TemporaryDirectory(prefix="modelkin-demo-") as tmp:
        folder = args.out or tmp
        a, b = write_demo_pair(folder)
        res = diff(a, b, threads=args.threads, progress=progress)
        if args.json:
            print(json.dumps(res.to_dict(), indent=1))
            return 0
        kept = " (deleted on exit)" if args.out is None else ""
        out.print(
            f"Wrote a small Llama-shaped model and a copy with N(0, {NOISE_SIGMA:g}²) noise added to every "
            f"tensor (the Llama3-V recipe) to {term(folder)}{kept}.\n"
        )
        print_diff(res, out, 12)
        tot = res.totals()
        out.print(
            "\n[bold]What to notice:[/] b − a has mean ≈ 0, no skew, no excess kurtosis, and the "
            f"[bold]same σ ≈ {num(tot['d_std'])}[/] in every tensor "
            f"(from {num(tot['d_std_min'])} to {num(tot['d_std_max'])}), "
            "in projections whose weights are ~0.02 and in norm gains that are ~1.0 alike. Training never "
            "changes weights like that; adding noise on purpose does."
        )
    return 0
