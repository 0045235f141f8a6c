"""The node's log: one line per thing it does, in words an operator reads, or JSON lines.

Human lines look like ``12:00:01 claimed tiles 0-15 of job 3 (lane 0) ...``; with ``--json-log``
each line is ``{"time": ..., "level": ..., "event": ..., "message": ..., <fields>}`` so a
machine (a test, the demo, a log shipper) can follow the node without parsing sentences.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from blindframe.units import format_eth as eth

__all__ = ["NodeLog", "duration", "eth", "span", "when"]


class NodeLog:
    """Writes log lines to ``stream`` (stderr by default), safe to call from any thread."""

    def __init__(
        self, *, json_mode: bool = False, stream: TextIO | None = None, debug: bool = False
    ) -> None:
        self.json_mode = json_mode
        self.stream = stream if stream is not None else sys.stderr
        self.show_debug = debug
        self._lock = threading.Lock()

    def _write(self, level: str, event: str, message: str, fields: dict[str, Any]) -> None:
        now = time.time()
        if self.json_mode:
            record = {
                "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
                "level": level,
                "event": event,
                "message": message,
                **fields,
            }
            line = json.dumps(record, default=str, sort_keys=False)
        else:
            stamp = time.strftime("%H:%M:%S", time.localtime(now))
            prefix = {"warning": "warning: ", "error": "error: "}.get(level, "")
            line = f"{stamp} {prefix}{message}"
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # a closed or broken log stream must not stop the node

    def info(self, event: str, message: str, **fields: Any) -> None:
        """Something the operator wants to know happened."""
        self._write("info", event, message, fields)

    def warning(self, event: str, message: str, **fields: Any) -> None:
        """Something went wrong and the node goes on."""
        self._write("warning", event, message, fields)

    def error(self, event: str, message: str, **fields: Any) -> None:
        """Something failed for good (a lease, a job); the node goes on."""
        self._write("error", event, message, fields)

    def debug(self, event: str, message: str, **fields: Any) -> None:
        """Details (retries, waits), shown with --verbose or always in JSON mode."""
        if self.show_debug or self.json_mode:
            self._write("debug", event, message, fields)

    @contextlib.contextmanager
    def library_logs(self) -> Iterator[None]:
        """While inside, the ``blindframe.*`` loggers (the IPFS client's retries, say) write into
        this log as debug lines instead of Python's bare last-resort lines on stderr."""
        target = logging.getLogger("blindframe")
        handler = _Forward(self)
        level = target.level
        target.addHandler(handler)
        target.setLevel(logging.INFO)
        try:
            yield
        finally:
            target.removeHandler(handler)
            target.setLevel(level)


class _Forward(logging.Handler):
    def __init__(self, log: NodeLog) -> None:
        super().__init__(logging.INFO)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        self.log.debug("library", record.getMessage(), logger=record.name)


def span(first: int, count: int) -> str:
    """A tile range for a person: ``tile 4`` or ``tiles 0-15``."""
    return f"tile {first}" if count == 1 else f"tiles {first}-{first + count - 1}"


def when(timestamp: int | float, now: int | float) -> str:
    """A chain time for a person: ``12:05:10 (in 55 s)`` or ``12:00:01 (20 s ago)``."""
    stamp = time.strftime("%H:%M:%S", time.localtime(timestamp))
    delta = round(timestamp - now)
    if delta >= 0:
        return f"{stamp} (in {duration(delta)})"
    return f"{stamp} ({duration(-delta)} ago)"


def duration(seconds: int) -> str:
    """A span of seconds for a person: ``42 s``, ``12 min``, ``3.5 h``, ``2.0 days``."""
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"
