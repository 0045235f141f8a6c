"""The sandbox child: real tiles run there; crashes, OOM and timeouts leave the parent intact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from blindframe.fhe_core.client import KernelClient
from blindframe.fhe_core.errors import SandboxError
from blindframe.fhe_core.keys import evaluation_keys_path
from blindframe.fhe_core.sandbox import run_in_child, run_tile_sandboxed
from blindframe.fhe_core.server import tile_clear_args

ENV = {"PYTHONPATH": str(Path(__file__).parent)}


def test_child_returns_its_answer() -> None:
    res = run_in_child("faulty:echo", {"x": 1}, extra_env=ENV, timeout_s=60)
    assert res.answer == {"x": 1}


def test_segfault_is_reported() -> None:
    with pytest.raises(SandboxError, match="SIGSEGV"):
        run_in_child("faulty:segfault", {}, extra_env=ENV, timeout_s=60)


def test_memory_limit_is_reported() -> None:
    with pytest.raises(SandboxError, match="ran out of memory"):
        run_in_child(
            "faulty:hog_memory", {"blocks": 8}, memory_bytes=1 << 30, extra_env=ENV, timeout_s=60
        )


def test_timeout_kills_the_child() -> None:
    with pytest.raises(SandboxError, match="ran out of time"):
        run_in_child("faulty:sleep", {"seconds": 60}, timeout_s=2, extra_env=ENV)


def test_python_errors_are_reported() -> None:
    with pytest.raises(SandboxError, match="ValueError: boom"):
        run_in_child("faulty:fail", {"message": "boom"}, extra_env=ENV, timeout_s=60)


def test_real_tile_in_the_sandbox(
    tmp_path: Path, key_dir: Path, clients: dict[str, KernelClient]
) -> None:
    kid = "post@1"
    client = clients[kid]
    plain = np.random.default_rng(5).integers(0, 8, (10, 10))
    (tmp_path / "in").write_bytes(client.encrypt(plain, tile_index=1))
    clear = tile_clear_args(kid, {"filter": "edge"}, (8, 8), 0)
    res = run_tile_sandboxed(
        kid,
        tmp_path / "in",
        evaluation_keys_path(kid, key_dir),
        clear,
        1,
        tmp_path / "out",
        threads=1,
        timeout_s=300,
    )
    assert res.answer["bytes"] == (tmp_path / "out").stat().st_size
    got = client.decrypt((tmp_path / "out").read_bytes(), tile_index=1)
    np.testing.assert_array_equal(got, client.kernel.twin((plain,), clear))


def test_garbage_eval_keys_cannot_take_the_worker_down(
    tmp_path: Path, key_dir: Path, clients: dict[str, KernelClient]
) -> None:
    """A well-formed EVAL_KEYS header over random bytes: whatever Concrete does with them (error
    or crash) happens in the child, and the parent gets a SandboxError."""
    from blindframe.fhe_core import wire
    from blindframe.fhe_core.kernels import client_spec_hash
    from blindframe.fhe_core.keys import EVAL_VALUE

    kid = "post@1"
    junk = np.random.default_rng(9).integers(0, 256, 1 << 16, dtype=np.uint8).tobytes()
    keys = wire.write_bundle(
        wire.BundleKind.EVAL_KEYS,
        kid,
        client_spec_hash(kid),
        [wire.ValueEntry(EVAL_VALUE, (), junk)],
    )
    (tmp_path / "ek").write_bytes(keys)
    (tmp_path / "in").write_bytes(
        clients[kid].encrypt(np.zeros((10, 10), dtype=np.int64), tile_index=0)
    )
    clear = tile_clear_args(kid, {"filter": "blur"}, (8, 8), 0)
    with pytest.raises(SandboxError):
        run_tile_sandboxed(
            kid,
            tmp_path / "in",
            tmp_path / "ek",
            clear,
            0,
            tmp_path / "out",
            timeout_s=120,
            memory_bytes=4 << 30,
        )
    assert not (tmp_path / "out").exists()
