"""What :func:`modelkin.compare` returns: the verdict, the evidence per tensor pair, the alignment and the
diff of the aligned pairs, with the other lines of evidence beside them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import _engine
from .._util import json_safe
from ..align import Alignment
from ..diff import DiffResult
from ..evidence.behavior import BehaviorResult
from ..evidence.metadata import MetadataEvidence
from ..evidence.profiles import ProfileComparison
from ..evidence.spectra import SpectrumCheck
from ..evidence.tokens import TokenEvidence
from ..evidence.weights import PairEvidence
from ..verdict import Verdict

__all__ = ["COMPARE_SCHEMA", "CompareResult", "PrintEvidence"]


#: Version tag of :meth:`CompareResult.to_dict`.
COMPARE_SCHEMA = "modelkin.compare/1"


@dataclass(frozen=True)
class PrintEvidence:
    """The parts of a comparison of fingerprints that the position-based tests do not give.

    ``identical``: (A, B) tensor pairs whose content digests are equal (bit-identical tensors,
    whatever their names); ``digests_compared``: tensors of A whose digest was compared with a tensor of
    B's (0 when either fingerprint has no digests). ``spectra``: norm spectra of matrices that look
    unrelated position by position (:mod:`modelkin.evidence.spectra`; supporting evidence only). ``tokens``:
    token-keyed matrices compared on their shared tokens (:mod:`modelkin.evidence.tokens`). ``not_run``: the
    tests a fingerprint could not run, each with the reason.
    """

    identical: tuple[tuple[str, str], ...]
    digests_compared: int
    spectra: tuple[SpectrumCheck, ...]
    tokens: tuple[TokenEvidence, ...]
    not_run: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        return {
            "identical": [list(p) for p in self.identical],
            "digests_compared": self.digests_compared,
            "spectra": [c.to_dict() for c in self.spectra],
            "tokens": [t.to_dict() for t in self.tokens],
            "not_run": list(self.not_run),
        }


@dataclass(frozen=True)
class CompareResult:
    """The answer to "how does B relate to A": the verdict, the evidence per tensor pair, the alignment
    and the underlying diff of the aligned pairs."""

    verdict: Verdict
    evidence: tuple[PairEvidence, ...]
    alignment: Alignment
    diff: DiffResult
    metadata: MetadataEvidence | None = None  # configs and tokenizers beside the weights
    behavior: BehaviorResult | None = None  # per-item answers, when they were given
    profiles: ProfileComparison | None = None  # per-layer std/mean/norm profiles (descriptive)
    prints: PrintEvidence | None = None  # what only fingerprints give: digests, spectra, token rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with a versioned schema tag (``"schema": "modelkin.compare/1"``)."""
        out: dict[str, Any] = json_safe(
            {
                "schema": COMPARE_SCHEMA,
                "modelkin_version": _engine.__version__,
                "a": self.diff.a.to_dict(),
                "b": self.diff.b.to_dict(),
                "verdict": self.verdict.to_dict(),
                "metadata": None if self.metadata is None else self.metadata.to_dict(),
                "behavior": None if self.behavior is None else self.behavior.to_dict(),
                "profiles": None if self.profiles is None else self.profiles.to_dict(),
                "fingerprints": None if self.prints is None else self.prints.to_dict(),
                "evidence": [e.to_dict() for e in self.evidence],
                "alignment": self.alignment.to_dict(),
                "totals": self.diff.totals(),
                "threads": self.diff.threads,
                "seconds": self.diff.seconds,
            }
        )
        return out
