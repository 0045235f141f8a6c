"""Child side of the sandbox: the entry point of every sandbox child, with one fixed set of calls.

``python -m blindframe.fhe_core._child JOB.json`` sets its memory and CPU limits, pins the job's
FFT plans if asked, runs one call and writes its answer (or its error) to the file the parent
chose; ``python -m blindframe.fhe_core._child --serve JOB.json`` pins once, then serves calls read
from stdin, each in a fork of itself (:class:`blindframe.fhe_core.sandbox.PinnedChild`, the parent
side, drives both). A job names one of :data:`CALLS` — ``lease``
(:func:`blindframe.fhe_core.lease_child.run_lease`), ``ping``, ``survey`` — never code to import.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = ["CALLS", "CHILD_ERROR_EXIT", "CHILD_MEMORY_EXIT", "Call", "main", "ping", "serve"]

CHILD_ERROR_EXIT = 3
CHILD_MEMORY_EXIT = 4
# How often a serving child looks at the call it forked (seconds).
_POLL_S = 0.01

Call = Callable[[dict[str, Any]], dict[str, Any]]


def ping(payload: dict[str, Any]) -> dict[str, Any]:
    """A call that does nothing but answer its payload: what the sandbox itself costs
    (benchmarks, health checks, the pinned pool's tests)."""
    return dict(payload)


def _lease(payload: dict[str, Any]) -> dict[str, Any]:
    from blindframe.fhe_core.lease_child import run_lease  # after the limits: imports Concrete

    return run_lease(payload)


def _survey(payload: dict[str, Any]) -> dict[str, Any]:
    from blindframe.fhe_core.plans import _survey_job

    return _survey_job(payload)


# The calls a sandbox child runs, by the name the parent sends.
CALLS: Mapping[str, Call] = MappingProxyType({"lease": _lease, "ping": ping, "survey": _survey})


def _limit_cpu(seconds: int) -> None:
    """Stop this process after ``seconds`` of CPU time with SIGXCPU, which the parent reports as
    "ran out of CPU time". The hard limit is a second later: with both equal, Linux sends
    SIGKILL at once, which reads as a crash in native code."""
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))


def _limits(job: dict[str, Any], *, cpu: bool = True) -> None:
    memory = int(job["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    if cpu:
        _limit_cpu(int(job["cpu_seconds"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _error(exc: BaseException) -> dict[str, str]:
    from blindframe.errors import BlindframeError

    info = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, BlindframeError):
        info.update(message=exc.message, hint=exc.hint or "")
    return info


def _pin(job: dict[str, Any]) -> dict[str, Any]:
    """Fork until this process holds the job's FFT plans (``plans.pin_plans``); say how."""
    from blindframe.fhe_core.plans import parse_plan, pin_plans

    report = pin_plans(parse_plan(job["fft_plan"]), attempts=int(job["plan_attempts"]))
    return {"plan": report.plan, "attempts": report.total_attempts, "seconds": report.seconds}


def _call(calls: Mapping[str, Call], name: str, payload: dict[str, Any], answer: Path) -> int:
    """Run the call ``name`` on ``payload``; write its answer or its error; return the exit
    status."""
    from blindframe.fhe_core.plans import PLAN_UNREACHABLE_EXIT, PlanUnreachableError

    try:
        func = calls.get(name)
        if func is None:
            raise ValueError(f"expected a call of {'|'.join(sorted(calls))} (not {name!r})")
        result = func(payload)
    except MemoryError:
        return CHILD_MEMORY_EXIT
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it clearly
        answer.write_text(json.dumps(_error(exc)))
        return PLAN_UNREACHABLE_EXIT if isinstance(exc, PlanUnreachableError) else CHILD_ERROR_EXIT
    answer.write_text(json.dumps(result))
    return 0


def main(argv: list[str], *, calls: Mapping[str, Call] = CALLS) -> int:
    """Set limits, pin the FFT plans if asked, run the job's call, write its answer (or its
    error). ``calls``: :data:`CALLS`; only a test's own child program passes others."""
    if argv and argv[0] == "--serve":
        return serve(argv[1:], calls=calls)
    job = json.loads(Path(argv[0]).read_text())
    _limits(job)
    answer = Path(job["answer"])
    if job.get("fft_plan"):
        from blindframe.fhe_core.plans import PLAN_UNREACHABLE_EXIT, PlanUnreachableError

        try:
            report = _pin(job)
        except PlanUnreachableError as exc:
            answer.write_text(json.dumps(_error(exc)))
            return PLAN_UNREACHABLE_EXIT
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it clearly
            answer.write_text(json.dumps(_error(exc)))
            return CHILD_ERROR_EXIT
        Path(job["plan_report"]).write_text(json.dumps(report))
    return _call(calls, str(job["call"]), job["payload"], answer)


def _reply(out: Any, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _serve_one(calls: Mapping[str, Call], request: dict[str, Any]) -> dict[str, Any]:
    """Fork a process for one call (it inherits the pinned plans); wait for it, within the
    call's time limit; describe how it ended."""
    sys.stdout.flush()
    sys.stderr.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the call's own process
        code = CHILD_ERROR_EXIT
        try:
            _limit_cpu(int(request["cpu_seconds"]))
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)  # the protocol pipe is the server's alone
            err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(err, 2)
            code = _call(calls, str(request["call"]), request["payload"], Path(request["answer"]))
            sys.stderr.flush()
        finally:
            os._exit(code)
    deadline = start + float(request["timeout_s"])
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"timeout": True, "seconds": time.monotonic() - start}
        time.sleep(_POLL_S)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return {"status": code, "seconds": time.monotonic() - start}


def serve(argv: list[str], *, calls: Mapping[str, Call] = CALLS) -> int:
    """Pin the job's FFT plans, compile its kernel, say ``ready``; then serve one JSON call per
    stdin line until stdin closes, each answered by one JSON line on stdout."""
    job = json.loads(Path(argv[0]).read_text())
    _limits(job, cpu=False)  # each call limits its own CPU time
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but the protocol reaches the real stdout
    from blindframe.fhe_core.plans import PLAN_UNREACHABLE_EXIT, PlanUnreachableError

    try:
        report = _pin(job)
        if job.get("kernel_id"):
            from blindframe.fhe_core.kernels import compile_kernel

            compile_kernel(str(job["kernel_id"]))  # once, here, not in every call
    except PlanUnreachableError as exc:
        _reply(out, _error(exc))
        return PLAN_UNREACHABLE_EXIT
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it clearly
        _reply(out, _error(exc))
        return CHILD_ERROR_EXIT
    _reply(out, {"ready": True, **report})
    for line in sys.stdin:
        if line.strip():
            _reply(out, _serve_one(calls, json.loads(line)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
