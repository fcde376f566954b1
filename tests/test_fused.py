"""Separate Q, K, V projections against one fused QKV matrix: each is compared with its block of rows."""

from __future__ import annotations

from pathlib import Path

import modelkin
import numpy as np
from modelkin.demo import DemoShape, llama_like
from safetensors.numpy import save_file

SHAPE = DemoShape(vocab=512, hidden=128, intermediate=344, layers=2, heads=4, kv_heads=2)


def fuse(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same weights with each layer's q, k, v stacked into one ``qkv_proj`` (Phi-3 layout)."""
    out = dict(state)
    for layer in range(SHAPE.layers):
        p = f"model.layers.{layer}.self_attn."
        out[p + "qkv_proj.weight"] = np.concatenate([out.pop(p + f"{x}_proj.weight") for x in "qkv"])
    return out


def test_a_fused_qkv_copy_is_aligned_block_by_block(tmp_path: Path) -> None:
    base = llama_like(SHAPE, seed=3)
    rng = np.random.default_rng(4)
    noised = {k: (v + rng.normal(0, 1e-3, v.shape)).astype(np.float32) for k, v in base.items()}
    save_file(base, str(tmp_path / "a.safetensors"))
    save_file(fuse(noised), str(tmp_path / "b.safetensors"))
    res = modelkin.compare(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    fused = [p for p in res.alignment.pairs if p.method == "fused"]
    assert len(fused) == 3 * SHAPE.layers
    q = next(p for p in fused if p.a == "model.layers.1.self_attn.v_proj.weight")
    kv = SHAPE.hidden // SHAPE.heads * SHAPE.kv_heads
    assert (q.first_b, q.rows) == (SHAPE.hidden + kv, kv)
    assert res.alignment.only_a == () and res.alignment.only_b == ()
    assert res.verdict.relation == "noised_copy", res.verdict.sentence
    assert abs(res.verdict.sigma - 1e-3) < 0.05e-3
    by_pair = {(e.pairing.a, e.pairing.first_b): e for e in res.evidence}
    assert all(by_pair[(p.a, p.first_b)].kind == "gaussian" for p in fused)


def test_split_projections_in_b_against_a_fused_a(tmp_path: Path) -> None:
    base = llama_like(SHAPE, seed=5)
    save_file(fuse(base), str(tmp_path / "a.safetensors"))
    save_file(base, str(tmp_path / "b.safetensors"))
    res = modelkin.compare(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    assert sum(p.method == "fused" for p in res.alignment.pairs) == 3 * SHAPE.layers
    assert res.verdict.relation == "identical", res.verdict.sentence
