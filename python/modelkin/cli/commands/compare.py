"""``modelkin compare``: how B relates to A, a verdict with its evidence.

Exit status 1 only when ``--fail-on`` asked for a check and it failed."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Any

from rich.console import Console
from rich.table import Table

from ..._output import check_output
from ..._util import num
from ...compare import CompareResult, compare
from ...evidence.behavior import compare_behavior
from ..console import add_force_option, console, finish_streaming_parser, progress_wanted, term
from . import EXIT_CHECK_FAILED

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``compare`` to the ``add_subparsers()`` object and returns its parser."""
    sp: argparse.ArgumentParser = subparsers.add_parser(
        "compare", help="how B relates to A: a verdict with its evidence"
    )
    sp.add_argument("a", help="the reference checkpoint")
    sp.add_argument("b", help="the checkpoint examined against it")
    sp.add_argument(
        "--fail-on",
        choices=("derived", "copy"),
        default=None,
        help="exit 1 when B is derived from A (any kinship) or a copy of it "
        "(identical, cast, quantized, noised, scaled or a partial copy)",
    )
    sp.add_argument("--top", type=int, default=15, help="evidence rows shown (0 = all)")
    sp.add_argument(
        "--predictions",
        nargs=2,
        metavar=("PRED_A", "PRED_B"),
        default=None,
        help="per-item answers of A and B (JSONL/CSV) for the behavioural line",
    )
    sp.add_argument("--gold", default=None, help="gold answers for --predictions (JSONL/CSV of id, answer)")
    sp.add_argument("--report", default=None, help="also write a self-contained report (.html or .md)")
    add_force_option(sp)
    return finish_streaming_parser(sp, run)


def run(args: argparse.Namespace) -> int:
    """Runs ``modelkin compare`` for parsed arguments; returns the exit status."""
    out, progress = console(sys.stdout), progress_wanted(args)
    if args.report:
        from ...report import report_format

        report_format(args.report)  # the suffix, before anything is read
        inputs = [args.a, args.b, *(args.predictions or ()), *([args.gold] if args.gold else [])]
        check_output(args.report, inputs, force=args.force, what="report")
    res_c = compare(args.a, args.b, threads=args.threads, progress=progress)
    if args.predictions:
        res_c = replace(res_c, behavior=compare_behavior(args.predictions, args.gold))
    if args.report:
        from ...report import write_report  # matplotlib is imported only when a report is asked for

        written = write_report(res_c, args.report, argv=["modelkin", *sys.argv[1:]])
        console(sys.stderr).print(f"wrote report to {term(written)}", soft_wrap=True)
    if args.json:
        print(json.dumps(res_c.to_dict(), indent=1))
    else:
        _print_compare(res_c, out, args.top)
    relation = res_c.verdict.relation
    failed = (args.fail_on == "derived" and res_c.verdict.related) or (
        args.fail_on == "copy" and relation in _COPIES
    )
    return EXIT_CHECK_FAILED if failed else 0


_COPIES = ("identical", "cast_copy", "quantized_copy", "noised_copy", "scaled_copy", "partial_copy")


def _print_compare(res: CompareResult, out: Console, top: int) -> None:
    v = res.verdict
    colour = "red" if v.related else "green"
    out.print(f"[bold {colour}]Verdict:[/] {term(v.sentence)}")
    if v.related:
        out.print(
            f"confidence {v.confidence:.6f} (model-level log10 p = {v.log10_p:.1f}, Bonferroni over tensors)"
        )
    else:
        out.print(f"strongest kinship signal: adjusted log10 p = {v.log10_p:.2f} (kin needs < −6)")
    for note in v.notes:
        out.print(f"note: {term(note)}")
    if res.metadata is not None:
        m = res.metadata
        unreadable = f" Unreadable: {'; '.join(m.problems)}." if m.problems else ""
        out.print(f"\n[bold]Config and tokenizer[/] ({m.strength}): {term(m.sentence + unreadable)}")
    if res.behavior is not None:
        out.print(f"[bold]Behaviour[/]: {term(res.behavior.sentence)}")
    if res.profiles is not None:
        out.print(f"[bold]Per-layer profiles[/] (descriptive): {term(res.profiles.sentence)}")
    al = res.alignment
    methods: dict[str, int] = {}
    for p in al.pairs:
        methods[p.method] = methods.get(p.method, 0) + 1
    out.print(
        f"\n[bold]Alignment[/]: {len(al.pairs)} pairs ({', '.join(f'{k} {n}' for k, n in methods.items())}), "
        f"{al.renamed} renamed; {len(al.only_a)} only in A, {len(al.only_b)} only in B"
    )
    informative = [e for e in res.evidence if e.informative]
    kinds: dict[str, int] = {}
    for e in informative:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    out.print(
        f"[bold]Weights[/]: {len(informative)} learnt matrices tested; "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
    )
    t = Table(show_edge=False, pad_edge=False)
    for col in ("A", "B", "how", "kind", "log10 p", "σ(d)", "skew", "ex.kurt", "corr(d,a)", "1−cos"):
        t.add_column(col, justify="left" if col in ("A", "B", "how", "kind") else "right")
    rows = sorted(res.evidence, key=lambda e: (not e.informative, e.log10_p))
    for e in rows if top <= 0 else rows[:top]:
        s = e.stats
        t.add_row(
            term(e.pairing.a),
            "=" if e.pairing.b == e.pairing.a else term(e.pairing.b),
            e.pairing.method,
            e.kind + ("" if e.informative else "*"),
            num(e.log10_p, ".1f"),
            num(s.d.std),
            num(s.d.skewness, ".2f"),
            num(s.d.kurtosis, ".2f"),
            num(s.corr_d_a, ".2f"),
            num(s.one_minus_cosine),
        )
    out.print(t)
    out.print("* not counted towards the verdict (small, 1-D or fixed tensors)")
    out.print(f"{res.diff.seconds:.2f} s on {res.diff.threads} thread(s)")
