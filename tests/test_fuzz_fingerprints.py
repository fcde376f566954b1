"""Fuzzing the Python-side readers of fingerprints: random edits of valid fingerprint files (byte flips,
insertions, truncation; deleted header keys, values of other types, shortened arrays) either load and
behave (compare and screen against the original, save and reload alike) or raise the one
``InvalidFingerprintError`` naming the file; random registry rows (values of any type, blobs edited the
same ways) never stop ``list``, ``prints`` or ``identify``: bad entries are skipped with a warning."""

from __future__ import annotations

import json
import os
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import modelkin
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelkin.compare import compare_fingerprints, screen
from modelkin.errors import InvalidFingerprintError, RegistryWarning
from modelkin.fingerprint import Fingerprint, loads
from models import llama_state, write_single
from mutations import apply, edits
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

FUZZ_EXAMPLES = int(os.environ.get("MODELKIN_FUZZ_EXAMPLES", "150"))
V1 = Path(__file__).parent / "data" / "tiny-v1.mkfp"
NAME = "fuzzed.mkfp"
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The bytes of a valid version-1 and version-2 fingerprint (small samples, to keep the runs fast)."""
    d = tmp_path_factory.mktemp("fuzz-prints")
    model = write_single(d / "m" / "model.safetensors", llama_state(seed=3))
    v2 = modelkin.fingerprint(model, sample_size=64, quantiles=8).save(d / "v2.mkfp")
    return {"v1": V1.read_bytes(), "v2": v2.read_bytes()}


def _parts(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(json.loads(data[8 : 8 + n])["__metadata__"]["modelkin_fingerprint"])
    return header, dict(load_arrays(data))


def _join(header: Any, arrays: dict[str, np.ndarray]) -> bytes:
    return save_arrays(arrays, metadata={"modelkin_fingerprint": json.dumps(header)})


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside a JSON value."""
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        out.append((*prefix, k))
        out.extend(_paths(v, (*prefix, k)))
    return out


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def header_edit(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with one structural edit: a header key deleted or given a value of another type, or an
    array shortened, lengthened, recast or dropped."""
    header, arrays = _parts(data)
    kind = draw(st.sampled_from(["delete", "retype", "shorten", "recast", "drop"]))
    if kind in ("delete", "retype"):
        path = draw(st.sampled_from(_paths(header)))
        parent = header
        for k in path[:-1]:
            parent = parent[k]
        if kind == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_VALUES)
    else:
        key = draw(st.sampled_from(sorted(arrays)))
        a = arrays[key]
        if kind == "shorten":
            arrays[key] = a[: draw(st.integers(0, max(a.shape[0] - 1, 0)))] if a.ndim else a.reshape(1)
        elif kind == "recast":
            arrays[key] = a.astype(draw(st.sampled_from([np.float64, np.float16, np.float32, np.int32])))
        else:
            del arrays[key]
    return _join(header, arrays)


def _behaves(fp: Fingerprint, original: Fingerprint, tmp: Path) -> None:
    """What a loaded fingerprint must survive: the comparisons identify runs, and a save and reload."""
    assert screen(fp, original) is None or isinstance(screen(fp, original), float)
    try:
        compare_fingerprints(fp, original)
    except ValueError as e:  # refused, e.g. another sample size: identify reports it as inconclusive
        assert "Traceback" not in str(e)
    again = modelkin.load_fingerprint(fp.save(tmp / "again.mkfp"))
    assert [t.name for t in again.tensors] == [t.name for t in fp.tensors]


def _load_or_refuse(data: bytes, original: Fingerprint, tmp: Path) -> str:
    try:
        fp = loads(data, NAME)
    except InvalidFingerprintError as e:
        assert NAME in str(e), e
        return "refused"
    _behaves(fp, original, tmp)
    return "loaded"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_originals_load_and_behave(originals: dict[str, bytes], version: str, tmp_path: Path) -> None:
    fp = loads(originals[version], NAME)
    assert _load_or_refuse(originals[version], fp, tmp_path) == "loaded"


def _edited(good: bytes, kind: str) -> st.SearchStrategy[bytes]:
    """Byte edits (flips, insertions, deletions, truncation) or one structural edit of ``good``."""
    if kind == "bytes":
        return st.builds(apply, st.just(good), st.lists(edits(len(good)), min_size=1, max_size=4))
    return header_edit(good)


@pytest.mark.parametrize("kind", ["bytes", "structure"])
@pytest.mark.parametrize("version", ["v1", "v2"])
@FUZZ
@given(data=st.data())
def test_edits_of_a_fingerprint_load_and_behave_or_raise_the_one_error(
    originals: dict[str, bytes], version: str, kind: str, tmp_path: Path, data: st.DataObject
) -> None:
    good = originals[version]
    _load_or_refuse(data.draw(_edited(good, kind)), loads(good, NAME), tmp_path)


_CELLS = st.one_of(
    st.none(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.text(max_size=6), st.binary(max_size=6)
)


@settings(FUZZ, max_examples=max(FUZZ_EXAMPLES // 3, 10))
@given(data=st.data())
def test_hostile_registry_rows_never_stop_list_or_identify(
    originals: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    path = tmp_path_factory.mktemp("rows") / "r.sqlite"
    modelkin.Registry(path).add(loads(originals["v1"], NAME), "good")
    con = sqlite3.connect(path)
    # What a hostile registry may hold: the same columns without the NOT NULL constraints.
    con.executescript(
        "ALTER TABLE prints RENAME TO old; CREATE TABLE prints (name TEXT PRIMARY KEY, source, created, "
        "n_params, n_tensors, blob); INSERT INTO prints SELECT * FROM old; DROP TABLE old;"
    )
    for i in range(data.draw(st.integers(1, 3))):
        good = originals[data.draw(st.sampled_from(["v1", "v2"]))]
        blob = data.draw(st.one_of(_CELLS, _edited(good, "bytes"), _edited(good, "structure")))
        row = [data.draw(st.one_of(st.text(min_size=1, max_size=6), _CELLS)) for _ in range(5)]
        row[0] = f"row{i}-{row[0]!r}"
        con.execute("INSERT OR IGNORE INTO prints VALUES (?, ?, ?, ?, ?, ?)", (*row, blob))
    con.commit()
    con.close()
    reg = modelkin.Registry(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = [e.name for e in reg.list()]
        matches = reg.identify(loads(originals["v1"], NAME), top=0)
    assert "good" in names and "good" in [m.name for m in matches]
    assert all(issubclass(w.category, RegistryWarning) for w in caught), [str(w.message) for w in caught]
    assert all(str(path) in str(w.message) for w in caught)
