"""Keeping replicas honest: compare other replicas of our tiles with ours, prove disagreements,
and hand contests (:mod:`blindframe.worker.contests`) and availability challenges on our own
leases (:mod:`blindframe.worker.availability`) to their parts.

Every comparison opens the other worker's result against the root it revealed on chain
(``open_lease_result``), then applies the contract's agreement rule tile by tile
(``disagreement_openings`` with the deployment's ``tolerance`` and ``farCount``: one opening of
the digest leaf when two outputs differ at all); the openings it returns are exactly what
``proveDisagreement`` / ``proveFar`` / ``proveReplicaFar`` verify. Downloads run on the io
pool; transactions are sent from the main loop.
"""

from __future__ import annotations

import functools
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from blindframe.coordinator.errors import ContractRevertError, LeaseResultError
from blindframe.coordinator.market import Opening
from blindframe.coordinator.results import disagreement_openings
from blindframe.coordinator.store import StoreError
from blindframe.worker.availability import AvailabilityDefence
from blindframe.worker.contests import OUTCOMES, ContestReferee
from blindframe.worker.logs import span
from blindframe.worker.result_refs import (
    ENDED_STATES,
    ResultRef,
    chain_ref,
    load_result,
    overlap,
    own_ref,
)
from blindframe.worker.state import (
    ChainLeaseStatus,
    ChallengeStatus,
    CheckState,
    LeaseKind,
    OwnState,
)

if TYPE_CHECKING:
    from blindframe.worker.core import NodeCore
    from blindframe.worker.state import ChainLease, JobRow, OwnLease

__all__ = ["OUTCOMES", "Referee"]


@dataclass(frozen=True)
class _Comparison:
    """Our result against another replica's, tile by tile."""

    openings: dict[int, list[Opening] | None]
    identical: bool


class Referee:
    """Replica checks of one node; its contests and availability challenges through their
    parts."""

    def __init__(self, core: NodeCore) -> None:
        self.core = core
        self._deadlines: dict[tuple[int, int], int] = {}
        self.contests = ContestReferee(core)
        self.availability = AvailabilityDefence(core)

    def on_revealed(self, lease_id: int) -> None:
        """A lease revealed (ours or another's): queue the comparisons it makes possible."""
        core = self.core
        if not core.behaviour.polices:
            return  # a dishonest test node does not police others
        lease = core.state.lease(lease_id)
        job = core.state.job(lease.job_id) if lease is not None else None
        if lease is None or job is None or lease.lane >= job.replication:
            return
        if lease.worker.lower() == core.me.lower():
            others = [
                other
                for other in core.state.leases(
                    job_id=lease.job_id, statuses=(ChainLeaseStatus.REVEALED,)
                )
                if other.worker.lower() != core.me.lower()
                and other.lane < job.replication
                and overlap(other.tiles, lease.tiles)
            ]
            for other in others:
                core.state.add_check(lease_id, other.lease_id)
            return
        for own in core.state.own_leases():
            if (
                own.job_id == lease.job_id
                and own.kind == LeaseKind.REPLICA
                and own.state not in ENDED_STATES
                and overlap(own.tiles, lease.tiles)
            ):
                core.state.add_check(own.lease_id, lease_id)

    def busy(self) -> bool:
        """Whether a comparison, a contest of ours or a challenge of one of our leases is open."""
        state = self.core.state
        if state.checks((CheckState.PENDING,)):
            return True
        own = self.contests.own_ids()
        if any(c.lease_id in own for c in state.challenges((ChallengeStatus.OPEN,))):
            return True
        return any(self.contests.involved(c) for c in state.contests())

    def drive(self) -> None:
        """Advance comparisons and contests (called every tick from the main loop)."""
        if not self.core.behaviour.polices:
            return  # a dishonest test node neither polices nor defends
        self._drive_checks()
        self.contests.drive()

    def defend(self) -> None:
        """Answer availability challenges on our own leases (called every tick)."""
        self.availability.defend()

    def _drive_checks(self) -> None:
        core = self.core
        for check in core.state.checks((CheckState.PENDING,)):
            key = ("check", check.own_lease, check.other_lease)
            if key in core.tasks:
                continue
            own = core.state.own(check.own_lease)
            other = core.state.lease(check.other_lease)
            if own is None or other is None:
                continue
            if own.state in ENDED_STATES or other.status in (
                ChainLeaseStatus.RECLAIMED,
                ChainLeaseStatus.FORFEITED,
            ):
                core.state.set_check(
                    own.lease_id, other.lease_id, CheckState.SKIPPED, "a lease ended"
                )
                continue
            if own.state not in (OwnState.REVEALED, OwnState.SETTLED) or other.status not in (
                ChainLeaseStatus.REVEALED,
                ChainLeaseStatus.SETTLED,
            ):
                continue  # both must be revealed on chain before a disagreement can be proven
            job = core.state.job(own.job_id)
            if job is None:
                continue
            deadline = self._challenge_deadline(own.lease_id, other.lease_id)
            if core.clock.now() > deadline:
                core.state.set_check(
                    own.lease_id,
                    other.lease_id,
                    CheckState.LATE,
                    f"challenge window closed at {deadline}",
                )
                continue
            core.spawn(
                key,
                core.io_pool,
                functools.partial(self._compare, job, own_ref(own), chain_ref(other)),
                functools.partial(self._compared, job=job, own=own, other=other),
            )

    def _challenge_deadline(self, a: int, b: int) -> int:
        key = (a, b)
        if key not in self._deadlines:
            market = self.core.market
            revealed = max(market.lease(a).revealedAt, market.lease(b).revealedAt)
            self._deadlines[key] = revealed + int(self.core.params["challengeWindow"])
        return self._deadlines[key]

    def _compare(self, job: JobRow, mine_ref: ResultRef, other_ref: ResultRef) -> _Comparison:
        """(io thread) Both results, then the agreement rule on every shared tile."""
        mine = load_result(self.core, job, mine_ref)
        theirs = load_result(self.core, job, other_ref)
        params = self.core.params
        shared = [t for t in mine.tiles if t in theirs.tiles]
        openings = {
            tile: disagreement_openings(
                mine,
                theirs,
                tile,
                tolerance=int(params["tolerance"]),
                far_count=int(params["farCount"]),
            )
            for tile in shared
        }
        identical = all(
            mine.tile_roots[t - mine.first_tile] == theirs.tile_roots[t - theirs.first_tile]
            for t in shared
        )
        return _Comparison(openings, identical)

    def _compared(
        self, future: Future[_Comparison], job: JobRow, own: OwnLease, other: ChainLease
    ) -> None:
        core, log = self.core, self.core.log
        try:
            comparison = future.result()
        except LeaseResultError as exc:
            core.state.set_check(own.lease_id, other.lease_id, CheckState.UNOPENABLE, exc.message)
            log.warning(
                "replica_unopenable",
                f"replica lease {other.lease_id} (job {job.job_id}) cannot be checked: "
                f"{exc.message}; nothing about it can be proven on chain (its client will refuse "
                "it)",
                lease=other.lease_id,
                job=job.job_id,
            )
            return
        except StoreError as exc:
            core.state.set_check(own.lease_id, other.lease_id, CheckState.PENDING, exc.message)
            log.debug(
                "replica_fetch_retry",
                f"cannot fetch replica lease {other.lease_id}'s result yet: {exc.message}",
                lease=other.lease_id,
            )
            return
        shared = [t for t in own.tiles if t in other.tiles]
        far = {tile: o for tile, o in comparison.openings.items() if o is not None}
        if not far:
            how = "bit-identical" if comparison.identical else "within the agreement tolerance"
            core.state.set_check(own.lease_id, other.lease_id, CheckState.AGREE, how)
            log.info(
                "replica_agrees",
                f"replica lease {other.lease_id} agrees with our lease {own.lease_id} on "
                f"{_tiles(shared)} of job {job.job_id} ({how})",
                lease=own.lease_id,
                other=other.lease_id,
                job=job.job_id,
            )
            return
        proven = [
            self._prove_disagreement(job, own, other, tile, openings)
            for tile, openings in sorted(far.items())
        ]
        core.state.set_check(own.lease_id, other.lease_id, CheckState.PROVEN, "; ".join(proven))

    def _prove_disagreement(
        self, job: JobRow, own: OwnLease, other: ChainLease, tile: int, openings: list[Opening]
    ) -> str:
        """Prove on chain that ``other`` is far from ours on ``tile``; what came of it."""
        core, log = self.core, self.core.log
        log.info(
            "replica_disagrees",
            f"replica lease {other.lease_id} disagrees with ours (lease {own.lease_id}) on "
            f"tile {tile} of job {job.job_id}: proving it on chain "
            f"({len(openings)} opened leaves)",
            lease=own.lease_id,
            other=other.lease_id,
            job=job.job_id,
            tile=tile,
        )
        try:
            contest = core.market.prove_disagreement(
                job.job_id, tile, own.lease_id, other.lease_id, openings
            )
        except ContractRevertError as exc:
            if exc.name == "MarketTileAlreadyContested":
                log.info(
                    "already_contested",
                    f"tile {tile} of job {job.job_id} is already contested",
                    job=job.job_id,
                    tile=tile,
                )
                return f"tile {tile}: already contested"
            log.warning(
                "prove_failed",
                f"could not prove the disagreement on tile {tile}: {exc.message}",
                job=job.job_id,
                tile=tile,
                error=exc.name,
            )
            return f"tile {tile}: {exc.name}"
        log.info(
            "disagreement_proven",
            f"proved lease {other.lease_id} far from lease {own.lease_id} on tile {tile}: "
            f"contest {contest} opened; a jury drawn at random decides",
            contest=contest,
            lease=own.lease_id,
            other=other.lease_id,
            job=job.job_id,
            tile=tile,
        )
        return f"tile {tile}: contest {contest}"


def _tiles(tiles: list[int]) -> str:
    if not tiles:
        return "no tile"
    return (
        span(tiles[0], len(tiles))
        if tiles == list(range(tiles[0], tiles[-1] + 1))
        else ("tiles " + ", ".join(map(str, tiles)))
    )
