"""Which open tiles a render node claims: by priority, reward per expected compute second, deadline.

The policy never takes more tiles than the node has free capacity for, nor more than it expects to
finish within the lease (and before the job's deadline), using per-kernel compute times measured
from the node's own past runs (``RuntimeModel``). A lease is a contiguous range of tiles in one
replica lane, so the policy picks ranges; it never picks a tile the node already holds in another
lane (the contract forbids two replicas of a tile on one node).
"""

from __future__ import annotations

import contextlib
import sqlite3
import statistics
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Claim", "OpenJob", "Policy", "RuntimeModel", "plan_claims"]


@dataclass(frozen=True)
class OpenJob:
    """What the node knows of a job with free replica slots."""

    job_id: int
    kernel_id: str
    priority: int
    reward_per_tile: int
    deadline: int
    lease_length: int
    free: Mapping[int, Sequence[tuple[int, int]]]  # lane -> free ranges (first tile, count)
    held: frozenset[int] = frozenset()  # tiles this node already holds in any lane


@dataclass(frozen=True)
class Claim:
    """One claim transaction to send: ``count`` tiles from ``first`` in ``lane`` of ``job_id``."""

    job_id: int
    lane: int
    first: int
    count: int


@dataclass(frozen=True)
class Policy:
    """The operator's knobs."""

    kernels: frozenset[str]
    min_wei_per_second: int = 0
    safety: float = 0.6  # plan to use at most this share of the lease / time to deadline
    max_batch: int = 64
    overhead_seconds: float = 5.0  # fetch, commit and reveal, per lease


def plan_claims(
    jobs: Iterable[OpenJob],
    *,
    free_capacity: int,
    seconds_per_tile: Mapping[str, float],
    policy: Policy,
    now: float | None = None,
) -> list[Claim]:
    """The claims to make now, best first; the total never exceeds ``free_capacity`` tiles."""
    now = time.time() if now is None else now
    candidates = []
    for job in jobs:
        if job.kernel_id not in policy.kernels or job.kernel_id not in seconds_per_tile:
            continue
        per_tile = max(seconds_per_tile[job.kernel_id], 1e-3)
        if job.reward_per_tile / per_tile < policy.min_wei_per_second:
            continue
        window = min(job.lease_length, job.deadline - now) * policy.safety - policy.overhead_seconds
        fits = int(window // per_tile)
        if fits <= 0:
            continue
        candidates.append((job, per_tile, fits))
    # Highest priority first, then best pay per compute second, then the most urgent deadline.
    candidates.sort(key=lambda c: (-c[0].priority, -(c[0].reward_per_tile / c[1]), c[0].deadline))
    claims: list[Claim] = []
    remaining = free_capacity
    for job, _per_tile, fits in candidates:
        if remaining <= 0:
            break
        want = min(remaining, fits, policy.max_batch)
        claim = _best_range(job, want)
        if claim is not None:
            claims.append(claim)
            remaining -= claim.count
    return claims


def _best_range(job: OpenJob, want: int) -> Claim | None:
    """The lowest lane's longest run of free tiles the node does not hold, cut to ``want``."""
    for lane in sorted(job.free):
        best: tuple[int, int] | None = None
        for first, count in job.free[lane]:
            for run_first, run_count in _split_around(first, count, job.held):
                if best is None or run_count > best[1]:
                    best = (run_first, run_count)
        if best is not None:
            return Claim(job.job_id, lane, best[0], min(best[1], want))
    return None


def _split_around(first: int, count: int, held: frozenset[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    start = first
    for tile in range(first, first + count):
        if tile in held:
            if tile > start:
                runs.append((start, tile - start))
            start = tile + 1
    if start < first + count:
        runs.append((start, first + count - start))
    return runs


@dataclass
class RuntimeModel:
    """Seconds per tile per kernel: median of this node's last ``keep`` runs, else a prior."""

    db_path: Path
    priors: Mapping[str, float] = field(default_factory=dict)
    keep: int = 20

    def __post_init__(self) -> None:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS runs (kernel TEXT NOT NULL, tiles INTEGER NOT NULL, "
                "seconds REAL NOT NULL, at REAL NOT NULL)"
            )

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=30)) as db, db:
            yield db

    def record(self, kernel_id: str, tiles: int, seconds: float) -> None:
        """Remember that ``tiles`` tiles of ``kernel_id`` took ``seconds`` of compute."""
        if tiles <= 0 or seconds < 0:
            raise ValueError(f"a run needs tiles > 0 and seconds >= 0 (got {tiles}, {seconds})")
        with self._connect() as db:
            db.execute(
                "INSERT INTO runs (kernel, tiles, seconds, at) VALUES (?, ?, ?, ?)",
                (kernel_id, tiles, seconds, time.time()),
            )

    def seconds_per_tile(self, kernel_id: str) -> float | None:
        """The estimate for ``kernel_id``: measured if any run was recorded, else the prior."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT tiles, seconds FROM runs WHERE kernel = ? ORDER BY at DESC LIMIT ?",
                (kernel_id, self.keep),
            ).fetchall()
        if rows:
            return float(statistics.median(seconds / tiles for tiles, seconds in rows))
        return self.priors.get(kernel_id)

    def estimates(self, kernel_ids: Iterable[str]) -> dict[str, float]:
        """Estimates for the kernels that have one."""
        out = {}
        for kernel_id in kernel_ids:
            estimate = self.seconds_per_tile(kernel_id)
            if estimate is not None:
                out[kernel_id] = estimate
        return out
