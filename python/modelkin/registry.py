"""A local registry of fingerprints (embedded SQLite) and ``identify``: a suspect's likely ancestors.

The registry is one SQLite file holding each fingerprint's bytes with a name and a few columns for
listing (``PRAGMA application_id`` :data:`APPLICATION_ID`, ``user_version`` :data:`SCHEMA_VERSION`).
``identify`` screens every entry cheaply first (name-aligned matrices, correlation of the
row/column-centred samples) and runs the full fingerprint comparison only on the entries that pass the
screen, share no tensor name with the suspect, or hold a learnt matrix whose content digest equals
one of the suspect's.
"""

from __future__ import annotations

import builtins
import math
import os
import sqlite3
import stat
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from .compare import CompareResult, compare_fingerprints
from .compare import screen as screen_prints
from .errors import InvalidFingerprintError, RegistryError, RegistryWarning
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
_COLUMNS = ("name", "source", "created", "n_params", "n_tensors", "blob")
#: The schema objects a registry holds (the table and the index of its unique name).
_OBJECTS = {("table", "prints"), ("index", "sqlite_autoindex_prints_1")}
#: ``PRAGMA application_id`` of a registry (``mkfp``), set when the file is created.
APPLICATION_ID = 0x6D6B6670
#: ``PRAGMA user_version``: the version of the registry's schema. Registries written before these
#: two were set (both 0, the same table) are still read, and stamped on their next write.
SCHEMA_VERSION = 1
_INSERT = "INSERT INTO prints VALUES (?, ?, ?, ?, ?, ?)"
_UPSERT = (
    _INSERT + " ON CONFLICT(name) DO UPDATE SET source = excluded.source, created = excluded.created, "
    "n_params = excluded.n_params, n_tensors = excluded.n_tensors, blob = excluded.blob"
)
#: Seconds a write waits for another process's write to finish.
BUSY_TIMEOUT = 30.0


def _problem(e: sqlite3.Error) -> str:
    """What an SQLite error means for the registry, in a few words."""
    code = getattr(e, "sqlite_errorname", "") or ""
    text = str(e)
    low = f"{code} {text}".lower()
    if "notadb" in low or "not a database" in low:
        return "not a modelkin registry (not an SQLite database)"
    if "corrupt" in low or "malformed" in low:
        return f"the registry is corrupt ({text})"
    if "readonly" in low:
        return "the registry is read-only (cannot write to it)"
    if "full" in low:
        return f"no space left to write the registry ({text}); nothing was changed"
    if "busy" in low or "locked" in low:
        return f"the registry is locked by another process ({text}); try again"
    if "cantopen" in low or "unable to open" in low:
        return f"cannot open the registry ({text})"
    if "ioerr" in low or "i/o" in low:
        return f"cannot read or write the registry ({text}); nothing was changed"
    return text


def _check_schema(con: sqlite3.Connection, path: Path) -> bool:
    """Whether the database is empty (a new registry); a :class:`RegistryError` unless it is one."""
    app = int(con.execute("PRAGMA application_id").fetchone()[0])
    version = int(con.execute("PRAGMA user_version").fetchone()[0])
    objects = {(str(t), str(n)) for t, n in con.execute("SELECT type, name FROM sqlite_master")}
    if app not in (0, APPLICATION_ID):
        raise RegistryError(f"{path}: not a modelkin registry (SQLite application_id {app:#010x})")
    if app == APPLICATION_ID and version > SCHEMA_VERSION:
        raise RegistryError(
            f"{path}: registry schema version {version}, this modelkin reads {SCHEMA_VERSION} "
            "(a newer modelkin wrote it)"
        )
    if not objects and version == 0:
        return True
    if version != (SCHEMA_VERSION if app else 0):
        raise RegistryError(f"{path}: not a modelkin registry (SQLite user_version {version})")
    columns = [(str(r[1]), int(r[5])) for r in con.execute("PRAGMA table_info(prints)")]
    if objects != _OBJECTS or [c for c, _ in columns] != list(_COLUMNS) or columns[0][1] != 1:
        tables = sorted(n for t, n in objects if t == "table")
        held = ", ".join(repr(t) for t in tables[:5]) + (", …" if len(tables) > 5 else "")
        raise RegistryError(f"{path}: not a modelkin registry (its tables: {held or 'none'})")
    return False


class Registry:
    """A fingerprint registry in one SQLite file (created on first write).

    Every error of the file (not SQLite, another program's database, a folder, read-only, full, corrupt)
    is a :class:`~modelkin.errors.RegistryError` naming it; a database that is not a registry is never
    modified. Writes are single transactions, so of two processes adding one name one fails. An entry
    whose fingerprint does not load is skipped by :meth:`list`, :meth:`prints` and :meth:`identify`
    and reported to ``on_skip`` (default: a :class:`~modelkin.errors.RegistryWarning`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        on_skip: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.on_skip = on_skip

    def _skip(self, name: object, problem: str) -> None:
        """Reports an entry that is left out, and how to remove it."""
        message = f"{problem}; entry skipped (`modelkin registry remove {name}` removes it)"
        if self.on_skip is not None:
            self.on_skip(message)
        else:
            warnings.warn(message, RegistryWarning, stacklevel=3)

    def _check_path(self, write: bool) -> bool:
        """Whether the registry file exists; a :class:`RegistryError` when it cannot be one."""
        p = self.path
        try:
            st = p.stat()
        except FileNotFoundError:
            if write:
                try:
                    p.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise RegistryError(f"{p}: cannot create the registry ({e.strerror})") from e
            return False
        except OSError as e:
            raise RegistryError(f"{p}: cannot open the registry ({e.strerror})") from e
        if stat.S_ISDIR(st.st_mode):
            raise RegistryError(f"{p}: is a folder, not a registry file")
        if not stat.S_ISREG(st.st_mode):
            raise RegistryError(f"{p}: not a regular file, not a registry")
        if write and not os.access(p, os.W_OK):
            raise RegistryError(f"{p}: the registry is read-only (cannot write to it)")
        return True

    @contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction on the registry (``BEGIN IMMEDIATE`` when writing); reading a registry that
        does not exist reads an empty one and creates nothing."""
        exists = self._check_path(write)
        try:
            if write:
                con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
            elif exists:
                uri = self.path.absolute().as_uri() + "?mode=ro"
                con = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None)
            else:
                con = sqlite3.connect(":memory:", isolation_level=None)
                con.execute(_SCHEMA)
            try:
                con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                fresh = _check_schema(con, self.path)
                if write and (fresh or int(con.execute("PRAGMA application_id").fetchone()[0]) == 0):
                    con.execute(_SCHEMA)
                    con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                yield con
                con.execute("COMMIT")
            except BaseException:
                with suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
                raise
            finally:
                con.close()
        except sqlite3.Error as e:
            raise RegistryError(f"{self.path}: {_problem(e)}") from e

    def add(
        self,
        source: str | os.PathLike[str] | Fingerprint,
        name: str | None = None,
        *,
        replace: bool = False,
        threads: int | None = None,
    ) -> Entry:
        """Registers a model (fingerprinted now) or a fingerprint file or object under ``name``
        (default: the folder or file name). An existing name is a :class:`RegistryError` unless
        ``replace``; of two processes adding one name at once, exactly one succeeds."""
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
        row = (name, fp.source, fp.created, fp.checkpoint.n_params, len(fp.tensors), blob)
        with self._db(write=True) as con:
            try:
                con.execute(_UPSERT if replace else _INSERT, row)
            except sqlite3.IntegrityError:
                raise RegistryError(
                    f"{self.path}: '{name}' is already registered (use replace to overwrite it)"
                ) from None
        return Entry(name, fp.source, fp.created, fp.checkpoint.n_params, len(fp.tensors), len(blob))

    def list(self) -> list[Entry]:
        """Every entry, by name (a row of the wrong types is skipped and reported)."""
        with self._db() as con:
            rows = con.execute(
                "SELECT name, source, created, n_params, n_tensors, length(blob), typeof(blob) FROM prints "
                "ORDER BY name"
            ).fetchall()
        entries = []
        for *fields, kind in rows:
            types = tuple(type(v) for v in fields)
            if types != (str, str, str, int, int, int) or kind != "blob":
                self._skip(fields[0], f"{self.path}: entry {fields[0]!r} is not a fingerprint row")
                continue
            entries.append(Entry(*fields))
        return entries

    def remove(self, name: str) -> None:
        """Removes an entry; a ``KeyError`` when there is none of that name."""
        with self._db(write=True) as con:
            if con.execute("DELETE FROM prints WHERE name = ?", (name,)).rowcount == 0:
                raise KeyError(f"{self.path}: no entry named '{name}'")

    def get(self, name: str) -> Fingerprint:
        """The fingerprint registered as ``name``; an
        :class:`~modelkin.errors.InvalidFingerprintError` naming the entry when it does not load."""
        with self._db() as con:
            row = con.execute("SELECT blob FROM prints WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise KeyError(f"{self.path}: no entry named '{name}'")
        where = f"{self.path}:{name}"
        if not isinstance(row[0], bytes):
            raise InvalidFingerprintError(f"{where}: not a fingerprint (a {type(row[0]).__name__} value)")
        return loads(row[0], where)

    def prints(self) -> Iterator[tuple[str, Fingerprint]]:
        """Every (name, fingerprint), one at a time; an entry that does not load is skipped and
        reported."""
        with self._db() as con:
            names = [r[0] for r in con.execute("SELECT name FROM prints ORDER BY name")]
        for name in names:
            try:
                fp = self.get(name)
            except InvalidFingerprintError as e:
                self._skip(name, str(e))
                continue
            except KeyError:  # removed meanwhile
                continue
            yield name, fp

    def identify(
        self, suspect: str | os.PathLike[str] | Fingerprint, *, top: int = 10, threads: int | None = None
    ) -> builtins.list[Match]:
        """Ranks the registered models as ancestors of ``suspect`` (most likely first)."""
        # A suspect's fingerprint file is read first: when it is refused, nothing else is reported.
        fs: Fingerprint | None = None
        if isinstance(suspect, Fingerprint):
            fs = suspect
        elif is_fingerprint(suspect):
            fs = load(suspect)
        entries = list(self.prints())
        if fs is None:  # a checkpoint: fingerprinted at the registry's smallest sample size
            sizes = {fp.sample_size for _, fp in entries} or {2048}
            fs = fingerprint(cast("str | os.PathLike[str]", suspect), threads=threads, sample_size=min(sizes))
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
