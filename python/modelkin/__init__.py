"""modelkin: was this neural-network checkpoint derived from that one?

Stream two checkpoints once, tensor by tensor, in constant memory on all cores, and summarise how
they differ::

    import modelkin
    result = modelkin.diff("base/", "suspect/")
    print(result.totals()["d_std"])          # σ of b − a over the whole model
    rows = result.records()                  # one flat dict per tensor pair (pandas-friendly)
"""

from __future__ import annotations

from . import errors
from ._modelkin import __version__
from .checkpoint import CheckpointInfo, TensorInfo, open
from .diff import SCHEMA, DiffResult, InspectResult, TensorDiff, TensorSummary, diff, inspect, pair_stats
from .errors import (
    InvalidCheckpointError,
    InvalidIndexError,
    MissingShardError,
    ModelkinError,
    UnknownDtypeError,
    UnsupportedFormatError,
)
from .stats import Moments, PairStats, ValueStats

__all__ = [
    "SCHEMA",
    "CheckpointInfo",
    "DiffResult",
    "InspectResult",
    "InvalidCheckpointError",
    "InvalidIndexError",
    "MissingShardError",
    "ModelkinError",
    "Moments",
    "PairStats",
    "TensorDiff",
    "TensorInfo",
    "TensorSummary",
    "UnknownDtypeError",
    "UnsupportedFormatError",
    "ValueStats",
    "__version__",
    "diff",
    "errors",
    "inspect",
    "open",
    "pair_stats",
]
