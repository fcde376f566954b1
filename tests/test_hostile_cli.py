"""The command line against hostile files and unlucky users (issue 14): outputs that would replace an
input, names that carry terminal escapes or markup, sidecar JSON built to raise. Each error is one line
``modelkin: error: … <file> …`` with exit 2 and no traceback; no input ever changes."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modelkin import _output
from modelkin._util import parse_json, visible
from modelkin.cli import main
from modelkin.cli.console import term
from modelkin.errors import OutputError
from modelkin.fingerprint import is_fingerprint
from modelkin.report.markdown import md_text
from models import llama_state, noised, write_single
from rich.console import Console

TIMEOUT = 120


def run(*args: object, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[bytes]:
    """``python -m modelkin.cli …`` in a subprocess, bytes out (so escape bytes are seen as they are)."""
    env = {**os.environ, "NO_COLOR": "", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "modelkin.cli", *map(str, args)],
        capture_output=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def hashes(*paths: Path) -> dict[str, str]:
    """The SHA-256 of every file under ``paths`` (folders walked), by path."""
    out: dict[str, str] = {}
    for p in paths:
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def one_error_line(proc: subprocess.CompletedProcess[bytes], *needles: str) -> str:
    """Asserts exit 2 and a single ``modelkin: error:`` line naming ``needles``; returns the line."""
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelkin: error: "), err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    """A folder holding one small model (``model.safetensors``) and a config."""
    folder = tmp_path / "m"
    write_single(folder / "model.safetensors", llama_state(0))
    (folder / "config.json").write_text('{"hidden_size": 64}')
    return folder


# -- 1. one output-path guard ----------------------------------------------------------------------------


def test_fingerprint_over_its_own_model_is_refused_and_the_model_kept(model: Path) -> None:
    before = hashes(model)
    target = model / "model.safetensors"
    for extra in ((), ("--force",)):
        proc = run("fingerprint", target, "-o", target, "-q", *extra)
        one_error_line(proc, str(target), "input")
    proc = run("fingerprint", model, "-o", target, "-q", "--force")
    one_error_line(proc, str(target), "input")
    config = model / "config.json"  # read beside the weights: an input too
    for source, extra in ((target, ()), (model, ("--force",))):
        one_error_line(run("fingerprint", source, "-o", config, "-q", *extra), str(config), "input")
    assert hashes(model) == before
    assert sorted(p.name for p in model.iterdir()) == ["config.json", "model.safetensors"]


def test_an_output_inside_an_input_folder_needs_force(model: Path) -> None:
    before = hashes(model)
    out = model / "m.mkfp"
    one_error_line(run("fingerprint", model, "-o", out, "-q"), str(out), "--force")
    assert hashes(model) == before
    proc = run("fingerprint", model, "-o", out, "-q", "--force")
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and hashes(model / "model.safetensors") == {
        k: v for k, v in before.items() if k.endswith("model.safetensors")
    }


def test_a_link_to_an_input_or_a_special_file_is_refused(model: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.mkfp"
    link.symlink_to(model / "model.safetensors")
    hard = tmp_path / "hard.mkfp"
    os.link(model / "model.safetensors", hard)
    before = hashes(model)
    for out in (link, hard):
        one_error_line(run("fingerprint", model / "model.safetensors", "-o", out, "-q"), str(out), "input")
    one_error_line(run("fingerprint", model, "-o", os.devnull, "-q"), os.devnull, "not a regular file")
    one_error_line(run("fingerprint", model, "-o", tmp_path, "-q"), str(tmp_path), "folder")
    assert hashes(model) == before


def test_a_missing_or_read_only_folder_is_refused_before_reading(model: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "m.mkfp"
    one_error_line(run("fingerprint", model, "-o", missing, "-q"), str(missing), "does not exist")
    assert not missing.parent.exists()
    # Refused before the weights are read: a checkpoint that cannot be read is never reached.
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 16)
    one_error_line(run("fingerprint", bad, "-o", missing, "-q"), str(missing))
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        one_error_line(run("fingerprint", model, "-o", ro / "m.mkfp", "-q"), str(ro / "m.mkfp"))


def test_compare_report_follows_the_same_rule(model: Path, tmp_path: Path) -> None:
    other = tmp_path / "b.safetensors"
    write_single(other, noised(llama_state(0), 1e-3))
    before = hashes(model, other)
    inside = model / "r.md"
    one_error_line(run("compare", model, other, "--report", inside, "-q"), str(inside), "--force")
    bad_suffix = tmp_path / "r.pdf"
    one_error_line(run("compare", model, other, "--report", bad_suffix, "-q"), str(bad_suffix))
    renamed = tmp_path / "b.html"
    renamed.symlink_to(other)
    one_error_line(run("compare", model, other, "--report", renamed, "-q"), str(renamed), "input")
    proc = run("compare", model, other, "--report", inside, "-q", "--force")
    assert proc.returncode == 0, proc.stderr
    assert inside.read_text(encoding="utf-8").startswith("# How B relates to A")
    now = hashes(model, other)
    now.pop(str(inside))
    assert now == before


def test_a_full_disk_is_one_line_naming_the_file(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def full(fd: int, data: memoryview) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_output, "_write", full)
    out = tmp_path / "m.mkfp"
    assert main(["fingerprint", str(model / "model.safetensors"), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("modelkin: error: ") and str(out) in err[0], err
    assert "no space left" in err[0]
    assert list(tmp_path.iterdir()) == [model]  # no fingerprint, no temporary file


def test_any_exception_while_writing_removes_the_temporary_file(tmp_path: Path) -> None:
    out = tmp_path / "x.bin"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError), _output.atomic_output(out) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["x.bin"]
    with pytest.raises(OutputError, match=r"x\.bin"):
        _output.check_output(out, [tmp_path])


class _Stop(Exception):
    pass


def test_sigterm_while_writing_removes_the_temporary_file_and_reaches_the_old_handler(
    tmp_path: Path,
) -> None:
    def stop(signum: int, frame: object) -> None:
        raise _Stop

    old = signal.signal(signal.SIGTERM, stop)
    try:
        out = tmp_path / "x.bin"
        with pytest.raises(_Stop), _output.atomic_output(out) as tmp:
            tmp.write_bytes(b"half")
            assert signal.getsignal(signal.SIGTERM) is not stop  # ours, while writing
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
        assert signal.getsignal(signal.SIGTERM) is stop
        assert list(tmp_path.iterdir()) == []
    finally:
        signal.signal(signal.SIGTERM, old)


def test_sigterm_while_writing_leaves_no_temporary_file_in_a_process(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from modelkin import _output
        with _output.atomic_output({str(tmp_path / "x.bin")!r}) as tmp:
            tmp.write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
        print("not reached")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert b"not reached" not in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_demo_writes_its_models_through_the_guard(tmp_path: Path) -> None:
    proc = run("demo", "--out", tmp_path / "d", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["base.safetensors", "noised.safetensors"]


# -- 2. one escape for the terminal, one for Markdown ------------------------------------------------------

#: Names built to act on a terminal or a renderer: OSC title, clear screen, OSC 52 clipboard, a one-byte
#: C1 CSI, bidi override, rich markup that is valid, invalid and a link, and HTML.
HOSTILE = (
    "\x1b]0;pwned\x07title.weight",
    "\x1b[2J\x1b[H.weight",
    "\x1b]52;c;aGVsbG8=\x07clip.weight",
    "\x9b31mred.weight",
    "rev\u202eesrever.weight",
    "[bold]bold[/].weight",
    "[/]",
    "[link=https://example.com]x[/link].weight",
    "<script>alert(1)</script>.weight",
    '<img src=x onerror="alert(1)">|`*_.weight',
    "back\\[bold]slash\\",
    "emoji:smile:.weight",
)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two related models whose every tensor name is hostile, A in a folder whose name is markup."""
    root = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    a = {name: rng.standard_normal((48, 48)).astype(np.float32) for name in HOSTILE}
    b = {k: (v + rng.standard_normal(v.shape) * 1e-3).astype(np.float32) for k, v in a.items()}
    folder = root / "[bold]A[/] \x1b[31m"
    write_single(folder / "model.safetensors", a)
    (folder / "config.json").write_text(
        json.dumps({"hidden_size": 48, "<script>alert(2)</script>": "<img src=x onerror=alert(3)>\x1b[2J"})
    )
    other = root / "b" / "model.safetensors"
    write_single(other, b)
    (other.parent / "config.json").write_text(json.dumps({"hidden_size": 64, "[bold]": "[/]"}))
    return folder, other.parent


def no_escape_bytes(proc: subprocess.CompletedProcess[bytes]) -> None:
    """Asserts exit 0, no traceback, and no ESC or C1 control on stdout or stderr."""
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    for stream in (proc.stdout, proc.stderr):
        text = stream.decode("utf-8")
        assert "\x1b" not in text and "\x9b" not in text and "\u202e" not in text
        assert "Traceback" not in text and "MarkupError" not in text


@pytest.mark.parametrize("command", ["inspect", "diff", "compare"])
def test_hostile_names_reach_the_terminal_escaped(hostile: tuple[Path, Path], command: str) -> None:
    a, b = hostile
    before = hashes(a, b)
    args = (a,) if command == "inspect" else (a, b)
    proc = run(command, *args, "-q", "--top", "0") if command != "inspect" else run(command, *args, "-q")
    no_escape_bytes(proc)
    out = proc.stdout.decode("utf-8")
    assert "\\x1b]0;pwned\\x07title.weight" in out  # shown, visibly
    assert "[bold]bold[/].weight" in out and "[link=https://example.com]x[/link].weight" in out
    assert "emoji:smile:.weight" in out
    assert hashes(a, b) == before


def test_a_hostile_name_in_an_error_is_escaped(tmp_path: Path) -> None:
    bad = tmp_path / "[bold]\x1b[2Jbad.safetensors"
    bad.write_bytes(b'\x08\x00\x00\x00\x00\x00\x00\x00{"a":1}')
    proc = run("inspect", bad, "-q")
    line = one_error_line(proc)
    assert "\x1b" not in line and "[bold]" in line and "\\x1b[2J" in line


@pytest.mark.parametrize("suffix", ["md", "html"])
def test_reports_carry_no_raw_tags_from_names_or_configs(
    hostile: tuple[Path, Path], tmp_path: Path, suffix: str
) -> None:
    a, b = hostile
    report = tmp_path / f"r.{suffix}"
    proc = run("compare", a, b, "--report", report, "-q")
    no_escape_bytes(proc)
    text = report.read_text(encoding="utf-8")
    for raw in ("<script", "<img", "\x1b", "\x9b", "\x07"):
        assert raw not in text, raw
    assert "&lt;script&gt;" in text


def test_a_hostile_registry_entry_lists_and_shows(hostile: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = hostile
    reg = tmp_path / "reg.sqlite"
    name = "[bold]evil[/] \x1b]0;t\x07"
    add = run("registry", "--registry", reg, "add", a, "--name", name)
    no_escape_bytes(add)
    for action in (("list",), ("show", name)):
        proc = run("registry", "--registry", reg, *action)
        no_escape_bytes(proc)
        assert "[bold]evil[/]" in proc.stdout.decode("utf-8")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_term_output_has_no_control_character_and_rich_prints_it_as_visible(text: str) -> None:
    safe = term(text)
    assert not any(unicodedata.category(c) == "Cc" for c in safe)
    buf = io.StringIO()
    # As the commands use it: inside markup (a trailing backslash must not escape the closing tag).
    Console(file=buf, width=10_000, color_system=None, highlight=False, emoji=False).print(
        f"[bold]{safe}[/]", soft_wrap=True, end=""
    )
    assert buf.getvalue() == visible(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60), st.booleans())
def test_md_text_has_no_tag_and_no_control_character(text: str, cell: bool) -> None:
    safe = md_text(text, cell=cell)
    assert "<" not in safe and ">" not in safe
    assert not any(unicodedata.category(c) == "Cc" for c in safe)
    if cell:
        assert re.search(r"(?<!\\)(\\\\)*\|", safe) is None  # every pipe escaped: the table holds


# -- 3. sidecar JSON never stops a verdict -------------------------------------------------------------

SIDECARS = {
    "deep config": ("config.json", '{"a": ' + "[" * 5000 + "]" * 5000 + "}", "nested deeper"),
    "deep but parsable config": ("config.json", '{"a": ' + "[" * 500 + "]" * 500 + "}", "nested deeper"),
    "long integer": ("config.json", '{"hidden_size": ' + "9" * 5000 + "}", "4300 digits"),
    "deep tokenizer": ("tokenizer.json", "[" * 100_000, "nested deeper"),
    "tokenizer of the wrong shape": ("tokenizer.json", '{"model": {"vocab": 5, "merges": {"a": 1}}}', None),
}


@pytest.mark.parametrize("case", sorted(SIDECARS))
def test_a_hostile_sidecar_is_reported_and_the_verdict_still_given(
    model: Path, tmp_path: Path, case: str
) -> None:
    name, text, why = SIDECARS[case]
    (model / name).write_text(text)
    other = tmp_path / "b"
    write_single(other / "model.safetensors", noised(llama_state(0), 1e-3))
    (other / "config.json").write_text('{"hidden_size": 64}')
    before = hashes(model, other)
    proc = run("compare", model, other, "-q", timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == 0 and "Traceback" not in err, err
    out = proc.stdout.decode()
    assert out.startswith("Verdict: B is a copy of A with Gaussian noise added"), out
    if why is not None:
        line = " ".join(out.split("Config and tokenizer", 1)[1].split("\n\n", 1)[0].split())
        assert "Unreadable: " in line and str(model / name) in line and why in line, line
    js = run("compare", model, other, "-q", "--json")
    assert js.returncode == 0, js.stderr.decode()
    assert json.loads(js.stdout)["verdict"]["relation"] == "noised_copy"
    assert hashes(model, other) == before


def test_a_checkpoint_header_nested_deep_is_one_error_line(model: Path, tmp_path: Path) -> None:
    header = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    deep = tmp_path / "deep.safetensors"
    deep.write_bytes(len(header).to_bytes(8, "little") + header)
    for args in (("inspect", deep), ("compare", model, deep), ("compare", deep, model)):
        one_error_line(run(*args, "-q"), str(deep))
    assert is_fingerprint(deep) is False


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
        max_leaves=20,
    ),
    st.integers(0, 300),
)
def test_parse_json_raises_only_value_error(value: object, depth: int) -> None:
    text = "[" * depth + json.dumps(value) + "]" * depth
    try:
        parse_json(text)
    except ValueError as e:
        assert "nested deeper" in str(e)
    assert parse_json(json.dumps(value)) == value or value != value
