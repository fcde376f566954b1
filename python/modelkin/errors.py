"""The exceptions modelkin raises.

Every error from reading a checkpoint is a :class:`ModelkinError`; the message names the file, the
tensor where there is one, and what is wrong. A path that does not exist raises the built-in
:class:`FileNotFoundError`; a missing shard of a sharded checkpoint raises :class:`MissingShardError`,
which is both a :class:`ModelkinError` and a :class:`FileNotFoundError`.
"""

from __future__ import annotations

__all__ = [
    "CheckpointChangedError",
    "InvalidCheckpointError",
    "InvalidFingerprintError",
    "InvalidIndexError",
    "MissingShardError",
    "ModelkinError",
    "OutputError",
    "RegistryError",
    "RegistryWarning",
    "UnknownDtypeError",
    "UnsupportedFormatError",
]


class ModelkinError(Exception):
    """Base class of modelkin's own errors."""


class UnsupportedFormatError(ModelkinError):
    """The file is not in a format modelkin reads, or asks for something modelkin never does: a
    pickle needing a global outside the allow-list (nothing is ever unpickled), a compressed entry,
    a strided tensor view."""


class InvalidCheckpointError(ModelkinError):
    """A checkpoint file is malformed: truncated, bad header, bad offsets or shapes."""


class UnknownDtypeError(InvalidCheckpointError):
    """A tensor's dtype is not one modelkin can decode."""


class InvalidIndexError(InvalidCheckpointError):
    """A sharded checkpoint's index is malformed or disagrees with its shards."""


class MissingShardError(InvalidIndexError, FileNotFoundError):
    """A sharded checkpoint's index names a shard file that does not exist."""


class CheckpointChangedError(InvalidCheckpointError):
    """A checkpoint file was truncated or rewritten while modelkin was reading it: the results would
    describe neither version, so none are given."""


class InvalidFingerprintError(ModelkinError, ValueError):
    """A fingerprint file (or registry entry) is not one modelkin wrote: malformed safetensors, another
    format tag, missing or ill-typed header keys, arrays of another dtype or length than the header
    implies, statistics that are not finite where they must be."""


class RegistryError(ModelkinError, ValueError):
    """The fingerprint registry cannot be used as asked: not a modelkin registry (another program's
    SQLite file, or not SQLite at all), a folder, read-only, full, corrupt, or the name is taken."""


class RegistryWarning(UserWarning):
    """A registry entry was skipped because its fingerprint is unreadable (the others are used)."""


class OutputError(ModelkinError, ValueError):
    """A file modelkin was asked to write is refused (an input, inside an input folder, a missing or
    read-only folder) or could not be written (a full disk); the message names the file."""
