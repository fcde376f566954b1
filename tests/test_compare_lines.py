"""``compare`` reports configs/tokenizers and behaviour as their own lines, which never decide the
verdict on their own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import modelkin
import numpy as np
from modelkin.demo import DemoShape, llama_like
from safetensors.numpy import save_file

SHAPE = DemoShape(vocab=512, hidden=128, intermediate=344, layers=2, heads=4, kv_heads=2)
CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "vocab_size": 512,
}


def model_folder(path: Path, state: dict[str, np.ndarray]) -> Path:
    path.mkdir(parents=True)
    save_file(state, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(CONFIG))
    return path


def answers(path: Path, wrong: set[int], n: int = 1000) -> Path:
    path.write_text("".join(json.dumps({"id": i, "correct": i not in wrong}) + "\n" for i in range(n)))
    return path


def test_a_shared_config_alone_does_not_make_independent_models_kin(tmp_path: Path) -> None:
    a = model_folder(tmp_path / "a", llama_like(SHAPE, seed=1))
    b = model_folder(tmp_path / "b", llama_like(SHAPE, seed=2))
    res = modelkin.compare(a, b)
    assert not res.verdict.related
    assert res.metadata is not None and res.metadata.strength == "weak"
    assert res.to_dict()["metadata"]["strength"] == "weak"


def test_compare_carries_the_behavioural_line_in_json(tmp_path: Path) -> None:
    base = llama_like(SHAPE, seed=3)
    rng = np.random.default_rng(4)
    a = model_folder(tmp_path / "a", base)
    b = model_folder(
        tmp_path / "b", {k: (v + rng.normal(0, 1e-3, v.shape)).astype(np.float32) for k, v in base.items()}
    )
    pa = answers(tmp_path / "a.jsonl", set(range(236)))
    pb = answers(tmp_path / "b.jsonl", set(range(182)) | set(range(236, 248)))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelkin.cli",
            "compare",
            str(a),
            str(b),
            "--json",
            "--predictions",
            str(pa),
            str(pb),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["verdict"]["relation"] == "noised_copy"
    pair = doc["behavior"]["pairs"][0]
    assert (pair["errors_a"], pair["errors_b"], pair["shared_errors"]) == (236, 194, 182)
    assert doc["metadata"]["strength"] == "weak"


def test_compare_writes_the_report_it_is_asked_for(tmp_path: Path) -> None:
    base = llama_like(SHAPE, seed=6)
    a = model_folder(tmp_path / "a", base)
    b = model_folder(tmp_path / "b", llama_like(SHAPE, seed=7))
    report = tmp_path / "case.html"
    out = subprocess.run(
        [sys.executable, "-m", "modelkin.cli", "compare", str(a), str(b), "--report", str(report), "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    html = report.read_text()
    assert "independent" in html and "<svg" in html
    assert f"wrote report to {report}" in out.stderr
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelkin.cli",
            "compare",
            str(a),
            str(b),
            "--report",
            str(tmp_path / "x.pdf"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("modelkin: error:")
