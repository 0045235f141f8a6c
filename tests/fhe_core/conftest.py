"""Fixtures of the fhe_core suite: one key set per kernel for the whole session (keygen is slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from blindframe.fhe_core.client import KernelClient
from blindframe.fhe_core.kernels import KERNEL_IDS
from blindframe.fhe_core.keys import export_evaluation_keys, generate_keys, read_evaluation_keys

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key directory holding a fresh key set for every kernel."""
    path = tmp_path_factory.mktemp("keys")
    for kernel_id in KERNEL_IDS:
        generate_keys(kernel_id, path)
    return path


@pytest.fixture(scope="session")
def clients(key_dir: Path) -> dict[str, KernelClient]:
    """A client per kernel, holding the session's secret keys."""
    return {kernel_id: KernelClient(kernel_id, key_dir) for kernel_id in KERNEL_IDS}


@pytest.fixture(scope="session")
def eval_bundles(key_dir: Path) -> dict[str, bytes]:
    """The EVAL_KEYS bundle of each kernel, as a worker downloads it."""
    return {kernel_id: export_evaluation_keys(kernel_id, key_dir) for kernel_id in KERNEL_IDS}


@pytest.fixture(scope="session")
def eval_keys(eval_bundles: dict[str, bytes]) -> dict[str, object]:
    """Deserialized evaluation keys (what a worker caches)."""
    return {k: read_evaluation_keys(k, v) for k, v in eval_bundles.items()}


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator: failures reproduce."""
    return np.random.default_rng(1234)
