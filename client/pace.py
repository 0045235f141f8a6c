"""The time arithmetic of a render, in one place: the wall time a quote expects from what render
nodes advertise, and a running job's pace (tile-replicas verified per minute) and time left.

Both are estimates and say so: with no node advertising the kernel the expected time is
``None`` ("unknown"), never a made-up figure; a running job's pace comes from its own history
(tile-replicas verified since its first claim) and, before the first one is verified, from
the quote the job was posted with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from blindframe.client.units import format_duration

__all__ = [
    "Pace",
    "PaceSource",
    "expected_render_seconds",
    "format_pace",
    "job_pace",
    "lease_size",
]


class PaceSource(StrEnum):
    """Where a time-left figure comes from."""

    JOB = "job"  # the job's own history: tile-replicas verified since the first claim
    QUOTE = "quote"  # nothing verified yet: the quote's expected render time, minus time spent
    UNKNOWN = "unknown"  # neither


@dataclass(frozen=True)
class Pace:
    """How fast a job goes and how long it has left (to every tile-replica verified)."""

    tiles_per_minute: float | None  # tile-replicas verified per minute (None: none yet)
    eta_seconds: int | None  # None: unknown
    source: PaceSource


def job_pace(
    *,
    done: int,
    total: int,
    first_claim_at: int | None,
    now: int,
    quoted_seconds: int | None = None,
    posted_at: int | None = None,
) -> Pace:
    """A job's pace at ``now`` (chain time): ``done`` of ``total`` tile-replicas verified,
    its first lease claimed at ``first_claim_at``. Before anything is verified, the quote's
    ``quoted_seconds`` of rendering counted from ``posted_at`` stands in."""
    remaining = max(total - done, 0)
    elapsed = now - first_claim_at if first_claim_at is not None else 0
    if done > 0 and elapsed > 0:
        rate = done * 60 / elapsed
        return Pace(rate, math.ceil(remaining * 60 / rate), PaceSource.JOB)
    if remaining == 0:
        return Pace(None, 0, PaceSource.JOB)
    if quoted_seconds is not None and posted_at is not None:
        return Pace(None, max(quoted_seconds - max(now - posted_at, 0), 0), PaceSource.QUOTE)
    return Pace(None, None, PaceSource.UNKNOWN)


def format_pace(pace: Pace) -> str:
    """``2.5 tiles/min, about 3m left``; ``about 3m left (quoted)``; ``time left unknown``."""
    parts = []
    if pace.tiles_per_minute is not None:
        parts.append(f"{pace.tiles_per_minute:.3g} tiles/min")
    if pace.eta_seconds is None:
        parts.append("time left unknown")
    elif pace.eta_seconds == 0 and pace.source == PaceSource.QUOTE:
        parts.append("past the quoted time")
    else:
        left = f"about {format_duration(pace.eta_seconds)} left"
        parts.append(left + (" (quoted)" if pace.source == PaceSource.QUOTE else ""))
    return ", ".join(parts)


def lease_size(tiles: int, lease_length: int, nodes: Sequence[tuple[int, int]]) -> int:
    """Tiles per lease a node is likely to claim: what its free capacity holds and it can
    compute within one lease, the median over ``nodes`` ((ms per tile, free capacity) each,
    advertising ones only); the whole lane when nobody advertises."""
    fits = sorted(
        max(1, min(free, lease_length * 1000 // ms, tiles)) for ms, free in nodes if ms > 0
    )
    if not fits:
        return max(tiles, 1)
    return fits[len(fits) // 2]


def expected_render_seconds(
    tiles: int, replication: int, nodes: Sequence[tuple[int, int]]
) -> int | None:
    """Seconds until every tile-replica is computed, from the nodes' advertised (ms per tile,
    free capacity); None when fewer than ``replication`` nodes advertise with room to claim
    (each replica of a tile needs a node of its own).

    Each node works at its advertised pace; none can take more than one replica of a tile, so a
    fast node is capped at ``tiles`` and the rest is shared by the others."""
    rates = sorted(1000 / ms for ms, free in nodes if ms > 0 and free > 0)
    if len(rates) < replication or tiles <= 0:
        return None
    work = tiles * replication
    capped = 0.0  # the longest a capped node (one replica of every tile) takes
    # Water-filling: the fastest nodes that would exceed one replica of every tile are capped.
    while rates and work > 0:
        seconds = work / sum(rates)
        if rates[-1] * seconds <= tiles:
            return math.ceil(max(seconds, capped))
        capped = max(capped, tiles / rates.pop())
        work -= tiles
    return math.ceil(capped)
