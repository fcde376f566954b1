"""Fingerprints and the registry: compact, versioned, usable on either side of ``compare``, and
``identify`` ranks a suspect's ancestor first without calling unrelated models kin."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import modelkin
import numpy as np
import pytest
from modelkin.demo import DemoShape, llama_like
from modelkin.fingerprint import FORMAT, is_fingerprint
from safetensors import safe_open
from safetensors.numpy import save_file

SHAPE = DemoShape(vocab=1024, hidden=128, intermediate=344, layers=4, heads=4, kv_heads=2)


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A base, a noised copy, a bf16 cast, a fine-tune-like child and two unrelated models."""
    import ml_dtypes

    d = tmp_path_factory.mktemp("family")
    base = llama_like(SHAPE, seed=0)
    rng = np.random.default_rng(1)
    models = {
        "base": base,
        "noised": {k: (v + rng.normal(0, 1.4e-3, v.shape)).astype(np.float32) for k, v in base.items()},
        "bf16": {k: v.astype(ml_dtypes.bfloat16) for k, v in base.items()},
        "tuned": {
            k: (v + (0.3 * v.std() * rng.standard_t(3, v.shape) * (rng.random(v.shape) < 0.05))).astype(
                np.float32
            )
            for k, v in base.items()
        },
        "other1": llama_like(SHAPE, seed=11),
        "other2": llama_like(SHAPE, seed=12),
    }
    out = {}
    for name, state in models.items():
        out[name] = d / f"{name}.safetensors"
        save_file(state, str(out[name]))
    return out


def test_a_fingerprint_is_small_versioned_and_reloads_identically(
    family: dict[str, Path], tmp_path: Path
) -> None:
    fp = modelkin.fingerprint(family["base"])
    path = fp.save(tmp_path / "base.mkfp")
    assert is_fingerprint(path) and not is_fingerprint(family["base"])
    with safe_open(str(path), framework="np") as f:
        header = json.loads(f.metadata()["modelkin_fingerprint"])
    assert header["format"] == FORMAT
    n_tensors = len(modelkin.open(family["base"]).tensors)
    assert len(header["tensors"]) == n_tensors
    assert path.stat().st_size < 20_000 * n_tensors  # ~16 KB per tensor at 2048 samples
    again = modelkin.load_fingerprint(path)
    assert again.sample_size == fp.sample_size
    for t, u in zip(fp.tensors, again.tensors):
        assert (t.name, t.shape, t.dtype) == (u.name, u.shape, u.dtype)
        assert np.array_equal(t.sample, u.sample)
        assert t.stats == u.stats
    assert [f["sha256"] for f in again.files] == [f["sha256"] for f in fp.files]


def test_fingerprint_statistics_are_the_exact_ones(family: dict[str, Path]) -> None:
    fp = modelkin.fingerprint(family["base"])
    full = {t.name: t.stats for t in modelkin.inspect(family["base"]).tensors}
    for t in fp.tensors:
        assert t.stats.count == full[t.name].count
        assert t.stats.mean == pytest.approx(full[t.name].mean, rel=1e-12, abs=1e-15)
        assert t.stats.std == pytest.approx(full[t.name].std, rel=1e-12)


@pytest.mark.parametrize(
    ("child", "relation"),
    [("noised", "noised_copy"), ("bf16", "cast_copy"), ("base", "identical"), ("tuned", "fine_tune")],
)
def test_compare_runs_on_a_fingerprint_on_either_side(
    family: dict[str, Path], tmp_path: Path, child: str, relation: str
) -> None:
    fa = modelkin.fingerprint(family["base"]).save(tmp_path / "a.mkfp")
    fb = modelkin.fingerprint(family[child]).save(tmp_path / "b.mkfp")
    for a, b in ((fa, fb), (fa, family[child]), (family["base"], fb)):
        res = modelkin.compare(a, b)
        assert res.verdict.relation == relation, (a, b, res.verdict.sentence)
        assert any("fingerprints" in n for n in res.verdict.notes)
    if child == "noised":
        sigma = modelkin.compare(fa, fb).verdict.sigma
        assert sigma is not None and abs(sigma - 1.4e-3) / 1.4e-3 < 0.05


def test_unrelated_fingerprints_are_independent(family: dict[str, Path]) -> None:
    res = modelkin.compare(modelkin.fingerprint(family["other1"]), modelkin.fingerprint(family["other2"]))
    assert not res.verdict.related, res.verdict.sentence


def test_fingerprints_of_other_sample_sizes_are_refused(family: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="sample"):
        modelkin.compare(
            modelkin.fingerprint(family["base"], sample_size=1024), modelkin.fingerprint(family["base"])
        )


def test_a_file_that_is_not_a_fingerprint_is_refused_with_its_name(tmp_path: Path) -> None:
    bad = tmp_path / "x.mkfp"
    bad.write_bytes(b"not a fingerprint")
    with pytest.raises(ValueError, match=r"x\.mkfp"):
        modelkin.load_fingerprint(bad)


def test_identify_ranks_the_ancestor_first_and_calls_no_stranger_kin(
    family: dict[str, Path], tmp_path: Path
) -> None:
    reg = modelkin.Registry(tmp_path / "reg.sqlite")
    for name in ("base", "other1", "other2"):
        reg.add(family[name], name)
    assert [e.name for e in reg.list()] == ["base", "other1", "other2"]
    with pytest.raises(ValueError, match="already registered"):
        reg.add(family["base"], "base")
    for suspect, relation in (("noised", "noised_copy"), ("bf16", "cast_copy"), ("tuned", "fine_tune")):
        matches = reg.identify(family[suspect])
        assert matches[0].name == "base" and matches[0].relation == relation, matches
        assert matches[0].log10_p < -100
        assert all(not m.related for m in matches[1:]), matches
        assert all(math.isfinite(m.log10_p) for m in matches)
    reg.remove("other2")
    assert [e.name for e in reg.list()] == ["base", "other1"]
    with pytest.raises(KeyError):
        reg.remove("other2")


def test_registry_and_identify_from_the_command_line(family: dict[str, Path], tmp_path: Path) -> None:
    reg = tmp_path / "cli.sqlite"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "modelkin.cli", *args], capture_output=True, text=True, check=False
        )

    fp = tmp_path / "noised.mkfp"
    assert run("fingerprint", str(family["noised"]), "-o", str(fp), "--quiet").returncode == 0
    assert (
        run("registry", "--registry", str(reg), "add", str(family["base"]), "--name", "base").returncode == 0
    )
    assert run("registry", "--registry", str(reg), "add", str(family["other1"])).returncode == 0
    listed = json.loads(run("registry", "--registry", str(reg), "list", "--json").stdout)
    assert [e["name"] for e in listed] == ["base", "other1"]
    out = run("identify", str(fp), "--registry", str(reg), "--json")
    assert out.returncode == 0, out.stderr
    matches = json.loads(out.stdout)["matches"]
    assert matches[0]["name"] == "base" and matches[0]["relation"] == "noised_copy"
    missing = run("registry", "--registry", str(reg), "remove", "nothere")
    assert missing.returncode == 2 and missing.stderr.startswith("modelkin: error:")
    compared = run("compare", str(fp), str(family["base"]), "--json")
    assert json.loads(compared.stdout)["verdict"]["relation"] == "noised_copy"
