"""What every command prints with: a rich console with the CLI's manners, and small formatting helpers.

Colour only on a terminal and never with ``NO_COLOR``; off a terminal tables are 160 columns wide (unless
``COLUMNS`` says otherwise); a closed pipe is left to :func:`modelkin.cli.main`, which exits quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape as _markup_escape

from .._util import visible

__all__ = [
    "add_common_options",
    "add_force_option",
    "console",
    "finish_streaming_parser",
    "no_color",
    "progress_wanted",
    "shape",
    "term",
    "warn",
]


def term(value: object) -> str:
    """``value`` as text safe to print on a terminal through rich, markup on: every control character
    shown visibly (ESC as ``\\x1b``, newline as ``\\n``) and rich markup neutralised (``[bold]`` is
    printed as it is). Every name, path, config value and message from a file goes through this."""
    return _markup_escape(visible(value))


def no_color() -> bool:
    """Whether ``NO_COLOR`` asks for plain text."""
    return bool(os.environ.get("NO_COLOR"))


class _Console(Console):
    """A rich console that leaves a closed pipe to :func:`main`, so every format exits the same way."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


def console(stream: Any) -> Console:
    """A console writing to ``stream`` (``sys.stdout`` or ``sys.stderr``)."""
    isatty = getattr(stream, "isatty", lambda: False)()
    # Off a terminal rich would wrap at 80 columns; tables piped to a file or a CI log read better wide.
    width = None if isatty or os.environ.get("COLUMNS") else 160
    # NO_COLOR: plain text, no styles at all (bold included), for screen readers and logs alike.
    return _Console(
        file=stream,
        width=width,
        highlight=False,
        emoji=False,  # ":smile:" in a tensor name stays as it is
        color_system=None if no_color() else "auto",
    )


def warn(message: str) -> None:
    """Prints ``modelkin: warning: message`` on stderr (one line, no markup)."""
    console(sys.stderr).print(f"modelkin: warning: {visible(message)}", markup=False, soft_wrap=True)


def progress_wanted(args: argparse.Namespace) -> bool:
    """Whether to draw a progress bar: it redraws with cursor codes, so none under ``NO_COLOR``, none
    with ``--quiet`` or ``--json``."""
    return not (args.quiet or args.json or no_color())


def shape(dims: Sequence[int]) -> str:
    """A tensor shape as ``4096×11008`` (``scalar`` for none)."""
    return "×".join(map(str, dims)) if dims else "scalar"


def add_common_options(sp: argparse.ArgumentParser) -> None:
    """``--json``, ``--threads`` and ``--quiet``, as every streaming command takes them."""
    sp.add_argument("--json", action="store_true", help="print JSON (versioned schema) instead of a table")
    sp.add_argument(
        "--threads",
        type=int,
        default=None,
        help="worker threads (default: MODELKIN_NUM_THREADS or all cores)",
    )
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_force_option(sp: argparse.ArgumentParser) -> None:
    """``--force``, for the commands that write a file: allows writing inside an input folder (never
    over an input file: see :mod:`modelkin._output`)."""
    sp.add_argument(
        "--force",
        action="store_true",
        help="write the output inside an input folder (never over an input file)",
    )


def finish_streaming_parser(
    sp: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """Adds the common options after the command's own (the order ``--help`` lists them in), makes
    ``run`` the command's entry, and returns ``sp``."""
    add_common_options(sp)
    sp.set_defaults(run=run)
    return sp
