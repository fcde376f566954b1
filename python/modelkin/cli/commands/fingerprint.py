"""``modelkin fingerprint``: a compact fingerprint of a checkpoint, written to a file."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..._output import check_output, refuse_inputs
from ...fingerprint import FORMAT, fingerprint
from ..console import add_force_option, console, finish_streaming_parser, progress_wanted, term

__all__ = ["add_parser", "run"]


def _sample_size(text: str) -> int:
    """``--sample-size``: a positive integer (a fingerprint is its sampled values; 0 would compare
    nothing). Its upper bound is the engine's, checked when the run starts."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer (values sampled per tensor), got {text}"
        )
    if n >= 2**64:
        raise argparse.ArgumentTypeError(f"far too large: {text}")
    return n


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``fingerprint`` to the ``add_subparsers()`` object and returns its parser."""
    sp: argparse.ArgumentParser = subparsers.add_parser(
        "fingerprint", help="write a compact fingerprint of a checkpoint"
    )
    sp.add_argument("path", help="the checkpoint")
    sp.add_argument("-o", "--output", required=True, help="fingerprint file to write")
    add_force_option(sp)
    sp.add_argument("--sample-size", type=_sample_size, default=2048, help="values sampled per tensor")
    return finish_streaming_parser(sp, run)


def run(args: argparse.Namespace) -> int:
    """Runs ``modelkin fingerprint`` for parsed arguments; returns the exit status."""
    out, progress = console(sys.stdout), progress_wanted(args)
    check_output(args.output, [args.path], force=args.force, what="fingerprint")
    fp = fingerprint(args.path, threads=args.threads, progress=progress, sample_size=args.sample_size)
    refuse_inputs(args.output, [f.path for f in fp.checkpoint.files], "fingerprint")
    path = fp.save(args.output)
    size = path.stat().st_size
    keyed = sum(t.token_values is not None for t in fp.tensors)
    if args.json:
        print(
            json.dumps(
                {
                    "output": str(path),
                    "bytes": size,
                    "tensors": len(fp.tensors),
                    "format": FORMAT,
                    "token_keyed": keyed,
                }
            )
        )
    else:
        tokens = (
            f"; {keyed} token-keyed matrices over {fp.tokens.ids.size:,} tokens"
            if fp.tokens is not None
            else "; no tokenizer found, no token-keyed rows"
        )
        out.print(
            f"wrote {term(path)} ({size:,} bytes, {FORMAT}, {len(fp.tensors)} tensors, "
            f"{fp.sample_size} values each{tokens})"
        )
    return 0
