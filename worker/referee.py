"""Keeping replicas honest: compare other replicas of our tiles with ours, prove disagreements,
take tie-breaker lanes, prove the far side, resolve contests.

Every comparison opens the other worker's result against the root it revealed on chain
(``open_lease_result``), then applies the contract's agreement rule tile by tile
(``disagreement_openings`` with the deployment's ``tolerance`` and ``farCount``); the openings
it returns are exactly what ``proveDisagreement`` / ``proveFar`` verify. Downloads run on the io
pool; transactions are sent from the main loop.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from blindframe.coordinator.errors import ContractRevertError, LeaseResultError
from blindframe.coordinator.market import ContestOutcome, LeaseStatus, Opening
from blindframe.coordinator.results import LeaseResult, disagreement_openings
from blindframe.coordinator.store import StoreError
from blindframe.worker.logs import span, when

if TYPE_CHECKING:
    from blindframe.worker.core import NodeCore
    from blindframe.worker.state import ChainLease, ContestRow, JobRow, OwnLease

__all__ = ["OUTCOMES", "Referee"]

OUTCOMES = {
    ContestOutcome.A_FAR: "side A was far from the tie-breaker: it forfeits the tile and is "
    "slashed, the tie-breaker is paid",
    ContestOutcome.B_FAR: "side B was far from the tie-breaker: it forfeits the tile and is "
    "slashed, the tie-breaker is paid",
    ContestOutcome.BOTH_FAR: "both sides were far from the tie-breaker: the tile's rewards go back "
    "to the client, nobody is slashed",
    ContestOutcome.NONE_FAR: "neither side was proven far: both keep the tile",
    ContestOutcome.NO_TIE_BREAKER: "no tie-breaker revealed in time: as if both were far",
}
_RETRY = 2.0


@dataclass(frozen=True)
class _Ref:
    """Where a lease's result can be read (resolved on the main thread, read on the io one)."""

    lease_id: int
    first_tile: int
    count: int
    root: bytes
    cid: str | None
    path: Path | None


@dataclass(frozen=True)
class _Comparison:
    """Our result against another replica's, tile by tile."""

    openings: dict[int, list[Opening] | None]
    identical: bool


# Callbacks the node gives the referee: may it take a tie-breaker now, and take it.
CanClaim = Callable[[int], bool]
ClaimTieBreaker = Callable[["ContestRow", "JobRow"], int | None]


class Referee:
    """Replica checks and contests of one node."""

    def __init__(
        self, core: NodeCore, *, can_claim: CanClaim, claim_tie_breaker: ClaimTieBreaker
    ) -> None:
        self.core = core
        self.can_claim = can_claim
        self.claim_tie_breaker = claim_tie_breaker
        self._deadlines: dict[tuple[int, int], int] = {}

    # -- queueing comparisons --------------------------------------------------------------------

    def on_revealed(self, lease_id: int) -> None:
        """A lease revealed (ours or another's): queue the comparisons it makes possible."""
        core = self.core
        if core.options.fault is not None:
            return  # a dishonest test node does not police others
        lease = core.state.lease(lease_id)
        job = core.state.job(lease.job_id) if lease is not None else None
        if lease is None or job is None or lease.lane >= job.replication:
            return
        if lease.worker.lower() == core.me.lower():
            others = [
                other
                for other in core.state.leases(job_id=lease.job_id, statuses=("revealed",))
                if other.worker.lower() != core.me.lower()
                and other.lane < job.replication
                and _overlap(other.tiles, lease.tiles)
            ]
            for other in others:
                core.state.add_check(lease_id, other.lease_id)
            return
        for own in core.state.own_leases():
            if (
                own.job_id == lease.job_id
                and own.kind == "replica"
                and own.state not in ("lost", "failed", "abandoned")
                and _overlap(own.tiles, lease.tiles)
            ):
                core.state.add_check(own.lease_id, lease_id)

    def busy(self) -> bool:
        """Whether a comparison or a contest of ours is still open."""
        if self.core.state.checks(("pending",)):
            return True
        return any(self._involved(c) for c in self.core.state.contests())

    # -- comparisons -----------------------------------------------------------------------------

    def drive(self) -> None:
        """Advance comparisons and contests (called every tick from the main loop)."""
        if self.core.options.fault is not None:
            return  # a dishonest test node neither polices nor defends
        self._drive_checks()
        self._drive_contests()

    def _drive_checks(self) -> None:
        core = self.core
        for check in core.state.checks(("pending",)):
            key = ("check", check.own_lease, check.other_lease)
            if key in core.tasks:
                continue
            own = core.state.own(check.own_lease)
            other = core.state.lease(check.other_lease)
            if own is None or other is None:
                continue
            if own.state in ("lost", "failed", "abandoned") or other.status == "reclaimed":
                core.state.set_check(own.lease_id, other.lease_id, "skipped", "a lease ended")
                continue
            if own.state not in ("revealed", "settled") or other.status not in (
                "revealed",
                "settled",
            ):
                continue  # both must be revealed on chain before a disagreement can be proven
            job = core.state.job(own.job_id)
            if job is None:
                continue
            deadline = self._challenge_deadline(own.lease_id, other.lease_id)
            if core.clock.now() > deadline:
                core.state.set_check(
                    own.lease_id, other.lease_id, "late", f"challenge window closed at {deadline}"
                )
                continue
            core.spawn(
                key,
                core.io_pool,
                functools.partial(self._compare, job, self._own_ref(own), self._chain_ref(other)),
                functools.partial(self._compared, job=job, own=own, other=other),
            )

    def _challenge_deadline(self, a: int, b: int) -> int:
        key = (a, b)
        if key not in self._deadlines:
            market = self.core.market
            revealed = max(market.lease(a).revealedAt, market.lease(b).revealedAt)
            self._deadlines[key] = revealed + int(self.core.params["challengeWindow"])
        return self._deadlines[key]

    def _own_ref(self, own: OwnLease) -> _Ref:
        if own.root is None:
            raise LeaseResultError(f"our lease {own.lease_id} has no result yet")
        return _Ref(
            own.lease_id,
            own.first_tile,
            own.count,
            bytes.fromhex(own.root),
            own.result_cid,
            None if own.result_path is None else Path(own.result_path),
        )

    def _chain_ref(self, lease: ChainLease) -> _Ref:
        if lease.root is None or lease.result_cid is None:
            raise LeaseResultError(f"lease {lease.lease_id} has not revealed a result")
        return _Ref(
            lease.lease_id,
            lease.first_tile,
            lease.count,
            bytes.fromhex(lease.root.removeprefix("0x")),
            lease.result_cid,
            None,
        )

    def _ref(self, lease_id: int) -> _Ref:
        """(main thread) Where a lease's result is: our own file, or its revealed CID."""
        own = self.core.state.own(lease_id)
        if own is not None and own.root is not None:
            return self._own_ref(own)
        lease = self.core.state.lease(lease_id)
        if lease is None:
            raise LeaseResultError(f"lease {lease_id} is not indexed yet")
        return self._chain_ref(lease)

    def _load(self, job: JobRow, ref: _Ref) -> LeaseResult:
        """(io thread) A lease's result, checked against its root."""
        return self.core.lease_result(
            job=job,
            lease_id=ref.lease_id,
            first_tile=ref.first_tile,
            count=ref.count,
            root=ref.root,
            cid=ref.cid,
            path=ref.path,
        )

    def _compare(self, job: JobRow, mine_ref: _Ref, other_ref: _Ref) -> _Comparison:
        """(io thread) Both results, then the agreement rule on every shared tile."""
        mine = self._load(job, mine_ref)
        theirs = self._load(job, other_ref)
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
            core.state.set_check(own.lease_id, other.lease_id, "unopenable", exc.message)
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
            core.state.set_check(own.lease_id, other.lease_id, "pending", exc.message)
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
            core.state.set_check(own.lease_id, other.lease_id, "agree", how)
            log.info(
                "replica_agrees",
                f"replica lease {other.lease_id} agrees with our lease {own.lease_id} on "
                f"{_tiles(shared)} of job {job.job_id} ({how})",
                lease=own.lease_id,
                other=other.lease_id,
                job=job.job_id,
            )
            return
        proven: list[str] = []
        for tile, openings in sorted(far.items()):
            assert openings is not None
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
                    proven.append(f"tile {tile}: already contested")
                    continue
                log.warning(
                    "prove_failed",
                    f"could not prove the disagreement on tile {tile}: {exc.message}",
                    job=job.job_id,
                    tile=tile,
                    error=exc.name,
                )
                proven.append(f"tile {tile}: {exc.name}")
                continue
            proven.append(f"tile {tile}: contest {contest}")
            log.info(
                "disagreement_proven",
                f"proved lease {other.lease_id} far from lease {own.lease_id} on tile {tile}: "
                f"contest {contest} opened; a fresh tie-breaker replica decides",
                contest=contest,
                lease=own.lease_id,
                other=other.lease_id,
                job=job.job_id,
                tile=tile,
            )
        core.state.set_check(own.lease_id, other.lease_id, "proven", "; ".join(proven))

    # -- contests --------------------------------------------------------------------------------

    def _own_ids(self) -> set[int]:
        return {lease.lease_id for lease in self.core.state.own_leases()}

    def _involved(self, contest: ContestRow, own: set[int] | None = None) -> bool:
        own = self._own_ids() if own is None else own
        return bool({contest.lease_a, contest.lease_b, contest.tie_lease} & own)

    def _drive_contests(self) -> None:
        core = self.core
        now_wall = time.monotonic()
        own = self._own_ids()
        for contest in core.state.contests():
            if contest.retry_at > now_wall or ("contest", contest.contest_id) in core.tasks:
                continue
            job = core.state.job(contest.job_id)
            if job is None:
                continue
            involved = self._involved(contest, own)
            if not involved and not self._may_tie_break(contest, job):
                continue
            try:
                self._drive_contest(contest, job, involved)
            except LeaseResultError as exc:  # a lease of the contest is not indexed yet
                core.log.debug("contest_wait", f"contest {contest.contest_id}: {exc.message}")
                core.state.update_contest(contest.contest_id, retry_at=now_wall + _RETRY)
            except ContractRevertError as exc:
                core.log.debug(
                    "contest_wait",
                    f"contest {contest.contest_id}: {exc.message}",
                    contest=contest.contest_id,
                )
                until = exc.error_args.get("until")
                retry = _RETRY
                if isinstance(until, int):
                    retry = max(_RETRY, min(60.0, until - core.clock.now() + 1))
                core.state.update_contest(contest.contest_id, retry_at=now_wall + retry)

    def _may_tie_break(self, contest: ContestRow, job: JobRow) -> bool:
        core = self.core
        return (
            not core.stopping
            and core.options.fault is None
            and contest.tie_lease == 0
            and job.status == "valid"
            and job.kernel in core.options.kernels
            and job.client.lower() != core.me.lower()
            and contest.lane is not None
            and contest.claim_deadline is not None
            and core.clock.now() <= contest.claim_deadline
        )

    def _drive_contest(self, contest: ContestRow, job: JobRow, involved: bool) -> None:
        core = self.core
        view = core.market.contest(contest.contest_id)
        if view.outcome != ContestOutcome.PENDING:
            core.state.update_contest(contest.contest_id, outcome=ContestOutcome(view.outcome).name)
            return
        now = core.clock.now()
        if view.leaseT == 0:
            if contest.tie_lease:
                core.state.update_contest(contest.contest_id, tie_lease=0)
            if now <= view.claimDeadline:
                if (
                    self._may_tie_break(contest, job)
                    and self._free_for_us(contest, job)
                    and self.can_claim(1)
                ):
                    self.claim_tie_breaker(contest, job)
                core.state.update_contest(contest.contest_id, retry_at=time.monotonic() + _RETRY)
                return
            if involved:  # nobody took the tie-breaker in time: end the contest
                self._resolve(contest)
            return
        tie = core.market.lease(view.leaseT)
        if view.leaseT != contest.tie_lease:
            core.state.update_contest(contest.contest_id, tie_lease=view.leaseT)
        if not involved and view.leaseT not in self._own_ids():
            return
        if tie.state != LeaseStatus.REVEALED:
            core.state.update_contest(contest.contest_id, retry_at=time.monotonic() + _RETRY)
            return
        window_end = tie.revealedAt + int(core.params["challengeWindow"])
        if now <= window_end:
            sides = [(0, view.leaseA)] + ([(1, view.leaseB)] if view.leaseB else [])
            own = self._own_ids()
            todo = [
                (side, lease)
                for side, lease in sides
                if lease not in own
                and not (view.farMask >> side) & 1
                and not (contest.looked >> side) & 1
            ]
            if todo:
                refs: list[tuple[int, _Ref | str]] = []
                for side, lease in todo:
                    try:
                        refs.append((side, self._ref(lease)))
                    except LeaseResultError as exc:
                        refs.append((side, exc.message))
                core.spawn(
                    ("contest", contest.contest_id),
                    core.io_pool,
                    functools.partial(
                        self._compare_sides, job, contest.tile, self._ref(view.leaseT), refs
                    ),
                    functools.partial(
                        self._sides_compared, contest=contest, job=job, window_end=window_end
                    ),
                )
                return
            core.state.update_contest(
                contest.contest_id,
                retry_at=time.monotonic() + max(_RETRY, min(60.0, window_end - now + 1)),
            )
            return
        self._resolve(contest)

    def _free_for_us(self, contest: ContestRow, job: JobRow) -> bool:
        """We hold no replica of the tile (the contract forbids two on one worker)."""
        assert contest.lane is not None
        first, count = self.core.market.free_range(
            job.job_id, contest.lane, self.core.me, contest.tile, 1
        )
        return count == 1 and first == contest.tile

    def _compare_sides(
        self, job: JobRow, tile: int, tie: _Ref, sides: list[tuple[int, _Ref | str]]
    ) -> dict[int, list[Opening] | None | str]:
        """(io thread) Each contested side against the tie-breaker's result on ``tile``."""
        params = self.core.params
        tie_result = self._load(job, tie)
        out: dict[int, list[Opening] | None | str] = {}
        for side, ref in sides:
            if isinstance(ref, str):
                out[side] = ref
                continue
            try:
                result = self._load(job, ref)
            except LeaseResultError as exc:
                out[side] = exc.message
                continue
            out[side] = disagreement_openings(
                result,
                tie_result,
                tile,
                tolerance=int(params["tolerance"]),
                far_count=int(params["farCount"]),
            )
        return out

    def _sides_compared(
        self,
        future: Future[dict[int, list[Opening] | None | str]],
        contest: ContestRow,
        job: JobRow,
        window_end: int,
    ) -> None:
        core, log = self.core, self.core.log
        try:
            found = future.result()
        except (StoreError, LeaseResultError) as exc:
            log.debug(
                "contest_fetch_retry",
                f"contest {contest.contest_id}: cannot compare yet ({exc.message})",
                contest=contest.contest_id,
            )
            core.state.update_contest(contest.contest_id, retry_at=time.monotonic() + _RETRY)
            return
        looked = contest.looked
        for side, openings in found.items():
            looked |= 1 << side
            lease = contest.lease_a if side == 0 else contest.lease_b
            if isinstance(openings, str):
                log.warning(
                    "contest_unopenable",
                    f"contest {contest.contest_id}: lease {lease}'s result cannot be opened "
                    f"({openings}); it cannot be proven far",
                    contest=contest.contest_id,
                )
                continue
            if openings is None:
                log.info(
                    "side_agrees",
                    f"contest {contest.contest_id}: lease {lease} (side {'AB'[side]}) agrees with "
                    f"the tie-breaker on tile {contest.tile}",
                    contest=contest.contest_id,
                    lease=lease,
                )
                continue
            if core.clock.now() > window_end:
                log.warning(
                    "far_late",
                    f"contest {contest.contest_id}: lease {lease} is far from the tie-breaker but "
                    f"the window to prove it closed at {window_end}",
                    contest=contest.contest_id,
                )
                continue
            log.info(
                "far_found",
                f"contest {contest.contest_id}: lease {lease} (side {'AB'[side]}) is far from the "
                f"tie-breaker on tile {contest.tile}: proving it on chain",
                contest=contest.contest_id,
                lease=lease,
            )
            try:
                core.market.prove_far(contest.contest_id, side, openings)
            except ContractRevertError as exc:
                if exc.name == "MarketBadSide":  # another node proved it first
                    log.info(
                        "far_already_proven",
                        f"contest {contest.contest_id}: lease {lease} was already proven far",
                        contest=contest.contest_id,
                    )
                    continue
                log.warning(
                    "prove_far_failed",
                    f"contest {contest.contest_id}: could not prove lease {lease} far: "
                    f"{exc.message}",
                    contest=contest.contest_id,
                    error=exc.name,
                )
                continue
            log.info(
                "far_proven",
                f"proved lease {lease} far from the tie-breaker (contest {contest.contest_id}): "
                "it forfeits the tile when the contest resolves",
                contest=contest.contest_id,
                lease=lease,
            )
        core.state.update_contest(contest.contest_id, looked=looked, retry_at=0.0)

    def _resolve(self, contest: ContestRow) -> None:
        core = self.core
        core.market.resolve_contest(contest.contest_id)
        view = core.market.contest(contest.contest_id)
        outcome = ContestOutcome(view.outcome)
        core.state.update_contest(contest.contest_id, outcome=outcome.name)
        core.log.info(
            "contest_resolved",
            f"resolved contest {contest.contest_id} (job {contest.job_id}, tile {contest.tile}): "
            f"{outcome.name}: {OUTCOMES.get(outcome, '')}",
            contest=contest.contest_id,
            outcome=outcome.name,
        )

    def describe_claim_window(self, contest: ContestRow) -> str:
        """When the contest's tie-breaker lane closes, for log lines."""
        if contest.claim_deadline is None:
            return "soon"
        return when(contest.claim_deadline, self.core.clock.now())


def _overlap(a: range, b: range) -> bool:
    return a.start < b.stop and b.start < a.stop


def _tiles(tiles: list[int]) -> str:
    if not tiles:
        return "no tile"
    return (
        span(tiles[0], len(tiles))
        if tiles == list(range(tiles[0], tiles[-1] + 1))
        else ("tiles " + ", ".join(map(str, tiles)))
    )
