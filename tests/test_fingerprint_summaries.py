"""Fingerprint format 2: tensor digests, sorted row/column norms, per-layer profiles and token-keyed
embedding rows, each checked against a numpy/hashlib reference, and what comparisons of fingerprints
make of them (renamed copies, partial copies, permuted units, changed vocabularies, independent
controls)."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import derive
import modelkin
import numpy as np
import pytest
from modelkin.compare import compare_fingerprints
from modelkin.evidence.profiles import compare_profiles, layer_profiles
from modelkin.evidence.tokens import columns_for, token_key
from modelkin.fingerprint import FORMAT, QUANTILES, load
from modelkin.verdict import KIN_LOG10_P
from models import llama_state
from safetensors.numpy import load_file, save_file

DATA = Path(__file__).resolve().parent / "data"
PIECE = 1 << 20
WORDS = [f"w{i:04d}" for i in range(derive.SHAPE.vocab)]


def reference_digest(data: bytes) -> str:
    """SHA-256 over the SHA-256 digests of the 1 MiB pieces (the format's definition)."""
    pieces = b"".join(hashlib.sha256(data[i : i + PIECE]).digest() for i in range(0, len(data), PIECE))
    return hashlib.sha256(pieces).hexdigest()


def write_model(folder: Path, state: dict[str, np.ndarray], words: list[str] | None = None) -> Path:
    """A model folder: ``model.safetensors`` and, given ``words``, a ``tokenizer.json`` (id = position)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(folder / "model.safetensors"))
    if words is not None:
        vocab = {w: i for i, w in enumerate(words)}
        (folder / "tokenizer.json").write_text(
            json.dumps({"model": {"type": "BPE", "vocab": vocab, "merges": []}})
        )
    return folder


# -- the summaries against references ---------------------------------------------------------------------


def test_tensor_digests_are_sha256_of_piece_digests_whatever_the_threads(tmp_path: Path) -> None:
    import ml_dtypes

    rng = np.random.default_rng(3)
    state = {
        "big": rng.standard_normal((700, 500)).astype(np.float32),  # 1.4 MB: two pieces, one short
        "exact": rng.standard_normal((512, 512)).astype(np.float32),  # exactly one piece
        "half": rng.standard_normal((300, 7)).astype(ml_dtypes.bfloat16),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "scalar": np.array(1.5, dtype=np.float64),
    }
    path = tmp_path / "m.safetensors"
    save_file(state, str(path))
    one = modelkin.fingerprint(path, threads=1)
    two = modelkin.fingerprint(path, threads=2)
    for name, array in state.items():
        want = reference_digest(array.tobytes())
        assert one[name].digest == want == two[name].digest, name
    assert one["empty"].digest == hashlib.sha256(b"".join([])).hexdigest()


def test_row_and_column_norm_quantiles_are_numpy_s(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    state = {
        "tall": (rng.standard_normal((300, 40)) * np.linspace(0.1, 2, 40)).astype(np.float32),
        "small": rng.standard_normal((20, 90)).astype(np.float32),
        "cube": rng.standard_normal((5, 6, 7)).astype(np.float32),  # rows of 6 × 7
        "vector": rng.standard_normal(50).astype(np.float32),
    }
    path = tmp_path / "m.safetensors"
    save_file(state, str(path))
    fp = modelkin.fingerprint(path)
    for name in ("tall", "small", "cube"):
        x = state[name].astype(np.float64).reshape(state[name].shape[0], -1)
        t = fp[name]
        assert t.row_norms is not None and t.col_norms is not None
        for got, norms in (
            (t.row_norms, np.linalg.norm(x, axis=1)),
            (t.col_norms, np.linalg.norm(x, axis=0)),
        ):
            want = (
                np.sort(norms)
                if norms.size <= QUANTILES
                else np.quantile(norms, np.linspace(0, 1, QUANTILES))
            )
            np.testing.assert_allclose(got, want, rtol=2e-7)
    assert fp["vector"].row_norms is None
    # The row and column means of the sampled positions still come out of the same pass.
    t = fp["tall"]
    assert t.row_mean is not None and t.row_mean.size == t.sample.size


def test_per_layer_profiles_are_the_per_tensor_moments(tmp_path: Path) -> None:
    a, b = derive.base(0, derive.SHAPE6), derive.base(1, derive.SHAPE6)
    # A depth-scaled recipe: the std of o_proj falls with depth in both independent models.
    for state in (a, b):
        for i in range(derive.SHAPE6.layers):
            state[f"model.layers.{i}.self_attn.o_proj.weight"] *= np.float32(1 / math.sqrt(2 * (i + 1)))
    fa = modelkin.fingerprint(write_model(tmp_path / "a", a))
    fb = modelkin.fingerprint(write_model(tmp_path / "b", b))
    prof = layer_profiles([(t.name, t.stats) for t in fa.tensors])
    o = prof["layers.*.self_attn.o_proj.weight"]
    assert sorted(o) == list(range(6))
    for i, s in o.items():
        w = a[f"model.layers.{i}.self_attn.o_proj.weight"].astype(np.float64)
        assert s.std == pytest.approx(w.std(), rel=1e-9)
        assert s.l2_norm == pytest.approx(np.linalg.norm(w), rel=1e-9)
    cmp = compare_profiles([(t.name, t.stats) for t in fa.tensors], [(t.name, t.stats) for t in fb.tensors])
    assert cmp is not None
    kind = next(k for k in cmp.kinds if k.kind == "layers.*.self_attn.o_proj.weight")
    assert kind.r_std == pytest.approx(np.corrcoef(kind.std_a, kind.std_b)[0, 1], abs=1e-12)
    # The weakness, stated: independent models of one recipe correlate almost perfectly ...
    assert kind.r_std > 0.99
    res = modelkin.compare(fa, fb)
    # ... and the verdict ignores it.
    assert res.verdict.relation == "independent" and res.profiles is not None
    assert "descriptive only" in res.profiles.sentence


def test_token_keyed_rows_are_the_embedding_values_at_fixed_columns(tmp_path: Path) -> None:
    state = derive.base(0)
    words = [*WORDS[:1000], "é", "日本", "\u0120the", *WORDS[1003:]]
    fp = modelkin.fingerprint(write_model(tmp_path / "m", state, words))
    assert fp.tokens is not None and fp.tokens.ids.size == len(words)
    assert fp.tokens.keys[1001] == token_key("日本")
    assert token_key("日本") == int.from_bytes(
        hashlib.blake2b("日本".encode(), digest_size=8).digest(), "little"
    )
    keyed = sorted(t.name for t in fp.tensors if t.token_values is not None)
    assert keyed == ["lm_head.weight", "model.embed_tokens.weight"]
    t = fp["model.embed_tokens.weight"]
    cols = columns_for(derive.SHAPE.hidden)
    assert t.token_columns == tuple(cols) and len(cols) == 8
    want = state["model.embed_tokens.weight"][:, cols].astype(np.float16).astype(np.float64)
    np.testing.assert_array_equal(t.token_values, want)
    # Saved and loaded unchanged; without a tokenizer there are none.
    again = load(fp.save(tmp_path / "m.mkfp"))
    np.testing.assert_array_equal(again["model.embed_tokens.weight"].token_values, want)
    assert again.tokens is not None and np.array_equal(again.tokens.keys, fp.tokens.keys)
    bare = modelkin.fingerprint(write_model(tmp_path / "bare", state))
    assert bare.tokens is None and all(t.token_values is None for t in bare.tensors)


def test_a_version_1_fingerprint_still_loads_and_compares(tmp_path: Path) -> None:
    v1 = load(DATA / "tiny-v1.mkfp")  # written by modelkin's format-1 code from models.llama_state(seed=0)
    assert v1.version == 1 and all(t.digest is None and t.row_norms is None for t in v1.tensors)
    model = write_model(tmp_path / "m", llama_state(seed=0))
    v2 = modelkin.fingerprint(model, sample_size=v1.sample_size)
    assert v2.version == 2
    with_v1 = modelkin.compare(v1, v2)
    assert with_v1.verdict.relation == "identical", with_v1.verdict.sentence
    assert with_v1.prints is not None and with_v1.prints.digests_compared == 0
    assert any("version-1" in n for n in with_v1.prints.not_run)
    assert modelkin.compare(v1, model).verdict.relation == "identical"


# -- digests in comparisons ---------------------------------------------------------------------------------


def test_a_renamed_exact_copy_is_found_bit_identical_from_fingerprints_alone(tmp_path: Path) -> None:
    base = derive.base(0)
    child, mapping = derive.renamed(base, seed=5)
    fa = modelkin.fingerprint(write_model(tmp_path / "a", base))
    fb = modelkin.fingerprint(write_model(tmp_path / "b", child))
    res = compare_fingerprints(fa, fb)
    assert res.verdict.relation == "identical", res.verdict.sentence
    assert res.prints is not None
    # Every tensor whose content is unique on each side is paired by its digest, 1-D gains included.
    pairs = dict(res.prints.identical)
    unique = [n for n in base if sum(np.array_equal(base[n], v) for v in base.values()) == 1]
    assert all(pairs[n] == mapping[n] for n in unique)
    assert any("bit-identical" in n and "under another name" in n for n in res.verdict.notes)


def test_a_partial_copy_says_which_tensors_are_byte_identical(tmp_path: Path) -> None:
    base, other = derive.base(0), derive.base(7)
    child = dict(base)
    for k in base:
        if k.startswith(("model.layers.2.", "model.layers.3.")):
            child[k] = other[k]
    res = modelkin.compare(
        modelkin.fingerprint(write_model(tmp_path / "a", base)),
        modelkin.fingerprint(write_model(tmp_path / "b", child)),
    )
    assert res.verdict.relation == "partial_copy", res.verdict.sentence
    assert res.prints is not None
    same = {a for a, _ in res.prints.identical}
    assert same == {k for k in base if not k.startswith(("model.layers.2.", "model.layers.3."))}
    assert res.verdict.replaced == ("layer 2", "layer 3")


def test_a_change_between_the_sampled_positions_is_seen_by_the_digest(tmp_path: Path) -> None:
    base = derive.base(0)
    fa = modelkin.fingerprint(write_model(tmp_path / "a", base))
    name = "model.layers.1.mlp.up_proj.weight"
    child = {k: v.copy() for k, v in base.items()}
    flat = child[name].reshape(-1)
    sampled = set(np.flatnonzero(np.isin(base[name].reshape(-1), fa[name].sample)))
    i = next(j for j in range(flat.size) if j not in sampled)
    flat[i] += np.float32(0.5)
    fb = modelkin.fingerprint(write_model(tmp_path / "b", child))
    assert np.array_equal(fa[name].sample, fb[name].sample)  # the samples cannot tell
    res = compare_fingerprints(fa, fb)
    assert res.verdict.relation != "identical", res.verdict.sentence
    e = next(e for e in res.evidence if e.pairing.a == name)
    assert e.kind != "identical" and e.related
    assert res.prints is not None and (name, name) not in res.prints.identical


# -- norm spectra, token rows and independent controls ---------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four independently trained controls (tests/support/derive.py), each with the same tokenizer."""
    d = tmp_path_factory.mktemp("trained")
    return [
        write_model(d / f"t{k}", derive.independently_trained(201 + k, 1 + k)[0], WORDS) for k in range(4)
    ]


def test_a_permuted_copy_has_norm_spectra_that_agree_within_the_noise(
    trained: list[Path], tmp_path: Path
) -> None:
    base = load_file(str(trained[0] / "model.safetensors"))
    child, _ = derive.neurons_permuted(base, seed=7, sigma=1e-3)
    fa = modelkin.fingerprint(trained[0])
    fb = modelkin.fingerprint(write_model(tmp_path / "perm", child, WORDS))
    for a, b in ((fa, fb), (fb, fa)):
        res = modelkin.compare(a, b)
        assert res.verdict.related, res.verdict.sentence
        assert res.prints is not None
        mlp = [c for c in res.prints.spectra if ".mlp." in c.a]
        assert len(mlp) == 3 * derive.SHAPE.layers
        assert all(c.consistent for c in mlp), [(c.a, c.rows_dev, c.cols_dev) for c in mlp]
        assert any("consistent with hidden units permuted" in n for n in res.verdict.notes)
    # A matrix replaced, not permuted, has a spectrum that disagrees beyond the noise.
    swapped = dict(child)
    swapped["model.layers.0.mlp.up_proj.weight"] = child["model.layers.0.mlp.up_proj.weight"] * np.float32(
        1.3
    )
    res = modelkin.compare(fa, modelkin.fingerprint(write_model(tmp_path / "swapped", swapped, WORDS)))
    assert res.prints is not None
    up = next(c for c in res.prints.spectra if c.a == "model.layers.0.mlp.up_proj.weight")
    assert up.consistent is False


def vocab_changed(
    state: dict[str, np.ndarray], seed: int, extra: int = 300
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Rows of the embedding and LM head (and the tokenizer's ids) shuffled, ``extra`` new tokens added."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(WORDS))
    words = [WORDS[i] for i in perm] + [f"new{i}" for i in range(extra)]
    out = dict(state)
    for k in ("model.embed_tokens.weight", "lm_head.weight"):
        v = state[k][perm]
        out[k] = np.concatenate([v, (rng.standard_normal((extra, v.shape[1])) * 0.02).astype(v.dtype)])
    return out, words


def test_a_child_with_a_changed_vocabulary_is_recognised_through_token_rows(
    trained: list[Path], tmp_path: Path
) -> None:
    base = load_file(str(trained[0] / "model.safetensors"))
    fa = modelkin.fingerprint(trained[0])
    tuned, _ = derive.fine_tuned(base, seed=5)
    state, words = vocab_changed(tuned, seed=3)
    child = write_model(tmp_path / "child", state, words)
    res = modelkin.compare(fa, modelkin.fingerprint(child))
    assert res.verdict.related, res.verdict.sentence
    by_tokens = [e for e in res.evidence if e.pairing.method == "tokens"]
    assert sorted(e.pairing.a for e in by_tokens) == ["lm_head.weight", "model.embed_tokens.weight"]
    assert all(e.related and e.log10_p < -20 for e in by_tokens), [
        (e.pairing.a, e.log10_p) for e in by_tokens
    ]
    assert res.verdict.vocab_rows == (1024, 1324)
    assert res.prints is not None and {t.shared for t in res.prints.tokens} == {1024}
    # The embedding alone, rows shuffled: position by position it looks unrelated; by token it is a copy.
    only = {
        k: (v if k in ("model.embed_tokens.weight", "lm_head.weight") else derive.base(9)[k])
        for k, v in state.items()
    }
    alone = modelkin.compare(fa, modelkin.fingerprint(write_model(tmp_path / "alone", only, words)))
    assert alone.verdict.related and set(alone.verdict.shared) == {
        "lm_head.weight",
        "model.embed_tokens.weight",
    }
    # Without the tokenizer the test cannot run, and the report says why.
    blind = modelkin.compare(fa, modelkin.fingerprint(child, tokens=False))
    assert blind.prints is not None and not blind.prints.tokens
    assert any("token-keyed" in n and "no tokenizer" in n for n in blind.prints.not_run)


def test_independent_trained_controls_are_never_kin_on_the_new_evidence(trained: list[Path]) -> None:
    prints = [modelkin.fingerprint(p) for p in trained]
    for fa, fb in itertools.permutations(prints, 2):
        res = compare_fingerprints(fa, fb)
        assert not res.verdict.related, res.verdict.sentence
        assert res.prints is not None and not res.prints.identical
        # The token rows share frequent-token structure, not weights.
        assert all(t.log10_p > KIN_LOG10_P for t in res.prints.tokens), res.prints.tokens
        # No noise level to judge the spectra against: never called consistent.
        assert all(c.consistent is None for c in res.prints.spectra)
    # Their vocabularies reordered: aligned by token, still independent.
    state, words = vocab_changed(load_file(str(trained[1] / "model.safetensors")), seed=4)
    shuffled = modelkin.fingerprint(write_model(trained[1].parent / "shuffled", state, words))
    res = compare_fingerprints(prints[0], shuffled)
    assert not res.verdict.related, res.verdict.sentence
    assert res.prints is not None and len(res.prints.tokens) == 2


def test_identify_finds_a_layer_copied_under_another_name_through_its_digest(tmp_path: Path) -> None:
    base, other = derive.base(0), derive.base(8)
    suspect = dict(other)
    suspect["model.layers.0.mlp.up_proj.weight"] = base["model.layers.2.mlp.up_proj.weight"]
    reg = modelkin.Registry(tmp_path / "r.sqlite")
    reg.add(write_model(tmp_path / "base", base), "base")
    reg.add(write_model(tmp_path / "other", derive.base(9)), "other")
    matches = reg.identify(write_model(tmp_path / "suspect", suspect))
    assert matches[0].name == "base" and matches[0].related and not matches[0].screened_out, matches
    assert not matches[1].related


def test_compare_prints_the_profile_line_and_json_carries_the_new_fields(tmp_path: Path) -> None:
    a = write_model(tmp_path / "a", derive.base(0), WORDS)
    fp = modelkin.fingerprint(a).save(tmp_path / "a.mkfp")
    run = [sys.executable, "-m", "modelkin.cli"]
    out = subprocess.run([*run, "compare", str(fp), str(a)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "Per-layer profiles (descriptive)" in out.stdout
    js = json.loads(
        subprocess.run(
            [*run, "compare", str(fp), str(a), "--json"], capture_output=True, text=True, check=True
        ).stdout
    )
    assert js["profiles"]["kinds"] and js["fingerprints"]["identical"]
    printed = subprocess.run(
        [*run, "fingerprint", str(a), "-o", str(tmp_path / "b.mkfp"), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(printed.stdout)
    assert info["format"] == FORMAT and info["token_keyed"] == 2
