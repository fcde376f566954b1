"""Config and tokenizer evidence: what the files beside the weights say about kinship.

The result, :class:`MetadataEvidence`, sets the architecture hyper-parameters side by side, measures
the overlap of the vocabularies (Jaccard of token strings; the share of shared tokens that keep their
id), compares merges (same list in the same order, or their overlap and common prefix), added and
special tokens and the chat template, and lists the SHA-256 of every file and which are
byte-identical. Its ``strength`` grades the kinship evidence:

- ``"none"``: nothing shared beyond what unrelated models share;
- ``"weak"``: identical configs (every Llama-7B-shaped model has the same one), an identical
  vocabulary without merges to compare (BERT's ``vocab.txt`` is reused everywhere), or an identical
  chat template alone;
- ``"moderate"``: the same tokenizer down to the order of its merges, added and special tokens, or a
  tokenizer derived from the other's (vocabulary extended or trimmed with the ids kept, or the merges
  of one a prefix of the other's);
- ``"strong"``: that same tokenizer *and* the same config *and* the same chat template.

Independent models can reuse a popular tokenizer, config and template verbatim, so even "strong"
metadata never decides a verdict on its own: the weights do.

What is read, and how a GGUF checkpoint's own metadata stands in for the files, is in :mod:`modelkin.sidecar`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._types import Strength
from .._util import json_safe, sha256_file
from ..sidecar import (
    KNOWN_FILES,
    GgufMetadata,
    PathArg,
    Tokenizer,
    chat_template,
    metadata_folder,
    read_tokenizer,
    source,
)

__all__ = [
    "METADATA_SCHEMA",
    "STRENGTHS",
    "ConfigComparison",
    "FileHash",
    "MetadataEvidence",
    "TokenizerComparison",
    "compare_metadata",
]


#: Version tag of :meth:`MetadataEvidence.to_dict`.
METADATA_SCHEMA = "modelkin.metadata/1"

#: Grades of :attr:`MetadataEvidence.strength`, weakest first.
STRENGTHS = ("none", "weak", "moderate", "strong")

#: Config keys that record how a file was saved, not what the model is; left out of the comparison.
BOOKKEEPING_KEYS = frozenset(
    {
        "_name_or_path",
        "_commit_hash",
        "transformers_version",
        "torch_dtype",
        "dtype",
        "use_cache",
        "_attn_implementation",
        "attn_implementation",
        "_attn_implementation_autoset",
    }
)

#: Architecture hyper-parameters set side by side when present (nested keys are matched on their last part).
ARCHITECTURE_KEYS = (
    "architectures",
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "max_position_embeddings",
    "hidden_act",
    "rms_norm_eps",
    "layer_norm_eps",
    "layer_norm_epsilon",
    "rope_theta",
    "rope_scaling",
    "tie_word_embeddings",
    "n_embd",
    "n_layer",
    "n_head",
    "n_positions",
    "n_inner",
    "d_model",
    "num_layers",
    "num_heads",
    "num_experts",
    "num_local_experts",
    "num_experts_per_tok",
    "sliding_window",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
)

#: Ids must agree on at least this share of shared tokens for one vocabulary to descend from the other.
_ID_AGREEMENT = 0.99

#: ... over at least this many shared tokens, and this Jaccard overlap.
_MIN_SHARED = 1000

_MIN_JACCARD = 0.5

#: Merges of one tokenizer are taken to extend the other's when they share this share of the shorter list
#: as a common prefix (and at least _MIN_SHARED merges).
_PREFIX_SHARE = 0.9


def _flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (``text_config.hidden_size``); lists and scalars kept as values."""
    out: dict[str, Any] = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v and k != "rope_scaling":
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _relevant(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in _flatten(cfg).items() if k.rsplit(".", 1)[-1] not in BOOKKEEPING_KEYS}


@dataclass(frozen=True)
class ConfigComparison:
    """Two ``config.json`` files, key by key (nested keys dotted; bookkeeping keys left out)."""

    side_by_side: Mapping[str, tuple[Any, Any]]  # architecture hyper-parameters: key → (A's, B's)
    differing: tuple[str, ...]  # keys present in both with different values
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]
    compared: int  # keys compared

    @property
    def equal(self) -> bool:
        """Whether the configs agree on every key (bookkeeping aside)."""
        return not (self.differing or self.only_a or self.only_b)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        return {
            "equal": self.equal,
            "side_by_side": {k: list(v) for k, v in self.side_by_side.items()},
            "differing": list(self.differing),
            "only_a": list(self.only_a),
            "only_b": list(self.only_b),
            "compared": self.compared,
        }


def _same(x: Any, y: Any, approx: bool) -> bool:
    """Equal values; with ``approx``, floats that agree to f32 precision (GGUF stores f32)."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
    if approx and numbers:
        return math.isclose(float(x), float(y), rel_tol=1e-6, abs_tol=0.0)
    return bool(x == y)


def _compare_configs(a: Mapping[str, Any], b: Mapping[str, Any], gguf: bool = False) -> ConfigComparison:
    """Two configs key by key. With ``gguf`` (either side comes from a GGUF file, which holds only part
    of a config) only the keys both hold are compared, floats to f32 precision."""
    fa, fb = _relevant(a), _relevant(b)
    if gguf:
        both = fa.keys() & fb.keys()
        fa = {k: v for k, v in fa.items() if k in both}
        fb = {k: v for k, v in fb.items() if k in both}
    arch = set(ARCHITECTURE_KEYS)
    side = {
        k: (fa.get(k), fb.get(k))
        for k in sorted(fa.keys() | fb.keys(), key=lambda k: (k.count("."), k))
        if k.rsplit(".", 1)[-1] in arch
    }
    both = fa.keys() & fb.keys()
    return ConfigComparison(
        side_by_side=side,
        differing=tuple(sorted(k for k in both if not _same(fa[k], fb[k], gguf))),
        only_a=tuple(sorted(fa.keys() - fb.keys())),
        only_b=tuple(sorted(fb.keys() - fa.keys())),
        compared=len(fa.keys() | fb.keys()),
    )


@dataclass(frozen=True)
class TokenizerComparison:
    """Two tokenizers: vocabulary overlap, merges, added and special tokens."""

    vocab_a: int  # tokens (added tokens included)
    vocab_b: int
    shared_tokens: int
    jaccard: float  # |shared| / |union| of token strings (NaN if both vocabularies are empty)
    id_agreement: float  # share of shared tokens with the same id in both (NaN if none shared)
    merges_a: int | None  # merges (None: no merges to compare)
    merges_b: int | None
    merges_identical: bool | None  # the same merges in the same order
    merges_jaccard: float | None  # overlap of the merge sets, order aside
    merges_common_prefix: int | None  # leading merges identical, in order
    added_tokens_equal: bool  # the same (id, content) added tokens
    special_tokens_equal: bool  # the same special-token roles and texts
    sources_a: tuple[str, ...] = ()
    sources_b: tuple[str, ...] = ()

    @property
    def vocab_identical(self) -> bool:
        """Every token in both, with the same id."""
        return self.vocab_a == self.vocab_b == self.shared_tokens and self.id_agreement == 1.0

    @property
    def identical(self) -> bool:
        """Same vocabulary and ids, same merges in the same order (where any), same added and special
        tokens."""
        return (
            self.vocab_identical
            and self.merges_identical is not False
            and self.added_tokens_equal
            and self.special_tokens_equal
        )

    @property
    def derived(self) -> bool:
        """One vocabulary extends or trims the other's with the ids kept, or one merge list extends the
        other's."""
        ids_kept = (
            self.shared_tokens >= _MIN_SHARED
            and self.jaccard >= _MIN_JACCARD
            and self.id_agreement >= _ID_AGREEMENT
        )
        prefix = False
        if self.merges_a and self.merges_b and self.merges_common_prefix is not None:
            shorter = min(self.merges_a, self.merges_b)
            prefix = self.merges_common_prefix >= max(_MIN_SHARED, _PREFIX_SHARE * shorter)
        return ids_kept or prefix

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        out: dict[str, Any] = json_safe(
            {
                "vocab_a": self.vocab_a,
                "vocab_b": self.vocab_b,
                "shared_tokens": self.shared_tokens,
                "jaccard": self.jaccard,
                "id_agreement": self.id_agreement,
                "vocab_identical": self.vocab_identical,
                "merges_a": self.merges_a,
                "merges_b": self.merges_b,
                "merges_identical": self.merges_identical,
                "merges_jaccard": self.merges_jaccard,
                "merges_common_prefix": self.merges_common_prefix,
                "added_tokens_equal": self.added_tokens_equal,
                "special_tokens_equal": self.special_tokens_equal,
                "identical": self.identical,
                "derived": self.derived,
                "sources_a": list(self.sources_a),
                "sources_b": list(self.sources_b),
            }
        )
        return out


def _compare_tokenizers(a: Tokenizer, b: Tokenizer) -> TokenizerComparison:
    shared = a.vocab.keys() & b.vocab.keys()
    union = len(a.vocab.keys() | b.vocab.keys())
    same_id = sum(1 for t in shared if a.vocab[t] == b.vocab[t])
    ma, mb = a.merges, b.merges
    merges_identical = merges_jaccard = prefix = None
    if ma is not None and mb is not None:
        merges_identical = ma == mb
        sa, sb = set(ma), set(mb)
        merges_jaccard = len(sa & sb) / len(sa | sb) if sa | sb else math.nan
        prefix = 0
        for x, y in zip(ma, mb):
            if x != y:
                break
            prefix += 1
    elif (ma is None) != (mb is None):
        merges_identical = False
    return TokenizerComparison(
        vocab_a=len(a.vocab),
        vocab_b=len(b.vocab),
        shared_tokens=len(shared),
        jaccard=len(shared) / union if union else math.nan,
        id_agreement=same_id / len(shared) if shared else math.nan,
        merges_a=len(ma) if ma is not None else None,
        merges_b=len(mb) if mb is not None else None,
        merges_identical=merges_identical,
        merges_jaccard=merges_jaccard,
        merges_common_prefix=prefix,
        added_tokens_equal=a.added == b.added,
        special_tokens_equal=a.special == b.special,
        sources_a=a.sources,
        sources_b=b.sources,
    )


@dataclass(frozen=True)
class FileHash:
    """One metadata file in either folder: its SHA-256 on each side (None where absent)."""

    name: str
    sha256_a: str | None
    sha256_b: str | None

    @property
    def identical(self) -> bool:
        """Present in both folders, byte for byte the same."""
        return self.sha256_a is not None and self.sha256_a == self.sha256_b

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready fields."""
        return {
            "name": self.name,
            "sha256_a": self.sha256_a,
            "sha256_b": self.sha256_b,
            "identical": self.identical,
        }


@dataclass(frozen=True)
class MetadataEvidence:
    """What the configs, tokenizers and chat templates beside two checkpoints say about kinship."""

    folder_a: str
    folder_b: str
    files: tuple[FileHash, ...]  # every known file present in either folder
    config: ConfigComparison | None  # None unless both have a readable config.json
    generation_config_equal: bool | None  # None unless both have one
    tokenizer: TokenizerComparison | None  # None unless both have tokenizer files
    chat_template_equal: bool | None  # None unless both have a chat template
    strength: Strength  # one of STRENGTHS
    reasons: tuple[str, ...]  # what the grade rests on
    problems: tuple[str, ...] = field(default_factory=tuple)  # unreadable or malformed files

    @property
    def identical_files(self) -> tuple[str, ...]:
        """The files byte-identical in both folders."""
        return tuple(f.name for f in self.files if f.identical)

    @property
    def sentence(self) -> str:
        """The finding in one sentence, with its weight as evidence."""
        grade = {
            "none": "no kinship evidence",
            "weak": "weak kinship evidence",
            "moderate": "moderate kinship evidence",
            "strong": "strong kinship evidence",
        }[self.strength]
        why = "; ".join(self.reasons) if self.reasons else "no config or tokenizer files to compare"
        tail = (
            " Unrelated models can share these files, so this never decides a verdict on its own."
            if self.strength != "none"
            else ""
        )
        return f"Configs and tokenizers: {grade} ({why}).{tail}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with a versioned schema tag (``"schema": "modelkin.metadata/1"``)."""
        out: dict[str, Any] = json_safe(
            {
                "schema": METADATA_SCHEMA,
                "folder_a": self.folder_a,
                "folder_b": self.folder_b,
                "strength": self.strength,
                "sentence": self.sentence,
                "reasons": list(self.reasons),
                "files": [f.to_dict() for f in self.files],
                "identical_files": list(self.identical_files),
                "config": self.config.to_dict() if self.config else None,
                "generation_config_equal": self.generation_config_equal,
                "tokenizer": self.tokenizer.to_dict() if self.tokenizer else None,
                "chat_template_equal": self.chat_template_equal,
                "problems": list(self.problems),
            }
        )
        return out


def _grade(
    config: ConfigComparison | None,
    tok: TokenizerComparison | None,
    template_equal: bool | None,
) -> tuple[Strength, list[str]]:
    """The strength of the metadata evidence and the reasons for it."""
    reasons: list[str] = []
    if config is not None:
        if config.equal:
            reasons.append(
                f"configs identical on {config.compared} keys, as in any two models of one architecture"
            )
        else:
            keys = [*config.differing, *config.only_a, *config.only_b]
            more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
            reasons.append(f"configs differ in {', '.join(keys[:5])}{more}")
    # Merges in the same order are what makes a BPE tokenizer specific: without them (WordPiece's
    # vocab.txt, SentencePiece) a shared vocabulary is a widely reused file and counts for less.
    has_merges = tok is not None and bool(tok.merges_a) and bool(tok.merges_b)
    tok_full = tok is not None and has_merges and tok.identical
    tok_derived = tok is not None and has_merges and not tok_full and tok.derived
    tok_plain = tok is not None and not has_merges and (tok.identical or tok.derived)
    if tok is not None:
        if tok_full:
            reasons.append(
                f"tokenizers identical: {tok.vocab_a} tokens with the same ids, the same {tok.merges_a} "
                "merges in the same order, the same added and special tokens"
            )
        elif tok_plain and tok.identical:
            reasons.append(f"vocabularies identical ({tok.vocab_a} tokens, same ids; no merges to compare)")
        elif tok_derived or tok_plain:
            reasons.append(
                f"one tokenizer derives from the other: {tok.shared_tokens} shared tokens "
                f"(Jaccard {tok.jaccard:.3f}), {100 * tok.id_agreement:.1f}% keep their id"
                + (
                    f", first {tok.merges_common_prefix} merges in the same order"
                    if tok.merges_common_prefix
                    else ""
                )
            )
        elif not (tok.vocab_a and tok.vocab_b):
            reasons.append("no vocabulary on both sides to compare")
        elif tok.shared_tokens:
            reasons.append(
                f"tokenizers differ: vocabulary Jaccard {tok.jaccard:.3f}, "
                f"{100 * tok.id_agreement:.1f}% of shared tokens keep their id"
            )
        else:
            reasons.append("tokenizers share no token")
    if template_equal is not None:
        reasons.append("chat templates identical" if template_equal else "chat templates differ")
    config_same = config is not None and config.equal
    if tok_full and config_same and template_equal:
        return "strong", reasons
    if tok_full or tok_derived or (tok_plain and config_same):
        return "moderate", reasons
    if config_same or tok_plain or template_equal:
        return "weak", reasons
    return "none", reasons


def compare_metadata(folder_a: PathArg, folder_b: PathArg) -> MetadataEvidence:
    """Compares the config, tokenizer and chat-template files beside two checkpoints.

    ``folder_a``/``folder_b`` are checkpoint folders, or checkpoint files (their folder is used); a
    GGUF checkpoint is read from its own metadata (see the module docstring).
    Absent files are simply not compared; malformed ones are listed in ``problems`` (this line of
    evidence must not stop the weight comparison). A missing path is a ``FileNotFoundError``.
    """
    metadata_folder(folder_a), metadata_folder(folder_b)  # a missing path is a FileNotFoundError
    try:
        return _compare_metadata(folder_a, folder_b)
    except Exception as e:  # a hostile file beside the weights must never stop the weight comparison
        why = f"{folder_a}, {folder_b}: files beside the weights not compared ({type(e).__name__}: {e})"
        return MetadataEvidence(str(folder_a), str(folder_b), (), None, None, None, None, "none", (), (why,))


def _compare_metadata(folder_a: PathArg, folder_b: PathArg) -> MetadataEvidence:
    """:func:`compare_metadata` once both paths are known to exist."""
    fa, fb = source(folder_a), source(folder_b)
    files = tuple(
        FileHash(
            name,
            sha256_file(fa.present[name]) if name in fa.present else None,
            sha256_file(fb.present[name]) if name in fb.present else None,
        )
        for name in KNOWN_FILES
        if name in fa.present or name in fb.present
    )
    ca, cb = fa.json("config.json"), fb.json("config.json")
    gguf = isinstance(fa, GgufMetadata) or isinstance(fb, GgufMetadata)
    config = _compare_configs(ca, cb, gguf) if ca is not None and cb is not None else None
    ga, gb = fa.json("generation_config.json"), fb.json("generation_config.json")
    generation = _relevant(ga) == _relevant(gb) if ga is not None and gb is not None else None
    ta, tb = read_tokenizer(fa), read_tokenizer(fb)
    tok = _compare_tokenizers(ta, tb) if ta is not None and tb is not None else None
    ha, hb = chat_template(fa), chat_template(fb)
    template = ha == hb if ha is not None and hb is not None else None
    strength, reasons = _grade(config, tok, template)
    return MetadataEvidence(
        folder_a=str(fa.folder),
        folder_b=str(fb.folder),
        files=files,
        config=config,
        generation_config_equal=generation,
        tokenizer=tok,
        chat_template_equal=template,
        strength=strength,
        reasons=tuple(reasons),
        problems=tuple(fa.problems + fb.problems),
    )
