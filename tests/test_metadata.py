"""Config and tokenizer evidence: model folders written by the tests (configs, tokenizer files, chat
templates), one tokenizer trained and saved with the ``tokenizers`` package where it is installed."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from modelkin.evidence.metadata import METADATA_SCHEMA, STRENGTHS, compare_metadata
from models import llama_state, write_single

#: The config every Llama-2-7B-shaped model ships, whoever trained it.
LLAMA_7B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "max_position_embeddings": 4096,
    "vocab_size": 32000,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "float16",
    "transformers_version": "4.31.0",
}

TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"


def vocabulary(n: int, seed: int = 0, prefix: str = "t") -> list[str]:
    """n distinct token strings (in a seeded order)."""
    tokens = [f"{prefix}{i}" for i in range(n)]
    random.Random(seed).shuffle(tokens)
    return tokens


def tokenizer_json(tokens: list[str], merges: list[str], added: list[str] = ()) -> dict[str, Any]:
    """A BPE ``tokenizer.json`` as Hugging Face writes it: vocab token → id, merges, added tokens."""
    vocab = {t: i for i, t in enumerate(tokens)}
    return {
        "version": "1.0",
        "added_tokens": [
            {"id": len(tokens) + k, "content": t, "special": True, "single_word": False}
            for k, t in enumerate(added)
        ],
        "model": {"type": "BPE", "vocab": vocab, "merges": merges},
    }


def write_folder(folder: Path, files: dict[str, Any]) -> Path:
    """Writes each file: dicts and lists as JSON, strings as text."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content, indent=2)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def fine_tune_files(tokens: list[str] | None = None) -> dict[str, Any]:
    """A model folder's metadata: Llama config, BPE tokenizer with merges, chat template, specials."""
    tokens = tokens or vocabulary(1500)
    merges = [f"{a} {b}" for a, b in zip(tokens[:1200], tokens[1:1201])]
    return {
        "config.json": LLAMA_7B,
        "generation_config.json": {"bos_token_id": 1, "eos_token_id": 2, "temperature": 0.6},
        "tokenizer.json": tokenizer_json(tokens, merges, ["<s>", "</s>"]),
        "tokenizer_config.json": {"bos_token": "<s>", "eos_token": "</s>", "chat_template": TEMPLATE},
        "special_tokens_map.json": {"bos_token": {"content": "<s>"}, "eos_token": "</s>"},
    }


# -- configs --------------------------------------------------------------------------------------------


def test_independent_models_sharing_a_config_are_only_weak_evidence(tmp_path):
    """Two Llama-7B-shaped models trained separately: same config, their own tokenizers."""
    a = write_folder(
        tmp_path / "a",
        {
            "config.json": {**LLAMA_7B, "_name_or_path": "lab-a/model"},
            "tokenizer.json": tokenizer_json(vocabulary(1500, seed=1), ["t1 t2", "t3 t4"]),
        },
    )
    b = write_folder(
        tmp_path / "b",
        {
            "config.json": {**LLAMA_7B, "transformers_version": "4.40.0", "torch_dtype": "bfloat16"},
            "tokenizer.json": tokenizer_json(vocabulary(1500, seed=2), ["t5 t6", "t1 t2"]),
        },
    )
    ev = compare_metadata(a, b)
    assert ev.strength == "weak"
    assert ev.config is not None and ev.config.equal  # bookkeeping keys (versions, dtype, path) aside
    assert ev.config.side_by_side["hidden_size"] == (4096, 4096)
    assert ev.config.side_by_side["model_type"] == ("llama", "llama")
    tok = ev.tokenizer
    assert tok is not None and tok.jaccard == 1.0 and tok.id_agreement < 0.05
    assert not tok.identical and not tok.derived
    assert "config.json" not in ev.identical_files  # the files differ even though the configs agree
    assert "never decides a verdict" in ev.sentence and "weak" in ev.sentence


def test_config_differences_are_listed_by_key(tmp_path):
    a = write_folder(tmp_path / "a", {"config.json": LLAMA_7B})
    cfg_b = {**LLAMA_7B, "num_hidden_layers": 30, "rope_scaling": {"type": "linear", "factor": 2.0}}
    cfg_b["text_config"] = {"hidden_size": 8}
    b = write_folder(tmp_path / "b", {"config.json": cfg_b})
    ev = compare_metadata(a, b)
    assert ev.config is not None and not ev.config.equal
    assert ev.config.differing == ("num_hidden_layers", "rope_scaling")
    assert ev.config.only_b == ("text_config.hidden_size",)
    assert ev.config.side_by_side["num_hidden_layers"] == (32, 30)
    assert ev.config.side_by_side["text_config.hidden_size"] == (None, 8)
    assert ev.strength == "none"


# -- tokenizers -----------------------------------------------------------------------------------------


def test_a_fine_tune_with_the_same_files_is_strong_evidence(tmp_path):
    a = write_folder(tmp_path / "a", fine_tune_files())
    b = write_folder(tmp_path / "b", fine_tune_files())
    ev = compare_metadata(a, b)
    assert ev.strength == "strong"
    tok = ev.tokenizer
    assert tok is not None and tok.identical and tok.merges_identical and tok.merges_a == 1200
    assert tok.vocab_a == 1502  # added tokens count
    assert ev.chat_template_equal is True and ev.generation_config_equal is True
    assert set(ev.identical_files) == set(fine_tune_files())
    for f in ev.files:
        expected = hashlib.sha256((a / f.name).read_bytes()).hexdigest()
        assert f.sha256_a == f.sha256_b == expected
    assert "never decides a verdict" in ev.sentence


def test_same_tokenizer_with_another_template_is_moderate(tmp_path):
    files = fine_tune_files()
    a = write_folder(tmp_path / "a", files)
    other = {**files, "tokenizer_config.json": {**files["tokenizer_config.json"], "chat_template": "{{ x }}"}}
    b = write_folder(tmp_path / "b", other)
    ev = compare_metadata(a, b)
    assert ev.chat_template_equal is False and ev.strength == "moderate"


def test_merges_in_another_order_are_not_the_same_tokenizer(tmp_path):
    files = fine_tune_files()
    a = write_folder(tmp_path / "a", files)
    tj = json.loads(json.dumps(files["tokenizer.json"]))
    tj["model"]["merges"] = tj["model"]["merges"][::-1]
    b = write_folder(tmp_path / "b", {**files, "tokenizer.json": tj})
    tok = compare_metadata(a, b).tokenizer
    assert tok is not None and tok.merges_identical is False and tok.merges_jaccard == 1.0
    assert tok.merges_common_prefix == 0 and not tok.identical
    assert compare_metadata(a, b).strength == "moderate"  # same ids still: a derived tokenizer


def test_an_extended_vocabulary_keeps_the_ids_and_is_derived(tmp_path):
    tokens = vocabulary(1500)
    files_a = fine_tune_files(tokens)
    files_b = fine_tune_files(tokens)
    extra = [f"zh{i}" for i in range(500)]
    merges = files_a["tokenizer.json"]["model"]["merges"] + [f"zh{i} zh{i + 1}" for i in range(100)]
    files_b["tokenizer.json"] = tokenizer_json(tokens + extra, merges)
    files_b["config.json"] = {**LLAMA_7B, "vocab_size": 32500}
    ev = compare_metadata(write_folder(tmp_path / "a", files_a), write_folder(tmp_path / "b", files_b))
    tok = ev.tokenizer
    assert tok is not None
    assert tok.shared_tokens == 1500 and tok.id_agreement == 1.0
    assert tok.jaccard == pytest.approx(1500 / 2002)  # A's two added tokens are not in B
    assert tok.merges_common_prefix == 1200 and tok.derived and not tok.identical
    assert ev.config is not None and ev.config.differing == ("vocab_size",)
    assert ev.strength == "moderate" and "derives from the other" in ev.sentence


def test_wordpiece_vocab_txt_alone_is_weak(tmp_path):
    vocab = "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *vocabulary(1200)]) + "\n"
    a = write_folder(tmp_path / "a", {"vocab.txt": vocab})
    b = write_folder(tmp_path / "b", {"vocab.txt": vocab})
    ev = compare_metadata(a, b)
    assert ev.tokenizer is not None and ev.tokenizer.vocab_identical and ev.tokenizer.merges_a is None
    assert ev.tokenizer.sources_a == ("vocab.txt",)
    assert ev.strength == "weak"
    # With the same config as well it is moderate, never strong: BERT's files are everywhere.
    bert = {"model_type": "bert", "hidden_size": 768, "num_hidden_layers": 12}
    write_folder(a, {"config.json": bert})
    write_folder(b, {"config.json": bert})
    assert compare_metadata(a, b).strength == "moderate"


def test_gpt2_style_vocab_json_and_merges_txt(tmp_path):
    tokens = vocabulary(1100)
    merges = "#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in zip(tokens, tokens[1:1001])) + "\n"
    files = {"vocab.json": {t: i for i, t in enumerate(tokens)}, "merges.txt": merges}
    ev = compare_metadata(write_folder(tmp_path / "a", files), write_folder(tmp_path / "b", files))
    tok = ev.tokenizer
    assert tok is not None and tok.merges_a == 1000 and tok.merges_identical and tok.identical
    assert tok.sources_a == ("vocab.json", "merges.txt")
    assert ev.strength == "moderate"


def test_special_and_added_tokens_are_compared(tmp_path):
    files = fine_tune_files()
    a = write_folder(tmp_path / "a", files)
    b_files = {**files, "special_tokens_map.json": {"bos_token": "<s>", "eos_token": "<|eot|>"}}
    tj = json.loads(json.dumps(files["tokenizer.json"]))
    tj["added_tokens"][1]["content"] = "<|eot|>"
    b_files["tokenizer.json"] = tj
    tok = compare_metadata(a, write_folder(tmp_path / "b", b_files)).tokenizer
    assert tok is not None and not tok.added_tokens_equal and not tok.special_tokens_equal
    assert not tok.identical


# -- chat templates -------------------------------------------------------------------------------------


def test_chat_templates_from_jinja_json_and_tokenizer_config_compare_as_text(tmp_path):
    a = write_folder(tmp_path / "a", {"chat_template.jinja": TEMPLATE})
    b = write_folder(tmp_path / "b", {"tokenizer_config.json": {"chat_template": TEMPLATE}})
    c = write_folder(tmp_path / "c", {"chat_template.json": {"chat_template": TEMPLATE + " "}})
    assert compare_metadata(a, b).chat_template_equal is True
    assert compare_metadata(a, c).chat_template_equal is False
    named = [{"name": "default", "template": TEMPLATE}, {"name": "tool_use", "template": "{{ tools }}"}]
    d = write_folder(tmp_path / "d", {"tokenizer_config.json": {"chat_template": named}})
    e = write_folder(tmp_path / "e", {"tokenizer_config.json": {"chat_template": named[::-1]}})
    assert compare_metadata(d, e).chat_template_equal is False  # order of named templates kept
    assert compare_metadata(d, d).chat_template_equal is True
    assert compare_metadata(a, b).strength == "weak"


# -- reading --------------------------------------------------------------------------------------------


def test_a_checkpoint_file_uses_its_folder(tmp_path):
    files = fine_tune_files()
    a = write_single(write_folder(tmp_path / "a", files) / "model.safetensors", llama_state(0))
    b = write_folder(tmp_path / "b", files)
    ev = compare_metadata(a, b)
    assert ev.folder_a == str(tmp_path / "a") and ev.strength == "strong"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        compare_metadata(tmp_path / "nowhere", b)


def test_no_metadata_is_no_evidence(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ev = compare_metadata(tmp_path / "a", tmp_path / "b")
    assert ev.strength == "none" and ev.files == () and ev.config is None and ev.tokenizer is None
    assert "no config or tokenizer files" in ev.sentence


def test_malformed_files_are_reported_not_raised(tmp_path):
    a = write_folder(tmp_path / "a", {"config.json": "{not json", "tokenizer_config.json": "[1, 2]"})
    (a / "tokenizer.json").write_bytes(b"\xff\xfe garbage")
    b = write_folder(tmp_path / "b", fine_tune_files())
    ev = compare_metadata(a, b)
    problems = "\n".join(ev.problems)
    assert "config.json: not valid JSON" in problems
    assert "tokenizer_config.json: expected a JSON dict" in problems
    assert "tokenizer.json: not UTF-8" in problems
    assert ev.config is None and ev.strength == "none"
    assert {f.name for f in ev.files} >= {"config.json", "tokenizer.json"}  # still hashed


def test_nothing_in_the_folder_is_executed(tmp_path):
    marker = tmp_path / "executed"
    code = f"open({str(marker)!r}, 'w').write('x')\n"
    files = fine_tune_files()
    files["config.json"] = {**LLAMA_7B, "auto_map": {"AutoConfig": "configuration_evil.EvilConfig"}}
    files["tokenizer_config.json"] = {
        **files["tokenizer_config.json"],
        "auto_map": {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]},
        "chat_template": "{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}",
    }
    files["configuration_evil.py"] = code
    files["tokenization_evil.py"] = code
    a = write_folder(tmp_path / "a", files)
    b = write_folder(tmp_path / "b", files)
    ev = compare_metadata(a, b)
    assert not marker.exists()
    assert ev.strength == "strong" and ev.chat_template_equal is True


def test_to_dict_is_strict_json(tmp_path):
    a = write_folder(tmp_path / "a", fine_tune_files())
    b = write_folder(
        tmp_path / "b",
        {"config.json": LLAMA_7B, "tokenizer.json": tokenizer_json(vocabulary(10, prefix="x"), [])},
    )
    data = compare_metadata(a, b).to_dict()
    parsed = json.loads(json.dumps(data, allow_nan=False))
    assert parsed["schema"] == METADATA_SCHEMA and parsed["strength"] in STRENGTHS
    assert parsed["tokenizer"]["id_agreement"] is None  # no shared token: NaN becomes null
    assert parsed["config"]["side_by_side"]["hidden_size"] == [4096, 4096]


# -- a tokenizer written by the tokenizers package ---------------------------------------------------------


def train_bpe(path: Path, words: list[str], seed: int) -> Any:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    rng = random.Random(seed)
    corpus = [" ".join(rng.choice(words) for _ in range(30)) for _ in range(300)]
    tok.train_from_iterator(corpus, trainer)
    tok.add_tokens(["<|tool|>"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return tok


def test_tokenizers_package_files_are_read_and_compared(tmp_path):
    words = ["weight", "token", "merge", "layer", "noise", "copy", "kinship", "checkpoint", "gradient"]
    tok = train_bpe(tmp_path / "a" / "tokenizer.json", words, seed=0)
    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    train_bpe(tmp_path / "other" / "tokenizer.json", [w[::-1] for w in words], seed=1)
    for folder in ("a", "copy", "other"):
        write_folder(tmp_path / folder, {"config.json": LLAMA_7B, "chat_template.jinja": TEMPLATE})

    same = compare_metadata(tmp_path / "a", tmp_path / "copy")
    t = same.tokenizer
    assert t is not None and t.identical and t.vocab_a == tok.get_vocab_size(with_added_tokens=True)
    saved = json.loads((tmp_path / "a" / "tokenizer.json").read_text(encoding="utf-8"))
    assert t.merges_a == len(saved["model"]["merges"]) > 0
    assert same.strength == "strong" and "tokenizer.json" in same.identical_files

    other = compare_metadata(tmp_path / "a", tmp_path / "other")
    t = other.tokenizer
    assert t is not None and not t.identical and not t.merges_identical
    assert t.jaccard < 1 and t.merges_jaccard is not None and t.merges_jaccard < 0.5
    assert other.strength == "weak"  # the shared Llama config (and template) alone
