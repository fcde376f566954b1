"""Canonical tensor names, so that checkpoints saved under different naming schemes line up.

Names are first stripped of wrapper prefixes (``model.``, ``language_model.``, ``llm.``, …), then the
Meta (``layers.0.attention.wq``) and GGUF (``blk.0.attn_q``) Llama schemes are rewritten into the
Hugging Face one (``layers.0.self_attn.q_proj``). Names that match no scheme are kept as they are.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["canonical", "layer_index", "module_of"]

#: Wrapper prefixes that frameworks and multimodal models put in front of a language model's names.
PREFIXES = (
    "base_model.model.",
    "module.",
    "language_model.",
    "llm.",
    "model.",
    "transformer.",
    "decoder.",
)

# (pattern, replacement) pairs applied after the prefixes are stripped; first match wins.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        # Meta (llama reference code)
        (r"^tok_embeddings\.", "embed_tokens."),
        (r"^output\.weight$", "lm_head.weight"),
        (r"^layers\.(\d+)\.attention\.wq\.", r"layers.\1.self_attn.q_proj."),
        (r"^layers\.(\d+)\.attention\.wk\.", r"layers.\1.self_attn.k_proj."),
        (r"^layers\.(\d+)\.attention\.wv\.", r"layers.\1.self_attn.v_proj."),
        (r"^layers\.(\d+)\.attention\.wo\.", r"layers.\1.self_attn.o_proj."),
        (r"^layers\.(\d+)\.attention_norm\.", r"layers.\1.input_layernorm."),
        (r"^layers\.(\d+)\.ffn_norm\.", r"layers.\1.post_attention_layernorm."),
        (r"^layers\.(\d+)\.feed_forward\.w1\.", r"layers.\1.mlp.gate_proj."),
        (r"^layers\.(\d+)\.feed_forward\.w2\.", r"layers.\1.mlp.down_proj."),
        (r"^layers\.(\d+)\.feed_forward\.w3\.", r"layers.\1.mlp.up_proj."),
        # GGUF (llama.cpp)
        (r"^token_embd\.", "embed_tokens."),
        (r"^output_norm\.", "norm."),
        (r"^blk\.(\d+)\.attn_q\.", r"layers.\1.self_attn.q_proj."),
        (r"^blk\.(\d+)\.attn_k\.", r"layers.\1.self_attn.k_proj."),
        (r"^blk\.(\d+)\.attn_v\.", r"layers.\1.self_attn.v_proj."),
        (r"^blk\.(\d+)\.attn_qkv\.", r"layers.\1.self_attn.qkv_proj."),
        (r"^blk\.(\d+)\.attn_output\.", r"layers.\1.self_attn.o_proj."),
        (r"^blk\.(\d+)\.attn_norm\.", r"layers.\1.input_layernorm."),
        (r"^blk\.(\d+)\.ffn_norm\.", r"layers.\1.post_attention_layernorm."),
        (r"^blk\.(\d+)\.ffn_gate\.", r"layers.\1.mlp.gate_proj."),
        (r"^blk\.(\d+)\.ffn_up\.", r"layers.\1.mlp.up_proj."),
        (r"^blk\.(\d+)\.ffn_down\.", r"layers.\1.mlp.down_proj."),
        # Fused QKV under other names (Baichuan)
        (r"^layers\.(\d+)\.self_attn\.W_pack\.", r"layers.\1.self_attn.qkv_proj."),
        # GPT-2 style blocks
        (r"^h\.(\d+)\.", r"layers.\1."),
    )
)
# GGUF's bare "output.weight" is the LM head too; handled by the Meta rule above.

_LAYER = re.compile(r"(?:^|\.)(?:layers|blk|h|block|blocks)\.(\d+)\.")


@lru_cache(maxsize=65536)
def canonical(name: str) -> str:
    """The canonical (Hugging Face Llama style, prefix-free) form of a tensor name."""
    out = name
    stripped = True
    while stripped:
        stripped = False
        for p in PREFIXES:
            if out.startswith(p) and len(out) > len(p):
                out = out[len(p) :]
                stripped = True
    for pattern, repl in _RULES:
        new, n = pattern.subn(repl, out)
        if n:
            return new
    return out


def layer_index(name: str) -> int | None:
    """The block (layer) number in a tensor name, or None for tensors outside the blocks."""
    m = _LAYER.search(name)
    return int(m.group(1)) if m else None


def module_of(name: str) -> str:
    """The name with its layer number replaced by ``*``: the module a tensor belongs to."""
    return _LAYER.sub(lambda m: m.group(0).replace(m.group(1), "*"), canonical(name), count=1)
