"""Hugging Face ids (``org/name[@revision]``) are read from the local hub cache, never fetched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import modelkin
import numpy as np
import pytest
from modelkin.hub import NotCachedError, resolve
from safetensors.numpy import save_file

COMMIT_MAIN, COMMIT_OLD = "a" * 40, "b" * 40


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hub cache holding ``org/model`` at two commits, ``main`` pointing at the newer."""
    hub = tmp_path / "hub"
    root = hub / "models--org--model"
    for commit, scale in ((COMMIT_MAIN, 1.0), (COMMIT_OLD, 2.0)):
        snap = root / "snapshots" / commit
        snap.mkdir(parents=True)
        save_file({"w": np.full((4, 4), scale, dtype=np.float32)}, str(snap / "model.safetensors"))
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(COMMIT_MAIN)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.delenv("HF_HOME", raising=False)
    return hub


def test_an_id_resolves_to_its_cached_snapshot(cache: Path) -> None:
    assert resolve("org/model") == str(cache / "models--org--model" / "snapshots" / COMMIT_MAIN)
    assert resolve(f"org/model@{COMMIT_OLD}").endswith(COMMIT_OLD)
    info = modelkin.open("org/model")
    assert [t.name for t in info.tensors] == ["w"]
    res = modelkin.diff("org/model", f"org/model@{COMMIT_OLD}")
    assert res["w"].stats.d.mean == pytest.approx(1.0)


def test_hf_home_is_honoured(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(cache.parent))
    assert resolve("org/model").endswith(COMMIT_MAIN)


def test_existing_paths_are_left_alone(cache: Path, tmp_path: Path) -> None:
    local = tmp_path / "org" / "model"
    local.mkdir(parents=True)
    assert resolve("./x/y") == "./x/y"
    assert resolve(str(local)) == str(local)


@pytest.mark.parametrize("ident", ["org/missing", "org/model@v9", "org/model@../../etc"])
def test_an_uncached_id_says_how_to_fetch_it(cache: Path, ident: str) -> None:
    with pytest.raises(NotCachedError, match="org/"):
        resolve(ident)


def test_the_cli_reports_an_uncached_id_as_an_error(cache: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "modelkin.cli", "inspect", "org/missing"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("modelkin: error:") and "huggingface-cli download org/missing" in out.stderr
