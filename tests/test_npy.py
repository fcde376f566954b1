"""NumPy ``.npy`` files (and folders of them) read like checkpoints; object arrays are never loaded."""

from __future__ import annotations

from pathlib import Path

import modelkin
import numpy as np
import pytest


def test_a_folder_of_npy_files_is_a_checkpoint(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {"w": rng.normal(0, 0.02, (64, 32)).astype(np.float32), "b": np.arange(7, dtype=np.int16)}
    for side, noise in (("a", 0.0), ("b", 1e-3)):
        (tmp_path / side).mkdir()
        for name, x in arrays.items():
            y = x + rng.normal(0, noise, x.shape).astype(x.dtype) if x.dtype.kind == "f" else x
            np.save(tmp_path / side / f"{name}.npy", y)
    info = modelkin.open(tmp_path / "a")
    assert info.format == "npy"
    assert {t.name: (t.dtype, t.shape) for t in info.tensors} == {"w": ("F32", (64, 32)), "b": ("I16", (7,))}
    res = modelkin.diff(tmp_path / "a", tmp_path / "b")
    assert res["b"].stats.equal == 7
    assert res["w"].stats.d.std == pytest.approx(1e-3, rel=0.15)
    single = modelkin.inspect(tmp_path / "a" / "w.npy").tensors[0]
    assert single.stats.mean == pytest.approx(
        float(arrays["w"].astype(np.float64).mean()), rel=1e-9, abs=1e-12
    )


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.array([{"a": 1}], dtype=object), "pickle"),
        (np.asfortranarray(np.ones((3, 4), dtype=np.float32)), "Fortran"),
        (np.ones(3, dtype=">f4"), "big-endian"),
    ],
)
def test_npy_files_modelkin_cannot_read_safely_are_refused(
    tmp_path: Path, array: np.ndarray, message: str
) -> None:
    path = tmp_path / "x.npy"
    np.save(path, array, allow_pickle=True)
    with pytest.raises(modelkin.UnsupportedFormatError, match=message):
        modelkin.open(path)


def test_a_truncated_npy_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t.npy"
    np.save(path, np.ones(100, dtype=np.float32))
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(modelkin.InvalidCheckpointError, match=r"t\.npy.*truncated"):
        modelkin.open(path)
