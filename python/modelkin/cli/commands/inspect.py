"""``modelkin inspect``: statistics of every tensor of one checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from ..._util import num
from ...diff import InspectResult, inspect
from ..console import console, finish_streaming_parser, progress_wanted, shape, term

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``inspect`` to the ``add_subparsers()`` object and returns its parser."""
    sp: argparse.ArgumentParser = subparsers.add_parser(
        "inspect", help="statistics of every tensor of one checkpoint"
    )
    sp.add_argument(
        "path", help="checkpoint: .safetensors, .gguf, PyTorch .bin/.pt, .npy/.npz, index, or folder"
    )
    return finish_streaming_parser(sp, run)


def run(args: argparse.Namespace) -> int:
    """Runs ``modelkin inspect`` for parsed arguments; returns the exit status."""
    out, progress = console(sys.stdout), progress_wanted(args)
    res_i = inspect(args.path, threads=args.threads, progress=progress)
    if args.json:
        print(json.dumps(res_i.to_dict(), indent=1))
    else:
        _print_inspect(res_i, out)
    return 0


def _print_inspect(res: InspectResult, out: Console) -> None:
    ck = res.checkpoint
    out.print(
        f"[bold]{term(ck.path)}[/]  {term(ck.format)}, {len(ck.files)} file(s), {len(ck.tensors)} tensors, "
        f"{ck.n_params:,} parameters ({', '.join(f'{term(k)} {v:,}' for k, v in ck.dtypes.items())})"
    )
    t = Table(show_edge=False, pad_edge=False)
    for col in ("tensor", "dtype", "shape", "mean", "std", "skew", "ex.kurt", "min", "max", "NaN/Inf"):
        t.add_column(col, justify="left" if col in ("tensor", "dtype", "shape") else "right")
    for r in res.tensors:
        s = r.stats
        t.add_row(
            term(r.name),
            term(r.dtype),
            shape(r.shape),
            num(s.mean),
            num(s.std),
            num(s.skewness, ".2f"),
            num(s.kurtosis, ".2f"),
            num(s.min),
            num(s.max),
            f"{s.nan}/{s.inf}" if s.nan or s.inf else "",
        )
    out.print(t)
    out.print(f"{res.seconds:.2f} s on {res.threads} thread(s)")
