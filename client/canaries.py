"""What each check of a job catches, and how many canary tiles a job needs for it.

A render node can return wrong tiles: a lazy node skips a fraction f of its tiles (k = f x n of
the n it holds), a cheat fakes k chosen tiles. Three checks can catch it:

- **the twin check**: the client decrypts every tile of every replica and compares it with the
  plaintext twin (``client/_verifying.py``; it holds the scene, so it knows every answer). Any
  wrong tile is caught: probability 1 for k >= 1, whatever the canaries.
- **replicas compared** (replication r >= 2): pinned honest replicas are bit-identical, so a
  wrong tile disagrees with an honest replica of it and that replica's node proves it far on
  chain. Probability 1 unless all r replicas of the tile are faked alike (colluding nodes).
- **canaries alone**, what they add for a client that checked nothing else: m canary tasks
  among T, which a node cannot tell from the others, catch k tiles faked at random with
  ``1 - C(T - m, k) / C(T, k)``. For ``shade``/``post`` the canaries are fresh encryptions of
  random real tiles in a shuffled order: nothing tells them apart. For ``volume`` they are the
  ring of tiles around the frame (a tile's public clear argument says where it sits): a node
  that fakes only tiles away from the frame's border meets none of them, probability 0.

Hence the defaults (``client/options.py: default_canaries``): the twin check already catches
every wrong tile, so a ``volume`` job gets no canary ring by default (on a 64x64 frame the ring
was 36 tiles, 56 % more work, for nothing the twin check does not already catch);
``shade``/``post`` keep shuffled canaries, the one check that holds without the plaintext: one
per 8 tiles (12.5 % more work), but no more than catch a node faking an eighth of the tiles with
p 0.99 (about 35 at any size). No number of canaries catches a single faked tile reliably
(m canaries among n real tiles: p = m / (n + m)); only the twin check does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LAZY_FRACTION",
    "Detection",
    "canaries_for",
    "caught_by_canaries",
]

# The fraction of its tiles a lazy node is assumed to skip in the printed figures (one in eight).
LAZY_FRACTION = 1 / 8


def caught_by_canaries(tasks: int, canaries: int, faked: int) -> float:
    """The probability that at least one of ``faked`` tasks, drawn at random from ``tasks`` of
    which ``canaries`` are canaries, is a canary: ``1 - C(tasks - canaries, faked) /
    C(tasks, faked)``."""
    if not 0 <= canaries <= tasks or not 0 <= faked <= tasks:
        raise ValueError(f"need 0 <= canaries, faked <= tasks (not {canaries}, {faked}, {tasks})")
    missed = 1.0
    for i in range(faked):
        # The i-th faked task is not a canary either, given the ones before were not.
        missed *= max(tasks - canaries - i, 0) / (tasks - i)
    return 1.0 - missed


def canaries_for(real_tasks: int, faked_fraction: float, target: float, limit: int) -> int | None:
    """The fewest shuffled canaries (at most ``limit``) with which canaries alone catch a node
    faking ``faked_fraction`` of a job's tasks (at least one) with probability ``target``;
    None when ``limit`` is not enough."""
    for m in range(limit + 1):
        tasks = real_tasks + m
        if caught_by_canaries(tasks, m, max(1, math.ceil(faked_fraction * tasks))) >= target:
            return m
    return None


@dataclass(frozen=True)
class Detection:
    """What a job's checks catch: ``tasks`` tasks of which ``canaries`` are canary tasks, at
    ``replication``; ``ring``: the canaries are a ``volume`` job's margin (placed where a node
    can see them) rather than shuffled tasks."""

    tasks: int
    canaries: int
    replication: int
    ring: bool

    def by_canaries(self, faked: int) -> float:
        """Canaries alone against ``faked`` tiles faked at random (see the module)."""
        return caught_by_canaries(self.tasks, self.canaries, min(faked, self.tasks))

    @property
    def lazy_tiles(self) -> int:
        """How many tiles a node skipping :data:`LAZY_FRACTION` of the job's tasks fakes."""
        return max(1, math.ceil(LAZY_FRACTION * self.tasks))

    @property
    def adaptive(self) -> float:
        """Canaries alone against a node that fakes the tiles least likely to be canaries: 0
        for a ring (it fakes no border tile), the random figure for shuffled canaries."""
        return 0.0 if self.ring else self.by_canaries(1)

    def text(self) -> str:
        """One line for the quote and the demo's summary: each check's probability of catching
        a wrong tile."""
        parts = ["twin check of every tile of every replica: p 1"]
        if self.replication > 1:
            parts.append(f"replicas compared (x{self.replication}): p 1 unless all faked alike")
        if self.canaries:
            placement = "ring" if self.ring else "shuffled"
            alone = (
                f"{self.canaries} {placement} canaries alone: p {_p(self.by_canaries(1))} "
                f"(1 faked tile), {_p(self.by_canaries(self.lazy_tiles))} ({self.lazy_tiles}, "
                "1/8 of the tasks)"
            )
            parts.append(alone + (", 0 (faking away from the border)" if self.ring else ""))
        else:
            parts.append("no canaries (nothing the twin check misses)")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (the probabilities rounded to 4 places)."""
        return {
            "tasks": self.tasks,
            "canaries": self.canaries,
            "replication": self.replication,
            "placement": "ring" if self.ring else "shuffled",
            "byTwin": 1.0,
            "byCanariesOneTile": round(self.by_canaries(1), 4),
            "lazyTiles": self.lazy_tiles,
            "byCanariesLazy": round(self.by_canaries(self.lazy_tiles), 4),
            "byCanariesAdaptive": round(self.adaptive, 4),
        }


def _p(probability: float) -> str:
    """A probability to 3 places, rounded down (0.9982 is not "1.000": that means certain)."""
    return "1" if probability >= 1 else f"{math.floor(probability * 1000) / 1000:.3f}"
