"""A sandbox child whose calls misbehave on purpose, for the sandbox tests.

``python -m faulty`` (with this folder on ``PYTHONPATH``; the tests pass ``entry="faulty"``) is the
real child entry, :func:`blindframe.fhe_core._child.main` (limits, pinning, a fork per call),
serving the calls below instead of the fixed ``_child.CALLS``: the real child never imports
them.
"""

from __future__ import annotations

import ctypes
import sys
import time
from typing import Any

from blindframe.fhe_core._child import Call, main, ping


def segfault(payload: dict[str, Any]) -> dict[str, Any]:
    """Read address 0 from native code."""
    ctypes.string_at(0)
    return {}


def hog_memory(payload: dict[str, Any]) -> dict[str, Any]:
    """Allocate far more than the limit."""
    blocks = [bytearray(256 << 20) for _ in range(int(payload["blocks"]))]
    return {"blocks": len(blocks)}


def sleep(payload: dict[str, Any]) -> dict[str, Any]:
    """Take longer than the time limit."""
    time.sleep(float(payload["seconds"]))
    return {}


def spin(payload: dict[str, Any]) -> dict[str, Any]:
    """Burn CPU for ``payload['seconds']`` of wall time (forever, for a test's purposes), after
    writing this process's id to ``payload['pid_file']``."""
    import os
    from pathlib import Path

    Path(payload["pid_file"]).write_text(str(os.getpid()))
    end = time.monotonic() + float(payload["seconds"])
    count = 0
    while time.monotonic() < end:
        count += 1
    return {"count": count}


def fail(payload: dict[str, Any]) -> dict[str, Any]:
    """Raise a Python error."""
    raise ValueError(payload["message"])


def echo(payload: dict[str, Any]) -> dict[str, Any]:
    """Return the payload."""
    return payload


def pin_scripted(payload: dict[str, Any]) -> dict[str, Any]:
    """Pin to ``payload['target']`` through the real fork-and-retry loop, with a scripted
    measurement instead of the FFT timing lottery: the k-th candidate forked for a size gets
    ``payload['script'][size][k]`` (each candidate logs its call to a file, so the k-th call is
    known across forks). Then report, from the pinned process, what it took; or crash there
    when ``payload['crash']``."""
    from pathlib import Path

    from blindframe.fhe_core.plans import parse_plan, pin_plans

    log = Path(payload["log"])
    script = {int(n): list(seq) for n, seq in payload["script"].items()}

    def measure(size: int) -> str:
        with log.open("a") as out:
            out.write(f"{size}\n")
        calls = [int(line) for line in log.read_text().split()]
        return str(script[size][calls.count(size) - 1])

    report = pin_plans(
        parse_plan(payload["target"]), attempts=int(payload["attempts"]), measure=measure
    )
    if payload.get("crash"):
        ctypes.string_at(0)
    return {"attempts": {str(n): a for n, a in report.attempts.items()}, "plan": report.plan}


def kill_parent(payload: dict[str, Any]) -> dict[str, Any]:
    """Kill the process that forked this call (a pinned child's server), then linger."""
    import os
    import signal

    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(float(payload["seconds"]))
    return {}


CALLS: dict[str, Call] = {
    "segfault": segfault,
    "hog_memory": hog_memory,
    "sleep": sleep,
    "spin": spin,
    "fail": fail,
    "echo": echo,
    "ping": ping,
    "pin_scripted": pin_scripted,
    "kill_parent": kill_parent,
}

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], calls=CALLS))
