"""A derived model that keeps only part of its parent: the verdict finds the shared part and names it."""

from __future__ import annotations

from pathlib import Path

import modelkin
import numpy as np
from modelkin.demo import DemoShape, llama_like
from modelkin.names import layer_index
from safetensors.numpy import save_file

SHAPE = DemoShape(vocab=1024, hidden=128, intermediate=344, layers=4, heads=4, kv_heads=2)


def write(tmp: Path, name: str, state: dict[str, np.ndarray]) -> Path:
    path = tmp / f"{name}.safetensors"
    save_file(state, str(path))
    return path


def test_a_model_that_keeps_only_the_embeddings_is_a_partial_copy(tmp_path: Path) -> None:
    parent, stranger = llama_like(SHAPE, seed=0), llama_like(SHAPE, seed=99)
    keep = ("model.embed_tokens.weight", "lm_head.weight")
    child = {k: (parent[k] if k in keep else stranger[k]) for k in parent}
    res = modelkin.compare(write(tmp_path, "a", parent), write(tmp_path, "b", child))
    v = res.verdict
    assert v.related and v.relation == "partial_copy", v.sentence
    assert set(v.shared) == set(keep)
    assert v.replaced == tuple(f"layer {i}" for i in range(SHAPE.layers))
    assert v.shared_fraction < 0.5
    assert "replaced: layer 0" in v.sentence


def test_replaced_layers_are_named_beside_a_noised_rest(tmp_path: Path) -> None:
    parent, stranger = llama_like(SHAPE, seed=1), llama_like(SHAPE, seed=98)
    rng = np.random.default_rng(2)
    child = {
        k: stranger[k] if layer_index(k) in (2, 3) else (v + rng.normal(0, 1e-3, v.shape)).astype(np.float32)
        for k, v in parent.items()
    }
    res = modelkin.compare(write(tmp_path, "a", parent), write(tmp_path, "b", child))
    v = res.verdict
    assert v.relation == "noised_copy", v.sentence
    assert v.replaced == ("layer 2", "layer 3")
    assert {"layer 0", "layer 1", "model.embed_tokens.weight", "lm_head.weight"} <= set(v.shared)


def test_an_unrelated_model_reports_nothing_shared(tmp_path: Path) -> None:
    res = modelkin.compare(
        write(tmp_path, "a", llama_like(SHAPE, seed=3)), write(tmp_path, "b", llama_like(SHAPE, seed=4))
    )
    assert not res.verdict.related
    assert res.verdict.shared == ()


def test_fail_on_copy_catches_a_partial_copy(tmp_path: Path) -> None:
    import subprocess
    import sys

    parent, stranger = llama_like(SHAPE, seed=5), llama_like(SHAPE, seed=97)
    child = {k: (v if layer_index(k) in (0, 1) else stranger[k]) for k, v in parent.items()}
    a, b = write(tmp_path, "a", parent), write(tmp_path, "b", child)
    run = subprocess.run(
        [sys.executable, "-m", "modelkin.cli", "compare", str(a), str(b), "--fail-on", "copy", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Verdict" in run.stdout
