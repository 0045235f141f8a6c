"""Parent side of the sandbox: run a lease in a child process with memory and time limits.

The child is a fresh interpreter (``python -m blindframe.fhe_core._child JOB.json``, the child
side) that sets its own ``RLIMIT_AS`` and ``RLIMIT_CPU`` before importing Concrete, runs one of
its fixed calls (:data:`LEASE`: :mod:`blindframe.fhe_core.lease_child`; :data:`PING`;
:data:`SURVEY`) on the untrusted bundles, reads its inputs from files, writes its result to a
file, and reports a Python-level failure as JSON. The parent chooses the call and every path; no
code or circuit a client sent is run (the child compiles the kernel from its id). The parent
survives whatever native code does in the child (segfault, abort, OOM, endless loop) and raises
:class:`SandboxError` saying which, with the limit that was hit.

With ``fft_plan`` (a job's FFT plan, :mod:`blindframe.fhe_core.plans`) the child first forks
candidates until one holds that plan, and the call runs there: its output is then
bit-identical to any other replica's pinned to the same plan. A plan the machine does not reach
within ``plan_attempts`` candidates per polynomial size raises :class:`PlanUnreachableError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from blindframe.fhe_core._child import CHILD_ERROR_EXIT, CHILD_MEMORY_EXIT
from blindframe.fhe_core.errors import SandboxError
from blindframe.fhe_core.plans import (
    DEFAULT_PLAN_ATTEMPTS,
    PLAN_UNREACHABLE_EXIT,
    PlanUnreachableError,
    isa_level,
    parse_plan,
)

if TYPE_CHECKING:
    from blindframe.fhe_core.lease_child import LeaseRequest

__all__ = [
    "CHILD_ENTRY",
    "DEFAULT_MEMORY_BYTES",
    "DEFAULT_PLAN_ATTEMPTS",
    "DEFAULT_TIMEOUT_S",
    "LEASE",
    "PING",
    "SURVEY",
    "PinnedChild",
    "PlanUnreachableError",
    "SandboxResult",
    "lease_request",
    "run_in_child",
]

DEFAULT_MEMORY_BYTES = 8 << 30
DEFAULT_TIMEOUT_S = 600.0

# The child's calls (``_child.CALLS``): compute a lease's tiles; answer the payload (what the
# sandbox itself costs); survey a kernel's FFT plans (``plans.survey_kernel``).
LEASE: Final = "lease"
PING: Final = "ping"
SURVEY: Final = "survey"
# The module every sandbox child runs (``python -m``); the node finds its children by this name.
CHILD_ENTRY: Final = "blindframe.fhe_core._child"


def lease_request(
    job: Mapping[str, Any],
    tiles: Sequence[int],
    inputs: Sequence[str | os.PathLike[str]],
    eval_keys: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    report_plan: bool = False,
    expanded_dir: str | os.PathLike[str] | None = None,
) -> LeaseRequest:
    """The payload of a :data:`LEASE` call: compute ``tiles`` (task indices) of the job whose
    public description (``PublicJob.to_json()``) is ``job``, one INPUT bundle path per tile, into
    ``out_dir`` (``lease_child.tile_path``); ``report_plan``: also answer the FFT plan the child
    computed with; ``expanded_dir``: keep a gathered kernel's expanded shared input there for the
    job's next leases."""
    request: LeaseRequest = {
        "kernel": str(job["kernel"]),
        "job": dict(job),
        "tiles": [int(t) for t in tiles],
        "inputs": [os.fspath(p) for p in inputs],
        "eval_keys": os.fspath(eval_keys),
        "out_dir": os.fspath(out_dir),
    }
    if report_plan:
        request["report_plan"] = True
    if expanded_dir is not None:
        request["expanded_dir"] = os.fspath(expanded_dir)
    return request


@dataclass(frozen=True)
class SandboxResult:
    """What a child returned: its JSON answer and how long it ran; when pinned, the FFT plan it
    ran with, the candidate processes that took, and the seconds spent on them."""

    answer: dict[str, Any]
    seconds: float
    fft_plan: str | None = None
    plan_attempts: int = 0
    pin_seconds: float = 0.0


def run_in_child(
    call: str,
    payload: Mapping[str, Any],
    *,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    threads: int | None = None,
    extra_env: Mapping[str, str] | None = None,
    fft_plan: str | None = None,
    plan_attempts: int = DEFAULT_PLAN_ATTEMPTS,
    entry: str = CHILD_ENTRY,
) -> SandboxResult:
    """Run the child's ``call`` (:data:`LEASE`, :data:`PING` or :data:`SURVEY`, taking and
    answering a JSON dict) on ``payload`` in a fresh limited child process.

    ``fft_plan``: run the call in a process pinned to this FFT plan (validated here; a plan of
    another SIMD code path fails at once with PlanUnreachableError, without a child).
    ``entry``: the child program (``python -m``); tests substitute one whose calls misbehave."""
    if fft_plan is not None:
        _check_reachable(fft_plan)
    with tempfile.TemporaryDirectory(prefix="bf-sandbox-") as tmp:
        job = Path(tmp) / "job.json"
        answer = Path(tmp) / "answer.json"
        report = Path(tmp) / "plan.json"
        job.write_text(
            json.dumps(
                {
                    "call": call,
                    "payload": dict(payload),
                    "answer": str(answer),
                    "memory_bytes": int(memory_bytes),
                    "cpu_seconds": int(timeout_s * 2) + 5,
                    "fft_plan": fft_plan,
                    "plan_attempts": int(plan_attempts),
                    "plan_report": str(report),
                }
            )
        )
        env = dict(os.environ)
        if threads is not None:
            env["OMP_NUM_THREADS"] = str(threads)
        env.update(extra_env or {})
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", entry, str(job)],
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
                f"{_what(call)} ran out of time: killed after {timeout_s:.0f} s",
                hint="raise the time limit or give the worker more cores",
            ) from None
        seconds = time.monotonic() - start
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        code = proc.returncode
        result = _outcome(call, code, tail, answer, memory_bytes, timeout_s)
        pinned = json.loads(report.read_text()) if report.is_file() else {}
        return SandboxResult(
            result,
            seconds,
            fft_plan=pinned.get("plan"),
            plan_attempts=int(pinned.get("attempts", 0)),
            pin_seconds=float(pinned.get("seconds", 0.0)),
        )


def _what(call: str) -> str:
    """How errors name a call: ``the sandboxed lease``."""
    return f"the sandboxed {call}"


def _outcome(
    call: str, code: int, tail: list[str], answer: Path, memory_bytes: int, timeout_s: float
) -> dict[str, Any]:
    """The answer of a call that ended with status ``code`` (a negative signal number, as
    ``Popen.returncode``), or the SandboxError that says how it failed."""
    what = _what(call)
    if code == 0 and answer.is_file():
        result: dict[str, Any] = json.loads(answer.read_text())
        return result
    if code == PLAN_UNREACHABLE_EXIT and answer.is_file():
        info = json.loads(answer.read_text())
        raise PlanUnreachableError(info["message"], hint=info.get("hint") or None)
    if code == CHILD_ERROR_EXIT and answer.is_file():
        info = json.loads(answer.read_text())
        raise SandboxError(f"{what} failed in the child: {info['error']}: {info['message']}")
    if code == CHILD_MEMORY_EXIT or (
        code == -signal.SIGABRT and any("bad_alloc" in line for line in tail)
    ):
        raise SandboxError(
            f"{what} ran out of memory (limit {memory_bytes >> 20} MiB)",
            hint="the bundle may be malformed, or raise the memory limit",
        )
    if code == -signal.SIGXCPU:
        raise SandboxError(
            f"{what} ran out of CPU time (limit {2 * timeout_s + 5:.0f} s)",
            hint="raise the time limit or give the worker more cores",
        )
    if code < 0:
        name = signal.Signals(-code).name
        raise SandboxError(
            f"{what} crashed in native code ({name}); the worker is unharmed"
            + (f": {' | '.join(tail)}" if tail else ""),
            hint="the input bundle is probably malformed: reject the task",
        )
    raise SandboxError(
        f"{what} exited with status {code}" + (f": {' | '.join(tail)}" if tail else "")
    )


def _check_reachable(fft_plan: str) -> None:
    """Validate a plan; refuse at once one measured on another SIMD code path."""
    plan = parse_plan(fft_plan)
    if plan.isa != isa_level():
        raise PlanUnreachableError(
            f"could not reach FFT plan {plan} after 0 attempts: it was measured on the "
            f"{plan.isa} code path, this machine runs {isa_level()}",
            hint="leave this job to workers whose CPU takes the same SIMD code path",
        )


class PinnedChild:
    """A long-lived sandbox child pinned to one FFT plan, serving many calls.

    It pins once (forking candidates like :func:`run_in_child` does), compiles ``kernel_id`` if
    given, then runs each call of :meth:`run` in a fork of itself: the call inherits the plans,
    the imports and the compiled kernel, and a native crash, a memory or CPU overrun or a
    timeout costs that call only (:class:`SandboxError`, as from :func:`run_in_child`). If the
    pinned process itself dies, the next call starts (and pins) a new one; ``restarts`` counts
    them. Use one per (kernel, plan) and close it (or use ``with``). Not thread-safe: one call
    at a time.
    """

    def __init__(
        self,
        fft_plan: str,
        *,
        kernel_id: str | None = None,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        threads: int | None = None,
        plan_attempts: int = DEFAULT_PLAN_ATTEMPTS,
        extra_env: Mapping[str, str] | None = None,
        start_timeout_s: float = 600.0,
        entry: str = CHILD_ENTRY,
    ) -> None:
        if kernel_id is not None:
            parse_plan(fft_plan, kernel_id)
        _check_reachable(fft_plan)
        self.fft_plan = fft_plan
        self.kernel_id = kernel_id
        self.memory_bytes = memory_bytes
        self.threads = threads
        self.plan_attempts = plan_attempts
        self.extra_env = dict(extra_env or {})
        self.start_timeout_s = start_timeout_s
        self.entry = entry
        self.restarts = -1  # the first start is not a restart
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._buffer = b""
        self._pin: dict[str, Any] = {}

    def __enter__(self) -> PinnedChild:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        """Whether the pinned process is running."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> dict[str, Any]:
        """Start (or restart) the pinned process; return how pinning went (plan, attempts,
        seconds). Raises PlanUnreachableError or SandboxError."""
        self.close()
        self._tmp = tempfile.TemporaryDirectory(prefix="bf-pinned-")
        tmp = Path(self._tmp.name)
        job = tmp / "job.json"
        job.write_text(
            json.dumps(
                {
                    "memory_bytes": int(self.memory_bytes),
                    "fft_plan": self.fft_plan,
                    "plan_attempts": int(self.plan_attempts),
                    "kernel_id": self.kernel_id,
                }
            )
        )
        env = dict(os.environ)
        if self.threads is not None:
            env["OMP_NUM_THREADS"] = str(self.threads)
        env.update(self.extra_env)
        with (tmp / "server.err").open("wb") as err:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", self.entry, "--serve", str(job)],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
        self.restarts += 1
        self._buffer = b""
        first = self._read_line(self.start_timeout_s, "pinning its FFT plan")
        if first.get("ready"):
            self._pin = {k: first[k] for k in ("plan", "attempts", "seconds")}
            return dict(self._pin)
        self.close()
        if first.get("error") == "PlanUnreachableError":
            raise PlanUnreachableError(first["message"], hint=first.get("hint") or None)
        raise SandboxError(
            f"the pinned compute process failed to start: {first.get('error')}: "
            f"{first.get('message')}"
        )

    def run(
        self, call: str, payload: Mapping[str, Any], *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> SandboxResult:
        """Run the child's ``call`` on ``payload`` in a fork of the pinned process, with the
        memory limit and a CPU limit of ``2 * timeout_s + 5`` seconds; like
        :func:`run_in_child`."""
        pin = self.start() if not self.alive else {}
        proc, tmp = self._proc, self._tmp
        if proc is None or proc.stdin is None or tmp is None:
            raise SandboxError("the pinned compute process is not running")
        with tempfile.TemporaryDirectory(prefix="call-", dir=tmp.name) as call_dir:
            answer, err = Path(call_dir) / "answer.json", Path(call_dir) / "stderr.txt"
            request = {
                "call": call,
                "payload": dict(payload),
                "answer": str(answer),
                "stderr": str(err),
                "cpu_seconds": int(timeout_s * 2) + 5,
                "timeout_s": float(timeout_s),
            }
            try:
                proc.stdin.write((json.dumps(request) + "\n").encode())
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                self.close()
                raise SandboxError(
                    "the pinned compute process died before the call; the next call restarts it"
                ) from None
            reply = self._read_line(timeout_s + 60.0, f"running {_what(call)}")
            if reply.get("timeout"):
                raise SandboxError(
                    f"{_what(call)} ran out of time: killed after {timeout_s:.0f} s",
                    hint="raise the time limit or give the worker more cores",
                )
            tail = (
                err.read_text(errors="replace").strip().splitlines()[-3:] if err.is_file() else []
            )
            result = _outcome(
                call, int(reply["status"]), tail, answer, self.memory_bytes, timeout_s
            )
        return SandboxResult(
            result,
            float(reply["seconds"]),
            fft_plan=self.fft_plan,
            plan_attempts=int(pin.get("attempts", 0)),
            pin_seconds=float(pin.get("seconds", 0.0)),
        )

    def _read_line(self, timeout_s: float, doing: str) -> dict[str, Any]:
        """The next JSON line from the pinned process; it is killed if none comes in time."""
        proc = self._proc
        if proc is None or proc.stdout is None:
            raise SandboxError("the pinned compute process is not running")
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            ready = select.select([fd], [], [], max(0.0, left))[0] if left > 0 else []
            if not ready:
                self.close()
                raise SandboxError(
                    f"the pinned compute process did not answer within {timeout_s:.0f} s while "
                    f"{doing}: killed; the next call restarts it"
                )
            chunk = os.read(fd, 65536)
            if not chunk:
                code = proc.wait()
                self.close()
                raise SandboxError(
                    f"the pinned compute process died (status {code}) while {doing}; "
                    "the next call restarts it"
                )
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def close(self) -> None:
        """Stop the pinned process and everything it started."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
