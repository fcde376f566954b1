"""``modelkin diff``: checkpoint B against A, tensor by tensor."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from ..._util import num
from ...diff import DiffResult, diff
from ..console import console, finish_streaming_parser, progress_wanted, shape, term

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``diff`` to the ``add_subparsers()`` object and returns its parser."""
    sp: argparse.ArgumentParser = subparsers.add_parser(
        "diff", help="compare checkpoint B against A, tensor by tensor"
    )
    sp.add_argument("a", help="the reference checkpoint")
    sp.add_argument("b", help="the checkpoint compared against it")
    sp.add_argument(
        "--top", type=int, default=25, help="rows in the table, largest differences first (0 = all)"
    )
    return finish_streaming_parser(sp, run)


def run(args: argparse.Namespace) -> int:
    """Runs ``modelkin diff`` for parsed arguments; returns the exit status."""
    out, progress = console(sys.stdout), progress_wanted(args)
    res = diff(args.a, args.b, threads=args.threads, progress=progress)
    if args.json:
        print(json.dumps(res.to_dict(), indent=1))
    else:
        print_diff(res, out, args.top)
    return 0


def print_diff(res: DiffResult, out: Console, top: int) -> None:
    """The diff as a table, largest differences first, with the totals."""
    tot = res.totals()
    out.print(f"[bold]A[/] {term(res.a.path)}  ({res.a.n_params:,} parameters, {len(res.a.tensors)} tensors)")
    out.print(f"[bold]B[/] {term(res.b.path)}  ({res.b.n_params:,} parameters, {len(res.b.tensors)} tensors)")
    rows = res.largest_first()
    shown = rows if top <= 0 else rows[:top]
    t = Table(show_edge=False, pad_edge=False, title=None)
    for col in ("tensor", "shape", "dtypes", "σ(d)", "mean(d)", "max|d|", "‖d‖/‖a‖", "1−cos", "equal"):
        t.add_column(col, justify="left" if col in ("tensor", "shape", "dtypes") else "right")
    for p in shown:
        s = p.stats
        dt = p.dtype_a if p.dtype_a == p.dtype_b else f"{p.dtype_a}→{p.dtype_b}"
        t.add_row(
            term(p.name),
            shape(p.shape),
            term(dt),
            num(s.d.std),
            num(s.d.mean if s.n else math.nan),
            num(s.max_abs_d),
            num(s.rel_change),
            num(s.one_minus_cosine),
            f"{100 * s.equal_fraction:.1f}%" if math.isfinite(s.equal_fraction) else "–",
        )
    out.print(t)
    if len(shown) < len(rows):
        out.print(f"… {len(rows) - len(shown)} more pairs (use --top 0 for all)")
    for label, items in (("only in A", res.only_a), ("only in B", res.only_b)):
        if items:
            names = ", ".join(term(x.name) for x in items[:8]) + (" …" if len(items) > 8 else "")
            out.print(f"[yellow]{len(items)} tensor(s) {label}:[/] {names}")
    for a, b in res.shape_mismatch:
        out.print(f"[yellow]shape differs:[/] {term(a.name)}  {shape(a.shape)} vs {shape(b.shape)}")
    out.print(
        f"[bold]totals[/]: {tot['pairs']} pairs, {tot['elements']:,} elements, "
        f"{100 * tot['equal_fraction'] if tot['pairs'] else 0:.2f}% bit-equal; "
        f"σ(d) = {num(tot['d_std'])} over the model "
        f"(per tensor {num(tot['d_std_min'])} … {num(tot['d_std_max'])}), "
        f"mean(d) = {num(tot['d_mean'])}, skew {num(tot['d_skewness'], '.2f')}, "
        f"excess kurtosis {num(tot['d_kurtosis'], '.2f')}, 1−cos = {num(tot['one_minus_cosine'])}"
    )
    out.print(f"{res.seconds:.2f} s on {res.threads} thread(s)")
