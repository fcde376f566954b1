"""Regenerates the tables of ``docs/behavior.md`` with modelkin's own code.

    python docs/behavior_table.py                  # print both tables (Markdown)
    python docs/behavior_table.py --write DIR      # also write the panel example's per-model files to DIR

``tests/test_behavior.py`` checks that the tables in ``docs/behavior.md`` are the ones printed here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
from modelkin.answers import ModelAnswers
from modelkin.evidence.behavior import BehaviorResult, compare_behavior, pair_behavior

#: The counts reported in the Llama3-V affair: errors of the two models and the errors they share.
ERRORS_A, ERRORS_B, SHARED = 236, 194, 182
#: Item counts shown (the benchmark's size was not published with the counts).
ITEM_COUNTS = (300, 500, 1000, 2000)
#: Items and seed of the simulated panel.
PANEL_ITEMS, PANEL_SEED = 1000, 7


def counts_vectors(
    n: int, ea: int = ERRORS_A, eb: int = ERRORS_B, s: int = SHARED
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Correctness vectors of n items with ea and eb errors, s of them shared."""
    a = np.ones(n, dtype=bool)
    b = np.ones(n, dtype=bool)
    a[:ea] = False
    b[:s] = False
    b[ea : ea + eb - s] = False
    return a, b


def count_table() -> str:
    """The Llama3-V counts for a range of item counts: expected shared errors, κ and its CI, log10 p."""
    lines = [
        "| items | accuracy A / B | shared errors: observed / expected | κ | 95% CI (bootstrap) | log10 p |",
        "| --: | --: | --: | --: | --: | --: |",
    ]
    for n in ITEM_COUNTS:
        a, b = counts_vectors(n)
        p = pair_behavior(a, b, n_boot=1000, seed=0)
        lines.append(
            f"| {n} | {p.accuracy_a:.3f} / {p.accuracy_b:.3f} | {p.shared_errors} / "
            f"{p.expected_shared_errors:.1f} | {p.kappa:.3f} | {p.kappa_ci[0]:.3f}–{p.kappa_ci[1]:.3f} | "
            f"{p.log10_p:.1f} |"
        )
    return "\n".join(lines)


def panel_models(n: int = PANEL_ITEMS, seed: int = PANEL_SEED) -> list[ModelAnswers]:
    """A simulated panel on n items of varied difficulty (a Rasch model: P(wrong) = σ(difficulty −
    ability)): the original A, five independent models, and B, a copy of A that keeps 182 of A's
    errors (with A's wrong answers) and makes 12 of its own, as Llama3-V did."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(-1.6, 2.0, n)
    ids = [f"q{i:04d}" for i in range(n)]

    def simulate(ability: float) -> npt.NDArray[np.bool_]:
        wrong = rng.random(n) < 1 / (1 + np.exp(-(difficulty - ability)))
        return ~wrong

    a = simulate(0.0)
    while int((~a).sum()) < ERRORS_A:  # make A's error count exactly 236 for the story
        a[rng.choice(np.flatnonzero(a))] = False
    while int((~a).sum()) > ERRORS_A:
        a[rng.choice(np.flatnonzero(~a))] = True
    b = np.ones(n, dtype=bool)
    b[rng.choice(np.flatnonzero(~a), SHARED, replace=False)] = False
    b[rng.choice(np.flatnonzero(a), ERRORS_B - SHARED, replace=False)] = False
    models = [ModelAnswers("A", "A.jsonl", dict(zip(ids, map(bool, a))))]
    for k, ability in enumerate((0.0, 0.2, -0.2, 0.4, 0.1)):
        c = simulate(ability)
        models.append(ModelAnswers(f"ref{k + 1}", f"ref{k + 1}.jsonl", dict(zip(ids, map(bool, c)))))
    models.append(ModelAnswers("B", "B.jsonl", dict(zip(ids, map(bool, b)))))
    return models


def panel_result() -> BehaviorResult:
    """The panel example, compared with modelkin."""
    return compare_behavior(panel_models(), n_boot=1000, seed=0)


def panel_table(res: BehaviorResult | None = None) -> str:
    """The panel example: every pair involving A or B, and the range over the independent pairs."""
    res = res or panel_result()
    lines = [
        "| pair | errors | shared: observed / expected | κ | log10 p (hypergeometric) | panel z | flagged |",
        "| --- | --: | --: | --: | --: | --: | --- |",
    ]
    for p in res.pairs:
        lines.append(
            f"| {p.a}–{p.b} | {p.errors_a} / {p.errors_b} | {p.shared_errors} / "
            f"{p.expected_shared_errors:.1f} | {p.kappa:.3f} | {p.log10_p:.1f} | {p.panel_z:.1f} | "
            f"{'**yes**' if p.flagged else 'no'} |"
        )
    return "\n".join(lines)


def write_panel(folder: Path) -> list[Path]:
    """Writes the panel example's per-model correctness files (JSONL) to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for m in panel_models():
        path = folder / f"{m.name}.jsonl"
        assert m.correct is not None
        path.write_text(
            "".join(json.dumps({"id": i, "correct": int(c)}) + "\n" for i, c in m.correct.items())
        )
        paths.append(path)
    return paths


def main() -> None:
    """Prints the two tables; with ``--write DIR`` also writes the panel's files."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, default=None, help="folder for the panel example's files")
    args = ap.parse_args()
    print(count_table())
    print()
    print(panel_table())
    if args.write:
        for path in write_panel(args.write):
            print(path)


if __name__ == "__main__":
    main()
