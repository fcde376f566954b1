"""The closed vocabularies of results, as ``Literal`` types for annotations.

Each alias lists every value the package produces; the JSON schema in ``schemas/`` has the same enums.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["Kind", "Method", "Relation", "Strength"]

#: What one aligned tensor pair says (:attr:`modelkin.evidence.weights.PairEvidence.kind`).
Kind = Literal["identical", "cast", "quantized", "gaussian", "scaled", "update", "permuted", "unrelated"]

#: How B relates to A (:attr:`modelkin.verdict.Verdict.relation`, in the order of ``RELATIONS``).
Relation = Literal[
    "identical",
    "cast_copy",
    "quantized_copy",
    "noised_copy",
    "scaled_copy",
    "partial_copy",
    "fine_tune",
    "independent",
    "inconclusive",
]

#: How a pair was aligned (:attr:`modelkin.align.Pairing.method`).
Method = Literal["name", "content", "rows", "fused", "transposed", "tokens"]

#: How strongly the files beside the weights say kin (:attr:`MetadataEvidence.strength`, weakest first).
Strength = Literal["none", "weak", "moderate", "strong"]
