"""PyTorch checkpoints (``torch.save`` zip archives) read safely: tensors read in place and equal to
what torch loads, their pickle never executed, hostile pickles refused before anything runs.

The first part builds archives by hand (no torch needed); the second uses ``torch.save`` and is
skipped where torch is not installed."""

from __future__ import annotations

import builtins
import io
import json
import os
import pickle as pk
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import ml_dtypes
import modelkin
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelkin import InvalidCheckpointError, ModelkinError, UnsupportedFormatError
from models import llama_state, noised, write_single
from torch_files import (
    contiguous_tensor,
    glob,
    i,
    ordered_dict,
    s,
    short,
    state_dict_pickle,
    tensor,
    whole,
    write_state_dict,
    write_torch_zip,
)


def assert_same_values(a: Path, b: Path) -> None:
    """Every tensor of ``a`` is bit-equal to the same-named tensor of ``b``, and none is missing."""
    res = modelkin.diff(a, b, threads=1)
    assert not res.only_a and not res.only_b and not res.shape_mismatch
    for p in res.pairs:
        assert p.stats.equal == p.numel, p.name


def mixed_state(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "embed.weight": rng.normal(0, 0.02, (16, 8)).astype(np.float32),
        "norm.weight": rng.normal(1, 0.1, 8).astype(np.float16),
        "proj.weight": rng.normal(0, 0.02, (8, 12)).astype(ml_dtypes.bfloat16),
        "proj.bias": rng.normal(0, 1, 12).astype(np.float64),
        "position_ids": np.arange(10, dtype=np.int64).reshape(1, 10),
        "mask": rng.random(7) > 0.5,
        "scalar": np.array(3, dtype=np.int32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }


# -- hand-built archives (always run) -------------------------------------------------------------------


def test_hand_built_state_dict_reads_equal_to_its_arrays(tmp_path: Path) -> None:
    state = mixed_state()
    pt = write_state_dict(tmp_path / "model.bin", state)
    info = modelkin.open(pt)
    assert info.format == "pytorch"
    assert {t.name: (t.dtype, t.shape) for t in info.tensors} == {
        "embed.weight": ("F32", (16, 8)),
        "norm.weight": ("F16", (8,)),
        "proj.weight": ("BF16", (8, 12)),
        "proj.bias": ("F64", (12,)),
        "position_ids": ("I64", (1, 10)),
        "mask": ("BOOL", (7,)),
        "scalar": ("I32", ()),
        "empty": ("F32", (0, 4)),
    }
    assert_same_values(pt, write_single(tmp_path / "same.safetensors", state))
    stats = {t.name: t.stats for t in modelkin.inspect(pt, threads=1).tensors}
    x = state["embed.weight"].astype(np.float64)
    assert stats["embed.weight"].mean == pytest.approx(x.mean(), rel=1e-12, abs=1e-15)
    assert stats["embed.weight"].max == x.max()


def test_views_of_one_storage_read_their_own_slices(tmp_path: Path) -> None:
    base = np.arange(24, dtype=np.float32) * 0.5
    views = {"a": base[:12].reshape(3, 4), "b": base[12:].reshape(2, 6), "row": base[4:8], "all": base}
    pkl = whole(
        ordered_dict(
            [
                ("a", tensor("FloatStorage", "0", 24, 0, (3, 4), (4, 1))),
                ("b", tensor("FloatStorage", "0", 24, 12, (2, 6), (6, 1))),
                ("row", tensor("FloatStorage", "0", 24, 4, (4,), (1,))),
                ("all", tensor("FloatStorage", "0", 24, 0, (24,), (1,))),
            ]
        )
    )
    pt = write_torch_zip(tmp_path / "shared.pt", pkl, {"0": base.tobytes()})
    assert_same_values(pt, write_single(tmp_path / "views.safetensors", views))


def test_nested_dicts_are_flattened_with_dots(tmp_path: Path) -> None:
    w = np.ones((2, 2), np.float32)
    pkl = whole(
        pk.EMPTY_DICT
        + pk.MARK
        + s("model")
        + ordered_dict([("layer.weight", contiguous_tensor("0", w))])
        + s("epoch")
        + i(3)
        + s("best")
        + pk.BINFLOAT
        + b"?\xe0\x00\x00\x00\x00\x00\x00"
        + s("history")
        + pk.EMPTY_LIST
        + pk.MARK
        + contiguous_tensor("0", w)
        + pk.NONE
        + pk.APPENDS
        + pk.SETITEMS
    )
    pt = write_torch_zip(tmp_path / "ckpt.pt", pkl, {"0": w.tobytes()})
    assert [t.name for t in modelkin.open(pt).tensors] == ["history.0", "model.layer.weight"]


def test_the_archive_folder_name_does_not_matter(tmp_path: Path) -> None:
    state = {"w": np.arange(6, dtype=np.float32)}
    pt = write_state_dict(tmp_path / "lin.pt", state, folder="lin")
    assert [t.name for t in modelkin.open(pt).tensors] == ["w"]


def test_zip64_archives_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # zipfile writes zip64 records (end record, sizes and offsets) past these limits: force them.
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 0)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 0)
    state = mixed_state(1)
    pt = write_state_dict(tmp_path / "z64.bin", state)
    monkeypatch.undo()
    data = pt.read_bytes()
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data
    assert_same_values(pt, write_single(tmp_path / "z64.safetensors", state))


def test_a_transposed_view_is_refused_not_misread(tmp_path: Path) -> None:
    base = np.arange(12, dtype=np.float32)
    pkl = whole(ordered_dict([("t", tensor("FloatStorage", "0", 12, 0, (4, 3), (1, 4)))]))
    pt = write_torch_zip(tmp_path / "t.bin", pkl, {"0": base.tobytes()})
    with pytest.raises(UnsupportedFormatError, match=r"tensor 't' is a strided view.*\.contiguous\(\)"):
        modelkin.open(pt)


def test_a_compressed_storage_is_refused_naming_the_entry(tmp_path: Path) -> None:
    pkl, storages = state_dict_pickle({"w": np.zeros(64, np.float32)})
    pt = write_torch_zip(tmp_path / "c.bin", pkl, storages, storage_compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(UnsupportedFormatError, match=r"'archive/data/0' is compressed with deflate"):
        modelkin.open(pt)


@pytest.mark.parametrize("cut", [0.3, 0.7, 0.99])
def test_a_truncated_archive_is_invalid(tmp_path: Path, cut: float) -> None:
    full = write_state_dict(tmp_path / "full.bin", mixed_state()).read_bytes()
    pt = tmp_path / "cut.bin"
    pt.write_bytes(full[: int(len(full) * cut)])
    with pytest.raises(InvalidCheckpointError, match=r"cut\.bin: invalid zip archive"):
        modelkin.open(pt)


def test_a_storage_shorter_than_declared_is_invalid(tmp_path: Path) -> None:
    pkl, storages = state_dict_pickle({"w": np.zeros(16, np.float32)})
    pt = write_torch_zip(tmp_path / "s.bin", pkl, {"0": storages["0"][:-4]})
    with pytest.raises(
        InvalidCheckpointError, match=r"tensor 'w'.*declared as 64 bytes but its entry holds 60"
    ):
        modelkin.open(pt)


def test_a_missing_storage_is_invalid(tmp_path: Path) -> None:
    pkl, _ = state_dict_pickle({"w": np.zeros(4, np.float32)})
    pt = write_torch_zip(tmp_path / "m.bin", pkl, {})
    with pytest.raises(InvalidCheckpointError, match="no entry 'archive/data/0'"):
        modelkin.open(pt)


def test_a_renamed_safetensors_file_is_still_read(tmp_path: Path) -> None:
    st = write_single(tmp_path / "model.safetensors", {"w": np.ones(3, np.float32)})
    renamed = tmp_path / "pytorch_model.bin"
    renamed.write_bytes(st.read_bytes())
    assert modelkin.open(renamed).format == "safetensors"


# -- fuzzing: any byte changed, only ModelkinError comes out ------------------------------------------------

FUZZ_EXAMPLES = int(os.environ.get("MODELKIN_FUZZ_EXAMPLES", "150"))
SEED_STATE = {
    "a": np.arange(6, dtype=np.float32).reshape(2, 3),
    "b": np.ones(4, np.float16),
    "c": np.array([1, -2], np.int64),
}
SEED_PICKLE, SEED_STORAGES = state_dict_pickle(SEED_STATE)

MUTATION = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 10_000), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 16)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000)),
)


def mutate(data: bytes, mutations: list[tuple]) -> bytes:
    b = bytearray(data)
    for m in mutations:
        kind, pos = m[0], m[1] % (len(b) + 1)
        if kind == "set":
            b[pos : pos + len(m[2])] = m[2]
        elif kind == "insert":
            b[pos:pos] = m[2]
        elif kind == "delete":
            del b[pos : pos + m[2]]
        else:
            del b[pos:]
    return bytes(b)


def read_everything(path: Path) -> None:
    """Opens, inspects and diffs ``path``; only a ModelkinError naming the file may come out."""
    try:
        modelkin.open(path)
        modelkin.inspect(path, threads=2)
        modelkin.diff(path, path, threads=1)
    except ModelkinError as e:
        assert "internal error" not in str(e) and str(path) in str(e), str(e)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_random_pickle_mutations_never_crash(tmp_path_factory: pytest.TempPathFactory, mutations) -> None:
    folder = tmp_path_factory.mktemp("fuzzpkl")
    pt = write_torch_zip(folder / "m.bin", mutate(SEED_PICKLE, mutations), SEED_STORAGES)
    read_everything(pt)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_random_archive_mutations_never_crash(tmp_path_factory: pytest.TempPathFactory, mutations) -> None:
    folder = tmp_path_factory.mktemp("fuzzzip")
    seed = write_torch_zip(folder / "seed.bin", SEED_PICKLE, SEED_STORAGES).read_bytes()
    pt = folder / "m.bin"
    pt.write_bytes(mutate(seed, mutations))
    read_everything(pt)


def test_fuzz_seed_is_valid(tmp_path: Path) -> None:
    pt = write_torch_zip(tmp_path / "seed.bin", SEED_PICKLE, SEED_STORAGES)
    assert_same_values(pt, write_single(tmp_path / "seed.safetensors", SEED_STATE))


# -- hostile pickles: refused, and nothing runs ---------------------------------------------------------


class Exec:
    """Pickles as ``builtins.exec(code)``."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (builtins.exec, (self.code,))


class System:
    """Pickles as ``os.system(command)`` (``posix.system`` on POSIX)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def write_marker(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('pwned')"


def hostile_pickles(marker: Path) -> dict[str, bytes]:
    """Pickles that create ``marker`` when unpickled (each one checked live below)."""
    code = write_marker(marker)
    touch = f"touch {marker}"
    call1 = pk.TUPLE1 + pk.REDUCE
    return {
        "os.system": whole(glob("os", "system") + s(touch) + call1),
        "posix.system": whole(glob("posix", "system") + s(touch) + call1),
        "builtins.eval": whole(glob("builtins", "eval") + s(code) + call1),
        "builtins.exec": whole(glob("builtins", "exec") + s(code) + call1),
        "subprocess.Popen": whole(
            glob("subprocess", "Popen") + pk.MARK + s("touch") + s(str(marker)) + pk.LIST + call1
        ),
        "stack-global-from-memo": (
            pk.PROTO
            + b"\x04"
            + short("builtins")
            + pk.MEMOIZE
            + short("exec")
            + pk.MEMOIZE
            + pk.POP
            + pk.POP
            + pk.BINGET
            + b"\x00"
            + pk.BINGET
            + b"\x01"
            + pk.STACK_GLOBAL
            + short(code)
            + call1
            + pk.STOP
        ),
        "inst": pk.PROTO + b"\x02" + pk.MARK + s(code) + pk.INST + b"builtins\nexec\n" + pk.STOP,
        "obj": pk.PROTO + b"\x02" + pk.MARK + glob("builtins", "exec") + s(code) + pk.OBJ + pk.STOP,
        "reduce-exec-p2": pk.dumps(Exec(code), protocol=2),
        "reduce-exec-p4": pk.dumps(Exec(code), protocol=4),
        "reduce-system-p5": pk.dumps(System(touch), protocol=5),
        "inside-a-state-dict": whole(
            ordered_dict(
                [
                    ("w", contiguous_tensor("0", np.zeros(2, np.float32))),
                    ("evil", glob("builtins", "exec") + s(code) + call1),
                ]
            )
        ),
        "as-a-tensor-argument": whole(
            glob("torch._utils", "_rebuild_tensor_v2")
            + pk.MARK
            + glob("builtins", "exec")
            + s(code)
            + call1
            + pk.TUPLE
            + pk.REDUCE
        ),
        "as-a-persistent-id": whole(glob("builtins", "exec") + s(code) + call1 + pk.BINPERSID),
    }


HOSTILE = list(hostile_pickles(Path("x")))


#: The payloads that plain ``pickle.loads`` runs without torch (the others wrap the same calls in
#: torch's rebuild functions or in a persistent id).
LIVE = [k for k in HOSTILE if not k.startswith(("inside-", "as-a-"))]


@pytest.mark.skipif(os.name != "posix", reason="shell payloads need POSIX")
@pytest.mark.parametrize("kind", LIVE)
def test_hostile_pickles_would_run_under_pickle(tmp_path: Path, kind: str) -> None:
    """The payloads are live: Python's own unpickler runs them, so the refusals below mean something."""
    marker = tmp_path / "ran"
    obj = pk.loads(hostile_pickles(marker)[kind])
    if isinstance(obj, subprocess.Popen):
        obj.wait()
    for _ in range(50):
        if marker.exists():
            break
        time.sleep(0.05)
    assert marker.exists()


@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt"])
def test_hostile_pickles_are_refused_and_nothing_runs(tmp_path: Path, kind: str, name: str) -> None:
    marker = tmp_path / "ran"
    payload = hostile_pickles(marker)[kind]
    pt = write_torch_zip(tmp_path / name, payload, {"0": b"\0" * 8})
    for call in (lambda: modelkin.open(pt), lambda: modelkin.inspect(pt), lambda: modelkin.diff(pt, pt)):
        with pytest.raises(ModelkinError) as info:
            call()
        msg = str(info.value)
        assert str(pt) in msg and "archive/data.pkl, pickle offset" in msg, msg
        assert "internal error" not in msg
    # The folder form takes the same path.
    with pytest.raises(ModelkinError):
        modelkin.open(tmp_path)
    time.sleep(0.1)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        ("os.system", "global 'os.system' is not allowed"),
        ("builtins.eval", "global 'builtins.eval' is not allowed"),
        ("subprocess.Popen", "global 'subprocess.Popen' is not allowed"),
        ("stack-global-from-memo", "global 'builtins.exec' is not allowed"),
        ("inst", "opcode INST"),
        ("obj", "global 'builtins.exec'"),
        ("reduce-system-p5", f"global '{os.system.__module__}.system' is not allowed"),
    ],
)
def test_refusals_name_the_rule_broken(tmp_path: Path, kind: str, rule: str) -> None:
    pt = write_torch_zip(tmp_path / "m.bin", hostile_pickles(tmp_path / "ran")[kind])
    with pytest.raises(UnsupportedFormatError, match=rule) as info:
        modelkin.open(pt)
    assert "never runs pickled code" in str(info.value)


def test_obj_with_an_allowed_class_is_still_refused(tmp_path: Path) -> None:
    payload = whole(pk.MARK + glob("collections", "OrderedDict") + pk.OBJ)
    with pytest.raises(UnsupportedFormatError, match="opcode OBJ"):
        modelkin.open(write_torch_zip(tmp_path / "o.bin", payload))


MIB = 1 << 20


def memory_bombs() -> dict[str, bytes]:
    p2, p4 = pk.PROTO + b"\x02", pk.PROTO + b"\x04"
    return {
        "binunicode-4gib": p2 + pk.BINUNICODE + b"\xff\xff\xff\xff" + b"x" * 16 + pk.STOP,
        "binunicode8-huge": p4 + pk.BINUNICODE8 + b"\xff" * 8 + b"x" * 16 + pk.STOP,
        "binbytes8-huge": p4 + pk.BINBYTES8 + b"\xff" * 7 + b"\x7f" + pk.STOP,
        "frame-huge": p4 + pk.FRAME + b"\xff" * 8 + pk.EMPTY_DICT + pk.STOP,
        "marks-1m": p2 + pk.MARK * MIB + pk.STOP,
        "tuples-1m-deep": p2 + pk.NONE + pk.TUPLE1 * MIB + pk.STOP,
        "lists-4m": p2 + pk.EMPTY_LIST * (4 * MIB) + pk.STOP,
        "memo-4m": p4 + pk.NONE + pk.MEMOIZE * (4 * MIB + 1) + pk.STOP,
        "doubling-dag": p2
        + contiguous_tensor("0", np.zeros(2, np.float32))
        + (pk.DUP + pk.TUPLE2) * 60
        + pk.STOP,
        "self-containing-list": p2
        + pk.EMPTY_LIST
        + pk.BINPUT
        + b"\x00"
        + pk.BINGET
        + b"\x00"
        + pk.APPEND
        + pk.STOP,
    }


@pytest.mark.parametrize("kind", list(memory_bombs()))
def test_memory_bombs_are_refused_quickly(tmp_path: Path, kind: str) -> None:
    pt = write_torch_zip(tmp_path / "bomb.bin", memory_bombs()[kind], {"0": b"\0" * 8})
    start = time.perf_counter()
    with pytest.raises(InvalidCheckpointError, match="pickle offset"):
        modelkin.open(pt)
    assert time.perf_counter() - start < 5


def test_a_pickle_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    payload = pk.PROTO + b"\x02" + pk.NONE + pk.DUP * (64 * MIB) + pk.STOP
    with pytest.raises(InvalidCheckpointError, match="limit"):
        modelkin.open(write_torch_zip(tmp_path / "huge.bin", payload))


# -- folders, indexes and the command line (always run) -------------------------------------------------


def write_torch_index(folder: Path, state: dict[str, np.ndarray], n_shards: int, save) -> Path:
    """Shards ``state`` into ``pytorch_model-0000i-of-0000n.bin`` files with ``save(path, part)``, plus
    ``pytorch_model.bin.index.json``, as ``save_pretrained(safe_serialization=False)`` does."""
    folder.mkdir(parents=True, exist_ok=True)
    names = list(state)
    weight_map = {}
    for k in range(n_shards):
        shard = f"pytorch_model-{k + 1:05d}-of-{n_shards:05d}.bin"
        part = {n: state[n] for n in names[k::n_shards]}
        save(folder / shard, part)
        weight_map.update(dict.fromkeys(part, shard))
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    return folder


def test_a_sharded_pytorch_folder_is_read_through_its_index(tmp_path: Path) -> None:
    state = mixed_state(2)
    folder = write_torch_index(tmp_path / "m", state, 3, write_state_dict)
    info = modelkin.open(folder)
    assert info.format == "pytorch-sharded" and len(info.files) == 3
    assert modelkin.open(folder / "pytorch_model.bin.index.json").format == "pytorch-sharded"
    assert_same_values(folder, write_single(tmp_path / "same.safetensors", state))
    (folder / "pytorch_model-00002-of-00003.bin").unlink()
    with pytest.raises(modelkin.MissingShardError):
        modelkin.open(folder)


def test_a_folder_with_safetensors_and_pytorch_files_reads_the_safetensors(tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    write_single(folder / "model.safetensors", {"w": np.ones(3, np.float32)})
    write_state_dict(
        folder / "pytorch_model.bin", {"w": np.zeros(3, np.float32), "x": np.ones(1, np.float32)}
    )
    (folder / "training_args.bin").write_bytes(pk.dumps({"lr": 1e-3}))
    info = modelkin.open(folder)
    assert info.format == "safetensors" and [t.name for t in info.tensors] == ["w"]


def test_a_folder_with_pytorch_model_bin_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    write_state_dict(folder / "pytorch_model.bin", {"w": np.zeros(3, np.float32)})
    (folder / "training_args.bin").write_bytes(pk.dumps({"lr": 1e-3}))
    (folder / "config.json").write_text("{}")
    info = modelkin.open(folder)
    assert info.format == "pytorch" and [t.name for t in info.tensors] == ["w"]


def test_an_index_mixing_formats_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    write_state_dict(folder / "a.bin", {"x": np.zeros(2, np.float32)})
    write_single(folder / "b.safetensors", {"y": np.zeros(2, np.float32)})
    index = folder / "pytorch_model.bin.index.json"
    index.write_text(json.dumps({"weight_map": {"x": "a.bin", "y": "b.safetensors"}}))
    with pytest.raises(modelkin.InvalidIndexError, match="mixes safetensors and PyTorch shards"):
        modelkin.open(index)


def test_diff_across_formats_through_the_command_line(tmp_path: Path) -> None:
    state = mixed_state(3)
    pt = write_state_dict(tmp_path / "a.bin", state)
    st = write_single(tmp_path / "b.safetensors", state)
    proc = subprocess.run(
        [sys.executable, "-m", "modelkin.cli", "diff", str(pt), str(st), "--json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["a"]["format"] == "pytorch" and data["b"]["format"] == "safetensors"
    assert len(data["pairs"]) == len(state) and not data["only_a"] and not data["only_b"]
    assert all(p["equal"] == p["numel"] for p in data["pairs"])


# -- files written by torch.save (skipped without torch) ------------------------------------------------


@pytest.fixture(scope="module")
def torch_mod():
    """The torch module; the test is skipped where torch cannot be imported (CI may not have it)."""
    try:
        import torch
    except ImportError as e:
        pytest.skip(f"torch is not importable: {e}")
    return torch


def save_torch_as_safetensors(torch, pt: Path, out: Path, loaded=None) -> Path:
    """What ``torch.load`` reads from ``pt`` (or ``loaded``), written by the official safetensors
    writer (each tensor copied: it refuses tensors that share memory)."""
    from safetensors.torch import save_file

    if loaded is None:
        loaded = torch.load(pt, weights_only=True)
    save_file({k: v.clone().contiguous() for k, v in loaded.items()}, str(out))
    return out


def small_module(torch):
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Embedding(32, 16),
        torch.nn.LayerNorm(16),
        torch.nn.Linear(16, 24),
        torch.nn.ReLU(),
        torch.nn.Linear(24, 16, bias=False),
    )
    m.register_buffer("step", torch.tensor(7, dtype=torch.int64))
    return m


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
def test_torch_save_state_dict_reads_equal_to_torch_load(tmp_path: Path, torch_mod, dtype: str) -> None:
    torch = torch_mod
    m = small_module(torch).to(getattr(torch, dtype))
    pt = tmp_path / "pytorch_model.bin"
    torch.save(m.state_dict(), pt)
    info = modelkin.open(pt)
    assert info.format == "pytorch"
    loaded = torch.load(pt, weights_only=True)
    assert {t.name: t.shape for t in info.tensors} == {k: tuple(v.shape) for k, v in loaded.items()}
    assert_same_values(pt, save_torch_as_safetensors(torch, pt, tmp_path / "ref.safetensors"))
    stats = {t.name: t.stats for t in modelkin.inspect(pt, threads=2).tensors}
    for name, v in loaded.items():
        if v.numel():
            assert stats[name].mean == pytest.approx(v.double().mean().item(), rel=1e-9, abs=1e-12), name


def test_torch_integer_and_bool_tensors(tmp_path: Path, torch_mod) -> None:
    torch = torch_mod
    g = torch.Generator().manual_seed(1)
    state = {
        "i64": torch.randint(-(2**40), 2**40, (5, 7), generator=g),
        "i32": torch.randint(-1000, 1000, (9,), generator=g, dtype=torch.int32),
        "i8": torch.randint(-128, 127, (4, 4), generator=g, dtype=torch.int8),
        "u8": torch.randint(0, 255, (3,), generator=g, dtype=torch.uint8),
        "b": torch.rand(6, generator=g) > 0.5,
    }
    pt = tmp_path / "ints.pt"
    torch.save(state, pt)
    assert {t.name: t.dtype for t in modelkin.open(pt).tensors} == {
        "i64": "I64",
        "i32": "I32",
        "i8": "I8",
        "u8": "U8",
        "b": "BOOL",
    }
    assert_same_values(pt, save_torch_as_safetensors(torch, pt, tmp_path / "ints.safetensors"))


def test_torch_shared_storages_read_correctly(tmp_path: Path, torch_mod) -> None:
    torch = torch_mod
    base = torch.randn(10, 4)
    state = {
        "first": base[:5],
        "rest": base[5:],
        "row": base[2],
        "col0": base[:, 0].contiguous(),
        "all": base,
    }
    pt = tmp_path / "shared.pt"
    torch.save(state, pt)
    with zipfile.ZipFile(pt) as z:
        assert sum("/data/" in n for n in z.namelist()) == 2  # base's storage once, col0's own
    assert_same_values(pt, save_torch_as_safetensors(torch, pt, tmp_path / "shared.safetensors"))


def test_torch_parameters_nested_dicts_and_protocol_4(tmp_path: Path, torch_mod) -> None:
    torch = torch_mod
    m = small_module(torch)
    params = dict(m.named_parameters())
    pt = tmp_path / "params.pt"
    torch.save({"model": params, "epoch": 3, "device": torch.device("cpu"), "dtype": torch.float16}, pt)
    names = {t.name for t in modelkin.open(pt).tensors}
    assert names == {f"model.{k}" for k in params}
    pt4 = tmp_path / "p4.pt"
    torch.save(m.state_dict(), pt4, pickle_protocol=4)
    # torch.load's own weights-only unpickler does not take protocol 4 frames: compare with the
    # state dict that was saved.
    ref = save_torch_as_safetensors(torch, pt4, tmp_path / "p4.safetensors", loaded=m.state_dict())
    assert_same_values(pt4, ref)


def test_torch_float8_and_unsigned_tensors_use_rebuild_v3(tmp_path: Path, torch_mod) -> None:
    torch = torch_mod
    if not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "uint16"):
        pytest.skip("this torch has no float8 or uint16 tensors")
    x = torch.randn(8, 4)
    state = {
        "e4m3": x.to(torch.float8_e4m3fn),
        "e5m2": x.to(torch.float8_e5m2),
        "u16": torch.arange(60000, 60009).to(torch.uint16),
    }
    pt = tmp_path / "f8.pt"
    torch.save(state, pt)
    assert {t.name: t.dtype for t in modelkin.open(pt).tensors} == {
        "e4m3": "F8_E4M3",
        "e5m2": "F8_E5M2",
        "u16": "U16",
    }
    stats = {t.name: t.stats for t in modelkin.inspect(pt).tensors}
    for name, v in state.items():
        ref = v.to(torch.float64) if v.dtype != torch.uint16 else v.to(torch.int64).to(torch.float64)
        assert (stats[name].mean, stats[name].min, stats[name].max) == pytest.approx(
            (ref.mean().item(), ref.min().item(), ref.max().item()), rel=1e-12
        ), name


def test_torch_sharded_folder_and_cross_format_diff(tmp_path: Path, torch_mod) -> None:
    torch = torch_mod
    state = llama_state(0)
    sd = {k: torch.from_numpy(v) for k, v in state.items()}
    folder = write_torch_index(tmp_path / "sharded", sd, 2, lambda p, part: torch.save(part, p))
    assert modelkin.open(folder).format == "pytorch-sharded"
    st = write_single(tmp_path / "model.safetensors", state)
    assert_same_values(folder, st)
    assert modelkin.compare(folder, st).verdict.relation == "identical"
    noised_copy = write_single(tmp_path / "noised.safetensors", noised(state, 1.4e-3))
    assert modelkin.compare(folder, noised_copy).verdict.relation == "noised_copy"


def test_torch_transposed_tensor_is_refused(tmp_path: Path, torch_mod) -> None:
    torch = torch_mod
    pt = tmp_path / "t.pt"
    torch.save({"ok": torch.randn(3, 4), "wt": torch.randn(3, 4).t()}, pt)
    with pytest.raises(UnsupportedFormatError, match=r"tensor 'wt' is a strided view .*stride \[1, 4\]"):
        modelkin.open(pt)


def test_torch_legacy_format_is_refused(tmp_path: Path, torch_mod) -> None:
    torch = torch_mod
    pt = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(2)}, pt, _use_new_zipfile_serialization=False)
    with pytest.raises(UnsupportedFormatError, match=r"legacy format.*never unpickles"):
        modelkin.open(pt)


def test_torch_save_to_a_buffer_is_the_same_file(tmp_path: Path, torch_mod) -> None:
    torch = torch_mod
    buf = io.BytesIO()
    torch.save({"w": torch.arange(5.0)}, buf)
    pt = tmp_path / "from_buffer.pt"
    pt.write_bytes(buf.getvalue())
    assert [t.name for t in modelkin.open(pt).tensors] == ["w"]


# -- Meta's reference checkpoints --------------------------------------------------------------------------
META_NAMES = [
    (r"^model\.embed_tokens\.", "tok_embeddings."),
    (r"^lm_head\.", "output."),
    (r"^model\.norm\.", "norm."),
    (r"^model\.layers\.(\d+)\.self_attn\.q_proj\.", r"layers.\1.attention.wq."),
    (r"^model\.layers\.(\d+)\.self_attn\.k_proj\.", r"layers.\1.attention.wk."),
    (r"^model\.layers\.(\d+)\.self_attn\.v_proj\.", r"layers.\1.attention.wv."),
    (r"^model\.layers\.(\d+)\.self_attn\.o_proj\.", r"layers.\1.attention.wo."),
    (r"^model\.layers\.(\d+)\.input_layernorm\.", r"layers.\1.attention_norm."),
    (r"^model\.layers\.(\d+)\.post_attention_layernorm\.", r"layers.\1.ffn_norm."),
    (r"^model\.layers\.(\d+)\.mlp\.gate_proj\.", r"layers.\1.feed_forward.w1."),
    (r"^model\.layers\.(\d+)\.mlp\.down_proj\.", r"layers.\1.feed_forward.w2."),
    (r"^model\.layers\.(\d+)\.mlp\.up_proj\.", r"layers.\1.feed_forward.w3."),
]


def _meta_checkpoint(folder: Path, state: dict[str, np.ndarray], heads: int, kv_heads: int) -> Path:
    """``state`` (Hugging Face Llama) as Meta's reference code stores it: Meta names, and the Q and K
    rows in the rotary layout that Hugging Face's converter permutes away (llama.cpp's layout)."""
    import re

    from gguf_models import permute

    meta = {}
    for name, w in state.items():
        for pattern, repl in META_NAMES:
            if re.match(pattern, name):
                name = re.sub(pattern, repl, name)
                break
        if ".attention.wq." in name:
            w = permute(w, heads)
        elif ".attention.wk." in name:
            w = permute(w, kv_heads)
        meta[name] = np.ascontiguousarray(w)
    folder.mkdir(parents=True, exist_ok=True)
    write_state_dict(folder / "consolidated.00.pth", meta)
    return folder


def _q_equal(meta: Path, hf: Path) -> int:
    """Positions where layer 0's Q of the Meta checkpoint equals the Hugging Face q_proj."""
    pair = ("layers.0.attention.wq.weight", "model.layers.0.self_attn.q_proj.weight", None, 0, 0, False)
    return int(modelkin._modelkin.diff_pairs(str(meta), str(hf), [pair], threads=1)["pairs"][0]["equal"])


def test_a_meta_reference_checkpoint_is_identical_to_its_hugging_face_conversion(tmp_path: Path) -> None:
    from gguf_models import KSHAPE
    from models import llama_state

    state = llama_state(0, KSHAPE)
    hf = write_single(tmp_path / "hf" / "model.safetensors", state).parent
    meta = _meta_checkpoint(tmp_path / "meta", state, KSHAPE.heads, KSHAPE.kv_heads)
    (meta / "params.json").write_text(
        json.dumps(
            {"dim": KSHAPE.hidden, "n_layers": KSHAPE.layers, "n_heads": KSHAPE.heads, "n_kv_heads": 2}
        )
    )
    info = modelkin.open(meta)
    assert info.format == "pytorch" and Path(info.files[0].path).name == "consolidated.00.pth"
    # The Q rows read back in the Hugging Face order, exactly.
    assert _q_equal(meta, hf) == state["model.layers.0.self_attn.q_proj.weight"].size
    res = modelkin.compare(meta, hf)
    assert res.verdict.relation == "identical", res.verdict.sentence
    assert all(e.kind == "identical" for e in res.evidence)


def test_without_params_json_a_meta_checkpoint_is_read_as_stored(tmp_path: Path) -> None:
    from gguf_models import KSHAPE
    from models import llama_state

    state = llama_state(0, KSHAPE)
    meta = _meta_checkpoint(tmp_path / "meta", state, KSHAPE.heads, KSHAPE.kv_heads)
    hf = write_single(tmp_path / "hf" / "model.safetensors", state).parent
    assert _q_equal(meta, hf) < state["model.layers.0.self_attn.q_proj.weight"].size  # rotary, not HF's


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"dim": 256}, 'no positive integer "n_heads"'),
        ({"n_heads": 3}, "256 rows cannot be 3 heads of two halves"),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_bad_params_json_is_refused_naming_it(
    tmp_path: Path, params: str | dict[str, int], match: str
) -> None:
    from gguf_models import KSHAPE
    from models import llama_state

    meta = _meta_checkpoint(tmp_path / "meta", llama_state(0, KSHAPE), KSHAPE.heads, KSHAPE.kv_heads)
    (meta / "params.json").write_text(params if isinstance(params, str) else json.dumps(params))
    with pytest.raises(ModelkinError, match=match):
        modelkin.open(meta)


def test_meta_model_parallel_shards_are_refused_with_the_reason(tmp_path: Path) -> None:
    for k in range(2):
        write_state_dict(tmp_path / f"consolidated.0{k}.pth", {"w": np.ones(4, np.float32)})
    with pytest.raises(UnsupportedFormatError, match="model-parallel"):
        modelkin.open(tmp_path)
