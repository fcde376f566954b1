"""The commands of ``modelkin``, one module each.

Each module has ``add_parser(subparsers)``, which adds its subcommand (and sets ``run`` as the
subcommand's default, so :func:`modelkin.cli.main` dispatches without a table of names), and
``run(args) -> int``, which returns the exit status. Expected errors are raised, not printed:
:func:`modelkin.cli.main` turns them into ``modelkin: error: …`` and :data:`EXIT_ERROR`.
"""

from __future__ import annotations

__all__ = ["EXIT_CHECK_FAILED", "EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK"]

#: The command did what was asked.
EXIT_OK = 0
#: A check the user asked for failed (``compare --fail-on``); only then.
EXIT_CHECK_FAILED = 1
#: The tool could not do what was asked (bad input, unreadable file, …).
EXIT_ERROR = 2
#: Ctrl-C.
EXIT_INTERRUPTED = 130
