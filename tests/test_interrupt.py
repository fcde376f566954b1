"""Ctrl-C and failing progress callbacks stop a long run, without a traceback from the CLI.

The checkpoints here are sparse files: gigabytes of BF16 zeros that take no disk space, so a run is
long enough to interrupt while the suite stays fast.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import modelkin
import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ROWS, COLS, TENSORS = 16384, 8192, 48  # 6 Gi elements of BF16 per model: seconds per pass


def sparse_checkpoint(path: Path) -> Path:
    """A valid BF16 safetensors file of TENSORS × ROWS × COLS zeros, written as a sparse file."""
    nbytes = ROWS * COLS * 2
    header = {
        f"layers.{i}.weight": {
            "dtype": "BF16",
            "shape": [ROWS, COLS],
            "data_offsets": [i * nbytes, (i + 1) * nbytes],
        }
        for i in range(TENSORS)
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        f.truncate(8 + len(raw) + TENSORS * nbytes)
    return path


@pytest.fixture(scope="module")
def big_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("sparse")
    return sparse_checkpoint(folder / "a.safetensors"), sparse_checkpoint(folder / "b.safetensors")


def test_an_exception_in_the_progress_callback_cancels_the_run(big_pair: tuple[Path, Path]) -> None:
    seen: list[tuple[int, int]] = []

    def stop(done: int, total: int) -> None:
        seen.append((done, total))
        if done > 0:  # once the pass is under way (early polls may come before it starts)
            raise RuntimeError("enough")

    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="enough"):
        modelkin.diff(*big_pair, threads=1, progress=stop)
    elapsed = time.perf_counter() - start
    done, total = seen[-1]
    assert total == 2 * TENSORS * ROWS * COLS * 2
    assert 0 < done < total, "the callback fired mid-run"
    assert all(d == 0 for d, _ in seen[:-1]), "no more progress calls once cancelled"
    # The whole pass takes several seconds on one thread; a cancelled one stops within a chunk.
    assert elapsed < 3.0


SCRIPT = textwrap.dedent(
    """
    import sys, modelkin
    def tick(done, total):
        print("tick", done, total, flush=True)
    try:
        modelkin.diff(sys.argv[1], sys.argv[2], threads=1, progress=tick)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(3)
    print("finished", flush=True)
    """
)


def test_ctrl_c_stops_a_long_diff(big_pair: tuple[Path, Path]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, *map(str, big_pair)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the run has started once progress ticks
    assert first.startswith("tick"), first
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    rest = proc.stdout.read()
    code = proc.wait(timeout=30)
    assert code == 3, rest
    assert "interrupted" in rest and "finished" not in rest
    assert time.perf_counter() - sent < 3.0


def _wait_for_workers(pid: int, timeout: float = 60.0) -> None:
    """Waits until process ``pid`` runs the engine's worker threads (named ``modelkin-N``): a fixed
    sleep fired the signal during imports when the machine was busy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for comm in Path(f"/proc/{pid}/task").glob("*/comm"):
            try:
                if comm.read_text().startswith("modelkin"):
                    return
            except OSError:
                continue
        time.sleep(0.01)
    raise AssertionError(f"no engine worker thread in process {pid} after {timeout} s")


def test_ctrl_c_in_the_cli_exits_130_without_a_traceback(big_pair: tuple[Path, Path]) -> None:
    env = dict(os.environ, NO_COLOR="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelkin.cli", "diff", *map(str, big_pair), "--threads", "1", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    _wait_for_workers(proc.pid)  # past start-up and imports, inside a pass of several seconds
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    assert "interrupted" in err


@pytest.mark.parametrize("change", ["truncate", "rewrite"])
def test_a_file_changed_while_it_is_read_stops_the_run_without_a_crash(tmp_path: Path, change: str) -> None:
    # Reading a mapping past a truncated end would kill the process with SIGBUS; a file rewritten in
    # place would give numbers that describe neither version. Both are reported instead.
    a, b = sparse_checkpoint(tmp_path / "a.safetensors"), sparse_checkpoint(tmp_path / "b.safetensors")
    size = b.stat().st_size

    def tamper(done: int, total: int) -> None:
        if done > 0 and b.stat().st_size == size and b.stat().st_mtime_ns > 0:
            with open(b, "r+b") as f:
                if change == "truncate":
                    f.truncate(size // 2)
                else:
                    f.seek(size - 1)
                    f.write(b"\x01")
            os.utime(b, ns=(0, 1))  # a distinct modification time even on coarse clocks

    with pytest.raises(modelkin.CheckpointChangedError, match=str(b)) as info:
        modelkin.diff(a, b, threads=1, progress=tamper)
    want = "shrank" if change == "truncate" else "modified"
    assert want in str(info.value)
