"""The fuzzing corpus (``tests/corpus/``, minimised inputs from the cargo-fuzz runs under ``fuzz/``)
through the Python API: every file opens and reads, or raises ``ModelkinError`` naming the file —
never another exception, never a crash of the interpreter."""

from __future__ import annotations

import shutil
from pathlib import Path

import modelkin
import pytest
from modelkin import ModelkinError
from torch_files import write_torch_zip

CORPUS = Path(__file__).parent / "corpus"
#: Corpus folders whose files are whole checkpoint files (the other targets' inputs are fragments
#: such as headers without data, which still must fail cleanly when opened as files).
TARGETS = ("open_and_read", "safetensors_header", "npy_header", "torch_zip", "gguf")


def _files(target: str) -> list[Path]:
    return sorted(p for p in (CORPUS / target).iterdir() if p.is_file())


def test_every_target_has_a_corpus() -> None:
    for target in (*TARGETS, "index", "pickle"):
        assert _files(target), f"tests/corpus/{target} is empty"


@pytest.mark.parametrize("target", TARGETS)
def test_corpus_files_open_and_read_or_raise_modelkin_error(target: str, tmp_path: Path) -> None:
    outcomes = {"read": 0, "refused": 0}
    for src in _files(target):
        path = tmp_path / src.name
        shutil.copyfile(src, path)
        try:
            modelkin.inspect(path, threads=1)
        except ModelkinError as e:
            assert str(path) in str(e), f"{src.name}: the error does not name the file: {e}"
            outcomes["refused"] += 1
        else:
            outcomes["read"] += 1
        path.unlink()
    assert outcomes["refused"] > 0  # a corpus of hostile inputs refuses something


def test_corpus_index_files_never_reach_outside_their_folder(tmp_path: Path) -> None:
    shard = tmp_path / "shard-1.safetensors"
    header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    shard.write_bytes(len(header).to_bytes(8, "little") + header + bytes(8))
    for src in _files("index"):
        shutil.copyfile(src, tmp_path / "model.safetensors.index.json")
        try:
            info = modelkin.open(tmp_path)
        except ModelkinError:
            continue
        assert all(Path(f.path).resolve().is_relative_to(tmp_path.resolve()) for f in info.files), src.name


def test_corpus_pickles_inside_a_torch_archive_read_or_raise_modelkin_error(tmp_path: Path) -> None:
    # Each pickle of the pickle reader's corpus as the data.pkl of a PyTorch archive: the reader must
    # refuse it with ModelkinError or describe tensors it can read; nothing is ever executed.
    refused = 0
    for src in _files("pickle"):
        path = write_torch_zip(tmp_path / "m.bin", src.read_bytes())
        try:
            modelkin.inspect(path, threads=1)
        except ModelkinError:
            refused += 1
        path.unlink()
    assert refused > 0
