"""modelkin: was this neural-network checkpoint derived from that one?

Stream two checkpoints once, tensor by tensor, in constant memory on all cores, and summarise how
they differ::

    import modelkin
    result = modelkin.compare("base/", "suspect/")
    print(result.verdict.sentence)           # e.g. "B is a copy of A with Gaussian noise added (σ = …)"
    d = modelkin.diff("base/", "suspect/")   # the raw tensor-by-tensor comparison, matched by name
    rows = d.records()                       # one flat dict per tensor pair (pandas-friendly)
"""

from __future__ import annotations

from . import errors
from ._engine import __version__
from .checkpoint import CheckpointInfo, TensorInfo, gguf_metadata, open
from .compare import CompareResult, compare, compare_fingerprints
from .diff import SCHEMA, DiffResult, InspectResult, TensorDiff, TensorSummary, diff, inspect, pair_stats
from .errors import (
    CheckpointChangedError,
    InvalidCheckpointError,
    InvalidFingerprintError,
    InvalidIndexError,
    MissingShardError,
    ModelkinError,
    OutputError,
    RegistryError,
    UnknownDtypeError,
    UnsupportedFormatError,
)
from .evidence.behavior import BehaviorResult, compare_behavior
from .evidence.metadata import MetadataEvidence, compare_metadata
from .fingerprint import Fingerprint, fingerprint
from .fingerprint import load as load_fingerprint
from .registry import Registry
from .stats import Moments, PairStats, ValueStats

__all__ = [
    "SCHEMA",
    "BehaviorResult",
    "CheckpointChangedError",
    "CheckpointInfo",
    "CompareResult",
    "DiffResult",
    "Fingerprint",
    "InspectResult",
    "InvalidCheckpointError",
    "InvalidFingerprintError",
    "InvalidIndexError",
    "MetadataEvidence",
    "MissingShardError",
    "ModelkinError",
    "Moments",
    "OutputError",
    "PairStats",
    "Registry",
    "RegistryError",
    "TensorDiff",
    "TensorInfo",
    "TensorSummary",
    "UnknownDtypeError",
    "UnsupportedFormatError",
    "ValueStats",
    "__version__",
    "compare",
    "compare_behavior",
    "compare_fingerprints",
    "compare_metadata",
    "diff",
    "errors",
    "fingerprint",
    "gguf_metadata",
    "inspect",
    "load_fingerprint",
    "open",
    "pair_stats",
]
