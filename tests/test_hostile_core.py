"""Hostile inputs for the Rust core's readers, through the command line as a user meets them: FIFOs
where a checkpoint or a shard is expected, shards that are symbolic links out of their folder,
malformed headers that other readers would read differently, and out-of-range run options. Each is
refused with exit code 2 and one line ``modelkin: error: … <file> …`` on stderr — no traceback, no
hang (every run has a timeout), and no change to any input."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from models import write_single

TIMEOUT = 60

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
needs_symlink = pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MODELKIN_NUM_THREADS"}
    env["NO_COLOR"] = "1"
    return env


def _snapshot(root: Path) -> dict[str, str]:
    """What every regular file under ``root`` holds (FIFOs and links are named, never opened)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p)] = "-> " + os.readlink(p)
        elif p.is_fifo():
            out[str(p)] = "fifo"
        elif p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def refused(root: Path, *args: object, names: str | Path) -> str:
    """Runs ``modelkin ARGS`` (inputs under ``root``) and checks the refusal; returns the error line."""
    before = _snapshot(root)
    proc = subprocess.run(
        [sys.executable, "-m", "modelkin.cli", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=_env(),
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("modelkin: error: "), lines[0]
    assert str(names) in lines[0], lines[0]
    assert _snapshot(root) == before
    return lines[0]


@pytest.fixture
def model(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    return write_single(tmp_path / "good.safetensors", {"w": rng.standard_normal((8, 8)).astype(np.float32)})


# -- FIFOs and other files that are not regular files ---------------------------------------------------


@needs_fifo
@pytest.mark.parametrize("command", ["inspect", "diff", "compare", "fingerprint"])
def test_a_fifo_as_the_checkpoint_is_refused_without_blocking(
    tmp_path: Path, model: Path, command: str
) -> None:
    fifo = tmp_path / "m.safetensors"
    os.mkfifo(fifo)
    args: list[object] = {
        "inspect": [fifo],
        "diff": [fifo, model],
        "compare": [model, fifo],
        "fingerprint": [fifo, "-o", tmp_path / "out.mkfp"],
    }[command]
    line = refused(tmp_path, command, *args, names=fifo)
    assert "FIFO" in line and "not a regular file" in line
    assert not (tmp_path / "out.mkfp").exists()


@needs_fifo
def test_a_fifo_named_as_a_shard_or_as_the_index_is_refused(tmp_path: Path, model: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    os.mkfifo(folder / "s-1.safetensors")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "s-1.safetensors"}}))
    assert "FIFO" in refused(tmp_path, "inspect", folder, names=folder / "s-1.safetensors")
    index = tmp_path / "x.safetensors.index.json"
    os.mkfifo(index)
    assert "FIFO" in refused(tmp_path, "inspect", index, names=index)


# -- symbolic links out of the checkpoint folder --------------------------------------------------------


SECRET = b"TOPSECRET password=hunter2\n"


@needs_symlink
def test_a_shard_linking_out_of_its_folder_is_refused_and_nothing_of_it_is_shown(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.safetensors").symlink_to(secret)
    line = refused(tmp_path, "inspect", folder, names=folder / "model.safetensors")
    assert "outside the checkpoint folder" in line
    leaked = str(int.from_bytes(SECRET[:8], "little"))
    assert leaked not in line and "TOPSECRET" not in line and str(secret) not in line

    # The same through an index.
    indexed = tmp_path / "i"
    indexed.mkdir()
    (indexed / "s-1.safetensors").symlink_to(secret)
    index = {"weight_map": {"w": "s-1.safetensors"}}
    (indexed / "model.safetensors.index.json").write_text(json.dumps(index))
    line = refused(tmp_path, "inspect", indexed, names=indexed / "s-1.safetensors")
    assert "outside the checkpoint folder" in line


def test_a_text_file_read_as_safetensors_shows_none_of_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "notes.safetensors"
    path.write_bytes(SECRET)
    line = refused(tmp_path, "inspect", path, names=path)
    assert str(int.from_bytes(SECRET[:8], "little")) not in line and "TOPSECRET" not in line


@needs_symlink
def test_the_hub_cache_links_keep_working(tmp_path: Path, model: Path) -> None:
    repo = tmp_path / "hub" / "models--org--name"
    snap = repo / "snapshots" / "abc123"
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    (repo / "blobs" / "sha").write_bytes(model.read_bytes())
    (snap / "model.safetensors").symlink_to("../../blobs/sha")
    proc = subprocess.run(
        [sys.executable, "-m", "modelkin.cli", "inspect", str(snap)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=_env(),
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    # A link out of the repository folder is still refused.
    (snap / "model.safetensors").unlink()
    (snap / "model.safetensors").symlink_to(model)
    refused(tmp_path, "inspect", snap, names=snap / "model.safetensors")
