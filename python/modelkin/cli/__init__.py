"""The ``modelkin`` command line.

Commands: inspect, diff, compare, fingerprint, registry, identify, behavior and demo, one module each in
:mod:`modelkin.cli.commands` (in the order of ``--help``: :data:`COMMANDS`). Exit status: 0 on success,
1 only when a check asked for with ``compare --fail-on`` fails, 2 on any error (``modelkin: error: …`` on
stderr, no traceback), 130 on Ctrl-C. Colour only on a terminal and never with ``NO_COLOR``; ``--json``
for pipelines.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import ModelkinError
from .commands import (
    EXIT_CHECK_FAILED,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    behavior,
    compare,
    demo,
    diff,
    fingerprint,
    identify,
    inspect,
    registry,
)
from .console import console, term

__all__ = ["COMMANDS", "EXIT_CHECK_FAILED", "EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "main"]

#: The commands, in the order ``modelkin --help`` lists them.
COMMANDS = (inspect, diff, compare, fingerprint, registry, identify, behavior, demo)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modelkin",
        description="Was this checkpoint derived from that one? Compare checkpoints tensor by tensor.",
    )
    p.add_argument("--version", action="version", version=f"modelkin {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modelkin`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    err = console(sys.stderr)
    try:
        run: Callable[[argparse.Namespace], int] = args.run
        return run(args)
    except KeyboardInterrupt:
        err.print("modelkin: interrupted", markup=False)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): exit quietly, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (ModelkinError, OSError, ValueError, TypeError) as e:
        err.print(f"modelkin: error: {term(e)}", soft_wrap=True)
        return EXIT_ERROR
