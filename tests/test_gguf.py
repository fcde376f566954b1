"""GGUF files (llama.cpp), written by llama.cpp's own writer (the ``gguf`` package): values decoded as
gguf-py decodes them, shapes in the Hugging Face order with the Q/K row permutation undone, metadata
exposed and used as config/tokenizer evidence, verdicts against the safetensors source, and
malformed files refused with a message naming the file."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import derive
import modelkin
import numpy as np
import pytest
from gguf_models import KSHAPE, Q, gguf, gguf_name, permute, random_blocks, tokens, write_llama_gguf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelkin import InvalidCheckpointError, ModelkinError, UnknownDtypeError, UnsupportedFormatError
from modelkin.names import canonical
from models import entry, llama_state, raw_file, write_single
from mutations import apply, edits
from test_malformed import FUZZ_EXAMPLES


def write_tensors(path: Path, tensors: dict[str, tuple[np.ndarray, Any]], arch: str = "test") -> Path:
    """A GGUF file of the given tensors: name → (data, raw ggml type or None for numpy's own)."""
    w = gguf.GGUFWriter(str(path), arch)
    for name, (data, raw) in tensors.items():
        w.add_tensor(name, data, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def values(path: Path, name: str) -> np.ndarray:
    """Every value of matrix ``name`` as modelkin decodes it (row-major), through its row reader."""
    info = modelkin.open(path)[name]
    rows, cols = info.shape[0], int(np.prod(info.shape[1:]))
    full, _ = modelkin._modelkin.heads(str(path), [name], cols)[name]
    assert full.shape == (rows, cols)
    return full


# -- decoding --------------------------------------------------------------------------------------------

QUANTISED_BY_GGUF_PY = [Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.BF16]
K_QUANTS = [Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K]


def _check_decoding(tmp_path: Path, stored: np.ndarray, qtype: Any, want: np.ndarray) -> None:
    """modelkin's values of a tensor stored as ``stored`` (``qtype``) are exactly ``want``: read whole
    by rows, at the sample positions, streamed (statistics) and streamed against an F32 copy."""
    path = write_tensors(tmp_path / "t.gguf", {"w": (stored, qtype)})
    ref = write_single(tmp_path / "ref.safetensors", {"w": want.astype(np.float64)})
    info = modelkin.open(path)["w"]
    assert info.shape == want.shape
    assert info.dtype == (qtype.name if qtype is not None else info.dtype)
    got = values(path, "w")
    np.testing.assert_array_equal(got, want.astype(np.float64))
    sample = modelkin._modelkin.sample_values(str(path), 1, 512)["tensors"][0]["sample"]
    np.testing.assert_array_equal(
        sample, modelkin._modelkin.sample_values(str(ref), 1, 512)["tensors"][0]["sample"]
    )
    stats = modelkin.inspect(path).tensors[0].stats
    w64 = want.astype(np.float64)
    # Element types exact in float32 (f16, i8, i16) are reduced in float32 lanes: stated at 2e-6
    # (tests/test_pair_stats.py); everything else, block formats included, in float64.
    rel = 2e-6 if qtype is None and stored.dtype.itemsize <= 2 else 1e-9
    assert stats.mean == pytest.approx(w64.mean(), rel=rel, abs=1e-15)
    assert stats.std == pytest.approx(w64.std(), rel=rel)
    res = modelkin._modelkin.diff_pairs(str(path), str(ref), [("w", "w", None, 0, 0, False)], threads=2)
    pair = res["pairs"][0]
    assert pair["equal"] == want.size and pair["max_abs_d"] == 0.0


@pytest.mark.parametrize("qtype", QUANTISED_BY_GGUF_PY, ids=lambda q: q.name)
def test_values_quantised_by_gguf_py_decode_exactly_as_gguf_py_decodes_them(tmp_path, qtype):
    x = np.random.default_rng(int(qtype)).normal(0, 0.02, (48, 320)).astype(np.float32)
    stored = gguf.quants.quantize(x, qtype)
    _check_decoding(tmp_path, stored, qtype, gguf.quants.dequantize(stored, qtype))


@pytest.mark.parametrize("qtype", [*K_QUANTS, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1], ids=lambda q: q.name)
def test_every_code_of_block_formats_decodes_exactly_as_gguf_py_decodes_it(tmp_path, qtype):
    """Random blocks (finite scales, every code and scale bit pattern) against gguf-py's dequantize."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    rows, per_row = 6, 512 // block
    raw = random_blocks(qtype, rows * per_row, seed=int(qtype)).reshape(rows, per_row * size)
    _check_decoding(tmp_path, raw, qtype, gguf.quants.dequantize(raw, qtype))


def test_q8_k_decodes_as_its_scale_times_its_codes(tmp_path):
    """gguf-py has no Q8_K decoder: the reference is ggml's ``dequantize_row_q8_K``, y = d · q."""
    rng = np.random.default_rng(8)
    d = rng.uniform(1e-4, 1e-3, 8).astype(np.float32)
    q = rng.integers(-128, 128, (8, 256)).astype(np.int8)
    bsums = rng.integers(-(2**15), 2**15, (8, 16)).astype(np.int16)  # not used by the decoder
    raw = np.concatenate([d.view(np.uint8).reshape(8, 4), q.view(np.uint8), bsums.view(np.uint8)], axis=1)
    _check_decoding(tmp_path, raw.reshape(2, -1), Q.Q8_K, (d[:, None] * q.astype(np.float32)).reshape(2, -1))


@pytest.mark.parametrize(
    "dtype", [np.float32, np.float16, np.float64, np.int8, np.int16, np.int32], ids=lambda d: np.dtype(d).name
)
def test_plain_types_decode_exactly(tmp_path, dtype):
    x = np.clip(np.random.default_rng(3).normal(0, 40, (7, 9)), -120, 120)
    stored = x.astype(dtype)
    _check_decoding(tmp_path, stored, None, stored.astype(np.float64))


def test_safetensors_headers_cannot_name_block_formats(tmp_path):
    path = tmp_path / "q.safetensors"
    path.write_bytes(raw_file({"w": entry("Q4_K", [256], 0, 144)}, bytes(144)))
    with pytest.raises(UnknownDtypeError, match="unknown dtype 'Q4_K'"):
        modelkin.open(path)
    assert "Q4_K" not in modelkin._modelkin.DTYPES


# -- shapes, names and the Q/K permutation ---------------------------------------------------------------


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """A Llama-shaped float32 model (rows of whole K-quant blocks) in a Hugging Face folder."""
    state = llama_state(0, KSHAPE)
    folder = tmp_path_factory.mktemp("gguf-src") / "hf"
    write_single(folder / "model.safetensors", state)
    return folder, state


def test_shapes_are_row_major_and_q_and_k_read_back_as_the_hugging_face_tensors(tmp_path, source):
    folder, state = source
    path = write_llama_gguf(tmp_path / "f32.gguf", state, KSHAPE)
    info = modelkin.open(path)
    assert info.format == "gguf"
    for hf, x in state.items():
        t = info[gguf_name(hf)]
        assert t.shape == x.shape, hf
        if x.ndim == 2:
            np.testing.assert_array_equal(values(path, t.name), x.astype(np.float64), err_msg=hf)
    # As stored, Q and K are permuted: reading them as stored would not give the source.
    q = state["model.layers.0.self_attn.q_proj.weight"]
    assert not np.array_equal(permute(q, KSHAPE.heads), q)
    res = modelkin.compare(folder, path)
    assert res.verdict.relation == "identical", res.verdict.sentence
    assert all(e.kind == "identical" for e in res.evidence)
    assert res.verdict.renamed == 0


def test_gguf_llama_names_map_to_hugging_face_names(source):
    _, state = source
    for hf in state:
        assert canonical(gguf_name(hf)) == canonical(hf), hf
    assert canonical("blk.3.attn_qkv.weight") == canonical("model.layers.3.self_attn.qkv_proj.weight")


def test_other_architectures_keep_q_and_k_rows_as_stored(tmp_path):
    x = np.arange(8 * 32, dtype=np.float32).reshape(8, 32)
    path = write_tensors(tmp_path / "g.gguf", {"blk.0.attn_q.weight": (x, None)}, arch="gpt2")
    np.testing.assert_array_equal(values(path, "blk.0.attn_q.weight"), x)


def test_llama_q_rows_are_unpermuted_in_block_formats_and_biases(tmp_path):
    rng = np.random.default_rng(5)
    q = rng.normal(0, 0.02, (16, 64)).astype(np.float32)
    bias = rng.normal(0, 0.02, 16).astype(np.float32)
    w = gguf.GGUFWriter(str(tmp_path / "q.gguf"), "llama")
    w.add_head_count(2)
    stored = gguf.quants.quantize(permute(q, 2), Q.Q8_0)
    w.add_tensor("blk.0.attn_q.weight", stored, raw_dtype=Q.Q8_0)
    w.add_tensor("blk.0.attn_q.bias", permute(bias, 2))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    path = tmp_path / "q.gguf"
    want = gguf.quants.dequantize(gguf.quants.quantize(q, Q.Q8_0), Q.Q8_0)
    np.testing.assert_array_equal(values(path, "blk.0.attn_q.weight"), want)
    ref = write_single(tmp_path / "b.safetensors", {"blk.0.attn_q.bias": bias})
    pair = modelkin.diff(path, ref)["blk.0.attn_q.bias"].stats
    assert pair.equal == 16


# -- files and folders -----------------------------------------------------------------------------------


def test_a_folder_holding_one_gguf_file_is_that_checkpoint(tmp_path, source):
    _, state = source
    path = write_llama_gguf(tmp_path / "m" / "model-q8.gguf", state, KSHAPE, Q.Q8_0)
    info = modelkin.open(tmp_path / "m")
    assert info.format == "gguf" and info.files[0].path == str(path)
    assert info.dtypes == {"Q8_0": sum(x.size for x in state.values() if x.ndim == 2), "F32": 1280}
    assert info.files[0].metadata["general.architecture"] == "llama"
    assert info.files[0].metadata["llama.block_count"] == "2"
    # A second one makes the folder ambiguous.
    write_llama_gguf(tmp_path / "m" / "model-f16.gguf", state, KSHAPE, Q.F16)
    with pytest.raises(
        UnsupportedFormatError, match=r"2 GGUF files \(model-f16\.gguf, model-q8\.gguf\).*name"
    ):
        modelkin.open(tmp_path / "m")
    # Safetensors beside them are what the folder holds.
    write_single(tmp_path / "m" / "model.safetensors", {"x": np.ones(3, np.float32)})
    assert modelkin.open(tmp_path / "m").format == "safetensors"


def test_a_gguf_file_is_recognised_by_its_content_not_its_name(tmp_path, source):
    _, state = source
    path = write_llama_gguf(tmp_path / "g.gguf", state, KSHAPE, Q.Q4_0)
    renamed = tmp_path / "model.safetensors"
    renamed.write_bytes(path.read_bytes())
    assert modelkin.open(renamed).format == "gguf"


def test_gguf_metadata_holds_every_key_with_its_type(tmp_path, source):
    _, state = source
    path = write_llama_gguf(
        tmp_path / "g.gguf",
        state,
        KSHAPE,
        Q.Q8_0,
        merges=["tok1 tok2", "tok3 tok4"],
        extra={"tokenizer.chat_template": "{{ messages }}"},
    )
    kv = modelkin.gguf_metadata(path)
    assert kv["general.architecture"] == "llama"
    assert kv["llama.block_count"] == 2 and kv["llama.attention.head_count_kv"] == 2
    assert kv["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-5, rel=1e-6)
    assert kv["tokenizer.ggml.tokens"] == tokens(KSHAPE.vocab)
    assert kv["tokenizer.ggml.merges"] == ["tok1 tok2", "tok3 tok4"]
    assert kv["tokenizer.ggml.token_type"][:4] == [3, 3, 3, 1]
    assert kv["tokenizer.chat_template"] == "{{ messages }}"
    assert modelkin.gguf_metadata(tmp_path) == kv  # the folder holding it
    with pytest.raises(ValueError, match="not a GGUF"):
        modelkin.gguf_metadata(write_single(tmp_path / "x" / "a.safetensors", {"x": np.ones(2, np.float32)}))


# -- verdicts against the safetensors source ---------------------------------------------------------------

#: (stored as, expected relation of the GGUF against its source, cast_to)
COPIES = {
    "F16": (Q.F16, "cast_copy", "F16"),
    "BF16": (Q.BF16, "cast_copy", "BF16"),
    "Q8_0": (Q.Q8_0, "quantized_copy", None),
    "Q4_K": (Q.Q4_K, "quantized_copy", None),
    "Q5_K": (Q.Q5_K, "quantized_copy", None),
    "Q4_0": (Q.Q4_0, "quantized_copy", None),
    "Q4_1": (Q.Q4_1, "quantized_copy", None),
    "Q5_0": (Q.Q5_0, "quantized_copy", None),
    "Q5_1": (Q.Q5_1, "quantized_copy", None),
}


@pytest.mark.parametrize("case", list(COPIES))
def test_a_gguf_converted_from_a_model_is_its_cast_or_quantized_copy(tmp_path, source, case):
    folder, state = source
    qtype, relation, cast_to = COPIES[case]
    path = write_llama_gguf(tmp_path / f"{case}.gguf", state, KSHAPE, qtype)
    forward = modelkin.compare(folder, path).verdict
    assert (forward.relation, forward.cast_to, forward.direction) == (relation, cast_to, None), (
        forward.sentence
    )
    assert forward.log10_p < -1000
    backward = modelkin.compare(path, folder).verdict
    assert (backward.relation, backward.cast_to, backward.direction) == (relation, cast_to, "b->a")
    assert backward.sentence.startswith("A is "), backward.sentence


def test_two_quantizations_of_one_model_name_the_coarser_as_the_copy(tmp_path, source):
    _, state = source
    q8 = write_llama_gguf(tmp_path / "q8.gguf", state, KSHAPE, Q.Q8_0)
    q4 = write_llama_gguf(tmp_path / "q4.gguf", state, KSHAPE, Q.Q4_0)
    forward, backward = modelkin.compare(q8, q4).verdict, modelkin.compare(q4, q8).verdict
    assert (forward.relation, forward.direction) == ("quantized_copy", None), forward.sentence
    assert (backward.relation, backward.direction) == ("quantized_copy", "b->a"), backward.sentence


def test_a_fingerprint_of_a_gguf_file_compares_like_the_file(tmp_path, source):
    folder, state = source
    path = write_llama_gguf(tmp_path / "q.gguf", state, KSHAPE, Q.Q4_K)
    fp = modelkin.fingerprint(path)
    assert fp.checkpoint.format == "gguf"
    fp_path = fp.save(tmp_path / "q.mkfp")
    v = modelkin.compare(folder, fp_path).verdict
    assert v.relation == "quantized_copy", v.sentence
    assert isinstance(modelkin._modelkin.read_pair(str(path), str(folder)), int)


def test_an_independent_model_in_gguf_is_independent(tmp_path, source):
    folder, _ = source
    path = write_llama_gguf(tmp_path / "other.gguf", llama_state(7, KSHAPE), KSHAPE, Q.Q8_0)
    for a, b in ((folder, path), (path, folder)):
        v = modelkin.compare(a, b).verdict
        assert v.relation == "independent", v.sentence
        assert v.log10_p > -6


def test_a_fine_tune_stored_in_a_block_format_is_still_a_fine_tune(tmp_path, source):
    """d beyond the Q8_0 grid bound is not rounding: the weights moved."""
    folder, state = source
    tuned, _ = derive.fine_tuned(state, seed=5)
    path = write_llama_gguf(tmp_path / "ft.gguf", tuned, KSHAPE, Q.Q8_0)
    v = modelkin.compare(folder, path).verdict
    assert (v.relation, v.direction) == ("fine_tune", "a->b"), v.sentence


def test_a_noised_copy_stored_in_q8_0_is_a_noised_copy_with_its_sigma(tmp_path, source):
    folder, state = source
    noisy = derive.noised(state, derive.LLAMA3V_SIGMA, seed=41)
    path = write_llama_gguf(tmp_path / "noisy.gguf", noisy, KSHAPE, Q.Q8_0)
    v = modelkin.compare(folder, path).verdict
    assert v.relation == "noised_copy", v.sentence
    assert v.sigma == pytest.approx(derive.LLAMA3V_SIGMA, rel=0.05)


def test_the_gguf_tokenizer_and_architecture_are_the_metadata_evidence(tmp_path, source):
    _, state = source
    vocab = tokens(KSHAPE.vocab)
    merges = [f"{a} {b}" for a, b in zip(vocab[3:300], vocab[4:301])]
    template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    path = write_llama_gguf(
        tmp_path / "g.gguf", state, KSHAPE, Q.Q8_0, merges=merges, extra={"tokenizer.chat_template": template}
    )
    hf = tmp_path / "hf"
    write_single(hf / "model.safetensors", state)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": KSHAPE.hidden,
        "intermediate_size": KSHAPE.intermediate,
        "num_hidden_layers": KSHAPE.layers,
        "num_attention_heads": KSHAPE.heads,
        "num_key_value_heads": KSHAPE.kv_heads,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "vocab_size": KSHAPE.vocab,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "hidden_act": "silu",
        "torch_dtype": "float32",
    }
    tok = {
        "model": {"type": "BPE", "vocab": {t: i for i, t in enumerate(vocab)}, "merges": merges},
        "added_tokens": [{"id": i, "content": t, "special": True} for i, t in enumerate(vocab[:3])],
    }
    tc = {"bos_token": "<s>", "eos_token": "</s>", "chat_template": template}
    for name, doc in (("config.json", config), ("tokenizer.json", tok), ("tokenizer_config.json", tc)):
        (hf / name).write_text(json.dumps(doc))
    res = modelkin.compare(hf, path)
    assert res.verdict.relation == "quantized_copy"
    md = res.metadata
    assert md is not None
    assert md.config is not None and md.config.equal, md.config.to_dict()
    assert md.config.side_by_side["num_hidden_layers"] == (2, 2)
    assert md.config.side_by_side["rms_norm_eps"][0] == 1e-5
    assert md.tokenizer is not None and md.tokenizer.vocab_identical
    assert md.tokenizer.merges_identical and md.tokenizer.added_tokens_equal
    assert md.tokenizer.sources_b == ("GGUF metadata",)
    assert md.chat_template_equal is True
    assert md.strength == "strong", md.reasons
    # Another tokenizer and another depth are told apart.
    other = write_llama_gguf(
        tmp_path / "o.gguf", state, KSHAPE, Q.Q8_0, vocab=[f"x{i}" for i in range(KSHAPE.vocab)]
    )
    md2 = modelkin.compare_metadata(hf, other)
    assert md2.tokenizer is not None and md2.tokenizer.shared_tokens == 0
    assert md2.strength in ("none", "weak")


def test_cli_compares_a_gguf_file_with_a_model_folder(tmp_path, source):
    folder, state = source
    path = write_llama_gguf(tmp_path / "model.gguf", state, KSHAPE, Q.Q4_K)
    proc = subprocess.run(
        [sys.executable, "-m", "modelkin.cli", "compare", str(path), str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "A is a quantized copy of B" in proc.stdout
    inspected = subprocess.run(
        [sys.executable, "-m", "modelkin.cli", "inspect", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert inspected.returncode == 0 and "gguf" in inspected.stdout and "Q4_K" in inspected.stdout


# -- malformed files -------------------------------------------------------------------------------------


def small_gguf() -> bytes:
    """A valid small GGUF file: llama metadata with arrays, a permuted Q, a Q8_0 and an F32 tensor."""
    import tempfile

    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as d:
        w = gguf.GGUFWriter(str(Path(d) / "s.gguf"), "llama")
        w.add_head_count(2)
        w.add_head_count_kv(2)
        w.add_token_list(["a", "b", "c"])
        w.add_array("test.nested", [[1, 2], [3]])
        w.add_tensor("blk.0.attn_q.weight", rng.normal(0, 1, (8, 32)).astype(np.float32))
        q8 = gguf.quants.quantize(rng.normal(0, 1, (4, 64)).astype(np.float32), Q.Q8_0)
        w.add_tensor("blk.0.ffn_up.weight", q8, raw_dtype=Q.Q8_0)
        w.add_tensor("output_norm.weight", np.ones(5, np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return (Path(d) / "s.gguf").read_bytes()


VALID = small_gguf()


def header(n_tensors: int, n_kv: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


def gstr(s: bytes | str, length: int | None = None) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b) if length is None else length) + b


def read_all(path: Path) -> None:
    """Opens, inspects, samples and compares ``path``: only a ModelkinError naming it may come out."""
    try:
        modelkin.open(path)
        modelkin.inspect(path, threads=2)
        modelkin.gguf_metadata(path)
        modelkin.compare(path, path, threads=2)
    except ModelkinError as e:
        msg = str(e)
        assert "internal error" not in msg, msg
        assert str(path) in msg, msg


@pytest.mark.parametrize(
    ("data", "exc", "fragment"),
    [
        (b"GGUF", InvalidCheckpointError, "too short"),
        (header(0, 0, version=1), UnsupportedFormatError, "version 1"),
        (header(0, 0, version=7), InvalidCheckpointError, "version 7"),
        (b"GGUF" + struct.pack(">IQQ", 3, 0, 0), UnsupportedFormatError, "big-endian"),
        (header(2**62, 0), InvalidCheckpointError, "claims 4611686018427387904 tensors"),
        (header(0, 2**60), InvalidCheckpointError, "metadata entries"),
        (
            header(0, 1) + gstr(b"", 2**60) + bytes(16),
            InvalidCheckpointError,
            "claims 1152921504606846976 bytes",
        ),
        (
            header(0, 1) + gstr("k") + struct.pack("<I", 8) + gstr(b"", 2**60),
            InvalidCheckpointError,
            "claims",
        ),
        (
            header(0, 1) + gstr("k") + struct.pack("<IIQ", 9, 4, 2**62) + bytes(16),
            InvalidCheckpointError,
            "cannot fit",
        ),
        (
            header(0, 1) + gstr("k") + struct.pack("<I", 42) + bytes(8),
            InvalidCheckpointError,
            "value type 42",
        ),
        (
            header(0, 1) + gstr("k") + struct.pack("<IB", 7, 9) + bytes(8),
            InvalidCheckpointError,
            "neither 0 nor 1",
        ),
        (
            header(0, 2) + (gstr("k") + struct.pack("<IB", 0, 1)) * 2,
            InvalidCheckpointError,
            "'k' appears twice",
        ),
        (
            header(0, 1) + gstr("general.alignment") + struct.pack("<II", 4, 24),
            InvalidCheckpointError,
            "not a power of two",
        ),
        (
            header(1, 0) + gstr("w") + struct.pack("<IQIQ", 1, 4, 99, 0) + bytes(32),
            UnknownDtypeError,
            "tensor 'w': unknown dtype 'ggml type 99'",
        ),
        (
            header(1, 0) + gstr("w") + struct.pack("<IQIQ", 1, 256, 16, 0) + bytes(128),
            UnsupportedFormatError,
            "ggml type 16 (IQ2_XXS)",
        ),
        (
            header(1, 0) + gstr("w") + struct.pack("<IQIQ", 1, 16, 8, 0) + bytes(64),
            InvalidCheckpointError,
            "ne[0] = 16 is not a multiple of the Q8_0 block length 32",
        ),
        (
            header(1, 0) + gstr("w") + struct.pack("<IQIQ", 1, 4, 0, 8) + bytes(64),
            InvalidCheckpointError,
            "offset 8 is not a multiple of the alignment 32",
        ),
        (
            header(1, 0) + gstr("w") + struct.pack("<IQIQ", 1, 1000, 0, 0) + bytes(64),
            InvalidCheckpointError,
            "runs past the end of the file",
        ),
        (
            header(1, 0) + gstr("w") + struct.pack("<IQQIQ", 2, 2**31, 2**31, 0, 0) + bytes(64),
            InvalidCheckpointError,
            "larger than 2^64 bytes",
        ),
        (
            header(1, 0) + gstr("w") + struct.pack("<I", 9) + bytes(64),
            InvalidCheckpointError,
            "9 dimensions",
        ),
        (
            header(2, 0) + (gstr("w") + struct.pack("<IQIQ", 1, 4, 0, 0)) * 2 + bytes(64),
            InvalidCheckpointError,
            "tensor 'w': appears twice",
        ),
        (
            header(2, 0)
            + gstr("a")
            + struct.pack("<IQIQ", 1, 16, 0, 0)
            + gstr("b")
            + struct.pack("<IQIQ", 1, 16, 0, 32)
            + bytes(128),
            InvalidCheckpointError,
            "overlaps tensor 'a'",
        ),
    ],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_malformed_gguf_files_are_refused_naming_the_file_and_the_rule(tmp_path, data, exc, fragment):
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    for call in (
        lambda: modelkin.open(path),
        lambda: modelkin.inspect(path),
        lambda: modelkin.diff(path, path),
    ):
        with pytest.raises(exc) as info:
            call()
        msg = str(info.value)
        assert str(path) in msg and fragment in msg, msg


def test_a_gguf_inside_a_safetensors_folder_is_named(tmp_path):
    write_single(tmp_path / "m" / "a.safetensors", {"x": np.ones(2, np.float32)})
    (tmp_path / "m" / "b.safetensors").write_bytes(VALID)
    with pytest.raises(
        UnsupportedFormatError, match=r"b\.safetensors: named \.safetensors but holds a gguf checkpoint"
    ):
        modelkin.open(tmp_path / "m")


def test_the_fuzz_seed_gguf_is_valid(tmp_path):
    path = tmp_path / "s.gguf"
    path.write_bytes(VALID)
    names = [t.name for t in modelkin.open(path).tensors]
    assert names == ["blk.0.attn_q.weight", "blk.0.ffn_up.weight", "output_norm.weight"]
    assert modelkin.gguf_metadata(path)["test.nested"] == [[1, 2], [3]]


MUTATION = st.one_of(
    edits(len(VALID)),
    # Counts and lengths deserve their own share: u64 fields at the header and at random places.
    st.tuples(
        st.just("set"),
        st.sampled_from([8, 16, 24, 32]) | st.integers(24, len(VALID) - 8),
        st.sampled_from([0, 1, 2**31, 2**32, 2**60, 2**62, 2**63, 2**64 - 1]).map(
            lambda n: n.to_bytes(8, "little")
        ),
    ),
)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_random_mutations_of_a_gguf_never_crash(tmp_path_factory, mutations):
    path = tmp_path_factory.mktemp("gguf-fuzz") / "mutated.gguf"
    path.write_bytes(apply(VALID, mutations))
    read_all(path)


@st.composite
def hand_built_headers(draw):
    """GGUF headers built field by field from odd values: counts, types, lengths, dims, offsets."""
    odd32 = st.sampled_from([0, 1, 2, 3, 7, 8, 31, 32, 256, 2**31, 2**32 - 1])
    odd = odd32 | st.sampled_from([2**62, 2**63, 2**64 - 1])
    n_kv = draw(st.integers(0, 3))
    n_t = draw(st.integers(0, 3))
    out = header(
        draw(st.one_of(st.just(n_t), odd)), draw(st.one_of(st.just(n_kv), odd)), draw(st.sampled_from([2, 3]))
    )
    for _ in range(n_kv):
        key = draw(
            st.sampled_from(["general.alignment", "general.architecture", "llama.attention.head_count", "k"])
        )
        out += gstr(key, draw(st.one_of(st.none(), odd)))
        ty = draw(st.integers(0, 13))
        out += struct.pack("<I", ty)
        if ty == 9:
            out += struct.pack("<IQ", draw(st.integers(0, 13)), draw(st.one_of(st.integers(0, 3), odd)))
        out += draw(st.binary(max_size=12))
    for _ in range(n_t):
        out += gstr(draw(st.sampled_from(["blk.0.attn_q.weight", "blk.0.attn_k.bias", "w"])))
        dims = draw(st.integers(0, 5))
        out += struct.pack("<I", draw(st.one_of(st.just(dims), odd32)))
        for _ in range(dims):
            out += struct.pack("<Q", draw(st.one_of(st.integers(0, 300), odd)))
        out += struct.pack("<I", draw(st.sampled_from([0, 1, 2, 8, 12, 14, 15, 16, 30, 99])))
        out += struct.pack("<Q", draw(st.one_of(st.sampled_from([0, 32, 64]), odd)))
    out += bytes(draw(st.integers(0, 2048)))
    return out


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=hand_built_headers())
def test_hand_built_malformed_gguf_headers_never_crash(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("gguf-headers") / "built.gguf"
    path.write_bytes(data)
    read_all(path)


def test_fingerprint_digests_of_block_formats_cover_their_stored_bytes(tmp_path):
    # A Q8_0 tensor of 2²¹ elements spans two engine chunks and two 1 MiB pieces of 34-byte blocks;
    # its digest is the format's SHA-256 over piece digests of exactly the stored bytes.
    import hashlib

    x = np.random.default_rng(5).normal(0, 0.02, (1024, 2048)).astype(np.float32)
    raw = gguf.quants.quantize(x, Q.Q8_0)
    path = write_tensors(tmp_path / "q.gguf", {"w": (raw, Q.Q8_0)})
    data = raw.tobytes()
    piece = 1 << 20
    pieces = b"".join(hashlib.sha256(data[i : i + piece]).digest() for i in range(0, len(data), piece))
    want = hashlib.sha256(pieces).hexdigest()
    assert modelkin.fingerprint(path, threads=1)["w"].digest == want
    assert modelkin.fingerprint(path, threads=2)["w"].digest == want


# -- split GGUF (llama.cpp's gguf-split) ------------------------------------------------------------------


def test_a_split_gguf_reads_as_one_model_from_any_shard_or_its_folder(tmp_path, source):
    folder, state = source
    split = tmp_path / "split"
    write_llama_gguf(split / "m.gguf", state, KSHAPE, Q.Q8_0, split_max_tensors=8)
    shards = sorted(split.glob("m-*-of-*.gguf"))
    assert len(shards) >= 3, shards  # llama.cpp's naming, written by gguf-py's own writer
    assert "llama.attention.head_count" not in gguf.GGUFReader(shards[1]).fields  # only in shard 1
    whole = modelkin.open(write_llama_gguf(tmp_path / "whole.gguf", state, KSHAPE, Q.Q8_0))
    for path in (split, shards[0], shards[-1]):
        info = modelkin.open(path)
        assert info.format == "gguf-split" and len(info.files) == len(shards)
        assert [t.name for t in info.tensors] == [t.name for t in whole.tensors]
    # Only the first shard holds the head counts; the Q/K rows of every shard are still un-permuted,
    # so the split file is the same quantized copy of its source as the whole one.
    res = modelkin.compare(split, folder)
    assert res.verdict.relation == "quantized_copy", res.verdict.sentence
    assert modelkin.gguf_metadata(split)["llama.attention.head_count"] == KSHAPE.heads


def test_a_split_gguf_with_a_missing_or_misnumbered_shard_is_refused(tmp_path, source):
    _, state = source
    split = tmp_path / "split"
    write_llama_gguf(split / "m.gguf", state, KSHAPE, Q.Q8_0, split_max_tensors=8)
    shards = sorted(split.glob("m-*-of-*.gguf"))
    shards[1].unlink()
    with pytest.raises(UnsupportedFormatError, match=r"shard 2 of \d+ of this split GGUF is missing"):
        modelkin.open(shards[0])
    renamed = split / "other.gguf"
    shards[0].rename(renamed)
    with pytest.raises(UnsupportedFormatError, match="not named PREFIX-NNNNN-of-"):
        modelkin.open(renamed)


def test_a_hostile_split_count_is_refused_at_once(tmp_path):
    w = gguf.GGUFWriter(str(tmp_path / "m-00001-of-99999.gguf"), "llama")
    w.add_uint64("split.count", 2**40)
    w.add_uint16("split.no", 0)
    w.add_tensor("x", np.ones(4, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(UnsupportedFormatError, match="more shards than a split GGUF can have"):
        modelkin.open(tmp_path / "m-00001-of-99999.gguf")


def test_fingerprint_columns_of_block_formats_are_the_dequantised_values(tmp_path):
    # The token-keyed embedding rows of a fingerprint read a few columns of every row; a quantized
    # embedding is read block-aware (an earlier build indexed its bytes as if one element per
    # dtype size and panicked).
    x = np.random.default_rng(6).normal(0, 0.02, (8, 64)).astype(np.float32)
    raw = gguf.quants.quantize(x, Q.Q8_0)
    path = write_tensors(tmp_path / "e.gguf", {"e": (raw, Q.Q8_0)})
    want = gguf.quants.dequantize(raw, Q.Q8_0).astype(np.float64)[:, [0, 5, 63]]
    got = np.asarray(modelkin._modelkin.columns(str(path), ["e"], [0, 5, 63])["e"]).reshape(8, 3)
    np.testing.assert_array_equal(got, want)


def test_fingerprint_columns_of_llama_q_rows_are_in_the_hugging_face_order(tmp_path, source):
    _, state = source
    path = write_llama_gguf(tmp_path / "m.gguf", state, KSHAPE, Q.F32)
    q = state["model.layers.0.self_attn.q_proj.weight"].astype(np.float64)
    got = modelkin._modelkin.columns(str(path), ["blk.0.attn_q.weight"], [0, 7])["blk.0.attn_q.weight"]
    np.testing.assert_array_equal(np.asarray(got).reshape(q.shape[0], 2), q[:, [0, 7]])
