#!/usr/bin/env python3
"""Evaluation of ``Registry.identify``: does a suspect's true base rank first among many registered models?

Several independent base models (fresh initialisations and briefly trained ones,
``tests/support/derive.py``) are fingerprinted into a fresh registry together with independent
distractors. Every relative of ``tests/support/cases.py`` (copies, Llama3-V, noised, casts, int8,
scaled, fine-tuned, permuted MLP units, dropped layers, extended vocabulary) is derived from every base
and identified against the whole registry; so are independent suspects, which have no ancestor in it. The
report gives the top-1 accuracy per kind of relative, the AUROC of kin against non-kin (−log10 p as the
score), the false positives at the default threshold, the relations returned for the true bases, and the
cost: identify time per suspect and per registered entry, fingerprint size and time. It is printed and
written to ``benches/IDENTIFY.md``. See ``benches/README.md``::

    python benches/identify_eval.py            # 4 bases + 16 distractors registered, 16 independent suspects
    python benches/identify_eval.py --check    # exit 1: a gated relative missed, or a false positive
"""

from __future__ import annotations

import os

# The training steps are small matrix products: one BLAS thread is fastest, and steadier on a shared
# machine. Must be set before numpy is imported; an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import datetime
import importlib
import math
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

# tests/support holds the generators (derive.py) and the derivation cases (cases.py) shared with the
# acceptance tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

import derive
import modelkin
from benchkit import code_hashes, count, cpu_model, frac, log, lp, table, write, write_atomically
from cases import CASES, DROPPED, EXTRA_ROWS, RENAME_SEED, SCALE, Case
from modelkin.registry import Match
from modelkin.verdict import KIN_LOG10_P, RELATIONS

HERE = Path(__file__).resolve().parent
State = dict[str, np.ndarray]

#: Seeds. Untrained models take seeds 0, 1, … in the order bases, distractors, suspects (seed 0 is the
#: tests' ``base``); trained models take init seeds 201, 202, … and data seeds 1, 2, … in the same order
#: (201/1 is calibration.py's first trained model). Every model has its own init seed: a trained model
#: keeps its seed's initialisation in every tensor it does not train, so no two models may share one.
INIT_SEED, TRAINED_SEED, DATA_SEED = 0, 201, 1


# --------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """An independent model: a fresh initialisation (``data_seed`` None) or a trained one."""

    role: str  # "base", "distractor" or "suspect"
    seed: int
    data_seed: int | None = None

    @property
    def family(self) -> str:
        """``init`` or ``trained``."""
        return "init" if self.data_seed is None else "trained"

    @property
    def name(self) -> str:
        """The registry name: ``init0``, ``trained201``."""
        return f"{self.family}{self.seed}"

    def make(self) -> State:
        """The model's state dict (``derive.SHAPE``)."""
        if self.data_seed is None:
            return derive.independent_init(self.seed)
        return derive.independently_trained(self.seed, self.data_seed)[0]


def models(counts: Sequence[tuple[str, int, int]]) -> list[Model]:
    """Models for each (role, untrained count, trained count), with seeds allotted in order so that no
    two models share an initialisation."""
    out: list[Model] = []
    inits = trained = 0
    for role, n_init, n_trained in counts:
        out += [Model(role, INIT_SEED + inits + i) for i in range(n_init)]
        out += [Model(role, TRAINED_SEED + trained + i, DATA_SEED + trained + i) for i in range(n_trained)]
        inits, trained = inits + n_init, trained + n_trained
    return out


@dataclass(frozen=True)
class Kind:
    """One kind of relative: a case of ``tests/support/cases.py`` (how it is derived from its base, ``k``
    the base's index varying the seeds, and the relation ``compare`` should name, None: any related one),
    how the report describes it, and whether ``--check`` requires its true base to rank first."""

    case: Case
    recipe: str
    gated: bool

    @property
    def name(self) -> str:
        """The case's name."""
        return self.case.name

    @property
    def expected(self) -> str | None:
        """The relation ``compare`` should name (None: any related one)."""
        return self.case.expected


#: Per case: how the report describes it, and whether ``--check`` requires its true base to rank first.
ABOUT: dict[str, tuple[str, bool]] = {
    "exact": ("bit-exact copy", True),
    "renamed": ("every tensor under an unrelated name, shuffled", True),
    "llama3v": ("N(0, 1.4e-3²) added, then renamed", True),
    "noised": ("N(0, 1.4e-3²) added", True),
    "bf16": ("cast to bf16", True),
    "f16": ("cast to f16", True),
    "int8": ("per-row int8 round trip", True),
    "scaled": (f"every tensor × {SCALE}", False),
    "fine_tune": ("low-rank + sparse updates, 4–12 % of ‖W‖", False),
    "neurons": ("MLP units permuted + N(0, 1e-3²)", True),
    "dropped": (f"layers {list(DROPPED)} of 4 dropped", True),
    "vocab": (f"{EXTRA_ROWS} vocabulary rows appended", False),
}

#: The cases of tests/support/cases.py but the swapped ones (the "A is the child" fine-tune of
#: calibration.py has no meaning here: the registry holds the parents). Every case is derived from the
#: registered 4-layer base itself, the layer-dropping one included (two of its four layers; the
#: catalogue's ``six_layers`` is not used here), so that the pruned child's ancestor is the registered
#: model and not a 6-layer sibling of it.
KINDS: tuple[Kind, ...] = tuple(Kind(c, *ABOUT[c.name]) for c in CASES if not c.swap)


# --------------------------------------------------------------------------------------------------------
# Identification
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identification:
    """One suspect identified against the whole registry."""

    suspect: str  # "noised of init0", "init12 (renamed)"
    kind: str  # a Kind's name, or "independent init", "independent trained"
    renamed: bool  # the suspect's tensors carry no name of the registry's (content alignment only)
    base: str | None  # the true base's registry name; None for an independent suspect
    matches: tuple[Match, ...]  # every entry, most likely ancestor first
    seconds: float  # registry.identify(path): fingerprinting the suspect included
    seconds_print: float  # registry.identify(fingerprint): screening and comparisons only

    @property
    def rank(self) -> int | None:
        """1-based rank of the true base (None for an independent suspect)."""
        return next((i + 1 for i, m in enumerate(self.matches) if m.name == self.base), None)

    @property
    def base_match(self) -> Match | None:
        """The true base's match."""
        return next((m for m in self.matches if m.name == self.base), None)

    @property
    def top1(self) -> bool:
        """The true base ranks first and is called related."""
        m = self.base_match
        return self.rank == 1 and m is not None and m.related

    @property
    def false_positives(self) -> list[Match]:
        """Entries called related that are not the true base."""
        return [m for m in self.matches if m.related and m.name != self.base]


@dataclass(frozen=True)
class PrintCost:
    """Fingerprinting one registered model: time, and the stored size split into its parts."""

    name: str
    seconds: float
    n_params: int
    n_tensors: int
    checkpoint_bytes: int
    stored_bytes: int  # the registry's blob (safetensors file with its JSON header)
    matrix_bytes: list[int]  # array bytes per matrix: float32 sample, float16 row and column means,
    # float32 row and column norm quantiles (format 2)
    vector_bytes: list[int]  # array bytes per 1-D tensor: float32 sample


@dataclass
class Run:
    """Everything the report needs."""

    registered: list[Model] = field(default_factory=list)
    suspects: list[Model] = field(default_factory=list)
    results: list[Identification] = field(default_factory=list)
    prints: list[PrintCost] = field(default_factory=list)
    entries: int = 0
    load_seconds: list[float] = field(default_factory=list)  # reading every entry back from SQLite
    seconds: dict[str, float] = field(default_factory=dict)


def identify(
    registry: modelkin.Registry,
    path: Path,
    *,
    suspect: str,
    kind: str,
    renamed: bool,
    base: str | None,
    threads: int | None,
) -> Identification:
    """Identifies ``path`` against ``registry``: once from the path (the result, timed end to end), once
    from a fingerprint made beforehand (timed: screening and comparisons only)."""
    t0 = time.perf_counter()
    matches = registry.identify(path, top=0, threads=threads)
    seconds = time.perf_counter() - t0
    fp = modelkin.fingerprint(path, threads=threads)
    t0 = time.perf_counter()
    registry.identify(fp, top=0, threads=threads)
    seconds_print = time.perf_counter() - t0
    return Identification(suspect, kind, renamed, base, tuple(matches), seconds, seconds_print)


def register(
    run: Run, registry: modelkin.Registry, folder: Path, chosen: Sequence[Model], threads: int | None
) -> dict[str, State]:
    """Builds, writes, fingerprints (timed) and registers every model; returns their state dicts."""
    states: dict[str, State] = {}
    for m in chosen:
        log(f"building and registering {m.role} {m.name}")
        states[m.name] = m.make()
        path = write(folder, m.name, states[m.name])
        t0 = time.perf_counter()
        fp = modelkin.fingerprint(path, threads=threads)
        seconds = time.perf_counter() - t0
        entry = registry.add(fp, m.name)
        matrices = [
            4 * t.sample.size
            + 2 * (t.row_mean.size + t.col_mean.size)
            + (
                4 * (t.row_norms.size + t.col_norms.size)
                if t.row_norms is not None and t.col_norms is not None
                else 0
            )
            + (2 * t.token_values.size if t.token_values is not None else 0)
            for t in fp.tensors
            if t.row_mean is not None and t.col_mean is not None
        ]
        vectors = [4 * t.sample.size for t in fp.tensors if t.row_mean is None or t.col_mean is None]
        run.prints.append(
            PrintCost(
                m.name,
                seconds,
                entry.n_params,
                entry.n_tensors,
                path.stat().st_size,
                entry.size,
                matrices,
                vectors,
            )
        )
        run.registered.append(m)
    return states


def load_times(registry: modelkin.Registry, repeat: int = 5) -> list[float]:
    """Seconds to read every registered fingerprint back (``registry.prints()``, what ``identify`` does
    first), ``repeat`` times."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _name, _fp in registry.prints():
            pass
        out.append(time.perf_counter() - t0)
    return out


def identify_relatives(
    run: Run,
    registry: modelkin.Registry,
    folder: Path,
    bases: Sequence[Model],
    states: dict[str, State],
    threads: int | None,
) -> None:
    """Derives every kind from every base, identifies it against the registry, deletes it."""
    for k, base in enumerate(bases):
        log(f"identifying the relatives of {base.name}")
        for kind in KINDS:
            path = write(folder, f"child-{kind.name}", kind.case.state(states[base.name], k))
            run.results.append(
                identify(
                    registry,
                    path,
                    suspect=f"{kind.name} of {base.name}",
                    kind=kind.name,
                    renamed=kind.case.renames,
                    base=base.name,
                    threads=threads,
                )
            )
            path.unlink()


def identify_independents(
    run: Run,
    registry: modelkin.Registry,
    folder: Path,
    suspects: Sequence[Model],
    renamed: bool,
    threads: int | None,
) -> None:
    """Builds every independent suspect and identifies it, by name and (if ``renamed``) with every tensor
    under an unrelated name."""
    for m in suspects:
        log(f"identifying independent suspect {m.name}")
        state = m.make()
        variants = [(False, state)]
        if renamed:
            variants.append((True, derive.renamed(state, seed=RENAME_SEED)[0]))
        for rn, s in variants:
            path = write(folder, f"suspect-{m.name}{'-renamed' if rn else ''}", s)
            run.results.append(
                identify(
                    registry,
                    path,
                    suspect=f"{m.name}{' (renamed)' if rn else ''}",
                    kind=f"independent {m.family}",
                    renamed=rn,
                    base=None,
                    threads=threads,
                )
            )
            path.unlink()
        run.suspects.append(m)


# --------------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------------


def midranks(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """1-based ranks of ``x``, ties sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    _, first, counts = np.unique(x[order], return_index=True, return_counts=True)
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return ranks


def auroc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """Area under the ROC curve of scores ``pos`` (kin) against ``neg`` (non-kin): the probability that a
    kin pair scores above a non-kin one, ties counting half (the Mann–Whitney U statistic / n₁n₀)."""
    if not pos or not neg:
        return math.nan
    ranks = midranks(np.asarray([*pos, *neg], dtype=np.float64))
    n1, n0 = len(pos), len(neg)
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def score(m: Match) -> float:
    """The kinship score of a match: −log10 p (0 when undefined; +∞ stays +∞ and ranks first)."""
    return -m.log10_p if not math.isnan(m.log10_p) else 0.0


Pair = tuple[Identification, Match]


def pairs(results: Iterable[Identification]) -> tuple[list[Pair], list[Pair]]:
    """(kin, non-kin) (suspect, entry) pairs."""
    kin: list[Pair] = []
    non: list[Pair] = []
    for r in results:
        for m in r.matches:
            (kin if m.name == r.base else non).append((r, m))
    return kin, non


# --------------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------------


def ms(seconds: Sequence[float]) -> str:
    """Median and maximum in milliseconds."""
    if not seconds:
        return "–"
    return f"{1e3 * statistics.median(seconds):.1f} / {1e3 * max(seconds):.1f}"


def machine_section(args: argparse.Namespace, run: Run) -> list[str]:
    """Date, machine, versions, command and how long each phase took."""
    # modelkin re-exports functions under some of these names: take the modules themselves.
    names = ("registry", "fingerprint", "compare.weights", "compare.prints", "evidence.weights", "verdict")
    files = [importlib.import_module(f"modelkin.{n}").__file__ for n in names]
    files.append(importlib.import_module("modelkin._engine").native_file())
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    code = code_hashes(files)
    rows = [
        ["date", now],
        ["command", f"`{args.command}`"],
        ["CPU", cpu_model()],
        ["cores", f"{os.cpu_count()} logical, {affinity} usable"],
        ["load average at start", " ".join(f"{x:.2f}" for x in args.load)],
        ["OS", f"{platform.system()} {platform.release()}"],
        ["python / numpy", f"{platform.python_version()} / {np.__version__}"],
        ["modelkin", f"{modelkin.__version__} (sha256: {code})"],
        ["OPENBLAS_NUM_THREADS", os.environ.get("OPENBLAS_NUM_THREADS", "unset")],
        ["modelkin threads", str(args.threads or "modelkin's default")],
    ]
    rows += [
        [phase, f"{t:.1f} s wall (not a benchmark: the machine may be busy)"]
        for phase, t in run.seconds.items()
    ]
    return [
        "# modelkin identify: ranking a registry's models as a suspect's ancestors",
        "",
        *table(["", ""], rows, text=2),
        "",
    ]


def setup_section(run: Run) -> list[str]:
    """What was registered and what was identified."""
    shape = derive.SHAPE
    bases = [m for m in run.registered if m.role == "base"]
    distractors = [m for m in run.registered if m.role == "distractor"]
    n_rel = sum(r.base is not None for r in run.results)
    n_ind = sum(r.base is None for r in run.results)

    def names(ms: Sequence[Model]) -> str:
        return ", ".join(m.name for m in ms) or "none"

    return [
        "## Setup",
        "",
        f"Registry: {run.entries} entries in a fresh `modelkin.Registry` (SQLite), all of `derive.SHAPE` "
        f"(vocab {shape.vocab}, hidden {shape.hidden}, {shape.layers} layers), fingerprinted with the "
        f"default sample size — {len(bases)} bases ({names(bases)}) and {len(distractors)} independent "
        f"distractors ({names(distractors)}). *init*: `derive.independent_init(seed)`; *trained*: "
        "`derive.independently_trained(seed, data seed)` (data seed = seed − 200).",
        "",
        f"Suspects: {n_rel} relatives ({len(KINDS)} kinds × {len(bases)} bases, seeds varied per base) and "
        f"{n_ind} identifications of {len(run.suspects)} independent models ({names(run.suspects)}), by "
        "name and with every tensor under an unrelated name (*renamed*). Each suspect is identified with "
        "`registry.identify(path, top=0)` against every entry.",
        "",
    ]


def accuracy_section(run: Run) -> list[str]:
    """Top-1 accuracy per kind of relative, with the true base's and the best wrong entry's log10 p."""
    out = [
        "## Top-1 accuracy per kind of relative",
        "",
        "*top-1*: the true base ranks first **and** is called related. *gated*: `--check` requires top-1 "
        "for every relative of the kind (target 100 %). *rank*: the true base's rank, worst over the bases. "
        "*true base log10 p*: worst (least kin-like) and median over the bases. *best other*: the most "
        "kin-like log10 p among the other entries; *false +*: other entries called related.",
        "",
    ]
    rows = []
    for kind in KINDS:
        sel = [r for r in run.results if r.kind == kind.name]
        if not sel:
            continue
        base_lp = [m.log10_p for r in sel if (m := r.base_match) is not None]
        others = [m.log10_p for r in sel for m in r.matches if m.name != r.base]
        rows.append(
            [
                kind.name,
                kind.recipe,
                "yes" if kind.gated else "no",
                str(len(sel)),
                frac(sum(r.top1 for r in sel), len(sel)),
                str(max((r.rank or 0) for r in sel)),
                lp(max(base_lp)) if base_lp else "–",
                lp(statistics.median(base_lp)) if base_lp else "–",
                lp(min(others)) if others else "–",
                f"**{sum(len(r.false_positives) for r in sel)}**",
            ]
        )
    sel = [r for r in run.results if r.base is not None]
    gated = {k.name for k in KINDS if k.gated}
    g = [r for r in sel if r.kind in gated]
    rows.append(
        [
            "**all**",
            "",
            f"{len(gated)} kinds",
            str(len(sel)),
            frac(sum(r.top1 for r in sel), len(sel)),
            str(max((r.rank or 0 for r in sel), default=0)),
            "",
            "",
            "",
            f"**{sum(len(r.false_positives) for r in sel)}**",
        ]
    )
    out += table(
        [
            "kind",
            "derivation",
            "gated",
            "n",
            "top-1",
            "worst rank",
            "true base log10 p (worst)",
            "(median)",
            "best other",
            "false +",
        ],
        rows,
        text=3,
    )
    out += ["", f"Gated kinds: {frac(sum(r.top1 for r in g), len(g))} relatives with their true base first."]
    return [*out, ""]


def separation_section(run: Run) -> list[str]:
    """AUROC of kin against non-kin, and the false positives at the default threshold."""
    kin, non = pairs(run.results)
    gated = {k.name for k in KINDS if k.gated}
    out = [
        "## Kin against non-kin",
        "",
        "Every (suspect, registered entry) pair is one case: *kin* when the entry is the suspect's true "
        "base, *non-kin* otherwise (the other entries for a relative, every entry for an independent "
        "suspect). Score: −log10 p of the match (the screen's p for entries the screen rules out). AUROC "
        "from the rank formula (Mann–Whitney U / n₁n₀, ties counting half). *false +*: non-kin pairs "
        f"called related at the default threshold (log10 p ≤ {KIN_LOG10_P:g}, "
        "`modelkin.verdict.KIN_LOG10_P`, and a related relation); *≤ threshold*: non-kin pairs whose log10 "
        "p reaches the threshold whatever the relation (e.g. `inconclusive`).",
        "",
    ]
    subsets: list[tuple[str, Callable[[Identification], bool]]] = [
        ("all suspects", lambda r: True),
        ("gated relatives + independents", lambda r: r.base is None or r.kind in gated),
        ("by name", lambda r: not r.renamed),
        ("renamed (content alignment only)", lambda r: r.renamed),
    ]
    rows = []
    for label, pred in subsets:
        k = [score(m) for r, m in kin if pred(r)]
        n = [(r, m) for r, m in non if pred(r)]
        ns = [score(m) for _, m in n]
        fp = sum(m.related for _, m in n)
        rows.append(
            [
                label,
                str(len(k)),
                str(len(n)),
                f"{auroc(k, ns):.4f}",
                lp(-min(k)) if k else "–",
                lp(-max(ns)) if ns else "–",
                f"**{fp}** ({fp / len(n):.2%})" if n else "–",
                str(sum(m.log10_p <= KIN_LOG10_P for _, m in n)),
            ]
        )
    out += table(
        [
            "pairs",
            "kin",
            "non-kin",
            "AUROC",
            "weakest kin log10 p",
            "strongest non-kin log10 p",
            "false + (rate)",
            "≤ threshold",
        ],
        rows,
    )
    if kin and non:
        wk_r, wk_m = min(kin, key=lambda x: score(x[1]))
        sn_r, sn_m = max(non, key=lambda x: score(x[1]))
        out += [
            "",
            f"Weakest kin pair: {wk_r.suspect} against {wk_m.name}: `{wk_m.relation}`, log10 p = "
            f"{lp(wk_m.log10_p)}. Strongest non-kin pair: {sn_r.suspect} against {sn_m.name}: "
            f"`{sn_m.relation}`, log10 p = {lp(sn_m.log10_p)}"
            + (" (decided by the screen)" if sn_m.screened_out else "")
            + ".",
        ]
    suspects_fp = sum(bool(r.false_positives) for r in run.results)
    out += [
        "",
        f"Identifications with at least one false positive: **{suspects_fp}** of {len(run.results)}.",
    ]
    return [*out, ""]


def independents_section(run: Run) -> list[str]:
    """The independent suspects: what the registry says about models with no ancestor in it."""
    out = [
        "## Independent suspects",
        "",
        "Suspects derived from no registered model, identified against every entry. *screened*: entries "
        "ruled out by the cheap name-aligned screen (no full comparison); *min log10 p*: the most kin-like "
        "entry; *related*: entries called related (false positives).",
        "",
    ]
    rows = []
    for fam in ("init", "trained"):
        for rn in (False, True):
            sel = [r for r in run.results if r.kind == f"independent {fam}" and r.renamed == rn]
            if not sel:
                continue
            ms_ = [m for r in sel for m in r.matches]
            others = Counter(m.relation for m in ms_ if m.relation != "independent")
            rows.append(
                [
                    fam,
                    "renamed" if rn else "by name",
                    str(len(sel)),
                    str(len(ms_)),
                    str(sum(m.screened_out for m in ms_)),
                    lp(min(m.log10_p for m in ms_)),
                    lp(statistics.median(m.log10_p for m in ms_)),
                    f"**{sum(m.related for m in ms_)}**",
                    ", ".join(f"{c} {r}" for r, c in others.items()) or "–",
                ]
            )
    out += table(
        [
            "suspects",
            "names",
            "n",
            "pairs",
            "screened",
            "min log10 p",
            "median",
            "related",
            "not independent",
        ],
        rows,
        text=2,
    )
    return [*out, ""]


def confusion_section(run: Run) -> list[str]:
    """The relation returned for each relative's true base."""
    out = [
        "## Relations returned for the true bases",
        "",
        "Rows: the kinds of relative; columns: the relation of the true base's match. *expected*: the "
        "relation `tests/test_verdicts.py` asks for (*related*: any relation that says the models share "
        "weights); *right*: matches that meet it.",
        "",
    ]
    rows = []
    for kind in KINDS:
        sel = [m for r in run.results if r.kind == kind.name and (m := r.base_match) is not None]
        if not sel:
            continue
        counts = Counter(m.relation for m in sel)
        right = sum(m.related if kind.expected is None else m.relation == kind.expected for m in sel)
        rows.append(
            [
                kind.name,
                kind.expected or "related",
                str(len(sel)),
                *(str(counts[r]) if counts[r] else "·" for r in RELATIONS),
                frac(right, len(sel)),
            ]
        )
    return [*out, *table(["kind", "expected", "n", *RELATIONS, "right"], rows, text=2), ""]


def cost_section(run: Run) -> list[str]:
    """Identify time per suspect and per entry; fingerprint size and time."""
    e = max(run.entries, 1)
    out = [
        "## Cost",
        "",
        f"Wall times on the machine above (median / max, ms), {run.entries} registered entries. *identify*: "
        "`registry.identify(path, top=0)`, which fingerprints the suspect, loads every entry from SQLite, "
        "screens it and compares the suspect with every entry the screen does not rule out. *from a "
        "fingerprint*: the same call given the suspect's fingerprint; ÷ entries gives the cost per "
        "registered entry. Entries ruled out by the screen cost a name-aligned sample correlation; the "
        "others a full fingerprint comparison (renamed suspects share no name, so none is screened).",
        "",
    ]
    groups: list[tuple[str, Callable[[Identification], bool]]] = [
        ("relatives, by name", lambda r: r.base is not None and not r.renamed),
        ("relatives, renamed", lambda r: r.base is not None and r.renamed),
        ("independent, by name", lambda r: r.base is None and not r.renamed),
        ("independent, renamed", lambda r: r.base is None and r.renamed),
        ("**all**", lambda r: True),
    ]
    rows = []
    for label, pred in groups:
        sel = [r for r in run.results if pred(r)]
        if not sel:
            continue
        n_pairs = sum(len(r.matches) for r in sel)
        rows.append(
            [
                label,
                str(len(sel)),
                ms([r.seconds for r in sel]),
                ms([r.seconds_print for r in sel]),
                ms([r.seconds_print / e for r in sel]),
                f"{sum(m.screened_out for r in sel for m in r.matches) / max(n_pairs, 1):.0%}",
            ]
        )
    out += table(
        ["suspects", "n", "identify", "from a fingerprint", "per entry", "screened"],
        rows,
    )
    if run.load_seconds:
        load = statistics.median(run.load_seconds) / e
        out += [
            "",
            "Reading the entries back (`registry.prints()`, the first step of `identify`): "
            f"{1e3 * load:.1f} ms per entry (median of 5 reads of the whole registry).",
        ]
    screened, full = entry_costs(run.results)
    if math.isfinite(screened) and math.isfinite(full):
        out += [
            "",
            "Least-squares split of the *from a fingerprint* times over all identifications (time ≈ "
            "screened entries × s + compared entries × c, loading from SQLite included in both): "
            f"s ≈ {1e3 * screened:.1f} ms per entry ruled out by the screen, c ≈ {1e3 * full:.1f} ms per "
            "full fingerprint comparison.",
        ]
    p = run.prints
    if p:
        mat = [b for c in p for b in c.matrix_bytes]
        vec = [b for c in p for b in c.vector_bytes]
        stored = [c.stored_bytes for c in p]
        per_tensor = [c.stored_bytes / c.n_tensors for c in p]
        ratio = statistics.median(c.stored_bytes / c.checkpoint_bytes for c in p)
        header = [(c.stored_bytes - sum(c.matrix_bytes) - sum(c.vector_bytes)) / c.n_tensors for c in p]
        secs = [c.seconds for c in p]
        rate = statistics.median(c.n_params / c.seconds / 1e6 for c in p if c.seconds > 0)
        c0 = p[0]
        out += [
            "",
            f"Fingerprints of the {len(p)} registered models ({c0.n_params:,} parameters, {c0.n_tensors} "
            f"tensors, {c0.checkpoint_bytes / 2**20:.2f} MiB float32 safetensors each). *stored*: the "
            "registry's blob (a safetensors file, format `modelkin.fingerprint/2`: float32 samples, "
            "float16 row and column means and float32 sorted row and column norms (≤ 128 quantiles "
            "each) of matrices; statistics, tensor digests and file hashes in its JSON header; no "
            "tokenizer, so no token-keyed rows).",
            "",
        ]
        out += table(
            ["", "value"],
            [
                ["stored per model (median)", f"{statistics.median(stored) / 1024:.1f} KiB"],
                ["stored ÷ checkpoint size", f"{ratio:.1%}"],
                ["stored per tensor (mean)", f"{statistics.mean(per_tensor) / 1024:.1f} KiB"],
                [
                    "arrays per matrix (median)",
                    f"{statistics.median(mat) / 1024:.1f} KiB" if mat else "–",
                ],
                [
                    "arrays per 1-D tensor (median)",
                    f"{statistics.median(vec) / 1024:.1f} KiB" if vec else "–",
                ],
                ["JSON header per tensor (mean)", f"{statistics.mean(header) / 1024:.2f} KiB"],
                ["fingerprint time per model (median / max)", f"{ms(secs)} ms"],
                [
                    "fingerprint throughput (median)",
                    f"{rate:.0f} M parameters/s (SHA-256 of the file included)",
                ],
            ],
        )
    return [*out, ""]


def entry_costs(results: Sequence[Identification]) -> tuple[float, float]:
    """Seconds per screened entry and per fully compared entry, by least squares over the identifications
    from a fingerprint (NaN when the identifications do not vary enough to tell the two apart)."""
    x = np.array(
        [
            [sum(m.screened_out for m in r.matches), sum(not m.screened_out for m in r.matches)]
            for r in results
        ],
        dtype=np.float64,
    ).reshape(-1, 2)
    y = np.array([r.seconds_print for r in results], dtype=np.float64)
    if x.shape[0] < 3 or np.linalg.matrix_rank(x) < 2:
        return math.nan, math.nan
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    return float(coef[0]), float(coef[1])


def failures(run: Run) -> list[str]:
    """What ``--check`` fails on: a gated relative whose true base is not first and related, and any
    entry called related that is not the suspect's true base."""
    gated = {k.name for k in KINDS if k.gated}
    out = []
    for r in run.results:
        if r.kind in gated and not r.top1:
            m, first = r.base_match, r.matches[0] if r.matches else None
            out.append(
                f"{r.suspect}: true base rank {r.rank}, "
                + (f"`{m.relation}` log10 p = {lp(m.log10_p)}" if m else "not listed")
                + (
                    f"; first: {first.name} `{first.relation}` log10 p = {lp(first.log10_p)}"
                    if first is not None and first is not m
                    else ""
                )
            )
        for m in r.false_positives:
            out.append(
                f"false positive: {r.suspect} against {m.name}: `{m.relation}`, log10 p = {lp(m.log10_p)} "
                f"(true base: {r.base or 'none'})"
            )
    return out


def failures_section(run: Run) -> list[str]:
    """The failures ``--check`` would report, with their evidence."""
    bad = failures(run)
    head = ["## Check", ""]
    if not bad:
        return [
            *head,
            "`--check` passes: every gated relative has its true base first and related, and no entry is "
            "called related to a suspect it is not the base of.",
            "",
        ]
    return [*head, f"`--check` fails ({len(bad)}):", "", *(f"- {b}" for b in bad), ""]


def report(args: argparse.Namespace, run: Run) -> str:
    """The whole Markdown report."""
    lines = machine_section(args, run)
    lines += setup_section(run)
    lines += accuracy_section(run)
    lines += separation_section(run)
    lines += independents_section(run)
    lines += confusion_section(run)
    lines += cost_section(run)
    lines += failures_section(run)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parses the command line."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--init-bases", type=count(0), default=2, help="untrained bases (default 2)")
    p.add_argument("--trained-bases", type=count(0), default=2, help="trained bases (default 2)")
    p.add_argument(
        "--init-distractors", type=count(0), default=8, help="untrained distractors registered (default 8)"
    )
    p.add_argument(
        "--trained-distractors", type=count(0), default=8, help="trained distractors registered (default 8)"
    )
    p.add_argument(
        "--init-suspects", type=count(0), default=8, help="untrained independent suspects (default 8)"
    )
    p.add_argument(
        "--trained-suspects", type=count(0), default=8, help="trained independent suspects (default 8)"
    )
    p.add_argument("--no-renamed", action="store_true", help="identify the independent suspects by name only")
    p.add_argument("--threads", type=count(1), default=None, help="modelkin threads (default: modelkin's)")
    p.add_argument("--results", type=Path, default=HERE / "IDENTIFY.md", help="the Markdown report")
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if a gated relative's true base is not first or an entry is wrongly called related",
    )
    args = p.parse_args(argv)
    if args.init_bases + args.trained_bases == 0:
        p.error("at least one base is needed")
    if args.init_bases + args.init_distractors + args.init_suspects > TRAINED_SEED - INIT_SEED:
        p.error(
            f"at most {TRAINED_SEED - INIT_SEED} untrained models (their seeds would meet the trained ones')"
        )
    args.command = shlex.join(
        ["python", "benches/identify_eval.py", *(sys.argv[1:] if argv is None else argv)]
    )
    args.load = os.getloadavg()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the evaluation; returns the exit code (0, 1 on a failed ``--check``, 2 on error, 130)."""
    args = arguments(argv)
    run = Run()
    chosen = models(
        [
            ("base", args.init_bases, args.trained_bases),
            ("distractor", args.init_distractors, args.trained_distractors),
            ("suspect", args.init_suspects, args.trained_suspects),
        ]
    )
    bases = [m for m in chosen if m.role == "base"]
    try:
        with tempfile.TemporaryDirectory(prefix="modelkin-identify-") as tmp:
            folder = Path(tmp)
            registry = modelkin.Registry(folder / "reg.sqlite")
            t0 = time.perf_counter()
            states = register(run, registry, folder, [m for m in chosen if m.role != "suspect"], args.threads)
            run.entries = len(registry.list())
            run.load_seconds = load_times(registry)
            run.seconds["building and registering the models"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            identify_relatives(run, registry, folder, bases, states, args.threads)
            run.seconds["deriving and identifying the relatives"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            suspects = [m for m in chosen if m.role == "suspect"]
            identify_independents(run, registry, folder, suspects, not args.no_renamed, args.threads)
            run.seconds["building and identifying the independent suspects"] = time.perf_counter() - t0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (OSError, modelkin.ModelkinError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = report(args, run)
    write_atomically(args.results, text)
    try:
        print(text, flush=True)
    except BrokenPipeError:  # e.g. piped into `head`: the report is in --results anyway
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if args.check:
        bad = failures(run)
        for line in bad:
            print(f"check failed: {line}", file=sys.stderr)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
