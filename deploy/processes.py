"""Background services of the local stack: start detached, wait until ready, stop by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from blindframe.deploy.errors import DeployError

__all__ = ["free_port", "process_alive", "start_detached", "stop_process", "wait_until"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_detached(
    argv: list[str], log_path: Path, *, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (it outlives this command), output appended to a log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        try:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise DeployError(
                f"cannot start {argv[0]}: not found", hint="run `make bootstrap`"
            ) from None


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll ``ready`` until it is true; fail early, with the log's tail, if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise DeployError(
                f"{what} exited with status {process.returncode} while starting",
                hint=_tail_hint(log_path),
            )
        with contextlib.suppress(OSError):
            if ready():
                return
        time.sleep(0.1)
    raise DeployError(
        f"{what} did not become ready within {timeout:.0f} s", hint=_tail_hint(log_path)
    )


def _tail_hint(log_path: Path | None) -> str | None:
    if log_path is None or not log_path.is_file():
        return None
    lines = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return f"see {log_path}" + (f"; last line: {lines[-1][:200]}" if lines else "")


def process_alive(pid: int, create_time: float | None = None) -> bool:
    """Whether ``pid`` runs and, if ``create_time`` is given, is the same process as recorded."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < 1.0
    except psutil.NoSuchProcess:
        return False


def stop_process(pid: int, create_time: float | None = None, *, timeout: float = 10.0) -> bool:
    """Stop a process from ``start_detached`` (SIGTERM, then SIGKILL); False if not running."""
    if not process_alive(pid, create_time):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid, create_time):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True
