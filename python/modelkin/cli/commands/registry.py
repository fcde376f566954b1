"""``modelkin registry``: manage the local registry of fingerprints."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.table import Table

from ..._util import json_safe
from ...errors import InvalidFingerprintError
from ...registry import Registry
from ..console import console, term, warn

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``registry`` to the ``add_subparsers()`` object and returns its parser."""
    sp: argparse.ArgumentParser = subparsers.add_parser(
        "registry", help="manage the local registry of fingerprints"
    )
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
    sp.set_defaults(run=run)
    return sp


def run(args: argparse.Namespace) -> int:
    """Runs ``modelkin registry`` for parsed arguments; returns the exit status."""
    out = console(sys.stdout)
    reg = Registry(args.registry, on_skip=warn)
    if args.action == "add":
        e = reg.add(args.source, args.name, replace=args.replace)
        out.print(
            f"registered '{term(e.name)}' ({e.n_params:,} parameters, {e.n_tensors} tensors, "
            f"{e.size:,} bytes) in {term(reg.path)}"
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
            t.add_row(
                term(e.name),
                f"{e.n_params:,}",
                str(e.n_tensors),
                f"{e.size:,}",
                term(e.created),
                term(e.source),
            )
        out.print(t)
    elif args.action == "remove":
        try:
            reg.remove(args.name)
        except KeyError as e:
            raise ValueError(e.args[0]) from None
        out.print(f"removed '{term(args.name)}' from {term(reg.path)}")
    else:  # show
        try:
            fp = reg.get(args.name)
        except KeyError as e:
            raise ValueError(e.args[0]) from None
        except InvalidFingerprintError as e:
            raise InvalidFingerprintError(
                f"{e} (`modelkin registry remove {args.name}` removes the entry)"
            ) from None
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
                out.print(f"{k}: {term(v)}")
    return 0
