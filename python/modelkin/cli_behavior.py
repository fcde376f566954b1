"""``python -m modelkin.cli_behavior behavior …``: the ``behavior`` command on its own, as it ran before
:mod:`modelkin.cli` wired it in. The command lives in :mod:`modelkin.cli.commands.behavior`; this module
keeps the stand-alone entry point and its old names (``add_behavior_parser``, ``run_behavior``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .cli.commands import EXIT_INTERRUPTED, EXIT_OK
from .cli.commands.behavior import add_parser as add_behavior_parser
from .cli.commands.behavior import print_behavior
from .cli.commands.behavior import run as run_behavior

__all__ = ["add_behavior_parser", "main", "print_behavior", "run_behavior"]


def main(argv: Sequence[str] | None = None) -> int:
    """The stand-alone entry point: a parser with the ``behavior`` subcommand only."""
    parser = argparse.ArgumentParser(prog="modelkin")
    add_behavior_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    try:
        return run_behavior(args)
    except KeyboardInterrupt:
        print("modelkin: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
