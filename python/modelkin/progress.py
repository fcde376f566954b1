"""A progress bar on stderr for long streaming runs, fed by the engine's byte counters."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Union

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

__all__ = ["ProgressArg", "progress_callback"]

#: What the public API accepts as ``progress``: nothing, ``True`` for a bar on stderr (shown only on
#: a terminal), or a callable that receives ``(done_bytes, total_bytes)`` about ten times a second.
ProgressArg = Union[bool, Callable[[int, int], object], None]


@contextmanager
def progress_callback(progress: ProgressArg, label: str) -> Iterator[Callable[[int, int], object] | None]:
    """Turns the user's ``progress`` argument into a callback for the engine."""
    if progress is None or progress is False:
        yield None
        return
    if callable(progress):
        yield progress
        return
    if not sys.stderr.isatty():
        yield None
        return
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=Console(stderr=True),
        redirect_stdout=False,
        redirect_stderr=False,
    )
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total or None)

    with bar:
        yield update
