"""Reports (``modelkin.report``) and the JSON schema of ``CompareResult.to_dict()``.

Small acceptance models from ``derive.py`` (a ~1M-parameter Llama shape) are written with the official
safetensors writer, each in its own folder, and compared against their base: a Llama3-V-style noised
and renamed copy, an independent initialisation, a fine-tune (with the same config and tokenizer beside
both, and behavioural answers attached), an exact copy, and a noised copy compared from fingerprints
(no metadata). Every report must say the verdict, hold every section and its plots, and load nothing
from the network; every result must validate against ``schemas/compare.schema.json``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import derive
import modelkin
import numpy as np
import pytest
from modelkin.answers import ModelAnswers
from modelkin.compare import CompareResult
from modelkin.evidence.behavior import compare_behavior
from modelkin.report import SECTIONS, confidence_sentence, write_report
from models import write_single

pytest.importorskip("matplotlib")

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "compare.schema.json"
#: Sections every report has; the last two only with their evidence.
ALWAYS = [sid for sid, _ in SECTIONS if sid not in ("metadata", "behavior")]
PLOTS = ("hist", "qq", "sigma", "similarity", "alignment", "localisation")
CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 128,
    "vocab_size": 1024,
}
TOKENIZER = {
    "version": "1.0",
    "added_tokens": [{"id": 0, "content": "<s>", "special": True}],
    "model": {
        "type": "BPE",
        "vocab": {"<s>": 0, **{f"t{i}": i + 1 for i in range(300)}},
        "merges": [f"t{i} t{i + 1}" for i in range(1, 200, 2)],
    },
}


def _folder(root: Path, name: str, state: dict[str, np.ndarray], meta: bool = False) -> Path:
    path = write_single(root / name / "model.safetensors", state)
    if meta:
        (path.parent / "config.json").write_text(json.dumps(CONFIG))
        (path.parent / "tokenizer.json").write_text(json.dumps(TOKENIZER))
    return path


def _answers(name: str, correct: np.ndarray) -> ModelAnswers:
    return ModelAnswers(name, f"{name}.jsonl", correct={f"q{i}": bool(c) for i, c in enumerate(correct)})


class Cases:
    """The comparisons of this module, each run once."""

    def __init__(self, root: Path) -> None:
        base = derive.base(0)
        self.base = _folder(root, "base", base, meta=True)
        llama3v, _ = derive.llama3v(base, seed=31)
        fine, _ = derive.fine_tuned(base, seed=5)
        self.paths = {
            "noised": _folder(root, "llama3v", llama3v),
            "independent": _folder(root, "init101", derive.independent_init(101)),
            "fine_tune": _folder(root, "fine_tune", fine, meta=True),
            "identical": _folder(root, "exact", derive.exact_copy(base)),
        }
        self.results: dict[str, CompareResult] = {
            name: modelkin.compare(self.base, path) for name, path in self.paths.items()
        }
        rng = np.random.default_rng(0)
        right_a = rng.random(400) < 0.7
        right_b = np.where(rng.random(400) < 0.9, right_a, ~right_a)  # B repeats A's mistakes
        behavior = compare_behavior([_answers("base", right_a), _answers("fine_tune", right_b)], n_boot=200)
        self.results["fine_tune"] = replace(self.results["fine_tune"], behavior=behavior)
        fp_a = modelkin.fingerprint(self.base)
        fp_b = modelkin.fingerprint(self.paths["noised"])
        self.results["fingerprints"] = modelkin.compare(fp_a, fp_b)


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Cases:
    return Cases(tmp_path_factory.mktemp("report"))


def _no_network(text: str) -> None:
    """Nothing in the report may point outside it."""
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text.lower() and "<link" not in text.lower()
    assert not re.search(r"""(src|href)=["'](?!#|data:)""", text)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- HTML and Markdown ---------------------------------------------------------------------------------


def test_html_report_of_a_noised_copy_says_the_verdict_and_holds_every_section(cases: Cases, tmp_path: Path):
    res = cases.results["noised"]
    assert res.verdict.relation == "noised_copy"
    argv = ["modelkin", "compare", str(cases.base), str(cases.paths["noised"]), "--report", "r.html"]
    out = write_report(res, tmp_path / "r.html", argv=argv)
    text = out.read_text(encoding="utf-8")

    assert html.escape(res.verdict.sentence) in text
    tested = sum(e.informative for e in res.evidence)
    assert html.escape(confidence_sentence(res.verdict, tested)) in text
    for sid in ALWAYS:
        assert f'<section id="{sid}">' in text, sid
    assert 'id="metadata"' in text  # compare() always looks for configs and tokenizers
    assert 'id="behavior"' not in text  # no answers were given
    for key in PLOTS:
        assert re.search(rf'<figure id="plot-{key}"><svg [^>]*role="img"', text), key
    _no_network(text)
    assert "Content-Security-Policy" in text and "@media print" in text
    # The inputs: every file's SHA-256, the version and the command line.
    assert _sha256(cases.base) in text and _sha256(cases.paths["noised"]) in text
    assert modelkin.__version__ in text and html.escape("--report r.html") in text
    # Every tensor pair has its evidence line (renamed tensors appear under both names).
    for e in res.evidence:
        assert f"<td>{html.escape(e.pairing.a)}</td>" in text and html.escape(e.pairing.b) in text
    # Written atomically and readable by all: no temporary file left behind.
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_svg_ids_are_unique_so_several_plots_share_one_page(cases: Cases, tmp_path: Path):
    text = write_report(cases.results["fine_tune"], tmp_path / "r.html").read_text(encoding="utf-8")
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids))
    refs = set(re.findall(r'href="#([^"]+)"', text)) | set(re.findall(r"url\(#([^)]+)\)", text))
    assert refs <= set(ids)


def test_markdown_report_embeds_png_plots(cases: Cases, tmp_path: Path):
    res = cases.results["noised"]
    text = write_report(res, tmp_path / "r.md").read_text(encoding="utf-8")
    plain = text.replace("\\", "")
    assert res.verdict.sentence in plain
    for _, title in SECTIONS[:9]:
        assert f"\n## {title}\n" in text, title
    images = re.findall(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", text)
    assert len(images) == len(PLOTS)
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    _no_network(text)


def test_independent_models_report_no_kinship(cases: Cases, tmp_path: Path):
    res = cases.results["independent"]
    assert res.verdict.relation == "independent"
    text = write_report(res, tmp_path / "r.html").read_text(encoding="utf-8")
    assert html.escape(res.verdict.sentence) in text
    assert "no tensor pair is more alike than chance allows" in text
    assert "No place of A is shared with B" in text
    assert 'class="verdict independent"' in text


def test_fine_tune_report_shows_configs_tokenizers_and_behaviour(cases: Cases, tmp_path: Path):
    res = cases.results["fine_tune"]
    assert res.verdict.relation == "fine_tune" and res.metadata is not None and res.behavior is not None
    for suffix in ("html", "md"):
        text = write_report(res, tmp_path / f"r.{suffix}").read_text(encoding="utf-8")
        plain = html.unescape(text).replace("\\", "")
        assert res.metadata.sentence in plain and res.behavior.sentence in plain
        assert "Configs and tokenizers" in text and "Behaviour" in text
        assert _sha256(cases.base.parent / "tokenizer.json") in text  # metadata files are hashed too
        assert "hidden_size" in text  # the config side by side


def test_fingerprint_comparison_has_no_metadata_section(cases: Cases, tmp_path: Path):
    res = cases.results["fingerprints"]
    assert res.metadata is None and res.behavior is None
    text = write_report(res, tmp_path / "r.html").read_text(encoding="utf-8")
    assert html.escape(res.verdict.sentence) in text
    assert 'id="metadata"' not in text and 'id="behavior"' not in text


def test_an_identical_copy_has_no_differences_to_draw(cases: Cases, tmp_path: Path):
    res = cases.results["identical"]
    assert res.verdict.relation == "identical"
    text = write_report(res, tmp_path / "r.html").read_text(encoding="utf-8")
    assert 'figure class="empty" id="plot-hist"' in text and "nothing to draw" in text
    assert '<figure id="plot-alignment"><svg' in text  # the rest still draws


def test_report_replaces_an_old_one_whole(cases: Cases, tmp_path: Path):
    out = tmp_path / "r.html"
    out.write_text("old")
    out.chmod(0o600)
    old = os.umask(0o077)
    try:
        write_report(cases.results["noised"], out)
    finally:
        os.umask(old)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_report_refuses_an_unknown_format_and_never_overwrites_an_input(cases: Cases, tmp_path: Path):
    res = cases.results["noised"]
    with pytest.raises(ValueError, match=r"\.html or \.md"):
        write_report(res, tmp_path / "r.pdf")
    assert not (tmp_path / "r.pdf").exists()
    # An input renamed to look like a report is still an input.
    target = tmp_path / "model.html"
    before = _sha256(cases.base)
    os.symlink(cases.base, target)
    with pytest.raises(ValueError, match="must not overwrite an input"):
        write_report(res, target)
    assert _sha256(cases.base) == before


# -- the JSON schema ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _undocumented(instance: Any, sch: dict[str, Any], root: dict[str, Any], where: str) -> Iterator[str]:
    """Keys of ``instance`` that the schema does not name (maps with ``additionalProperties`` aside)."""
    if "$ref" in sch:
        sch = root["$defs"][sch["$ref"].rsplit("/", 1)[-1]]
    for alt in sch.get("anyOf", []):
        if instance is not None and alt.get("type") != "null":
            yield from _undocumented(instance, alt, root, where)
    if isinstance(instance, dict) and "properties" in sch:
        for key, value in instance.items():
            if key not in sch["properties"]:
                yield f"{where}.{key}"
            else:
                yield from _undocumented(value, sch["properties"][key], root, f"{where}.{key}")
    elif isinstance(instance, list) and isinstance(sch.get("items"), dict):
        for i, value in enumerate(instance[:3]):
            yield from _undocumented(value, sch["items"], root, f"{where}[{i}]")


@pytest.mark.parametrize("case", ["noised", "independent", "fine_tune", "identical", "fingerprints"])
def test_compare_json_validates_against_the_schema(cases: Cases, schema: dict[str, Any], case: str):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)
    data = json.loads(json.dumps(cases.results[case].to_dict()))  # what `--json` prints
    jsonschema.Draft202012Validator(schema).validate(data)
    assert list(_undocumented(data, schema, schema, "$")) == []
    assert (data["metadata"] is None) == (case == "fingerprints")
    assert (data["behavior"] is not None) == (case == "fine_tune")


def test_the_schema_describes_every_field(schema: dict[str, Any]):
    def walk(node: Any, where: str) -> Iterator[str]:
        if isinstance(node, dict):
            for key, sub in node.get("properties", {}).items():
                if "description" not in sub:
                    yield f"{where}.{key}"
            for key, sub in node.items():
                yield from walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                yield from walk(sub, f"{where}[{i}]")

    assert list(walk(schema, "$")) == []
    assert schema["properties"]["schema"]["const"] == "modelkin.compare/1"


# -- in a browser ------------------------------------------------------------------------------------


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(
        "chromium is not installed: the report is not checked in a browser (apt-get install chromium)"
    )


def test_report_renders_in_a_headless_browser_without_console_errors(cases: Cases, tmp_path: Path):
    browser = _chromium()
    res = cases.results["noised"]
    page = write_report(res, tmp_path / "report.html")
    shot = tmp_path / "report.png"
    common = [
        browser,
        "--headless=new",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    )
    assert html.escape(res.verdict.sentence, quote=False) in dom.stdout
    assert dom.stdout.count("<svg") == len(PLOTS)
    # The page has no script: any console message is a problem (a blocked load, a parse error).
    assert [line for line in dom.stderr.splitlines() if ":CONSOLE" in line] == []
    subprocess.run(
        [*common, "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1200,3000", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
