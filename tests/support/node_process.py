"""A render node run as `blindframe worker run --json-log` in its own process, seen through its
log lines: shared by the render-node, end-to-end, Blender and dashboard suites."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil


@dataclass
class NodeProcess:
    """`blindframe worker run --json-log` in its own process; its log lines as dicts."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    address: str = ""

    def read(self) -> list[dict[str, Any]]:
        """Every JSON log line so far."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        out = []
        for line in text.splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def tail(self, n: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-n:])

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.read() if line.get("event") == name]

    def wait_for(
        self,
        event: str,
        *,
        timeout: float = 120.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
        count: int = 1,
    ) -> dict[str, Any]:
        """The ``count``-th log line of ``event`` (matching ``where``), waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events(event) if where is None or where(e)]
            if len(found) >= count:
                return found[count - 1]
            if self.process.poll() is not None:
                raise AssertionError(
                    f"node {self.name} exited ({self.process.returncode}) before {event!r}:\n"
                    + self.tail()
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"node {self.name}: no {event!r} in {timeout} s:\n" + self.tail()
                )
            time.sleep(0.2)

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL the node and the sandbox children it started (they run in their own
        sessions, so they would outlive it)."""
        children: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(self.process.pid).children(recursive=True)
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"node {self.name} did not exit:\n" + self.tail()) from None

    def errors(self) -> list[dict[str, Any]]:
        """Log lines of level error, and tracebacks (there should be none of the latter)."""
        return [line for line in self.read() if line.get("level") == "error"]
