"""GGUF files for the tests, written with llama.cpp's own writer (the ``gguf`` package) from the
Llama-shaped state dicts of ``models.py``, as llama.cpp's Hugging Face converter would write them:
GGUF tensor names, the rows of Q and K permuted for its rotary layout, 1-D tensors in F32, and the
llama hyper-parameters and a tokenizer in the metadata.

gguf-py quantises F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 but not the K-quants; for those this
module has small numpy encoders (a valid encoding each, round to nearest on the block's grid; the
decoder is what the tests test, against gguf-py's own dequantisation).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelkin.demo import DemoShape

gguf = pytest.importorskip("gguf")
Q = gguf.GGMLQuantizationType

#: A Llama shape whose matrices are whole K-quant super-blocks (rows of 256 or 768 elements).
KSHAPE = DemoShape(vocab=512, hidden=256, intermediate=768, layers=2, heads=4, kv_heads=2)

#: Hugging Face name → GGUF name, as llama.cpp's converter maps a Llama checkpoint.
_LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def gguf_name(hf: str) -> str:
    """The GGUF name llama.cpp gives a Hugging Face Llama tensor."""
    top = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    if hf in top:
        return top[hf]
    _, _, layer, rest = hf.split(".", 3)
    module, kind = rest.rsplit(".", 1)
    return f"blk.{layer}.{_LAYER_NAMES[module]}.{kind}"


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute``: each head's two halves of rows interleaved."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# -- K-quant encoders ---------------------------------------------------------------------------------


def _f16(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float16)


def _scale_min_bytes(sc: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Packs eight 6-bit scales and minima per block into ggml's 12 bytes (``get_scale_min_k4``)."""
    sc, m = sc.astype(np.uint8), m.astype(np.uint8)
    out = np.zeros((sc.shape[0], 12), dtype=np.uint8)
    out[:, 0:4] = (sc[:, 0:4] & 63) | ((sc[:, 4:8] >> 4) << 6)
    out[:, 4:8] = (m[:, 0:4] & 63) | ((m[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((m[:, 4:8] & 0x0F) << 4)
    return out


def _k_grid(x: np.ndarray, levels: int) -> tuple[np.ndarray, ...]:
    """Per 32-element sub-block: scale d·sc and minimum dmin·m on 6-bit grids, and the codes."""
    blocks = x.reshape(-1, 8, 32).astype(np.float32)
    lo = np.minimum(blocks.min(axis=-1), 0)
    hi = blocks.max(axis=-1)
    scale = (hi - lo) / levels
    d = _f16(scale.max(axis=-1) / 63)
    dmin = _f16((-lo).max(axis=-1) / 63)
    d32, dmin32 = d.astype(np.float32)[:, None], dmin.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.clip(np.rint(np.where(d32 > 0, scale / d32, 0)), 0, 63)
        m = np.clip(np.rint(np.where(dmin32 > 0, -lo / dmin32, 0)), 0, 63)
        step = (d32 * sc.astype(np.float32))[..., None]
        offset = (dmin32 * m.astype(np.float32))[..., None]
        q = np.clip(np.rint(np.where(step > 0, (blocks + offset) / step, 0)), 0, levels).astype(np.uint8)
    return d, dmin, sc, m, q


def quantize_q4_k(x: np.ndarray) -> np.ndarray:
    """Q4_K bytes of ``x`` (rows of a multiple of 256 elements), shaped (rows, bytes per row)."""
    rows = x.shape[0]
    d, dmin, sc, m, q = _k_grid(x, 15)
    q = q.reshape(-1, 4, 2, 32)
    qs = (q[:, :, 0, :] | (q[:, :, 1, :] << 4)).reshape(-1, 128)
    blocks = np.concatenate(
        [d.view(np.uint8).reshape(-1, 2), dmin.view(np.uint8).reshape(-1, 2), _scale_min_bytes(sc, m), qs],
        axis=1,
    )
    return blocks.reshape(rows, -1)


def quantize_q5_k(x: np.ndarray) -> np.ndarray:
    """Q5_K bytes of ``x`` (rows of a multiple of 256 elements), shaped (rows, bytes per row)."""
    rows = x.shape[0]
    d, dmin, sc, m, q = _k_grid(x, 31)
    q = q.reshape(-1, 4, 2, 32)
    low = q & 0x0F
    qs = (low[:, :, 0, :] | (low[:, :, 1, :] << 4)).reshape(-1, 128)
    high = (q >> 4).reshape(-1, 8, 32)  # sub-block j's fifth bits go to bit j of qh
    qh = np.zeros((q.shape[0], 32), dtype=np.uint8)
    for j in range(8):
        qh |= (high[:, j, :] << j).astype(np.uint8)
    blocks = np.concatenate(
        [
            d.view(np.uint8).reshape(-1, 2),
            dmin.view(np.uint8).reshape(-1, 2),
            _scale_min_bytes(sc, m),
            qh,
            qs,
        ],
        axis=1,
    )
    return blocks.reshape(rows, -1)


def random_blocks(qtype: Any, n_blocks: int, seed: int) -> np.ndarray:
    """Random bytes for ``n_blocks`` blocks of ``qtype`` whose f16/f32 scales are finite and moderate:
    every such byte string is a valid encoding, so it tests every code of the decoder."""
    rng = np.random.default_rng(seed)
    _, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    halves = {
        Q.Q4_0: [0],
        Q.Q4_1: [0, 2],
        Q.Q5_0: [0],
        Q.Q5_1: [0, 2],
        Q.Q8_0: [0],
        Q.Q2_K: [80, 82],
        Q.Q3_K: [108],
        Q.Q4_K: [0, 2],
        Q.Q5_K: [0, 2],
        Q.Q6_K: [208],
    }[qtype]
    for at in halves:
        raw[:, at : at + 2] = _f16(rng.uniform(-0.05, 0.05, n_blocks)).view(np.uint8).reshape(-1, 2)
    return raw


# -- writing ------------------------------------------------------------------------------------------


def tokens(n: int) -> list[str]:
    """A toy vocabulary: specials first, then distinct pieces."""
    return ["<s>", "</s>", "<unk>", *[f"tok{i}" for i in range(n - 3)]]


def _encode(w: np.ndarray, qtype: Any) -> tuple[np.ndarray, Any]:
    """The data to write for ``w`` stored as ``qtype`` (1-D tensors stay F32, as the converter does)."""
    if w.ndim == 1 or qtype == Q.F32:
        return w.astype(np.float32), None
    if qtype == Q.F16:
        return w.astype(np.float16), None
    if qtype == Q.Q4_K:
        return quantize_q4_k(w), qtype
    if qtype == Q.Q5_K:
        return quantize_q5_k(w), qtype
    return gguf.quants.quantize(w.astype(np.float32), qtype), qtype


def write_llama_gguf(
    path: Path,
    state: Mapping[str, np.ndarray],
    shape: DemoShape,
    qtype: Any = Q.F32,
    *,
    vocab: list[str] | None = None,
    merges: list[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    split_max_tensors: int = 0,
) -> Path:
    """Writes a Hugging Face Llama state dict as llama.cpp's converter would: GGUF names, Q and K rows
    permuted, matrices stored as ``qtype``, norm gains in F32, the llama hyper-parameters and a
    tokenizer in the metadata. Returns the path (with ``split_max_tensors``, gguf-py writes shards
    ``STEM-0000K-of-0000N.gguf`` beside it, as llama.cpp's ``gguf-split`` does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), "llama", split_max_tensors=split_max_tensors)
    w.add_name("modelkin test llama")
    w.add_context_length(2048)
    w.add_embedding_length(shape.hidden)
    w.add_block_count(shape.layers)
    w.add_feed_forward_length(shape.intermediate)
    w.add_head_count(shape.heads)
    w.add_head_count_kv(shape.kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(shape.vocab)
    w.add_file_type(int(qtype) if qtype in (Q.F32, Q.F16) else 7)
    w.add_tokenizer_model("gpt2")
    vocab = vocab if vocab is not None else tokens(shape.vocab)
    w.add_token_list(vocab)
    w.add_token_types([3 if t.startswith("<") else 1 for t in vocab])
    if merges:
        w.add_token_merges(merges)
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    for k, v in (extra or {}).items():
        if isinstance(v, str):
            w.add_string(k, v)
        else:
            w.add_uint32(k, v)
    for name, x in state.items():
        if name.endswith("q_proj.weight"):
            x = permute(x, shape.heads)
        elif name.endswith("k_proj.weight"):
            x = permute(x, shape.kv_heads)
        data, raw = _encode(np.asarray(x), qtype)
        w.add_tensor(gguf_name(name), data, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
