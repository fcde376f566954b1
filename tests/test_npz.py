"""NumPy ``.npz`` files (``numpy.savez``) read like checkpoints, their arrays in place; compressed
members (``numpy.savez_compressed``) and pickled object arrays are refused, never loaded."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import modelkin
import numpy as np
import pytest
from modelkin import InvalidCheckpointError, UnsupportedFormatError
from models import write_single


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "w": rng.normal(0, 0.02, (32, 16)).astype(np.float32),
        "h": rng.normal(0, 1, 9).astype(np.float16),
        "d": rng.normal(0, 1, (3, 2, 2)),
        "ids": rng.integers(-(2**40), 2**40, 11),
        "small": rng.integers(-100, 100, 5).astype(np.int8),
        "u": rng.integers(0, 60000, 4).astype(np.uint16),
        "mask": rng.random(6) > 0.5,
        "scalar": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def test_savez_reads_equal_to_numpy(tmp_path: Path) -> None:
    x = arrays()
    npz = tmp_path / "arrays.npz"
    np.savez(npz, **x)
    info = modelkin.open(npz)
    assert info.format == "npz"
    assert {t.name: t.shape for t in info.tensors} == {k: v.shape for k, v in x.items()}
    res = modelkin.diff(npz, write_single(tmp_path / "same.safetensors", x), threads=1)
    assert not res.only_a and not res.only_b and not res.shape_mismatch
    assert all(p.stats.equal == p.numel for p in res.pairs)
    stats = {t.name: t.stats for t in modelkin.inspect(npz, threads=1).tensors}
    loaded = np.load(npz)
    for name in ("w", "h", "d", "ids"):
        v = loaded[name].astype(np.float64)
        assert stats[name].mean == pytest.approx(v.mean(), rel=1e-9, abs=1e-15), name
        assert (stats[name].min, stats[name].max) == (v.min(), v.max()), name


def test_positional_arrays_and_a_file_object_are_read(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.savez(buf, np.arange(4, dtype=np.int32), np.ones((2, 2)))
    npz = tmp_path / "pos.npz"
    npz.write_bytes(buf.getvalue())
    assert [(t.name, t.dtype) for t in modelkin.open(npz).tensors] == [("arr_0", "I32"), ("arr_1", "F64")]


def test_npz_and_npy_compare_across_formats(tmp_path: Path) -> None:
    x = arrays(1)
    np.savez(tmp_path / "a.npz", **x)
    (tmp_path / "b").mkdir()
    for k, v in x.items():
        np.save(tmp_path / "b" / f"{k}.npy", v)
    res = modelkin.diff(tmp_path / "a.npz", tmp_path / "b")
    assert res.a.format == "npz" and res.b.format == "npy"
    assert all(p.stats.equal == p.numel for p in res.pairs) and len(res.pairs) == len(x)


def test_zip64_npz_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 0)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 0)
    npz = tmp_path / "z64.npz"
    np.savez(npz, w=np.arange(10, dtype=np.float32))
    monkeypatch.undo()
    assert b"PK\x06\x06" in npz.read_bytes()
    assert modelkin.inspect(npz).tensors[0].stats.max == 9.0


def test_savez_compressed_is_refused_naming_the_member(tmp_path: Path) -> None:
    npz = tmp_path / "c.npz"
    np.savez_compressed(npz, weights=np.ones(100, np.float32))
    with pytest.raises(
        UnsupportedFormatError, match=r"c\.npz: member 'weights\.npy' is compressed with deflate"
    ):
        modelkin.open(npz)


def test_object_arrays_are_refused_never_unpickled(tmp_path: Path) -> None:
    npz = tmp_path / "o.npz"
    np.savez(npz, ok=np.ones(2), obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(UnsupportedFormatError, match=r"member 'obj\.npy': this \.npy holds Python objects"):
        modelkin.open(npz)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.asfortranarray(np.ones((3, 4), dtype=np.float32)), "member 'x.npy': Fortran-ordered"),
        (np.ones(3, dtype=">f4"), "member 'x.npy': big-endian"),
        (np.ones(3, dtype=np.complex64), "member 'x.npy': dtype '<c8'"),
    ],
)
def test_members_modelkin_cannot_read_are_refused(tmp_path: Path, array: np.ndarray, message: str) -> None:
    npz = tmp_path / "m.npz"
    np.savez(npz, x=array)
    with pytest.raises(UnsupportedFormatError, match=message):
        modelkin.open(npz)


def test_a_zip_of_other_files_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(UnsupportedFormatError, match=r"neither a PyTorch checkpoint .* nor a NumPy \.npz"):
        modelkin.open(path)


@pytest.mark.parametrize("cut", [10, 100, -30, -1])
def test_a_truncated_npz_is_invalid(tmp_path: Path, cut: int) -> None:
    full = tmp_path / "full.npz"
    np.savez(full, **arrays())
    npz = tmp_path / "cut.npz"
    npz.write_bytes(full.read_bytes()[:cut])
    with pytest.raises(InvalidCheckpointError, match=r"cut\.npz: invalid zip archive"):
        modelkin.open(npz)


def test_a_member_shorter_than_its_header_says_is_invalid(tmp_path: Path) -> None:
    one = io.BytesIO()
    np.save(one, np.ones(10, np.float32))
    path = tmp_path / "short.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("w.npy", one.getvalue()[:-8])
    with pytest.raises(InvalidCheckpointError, match=r"tensor 'w'.*truncated"):
        modelkin.open(path)


def test_a_member_with_a_broken_header_names_the_member(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("w.npy", b"\x93NUMPY\x01\x00\x40\x00{'descr': '<f4'}")
    with pytest.raises(InvalidCheckpointError, match=r"invalid NumPy \.npz archive: member 'w\.npy'"):
        modelkin.open(path)


def test_a_npz_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fake.npz"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(UnsupportedFormatError, match=r"not a NumPy \.npz"):
        modelkin.open(path)
