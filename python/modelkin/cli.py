"""The ``modelkin`` command line: ``inspect``, ``diff`` and ``demo``.

Exit status: 0 on success, 2 on any error (``modelkin: error: …`` on stderr, no traceback), 130 on
Ctrl-C. Colour only on a terminal and never with ``NO_COLOR``; ``--json`` for pipelines.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from rich.console import Console
from rich.table import Table

from . import __version__
from ._util import json_safe, num
from .cli_behavior import add_behavior_parser, run_behavior
from .compare import CompareResult, compare
from .diff import DiffResult, InspectResult, diff, inspect
from .errors import ModelkinError
from .evidence.behavior import compare_behavior
from .fingerprint import FORMAT, fingerprint
from .registry import Registry

__all__ = ["main"]


def _shape(shape: Sequence[int]) -> str:
    return "×".join(map(str, shape)) if shape else "scalar"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modelkin",
        description="Was this checkpoint derived from that one? Compare checkpoints tensor by tensor.",
    )
    p.add_argument("--version", action="version", version=f"modelkin {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--json", action="store_true", help="print JSON (versioned schema) instead of a table"
        )
        sp.add_argument(
            "--threads",
            type=int,
            default=None,
            help="worker threads (default: MODELKIN_NUM_THREADS or all cores)",
        )
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    sp = sub.add_parser("inspect", help="statistics of every tensor of one checkpoint")
    sp.add_argument(
        "path", help="checkpoint: .safetensors, .gguf, PyTorch .bin/.pt, .npy/.npz, index, or folder"
    )
    common(sp)

    sp = sub.add_parser("diff", help="compare checkpoint B against A, tensor by tensor")
    sp.add_argument("a", help="the reference checkpoint")
    sp.add_argument("b", help="the checkpoint compared against it")
    sp.add_argument(
        "--top", type=int, default=25, help="rows in the table, largest differences first (0 = all)"
    )
    common(sp)

    sp = sub.add_parser("compare", help="how B relates to A: a verdict with its evidence")
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
    common(sp)

    sp = sub.add_parser("fingerprint", help="write a compact fingerprint of a checkpoint")
    sp.add_argument("path", help="the checkpoint")
    sp.add_argument("-o", "--output", required=True, help="fingerprint file to write")
    sp.add_argument("--sample-size", type=int, default=2048, help="values sampled per tensor")
    common(sp)

    sp = sub.add_parser("registry", help="manage the local registry of fingerprints")
    sp.add_argument(
        "--registry", default=None, help="registry file (default: MODELKIN_REGISTRY or the data dir)"
    )
    rsub = sp.add_subparsers(dest="action", required=True, metavar="ACTION")
    r = rsub.add_parser("add", help="register a checkpoint or fingerprint file")
    r.add_argument("source", help="checkpoint or fingerprint file")
    r.add_argument("--name", default=None, help="name in the registry (default: the file or folder name)")
    r.add_argument("--replace", action="store_true", help="overwrite an entry of the same name")
    r = rsub.add_parser("list", help="list the registered fingerprints")
    r.add_argument("--json", action="store_true", help="print JSON")
    r = rsub.add_parser("remove", help="remove an entry")
    r.add_argument("name")
    r = rsub.add_parser("show", help="describe an entry")
    r.add_argument("name")
    r.add_argument("--json", action="store_true", help="print JSON")

    sp = sub.add_parser("identify", help="rank the registered models as ancestors of a suspect")
    sp.add_argument("suspect", help="checkpoint or fingerprint file")
    sp.add_argument(
        "--registry", default=None, help="registry file (default: MODELKIN_REGISTRY or the data dir)"
    )
    sp.add_argument("--top", type=int, default=10, help="entries shown (0 = all)")
    common(sp)

    add_behavior_parser(sub)

    sp = sub.add_parser("demo", help="write a small model and a Llama3-V-style noised copy, and compare them")
    sp.add_argument("--out", default=None, help="folder to keep the two models in (default: a temporary one)")
    common(sp)
    return p


def _no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


class _Console(Console):
    """A rich console that leaves a closed pipe to :func:`main`, so every format exits the same way."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


def _console(stream: Any) -> Console:
    # Off a terminal rich would wrap at 80 columns; tables piped to a file or a CI log read better wide.
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160
    # NO_COLOR: plain text, no styles at all (bold included), for screen readers and logs alike.
    return _Console(file=stream, width=width, highlight=False, color_system=None if _no_color() else "auto")


def _print_inspect(res: InspectResult, out: Console) -> None:
    ck = res.checkpoint
    out.print(
        f"[bold]{ck.path}[/]  {ck.format}, {len(ck.files)} file(s), {len(ck.tensors)} tensors, "
        f"{ck.n_params:,} parameters ({', '.join(f'{k} {v:,}' for k, v in ck.dtypes.items())})"
    )
    t = Table(show_edge=False, pad_edge=False)
    for col in ("tensor", "dtype", "shape", "mean", "std", "skew", "ex.kurt", "min", "max", "NaN/Inf"):
        t.add_column(col, justify="left" if col in ("tensor", "dtype", "shape") else "right")
    for r in res.tensors:
        s = r.stats
        t.add_row(
            r.name,
            r.dtype,
            _shape(r.shape),
            num(s.mean),
            num(s.std),
            num(s.skewness, ".2f"),
            num(s.kurtosis, ".2f"),
            num(s.min),
            num(s.max),
            f"{s.nan}/{s.inf}" if s.nan or s.inf else "",
        )
    out.print(t)
    out.print(f"{res.seconds:.2f} s on {res.threads} thread(s)")


def _print_diff(res: DiffResult, out: Console, top: int) -> None:
    tot = res.totals()
    out.print(f"[bold]A[/] {res.a.path}  ({res.a.n_params:,} parameters, {len(res.a.tensors)} tensors)")
    out.print(f"[bold]B[/] {res.b.path}  ({res.b.n_params:,} parameters, {len(res.b.tensors)} tensors)")
    rows = res.largest_first()
    shown = rows if top <= 0 else rows[:top]
    t = Table(show_edge=False, pad_edge=False, title=None)
    for col in ("tensor", "shape", "dtypes", "σ(d)", "mean(d)", "max|d|", "‖d‖/‖a‖", "1−cos", "equal"):
        t.add_column(col, justify="left" if col in ("tensor", "shape", "dtypes") else "right")
    for p in shown:
        s = p.stats
        dt = p.dtype_a if p.dtype_a == p.dtype_b else f"{p.dtype_a}→{p.dtype_b}"
        t.add_row(
            p.name,
            _shape(p.shape),
            dt,
            num(s.d.std),
            num(s.d.mean if s.n else math.nan),
            num(s.max_abs_d),
            num(s.rel_change),
            num(s.one_minus_cosine),
            f"{100 * s.equal_fraction:.1f}%" if math.isfinite(s.equal_fraction) else "–",
        )
    out.print(t)
    if len(shown) < len(rows):
        out.print(f"… {len(rows) - len(shown)} more pairs (use --top 0 for all)")
    for label, items in (("only in A", res.only_a), ("only in B", res.only_b)):
        if items:
            names = ", ".join(x.name for x in items[:8]) + (" …" if len(items) > 8 else "")
            out.print(f"[yellow]{len(items)} tensor(s) {label}:[/] {names}")
    for a, b in res.shape_mismatch:
        out.print(f"[yellow]shape differs:[/] {a.name}  {_shape(a.shape)} vs {_shape(b.shape)}")
    out.print(
        f"[bold]totals[/]: {tot['pairs']} pairs, {tot['elements']:,} elements, "
        f"{100 * tot['equal_fraction'] if tot['pairs'] else 0:.2f}% bit-equal; "
        f"σ(d) = {num(tot['d_std'])} over the model "
        f"(per tensor {num(tot['d_std_min'])} … {num(tot['d_std_max'])}), "
        f"mean(d) = {num(tot['d_mean'])}, skew {num(tot['d_skewness'], '.2f')}, "
        f"excess kurtosis {num(tot['d_kurtosis'], '.2f')}, 1−cos = {num(tot['one_minus_cosine'])}"
    )
    out.print(f"{res.seconds:.2f} s on {res.threads} thread(s)")


_COPIES = ("identical", "cast_copy", "quantized_copy", "noised_copy", "scaled_copy", "partial_copy")


def _print_compare(res: CompareResult, out: Console, top: int) -> None:
    v = res.verdict
    colour = "red" if v.related else "green"
    out.print(f"[bold {colour}]Verdict:[/] {v.sentence}")
    if v.related:
        out.print(
            f"confidence {v.confidence:.6f} (model-level log10 p = {v.log10_p:.1f}, Bonferroni over tensors)"
        )
    else:
        out.print(f"strongest kinship signal: adjusted log10 p = {v.log10_p:.2f} (kin needs < −6)")
    for note in v.notes:
        out.print(f"note: {note}")
    if res.metadata is not None:
        out.print(f"\n[bold]Config and tokenizer[/] ({res.metadata.strength}): {res.metadata.sentence}")
    if res.behavior is not None:
        out.print(f"[bold]Behaviour[/]: {res.behavior.sentence}")
    if res.profiles is not None:
        out.print(f"[bold]Per-layer profiles[/] (descriptive): {res.profiles.sentence}")
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
            e.pairing.a,
            "=" if e.pairing.b == e.pairing.a else e.pairing.b,
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


def _run_registry(args: argparse.Namespace, out: Console) -> int:
    reg = Registry(args.registry)
    if args.command == "identify":
        matches = reg.identify(args.suspect, top=args.top, threads=args.threads)
        if args.json:
            print(
                json.dumps(
                    json_safe({"registry": str(reg.path), "matches": [m.to_dict() for m in matches]}),
                    indent=1,
                )
            )
            return 0
        t = Table(show_edge=False, pad_edge=False)
        for col in ("rank", "model", "relation", "log10 p", "shared", "verdict"):
            t.add_column(col, justify="right" if col in ("rank", "log10 p", "shared") else "left")
        for i, m in enumerate(matches, 1):
            t.add_row(
                str(i), m.name, m.relation, num(m.log10_p, ".1f"), f"{m.shared_fraction:.0%}", m.sentence
            )
        out.print(t)
        return 0
    if args.action == "add":
        e = reg.add(args.source, args.name, replace=args.replace)
        out.print(
            f"registered '{e.name}' ({e.n_params:,} parameters, {e.n_tensors} tensors, "
            f"{e.size:,} bytes) in {reg.path}"
        )
    elif args.action == "list":
        entries = reg.list()
        if args.json:
            print(json.dumps([e.to_dict() for e in entries], indent=1))
            return 0
        t = Table(show_edge=False, pad_edge=False)
        for col in ("name", "parameters", "tensors", "bytes", "created", "source"):
            t.add_column(col, justify="right" if col in ("parameters", "tensors", "bytes") else "left")
        for e in entries:
            t.add_row(e.name, f"{e.n_params:,}", str(e.n_tensors), f"{e.size:,}", e.created, e.source)
        out.print(t)
    elif args.action == "remove":
        try:
            reg.remove(args.name)
        except KeyError as e:
            raise ValueError(e.args[0]) from None
        out.print(f"removed '{args.name}' from {reg.path}")
    else:  # show
        try:
            fp = reg.get(args.name)
        except KeyError as e:
            raise ValueError(e.args[0]) from None
        info = {
            "name": args.name,
            "source": fp.source,
            "created": fp.created,
            "format": f"modelkin.fingerprint/{fp.version}",
            "sample_size": fp.sample_size,
            "checkpoint": fp.checkpoint.to_dict(),
            "files": list(fp.files),
        }
        if args.json:
            print(json.dumps(json_safe(info), indent=1))
        else:
            for k, v in info.items():
                out.print(f"{k}: {v}")
    return 0


def _run(args: argparse.Namespace) -> int:
    out = _console(sys.stdout)
    if args.command in ("registry", "identify"):
        return _run_registry(args, out)
    if args.command == "behavior":
        return run_behavior(args)
    # The bar redraws with cursor codes: none under NO_COLOR, none with --quiet or --json.
    progress = not (args.quiet or args.json or _no_color())
    if args.command == "inspect":
        res_i = inspect(args.path, threads=args.threads, progress=progress)
        if args.json:
            print(json.dumps(res_i.to_dict(), indent=1))
        else:
            _print_inspect(res_i, out)
        return 0
    if args.command == "fingerprint":
        fp = fingerprint(args.path, threads=args.threads, progress=progress, sample_size=args.sample_size)
        path = fp.save(args.output)
        size = path.stat().st_size
        keyed = sum(t.token_values is not None for t in fp.tensors)
        if args.json:
            print(
                json.dumps(
                    {
                        "output": str(path),
                        "bytes": size,
                        "tensors": len(fp.tensors),
                        "format": FORMAT,
                        "token_keyed": keyed,
                    }
                )
            )
        else:
            tokens = (
                f"; {keyed} token-keyed matrices over {fp.tokens.ids.size:,} tokens"
                if fp.tokens is not None
                else "; no tokenizer found, no token-keyed rows"
            )
            out.print(
                f"wrote {path} ({size:,} bytes, {FORMAT}, {len(fp.tensors)} tensors, {fp.sample_size} values "
                f"each{tokens})"
            )
        return 0
    if args.command == "compare":
        res_c = compare(args.a, args.b, threads=args.threads, progress=progress)
        if args.predictions:
            res_c = replace(res_c, behavior=compare_behavior(args.predictions, args.gold))
        if args.report:
            from .report import write_report  # matplotlib is imported only when a report is asked for

            written = write_report(res_c, args.report, argv=["modelkin", *sys.argv[1:]])
            _console(sys.stderr).print(f"wrote report to {written}", markup=False, soft_wrap=True)
        if args.json:
            print(json.dumps(res_c.to_dict(), indent=1))
        else:
            _print_compare(res_c, out, args.top)
        relation = res_c.verdict.relation
        failed = (args.fail_on == "derived" and res_c.verdict.related) or (
            args.fail_on == "copy" and relation in _COPIES
        )
        return 1 if failed else 0
    if args.command == "diff":
        res = diff(args.a, args.b, threads=args.threads, progress=progress)
        if args.json:
            print(json.dumps(res.to_dict(), indent=1))
        else:
            _print_diff(res, out, args.top)
        return 0
    # demo
    from .demo import NOISE_SIGMA, write_demo_pair

    with tempfile.TemporaryDirectory(prefix="modelkin-demo-") as tmp:
        folder = args.out or tmp
        a, b = write_demo_pair(folder)
        res = diff(a, b, threads=args.threads, progress=progress)
        if args.json:
            print(json.dumps(res.to_dict(), indent=1))
            return 0
        out.print(
            f"Wrote a small Llama-shaped model and a copy with N(0, {NOISE_SIGMA:g}²) noise added to every "
            f"tensor (the Llama3-V recipe) to {folder}{' (deleted on exit)' if args.out is None else ''}.\n"
        )
        _print_diff(res, out, 12)
        tot = res.totals()
        out.print(
            "\n[bold]What to notice:[/] b − a has mean ≈ 0, no skew, no excess kurtosis, and the "
            f"[bold]same σ ≈ {num(tot['d_std'])}[/] in every tensor "
            f"(from {num(tot['d_std_min'])} to {num(tot['d_std_max'])}), "
            "in projections whose weights are ~0.02 and in norm gains that are ~1.0 alike. Training never "
            "changes weights like that; adding noise on purpose does."
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modelkin`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    err = _console(sys.stderr)
    try:
        return _run(args)
    except KeyboardInterrupt:
        err.print("modelkin: interrupted", markup=False)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): exit quietly, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (ModelkinError, OSError, ValueError, TypeError) as e:
        err.print(f"modelkin: error: {e}", markup=False, soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
