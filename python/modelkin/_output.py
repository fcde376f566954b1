"""The one guard every file modelkin writes goes through (fingerprints, reports, demo models).

Two steps. :func:`check_output`, before any weights are read: the path is not an input, not inside an
input folder (unless ``force``), its folder exists (a missing folder is refused, never created), is
writable, and the path is not a folder or a special file. :func:`write_bytes` / :func:`atomic_output`,
when the result is ready: written to a temporary file in the same folder, then renamed over the path,
so a reader sees the old file or the new one, never half of one. The temporary file is removed on any
exception and on SIGTERM (a handler that raises, installed only while writing and only in the main
thread; the previous handler is then restored and the signal delivered to it again). A full disk is
one :class:`~modelkin.errors.OutputError` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import Union

from .errors import OutputError
from .sidecar import KNOWN_FILES, metadata_folder

__all__ = ["PathArg", "atomic_output", "check_output", "refuse_inputs", "write_bytes"]

PathArg = Union[str, "os.PathLike[str]"]

#: Errors that mean the device (or the user's quota) is full.
_FULL = (errno.ENOSPC, errno.EDQUOT)


def _real(path: Path) -> Path:
    """``path`` with its folder resolved (the name itself is kept: the file may not exist yet)."""
    return path.parent.resolve() / path.name


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file: the same resolved path, or the same inode (hard links)."""
    if _real(a) == _real(b) or a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_inputs(path: PathArg, inputs: Iterable[PathArg], what: str = "output") -> None:
    """Raises :class:`OutputError` when ``path`` is one of the files ``inputs`` (or a link to one)."""
    out = Path(path)
    for inp in inputs:
        if _same_file(out, Path(inp)):
            raise OutputError(f"{out}: is an input of this command; the {what} must not overwrite an input")


def check_output(
    path: PathArg, inputs: Iterable[PathArg] = (), *, force: bool = False, what: str = "output"
) -> Path:
    """Checks that the ``what`` may be written to ``path``, before anything is read; returns the path.

    Refused (an :class:`OutputError` naming the file): an input file, or a config or tokenizer file
    beside one (never, even with ``force``); a file inside an input folder (unless ``force``); a path
    whose folder does not exist or is not writable; a folder; a special file (a device, a FIFO, a
    socket). Inputs that do not exist on disk (hub ids) are left to :func:`refuse_inputs` once their
    files are known.
    """
    out = Path(path)
    if not str(path):
        raise OutputError(f"the {what} needs a file name")
    folder = out.parent
    if not folder.is_dir():
        why = "is not a folder" if folder.exists() else "does not exist (it is not created)"
        raise OutputError(f"{out}: the folder {folder} {why}")
    if out.is_dir():
        raise OutputError(f"{out}: is a folder; the {what} needs a file name")
    if out.exists() and not stat.S_ISREG(out.stat().st_mode):
        raise OutputError(f"{out}: is not a regular file; refusing to replace it with the {what}")
    for inp in inputs:
        p = Path(inp)
        if not p.exists():
            continue
        if p.is_dir():
            if not force and _real(out).is_relative_to(p.resolve()):
                raise OutputError(
                    f"{out}: is inside the input folder {p}; writing the {what} there could replace a "
                    "model file (give --force to write there anyway)"
                )
        elif _same_file(out, p):
            raise OutputError(f"{out}: is an input of this command; the {what} must not overwrite an input")
        # The config and tokenizer files beside the weights are read too: inputs as much as the weights.
        refuse_inputs(out, (f for f in (metadata_folder(p) / n for n in KNOWN_FILES) if f.exists()), what)
    try:  # a real probe: permissions, read-only mounts and ACLs alike
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{out.name}.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{out}: cannot write in {folder} ({e.strerror})") from None
    return out


class _Terminated(BaseException):
    """Raised by the SIGTERM handler while a file is written, so the temporary file is removed."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


@contextlib.contextmanager
def _terminate_raises() -> Iterator[bool]:
    """While inside: SIGTERM raises :class:`_Terminated` (main thread only, and not when SIGTERM is
    ignored). Yields whether the handler was installed; restores the previous handler on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_IGN:
        yield False
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield True
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _error(out: Path, what: str, e: OSError) -> OutputError:
    if e.errno in _FULL:
        return OutputError(f"{out}: no space left on the device for the {what}; nothing was written")
    return OutputError(f"{out}: cannot write the {what} ({e.strerror or e}); nothing was written")


@contextlib.contextmanager
def atomic_output(path: PathArg, what: str = "output") -> Iterator[Path]:
    """Yields a temporary path in ``path``'s folder to write to; renames it over ``path`` (mode 0644)
    when the block ends. On any exception, or SIGTERM, the temporary file is removed and ``path`` left
    as it was; an ``OSError`` becomes an :class:`OutputError` naming ``path`` (a full disk says so)."""
    out = Path(path)
    try:
        fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as e:
        raise _error(out, what, e) from None
    tmp = Path(name)
    terminated = False
    try:
        with _terminate_raises():
            try:
                yield tmp
                os.chmod(tmp, 0o644)
                os.replace(tmp, out)
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
    except _Terminated:
        terminated = True
    except OSError as e:
        raise _error(out, what, e) from None
    if terminated:  # the handler is restored: let it (or the default action) have the signal
        signal.raise_signal(signal.SIGTERM)
        raise OutputError(f"{out}: terminated while writing the {what}; nothing was written")


def _write(fd: int, data: memoryview) -> int:
    """One ``os.write`` (a seam for tests that simulate a full disk)."""
    return os.write(fd, data)


def write_bytes(path: PathArg, data: bytes, what: str = "output") -> Path:
    """Writes ``data`` to ``path`` through :func:`atomic_output` (flushed to disk before the rename)
    and returns the path."""
    out = Path(path)
    with atomic_output(out, what) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC)
        try:
            view = memoryview(data)
            while view:
                view = view[_write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    return out
