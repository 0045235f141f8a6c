"""Background work for the Blender add-on: one thread at a time, results handed to the main thread.

Blender's data (``bpy``) may only be touched from the main thread, and network and FHE work
(encrypting, uploading, waiting for render nodes, decrypting) takes seconds to minutes. So the
add-on runs that work in a :class:`Runner` thread which never touches ``bpy``: it reports through
a queue, and :meth:`Runner.pump` -- registered with ``bpy.app.timers``, so it runs on the main
thread between redraws -- applies the reports (status line, progress) and, at the end, the result
or the error. This module itself has no ``bpy`` dependency.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PUMP_INTERVAL", "Cancelled", "Runner", "Status", "Task", "TaskContext"]

PUMP_INTERVAL = 0.2  # seconds between main-thread pumps while a task runs
_HISTORY = 2000  # statuses kept per task


class Cancelled(Exception):  # noqa: N818 - a signal, not a failure
    """Raised inside a task's thread when the artist pressed Cancel."""


@dataclass(frozen=True)
class Status:
    """What a running task reports: a line for the status bar and a fraction for the bar."""

    text: str
    fraction: float | None = None


@dataclass
class Task:
    """One unit of background work.

    ``work(context)`` runs in the thread and returns the result; ``on_status`` (main thread)
    receives each :class:`Status`; ``on_done(result)`` or ``on_error(exception)`` (main thread)
    receives the outcome exactly once. ``label`` names the task in messages.
    """

    label: str
    work: Callable[[TaskContext], Any]
    on_done: Callable[[Any], None]
    on_error: Callable[[BaseException], None]
    on_status: Callable[[Status], None] = lambda status: None
    started: float = field(default_factory=time.monotonic)


class TaskContext:
    """What the thread gets: report status, sleep while watching for Cancel."""

    def __init__(self, messages: queue.SimpleQueue[tuple[str, Any]], cancel: threading.Event):
        self._messages = messages
        self._cancel = cancel

    @property
    def cancelled(self) -> bool:
        """Whether the artist asked to stop."""
        return self._cancel.is_set()

    def status(self, text: str, fraction: float | None = None) -> None:
        """Report a status line (and a 0..1 fraction for the progress bar)."""
        if fraction is not None:
            fraction = min(1.0, max(0.0, float(fraction)))
        self._messages.put(("status", Status(text, fraction)))

    def check(self) -> None:
        """Raise :class:`Cancelled` if the artist asked to stop."""
        if self._cancel.is_set():
            raise Cancelled

    def sleep(self, seconds: float) -> None:
        """Wait, waking at once on Cancel (then raising :class:`Cancelled`)."""
        if self._cancel.wait(seconds):
            raise Cancelled


class Runner:
    """Runs one :class:`Task` at a time in a daemon thread; :meth:`pump` delivers its reports."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._task: Task | None = None
        self._thread: threading.Thread | None = None
        self._messages: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._cancel = threading.Event()
        self.last_status: Status | None = None
        self.history: list[Status] = []  # the statuses of the current (or last) task, in order

    @property
    def busy(self) -> bool:
        """A task was started and its outcome not delivered yet."""
        return self._task is not None

    @property
    def label(self) -> str | None:
        """The running task's label."""
        task = self._task
        return task.label if task is not None else None

    def start(self, task: Task) -> None:
        """Start ``task`` in a new thread (RuntimeError while another one runs)."""
        with self._lock:
            if self._task is not None:
                raise RuntimeError(f"{self._task.label} is still running")
            self._task = task
            self._cancel = threading.Event()
            self._messages = queue.SimpleQueue()
            self.last_status = None
            self.history = []
            context = TaskContext(self._messages, self._cancel)
            messages = self._messages

            def run() -> None:
                try:
                    result = task.work(context)
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread as is
                    messages.put(("error", exc))
                else:
                    messages.put(("done", result))

            self._thread = threading.Thread(
                target=run, name=f"blindframe: {task.label}", daemon=True
            )
            self._thread.start()

    def cancel(self) -> bool:
        """Ask the running task to stop at its next check; False when nothing runs."""
        if self._task is None:
            return False
        self._cancel.set()
        return True

    def pump(self) -> float | None:
        """Deliver what the thread reported (main thread only). Returns the seconds until the
        next pump while a task runs, None when idle: the contract of ``bpy.app.timers``."""
        task = self._task
        if task is None:
            return None
        while True:
            try:
                kind, value = self._messages.get_nowait()
            except queue.Empty:
                return PUMP_INTERVAL
            if kind == "status":
                self.last_status = value
                if len(self.history) < _HISTORY:
                    self.history.append(value)
                task.on_status(value)
                continue
            # The outcome: the task is over once its callback ran (even if the callback fails).
            try:
                if kind == "done":
                    task.on_done(value)
                else:
                    task.on_error(value)
            finally:
                with self._lock:
                    self._task = None
                    self._thread = None
            return None

    def discard(self) -> None:
        """Forget the current task without delivering its outcome (the add-on is going away)."""
        with self._lock:
            self._task = None
            self._thread = None
            self.last_status = None

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end (used when the add-on is disabled)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
