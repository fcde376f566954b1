"""The ``modelkin`` command line, run as a user runs it: in a subprocess, through ``python -m`` and
through the installed console script."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import modelkin
import numpy as np
import pytest
from modelkin.demo import NOISE_SIGMA
from models import raw_file, write_single

# -- running the command --------------------------------------------------------------------------------


def console_script() -> str | None:
    """The installed ``modelkin`` script of this interpreter (not some other one on PATH)."""
    exe = "modelkin.exe" if os.name == "nt" else "modelkin"
    candidate = Path(sysconfig.get_path("scripts")) / exe
    return str(candidate) if candidate.exists() else shutil.which("modelkin")


LAUNCHERS = {"module": [sys.executable, "-m", "modelkin.cli"], "script": [console_script()]}


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that changes modelkin's output, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"NO_COLOR", "FORCE_COLOR", "CLICOLOR_FORCE", "COLUMNS", "TERM", "MODELKIN_NUM_THREADS"}
    }
    env.update(extra)
    return env


def run(
    *args: str, launcher: str = "module", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    cmd = LAUNCHERS[launcher]
    if cmd[0] is None:
        pytest.skip("the modelkin console script is not installed")
    return subprocess.run(
        [*cmd, *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env if env is not None else clean_env(),
        timeout=120,
    )


def strict_json(text: str):
    """Parses JSON, refusing the NaN/Infinity tokens that strict JSON does not have."""

    def refuse(token: str):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def assert_clean_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.startswith("modelkin: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in proc.stderr, (f, proc.stderr)
    assert proc.stdout == ""


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# -- models ---------------------------------------------------------------------------------------------

#: Relative change ‖d‖/‖a‖ given to each tensor of the ordering pair.
REL_CHANGES = {
    "charlie.weight": 0.5,
    "alpha.weight": 0.2,
    "echo.weight": 0.05,
    "bravo.weight": 0.01,
    "delta.weight": 0.0,
}


@pytest.fixture(scope="module")
def ordered_pair(tmp_path_factory):
    """Two checkpoints whose tensors changed by known relative amounts (see REL_CHANGES)."""
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    a, b = {}, {}
    for name, rel in REL_CHANGES.items():
        x = rng.standard_normal(500)
        d = rng.standard_normal(500)
        d *= rel * np.linalg.norm(x) / np.linalg.norm(d)
        a[name], b[name] = x.astype(np.float32), (x + d).astype(np.float32)
    a["only_in_a"] = np.ones(3, np.float32)
    b["only_in_b"] = np.ones(3, np.float32)
    a["reshaped"], b["reshaped"] = np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)
    return (
        write_single(folder / "a.safetensors", a, {"format": "pt"}),
        write_single(folder / "b.safetensors", b, {"format": "pt"}),
    )


@pytest.fixture(scope="module")
def many_tensors(tmp_path_factory):
    """A checkpoint with enough tensors that its table and JSON overflow a pipe buffer (64 kB)."""
    path = tmp_path_factory.mktemp("many") / "many.safetensors"
    names = [f"model.layers.{i:04d}.{'block.' * 12}weight" for i in range(700)]
    return write_single(path, {name: np.full(4, i, np.float32) for i, name in enumerate(names)})


# -- demo -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("launcher", ["module", "script"])
def test_demo_runs_and_mentions_the_noise_sigma(launcher):
    proc = run("demo", launcher=launcher)
    assert proc.returncode == 0, proc.stderr
    assert f"{NOISE_SIGMA:g}" in proc.stdout
    assert "σ(d)" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_demo_json_measures_the_noise_sigma():
    proc = run("demo", "--json")
    assert proc.returncode == 0, proc.stderr
    data = strict_json(proc.stdout)
    assert data["schema"] == "modelkin.diff/1"
    assert data["totals"]["d_std"] == pytest.approx(1.4e-3, rel=0.05)
    assert data["totals"]["only_a"] == data["totals"]["only_b"] == 0
    # The tell-tale sign: every tensor shows the same sigma.
    sigmas = np.array([p["d_std"] for p in data["pairs"]])
    assert np.all(np.abs(sigmas / 1.4e-3 - 1) < 0.15)


def test_demo_keeps_its_models_with_out(tmp_path):
    out = tmp_path / "demo"
    proc = run("demo", "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["base.safetensors", "noised.safetensors"]
    assert modelkin.open(out / "base.safetensors").n_params == strict_json(proc.stdout)["totals"]["elements"]


# -- diff -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("launcher", ["module", "script"])
def test_diff_json_schema(ordered_pair, launcher):
    a, b = ordered_pair
    proc = run("diff", a, b, "--json", launcher=launcher)
    assert proc.returncode == 0, proc.stderr
    data = strict_json(proc.stdout)
    assert {"schema", "a", "b", "totals", "pairs", "only_a", "only_b", "shape_mismatch"} <= data.keys()
    assert data["schema"] == "modelkin.diff/1"
    assert data["a"]["path"] == str(a) and data["b"]["path"] == str(b)
    assert [p["name"] for p in data["pairs"]] == sorted(REL_CHANGES)
    for p in data["pairs"]:
        assert {
            "name",
            "shape",
            "d_std",
            "cosine",
            "one_minus_cosine",
            "histogram",
            "rel_change",
            "a",
            "b",
        } <= p.keys()
        assert p["shape"] == [500]
        assert p["rel_change"] == pytest.approx(REL_CHANGES[p["name"]], rel=1e-5, abs=1e-12)
    assert [t["name"] for t in data["only_a"]] == ["only_in_a"]
    assert [t["name"] for t in data["only_b"]] == ["only_in_b"]
    (m,) = data["shape_mismatch"]
    assert (m["name"], m["shape_a"], m["shape_b"]) == ("reshaped", [2, 3], [3, 2])
    assert data["totals"]["pairs"] == len(REL_CHANGES)


def test_diff_json_agrees_with_the_python_api(ordered_pair):
    a, b = ordered_pair
    data = strict_json(run("diff", a, b, "--json").stdout)
    api = modelkin.diff(a, b).to_dict()
    assert data["totals"] == api["totals"]
    assert data["pairs"] == json.loads(json.dumps(api["pairs"]))


def test_diff_table_lists_largest_relative_change_first(ordered_pair):
    a, b = ordered_pair
    proc = run("diff", a, b)
    assert proc.returncode == 0, proc.stderr
    positions = {name: proc.stdout.find(name) for name in REL_CHANGES}
    assert all(p >= 0 for p in positions.values()), proc.stdout
    expected = sorted(REL_CHANGES, key=lambda n: -REL_CHANGES[n])
    assert sorted(positions, key=positions.get) == expected
    assert "only_in_a" in proc.stdout and "only_in_b" in proc.stdout
    assert "shape differs" in proc.stdout and "reshaped" in proc.stdout
    assert not ANSI.search(proc.stdout), "colour codes off a terminal"


def test_diff_table_top_limits_rows(ordered_pair):
    a, b = ordered_pair
    proc = run("diff", a, b, "--top", "2")
    assert proc.returncode == 0, proc.stderr
    assert "charlie.weight" in proc.stdout and "alpha.weight" in proc.stdout
    assert "bravo.weight" not in proc.stdout
    assert "3 more pairs" in proc.stdout


# -- inspect --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("launcher", ["module", "script"])
def test_inspect_json(ordered_pair, launcher):
    a, _ = ordered_pair
    proc = run("inspect", a, "--json", launcher=launcher)
    assert proc.returncode == 0, proc.stderr
    data = strict_json(proc.stdout)
    assert data["schema"] == "modelkin.inspect/1"
    assert data["checkpoint"]["path"] == str(a)
    assert data["checkpoint"]["files"][0]["metadata"] == {"format": "pt"}
    tensors = {t["name"]: t for t in data["tensors"]}
    ck = modelkin.open(a)
    assert sorted(tensors) == [t.name for t in ck.tensors]
    assert data["checkpoint"]["n_params"] == ck.n_params
    assert tensors["reshaped"]["shape"] == [2, 3]
    assert tensors["only_in_a"]["mean"] == 1.0 and tensors["only_in_a"]["count"] == 3
    assert tensors["only_in_a"]["skewness"] is None  # constant tensor: NaN written as null


def test_inspect_table(ordered_pair):
    a, _ = ordered_pair
    proc = run("inspect", a)
    assert proc.returncode == 0, proc.stderr
    for name in REL_CHANGES:
        assert name in proc.stdout
    assert "7 tensors" in proc.stdout


# -- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("launcher", ["module", "script"])
def test_missing_file_is_a_clean_error(tmp_path, launcher):
    missing = tmp_path / "nope.safetensors"
    assert_clean_error(run("inspect", missing, launcher=launcher), str(missing))


def test_missing_b_side_of_diff_is_a_clean_error(ordered_pair, tmp_path):
    a, _ = ordered_pair
    assert_clean_error(run("diff", a, tmp_path / "nope.safetensors"), "nope.safetensors")


def test_malformed_file_is_a_clean_error(tmp_path):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(raw_file({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8))
    for cmd in (["inspect", path], ["diff", path, path], ["diff", path, path, "--json"]):
        assert_clean_error(run(*cmd), str(path), "'w'")


def test_unknown_dtype_is_a_clean_error(tmp_path):
    path = tmp_path / "q.safetensors"
    path.write_bytes(raw_file({"w": {"dtype": "Q4_K", "shape": [2], "data_offsets": [0, 2]}}, b"\0\0"))
    assert_clean_error(run("inspect", path), str(path), "unknown dtype 'Q4_K'")


def test_pickle_is_a_clean_error_and_is_not_loaded(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01w\x94K\x01s.")
    assert_clean_error(run("inspect", path), str(path), "never unpickles")


def test_empty_folder_is_a_clean_error(tmp_path):
    assert_clean_error(run("inspect", tmp_path), str(tmp_path))


@pytest.mark.parametrize("threads", ["0", "-3"])
def test_non_positive_threads_option_is_a_clean_error(ordered_pair, threads):
    a, b = ordered_pair
    assert_clean_error(run("diff", a, b, "--threads", threads), "threads")


def test_invalid_thread_environment_variable_is_a_clean_error(ordered_pair):
    a, b = ordered_pair
    proc = run("diff", a, b, env=clean_env(MODELKIN_NUM_THREADS="abc"))
    assert_clean_error(proc, "MODELKIN_NUM_THREADS")


def test_thread_option_sets_the_thread_count(ordered_pair):
    a, b = ordered_pair
    data = strict_json(run("diff", a, b, "--json", "--threads", "1").stdout)
    assert data["threads"] == 1
    data = strict_json(run("diff", a, b, "--json", env=clean_env(MODELKIN_NUM_THREADS="2")).stdout)
    assert data["threads"] == 2


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["diff", "only-one-path"],
        ["inspect"],
        ["diff", "a", "b", "--threads", "many"],
        ["inspect", "x", "--no-such-option"],
    ],
    ids=["no-command", "unknown-command", "missing-arg", "missing-path", "threads-not-int", "unknown-option"],
)
def test_argument_misuse_exits_2_with_usage(args):
    proc = run(*args)
    assert proc.returncode == 2
    assert "usage: modelkin" in proc.stderr
    assert "error:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_version():
    proc = run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"modelkin {modelkin.__version__}"


# -- terminals, colour and pipes ------------------------------------------------------------------------

# SGR parameters that set a colour (foreground, background, bright, 256/true colour).
COLOUR_PARAM = re.compile(r"^(3[0-9]|4[0-9]|9[0-7]|10[0-7])$")


def colour_codes(text: str) -> list[str]:
    out = []
    for m in re.finditer(r"\x1b\[([0-9;]*)m", text):
        if any(COLOUR_PARAM.match(p) for p in m.group(1).split(";")):
            out.append(m.group(0))
    return out


def run_in_terminal(args: list[str], env: dict[str, str]) -> str:
    """Runs the CLI with stdin/stdout/stderr on a pseudo-terminal and returns everything it printed."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelkin.cli", *map(str, args)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=120)
    os.close(master)
    assert proc.returncode == 0
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_terminal_output_is_coloured_without_no_color(ordered_pair):
    # The control for the NO_COLOR tests below: on a terminal, there is colour to turn off.
    a, b = ordered_pair
    out = run_in_terminal(["diff", a, b], clean_env(TERM="xterm-256color", COLUMNS="200"))
    assert "charlie.weight" in out
    assert colour_codes(out)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_no_color_removes_colour_on_a_terminal(ordered_pair):
    a, b = ordered_pair
    out = run_in_terminal(["diff", a, b], clean_env(TERM="xterm-256color", COLUMNS="200", NO_COLOR="1"))
    assert "charlie.weight" in out
    assert colour_codes(out) == []


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_no_color_gives_no_escape_codes_at_all_on_a_terminal(ordered_pair):
    a, b = ordered_pair
    out = run_in_terminal(["diff", a, b], clean_env(TERM="xterm-256color", COLUMNS="200", NO_COLOR="1"))
    assert ANSI.findall(out) == []


def test_no_color_with_forced_colour_gives_no_colour(ordered_pair):
    a, b = ordered_pair
    forced = run("diff", a, b, env=clean_env(FORCE_COLOR="1"))
    assert colour_codes(forced.stdout)  # the control: FORCE_COLOR alone colours the "only in" lines
    proc = run("diff", a, b, env=clean_env(FORCE_COLOR="1", NO_COLOR="1"))
    assert proc.returncode == 0
    assert colour_codes(proc.stdout) == []


@pytest.mark.parametrize("command", ["inspect", "diff"])
def test_no_color_piped_output_has_no_escape_codes(ordered_pair, command):
    a, b = ordered_pair
    args = [command, a] if command == "inspect" else [command, a, b]
    proc = run(*args, env=clean_env(NO_COLOR="1"))
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x1b" not in proc.stderr


def pipe_to_head(args: list[str]) -> tuple[str, str, int]:
    """Runs ``modelkin ARGS | head -1``; returns head's output, modelkin's stderr and exit status."""
    head = shutil.which("head")
    if head is None:
        pytest.skip("no head(1)")
    producer = subprocess.Popen(
        [sys.executable, "-m", "modelkin.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
    )
    consumer = subprocess.Popen([head, "-1"], stdin=producer.stdout, stdout=subprocess.PIPE)
    producer.stdout.close()  # head alone holds the read end now
    first, _ = consumer.communicate(timeout=120)
    err = producer.stderr.read()
    producer.stderr.close()
    status = producer.wait(timeout=120)
    return first.decode(), err.decode(), status


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_output_piped_to_head_stops_quietly(many_tensors, fmt):
    args = ["inspect", many_tensors] + (["--json"] if fmt == "json" else [])
    first, err, status = pipe_to_head(args)
    assert first.strip() == "{" if fmt == "json" else "many.safetensors" in first
    assert "Traceback" not in err
    assert "BrokenPipe" not in err and "Exception ignored" not in err
    assert status in (0, 1), err


def test_many_tensors_output_exceeds_a_pipe_buffer(many_tensors):
    # Otherwise the pipe tests would pass without the reader ever going away mid-write.
    assert len(run("inspect", many_tensors).stdout.encode()) > 100_000
    assert len(run("inspect", many_tensors, "--json").stdout.encode()) > 100_000


def test_json_output_piped_to_head_exits_0(many_tensors):
    _, err, status = pipe_to_head(["inspect", many_tensors, "--json"])
    assert status == 0, err


def test_table_output_piped_to_head_exits_0(many_tensors):
    _, err, status = pipe_to_head(["inspect", many_tensors])
    assert status == 0, err


def test_diff_and_inspect_start_without_the_statistics_stack(ordered_pair):
    # scipy (for compare, fingerprint and the registry) takes longer to import than a small diff runs.
    a, b = ordered_pair
    code = (
        "import sys, contextlib, io, modelkin.cli as c\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert c.main(['diff', {str(a)!r}, {str(b)!r}, '--json']) == 0\n"
        f"    assert c.main(['inspect', {str(a)!r}]) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
