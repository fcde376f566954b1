"""A local registry of fingerprints (embedded SQLite) and ``identify``: a suspect's likely ancestors.

The registry is one SQLite file holding each fingerprint's bytes with a name and a few columns for
listing. ``identify`` screens every entry cheaply first (name-aligned matrices, correlation of the
row/column-centred samples) and runs the full fingerprint comparison only on the entries that pass the
screen, share no tensor name with the suspect, or hold a learnt matrix whose content digest equals
one of the suspect's.
"""

from __future__ import annotations

import builtins
import math
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .compare import CompareResult, compare_fingerprints
from .compare import screen as screen_prints
from .evidence.weights import learnt_matrix
from .fingerprint import Fingerprint, fingerprint, is_fingerprint, load, loads
from .verdict import KIN_LOG10_P

__all__ = ["Entry", "Match", "Registry", "default_path"]

#: Environment variable naming the registry file.
REGISTRY_ENV = "MODELKIN_REGISTRY"


def default_path() -> Path:
    """``$MODELKIN_REGISTRY``, else ``$XDG_DATA_HOME/modelkin/registry.sqlite`` (``~/.local/share``)."""
    if os.environ.get(REGISTRY_ENV):
        return Path(os.environ[REGISTRY_ENV])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "modelkin" / "registry.sqlite"


@dataclass(frozen=True)
class Entry:
    """A registered fingerprint, as listed."""

    name: str
    source: str
    created: str
    n_params: int
    n_tensors: int
    size: int  # bytes of the stored fingerprint

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        return dict(vars(self))


@dataclass(frozen=True)
class Match:
    """One registered model against the suspect."""

    name: str
    relation: str
    related: bool
    log10_p: float
    shared_fraction: float
    sentence: str
    screened_out: bool  # decided by the screen alone (no full comparison run)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        return dict(vars(self))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS prints (
    name TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    created TEXT NOT NULL,
    n_params INTEGER NOT NULL,
    n_tensors INTEGER NOT NULL,
    blob BLOB NOT NULL
)
"""


class Registry:
    """A fingerprint registry in one SQLite file (created on first use)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path)
        try:
            con.execute(_SCHEMA)
            yield con
            con.commit()
        finally:
            con.close()

    def add(
        self,
        source: str | os.PathLike[str] | Fingerprint,
        name: str | None = None,
        *,
        replace: bool = False,
        threads: int | None = None,
    ) -> Entry:
        """Registers a model (fingerprinted now) or a fingerprint file or object under ``name``
        (default: the folder or file name). An existing name is an error unless ``replace``."""
        if isinstance(source, Fingerprint):
            fp = source
        elif is_fingerprint(source):
            fp = load(source)
        else:
            fp = fingerprint(source, threads=threads)
        hub_id = isinstance(source, str) and not Path(source).exists() and "/" in source
        name = name or (str(source) if hub_id else Path(fp.source).stem or Path(fp.source).name)
        with tempfile.TemporaryDirectory() as tmp:
            blob = fp.save(Path(tmp) / "print.mkfp").read_bytes()
        with self._db() as con:
            if not replace and con.execute("SELECT 1 FROM prints WHERE name = ?", (name,)).fetchone():
                raise ValueError(f"{self.path}: '{name}' is already registered (use replace to overwrite it)")
            con.execute(
                "INSERT OR REPLACE INTO prints VALUES (?, ?, ?, ?, ?, ?)",
                (name, fp.source, fp.created, fp.checkpoint.n_params, len(fp.tensors), blob),
            )
        return Entry(name, fp.source, fp.created, fp.checkpoint.n_params, len(fp.tensors), len(blob))

    def list(self) -> list[Entry]:
        """Every entry, by name."""
        with self._db() as con:
            rows = con.execute(
                "SELECT name, source, created, n_params, n_tensors, length(blob) FROM prints ORDER BY name"
            ).fetchall()
        return [Entry(*r) for r in rows]

    def remove(self, name: str) -> None:
        """Removes an entry; a ``KeyError`` when there is none of that name."""
        with self._db() as con:
            if con.execute("DELETE FROM prints WHERE name = ?", (name,)).rowcount == 0:
                raise KeyError(f"{self.path}: no entry named '{name}'")

    def get(self, name: str) -> Fingerprint:
        """The fingerprint registered as ``name``."""
        with self._db() as con:
            row = con.execute("SELECT blob FROM prints WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise KeyError(f"{self.path}: no entry named '{name}'")
        return loads(bytes(row[0]), f"{self.path}:{name}")

    def prints(self) -> Iterator[tuple[str, Fingerprint]]:
        """Every (name, fingerprint), one at a time."""
        with self._db() as con:
            names = [r[0] for r in con.execute("SELECT name FROM prints ORDER BY name")]
        for name in names:
            yield name, self.get(name)

    def identify(
        self, suspect: str | os.PathLike[str] | Fingerprint, *, top: int = 10, threads: int | None = None
    ) -> builtins.list[Match]:
        """Ranks the registered models as ancestors of ``suspect`` (most likely first)."""
        entries = list(self.prints())
        if isinstance(suspect, Fingerprint):
            fs = suspect
        elif is_fingerprint(suspect):
            fs = load(suspect)
        else:
            sizes = {fp.sample_size for _, fp in entries} or {2048}
            fs = fingerprint(suspect, threads=threads, sample_size=min(sizes))
        matches = []
        digests = _learnt_digests(fs)
        for name, fp in entries:
            screen = screen_prints(fp, fs)
            # A learnt matrix bit-identical to one of the suspect's is never screened out, whatever
            # the name-aligned matrices say (e.g. one layer copied under another layer's name).
            shared = not digests.isdisjoint(_learnt_digests(fp))
            if screen is not None and screen > KIN_LOG10_P / 2 and not shared:
                matches.append(
                    Match(
                        name,
                        "independent",
                        False,
                        screen,
                        0.0,
                        "no name-aligned matrix is more similar than chance (screen)",
                        True,
                    )
                )
                continue
            try:
                res: CompareResult = compare_fingerprints(fp, fs)
            except ValueError as e:  # e.g. another sample size
                matches.append(Match(name, "inconclusive", False, 0.0, 0.0, str(e), False))
                continue
            v = res.verdict
            matches.append(
                Match(name, v.relation, v.related, v.log10_p, v.shared_fraction, v.sentence, False)
            )
        matches.sort(key=lambda m: (not m.related, m.log10_p if math.isfinite(m.log10_p) else 0.0))
        return matches[:top] if top > 0 else matches


def _learnt_digests(fp: Fingerprint) -> set[str]:
    """Content digests of the learnt matrices that are not constant (constant ones, e.g. zeros, are
    bit-identical in unrelated models)."""
    return {
        t.digest
        for t in fp.tensors
        if t.digest and learnt_matrix(t.name, t.shape) and t.stats.min < t.stats.max
    }
