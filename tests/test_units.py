"""Matching permuted hidden units: recovers the permutation at Llama-3-8B width, and finds nothing in
unrelated blocks."""

from __future__ import annotations

import time

import numpy as np
from modelkin.evidence.units import HEAD, match_units, unit_groups

WIDTH, HIDDEN = 14336, 4096  # Llama-3-8B MLP


def heads_of(
    gate: np.ndarray, up: np.ndarray, down_cols: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """What the engine's ``heads`` returns for the three matrices (only the parts used here)."""
    empty = np.zeros((0, 0))
    return {"gate": (gate, empty), "up": (up, empty), "down": (empty, down_cols)}


TRIPLE = [("gate", "gate", "rows"), ("up", "up", "rows"), ("down", "down", "cols")]


def test_a_permuted_14336_wide_block_is_matched_back_in_seconds() -> None:
    rng = np.random.default_rng(0)
    gate, up = rng.normal(0, 0.02, (WIDTH, HEAD)), rng.normal(0, 0.02, (WIDTH, HEAD))
    down_cols = rng.normal(0, 0.02, (HEAD, WIDTH))  # the first HEAD rows of down_proj (HIDDEN × WIDTH)
    perm = rng.permutation(WIDTH)
    noise = lambda shape: rng.normal(0, 1e-3, shape)  # noqa: E731
    heads_a = heads_of(gate, up, down_cols)
    heads_b = heads_of(gate[perm] + noise(gate.shape), up[perm] + noise(up.shape), down_cols[:, perm])
    start = time.perf_counter()
    m = match_units(0, TRIPLE, heads_a, heads_b)
    elapsed = time.perf_counter() - start
    assert m is not None and m.permuted
    assert np.mean(m.permutation == perm) > 0.999
    assert m.z > 100
    assert elapsed < 60, elapsed


def test_unrelated_blocks_do_not_match() -> None:
    rng = np.random.default_rng(1)
    draw = lambda: heads_of(  # noqa: E731
        rng.normal(0, 0.02, (2048, HEAD)),
        rng.normal(0, 0.02, (2048, HEAD)),
        rng.normal(0, 0.02, (HEAD, 2048)),
    )
    zs = [match_units(0, TRIPLE, draw(), draw()).z for _ in range(5)]  # type: ignore[union-attr]
    assert all(abs(z) < 5 for z in zs), zs  # held-out z ≈ N(0, 1) for unrelated units


def test_mlp_blocks_are_grouped_by_layer() -> None:
    pairs = [
        ("model.layers.3.mlp.gate_proj.weight", "x"),
        ("model.layers.3.mlp.down_proj.weight", "y"),
        ("model.layers.3.self_attn.q_proj.weight", "z"),
        ("model.layers.4.mlp.up_proj.weight", "w"),
    ]
    assert unit_groups(pairs) == {
        3: [
            ("model.layers.3.mlp.gate_proj.weight", "x", "rows"),
            ("model.layers.3.mlp.down_proj.weight", "y", "cols"),
        ]
    }


def test_permuted_attention_heads_are_found_in_a_noised_copy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import modelkin
    from modelkin.demo import DemoShape, llama_like
    from safetensors.numpy import save_file

    shape = DemoShape(vocab=512, hidden=256, intermediate=512, layers=2, heads=8, kv_heads=2)
    hd = shape.hidden // shape.heads
    base = llama_like(shape, seed=0)
    rng = np.random.default_rng(1)
    child = {k: (v + rng.normal(0, 1e-3, v.shape)).astype(np.float32) for k, v in base.items()}
    for layer in range(shape.layers):
        p = f"model.layers.{layer}.self_attn."
        q_perm = rng.permutation(shape.heads)  # some heads may keep their place
        rows = np.concatenate([np.arange(h * hd, (h + 1) * hd) for h in q_perm])
        child[p + "q_proj.weight"] = child[p + "q_proj.weight"][rows]
        child[p + "o_proj.weight"] = np.ascontiguousarray(child[p + "o_proj.weight"][:, rows])
        kv_perm = np.array([1, 0])  # the two key/value heads swapped
        kv_rows = np.concatenate([np.arange(h * hd, (h + 1) * hd) for h in kv_perm])
        for name in ("k_proj.weight", "v_proj.weight"):
            child[p + name] = child[p + name][kv_rows]
    save_file(base, str(tmp_path / "a.safetensors"))
    save_file(child, str(tmp_path / "b.safetensors"))
    res = modelkin.compare(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    attention = [e for e in res.evidence if ".self_attn." in e.pairing.a]
    kinds = [(e.pairing.a, e.kind) for e in attention]
    assert attention and all(k == "permuted" for _, k in kinds), kinds
    assert res.verdict.relation == "noised_copy", res.verdict.sentence
    assert res.verdict.shared_fraction == 1.0


def test_a_copy_with_only_its_mlp_units_permuted_is_identical_up_to_the_permutation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import modelkin
    from modelkin.demo import DemoShape, llama_like
    from safetensors.numpy import save_file

    shape = DemoShape(vocab=512, hidden=128, intermediate=344, layers=2, heads=4, kv_heads=2)
    base = llama_like(shape, seed=2)
    child = dict(base)
    rng = np.random.default_rng(3)
    for layer in range(shape.layers):
        p = f"model.layers.{layer}.mlp."
        perm = rng.permutation(shape.intermediate)
        child[p + "gate_proj.weight"] = base[p + "gate_proj.weight"][perm]
        child[p + "up_proj.weight"] = base[p + "up_proj.weight"][perm]
        child[p + "down_proj.weight"] = np.ascontiguousarray(base[p + "down_proj.weight"][:, perm])
    save_file(base, str(tmp_path / "a.safetensors"))
    save_file(child, str(tmp_path / "b.safetensors"))
    v = modelkin.compare(tmp_path / "a.safetensors", tmp_path / "b.safetensors").verdict
    assert v.relation == "identical", v.sentence
    assert v.permuted_layers == (0, 1)
