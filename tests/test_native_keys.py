"""The native module's results against the TypedDicts its stubs declare (``_modelkin.pyi``).

The Rust binding writes every key by hand and the Python side reads them back, so a key added, renamed or
dropped on one side only would go unnoticed by mypy and stubtest alike (the TypedDicts exist in the stubs
only). Here every native function runs on a small generated model and each result's keys, recursively
through nested dicts and lists of dicts, must equal its TypedDict's: required keys always present, no key
the TypedDict lacks, and every optional key seen at least once over the calls.
"""

from __future__ import annotations
import __future__

import typing
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import modelkin
import numpy as np
import pytest
from modelkin import _modelkin
from safetensors.numpy import save_file

STUB = Path(modelkin.__file__).with_name("_modelkin.pyi")


def _load_stub() -> dict[str, Any]:
    # Annotations stay strings (as in a stub, never evaluated) so the file runs on every supported Python.
    code = compile(
        STUB.read_text(encoding="utf-8"),
        str(STUB),
        "exec",
        flags=__future__.annotations.compiler_flag,
        dont_inherit=True,
    )
    ns: dict[str, Any] = {"__name__": "modelkin_native_stub"}
    # `typing.type_check_only` exists in typeshed's typing.pyi only: lend the stub a no-op while it runs.
    lent = not hasattr(typing, "type_check_only")
    if lent:
        typing.type_check_only = lambda obj: obj  # type: ignore[attr-defined]
    try:
        exec(code, ns)
    finally:
        if lent:
            del typing.type_check_only  # type: ignore[attr-defined]
    return ns


NS = _load_stub()


def _is_typeddict(t: Any) -> bool:
    return isinstance(t, type) and hasattr(t, "__required_keys__")


def _returns(function: str) -> Any:
    """The TypedDict a stub function declares it returns."""
    td = eval(NS[function].__annotations__["return"], NS)
    assert _is_typeddict(td), f"{function} is declared to return {td!r}, not a TypedDict"
    return td


class Seen:
    """The keys met per TypedDict over all checks, to tell optional keys never returned."""

    def __init__(self) -> None:
        self.keys: dict[type, set[str]] = defaultdict(set)


def mismatches(value: Any, td: Any, where: str, seen: Seen | None = None) -> list[str]:
    """Every difference between ``value``'s keys and ``td``'s, at any depth."""
    if not isinstance(value, dict):
        return [f"{where}: a {type(value).__name__}, not a dict"]
    hints = typing.get_type_hints(td, NS)
    keys = set(value)
    if seen is not None:
        seen.keys[td] |= keys
    out = [f"{where}: {k!r} is returned but not in {td.__name__}" for k in sorted(keys - set(hints))]
    out += [
        f"{where}: {k!r} is required by {td.__name__} but not returned"
        for k in sorted(td.__required_keys__ - keys)
    ]
    for k in sorted(keys & set(hints)):
        out += _walk(value[k], hints[k], f"{where}[{k!r}]", seen)
    return out


def _walk(value: Any, hint: Any, where: str, seen: Seen | None) -> list[str]:
    if _is_typeddict(hint):
        return mismatches(value, hint, where, seen)
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return [m for i, v in enumerate(value) for m in _walk(v, item, f"{where}[{i}]", seen)]
    return []


def _reached(td: Any) -> Iterator[Any]:
    """``td`` and every TypedDict nested in it."""
    yield td
    for hint in typing.get_type_hints(td, NS).values():
        while typing.get_origin(hint) is list:
            (hint,) = typing.get_args(hint)
        if _is_typeddict(hint):
            yield from _reached(hint)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two small models that exercise every optional key: matrices and vectors, a tensor on one side
    only, a name with two shapes; and a GGUF file."""
    d = tmp_path_factory.mktemp("native")
    rng = np.random.default_rng(0)
    a = {
        "m.weight": rng.standard_normal((64, 48)).astype(np.float32),
        "v.bias": rng.standard_normal(300).astype(np.float32),
        "only_a": np.zeros(5, np.float32),
        "reshaped": np.zeros((4, 6), np.float32),
    }
    b = {k: v + np.float32(1e-3) for k, v in a.items() if k != "only_a"}
    b["only_b"] = np.ones(7, np.float32)
    b["reshaped"] = np.zeros((6, 4), np.float32)
    paths = {"a": str(d / "a.safetensors"), "b": str(d / "b.safetensors"), "gguf": str(d / "m.gguf")}
    save_file(a, paths["a"])
    save_file(b, paths["b"])
    w = gguf.GGUFWriter(paths["gguf"], "llama")
    w.add_block_count(1)
    w.add_tensor("blk.0.ffn_up.weight", rng.standard_normal((8, 16)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return paths


def _results(files: dict[str, str]) -> list[tuple[str, Any]]:
    """(function, result) for every native function that returns a dict with fixed keys."""
    a, b = files["a"], files["b"]
    x = np.arange(64, dtype=np.float32)
    pairs = [("m.weight", "m.weight", None, 0, 0, False), ("m.weight", "m.weight", 10, 0, 2, False)]
    pairs += [("v.bias", "v.bias", None, 0, 0, False)]
    return [
        ("open_checkpoint", _modelkin.open_checkpoint(a)),
        ("inspect", _modelkin.inspect(a, 1, None, 16)),
        ("diff", _modelkin.diff(a, b, 1, None, 16)),
        ("diff_pairs", _modelkin.diff_pairs(a, b, pairs, ["only_a"], ["only_b"], 1, None, 16)),
        ("sample_values", _modelkin.sample_values(a, 1, 16)),
        ("pair_stats", _modelkin.pair_stats(x.view(np.uint8), "F32", x.view(np.uint8), "F32", 1, 16)),
        ("fingerprint", _modelkin.fingerprint(a, 1, None, 16, 8)),
    ]


def test_every_native_result_has_exactly_its_typeddicts_keys(files: dict[str, str]) -> None:
    seen = Seen()
    problems = []
    for function, result in _results(files):
        problems += mismatches(result, _returns(function), function, seen)
    assert problems == []
    # Optional keys (present for some tensors only) must each have been returned somewhere.
    for function in sorted({f for f, _ in _results(files)}):
        for td in _reached(_returns(function)):
            assert seen.keys[td] == set(typing.get_type_hints(td, NS)), (function, td.__name__)


def test_native_functions_without_typeddicts_return_what_the_stubs_say(files: dict[str, str]) -> None:
    a, b = files["a"], files["b"]
    assert _modelkin.gguf_metadata(a) is None
    kv = _modelkin.gguf_metadata(files["gguf"])
    assert isinstance(kv, dict) and kv["general.architecture"] == "llama"
    heads = _modelkin.heads(a, ["m.weight"], 4, 1)
    assert set(heads) == {"m.weight"} and all(isinstance(x, np.ndarray) for x in heads["m.weight"])
    columns = _modelkin.columns(a, ["m.weight"], [0, 3], 1)
    assert set(columns) == {"m.weight"} and isinstance(columns["m.weight"], np.ndarray)
    assert isinstance(_modelkin.read_pair(a, b, 1), int)
    assert isinstance(_modelkin.default_threads(), int)
    assert isinstance(_modelkin.__version__, str) and "F32" in _modelkin.DTYPES


def _without(td: Any, key: str) -> Any:
    hints = typing.get_type_hints(td, NS)
    return typing.TypedDict(f"{td.__name__}Without", {k: v for k, v in hints.items() if k != key})  # type: ignore[operator]


def _with_extra(td: Any) -> Any:
    return typing.TypedDict(f"{td.__name__}Extra", {**typing.get_type_hints(td, NS), "extra": int})  # type: ignore[operator]


@pytest.mark.parametrize(
    ("side", "expected"),
    [("native", "is returned but not in"), ("stub", "is required by")],
)
def test_a_key_added_on_one_side_only_is_caught(files: dict[str, str], side: str, expected: str) -> None:
    # "native": the engine returns a key its TypedDict lacks (modelled by dropping one from the TypedDict);
    # "stub": the TypedDict declares a key the engine does not return.
    raw = _modelkin.open_checkpoint(files["a"])
    td = _returns("open_checkpoint")
    changed = _without(td, "format") if side == "native" else _with_extra(td)
    problems = mismatches(raw, changed, "open_checkpoint")
    assert len(problems) == 1 and expected in problems[0]
    # The same one level down, in a list of nested dicts.
    nested = typing.get_type_hints(td, NS)["files"].__args__[0]
    edited = _without(nested, "size") if side == "native" else _with_extra(nested)
    outer = typing.TypedDict("Outer", {**typing.get_type_hints(td, NS), "files": list[edited]})  # type: ignore[operator,valid-type]
    problems = mismatches(raw, outer, "open_checkpoint")
    assert problems and all(expected in p and "['files'][0]" in p for p in problems)
