"""Behavioural evidence: reading per-item files, error consistency κ, the hypergeometric test of shared
errors, the bootstrap, the panel null and the ``behavior`` command — checked against direct numpy/scipy
computations."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from modelkin.answers import ModelAnswers, load_answers, load_gold
from modelkin.cli_behavior import add_behavior_parser, run_behavior
from modelkin.evidence.behavior import (
    BEHAVIOR_SCHEMA,
    bootstrap_kappa,
    compare_behavior,
    error_consistency,
    pair_behavior,
    shared_error_log10_p,
)
from scipy.special import logsumexp
from scipy.stats import hypergeom

DOCS = Path(__file__).resolve().parent.parent / "docs"

# -- helpers --------------------------------------------------------------------------------------------


def kappa_reference(a: np.ndarray, b: np.ndarray) -> float:
    """κ of Geirhos et al. (2020), straight from the definition."""
    c_obs = np.mean(a == b)
    pa, pb = a.mean(), b.mean()
    c_exp = pa * pb + (1 - pa) * (1 - pb)
    return float((c_obs - c_exp) / (1 - c_exp))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def docs_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("behavior_table", DOCS / "behavior_table.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def parse(*argv: str) -> argparse.Namespace:
    """Arguments as ``modelkin behavior …`` would receive them once wired into modelkin.cli."""
    parser = argparse.ArgumentParser(prog="modelkin")
    add_behavior_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["behavior", *argv])


# -- statistics -----------------------------------------------------------------------------------------


def test_behavior_json_shows_no_control_character_of_a_file_name(panel_files, tmp_path, capsys):
    hostile = []
    for i, f in enumerate(panel_files[:2]):
        target = tmp_path / f"m{i}\u009b2J\u001b]0;x\u0007.jsonl"
        target.write_bytes(f.read_bytes())
        hostile.append(str(target))
    assert run_behavior(parse(*hostile, "--json", "--bootstrap", "0")) == 0
    out = capsys.readouterr().out
    assert not any((ord(c) < 0x20 and c not in "\n") or 0x7F <= ord(c) <= 0x9F for c in out)
    assert "\\u009b" in out
    json.loads(out)


@pytest.mark.parametrize("seed", range(5))
def test_kappa_matches_the_definition(seed):
    rng = np.random.default_rng(seed)
    a = rng.random(400) < rng.uniform(0.3, 0.9)
    b = np.where(rng.random(400) < 0.5, a, rng.random(400) < 0.6)
    assert error_consistency(a, b) == pytest.approx(kappa_reference(a, b), rel=1e-12)
    p = pair_behavior(a, b, n_boot=0)
    assert p.kappa == pytest.approx(kappa_reference(a, b), rel=1e-12)
    assert p.correctness_agreement == pytest.approx(np.mean(a == b))


def test_kappa_is_one_for_identical_and_undefined_when_nobody_errs():
    a = np.array([1, 0, 1, 1, 0], bool)
    assert error_consistency(a, a) == pytest.approx(1.0)
    assert math.isnan(error_consistency(np.ones(5, bool), np.ones(5, bool)))


@pytest.mark.parametrize(
    ("n", "ea", "eb", "s"), [(300, 236, 194, 182), (50, 10, 12, 5), (1000, 100, 100, 10), (20, 3, 4, 0)]
)
def test_shared_error_p_is_the_hypergeometric_tail(n, ea, eb, s):
    expected = math.log10(hypergeom.sf(s - 1, n, ea, eb)) if s else 0.0
    assert shared_error_log10_p(n, ea, eb, s) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_shared_error_p_stays_finite_far_into_the_tail():
    # p ≈ 1e-504: a float underflows to 0, log10 p must not.
    tail = logsumexp(hypergeom.logpmf(np.arange(182, 195), 100_000, 236, 194)) / math.log(10)
    lp = shared_error_log10_p(100_000, 236, 194, 182)
    assert math.isfinite(lp) and lp == pytest.approx(tail, rel=1e-9)
    assert lp < -500


def test_impossible_counts_are_refused():
    with pytest.raises(ValueError, match="impossible"):
        shared_error_log10_p(10, 3, 4, 5)


def test_pair_counts_and_expected_shared_errors():
    a = np.array([1, 1, 0, 0, 0, 1, 1, 1, 0, 1], bool)
    b = np.array([1, 0, 0, 0, 1, 1, 1, 0, 0, 1], bool)
    pa = ["x", "y", "w1", "w2", "w3", "x", "x", "x", "w4", "x"]
    pb = ["x", "n", "w1", "zz", "x", "x", "x", "m", None, "x"]
    p = pair_behavior(a, b, pa, pb, n_boot=0, names=("a", "b"))
    assert (p.n, p.errors_a, p.errors_b, p.shared_errors) == (10, 4, 5, 3)
    assert p.shared_identical_wrong == 1  # "w1"; the abstention (None) never counts
    assert p.agreement == pytest.approx(5 / 10)
    assert p.expected_shared_errors == pytest.approx(4 * 5 / 10)
    assert (p.accuracy_a, p.accuracy_b) == (0.6, 0.5)
    assert math.isnan(p.kappa_ci[0])  # no bootstrap asked for


# -- bootstrap ------------------------------------------------------------------------------------------


def reference_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    """The textbook loop: resample items with replacement, recompute κ, take the 2.5/97.5 percentiles."""
    rng = np.random.default_rng(seed)
    ks = []
    for _ in range(n_boot):
        idx = rng.integers(0, a.size, size=a.size)
        ks.append(kappa_reference(a[idx], b[idx]))
    lo, hi = np.percentile(np.array(ks)[np.isfinite(ks)], [2.5, 97.5])
    return float(lo), float(hi)


def test_bootstrap_matches_the_textbook_loop_and_is_reproducible():
    rng = np.random.default_rng(3)
    a = rng.random(300) < 0.7
    b = np.where(rng.random(300) < 0.6, a, rng.random(300) < 0.7)
    p1 = pair_behavior(a, b, n_boot=400, seed=11)
    assert p1.kappa_ci == pytest.approx(reference_bootstrap(a, b, 400, 11), rel=1e-10)
    assert pair_behavior(a, b, n_boot=400, seed=11).kappa_ci == p1.kappa_ci
    p2 = pair_behavior(a, b, n_boot=400, seed=12)
    assert p2.kappa_ci != p1.kappa_ci
    assert p2.kappa_ci == pytest.approx(p1.kappa_ci, abs=0.05)
    assert p1.kappa_ci[0] < p1.kappa < p1.kappa_ci[1]


def test_bootstrap_does_not_depend_on_batching_or_on_the_other_models():
    rng = np.random.default_rng(0)
    errors = rng.random((200, 4)) < 0.3
    full = bootstrap_kappa(errors, 50, seed=5, batch=256)
    np.testing.assert_allclose(bootstrap_kappa(errors, 50, seed=5, batch=7), full, rtol=1e-12)
    np.testing.assert_allclose(bootstrap_kappa(errors[:, [0, 2]], 50, seed=5)[:, 0, 1], full[:, 0, 2])


# -- reading --------------------------------------------------------------------------------------------


def test_jsonl_predictions_are_scored_against_gold(tmp_path):
    gold = write_jsonl(
        tmp_path / "gold.jsonl",
        [{"id": 1, "answer": "B"}, {"id": 2, "answer": ["4", "four"]}, {"id": 3, "answer": 7.0}],
    )
    a = write_jsonl(
        tmp_path / "a.jsonl",
        [{"id": 1, "prediction": " B "}, {"id": 2, "prediction": "four"}, {"id": 3, "prediction": 7}],
    )
    b = write_csv(tmp_path / "b.csv", ["id", "prediction"], [[1, "C"], [2, "4"], [3, ""]])
    res = compare_behavior([a, b], gold, n_boot=0)
    assert [m.accuracy for m in res.models] == [1.0, pytest.approx(1 / 3)]
    (p,) = res.pairs
    assert (p.errors_a, p.errors_b, p.shared_errors, p.agreement) == (0, 2, 0, 0.0)


def test_correctness_files_in_csv_tsv_and_jsonl(tmp_path):
    a = write_csv(tmp_path / "a.csv", ["id", "correct"], [["q1", 1], ["q2", 0], ["q3", "true"]])
    (tmp_path / "b.tsv").write_text("id\tcorrect\nq1\tFalse\nq2\t0\nq3\t1\n", encoding="utf-8")
    c = write_jsonl(
        tmp_path / "c.jsonl",
        [{"id": "q1", "correct": True}, {"id": "q2", "correct": 0}, {"id": "q3", "correct": 1.0}],
    )
    assert load_answers(a).correct == {"q1": True, "q2": False, "q3": True}
    assert load_answers(tmp_path / "b.tsv").correct == {"q1": False, "q2": False, "q3": True}
    assert load_answers(c).correct == {"q1": True, "q2": False, "q3": True}
    res = compare_behavior([a, tmp_path / "b.tsv", c], n_boot=0)
    assert res.panel and res.n_items == 3 and len(res.pairs) == 3


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("bad.jsonl", '{"id": 1, "correct": 1}\n{"id": 2, "correct": \n', "bad.jsonl:2: not valid JSON"),
        (
            "list.jsonl",
            '{"id": 1, "correct": 1}\n[1, 2]\n',
            "list.jsonl:2: expected one JSON object per line",
        ),
        ("noid.jsonl", '{"id": 1, "correct": 1}\n{"correct": 0}\n', "noid.jsonl:2: missing field 'id'"),
        (
            "dup.jsonl",
            '{"id": 1, "correct": 1}\n\n{"id": 1, "correct": 0}\n',
            "dup.jsonl:3: duplicate id '1'",
        ),
        ("flag.jsonl", '{"id": 1, "correct": "maybe"}\n', "flag.jsonl:1: 'correct' must be"),
        ("mixed.jsonl", '{"id": 1, "correct": 1}\n{"id": 2, "prediction": "x"}\n', "mixed.jsonl:2: missing"),
        ("nofield.jsonl", '{"id": 1, "answer": 1}\n', "nofield.jsonl:1: needs a 'prediction' or"),
        ("short.csv", "id,correct\n1,1\n2\n", "short.csv:3: fewer fields"),
        ("long.csv", "id,correct\n1,1,5\n", "long.csv:2: more fields"),
        ("empty.jsonl", "\n\n", "empty.jsonl: no records"),
        ("bin.jsonl", b"\xff\xfe\x00garbage", "bin.jsonl: not UTF-8"),
    ],
)
def test_malformed_files_name_the_file_and_the_line(tmp_path, name, content, fragment):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        load_answers(path)
    assert fragment in str(info.value)


def test_malformed_gold_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match=r"gold\.jsonl:2: empty 'answer'"):
        load_gold(write_jsonl(tmp_path / "gold.jsonl", [{"id": 1, "answer": "a"}, {"id": 2, "answer": ""}]))
    with pytest.raises(FileNotFoundError, match=r"nope\.jsonl"):
        load_answers(tmp_path / "nope.jsonl")


def test_predictions_without_gold_and_disjoint_items_are_errors(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"id": 1, "prediction": "x"}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"id": 1, "prediction": "y"}])
    with pytest.raises(ValueError, match="--gold"):
        compare_behavior([a, b])
    c = write_jsonl(tmp_path / "c.jsonl", [{"id": 2, "correct": 1}])
    d = write_jsonl(tmp_path / "d.jsonl", [{"id": 3, "correct": 1}])
    with pytest.raises(ValueError, match="no item is common"):
        compare_behavior([c, d])
    with pytest.raises(ValueError, match="at least two"):
        compare_behavior([c])


def test_only_common_items_are_compared_and_the_rest_is_reported(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"id": i, "correct": i % 2} for i in range(10)])
    b = write_jsonl(tmp_path / "b.jsonl", [{"id": i, "correct": i % 3 == 0} for i in range(4, 14)])
    res = compare_behavior([a, b], n_boot=0)
    assert res.n_items == 6
    assert any("a: 4 of 10" in n for n in res.notes) and any("b: 4 of 10" in n for n in res.notes)


def test_json_output_is_strict_even_when_kappa_is_undefined():
    ids = [str(i) for i in range(5)]
    models = [ModelAnswers(n, n, dict.fromkeys(ids, True)) for n in ("x", "y")]
    data = compare_behavior(models, n_boot=20).to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text)["pairs"][0]["kappa"] is None
    assert data["schema"] == BEHAVIOR_SCHEMA


# -- the panel null -------------------------------------------------------------------------------------


def test_panel_flags_the_copy_and_no_independent_pair():
    res = docs_script().panel_result()
    assert [(p.a, p.b) for p in res.flagged] == [("A", "B")]
    ab = res.pair("A", "B")
    assert (ab.errors_a, ab.errors_b, ab.shared_errors) == (236, 194, 182)
    others = [p for p in res.pairs if {p.a, p.b} != {"A", "B"}]
    # Hard items: independent models share far more errors than the hypergeometric null allows …
    assert all(p.log10_p < -10 for p in others)
    # … which the panel absorbs.
    assert all(abs(p.panel_z) < 3 for p in others)
    k = res.kappa_matrix()
    assert k.shape == (7, 7) and np.allclose(k, k.T) and np.allclose(np.diag(k), 1)


@pytest.mark.parametrize("seed", range(3))
def test_a_panel_of_independent_models_flags_nothing(seed):
    rng = np.random.default_rng(seed)
    n = 600
    difficulty = rng.normal(-1.0, 1.5, n)
    ids = [str(i) for i in range(n)]
    models = []
    for m in range(6):
        wrong = rng.random(n) < 1 / (1 + np.exp(-(difficulty - rng.normal(0, 0.3))))
        models.append(ModelAnswers(f"m{m}", f"m{m}", dict(zip(ids, map(bool, ~wrong)))))
    res = compare_behavior(models, n_boot=200, seed=seed)
    assert res.panel and not res.flagged
    assert "No pair" in res.sentence


def test_three_models_get_a_rough_panel_note():
    rng = np.random.default_rng(1)
    ids = [str(i) for i in range(100)]
    models = [
        ModelAnswers(f"m{m}", f"m{m}", dict(zip(ids, map(bool, rng.random(100) < 0.7)))) for m in range(3)
    ]
    res = compare_behavior(models, n_boot=50)
    assert res.panel and all(p.panel_z is not None for p in res.pairs)
    assert any("only 3 pairs" in n for n in res.notes)


# -- the worked example in docs/behavior.md ---------------------------------------------------------------


def test_docs_tables_are_regenerated_by_the_script():
    mod = docs_script()
    text = (DOCS / "behavior.md").read_text(encoding="utf-8")
    assert mod.count_table() in text
    assert mod.panel_table() in text


def test_llama3v_counts_over_item_counts():
    mod = docs_script()
    for n in mod.ITEM_COUNTS:
        a, b = mod.counts_vectors(n)
        p = pair_behavior(a, b, n_boot=0)
        assert (p.errors_a, p.errors_b, p.shared_errors) == (236, 194, 182)
        assert p.expected_shared_errors == pytest.approx(236 * 194 / n)
        assert p.kappa == pytest.approx(kappa_reference(a, b))


# -- the command ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def panel_files(tmp_path_factory):
    return docs_script().write_panel(tmp_path_factory.mktemp("panel"))


def test_behavior_command_table_flags_the_copy(panel_files, capsys):
    by_name = {p.stem: p for p in panel_files}
    args = parse(*(str(by_name[n]) for n in ("A", "B", "ref1", "ref2", "ref3")), "--bootstrap", "200")
    assert run_behavior(args) == 0
    out = capsys.readouterr().out
    assert "stands out" in out and "A and B" in out and "1000 items" in out
    assert "182" in out and "45.8" in out


def test_behavior_command_json(panel_files, capsys):
    args = parse(*map(str, panel_files[:3]), "--json", "--seed", "3", "--bootstrap", "100")
    assert run_behavior(args) == 0
    data = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(c))
    assert data["schema"] == BEHAVIOR_SCHEMA and data["seed"] == 3 and data["bootstrap"] == 100
    assert len(data["pairs"]) == 3 and data["panel"] is True


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["{A}", "{bad}"], "bad.jsonl:1: not valid JSON"),
        (["{A}", "{missing}"], "missing.jsonl"),
        (["{A}"], "at least two"),
        (["{A}", "{A}", "--bootstrap", "-1"], "--bootstrap"),
        (["{pred}", "{A}"], "--gold"),
    ],
)
def test_behavior_command_bad_input_exits_2(tmp_path, panel_files, capsys, argv, fragment):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{nope\n")
    pred = write_jsonl(tmp_path / "pred.jsonl", [{"id": "q0000", "prediction": "x"}])
    paths = {"A": panel_files[0], "bad": bad, "missing": tmp_path / "missing.jsonl", "pred": pred}
    assert run_behavior(parse(*(a.format(**paths) for a in argv))) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("modelkin: error:") and fragment in captured.err
    assert captured.out == ""


def test_behavior_command_runs_in_a_subprocess(panel_files, tmp_path):
    cmd = [sys.executable, "-m", "modelkin.cli_behavior", "behavior"]
    cmd += [str(panel_files[0]), str(panel_files[-1]), "--json"]  # A and B
    proc = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["pairs"][0]["shared_errors"] == 182
    bad = tmp_path / "bad.csv"
    bad.write_text("id,correct\n1\n")
    proc = subprocess.run(
        [*cmd[:4], str(panel_files[0]), str(bad)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("modelkin: error:") and "bad.csv:2" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_pair_above_a_panel_without_spread_is_flagged():
    """Without bootstrap and with identical other pairs the scale is 0: a higher κ is z = ∞, flagged."""
    n = 40
    ids = [str(i) for i in range(n)]
    base = np.arange(n) < 10  # items 0–9 wrong
    others = [np.roll(base, 10 * k) for k in range(1, 4)]  # disjoint errors
    models = [ModelAnswers("A", "A", dict(zip(ids, map(bool, ~base))))]
    models.append(ModelAnswers("B", "B", dict(zip(ids, map(bool, ~base)))))
    models += [ModelAnswers(f"r{k}", f"r{k}", dict(zip(ids, map(bool, ~e)))) for k, e in enumerate(others)]
    res = compare_behavior(models, n_boot=0)
    assert [(p.a, p.b) for p in res.flagged] == [("A", "B")]
    assert res.pair("A", "B").panel_z == math.inf
    assert json.loads(json.dumps(res.to_dict(), allow_nan=False))["pairs"][0]["panel_z"] is None
