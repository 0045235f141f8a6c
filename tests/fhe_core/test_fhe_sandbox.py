"""The sandbox child: real tiles run there; crashes, OOM and timeouts leave the parent intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from blindframe.fhe_core.client import KernelClient
from blindframe.fhe_core.errors import SandboxError
from blindframe.fhe_core.jobs import PublicJob
from blindframe.fhe_core.keys import evaluation_keys_path
from blindframe.fhe_core.lease_child import tile_path
from blindframe.fhe_core.sandbox import (
    DEFAULT_MEMORY_BYTES,
    LEASE,
    PING,
    _outcome,
    lease_request,
    run_in_child,
)
from blindframe.fhe_core.server import tile_clear_args

# The misbehaving calls run in a test child program (faulty.py) built on the real child entry.
FAULTY = "faulty"
ENV = {"PYTHONPATH": str(Path(__file__).parent)}
# A post@1 job of one 8 x 8 tile and a canary: tasks 0 and 1.
POST_JOB = PublicJob("post@1", {"filter": "edge"}, (8, 8), 2, False).to_json()


def test_child_returns_its_answer() -> None:
    res = run_in_child(PING, {"x": 1}, timeout_s=60)
    assert res.answer == {"x": 1}


def test_the_child_runs_only_its_own_calls() -> None:
    with pytest.raises(
        SandboxError, match=r"expected a call of lease\|ping\|survey \(not 'faulty:echo'\)"
    ):
        run_in_child("faulty:echo", {}, timeout_s=60)
    with pytest.raises(SandboxError, match="expected a call of"):
        run_in_child("os:system", {}, timeout_s=60)


def test_segfault_is_reported() -> None:
    with pytest.raises(SandboxError, match="SIGSEGV"):
        run_in_child("segfault", {}, timeout_s=60, entry=FAULTY, extra_env=ENV)


def test_memory_limit_is_reported() -> None:
    with pytest.raises(SandboxError, match="ran out of memory"):
        run_in_child(
            "hog_memory",
            {"blocks": 8},
            memory_bytes=1 << 30,
            timeout_s=60,
            entry=FAULTY,
            extra_env=ENV,
        )


def test_timeout_kills_the_child() -> None:
    with pytest.raises(SandboxError, match="ran out of time"):
        run_in_child("sleep", {"seconds": 60}, timeout_s=2, entry=FAULTY, extra_env=ENV)


def test_a_spinning_child_is_killed_at_its_wall_clock_limit(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    start = time.monotonic()
    with pytest.raises(SandboxError, match=r"the sandboxed spin ran out of time: killed after 3 s"):
        run_in_child(
            "spin",
            {"seconds": 600, "pid_file": str(pid_file)},
            timeout_s=3,
            entry=FAULTY,
            extra_env=ENV,
        )
    # Killed at its limit (plus the child's start-up), not when it would have finished, and
    # gone: nothing left spinning.
    assert time.monotonic() - start < 60
    pid = int(pid_file.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_spinning_child_is_stopped_by_its_cpu_limit(tmp_path: Path) -> None:
    """The CPU limit the child sets itself (RLIMIT_CPU, ``cpu_seconds`` of its job; the parent
    passes twice the wall limit, against children that spin many threads): the real child
    entry, given one CPU second, is stopped by SIGXCPU; the parent names that clearly."""
    answer = tmp_path / "answer.json"
    job = tmp_path / "job.json"
    job.write_text(
        json.dumps(
            {
                "call": "spin",
                "payload": {"seconds": 600, "pid_file": str(tmp_path / "pid")},
                "answer": str(answer),
                "memory_bytes": DEFAULT_MEMORY_BYTES,
                "cpu_seconds": 1,
                "fft_plan": None,
            }
        )
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", FAULTY, str(job)],
        env={**os.environ, **ENV},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGXCPU, done.stderr[-2000:]
    assert time.monotonic() - start < 60
    with pytest.raises(SandboxError, match=r"the sandboxed spin ran out of CPU time \(limit 7 s\)"):
        _outcome("spin", done.returncode, [], answer, DEFAULT_MEMORY_BYTES, 1)


def test_python_errors_are_reported() -> None:
    with pytest.raises(SandboxError, match="ValueError: boom"):
        run_in_child("fail", {"message": "boom"}, timeout_s=60, entry=FAULTY, extra_env=ENV)


def test_real_tile_in_the_sandbox(
    tmp_path: Path, key_dir: Path, clients: dict[str, KernelClient]
) -> None:
    """A single tile is a lease of one: the child compiles the kernel from its id and derives
    the clear argument from the public job."""
    kid = "post@1"
    client = clients[kid]
    plain = np.random.default_rng(5).integers(0, 8, (10, 10))
    (tmp_path / "in").write_bytes(client.encrypt(plain, tile_index=1))
    res = run_in_child(
        LEASE,
        lease_request(
            POST_JOB, [1], [tmp_path / "in"], evaluation_keys_path(kid, key_dir), tmp_path
        ),
        threads=1,
        timeout_s=300,
    )
    (done,) = res.answer["tiles"]
    out = tile_path(tmp_path, 1)
    assert done["tile"] == 1
    assert done["path"] == str(out)
    assert done["bytes"] == out.stat().st_size
    assert "fft_plan" not in res.answer
    got = client.decrypt(out.read_bytes(), tile_index=1)
    clear = tile_clear_args(kid, {"filter": "edge"}, (8, 8), 0)
    np.testing.assert_array_equal(got, client.kernel.twin((plain,), clear))


def test_a_lease_that_does_not_fit_its_job_fails_in_the_child(
    tmp_path: Path, key_dir: Path
) -> None:
    keys = evaluation_keys_path("post@1", key_dir)
    request = lease_request(POST_JOB, [1], [tmp_path / "in"], keys, tmp_path)
    with pytest.raises(SandboxError, match="the job is for post@1, the lease for shade@1"):
        run_in_child(LEASE, {**request, "kernel": "shade@1"}, timeout_s=120)
    (tmp_path / "in").write_bytes(b"")
    with pytest.raises(SandboxError, match="ParameterError: task 2 is outside a job of 2"):
        run_in_child(
            LEASE, lease_request(POST_JOB, [2], [tmp_path / "in"], keys, tmp_path), timeout_s=120
        )


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
    job = PublicJob(kid, {"filter": "blur"}, (8, 8), 1, False).to_json()
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SandboxError):
        run_in_child(
            LEASE,
            lease_request(job, [0], [tmp_path / "in"], tmp_path / "ek", out),
            timeout_s=120,
            memory_bytes=4 << 30,
        )
    assert not any(out.iterdir())
