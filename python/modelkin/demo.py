"""The built-in example: a small Llama-shaped model and a "Llama3-V-style" copy of it.

The copy is the base with Gaussian noise of σ = 1.4e-3 added to every tensor, the recipe found in
the 2024 Llama3-V case. Comparing the two shows the tell-tale sign: the same σ of b − a in every
tensor, whether its weights have a scale of 0.02 (projections) or 1.0 (norm gains).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import save

from ._output import write_bytes

__all__ = ["NOISE_SIGMA", "DemoShape", "llama_like", "write_demo_pair"]

#: The noise level measured in the Llama3-V case.
NOISE_SIGMA = 1.4e-3


@dataclass(frozen=True)
class DemoShape:
    """Dimensions of a small Llama-style decoder."""

    vocab: int = 2048
    hidden: int = 256
    intermediate: int = 688
    layers: int = 4
    heads: int = 8
    kv_heads: int = 2


def llama_like(shape: DemoShape, seed: int) -> dict[str, np.ndarray]:
    """A randomly initialised Llama-shaped state dict (Hugging Face names), float32."""
    rng = np.random.default_rng(seed)
    h, i = shape.hidden, shape.intermediate
    kv = h // shape.heads * shape.kv_heads

    def w(*dims: int, std: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(dims) * std).astype(np.float32)

    def norm() -> np.ndarray:
        return (1.0 + rng.standard_normal(h) * 0.05).astype(np.float32)

    out = {
        "model.embed_tokens.weight": w(shape.vocab, h),
        "model.norm.weight": norm(),
        "lm_head.weight": w(shape.vocab, h),
    }
    for layer in range(shape.layers):
        p = f"model.layers.{layer}."
        out |= {
            p + "input_layernorm.weight": norm(),
            p + "post_attention_layernorm.weight": norm(),
            p + "self_attn.q_proj.weight": w(h, h),
            p + "self_attn.k_proj.weight": w(kv, h),
            p + "self_attn.v_proj.weight": w(kv, h),
            p + "self_attn.o_proj.weight": w(h, h),
            p + "mlp.gate_proj.weight": w(i, h),
            p + "mlp.up_proj.weight": w(i, h),
            p + "mlp.down_proj.weight": w(h, i),
        }
    return out


def write_demo_pair(
    folder: str | os.PathLike[str], *, seed: int = 0, sigma: float = NOISE_SIGMA
) -> tuple[Path, Path]:
    """Writes ``base.safetensors`` and ``noised.safetensors`` (base + N(0, σ²)) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = llama_like(DemoShape(), seed)
    rng = np.random.default_rng(seed + 1)
    noised = {k: (v + rng.standard_normal(v.shape) * sigma).astype(v.dtype) for k, v in base.items()}
    a, b = folder / "base.safetensors", folder / "noised.safetensors"
    write_bytes(a, save(base, metadata={"format": "pt", "modelkin_demo": "base"}), "demo model")
    noted = {"format": "pt", "modelkin_demo": f"base + N(0, {sigma:g}^2)"}
    write_bytes(b, save(noised, metadata=noted), "demo model")
    return a, b
