"""The files beside the weights: configs, tokenizers and chat templates, read without executing anything.

Reads, where present in a checkpoint's folder (or the folder of a single ``.safetensors`` file),
``config.json``, ``generation_config.json``, ``tokenizer.json``, ``tokenizer_config.json``,
``vocab.txt``, ``vocab.json``, ``merges.txt``, ``special_tokens_map.json``, ``added_tokens.json`` and
chat templates (``tokenizer_config.json``'s ``"chat_template"``, ``chat_template.jinja`` or
``chat_template.json``); ``tokenizer.model`` (a SentencePiece protobuf) is hashed only. Nothing in
these files is ever executed or imported: they are parsed as JSON or plain text, and a chat template
is compared as a string, never rendered; ``auto_map`` entries naming code are only compared.

A GGUF checkpoint (a ``.gguf`` file, or a folder holding one and no safetensors) carries its config
and tokenizer in its own metadata, and that is what is compared for it (files beside it are not
read): ``{arch}.block_count``, ``{arch}.embedding_length``, ``{arch}.attention.head_count`` … as
``num_hidden_layers``, ``hidden_size``, ``num_attention_heads`` …; ``tokenizer.ggml.tokens`` (ids
are positions), ``tokenizer.ggml.merges``, the control and user-defined tokens as added tokens, the
special-token ids as special tokens, and ``tokenizer.chat_template``. A GGUF holds only part of a
config, so against a GGUF only the keys both sides hold are compared, floats to f32 precision.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from . import _engine
from ._util import parse_json

__all__ = [
    "KNOWN_FILES",
    "Folder",
    "GgufMetadata",
    "PathArg",
    "Tokenizer",
    "chat_template",
    "gguf_file",
    "metadata_folder",
    "read_tokenizer",
    "source",
]


#: The files read (or, for ``tokenizer.model``, hashed) when present beside the weights.
KNOWN_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "tokenizer.model",
)

#: JSON and text files larger than this are hashed but not parsed.
_MAX_PARSE_BYTES = 512 << 20

PathArg = Union[str, "os.PathLike[str]"]


def metadata_folder(path: PathArg) -> Path:
    """The folder holding a checkpoint's metadata: the path itself if it is a folder, else its parent."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    return p if p.is_dir() else p.parent


class Folder:
    """The metadata files of one folder, parsed lazily; problems are collected, not raised."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.problems: list[str] = []
        self.present = {name: folder / name for name in KNOWN_FILES if (folder / name).is_file()}
        self._cache: dict[str, Any] = {}

    def text(self, name: str) -> str | None:
        """The file as text, or None when absent or unreadable (recorded as a problem)."""
        key = "text:" + name
        if key not in self._cache:
            self._cache[key] = self._read_text(name)
        value: str | None = self._cache[key]
        return value

    def _read_text(self, name: str) -> str | None:
        path = self.present.get(name)
        if path is None:
            return None
        if path.stat().st_size > _MAX_PARSE_BYTES:
            self.problems.append(f"{path}: larger than {_MAX_PARSE_BYTES >> 20} MB, hashed but not read")
            return None
        try:
            return path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as e:
            self.problems.append(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})")
        except OSError as e:
            self.problems.append(f"{path}: cannot be read ({e.strerror})")
        return None

    def json(self, name: str, kind: type = dict) -> Any:
        """The file parsed as JSON (expected to be a ``kind``), or None (absent or malformed: a problem)."""
        key = "json:" + name
        if key not in self._cache:
            text = self.text(name)
            value: Any = None
            if text is not None:
                try:
                    value = parse_json(text)
                except ValueError as e:  # malformed, too deep, an over-long integer: a problem, never a stop
                    self.problems.append(f"{self.folder / name}: {e}")
                    value = None
                if value is not None and not isinstance(value, kind):
                    self.problems.append(
                        f"{self.folder / name}: expected a JSON {kind.__name__}, got {type(value).__name__}"
                    )
                    value = None
            self._cache[key] = value
        return self._cache[key]


#: GGUF token types (llama.cpp's ``llama_token_type``) that Hugging Face lists as added tokens:
#: unknown, control and user-defined.
_GGUF_ADDED_TYPES = frozenset({2, 3, 4})

#: Special-token roles and the GGUF keys of their ids (llama.cpp spells "seperator" so).
_GGUF_SPECIALS = (
    ("bos_token", "tokenizer.ggml.bos_token_id"),
    ("eos_token", "tokenizer.ggml.eos_token_id"),
    ("unk_token", "tokenizer.ggml.unknown_token_id"),
    ("pad_token", "tokenizer.ggml.padding_token_id"),
    ("sep_token", "tokenizer.ggml.seperator_token_id"),
    ("cls_token", "tokenizer.ggml.cls_token_id"),
    ("mask_token", "tokenizer.ggml.mask_token_id"),
)

#: Hugging Face config key ← GGUF key (``{arch}`` is ``general.architecture``).
_GGUF_CONFIG = (
    ("num_hidden_layers", "{arch}.block_count"),
    ("hidden_size", "{arch}.embedding_length"),
    ("intermediate_size", "{arch}.feed_forward_length"),
    ("num_attention_heads", "{arch}.attention.head_count"),
    ("num_key_value_heads", "{arch}.attention.head_count_kv"),
    ("head_dim", "{arch}.attention.key_length"),
    ("max_position_embeddings", "{arch}.context_length"),
    ("rms_norm_eps", "{arch}.attention.layer_norm_rms_epsilon"),
    ("layer_norm_eps", "{arch}.attention.layer_norm_epsilon"),
    ("rope_theta", "{arch}.rope.freq_base"),
    ("vocab_size", "{arch}.vocab_size"),
    ("num_local_experts", "{arch}.expert_count"),
    ("num_experts_per_tok", "{arch}.expert_used_count"),
    ("sliding_window", "{arch}.attention.sliding_window"),
    ("bos_token_id", "tokenizer.ggml.bos_token_id"),
    ("eos_token_id", "tokenizer.ggml.eos_token_id"),
    ("pad_token_id", "tokenizer.ggml.padding_token_id"),
)


def gguf_file(path: PathArg) -> Path | None:
    """The GGUF file a checkpoint path stands for: the file itself when it starts with the GGUF magic,
    or the one ``.gguf`` file of a folder that holds no safetensors (as :func:`modelkin.open` reads
    it); None otherwise."""
    p = Path(path)
    if p.is_file():
        try:
            with p.open("rb") as f:
                return p if f.read(4) == b"GGUF" else None
        except OSError:
            return None
    if not p.is_dir():
        return None
    names = [q.name for q in p.iterdir()]
    if any(n.endswith((".safetensors", ".safetensors.index.json")) for n in names):
        return None
    found = [p / n for n in names if n.endswith(".gguf") and (p / n).is_file()]
    return found[0] if len(found) == 1 else None


class GgufMetadata(Folder):
    """A GGUF file's own metadata, read through the interface of a folder of Hugging Face files:
    ``config.json``, ``tokenizer.json`` and ``tokenizer_config.json`` are built from its keys."""

    def __init__(self, path: Path) -> None:
        self.folder = path
        self.problems = []
        self.present = {}
        self._cache = {}
        self.kv: dict[str, Any] = {}
        try:
            self.kv = _engine.gguf_metadata(path) or {}
        except Exception as e:  # this line of evidence must not stop the weight comparison
            self.problems.append(f"{path}: GGUF metadata cannot be read ({e})")
        self._docs = self._build()

    def text(self, name: str) -> str | None:
        """No plain-text files: everything is in the metadata."""
        return None

    def json(self, name: str, kind: type = dict) -> Any:
        """The Hugging Face file built from the metadata, or None when it holds nothing for it."""
        return self._docs.get(name)

    def _build(self) -> dict[str, Any]:
        kv = self.kv
        arch = kv.get("general.architecture")
        docs: dict[str, Any] = {}
        config: dict[str, Any] = {}
        if isinstance(arch, str):
            config["model_type"] = arch
        for key, gguf_key in _GGUF_CONFIG:
            value = kv.get(gguf_key.format(arch=arch))
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                config[key] = value
        tokens = kv.get("tokenizer.ggml.tokens")
        if not isinstance(tokens, list):
            tokens = []
        if "vocab_size" not in config and tokens:
            config["vocab_size"] = len(tokens)
        if config:
            docs["config.json"] = config
        if tokens:
            vocab: dict[str, int] = {}
            for i, t in enumerate(tokens):
                vocab.setdefault(str(t), i)
            types = kv.get("tokenizer.ggml.token_type")
            types = types if isinstance(types, list) and len(types) == len(tokens) else []
            merges = kv.get("tokenizer.ggml.merges")
            model: dict[str, Any] = {"vocab": vocab}
            if isinstance(merges, list):
                model["merges"] = [str(m) for m in merges]
            docs["tokenizer.json"] = {
                "model": model,
                "added_tokens": [
                    {"id": i, "content": str(tokens[i])}
                    for i, ty in enumerate(types)
                    if ty in _GGUF_ADDED_TYPES
                ],
            }
        tc: dict[str, Any] = {}
        for role, key in _GGUF_SPECIALS:
            tid = kv.get(key)
            if isinstance(tid, int) and 0 <= tid < len(tokens):
                tc[role] = str(tokens[tid])
        template = kv.get("tokenizer.chat_template")
        if isinstance(template, str):
            tc["chat_template"] = template
        if tc:
            docs["tokenizer_config.json"] = tc
        return docs


def source(path: PathArg) -> Folder:
    """What to read a checkpoint's metadata from: its GGUF file's own metadata, or its folder."""
    gguf = gguf_file(path)
    return GgufMetadata(gguf) if gguf is not None else Folder(metadata_folder(path))


def _content(token: Any) -> str | None:
    """A special token as text: a string, or an ``AddedToken``-like dict's ``content``."""
    if isinstance(token, str):
        return token
    if isinstance(token, Mapping) and isinstance(token.get("content"), str):
        c: str = token["content"]
        return c
    return None


@dataclass(frozen=True)
class Tokenizer:
    """What one folder says about its tokenizer."""

    vocab: dict[str, int]  # token → id, added tokens included
    merges: list[str] | None  # "left right", in order
    added: frozenset[tuple[int, str]]  # (id, content) of added tokens
    special: dict[str, Any]  # role → token text (or list of texts)
    sources: tuple[str, ...]


def _merge_text(m: Any) -> str | None:
    if isinstance(m, str):
        return m
    if isinstance(m, Sequence) and len(m) == 2 and all(isinstance(x, str) for x in m):
        return f"{m[0]} {m[1]}"
    return None


def read_tokenizer(f: Folder) -> Tokenizer | None:
    """What a folder (or a GGUF file's metadata) says about its tokenizer; None when nothing."""
    vocab: dict[str, int] = {}
    merges: list[str] | None = None
    added: dict[int, str] = {}
    special: dict[str, Any] = {}
    sources: list[str] = []

    tj = f.json("tokenizer.json")
    if tj is not None:
        sources.append("tokenizer.json")
        model = tj.get("model") if isinstance(tj.get("model"), Mapping) else {}
        raw_vocab = model.get("vocab")
        if isinstance(raw_vocab, Mapping):
            vocab = {str(k): int(v) for k, v in raw_vocab.items() if isinstance(v, int)}
        elif isinstance(raw_vocab, list):  # Unigram: [[piece, score], …], the id is the position
            vocab = {str(e[0]): i for i, e in enumerate(raw_vocab) if isinstance(e, list) and e}
        if isinstance(model.get("merges"), list):
            merges = [t for t in map(_merge_text, model["merges"]) if t is not None]
        for tok in tj.get("added_tokens") or ():
            if (
                isinstance(tok, Mapping)
                and isinstance(tok.get("id"), int)
                and isinstance(tok.get("content"), str)
            ):
                added[tok["id"]] = tok["content"]
    if not vocab:
        vj = f.json("vocab.json")
        if vj is not None:
            sources.append("vocab.json")
            vocab = {str(k): int(v) for k, v in vj.items() if isinstance(v, int)}
    if not vocab:
        vt = f.text("vocab.txt")
        if vt is not None:
            sources.append("vocab.txt")
            vocab = {}
            for i, line in enumerate(vt.splitlines()):
                vocab.setdefault(line.rstrip("\r"), i)
    if merges is None:
        mt = f.text("merges.txt")
        if mt is not None:
            sources.append("merges.txt")
            merges = [line for line in mt.splitlines() if line.strip() and not line.startswith("#version")]
    tc = f.json("tokenizer_config.json")
    if tc is not None:
        sources.append("tokenizer_config.json")
        decoder = tc.get("added_tokens_decoder")
        if isinstance(decoder, Mapping):
            for k, v in decoder.items():
                text = _content(v)
                if text is not None and str(k).isdigit():
                    added.setdefault(int(k), text)
        for role in (
            "bos_token",
            "eos_token",
            "unk_token",
            "pad_token",
            "sep_token",
            "cls_token",
            "mask_token",
        ):
            text = _content(tc.get(role))
            if text is not None:
                special[role] = text
        extra = tc.get("additional_special_tokens")
        if isinstance(extra, list):
            special["additional_special_tokens"] = [t for t in map(_content, extra) if t is not None]
    at = f.json("added_tokens.json")
    if at is not None:
        sources.append("added_tokens.json")
        for k, v in at.items():
            if isinstance(v, int):
                added.setdefault(v, str(k))
    sm = f.json("special_tokens_map.json")
    if sm is not None:
        sources.append("special_tokens_map.json")
        for role, tok in sm.items():
            if isinstance(tok, list):
                special[role] = [t for t in map(_content, tok) if t is not None]
            elif _content(tok) is not None:
                special[role] = _content(tok)
    if not (vocab or merges or added or special):
        return None
    full = dict(vocab)
    for i, text in added.items():
        full.setdefault(text, i)
    if isinstance(f, GgufMetadata):
        sources = ["GGUF metadata"]
    return Tokenizer(full, merges, frozenset(added.items()), special, tuple(sources))


def chat_template(f: Folder) -> str | None:
    """The chat template as one string (named templates serialised in a fixed order), or None."""
    jinja = f.text("chat_template.jinja")
    if jinja is not None:
        return jinja
    for name in ("chat_template.json", "tokenizer_config.json"):
        doc = f.json(name)
        if doc is None:
            continue
        t = doc.get("chat_template")
        if isinstance(t, str):
            return t
        if isinstance(t, list):  # [{"name": …, "template": …}, …]
            return json.dumps(t, sort_keys=True, ensure_ascii=False)
    return None
