"""Malformed, hostile and foreign files: each gives its documented exception, with a message that
names the file (and the tensor where there is one); nothing ever crashes or panics."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import modelkin
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelkin import (
    InvalidCheckpointError,
    InvalidIndexError,
    MissingShardError,
    ModelkinError,
    UnknownDtypeError,
    UnsupportedFormatError,
)
from models import (
    INDEX_NAME,
    entry,
    llama_state,
    raw_file,
    read_index,
    valid_small_file,
    write_index,
    write_sharded,
)
from models import write_single as write_model
from mutations import apply, edits

#: Examples per fuzz test; raise it (e.g. MODELKIN_FUZZ_EXAMPLES=5000) for a longer hunt.
FUZZ_EXAMPLES = int(os.environ.get("MODELKIN_FUZZ_EXAMPLES", "150"))


def write(tmp_path: Path, data: bytes, name: str = "model.safetensors") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def expect(exc_type: type[BaseException], path: Path, tensor: str | None = None, match: str | None = None):
    """Checks that opening, inspecting and diffing ``path`` each raise ``exc_type`` naming the file
    (and ``tensor``); returns the message."""
    messages = []
    for call in (
        lambda: modelkin.open(path),
        lambda: modelkin.inspect(path, threads=1),
        lambda: modelkin.diff(path, path, threads=1),
    ):
        with pytest.raises(exc_type) as info:
            call()
        msg = str(info.value)
        assert str(path) in msg, f"message does not name the file: {msg}"
        if tensor is not None:
            assert f"'{tensor}'" in msg, f"message does not name tensor {tensor!r}: {msg}"
        if match is not None:
            assert match in msg, msg
        assert "internal error" not in msg
        messages.append(msg)
    return messages[0]


# -- the exception hierarchy ----------------------------------------------------------------------------


def test_exception_hierarchy_is_as_documented():
    assert issubclass(UnknownDtypeError, InvalidCheckpointError)
    assert issubclass(InvalidIndexError, InvalidCheckpointError)
    assert issubclass(MissingShardError, InvalidIndexError)
    assert issubclass(MissingShardError, FileNotFoundError)
    assert issubclass(InvalidCheckpointError, ModelkinError)
    assert issubclass(UnsupportedFormatError, ModelkinError)
    assert not issubclass(UnsupportedFormatError, InvalidCheckpointError)


# -- length prefix --------------------------------------------------------------------------------------


def test_truncated_data_section_is_invalid_and_names_the_cut_tensor(tmp_path):
    state = {"first": np.ones(16, np.float32), "last": np.arange(64, dtype=np.float32)}
    full = write_model(tmp_path / "full.safetensors", state).read_bytes()
    path = write(tmp_path, full[:-10])
    expect(InvalidCheckpointError, path, tensor="last", match="truncated")


def test_llama_file_truncated_anywhere_in_its_data_is_invalid(tmp_path):
    full = write_model(tmp_path / "full.safetensors", llama_state(0)).read_bytes()
    header_end = 8 + int.from_bytes(full[:8], "little")
    for cut in (header_end, header_end + 1, (header_end + len(full)) // 2, len(full) - 1):
        expect(InvalidCheckpointError, write(tmp_path, full[:cut], f"cut{cut}.safetensors"))


def test_truncated_shard_of_sharded_checkpoint_names_the_shard(tmp_path):
    folder = write_sharded(tmp_path / "m", llama_state(0), n_shards=3)
    shard = folder / "model-00002-of-00003.safetensors"
    shard.write_bytes(shard.read_bytes()[:-3])
    with pytest.raises(InvalidCheckpointError) as info:
        modelkin.open(folder)
    assert str(shard) in str(info.value)


def test_header_length_past_end_of_file(tmp_path):
    header = json.dumps({"t": entry("U8", [2], 0, 2)}).encode()
    path = write(tmp_path, raw_file(header, b"\0\0", header_len=len(header) + 100))
    expect(InvalidCheckpointError, path, match="past the end of the file")


@pytest.mark.parametrize("length", [2**63, 2**64 - 1, 100_000_001])
def test_absurd_header_length_is_refused(tmp_path, length):
    path = write(tmp_path, raw_file(b"{}", b"", header_len=length))
    expect(InvalidCheckpointError, path)


@pytest.mark.parametrize("data", [b"", b"a", b"\x01\x00\x00\x00\x00\x00\x00"])
def test_file_shorter_than_the_length_prefix(tmp_path, data):
    path = write(tmp_path, data)
    expect(InvalidCheckpointError, path, match="too short")


# -- the JSON header ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [b'{"t": ', b'{"t": {"dtype": "U8",}}', b"{'t': 1}", b"", b'{"t": 1} trailing', b'{"\xff\xfe": 1}'],
    ids=["eof", "trailing-comma", "single-quotes", "empty", "trailing-garbage", "not-utf8"],
)
def test_invalid_json_header(tmp_path, header):
    path = write(tmp_path, raw_file(header, b"\0" * 8))
    expect(InvalidCheckpointError, path, match="invalid safetensors header")


@pytest.mark.parametrize("header", ["[]", '"model"', "3", "null", "true"])
def test_header_that_is_not_an_object(tmp_path, header):
    path = write(tmp_path, raw_file(header))
    expect(InvalidCheckpointError, path, match="invalid safetensors header")


@pytest.mark.parametrize("dtype", ["Q4", "f32", "F8_E4M3FNUZ", "C64", "FLOAT32", ""])
def test_unknown_dtype(tmp_path, dtype):
    path = write(
        tmp_path, raw_file({"ok": entry("U8", [2], 0, 2), "odd": entry(dtype, [2], 2, 4)}, b"\0" * 4)
    )
    msg = expect(UnknownDtypeError, path, tensor="odd")
    assert f"'{dtype}'" in msg


def test_unknown_dtype_is_also_an_invalid_checkpoint_error(tmp_path):
    path = write(tmp_path, raw_file({"t": entry("Q4", [2], 0, 2)}, b"\0\0"))
    with pytest.raises(InvalidCheckpointError):
        modelkin.open(path)


def test_overlapping_offsets(tmp_path):
    path = write(tmp_path, raw_file({"a": entry("U8", [4], 0, 4), "b": entry("U8", [4], 2, 6)}, b"\0" * 6))
    msg = expect(InvalidCheckpointError, path, tensor="b", match="overlaps")
    assert "'a'" in msg


def test_identical_offsets_of_two_tensors_overlap(tmp_path):
    path = write(tmp_path, raw_file({"a": entry("F32", [2], 0, 8), "b": entry("I32", [2], 0, 8)}, b"\0" * 8))
    expect(InvalidCheckpointError, path, match="overlaps")


def test_overlap_is_detected_across_an_empty_tensor(tmp_path):
    header = {"a": entry("U8", [8], 0, 8), "empty": entry("U8", [0], 2, 2), "b": entry("U8", [4], 4, 8)}
    path = write(tmp_path, raw_file(header, b"\1" * 8))
    expect(InvalidCheckpointError, path, tensor="b", match="overlaps")


@pytest.mark.parametrize("offsets", [(10, 14), (4, 10), (0, 2**64 - 1), (2**63, 2**63 + 4)])
def test_offsets_out_of_range(tmp_path, offsets):
    begin, end = offsets
    path = write(tmp_path, raw_file({"t": entry("U8", [end - begin], begin, end)}, b"\0" * 6))
    expect(InvalidCheckpointError, path, tensor="t")


def test_begin_after_end(tmp_path):
    path = write(tmp_path, raw_file({"t": entry("U8", [0], 4, 2)}, b"\0" * 6))
    expect(InvalidCheckpointError, path, tensor="t", match="[4, 2]")


@pytest.mark.parametrize(
    ("shape", "offsets"),
    [([2, 3], (0, 20)), ([2, 3], (0, 28)), ([], (0, 0)), ([0], (0, 4)), ([5], (0, 5))],
    ids=["short", "long", "scalar-without-bytes", "empty-with-bytes", "bytes-not-elements"],
)
def test_size_does_not_match_shape(tmp_path, shape, offsets):
    path = write(tmp_path, raw_file({"t": entry("F32", shape, *offsets)}, b"\0" * 32))
    expect(InvalidCheckpointError, path, tensor="t", match="needs")


@pytest.mark.parametrize("dim", [-1, 1.5, 2.0, "2", None, True, [2]])
def test_shape_entries_must_be_non_negative_integers(tmp_path, dim):
    path = write(tmp_path, raw_file({"t": entry("F32", [dim], 0, 8)}, b"\0" * 8))
    expect(InvalidCheckpointError, path, tensor="t")


@pytest.mark.parametrize("offset", [-1, 1.5, "0", None])
def test_offsets_must_be_non_negative_integers(tmp_path, offset):
    path = write(tmp_path, raw_file({"t": entry("U8", [1], offset, 1)}, b"\0" * 8))
    expect(InvalidCheckpointError, path, tensor="t")


@pytest.mark.parametrize(
    "value",
    [
        3,
        {"shape": [1], "data_offsets": [0, 1]},
        {"dtype": "U8", "data_offsets": [0, 1]},
        {"dtype": "U8", "shape": [1]},
        {"dtype": "U8", "shape": [1], "data_offsets": [0, 1, 2]},
        {"dtype": "U8", "shape": 1, "data_offsets": [0, 1]},
        {"dtype": 8, "shape": [1], "data_offsets": [0, 1]},
    ],
    ids=[
        "not-object",
        "no-dtype",
        "no-shape",
        "no-offsets",
        "three-offsets",
        "shape-not-list",
        "dtype-not-str",
    ],
)
def test_malformed_tensor_entry(tmp_path, value):
    path = write(tmp_path, raw_file({"t": value}, b"\0" * 8))
    expect(InvalidCheckpointError, path, tensor="t")


@pytest.mark.parametrize("metadata", [[1], "x", {"k": 1}, {"k": None}])
def test_malformed_metadata(tmp_path, metadata):
    path = write(tmp_path, raw_file({"__metadata__": metadata, "t": entry("U8", [1], 0, 1)}, b"\0"))
    expect(InvalidCheckpointError, path, match="__metadata__")


def test_duplicate_tensor_names_in_one_header(tmp_path):
    t = '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}'
    path = write(tmp_path, raw_file(f'{{"w":{t},"dup":{t},"dup":{t}}}', b"\0"))
    expect(InvalidCheckpointError, path, match="duplicate key 'dup'")


def test_duplicate_metadata_key_in_header(tmp_path):
    path = write(tmp_path, raw_file('{"__metadata__":{},"__metadata__":{}}'))
    expect(InvalidCheckpointError, path, match="duplicate")


@pytest.mark.parametrize(
    "shape",
    [[2**32, 2**32], [2**63, 2], [3, 2**62, 5], [2**62], [2**40, 2**40, 0]],
    ids=["elements-2^64", "elements-2^64-b", "three-dims", "bytes-2^64", "overflow-before-zero"],
)
def test_shape_whose_size_overflows_64_bits(tmp_path, shape):
    path = write(tmp_path, raw_file({"t": entry("F32", shape, 0, 4)}, b"\0" * 4))
    expect(InvalidCheckpointError, path, tensor="t", match="64")


def test_same_tensor_in_two_files_of_a_folder(tmp_path):
    folder = tmp_path / "m"
    write_model(folder / "a.safetensors", {"x": np.ones(2, np.float32), "y": np.ones(1, np.float32)})
    write_model(folder / "b.safetensors", {"x": np.ones(2, np.float32)})
    with pytest.raises(InvalidCheckpointError) as info:
        modelkin.open(folder)
    msg = str(info.value)
    assert "'x'" in msg and str(folder / "a.safetensors") in msg and str(folder / "b.safetensors") in msg


# -- sharded checkpoints --------------------------------------------------------------------------------


@pytest.fixture
def sharded(tmp_path):
    return write_sharded(tmp_path / "sharded", llama_state(0), n_shards=3)


@pytest.mark.parametrize("via", ["folder", "index"])
def test_missing_shard(sharded, via):
    (sharded / "model-00002-of-00003.safetensors").unlink()
    path = sharded if via == "folder" else sharded / INDEX_NAME
    with pytest.raises(MissingShardError) as info:
        modelkin.open(path)
    msg = str(info.value)
    assert str(sharded / INDEX_NAME) in msg and "model-00002-of-00003.safetensors" in msg
    with pytest.raises(FileNotFoundError):
        modelkin.diff(path, path)
    with pytest.raises(InvalidIndexError):
        modelkin.inspect(path)


def test_index_naming_tensor_absent_from_its_shard(sharded):
    index = read_index(sharded)
    index["weight_map"]["model.ghost.weight"] = "model-00001-of-00003.safetensors"
    write_index(sharded, index)
    msg = expect(InvalidIndexError, sharded / INDEX_NAME, tensor="model.ghost.weight")
    assert "model-00001-of-00003.safetensors" in msg


def test_index_putting_tensor_in_the_wrong_shard(sharded):
    index = read_index(sharded)
    name = next(n for n, s in index["weight_map"].items() if s == "model-00003-of-00003.safetensors")
    index["weight_map"][name] = "model-00001-of-00003.safetensors"
    write_index(sharded, index)
    expect(InvalidIndexError, sharded / INDEX_NAME, tensor=name)


@pytest.mark.parametrize(
    "shard",
    ["../model-00001-of-00003.safetensors", "../../etc/x.safetensors", "sub/../../x.safetensors", "ABSOLUTE"],
)
def test_index_with_shard_path_escaping_the_folder(sharded, shard):
    # A real file outside the folder: refused for where it is, not for being missing.
    outside = sharded.parent / "model-00001-of-00003.safetensors"
    shutil.copy(sharded / "model-00001-of-00003.safetensors", outside)
    if shard == "ABSOLUTE":
        shard = str(outside)
    index = read_index(sharded)
    for name, s in index["weight_map"].items():
        if s == "model-00001-of-00003.safetensors":
            index["weight_map"][name] = shard
    write_index(sharded, index)
    msg = expect(
        InvalidIndexError, sharded / INDEX_NAME, match="not a plain path inside the checkpoint folder"
    )
    assert shard in msg


def test_index_with_empty_shard_name(sharded):
    index = read_index(sharded)
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = ""
    write_index(sharded, index)
    expect(InvalidIndexError, sharded / INDEX_NAME, tensor=first)


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "",
        '{"weight_map": ',
        "[]",
        '{"metadata": {}}',
        '{"weight_map": []}',
        '{"weight_map": {}}',
        '{"weight_map": {"x": 3}}',
    ],
    ids=["bad-json", "empty", "eof", "list", "no-weight-map", "map-not-object", "empty-map", "shard-not-str"],
)
def test_malformed_index(sharded, text):
    (sharded / INDEX_NAME).write_text(text)
    expect(InvalidIndexError, sharded / INDEX_NAME)
    with pytest.raises(InvalidIndexError):
        modelkin.open(sharded)


def test_folder_with_two_indexes_is_ambiguous(sharded):
    shutil.copy(sharded / INDEX_NAME, sharded / "other.safetensors.index.json")
    (sharded / INDEX_NAME).rename(sharded / "another.safetensors.index.json")
    with pytest.raises(UnsupportedFormatError, match="index"):
        modelkin.open(sharded)


# -- paths and foreign formats --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["missing.safetensors", "missing-folder", "missing.safetensors.index.json"])
def test_path_that_does_not_exist(tmp_path, name):
    path = tmp_path / name
    for call in (
        lambda: modelkin.open(path),
        lambda: modelkin.inspect(path),
        lambda: modelkin.diff(path, path),
    ):
        with pytest.raises(FileNotFoundError) as info:
            call()
        assert str(path) in str(info.value)
        assert not isinstance(info.value, ModelkinError)


def test_missing_b_side_of_a_diff_names_b(tmp_path):
    a = write_model(tmp_path / "a.safetensors", {"x": np.ones(2, np.float32)})
    with pytest.raises(FileNotFoundError, match=r"b\.safetensors"):
        modelkin.diff(a, tmp_path / "b.safetensors")


@pytest.mark.parametrize(
    "contents", [[], ["README.md", "config.json", "pytorch_model.bin"]], ids=["empty", "others"]
)
def test_folder_without_safetensors(tmp_path, contents):
    folder = tmp_path / "model"
    folder.mkdir()
    for name in contents:
        (folder / name).write_bytes(b"{}")
    for call in (
        lambda: modelkin.open(folder),
        lambda: modelkin.inspect(folder),
        lambda: modelkin.diff(folder, folder),
    ):
        with pytest.raises(UnsupportedFormatError) as info:
            call()
        assert str(folder) in str(info.value)


def torch_like_zip() -> bytes:
    """The layout of a PyTorch ``torch.save`` archive whose pickle is broken (SETITEM without a value)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01s.")
        z.writestr("archive/data/0", b"\0" * 16)
        z.writestr("archive/version", b"3\n")
    return buf.getvalue()


#: ``torch.save(..., _use_new_zipfile_serialization=False)``: a raw pickle after torch's magic number.
LEGACY_TORCH = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03."

FOREIGN = {
    "legacy-torch": LEGACY_TORCH,
    "pickle-p4": b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01w\x94K\x01s.",
    "pickle-p2": b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01K\x01s.",
}


@pytest.mark.parametrize("kind", list(FOREIGN))
@pytest.mark.parametrize("name", ["model.safetensors", "pytorch_model.bin"])
def test_foreign_formats_are_unsupported_and_never_unpickled(tmp_path, kind, name):
    path = write(tmp_path, FOREIGN[kind], name)
    msg = expect(UnsupportedFormatError, path)
    if kind.startswith("pickle") or kind == "legacy-torch":
        assert "never unpickles" in msg
    if kind == "legacy-torch":
        assert "legacy format" in msg


@pytest.mark.parametrize("name", ["model.safetensors", "pytorch_model.bin"])
def test_torch_zip_with_a_broken_pickle_is_invalid_whatever_its_name(tmp_path, name):
    path = write(tmp_path, torch_like_zip(), name)
    expect(InvalidCheckpointError, path, match="archive/data.pkl, pickle offset 13: stack underflow")


def test_torch_zip_with_a_deflated_pickle_is_unsupported(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    expect(UnsupportedFormatError, path, match="'archive/data.pkl' is compressed with deflate")


@pytest.mark.parametrize("kind", ["pickle-p2", "legacy-torch"])
def test_pickle_in_a_folder_is_refused_never_loaded(tmp_path, kind):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(FOREIGN[kind])
    with pytest.raises(UnsupportedFormatError, match="never unpickles") as info:
        modelkin.open(folder)
    assert str(folder / "pytorch_model.bin") in str(info.value)


def test_not_a_regular_file(tmp_path):
    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null")
    with pytest.raises(UnsupportedFormatError, match="/dev/null"):
        modelkin.open("/dev/null")


# -- fuzzing --------------------------------------------------------------------------------------------

VALID = valid_small_file()


def read_all(path: Path, other: Path) -> None:
    """Opens, inspects and diffs ``path``; only ModelkinError (naming the file, no panic) may come out."""
    try:
        ck = modelkin.open(path)
        res = modelkin.inspect(path, threads=2)
        assert [t.name for t in res.tensors] == [t.name for t in ck.tensors]
        modelkin.diff(path, other, threads=2)
        modelkin.diff(other, path, threads=1)
    except ModelkinError as e:
        msg = str(e)
        assert "internal error" not in msg, msg  # a panic inside the engine
        assert str(path) in msg, msg


MUTATION = st.one_of(
    edits(len(VALID)),
    # The length prefix deserves its own share of attention.
    st.tuples(st.just("set"), st.just(0), st.integers(0, 2**64 - 1).map(lambda n: n.to_bytes(8, "little"))),
)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_random_byte_mutations_never_crash(tmp_path_factory, mutations):
    folder = tmp_path_factory.mktemp("fuzz")
    other = folder / "valid.safetensors"
    other.write_bytes(VALID)
    path = folder / "mutated.safetensors"
    path.write_bytes(apply(VALID, mutations))
    read_all(path, other)


HEADER = json.loads(VALID[8 : 8 + int.from_bytes(VALID[:8], "little")])
DATA = VALID[8 + int.from_bytes(VALID[:8], "little") :]
ODD_NUMBERS = st.sampled_from(
    [-1, 0, 1, 2, 3, 7, 8, 24, 2**31, 2**32, 2**53, 2**63 - 1, 2**63, 2**64 - 1, 2**64]
)
ODD_VALUES = st.one_of(
    ODD_NUMBERS,
    st.integers(0, len(DATA) + 8),
    st.sampled_from([1.5, -0.0, "3", None, [], {}, True]),
)
DTYPES = st.sampled_from(
    [
        "F64",
        "F32",
        "F16",
        "BF16",
        "F8_E4M3",
        "F8_E5M2",
        "I64",
        "I32",
        "I16",
        "I8",
        "U64",
        "U32",
        "U16",
        "U8",
        "BOOL",
        "Q4",
        "",
        "f32",
    ]
)


@st.composite
def mutated_headers(draw):
    header = json.loads(json.dumps(HEADER))
    names = sorted(k for k in header if k != "__metadata__")
    for _ in range(draw(st.integers(1, 3))):
        t = header[draw(st.sampled_from(names))]
        field = draw(st.sampled_from(["dtype", "shape", "begin", "end", "dim"]))
        if field == "dtype":
            t["dtype"] = draw(DTYPES)
        elif field == "shape":
            t["shape"] = draw(st.lists(ODD_VALUES, max_size=3))
        elif field == "begin":
            t["data_offsets"][0] = draw(ODD_VALUES)
        elif field == "end":
            t["data_offsets"][1] = draw(ODD_VALUES)
        elif t["shape"]:
            t["shape"][draw(st.integers(0, len(t["shape"]) - 1))] = draw(ODD_VALUES)
    data = DATA[: draw(st.integers(0, len(DATA)))] if draw(st.booleans()) else DATA
    return raw_file(header, data)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated_headers())
def test_random_header_values_never_crash(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("fuzzh")
    other = folder / "valid.safetensors"
    other.write_bytes(VALID)
    path = folder / "mutated.safetensors"
    path.write_bytes(data)
    read_all(path, other)


def test_fuzz_seed_file_is_valid(tmp_path):
    path = write(tmp_path, VALID)
    assert [t.name for t in modelkin.open(path).tensors] == ["b", "h", "i", "s", "w"]
