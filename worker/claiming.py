"""Planning and claiming work: which free tiles of which valid jobs this node can take within its
stake, capacity and compute slots, sized by what it measured of each kernel's speed."""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from blindframe.coordinator.errors import ContractRevertError
from blindframe.coordinator.market import NO_FAULT_LIMIT
from blindframe.coordinator.scheduling import Claim, OpenJob, Policy, RuntimeModel, plan_claims
from blindframe.errors import BlindframeError
from blindframe.worker.core import NodePart
from blindframe.worker.logs import eth, span, when
from blindframe.worker.state import (
    ACTIVE_STATES,
    ChainLeaseStatus,
    JobStatus,
    LeaseKind,
    OwnState,
)

if TYPE_CHECKING:
    from blindframe.coordinator.market import JobView
    from blindframe.worker.core import NodeCore
    from blindframe.worker.state import JobRow

__all__ = ["Claimer", "Runtimes"]

_CLAIM_MARGIN = 15  # seconds a claim transaction may take before the lease clock starts
# An advertisement (`advertise`, one transaction per kernel) is renewed at start when the measured
# figure moved by more than this share of the advertised one, or when that one is this old.
_ADVERTISE_CHANGE = 0.2
_ADVERTISE_MAX_AGE = 86_400
_FULL_RECHECK = 10.0  # seconds before looking again at a job with no free tile


class Runtimes:
    """How fast this machine computes: seconds per tile by kernel (measured, or configured
    priors) and the recent overhead of a lease beyond its tiles (fetching, loading keys)."""

    def __init__(self, model: RuntimeModel) -> None:
        self.model = model
        self._overheads: deque[float] = deque([5.0], maxlen=20)

    def overhead(self) -> float:
        """Seconds a lease typically takes beyond computing its tiles."""
        return float(statistics.median(self._overheads))

    def estimate(self, kernel: str, count: int) -> float | None:
        """Seconds a lease of ``count`` tiles of ``kernel`` should take (None: never measured)."""
        per_tile = self.model.seconds_per_tile(kernel)
        if per_tile is None:
            return None
        return count * per_tile + self.overhead()

    def record(self, kernel: str, tiles: int, tile_seconds: float, total_seconds: float) -> None:
        """Learn from a computed lease."""
        self.model.record(kernel, tiles, tile_seconds)
        self._overheads.append(max(total_seconds - tile_seconds, 0.0))


@dataclass(frozen=True)
class _Plan:
    """A claim with the numbers behind it, for the log."""

    claim: Claim
    kernel: str
    per_tile: float | None
    fits: int
    lease_length: int
    note: str | None = None  # why this claim is not an ordinary planned one


class Claimer(NodePart):
    """Claims free tiles of valid jobs by policy, as replica leases of this node."""

    def __init__(self, core: NodeCore, runtimes: Runtimes) -> None:
        super().__init__(core)
        self.runtimes = runtimes
        self.claimed_last_round = False
        self._full_until: dict[int, float] = {}
        self._stake_warned = 0.0
        self._gates: dict[int, JobView] = {}  # the job as first read: its gate never changes
        self._refused: set[int] = set()  # jobs whose gate refused this node (said once)

    def advertise_speeds(self) -> None:
        """At start: advertise on chain, per kernel this node runs, its milliseconds per tile
        (measured, else the configured prior), for artists' quotes and ETAs; only when the
        figure moved by more than 20 % or the advertised one is a day old (each costs gas)."""
        view = self.market.worker(self.me)
        if view.stake < int(self.market.params["minStake"]):
            return  # not listed among the market's nodes until staked
        now = self.core.clock.now()
        for kernel in self.options.kernels:
            seconds = self.runtimes.model.seconds_per_tile(kernel)
            if seconds is None:
                continue  # never measured and no --tile-seconds prior: nothing true to say
            ms = min(max(round(seconds * 1000), 1), 2**32 - 1)
            try:
                old, at = self.market.advertisement(self.me, kernel)
                fresh = old > 0 and now - at < _ADVERTISE_MAX_AGE
                if fresh and abs(ms - old) <= _ADVERTISE_CHANGE * old:
                    continue
                self.market.advertise(kernel, ms)
            except BlindframeError as exc:
                # Informational only: a node that cannot advertise still renders.
                self.log.warning("advertise_failed", f"could not advertise {kernel}: {exc}")
                continue
            self.log.info(
                "advertised",
                f"advertised {ms} ms per tile of {kernel} on chain (was "
                f"{f'{old} ms' if old else 'none'}) for artists' quotes",
                kernel=kernel,
                ms_per_tile=ms,
            )

    def reopened(self, job_id: int) -> None:
        """A job's tiles reopened (a lease was reclaimed): look at it again."""
        self._full_until.pop(job_id, None)

    def slots(self) -> int:
        busy = len(self.state.own_leases((OwnState.CLAIMED, OwnState.COMPUTING)))
        return self.options.parallel - busy

    def _free_tiles(self) -> int:
        view = self.market.worker(self.me)
        params = self.market.params
        if view.stake < int(params["minStake"]):
            if time.monotonic() - self._stake_warned > 300:
                self._stake_warned = time.monotonic()
                self.log.warning(
                    "stake_low",
                    f"the stake ({eth(view.stake)}) is below the minimum "
                    f"{eth(int(params['minStake']))}: this node cannot claim; "
                    "`blindframe worker stake --amount ETH` adds some",
                )
            return 0
        by_collateral = (view.stake - view.locked) // max(int(params["collateralPerTile"]), 1)
        free = min(view.free_capacity, by_collateral)
        if self.options.capacity is not None:
            active = sum(lease.count for lease in self.state.own_leases(ACTIVE_STATES))
            free = min(free, self.options.capacity - active)
        return max(free, 0)

    def _free_ranges(self, job: JobRow, lane: int) -> list[tuple[int, int]]:
        """Runs of tiles this node may claim in ``lane``: free there, not held by us, not
        revealed in any lane yet (the market takes no new replica of a revealed tile: it could
        be a copy), and not held in another lane by a lease whose commit window closes before
        ours could be done (that lease may reveal then, and ours could no longer commit)."""
        revealed = self._revealed_tiles(job) | self._closing_tiles(job, lane)
        ranges: list[tuple[int, int]] = []
        tile = 0
        while tile < job.tile_count:
            first, count = self.market.free_range(job.job_id, lane, self.me, tile, 256)
            if count == 0:
                break
            start = first
            for t in range(first, first + count + 1):
                if t == first + count or t in revealed:
                    if t > start:
                        ranges.append((start, t - start))
                    start = t + 1
            tile = first + count
        return ranges

    def _closing_tiles(self, job: JobRow, lane: int) -> set[int]:
        """Tiles another lane's live lease holds with a commit deadline sooner than the share of
        a lease this node plans to fill (``safety``): a replica claimed now could be overtaken."""
        soon = self.core.clock.now() + int(job.lease_length * self.options.safety)
        return {
            tile
            for lease in self.state.leases(
                job_id=job.job_id, statuses=(ChainLeaseStatus.CLAIMED, ChainLeaseStatus.COMMITTED)
            )
            if lease.lane < job.replication and lease.lane != lane and lease.commit_deadline < soon
            for tile in lease.tiles
        }

    def _revealed_tiles(self, job: JobRow) -> set[int]:
        """Tiles of ``job`` some replica lease revealed (as this node's index saw it)."""
        return {
            tile
            for lease in self.state.leases(
                job_id=job.job_id, statuses=(ChainLeaseStatus.REVEALED, ChainLeaseStatus.SETTLED)
            )
            if lease.lane < job.replication
            for tile in lease.tiles
        }

    def claim_new_work(self) -> None:
        slots = self.slots()
        if slots <= 0:
            return
        wall = time.monotonic()
        now = self.core.clock.now()
        jobs = [
            job
            for job in self.state.jobs((JobStatus.VALID,))
            if job.kernel in self.options.kernels
            and now + job.lease_length + _CLAIM_MARGIN <= job.deadline
            and self._full_until.get(job.job_id, 0.0) <= wall
        ]
        jobs = self._admitted(jobs)
        if not jobs:
            return
        free = self._free_tiles()
        if free <= 0:
            return
        open_jobs = []
        for job in jobs:
            lanes = {lane: self._free_ranges(job, lane) for lane in range(job.replication)}
            if not any(lanes.values()):
                self._full_until[job.job_id] = wall + _FULL_RECHECK
                continue
            open_jobs.append(
                (
                    job,
                    OpenJob(
                        job_id=job.job_id,
                        kernel_id=job.kernel,
                        priority=job.priority,
                        reward_per_tile=job.reward_wei,
                        deadline=job.deadline,
                        lease_length=job.lease_length,
                        free={lane: ranges for lane, ranges in lanes.items() if ranges},
                    ),
                )
            )
        plans = self._plan(open_jobs, free, now)
        for plan in plans[:slots]:
            self._claim(plan)

    def _admitted(self, jobs: list[JobRow]) -> list[JobRow]:
        """The jobs whose reputation gate (minCompleted, maxFaults) admits this node: the
        market would refuse its claims on the others. Each refusal is said once, and again
        when the node's record changes its answer."""
        for job in jobs:
            if job.job_id not in self._gates:
                self._gates[job.job_id] = self.market.job(job.job_id)
        gated = [job for job in jobs if self._gates[job.job_id].gated]
        if not gated:
            return jobs
        me = self.market.worker(self.me)
        admitted = []
        for job in jobs:
            view = self._gates[job.job_id]
            if view.admits(me.completed, me.faults):
                if job.job_id in self._refused:
                    self._refused.discard(job.job_id)
                    self.log.info(
                        "gate_admits",
                        f"job {job.job_id} admits this node now ({me.completed} tiles paid, "
                        f"{me.faults} fault(s)): claiming its tiles",
                        job=job.job_id,
                    )
                admitted.append(job)
            elif job.job_id not in self._refused:
                self._refused.add(job.job_id)
                any_faults = view.maxFaults == NO_FAULT_LIMIT
                limit = "any number of" if any_faults else f"at most {view.maxFaults}"
                self.log.info(
                    "gate_refuses",
                    f"not claiming job {job.job_id}: it takes nodes with at least "
                    f"{view.minCompleted} tiles paid and {limit} faults; this node has "
                    f"{me.completed} and {me.faults}",
                    job=job.job_id,
                    min_completed=view.minCompleted,
                    max_faults=view.maxFaults,
                    completed=me.completed,
                    faults=me.faults,
                )
        return admitted

    def _plan(self, open_jobs: list[tuple[JobRow, OpenJob]], free: int, now: int) -> list[_Plan]:
        estimates = self.runtimes.model.estimates(self.options.kernels)
        overhead = self.runtimes.overhead()
        policy = Policy(
            kernels=frozenset(self.options.kernels),
            min_wei_per_second=self.options.min_price,
            safety=self.options.safety,
            overhead_seconds=overhead,
        )
        plans: list[_Plan] = []
        # A kernel this node never ran (and has no configured prior for): one tile, to measure.
        probes: dict[str, tuple[JobRow, OpenJob]] = {}
        for job, open_job in open_jobs:
            if job.kernel not in estimates:
                best = probes.get(job.kernel)
                if best is None or (open_job.priority, open_job.reward_per_tile) > (
                    best[1].priority,
                    best[1].reward_per_tile,
                ):
                    probes[job.kernel] = (job, open_job)
        for kernel, (job, open_job) in probes.items():
            lane = min(open_job.free)
            first = open_job.free[lane][0][0]
            note = f"a first tile, to measure {kernel} on this machine"
            plans.append(
                _Plan(Claim(job.job_id, lane, first, 1), kernel, None, 1, job.lease_length, note)
            )
            free -= 1
        if free <= 0:
            return plans
        measured = [oj for job, oj in open_jobs if job.kernel in estimates]
        by_id = {job.job_id: job for job, _ in open_jobs}
        for claim in plan_claims(
            measured, free_capacity=free, seconds_per_tile=estimates, policy=policy, now=now
        ):
            job = by_id[claim.job_id]
            per_tile = max(estimates[job.kernel], 1e-3)
            window = min(job.lease_length, job.deadline - now) * policy.safety - overhead
            plans.append(
                _Plan(claim, job.kernel, per_tile, int(window // per_tile), job.lease_length)
            )
        return plans

    def _claim(self, plan: _Plan) -> int | None:
        claim = plan.claim
        try:
            lease_id, event = self.market.claim(claim.job_id, claim.lane, claim.first, claim.count)
        except ContractRevertError as exc:
            self._full_until[claim.job_id] = time.monotonic() + 2.0
            if exc.name == "MarketTileRevealed":
                # Another lane revealed a tile of the range: no replica of it may start now.
                self._full_until[claim.job_id] = time.monotonic() + _FULL_RECHECK
            if exc.name in (
                "MarketTilesTaken",
                "MarketTileHeld",
                "MarketTileRevealed",
                "MarketClaimClosed",
                "MarketJobCancelled",
            ):
                self.log.debug("claim_missed", f"claim not made: {exc.message}", job=claim.job_id)
            else:
                self.log.warning("claim_failed", f"claim not made: {exc}", job=claim.job_id)
            return None
        self.claimed_last_round = True
        if self.state.own(lease_id) is not None:
            # Lease ids never repeat on one chain: ours came back as a new claim, so the chain
            # reorganised under this round (after it was polled). The old lease is gone; its
            # result and salt must never serve the new one.
            self.state.forget_leases([lease_id])
            self.log.warning(
                "lease_replaced",
                f"the chain reorganised under this round: lease {lease_id} is now a new claim; "
                "the dropped lease is forgotten (its result and salt are never used again)",
                lease=lease_id,
                job=claim.job_id,
            )
        self.state.add_lease({**event, "worker": self.me})
        self.state.add_own(
            lease_id=lease_id,
            job_id=claim.job_id,
            lane=claim.lane,
            first_tile=claim.first,
            count=claim.count,
            kind=LeaseKind.REPLICA,  # only replica lanes are claimed: jurors are drawn
            commit_deadline=int(event["commitDeadline"]),
        )
        what = f"claimed {span(claim.first, claim.count)} of job {claim.job_id} (lane {claim.lane})"
        if plan.note is not None or plan.per_tile is None:
            detail = plan.note or "one tile"
        else:
            detail = (
                f"{plan.fits} tiles fit the {plan.lease_length} s lease at "
                f"{plan.per_tile:.1f} s/tile"
            )
        self.log.info(
            "claimed",
            f"{what} as lease {lease_id}: {detail}; commit by "
            f"{when(int(event['commitDeadline']), self.core.clock.now())}",
            lease=lease_id,
            job=claim.job_id,
            lane=claim.lane,
            first_tile=claim.first,
            count=claim.count,
            seconds_per_tile=plan.per_tile,
            fits=plan.fits,
        )
        return lease_id
