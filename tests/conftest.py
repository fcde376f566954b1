"""Shared fixtures: small Llama-shaped checkpoints written with the official safetensors package."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

# The model builders and derivation helpers live in tests/support/ and are imported by their module names
# (``from models import ...``), by the tests and by the scripts in benches/. Nothing there is a test.
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))

from models import llama_state, noised, write_sharded, write_single

collect_ignore = ["support"]


@pytest.fixture(scope="session")
def base_state() -> dict[str, np.ndarray]:
    """A tiny Llama-shaped float32 state dict (treat as read-only)."""
    return llama_state(seed=0)


@pytest.fixture(scope="session")
def noised_state(base_state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``base_state`` plus N(0, 1e-3²) noise in every tensor (treat as read-only)."""
    return noised(base_state, 1e-3, seed=1)


@pytest.fixture
def base_file(tmp_path: Path, base_state: dict[str, np.ndarray]) -> Path:
    """``base_state`` in one ``.safetensors`` file."""
    return write_single(tmp_path / "base" / "model.safetensors", base_state, {"format": "pt"})


@pytest.fixture
def noised_file(tmp_path: Path, noised_state: dict[str, np.ndarray]) -> Path:
    """``noised_state`` in one ``.safetensors`` file."""
    return write_single(tmp_path / "noised" / "model.safetensors", noised_state, {"format": "pt"})


@pytest.fixture
def noised_sharded(tmp_path: Path, noised_state: dict[str, np.ndarray]) -> Path:
    """``noised_state`` sharded into three files plus an index; the folder."""
    return write_sharded(tmp_path / "noised-sharded", noised_state, n_shards=3, metadata={"format": "pt"})
