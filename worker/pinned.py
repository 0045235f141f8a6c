"""The node's compute processes pinned to jobs' FFT plans: long-lived, one call at a time.

Honest replicas are bit-identical only when computed with the job's FFT plans (the manifest's
``fftPlan``, ``fhe_core/AGREEMENT.md``). A :class:`PinnedPool` keeps
:class:`~blindframe.fhe_core.sandbox.PinnedChild` processes per (kernel, plan): each pinned
once (forking candidates until one holds the plan), with the kernel compiled, then serving one
lease at a time in a fork of itself, so a native crash, a memory or CPU overrun or a timeout costs
that lease only. A child that died is started (and pinned) again on its next use; children idle
longer than ``idle_s`` are closed by :meth:`PinnedPool.reap`, which the node's main loop calls.

Before the node claims anything of a job, :meth:`PinnedPool.check_reachable` pins a child to the
job's plan (kept warm for the lease): a plan this machine does not reach
(:class:`~blindframe.fhe_core.plans.PlanUnreachableError`) makes the node refuse the job.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from blindframe.fhe_core.errors import SandboxError
from blindframe.fhe_core.plans import DEFAULT_PLAN_ATTEMPTS, PlanUnreachableError
from blindframe.fhe_core.sandbox import PinnedChild, SandboxResult

if TYPE_CHECKING:
    from blindframe.worker.logs import NodeLog

__all__ = ["PINNED_IDLE_S", "PinnedPool"]

# A pinned child holds Concrete and a compiled kernel (a few hundred MB): closed after this long
# unused. Long enough for the leases of one job to reuse it, short enough not to hoard memory.
PINNED_IDLE_S = 300.0
_START_TIMEOUT_S = 300.0

Key = tuple[str, str]  # (kernel, plan)


@dataclass
class _Slot:
    child: PinnedChild
    last_used: float = field(default_factory=time.monotonic)


class PinnedPool:
    """Pinned compute processes by (kernel, FFT plan); thread-safe (each child is checked out by
    one thread at a time)."""

    def __init__(
        self,
        *,
        memory_bytes: int,
        log: NodeLog,
        idle_s: float = PINNED_IDLE_S,
        max_idle: int = 4,
        threads: int | None = None,
        extra_env: Mapping[str, str] | None = None,
        plan_attempts: int = DEFAULT_PLAN_ATTEMPTS,
    ) -> None:
        self.memory_bytes = memory_bytes
        self.plan_attempts = plan_attempts
        self.log = log
        self.idle_s = idle_s
        self.max_idle = max_idle
        self.threads = threads
        self.extra_env = dict(extra_env or {})
        self._lock = threading.Lock()
        self._idle: dict[Key, list[_Slot]] = {}
        self._busy: dict[int, Key] = {}
        self._reached: set[Key] = set()
        self._unreachable: dict[Key, PlanUnreachableError] = {}
        self._closed = False
        self.starts = 0  # pinned processes started, restarts included

    # -- checking out ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def child(self, kernel: str, plan: str, *, why: str, timeout_s: float) -> Iterator[PinnedChild]:
        """A running child pinned to ``plan`` with ``kernel`` compiled, for this thread alone
        while inside; started (and pinned, logged) first if none is idle. Raises
        PlanUnreachableError or SandboxError."""
        key = (kernel, plan)
        with self._lock:
            if self._closed:
                raise SandboxError("the node is stopping: no new computation starts")
            known = self._unreachable.get(key)
            if known is not None:
                raise PlanUnreachableError(known.message, hint=known.hint)
            slots = self._idle.get(key, [])
            slot = slots.pop() if slots else None
            if not slots:
                self._idle.pop(key, None)
            if slot is None:
                slot = _Slot(
                    PinnedChild(
                        plan,
                        kernel_id=kernel,
                        memory_bytes=self.memory_bytes,
                        threads=self.threads,
                        plan_attempts=self.plan_attempts,
                        extra_env=self.extra_env,
                        start_timeout_s=_START_TIMEOUT_S,
                    )
                )
            self._busy[id(slot)] = key
        try:
            if not slot.child.alive:
                self._start(slot.child, key, why=why, timeout_s=timeout_s)
            yield slot.child
        finally:
            # A failed call (a crash, an overrun) cost its own fork only: the child stays. One that
            # died stays too: its next use starts (and pins) it again, logged as a restart.
            slot.last_used = time.monotonic()
            evicted: list[_Slot] = []
            with self._lock:
                self._busy.pop(id(slot), None)
                keep = not self._closed and key not in self._unreachable
                if keep:
                    self._idle.setdefault(key, []).append(slot)
                    evicted = self._evict_locked()
            if not keep:
                slot.child.close()
            for old in evicted:
                old.child.close()

    def _start(self, child: PinnedChild, key: Key, *, why: str, timeout_s: float) -> None:
        kernel, plan = key
        restart = child.restarts >= 0
        child.start_timeout_s = max(min(timeout_s, _START_TIMEOUT_S), 1.0)
        began = time.monotonic()
        try:
            report = child.start()
        except PlanUnreachableError as exc:
            with self._lock:
                self._unreachable[key] = exc
            raise
        seconds = time.monotonic() - began
        with self._lock:
            self._reached.add(key)
            self.starts += 1
        attempts = int(report.get("attempts", 0))
        pin_seconds = float(report.get("seconds", 0.0))
        self.log.info(
            "pinned",
            f"pinned to FFT plan {plan} after {attempts} candidate"
            f"{'s' if attempts != 1 else ''}, {pin_seconds:.1f} s ({kernel} compiled, ready in "
            f"{seconds:.1f} s; {'restarted, ' if restart else ''}{why})",
            kernel=kernel,
            plan=plan,
            attempts=attempts,
            pin_seconds=round(pin_seconds, 3),
            start_seconds=round(seconds, 3),
            restart=restart,
        )

    def run(
        self,
        kernel: str,
        plan: str,
        call: str,
        payload: Mapping[str, Any],
        *,
        timeout_s: float,
        why: str,
    ) -> SandboxResult:
        """Run the child's ``call`` (``sandbox.LEASE``, or ``sandbox.PING``) on ``payload`` in a
        child pinned to ``plan`` within ``timeout_s`` seconds in all (starting the child
        included)."""
        began = time.monotonic()
        with self.child(kernel, plan, why=why, timeout_s=timeout_s) as child:
            left = timeout_s - (time.monotonic() - began)
            if left <= 1.0:
                raise SandboxError(
                    f"the {call} had no time left after starting its pinned compute process "
                    f"({timeout_s:.0f} s in all)",
                    hint="raise the time limit or give the worker more cores",
                )
            return child.run(call, payload, timeout_s=left)

    def check_reachable(self, kernel: str, plan: str, *, why: str) -> None:
        """Make sure this machine reaches ``plan`` for ``kernel`` (pinning a child, kept warm for
        the lease, unless it already did); PlanUnreachableError if it does not."""
        key = (kernel, plan)
        with self._lock:
            if key in self._reached:
                return
            known = self._unreachable.get(key)
        if known is not None:
            raise PlanUnreachableError(known.message, hint=known.hint)
        with self.child(kernel, plan, why=why, timeout_s=_START_TIMEOUT_S):
            pass

    # -- upkeep ----------------------------------------------------------------------------------

    def _evict_locked(self) -> list[_Slot]:
        """Take the least recently used idle children beyond ``max_idle`` out of the pool (the
        caller closes them, without the lock)."""
        slots = sorted(
            ((slot, key) for key, items in self._idle.items() for slot in items),
            key=lambda item: item[0].last_used,
        )
        evicted = []
        for slot, key in slots[: max(len(slots) - self.max_idle, 0)]:
            self._idle[key].remove(slot)
            if not self._idle[key]:
                del self._idle[key]
            evicted.append(slot)
        return evicted

    def reap(self) -> int:
        """Close the children idle longer than ``idle_s``; how many."""
        now = time.monotonic()
        stale: list[_Slot] = []
        with self._lock:
            for key, slots in list(self._idle.items()):
                keep = [s for s in slots if now - s.last_used < self.idle_s]
                stale += [s for s in slots if now - s.last_used >= self.idle_s]
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
        for slot in stale:
            slot.child.close()
        if stale:
            self.log.debug(
                "pinned_closed",
                f"closed {len(stale)} pinned compute process(es) unused for {self.idle_s:.0f} s",
            )
        return len(stale)

    @property
    def running(self) -> int:
        """Pinned children alive, idle or busy."""
        with self._lock:
            return sum(len(slots) for slots in self._idle.values()) + len(self._busy)

    def close(self) -> None:
        """Close every idle child; the ones in use close when their call returns (kill them
        first to end those calls at once). No child starts after this."""
        with self._lock:
            self._closed = True
            slots = [slot for items in self._idle.values() for slot in items]
            self._idle.clear()
        for slot in slots:
            slot.child.close()
