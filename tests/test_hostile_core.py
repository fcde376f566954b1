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

import modelkin
import numpy as np
import pytest
from models import entry, raw_file, write_single
from safetensors.numpy import save_file

TIMEOUT = 60

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
needs_symlink = pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MODELKIN_NUM_THREADS"}
    env["NO_COLOR"] = "1"
    return env


def _run(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelkin.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=_env(),
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


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
    proc = _run(*args)
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
    proc = _run("inspect", snap)
    assert proc.returncode == 0, proc.stderr
    # A link out of the repository folder is still refused.
    (snap / "model.safetensors").unlink()
    (snap / "model.safetensors").symlink_to(model)
    refused(tmp_path, "inspect", snap, names=snap / "model.safetensors")


# -- headers that another reader would read differently -----------------------------------------------


def _npy(header: str, data: bytes) -> bytes:
    h = header.encode()
    return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h + data


def test_a_npy_header_with_a_duplicate_key_is_refused(tmp_path: Path) -> None:
    # numpy keeps the last 'descr' (<i8); a reader taking the first would see other values.
    path = tmp_path / "w.npy"
    path.write_bytes(
        _npy("{'descr': '<f8', 'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", bytes(16))
    )
    line = refused(tmp_path, "inspect", path, names=path)
    assert "the key 'descr' twice" in line


@pytest.mark.parametrize(
    ("offsets", "data", "says"),
    [
        ([[0, 4], [8, 12]], 12, "4 bytes belong to no tensor"),  # a hole between tensors
        ([[0, 4], [4, 8]], 11, "3 trailing bytes belong to no tensor"),  # bytes after the last
        ([[2, 6], [6, 10]], 10, "data begin at byte 2"),  # bytes before the first
    ],
)
def test_safetensors_bytes_no_tensor_covers_are_refused(
    tmp_path: Path, offsets: list[list[int]], data: int, says: str
) -> None:
    header = {name: entry("F32", [1], *o) for name, o in zip(("a", "b"), offsets, strict=True)}
    path = tmp_path / "m.safetensors"
    path.write_bytes(raw_file(header, bytes(data)))
    assert says in refused(tmp_path, "inspect", path, names=path)


def test_more_than_64_dimensions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(raw_file({"t": entry("U8", [1] * 65, 0, 1)}, bytes(1)))
    assert "65 dimensions; at most 64" in refused(tmp_path, "inspect", path, names=path)
    path.write_bytes(raw_file({"t": entry("U8", [1] * 64, 0, 1)}, bytes(1)))
    assert _run("inspect", path).returncode == 0


# -- run options out of range ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("10000", "threads must be at most 1024, got 10000"),
        ("99999999999999999999", "threads must be at most 1024, got 18446744073709551615 or more"),
        ("0", "threads must be a positive integer, got 0"),
        ("-5", "threads must be a positive integer, got -5"),
    ],
)
def test_thread_counts_out_of_range_are_refused_at_once(model: Path, value: str, says: str) -> None:
    for command in (["inspect", model], ["diff", model, model]):
        proc = _run(*command, "--threads", value)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines() == [f"modelkin: error: {says}"], proc.stderr


@pytest.mark.parametrize("value", ["0", "-5", "99999999999999999999999"])
def test_fingerprint_sample_sizes_out_of_range_are_refused(tmp_path: Path, model: Path, value: str) -> None:
    out = tmp_path / "print.mkfp"
    proc = _run("fingerprint", model, "-o", out, "--sample-size", value)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert (
        proc.stderr.strip().splitlines()[-1].startswith("modelkin fingerprint: error: argument --sample-size")
    )
    assert not out.exists()


def test_a_sample_size_above_the_engines_cap_is_refused(tmp_path: Path, model: Path) -> None:
    out = tmp_path / "print.mkfp"
    proc = _run("fingerprint", model, "-o", out, "--sample-size", "99999999999")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "modelkin: error: sample size must be at most 1048576 values per tensor, got 99999999999"
    ]
    assert not out.exists()


def test_an_index_named_by_a_bare_file_name_still_reads_its_shards(tmp_path: Path, model: Path) -> None:
    # The index's folder is then "" (the current folder): its shards lie inside it.
    (tmp_path / "s-1.safetensors").write_bytes(model.read_bytes())
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"w": "s-1.safetensors"}})
    )
    proc = _run("inspect", "model.safetensors.index.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("size", [-5, 2**64, 2**70])
def test_out_of_range_sample_sizes_from_the_api_are_a_value_error_not_an_overflow(
    size: int, tmp_path: Path
) -> None:
    a = np.linspace(-1, 1, 64, dtype=np.float32)
    with pytest.raises(ValueError, match="sample_size must be a non-negative integer below 2\\*\\*64"):
        modelkin.pair_stats(a, a, sample_size=size)
    path = tmp_path / "m.safetensors"
    save_file({"w": a}, str(path))
    for call in (
        lambda: modelkin.diff(path, path, sample_size=size),
        lambda: modelkin.fingerprint(path, sample_size=size),
    ):
        with pytest.raises(ValueError, match="sample_size must be"):
            call()
