#!/usr/bin/env python3
"""Calibration of ``modelkin.compare``: its p-values on independent models, and its verdicts on relatives.

The null is built from models that share nothing but their architecture: models trained (briefly, in
numpy) from their own initialisations on their own samples of one data source, and untrained fresh
initialisations (``tests/support/derive.py``). Every pair of them is compared; the model-level ``log10_p``
must stay above the kin threshold, and the per-tensor p-values should be Uniform(0, 1) — the per-tensor
z scores N(0, 1) — which the report checks by tensor group, since trained models share structure in
the rows tied to tokens (embedding, output head). The relatives of ``tests/support/cases.py`` (copies, casts,
quantized, scaled, noised, fine-tuned, layer-dropped, vocabulary-extended, each also with every tensor
of B renamed) are compared with their bases, and every verdict goes into a confusion table. The report
is printed and written to ``benches/CALIBRATION.md``. See ``benches/README.md``::

    python benches/calibration.py                       # 24 trained + 8 untrained models, 4 bases
    python benches/calibration.py --trained 11 --inits 5 --init-bases 1 --trained-bases 1   # quicker
"""

from __future__ import annotations

import os

# The training steps are small matrix products: one BLAS thread is fastest, and steadier on a shared
# machine. Must be set before numpy is imported; an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import datetime
import math
import platform
import re
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
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
from cases import CASES, RENAME_SEED
from modelkin.compare import CompareResult
from modelkin.demo import DemoShape
from modelkin.verdict import KIN_LOG10_P, RELATIONS, Verdict
from scipy.stats import kstest, norm

HERE = Path(__file__).resolve().parent
State = dict[str, np.ndarray]

#: Seeds of the null models, as in tests/test_verdicts.py: trained i has init seed 201 + i and data seed
#: 1 + i; untrained i has seed 101 + i. Relatives' bases use seeds 0, 1, … (disjoint from both).
TRAINED_SEED, DATA_SEED, INIT_SEED = 201, 1, 101
#: Tensors whose rows are tied to tokens: where trained models share structure.
TOKEN_ROWS = re.compile(r"(embed_tokens|lm_head)")
#: Tensor groups of the per-tensor tables: (label, predicate on the name of A's tensor).
GROUPS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("all matrices", lambda n: True),
    ("other matrices", lambda n: not TOKEN_ROWS.search(n)),
    ("embedding + lm_head", lambda n: bool(TOKEN_ROWS.search(n))),
    ("embedding", lambda n: "embed_tokens" in n),
    ("lm_head", lambda n: "lm_head" in n),
)

# --------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    """A model the relatives are derived from: a fresh initialisation (``data_seed`` None) or a trained
    one, built in either shape (4 layers, or 6 for the layer-dropping case)."""

    index: int  # varies the derivations' seeds; 0 reproduces the tests' models
    seed: int
    data_seed: int | None = None

    @property
    def label(self) -> str:
        """``init seed 0``, ``trained seed 201``."""
        return f"{'init' if self.data_seed is None else 'trained'} seed {self.seed}"

    def make(self, shape: DemoShape) -> State:
        """The base's state dict in ``shape``."""
        if self.data_seed is None:
            return derive.base(self.seed, shape)
        return derive.independently_trained(self.seed, self.data_seed, shape=shape)[0]


def bases(init_bases: int, trained_bases: int) -> list[Base]:
    """Untrained bases (seeds 0, 1, …; seed 0 is the tests' ``base``) and trained ones (the seeds and data
    seeds of the first trained null models)."""
    out = [Base(s, s) for s in range(init_bases)]
    out += [Base(init_bases + i, TRAINED_SEED + i, DATA_SEED + i) for i in range(trained_bases)]
    return out


# --------------------------------------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorNull:
    """One informative tensor pair of a null comparison."""

    family: str
    name: str
    z: float  # the kinship test's z (``PairEvidence.z``)
    log10_p: float
    align_z: float  # the z of the same pair in the alignment (``Pairing.z``, from the sketches' samples)


@dataclass(frozen=True)
class Outcome:
    """One comparison: what was compared and the verdict."""

    family: str  # null: "init–init", …; relatives: the case name
    a: str
    b: str
    renamed: bool
    relation: str
    related: bool
    log10_p: float
    expected: str | None  # None: any related relation is right

    @property
    def right(self) -> bool:
        """Whether the verdict is the expected one (any related one where ``expected`` is None)."""
        return self.related if self.expected is None else self.relation == self.expected


@dataclass
class Run:
    """Everything the report needs."""

    null: list[Outcome] = field(default_factory=list)
    tensors: list[TensorNull] = field(default_factory=list)
    relatives: list[Outcome] = field(default_factory=list)
    k_informative: list[int] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    losses: list[tuple[float, float]] = field(default_factory=list)


def outcome(family: str, a: str, b: str, renamed: bool, v: Verdict, expected: str | None) -> Outcome:
    """An :class:`Outcome` from a verdict."""
    return Outcome(family, a, b, renamed, v.relation, v.related, v.log10_p, expected)


def compare(a: Path, b: Path, threads: int | None) -> CompareResult:
    """``modelkin.compare`` of ``b`` against ``a``."""
    return modelkin.compare(a, b, threads=threads)


def null_comparisons(
    run: Run, folder: Path, trained: int, inits: int, renamed_b: bool, threads: int | None
) -> None:
    """Builds and writes the null models and compares every pair (i < j), named and with B renamed."""
    t0 = time.perf_counter()
    paths: dict[str, Path] = {}
    renamed: dict[str, Path] = {}
    for i in range(trained):
        seed, data = TRAINED_SEED + i, DATA_SEED + i
        log(f"training null model {i + 1}/{trained} (seed {seed}, data seed {data})")
        state, tlog = derive.independently_trained(seed, data)
        run.losses.append((tlog.loss_first, tlog.loss_last))
        name = f"trained{seed}"
        paths[name] = write(folder, name, state)
        if renamed_b:
            renamed[name] = write(folder, f"{name}~renamed", derive.renamed(state, seed=RENAME_SEED)[0])
    for i in range(inits):
        seed = INIT_SEED + i
        name = f"init{seed}"
        state = derive.independent_init(seed)
        paths[name] = write(folder, name, state)
        if renamed_b:
            renamed[name] = write(folder, f"{name}~renamed", derive.renamed(state, seed=RENAME_SEED)[0])
    run.seconds["building the null models"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    names = list(paths)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    log(f"comparing {len(pairs)} independent pairs" + (" (and again with B renamed)" if renamed_b else ""))
    for a, b in pairs:
        family = "–".join(
            sorted((a.rstrip("0123456789"), b.rstrip("0123456789")), key=("init", "trained").index)
        )
        res = compare(paths[a], paths[b], threads)
        v = res.verdict
        run.null.append(outcome(family, a, b, False, v, "independent"))
        informative = [e for e in res.evidence if e.informative]
        run.k_informative.append(len(informative))
        for e in informative:
            if math.isfinite(e.z) and math.isfinite(e.log10_p):
                az = float(e.pairing.z)
                run.tensors.append(TensorNull(family, e.pairing.a, float(e.z), float(e.log10_p), az))
        if renamed_b:
            v = compare(paths[a], renamed[b], threads).verdict
            run.null.append(outcome(family, a, b, True, v, "independent"))
    run.seconds["comparing the null pairs"] = time.perf_counter() - t0


def relative_comparisons(
    run: Run, folder: Path, chosen: Sequence[Base], renamed_b: bool, threads: int | None
) -> None:
    """Derives every case from every base, compares it with its base (and with B renamed), deletes it."""
    t0 = time.perf_counter()
    for base in chosen:
        log(f"relatives of {base.label}")
        states = {False: base.make(derive.SHAPE), True: base.make(derive.SHAPE6)}
        base_paths = {six: write(folder, f"base{base.index}-{six}", s) for six, s in states.items()}
        for case in CASES:
            state = case.state(states[case.six_layers], base.index)
            derived = write(folder, f"derived{base.index}", state)
            parent = base_paths[case.six_layers]
            a, b = (derived, parent) if case.swap else (parent, derived)
            v = compare(a, b, threads).verdict
            run.relatives.append(outcome(case.name, base.label, case.name, False, v, case.expected))
            derived.unlink()
            if renamed_b and case.rename_b:
                other = write(
                    folder, f"derived{base.index}~renamed", derive.renamed(state, seed=RENAME_SEED)[0]
                )
                v = compare(parent, other, threads).verdict
                run.relatives.append(outcome(case.name, base.label, case.name, True, v, case.expected))
                other.unlink()
        for p in base_paths.values():
            p.unlink()
    run.seconds["building and comparing the relatives"] = time.perf_counter() - t0


# --------------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------------


def num(x: float, fmt: str) -> str:
    """``x`` formatted, or a dash when it is not finite."""
    return format(x, fmt) if math.isfinite(x) else "–"


def quantile(xs: Sequence[float], q: float) -> float:
    """The q-quantile (linear interpolation)."""
    return float(np.quantile(np.asarray(xs, dtype=np.float64), q))


def sd(xs: npt.NDArray[np.float64]) -> float:
    """Sample standard deviation, NaN below 3 values."""
    return float(np.std(xs, ddof=1)) if xs.size >= 3 else math.nan


def sd_mad(xs: npt.NDArray[np.float64]) -> float:
    """Standard deviation estimated from the median absolute deviation (robust), NaN below 3 values."""
    if xs.size < 3:
        return math.nan
    return float(np.median(np.abs(xs - np.median(xs)))) / float(norm.ppf(0.75))


def machine_section(args: argparse.Namespace, run: Run) -> list[str]:
    """Date, machine, versions, command and how long each phase took."""
    import scipy
    from modelkin import _engine, verdict
    from modelkin.evidence import weights

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    files = [weights.__file__, verdict.__file__, _engine.native_file()]
    code = code_hashes(files)
    rows = [
        ["date", now],
        ["command", f"`{args.command}`"],
        ["CPU", cpu_model()],
        ["cores", f"{os.cpu_count()} logical, {affinity} usable"],
        ["load average at start", " ".join(f"{x:.2f}" for x in args.load)],
        ["OS", f"{platform.system()} {platform.release()}"],
        ["python / numpy / scipy", f"{platform.python_version()} / {np.__version__} / {scipy.__version__}"],
        ["modelkin", f"{modelkin.__version__} (sha256: {code})"],
        ["OPENBLAS_NUM_THREADS", os.environ.get("OPENBLAS_NUM_THREADS", "unset")],
    ]
    rows += [
        [phase, f"{t:.1f} s wall (not a benchmark: the machine may be busy)"]
        for phase, t in run.seconds.items()
    ]
    return [
        "# modelkin calibration: the null distribution of `compare`, and its verdicts on relatives",
        "",
        *table(["", ""], rows, text=2),
        "",
    ]


FAMILIES = ("init–init", "init–trained", "trained–trained")


def null_section(run: Run, args: argparse.Namespace) -> list[str]:
    """(a) The model-level log10 p of independent pairs."""
    shape = derive.SHAPE
    k = statistics.median(run.k_informative) if run.k_informative else 0
    first, last = (float(np.mean([x[i] for x in run.losses])) if run.losses else math.nan for i in (0, 1))
    out = [
        "## (a) Model-level `log10_p` of independent pairs",
        "",
        f"Models: {args.trained} trained (`derive.independently_trained`, init seeds {TRAINED_SEED}…"
        f"{TRAINED_SEED + args.trained - 1}, data seeds {DATA_SEED}…{DATA_SEED + args.trained - 1}; mean "
        f"loss {first:.2f} → {last:.2f} nats) and {args.inits} untrained (`derive.independent_init`, seeds "
        f"{INIT_SEED}…{INIT_SEED + args.inits - 1}), all of `derive.SHAPE` (vocab {shape.vocab}, hidden "
        f"{shape.hidden}, {shape.layers} layers; {k:g} informative matrices per pair). Every pair is "
        "compared once, A = the earlier model. *renamed*: A against B with every tensor under an "
        "unrelated name (`derive.renamed`), so nothing pairs by name and the verdict comes from the "
        "content search over equal-shaped matrices.",
        "",
        "The model-level p is Bonferroni-adjusted (smallest p × tensors tested, or × candidate pairs when "
        "nothing pairs up; capped at 1: *p = 1* counts those), so under the null P(log10 p ≤ x) ≤ 10^x: "
        "in brackets, n × α, the most the bound allows on average. Kin is called at log10 p ≤ "
        f"{KIN_LOG10_P:g} (`modelkin.verdict.KIN_LOG10_P`); *related* counts the verdicts that say the "
        "models share weights.",
        "",
    ]
    rows = []
    families = [f for f in FAMILIES if any(o.family == f for o in run.null)]
    for fam in [*families, "all"]:
        for rn in (False, True):
            sel = [o for o in run.null if (fam == "all" or o.family == fam) and o.renamed == rn]
            if not sel:
                continue
            xs = [o.log10_p for o in sel]
            n = len(xs)
            others = Counter(o.relation for o in sel if o.relation != "independent")
            rows.append(
                [
                    f"**{fam}**" if fam == "all" else fam,
                    "renamed" if rn else "by name",
                    str(n),
                    lp(min(xs)),
                    lp(quantile(xs, 0.1)),
                    lp(quantile(xs, 0.5)),
                    str(sum(x >= 0 for x in xs)),
                    f"{sum(x <= math.log10(0.05) for x in xs)} ({0.05 * n:.1f})",
                    f"{sum(x <= -2 for x in xs)} ({0.01 * n:.1f})",
                    f"{sum(x <= -3 for x in xs)} ({0.001 * n:.2f})",
                    f"**{sum(x <= KIN_LOG10_P for x in xs)}**",
                    f"**{sum(o.related for o in sel)}**",
                    ", ".join(f"{c} {r}" for r, c in others.items()) or "–",
                ]
            )
    out += table(
        [
            "pairs",
            "B",
            "n",
            "min",
            "10 %",
            "median",
            "p = 1",
            "p ≤ 0.05 (bound)",
            "p ≤ 0.01 (bound)",
            "p ≤ 0.001 (bound)",
            f"≤ {KIN_LOG10_P:g}",
            "related",
            "not independent",
        ],
        rows,
        text=2,
    )
    if run.null:
        worst = min(run.null, key=lambda o: o.log10_p)
        margin = worst.log10_p - KIN_LOG10_P
        out += [
            "",
            f"Most kin-like independent pair: {worst.a} vs {worst.b}{', renamed' if worst.renamed else ''}: "
            f"log10 p = {lp(worst.log10_p)}, verdict `{worst.relation}` — "
            + (
                f"{margin:.1f} decades above the threshold."
                if margin > 0
                else f"**{-margin:.1f} decades past the threshold**."
            ),
        ]
    return [*out, ""]


def z_crit(k: float) -> float:
    """The per-tensor z at which the model-level adjusted log10 p reaches the kin threshold (k tensors)."""
    return float(norm.isf(10 ** (KIN_LOG10_P - math.log10(max(k, 1)))))


def tensor_section(run: Run) -> list[str]:
    """(b) and (c): the per-tensor p-values and z scores of informative tensors under the null."""
    k = statistics.median(run.k_informative) if run.k_informative else 1
    zc = z_crit(k)
    pairs_by_family = Counter(o.family for o in run.null if not o.renamed)
    out = [
        "## (b, c) Per-tensor p-values and z scores under the null",
        "",
        "The informative tensor pairs of the *by name* comparisons, pooled over pairs: p = 10^`log10_p` "
        "(one-sided: a large positive correlation gives a small p) should be Uniform(0, 1), and z "
        "(`PairEvidence.z`) N(0, 1). *KS D*: the Kolmogorov–Smirnov distance of the p-values from "
        "Uniform(0, 1) (`scipy.stats.kstest`); its p-value (*KS p*) treats the values as independent, which "
        "they are not quite (each model is in many pairs): a guide, not a test. *SD z*: the empirical "
        "standard deviation (the test assumes 1.0); *MAD*: the same estimated from the median absolute "
        "deviation (robust to a few outliers). *align z SD*: the SD of the z that the alignment computed "
        "for the same pairs from the sketches' own samples (`Pairing.z`), the statistic behind the content "
        "search and hence behind the *renamed* verdicts.",
        "",
        f"*≈ false kin / pair* extrapolates the tail: with {k:g} tensors tested, a pair is called kin when "
        f"one tensor reaches z ≥ {zc:.2f}; if the group's z were N(mean, SD²), the expected number of such "
        f"tensors per pair is (tensors per pair) × P(z ≥ {zc:.2f}). With N(0, 1) it is ~1e-6 × the group's "
        "share of tensors; every 10 % of excess SD multiplies it by about 10.",
        "",
    ]
    rows = []
    families = [f for f in FAMILIES if pairs_by_family[f]]
    for fam in [*families, "all"]:
        for label, pred in GROUPS:
            sel = [t for t in run.tensors if (fam == "all" or t.family == fam) and pred(t.name)]
            if not sel:
                continue
            z = np.array([t.z for t in sel])
            az = np.array([t.align_z for t in sel if math.isfinite(t.align_z)])
            p = np.power(10.0, np.array([t.log10_p for t in sel]))
            ks = kstest(p, "uniform")
            s, mean = sd(z), float(np.mean(z))
            pairs = pairs_by_family[fam] if fam != "all" else sum(pairs_by_family.values())
            rate = z.size / pairs * float(norm.sf((zc - mean) / s)) if pairs and s > 0 else math.nan
            rows.append(
                [
                    f"**{fam}**" if fam == "all" else fam,
                    label,
                    str(z.size),
                    f"{ks.statistic:.3f}",
                    f"{ks.pvalue:.2g}",
                    f"{mean:+.2f}",
                    f"**{num(s, '.2f')}**",
                    num(sd_mad(z), ".2f"),
                    f"{float(np.max(z)):.2f}",
                    *(f"{float(np.mean(p <= a)):.3f}" for a in (0.05, 0.01, 0.001)),
                    num(rate, ".0e"),
                    num(sd(az), ".2f"),
                    num(float(np.max(az)) if az.size else math.nan, ".2f"),
                ]
            )
    out += table(
        [
            "pairs",
            "tensors",
            "n",
            "KS D",
            "KS p",
            "mean z",
            "SD z",
            "MAD",
            "max z",
            "p ≤ 0.05",
            "p ≤ 0.01",
            "p ≤ 0.001",
            "≈ false kin / pair",
            "align z SD",
            "align z max",
        ],
        rows,
        text=2,
    )
    return [*out, ""]


def relatives_section(run: Run, chosen: Sequence[Base]) -> list[str]:
    """(d) The model-level log10 p of true relatives."""
    out = [
        "## (d) Model-level `log10_p` of true relatives",
        "",
        f"Each case of `tests/support/cases.py` is built from {len(chosen)} bases "
        f"({', '.join(b.label for b in chosen)}; the derivations' seeds vary with the base, and init seed 0 "
        "gives the tests' own models) and compared with its base, by name and with every tensor of B "
        f"renamed. *worst*: the least kin-like comparison; it should be far below {KIN_LOG10_P:g}.",
        "",
    ]
    rows = []
    for case in CASES:
        sel = [o for o in run.relatives if o.family == case.name]
        if not sel:
            continue
        xs = [o.log10_p for o in sel]
        worst = max(sel, key=lambda o: o.log10_p)
        rows.append(
            [
                case.name,
                f"{worst.a}{', renamed' if worst.renamed else ''}",
                str(len(sel)),
                lp(max(xs)),
                lp(quantile(xs, 0.5)),
                lp(min(xs)),
                frac(sum(x <= KIN_LOG10_P for x in xs), len(xs)),
            ]
        )
    out += table(["case", "worst is", "n", "worst", "median", "best", f"≤ {KIN_LOG10_P:g}"], rows, text=2)
    if run.relatives and run.null:
        worst = max(run.relatives, key=lambda o: o.log10_p)
        best_null = min(run.null, key=lambda o: o.log10_p)
        out += [
            "",
            f"Separation: the least kin-like relative ({worst.family} of {worst.a}"
            f"{', renamed' if worst.renamed else ''}) has log10 p = {lp(worst.log10_p)}; the most kin-like "
            f"independent pair ({best_null.a} vs {best_null.b}{', renamed' if best_null.renamed else ''}) "
            f"{lp(best_null.log10_p)}.",
        ]
    return [*out, ""]


def confusion_section(run: Run) -> list[str]:
    """(e) Counts of each relation returned, per derived case and per family of independent pairs."""
    out = [
        "## (e) Confusion table",
        "",
        "Rows: the cases of tests/test_verdicts.py, derived from every base, and the independent pairs of "
        "(a); columns: the relation `compare` returned. *expected*: the relation the tests ask for "
        "(*related*: any relation that says the models share weights); *right*: verdicts that meet it.",
        "",
    ]
    everything = [*run.relatives, *run.null]
    keys = list(dict.fromkeys((o.family, o.renamed) for o in everything))
    rows = []
    for fam, rn in keys:
        sel = [o for o in everything if (o.family, o.renamed) == (fam, rn)]
        counts = Counter(o.relation for o in sel)
        label = fam if fam not in FAMILIES else f"independent {fam}"
        rows.append(
            [
                label,
                "renamed" if rn else "by name",
                sel[0].expected or "related",
                str(len(sel)),
                *(str(counts[r]) if counts[r] else "·" for r in RELATIONS),
                frac(sum(o.right for o in sel), len(sel)),
            ]
        )
    return [*out, *table(["case", "B", "expected", "n", *RELATIONS, "right"], rows, text=3), ""]


def report(args: argparse.Namespace, run: Run, chosen: Sequence[Base]) -> str:
    """The whole Markdown report."""
    lines = machine_section(args, run)
    lines += null_section(run, args)
    lines += tensor_section(run)
    lines += relatives_section(run, chosen)
    lines += confusion_section(run)
    return "\n".join(lines)


def failures(run: Run) -> list[str]:
    """What ``--check`` fails on: independent pairs not called independent or past the kin threshold,
    relatives not called related or not past it."""
    out = [
        f"independent pair {o.a} vs {o.b}{' (B renamed)' if o.renamed else ''}: {o.relation}, "
        f"log10 p = {lp(o.log10_p)}"
        for o in run.null
        if o.log10_p <= KIN_LOG10_P or not o.right
    ]
    out += [
        f"{o.family} of {o.a}{' (B renamed)' if o.renamed else ''}: {o.relation}, log10 p = {lp(o.log10_p)}"
        for o in run.relatives
        if o.log10_p > KIN_LOG10_P or not o.related
    ]
    return out


# --------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parses the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--trained", type=count(11), default=24, help="independently trained models, ≥ 11 (default 24)"
    )
    p.add_argument("--inits", type=count(5), default=8, help="untrained independent models, ≥ 5 (default 8)")
    p.add_argument("--init-bases", type=count(0), default=2, help="untrained bases of relatives (default 2)")
    p.add_argument("--trained-bases", type=count(0), default=2, help="trained bases of relatives (default 2)")
    p.add_argument(
        "--no-renamed", action="store_true", help="skip the comparisons with every tensor of B renamed"
    )
    p.add_argument("--threads", type=count(1), default=None, help="modelkin threads (default: modelkin's)")
    p.add_argument("--results", type=Path, default=HERE / "CALIBRATION.md", help="the Markdown report")
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if an independent pair is called kin or a relative is not",
    )
    args = p.parse_args(argv)
    if args.trained_bases > args.trained:
        p.error("--trained-bases cannot exceed --trained (the trained bases are the first null models)")
    args.command = shlex.join(["python", "benches/calibration.py", *(sys.argv[1:] if argv is None else argv)])
    args.load = os.getloadavg()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the calibration; returns the exit code (0, 1 on a failed ``--check``, 2 on error, 130)."""
    args = arguments(argv)
    run = Run()
    chosen = bases(args.init_bases, args.trained_bases)
    try:
        with tempfile.TemporaryDirectory(prefix="modelkin-calibration-") as tmp:
            folder = Path(tmp)
            null_comparisons(run, folder, args.trained, args.inits, not args.no_renamed, args.threads)
            relative_comparisons(run, folder, chosen, not args.no_renamed, args.threads)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (OSError, modelkin.ModelkinError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = report(args, run, chosen)
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
