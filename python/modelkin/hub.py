"""Hugging Face cache ids: ``org/name`` (optionally ``@revision``) read from the local cache.

No network: the id is looked up in the hub cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``~/.cache/huggingface/hub``), where a downloaded model lives under
``models--org--name/snapshots/<commit>/``, with ``refs/<branch>`` naming the commit of each branch.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ModelkinError

__all__ = ["NotCachedError", "hub_cache", "resolve"]

_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")


class NotCachedError(ModelkinError, FileNotFoundError):
    """A hub id names a model (or revision) that is not in the local cache."""


def hub_cache() -> Path:
    """The hub cache folder, as ``huggingface_hub`` finds it."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def resolve(path: str | os.PathLike[str]) -> str:
    """``path`` itself when it exists or does not look like a hub id; else the cached snapshot folder.

    Raises :class:`NotCachedError`, saying how to fetch the model, when the id is not cached.
    """
    text = os.fspath(path)
    m = _ID.match(text)
    if Path(text).exists() or m is None or text.startswith(("./", "../")):
        return text
    repo, rev = m.group("repo"), m.group("rev") or "main"
    if ".." in rev.split("/"):
        raise NotCachedError(f"{text}: revision '{rev}' is not a plain name or commit")
    root = hub_cache() / ("models--" + repo.replace("/", "--"))
    fetch = f"fetch it first, e.g. `huggingface-cli download {repo}" + (
        f" --revision {rev}`" if rev != "main" else "`"
    )
    if not root.is_dir():
        raise NotCachedError(f"{text}: not in the Hugging Face cache at {hub_cache()}; {fetch}")
    ref = root / "refs" / rev
    commit = ref.read_text().strip() if ref.is_file() else rev
    snapshot = root / "snapshots" / commit
    if not re.fullmatch(r"[\w.-]+", commit) or not snapshot.is_dir():
        raise NotCachedError(f"{text}: revision '{rev}' is not in the cache at {root}; {fetch}")
    return str(snapshot)
