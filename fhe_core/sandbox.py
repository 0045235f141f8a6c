"""Run kernels on untrusted bundles in a child process with memory and time limits.

The child is a fresh interpreter (``python -m blindframe.fhe_core._child JOB.json``) that sets
its own ``RLIMIT_AS`` and ``RLIMIT_CPU`` before importing Concrete, reads its inputs from files,
writes its result to a file, and reports a Python-level failure as JSON. The parent survives
whatever native code does in the child (segfault, abort, OOM, endless loop) and raises
:class:`SandboxError` saying which, with the limit that was hit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blindframe.fhe_core._kernel import IntArray
from blindframe.fhe_core.errors import SandboxError

__all__ = [
    "DEFAULT_MEMORY_BYTES",
    "DEFAULT_TIMEOUT_S",
    "SandboxResult",
    "run_in_child",
    "run_tile_sandboxed",
]

DEFAULT_MEMORY_BYTES = 8 << 30
DEFAULT_TIMEOUT_S = 600.0
# Exit status the child uses for "a Python exception, described in the error file".
CHILD_ERROR_EXIT = 3
CHILD_MEMORY_EXIT = 4


@dataclass(frozen=True)
class SandboxResult:
    """What a child returned: its JSON answer and how long it ran."""

    answer: dict[str, Any]
    seconds: float


def run_in_child(
    target: str,
    payload: Mapping[str, Any],
    *,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    threads: int | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> SandboxResult:
    """Call ``target`` (``"package.module:function"``, taking and returning a JSON dict) in a
    limited child process. The parent, not the job, chooses ``target``."""
    with tempfile.TemporaryDirectory(prefix="bf-sandbox-") as tmp:
        job = Path(tmp) / "job.json"
        answer = Path(tmp) / "answer.json"
        job.write_text(
            json.dumps(
                {
                    "target": target,
                    "payload": dict(payload),
                    "answer": str(answer),
                    "memory_bytes": int(memory_bytes),
                    "cpu_seconds": int(timeout_s * 2) + 5,
                }
            )
        )
        env = dict(os.environ)
        if threads is not None:
            env["OMP_NUM_THREADS"] = str(threads)
        env.update(extra_env or {})
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "blindframe.fhe_core._child", str(job)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a timeout kills all it started
        )
        try:
            _out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise SandboxError(
                f"{target} ran out of time: killed after {timeout_s:.0f} s",
                hint="raise the time limit or give the worker more cores",
            ) from None
        seconds = time.monotonic() - start
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        code = proc.returncode
        if code == 0 and answer.is_file():
            return SandboxResult(json.loads(answer.read_text()), seconds)
        if code == CHILD_ERROR_EXIT and answer.is_file():
            info = json.loads(answer.read_text())
            raise SandboxError(f"{target} failed in the child: {info['error']}: {info['message']}")
        if code == CHILD_MEMORY_EXIT or (
            code == -signal.SIGABRT and any("bad_alloc" in line for line in tail)
        ):
            raise SandboxError(
                f"{target} ran out of memory (limit {memory_bytes >> 20} MiB)",
                hint="the bundle may be malformed, or raise the memory limit",
            )
        if code == -signal.SIGXCPU:
            raise SandboxError(
                f"{target} ran out of CPU time (limit {2 * timeout_s + 5:.0f} s)",
                hint="raise the time limit or give the worker more cores",
            )
        if code < 0:
            name = signal.Signals(-code).name
            raise SandboxError(
                f"{target} crashed in native code ({name}); the worker is unharmed"
                + (f": {' | '.join(tail)}" if tail else ""),
                hint="the input bundle is probably malformed: reject the task",
            )
        raise SandboxError(
            f"{target} exited with status {code}" + (f": {' | '.join(tail)}" if tail else "")
        )


def run_tile_sandboxed(
    kernel_id: str,
    input_path: Path,
    eval_keys_path: Path,
    clear: IntArray,
    tile_index: int,
    out_path: Path,
    *,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    threads: int | None = None,
) -> SandboxResult:
    """Run one tile in a child; its OUTPUT bundle lands in ``out_path``.

    ``clear`` is the tile's clear argument (:func:`server.tile_clear_args`), computed by the
    worker from the job's public parameters.
    """
    out_path = Path(out_path)
    with tempfile.NamedTemporaryFile(suffix=".npy", delete=False) as fh:
        np.save(fh, np.asarray(clear, dtype=np.int64), allow_pickle=False)
        clear_path = Path(fh.name)
    try:
        return run_in_child(
            "blindframe.fhe_core._child:run_tile_job",
            {
                "kernel_id": kernel_id,
                "input_path": str(input_path),
                "eval_keys_path": str(eval_keys_path),
                "clear_path": str(clear_path),
                "tile_index": int(tile_index),
                "out_path": str(out_path),
            },
            memory_bytes=memory_bytes,
            timeout_s=timeout_s,
            threads=threads,
        )
    finally:
        clear_path.unlink(missing_ok=True)
