"""A matrix stored transposed in one checkpoint (GPT-2's Conv1D against a Linear layout) is compared
element by element with its counterpart."""

from __future__ import annotations

from pathlib import Path

import modelkin
import numpy as np
from safetensors.numpy import save_file


def gpt2_like(seed: int, layers: int = 2, hidden: int = 64) -> dict[str, np.ndarray]:
    """GPT-2-style weights in Conv1D layout ([in, out])."""
    rng = np.random.default_rng(seed)
    w = lambda *s: rng.normal(0, 0.02, s).astype(np.float32)  # noqa: E731
    out = {"wte.weight": w(256, hidden), "wpe.weight": w(128, hidden)}
    for i in range(layers):
        out |= {
            f"h.{i}.attn.c_attn.weight": w(hidden, 3 * hidden),
            f"h.{i}.attn.c_proj.weight": w(hidden, hidden + 0),
            f"h.{i}.mlp.c_fc.weight": w(hidden, 4 * hidden),
            f"h.{i}.mlp.c_proj.weight": w(4 * hidden, hidden),
        }
    return out


def test_transposed_storage_is_aligned_and_compared_element_by_element(tmp_path: Path) -> None:
    a = gpt2_like(0)
    rng = np.random.default_rng(1)
    # B: the same model with every non-square matrix stored transposed, plus noise.
    b = {
        k: np.ascontiguousarray((v + rng.normal(0, 1e-3, v.shape)).astype(np.float32).T)
        if k.startswith("h.") and v.shape[0] != v.shape[1]
        else (v + rng.normal(0, 1e-3, v.shape)).astype(np.float32)
        for k, v in a.items()
    }
    save_file(a, str(tmp_path / "a.safetensors"))
    save_file(b, str(tmp_path / "b.safetensors"))
    res = modelkin.compare(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    transposed = {p.a for p in res.alignment.pairs if p.transposed}
    assert transposed == {k for k, v in a.items() if k.startswith("h.") and v.shape[0] != v.shape[1]}
    assert res.alignment.only_a == () and res.alignment.only_b == ()
    assert res.verdict.relation == "noised_copy", res.verdict.sentence
    assert abs(res.verdict.sigma - 1e-3) < 0.05e-3
    for e in res.evidence:
        if e.pairing.transposed:
            assert e.kind == "gaussian" and abs(e.stats.d.std - 1e-3) < 0.1e-3, e.to_dict()


def test_an_independent_transposed_model_stays_independent(tmp_path: Path) -> None:
    a, other = gpt2_like(0), gpt2_like(7)
    b = {k: np.ascontiguousarray(v.T) if v.shape[0] != v.shape[1] else v for k, v in other.items()}
    save_file(a, str(tmp_path / "a.safetensors"))
    save_file(b, str(tmp_path / "b.safetensors"))
    res = modelkin.compare(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    assert not res.verdict.related, res.verdict.sentence
