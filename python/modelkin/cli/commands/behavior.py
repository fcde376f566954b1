"""``modelkin behavior``: shared errors of models on the same benchmark items.

Exit status: 0 on success, 2 on bad input (``modelkin: error: …`` on stderr naming the file and the line,
no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from ..._util import num
from ...errors import ModelkinError
from ...evidence.behavior import PANEL_RULE, BehaviorResult, compare_behavior
from ..console import console, term

__all__ = ["add_parser", "print_behavior", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the ``behavior`` subcommand to an ``add_subparsers()`` object and returns its parser."""
    sp: argparse.ArgumentParser = subparsers.add_parser(
        "behavior",
        help="shared errors of models on the same items (error consistency κ, panel null)",
        description="Compare models by their per-item answers: shared errors against independence "
        "(hypergeometric), error consistency κ with a bootstrap 95% interval, and with three or more "
        "models a panel null (does a pair stand out from the others?).",
    )
    sp.add_argument(
        "predictions",
        nargs="+",
        metavar="PRED",
        help="per-model JSONL or CSV file: id and prediction (scored against --gold) or id and correct (0/1)",
    )
    sp.add_argument("--gold", default=None, help="JSONL or CSV file of id and answer (for predictions)")
    sp.add_argument("--json", action="store_true", help="print JSON (schema modelkin.behavior/1)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    sp.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples for the κ interval (0 = none)"
    )
    sp.set_defaults(command="behavior", run=run)
    return sp


def print_behavior(res: BehaviorResult, out: Console) -> None:
    """The behavioural comparison as a table with its sentence, notes and the panel rule."""
    out.print(f"[bold]{res.n_items} items[/] common to {len(res.models)} models")
    for m in res.models:
        out.print(f"  {term(m.name)}: accuracy {m.accuracy:.3f} ({m.items} items in {term(m.path)})")
    t = Table(show_edge=False, pad_edge=False)
    # Answer agreement and identical wrong answers need predictions; hide them when no pair has any.
    answers = any(p.agreement is not None for p in res.pairs)
    cols = ["A", "B", *(["agree"] if answers else []), "errors", "shared"]
    cols += [*(["same wrong"] if answers else []), "expected", "κ", "95% CI", "log10 p"]
    if res.panel:
        cols += ["panel z", "flag"]
    for col in cols:
        t.add_column(col, justify="left" if col in ("A", "B", "flag") else "right")
    for p in res.pairs:
        same = "–" if p.shared_identical_wrong is None else str(p.shared_identical_wrong)
        row = [
            term(p.a),
            term(p.b),
            *([num(p.agreement, ".3f")] if answers else []),
            f"{p.errors_a}/{p.errors_b}",
            str(p.shared_errors),
            *([same] if answers else []),
            num(p.expected_shared_errors, ".1f"),
            num(p.kappa, ".3f"),
            f"{num(p.kappa_ci[0], '.3f')}–{num(p.kappa_ci[1], '.3f')}",
            num(p.log10_p, ".1f"),
        ]
        if res.panel:
            row += [num(p.panel_z, ".1f"), "[bold red]stands out[/]" if p.flagged else ""]
        t.add_row(*row)
    out.print(t)
    colour = "red" if res.flagged or not res.panel else "green"
    out.print(f"[bold {colour}]Behaviour:[/] {term(res.sentence)}")
    if res.panel:
        out.print(f"rule: {PANEL_RULE}.", soft_wrap=False)
    else:
        out.print("Add reference models (three or more files) for a panel null that accounts for hard items.")
    for note in res.notes:
        out.print(f"note: {term(note)}")
    out.print(
        f"κ: error consistency (Geirhos et al. 2020); 95% CI from {res.bootstrap} bootstrap resamples "
        f"of the items (seed {res.seed}); log10 p: hypergeometric test of the shared errors."
    )


def run(args: argparse.Namespace) -> int:
    """Runs ``modelkin behavior`` for parsed arguments; returns the exit status (0, or 2 on bad input)."""
    try:
        if len(args.predictions) < 2:
            raise ValueError("behavior needs at least two prediction files")
        if args.bootstrap < 0:
            raise ValueError(f"--bootstrap must be ≥ 0, not {args.bootstrap}")
        res = compare_behavior(args.predictions, args.gold, n_boot=args.bootstrap, seed=args.seed)
    except (ModelkinError, OSError, ValueError) as e:
        console(sys.stderr).print(f"modelkin: error: {term(e)}", soft_wrap=True)
        return 2
    if args.json:
        # ASCII like every --json: a C1 control (U+009B is CSI) in a file name must not reach a terminal raw.
        print(json.dumps(res.to_dict(), indent=1))
    else:
        print_behavior(res, console(sys.stdout))
    return 0
