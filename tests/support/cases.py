"""The catalogue of derivation cases: each relative of a base model that the verdict tests
(``tests/test_verdicts.py``) and the scripts in ``benches/`` (``calibration.py``, ``identify_eval.py``)
build, how it is built from the base's state dict, and the relation ``modelkin.compare`` should name.

A case is built from a base with an index ``k`` that varies the derivation's seeds: the tests build each
case once, with ``k`` = 0; the benches build it from several bases, ``k`` = 0, 1, …, so that ``k`` = 0
reproduces the tests' models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import derive
import numpy as np

__all__ = ["CASE", "CASES", "DROPPED", "EXTRA_ROWS", "RENAME_SEED", "SCALE", "Case"]

State = dict[str, np.ndarray]

#: Parameters of the derivations: vocabulary rows appended, layers dropped, scale factor.
EXTRA_ROWS, DROPPED, SCALE = 1000, (1, 2), 1.5
#: Seed of the renaming applied to B in the "B renamed" runs (the tests' ``~renamed`` models).
RENAME_SEED = 101


@dataclass(frozen=True)
class Case:
    """One derived model: how it is built from its base, and the relation the verdict should name.

    ``build(state, k)`` returns the derived state dict (``state`` is not modified) and what the
    derivation reports about itself (a name mapping, a permutation…; None for most). ``expected`` is
    None where any related verdict is right (the tests ask only for ``related``). ``six_layers``: built
    from the six-layer base (``derive.SHAPE6``), so that layers remain when two are dropped. ``swap``:
    the base is compared against the derived model the other way round (B is the parent). ``renames``:
    the derivation itself gives every tensor an unrelated name.
    """

    name: str
    build: Callable[[State, int], tuple[State, Any]]
    expected: str | None
    six_layers: bool = False
    swap: bool = False
    renames: bool = False

    def state(self, base: State, k: int) -> State:
        """The derived state dict alone."""
        return self.build(base, k)[0]

    @property
    def rename_b(self) -> bool:
        """Whether the case is compared once more with every tensor of B renamed: not when the derivation
        renames them already, nor when swapped (B is then the base)."""
        return not (self.renames or self.swap)


CASES: tuple[Case, ...] = (
    Case("exact", lambda s, k: (derive.exact_copy(s), None), "identical"),
    Case("renamed", lambda s, k: derive.renamed(s, seed=3 + 1000 * k), "identical", renames=True),
    Case("llama3v", lambda s, k: derive.llama3v(s, seed=31 + 1000 * k), "noised_copy", renames=True),
    Case(
        "noised",
        lambda s, k: (derive.noised(s, derive.LLAMA3V_SIGMA, seed=41 + 1000 * k), None),
        "noised_copy",
    ),
    Case("bf16", lambda s, k: (derive.cast(s, "bf16"), None), "cast_copy"),
    Case("f16", lambda s, k: (derive.cast(s, "f16"), None), "cast_copy"),
    Case("int8", lambda s, k: (derive.int8_quantized(s), None), "quantized_copy"),
    Case("scaled", lambda s, k: (derive.scaled(s, SCALE), None), "scaled_copy"),
    Case("fine_tune", lambda s, k: derive.fine_tuned(s, seed=5 + 1000 * k), "fine_tune"),
    Case(
        "fine_tune (A is the child)",
        lambda s, k: derive.fine_tuned(s, seed=5 + 1000 * k),
        "fine_tune",
        swap=True,
    ),
    Case("neurons", lambda s, k: derive.neurons_permuted(s, 7 + 1000 * k, 1e-3), None),
    Case("dropped", lambda s, k: derive.layers_dropped(s, DROPPED), None, six_layers=True),
    Case("vocab", lambda s, k: (derive.vocab_extended(s, EXTRA_ROWS, seed=9 + 1000 * k), None), None),
)

#: The cases by name.
CASE: dict[str, Case] = {c.name: c for c in CASES}
