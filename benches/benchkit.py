"""Helpers shared by the benchmark and evaluation scripts in this folder (not part of the package)."""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

State = dict[str, np.ndarray]


def log(msg: str) -> None:
    """Progress on stderr."""
    print(msg, file=sys.stderr, flush=True)


def write(folder: Path, name: str, state: State) -> Path:
    """Writes ``state`` with the official safetensors writer; returns the path."""
    path = folder / f"{name}.safetensors"
    save_file(state, str(path))
    return path


def table(head: Sequence[str], rows: Iterable[Sequence[str]], text: int = 1) -> list[str]:
    """A Markdown table: the first ``text`` columns left-aligned, the others (numbers) right-aligned."""
    align = ["---"] * text + ["--:"] * (len(head) - text)
    return ["| " + " | ".join(r) + " |" for r in (head, align, *rows)]


def lp(x: float) -> str:
    """A log10 p: one decimal, or three significant digits when astronomically small."""
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "−∞" if x < 0 else "∞"
    return f"{x:.3g}" if abs(x) >= 1e4 else f"{x:.1f}"


def frac(n: int, total: int) -> str:
    """``n/total``, in bold when not all."""
    return f"{n}/{total}" if n == total else f"**{n}/{total}**"


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "cpu model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def code_hashes(files: list[str | None]) -> str:
    """Each measured file of modelkin as "name sha", named by its path inside the package."""

    def name(f: str | None) -> str:
        parts = Path(f or "?").parts
        return "/".join(parts[parts.index("modelkin") + 1 :]) if "modelkin" in parts[:-1] else parts[-1]

    return ", ".join(f"{name(f)} {file_sha(f)}" for f in files)


def file_sha(path: str | None) -> str:
    """The first 12 hex digits of a file's SHA-256 (which build of the code was measured)."""
    try:
        return hashlib.sha256(Path(path or "").read_bytes()).hexdigest()[:12]
    except OSError:
        return "unknown"


def count(least: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``least``."""

    def parse(text: str) -> int:
        n = int(text)
        if n < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}")
        return n

    return parse


def write_atomically(path: Path, text: str) -> None:
    """Writes through a temporary file in the same folder and a rename (mode 0644)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates the file private (0600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
