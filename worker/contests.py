"""Contests over a tile: draw their juries (any node following the job may), compare the sides
and other replicas of the tile with the jury's verdict, prove the far ones on chain, and resolve
the contest once its window closed.

Nobody claims a contest's tie-breaker: once a contest's draw block is mined, any node following
the job calls ``drawJury``, and a node drawn as a juror computes the tile as one of its own leases
(see :mod:`blindframe.worker.leases`). Downloads run on the io pool; transactions are sent from
the main loop.
"""

from __future__ import annotations

import functools
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from web3.types import RPCEndpoint

from blindframe.coordinator.errors import ContractRevertError, LeaseResultError
from blindframe.coordinator.market import ContestOutcome, ContestView, Opening
from blindframe.coordinator.results import disagreement_openings
from blindframe.coordinator.store import StoreError
from blindframe.worker.core import NodePart
from blindframe.worker.faults import LOCAL_CHAIN_ID
from blindframe.worker.result_refs import RETRY, ResultRef, load_result, ref_of
from blindframe.worker.state import ChainLeaseStatus, JobStatus, LeaseKind, OwnState

if TYPE_CHECKING:
    from blindframe.worker.core import NodeCore
    from blindframe.worker.state import ContestRow, JobRow

__all__ = ["OUTCOMES", "ContestReferee"]

OUTCOMES = {
    ContestOutcome.A_FAR: "side A was far from the jury's verdict: it forfeits the tile and is "
    "slashed, the jurors on the verdict are paid",
    ContestOutcome.B_FAR: "side B was far from the jury's verdict: it forfeits the tile and is "
    "slashed, the jurors on the verdict are paid",
    ContestOutcome.BOTH_FAR: "both sides were far from the jury's verdict: both forfeit the tile",
    ContestOutcome.NONE_FAR: "neither side was proven far: both keep the tile",
    ContestOutcome.NO_TIE_BREAKER: "the jury reached no verdict in time: as if both were far",
}
_MINE_AFTER = 3.0  # seconds without a new block before a dev chain is asked to mine one


@dataclass(frozen=True)
class _Found:
    """One lease compared with a contest's verdict: far (``openings``), agreeing (neither set),
    or not comparable: ``problem`` says why, ``final`` whether trying again could help."""

    openings: list[Opening] | None = None
    problem: str | None = None
    final: bool = True


# A lease to compare with the verdict: ("side", 0 | 1, lease) or ("replica", -1, lease).
_Target = tuple[str, int, int]


class ContestReferee(NodePart):
    """Drives the contests this node is part of (and draws juries of those it follows)."""

    def __init__(self, core: NodeCore) -> None:
        super().__init__(core)
        self._draw_waiting: dict[int, tuple[int, float]] = {}
        self._draw_closed: set[int] = set()

    def own_ids(self) -> set[int]:
        return {lease.lease_id for lease in self.core.state.own_leases()}

    def involved(self, contest: ContestRow, own: set[int] | None = None) -> bool:
        """A side of the contest, one of its jurors, or a replica of its tile is ours."""
        own = self.own_ids() if own is None else own
        if {contest.lease_a, contest.lease_b} & own:
            return True
        for lease in self.core.state.own_leases():
            if lease.job_id != contest.job_id:
                continue
            if lease.kind == LeaseKind.JUROR and lease.contest_id == contest.contest_id:
                return True
            if (
                lease.kind == LeaseKind.REPLICA
                and contest.tile in lease.tiles
                and lease.state in (OwnState.REVEALED, OwnState.SETTLED)
            ):
                return True
        return False

    def drive(self) -> None:
        core = self.core
        now_wall = time.monotonic()
        own = self.own_ids()
        for contest in core.state.contests():
            if contest.retry_at > now_wall or ("contest", contest.contest_id) in core.tasks:
                continue
            job = core.state.job(contest.job_id)
            if job is None:
                continue
            involved = self.involved(contest, own)
            if not involved and not self._may_draw(contest, job):
                continue
            try:
                self._drive_contest(contest, job, involved)
            except LeaseResultError as exc:  # a lease of the contest is not indexed yet
                core.log.debug("contest_wait", f"contest {contest.contest_id}: {exc.message}")
                core.state.update_contest(contest.contest_id, retry_at=now_wall + RETRY)
            except ContractRevertError as exc:
                core.log.debug(
                    "contest_wait",
                    f"contest {contest.contest_id}: {exc.message}",
                    contest=contest.contest_id,
                )
                until = exc.error_args.get("until")
                retry = RETRY
                if isinstance(until, int):
                    retry = max(RETRY, min(60.0, until - core.clock.now() + 1))
                core.state.update_contest(contest.contest_id, retry_at=now_wall + retry)

    def _may_draw(self, contest: ContestRow, job: JobRow) -> bool:
        """Whether this node calls the draw of a contest it is not part of: it follows the job
        (a job it validated) and the draw window is open."""
        core = self.core
        return (
            not core.stopping
            and core.behaviour.polices
            and job.status == JobStatus.VALID
            and contest.claim_deadline is not None
            and contest.contest_id not in self._draw_closed
            and core.clock.now() <= contest.claim_deadline
        )

    def _retry(self, contest: ContestRow, seconds: float) -> None:
        self.core.state.update_contest(
            contest.contest_id, retry_at=time.monotonic() + max(RETRY, min(60.0, seconds))
        )

    def _drive_contest(self, contest: ContestRow, job: JobRow, involved: bool) -> None:
        core = self.core
        view = core.market.contest(contest.contest_id)
        if view.outcome != ContestOutcome.PENDING:
            core.state.update_contest(contest.contest_id, outcome=ContestOutcome(view.outcome).name)
            return
        now = core.clock.now()
        if view.drawBlock != contest.draw_block:
            core.state.update_contest(contest.contest_id, draw_block=view.drawBlock)
        # The market says when its draw window closed (MarketDrawClosed): no more tries then.
        draw_end = view.claimDeadline
        if (
            view.drawBlock != 0
            and now <= draw_end
            and contest.contest_id not in self._draw_closed
            and core.behaviour.polices
        ):
            self._draw(contest, view)
            return
        if not involved:
            self._retry(contest, draw_end - now + 1)
            return
        lease_t, fixed_at = core.market.verdict(contest.contest_id)
        if lease_t != contest.tie_lease:
            core.state.update_contest(contest.contest_id, tie_lease=lease_t)
        if fixed_at == 0:
            self._retry(contest, RETRY)  # a draw may still run, or jurors commit or reveal
            return
        window_end = fixed_at + int(core.params["challengeWindow"])
        if now > window_end or lease_t == 0:
            # No verdict (nobody drawn, or no majority): nothing to prove against, the contest
            # ends undecided; with one, once its window to prove sides far has passed.
            self._resolve(contest)
            return
        if now <= fixed_at:
            self._retry(contest, RETRY)  # proofs are taken strictly after the verdict is fixed
            return
        targets = self._targets(contest, view, job)
        if not targets:
            self._retry(contest, window_end - now + 1)
            return
        refs: list[tuple[_Target, ResultRef | str]] = []
        for target in targets:
            try:
                refs.append((target, ref_of(core.state, target[2])))
            except LeaseResultError as exc:
                refs.append((target, exc.message))
        core.spawn(
            ("contest", contest.contest_id),
            core.io_pool,
            functools.partial(
                self._compare_with_verdict, job, contest.tile, ref_of(core.state, lease_t), refs
            ),
            functools.partial(
                self._verdict_compared,
                contest=contest,
                lease_t=lease_t,
                window_end=window_end,
            ),
        )

    def _targets(self, contest: ContestRow, view: ContestView, job: JobRow) -> list[_Target]:
        """Leases to compare with the verdict: the sides not proven far yet, then every other
        revealed replica of the tile this node knows (not ours: we computed those ourselves)."""
        own = self.own_ids()
        out: list[_Target] = []
        sides = [(0, view.leaseA)] + ([(1, view.leaseB)] if view.leaseB else [])
        for side, lease in sides:
            if lease in own or (view.farMask >> side) & 1 or (contest.looked >> side) & 1:
                continue
            out.append(("side", side, lease))
        looked = contest.replicas_compared
        for other in self.core.state.leases(
            job_id=job.job_id, statuses=(ChainLeaseStatus.REVEALED,)
        ):
            if (
                other.lane < job.replication
                and contest.tile in other.tiles
                and other.lease_id not in (view.leaseA, view.leaseB)
                and other.lease_id not in own
                and other.lease_id not in looked
            ):
                out.append(("replica", -1, other.lease_id))
        return out

    def _draw(self, contest: ContestRow, view: ContestView) -> None:
        """Draw the contest's jury once its draw block is behind us (any node may)."""
        core = self.core
        block = core.market.block_number()
        if block <= view.drawBlock:
            self._nudge_chain(contest.contest_id, view.drawBlock, block)
            core.state.update_contest(contest.contest_id, retry_at=time.monotonic() + 1.0)
            return
        self._draw_waiting.pop(contest.contest_id, None)
        try:
            drawn = core.market.draw_jury(contest.contest_id)
        except ContractRevertError as exc:
            if exc.name not in ("MarketDrawNotReady", "MarketDrawClosed"):
                raise
            if exc.name == "MarketDrawClosed":
                self._draw_closed.add(contest.contest_id)
            core.log.debug(
                "draw_skipped",
                f"contest {contest.contest_id}: {exc.message}",
                contest=contest.contest_id,
            )
            core.state.update_contest(contest.contest_id, retry_at=time.monotonic() + 1.0)
            return
        core.state.update_contest(contest.contest_id, draw_block=0, retry_at=0.0)
        if not drawn:
            core.log.info(
                "draw_rearmed",
                f"contest {contest.contest_id}: nobody could be drawn from its draw block (too "
                "old, or no eligible staked worker yet); a new draw is armed",
                contest=contest.contest_id,
            )
            core.state.update_contest(contest.contest_id, retry_at=time.monotonic() + 5.0)
            return
        core.log.info(
            "jury_drawn",
            f"drew the jury of contest {contest.contest_id} (job {contest.job_id}, tile "
            f"{contest.tile}): "
            + ", ".join(f"seat {e['seat']} {e['worker']} (lease {e['leaseId']})" for e in drawn),
            contest=contest.contest_id,
            jurors=[int(e["leaseId"]) for e in drawn],
            workers=[str(e["worker"]) for e in drawn],
        )

    def _nudge_chain(self, contest_id: int, draw_block: int, block: int) -> None:
        """On a local dev chain that mines only on transactions, mine a block when none came
        for a few seconds: the draw needs a block after its draw block."""
        core = self.core
        seen = self._draw_waiting.get(contest_id)
        wall = time.monotonic()
        if seen is None or seen[0] != block:
            self._draw_waiting[contest_id] = (block, wall)
            return
        if core.market.deployment.chain_id != LOCAL_CHAIN_ID or wall - seen[1] < _MINE_AFTER:
            return
        core.market.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
        self._draw_waiting[contest_id] = (block + 1, wall)
        core.log.debug(
            "mined",
            f"contest {contest_id}: no block after draw block {draw_block} came for "
            f"{_MINE_AFTER:.0f} s; asked the dev chain to mine one",
            contest=contest_id,
        )

    def _compare_with_verdict(
        self,
        job: JobRow,
        tile: int,
        verdict: ResultRef,
        targets: list[tuple[_Target, ResultRef | str]],
    ) -> dict[_Target, _Found]:
        """(io thread) Each lease against the verdict lease's result on ``tile``."""
        params = self.core.params
        verdict_result = load_result(self.core, job, verdict)
        out: dict[_Target, _Found] = {}
        for target, ref in targets:
            if isinstance(ref, str):
                out[target] = _Found(problem=ref, final=False)
                continue
            try:
                result = load_result(self.core, job, ref)
            except LeaseResultError as exc:
                out[target] = _Found(problem=exc.message)
                continue
            except (StoreError, FileNotFoundError) as exc:
                out[target] = _Found(problem=str(exc), final=False)
                continue
            out[target] = _Found(
                openings=disagreement_openings(
                    result,
                    verdict_result,
                    tile,
                    tolerance=int(params["tolerance"]),
                    far_count=int(params["farCount"]),
                )
            )
        return out

    def _verdict_compared(
        self,
        future: Future[dict[_Target, _Found]],
        contest: ContestRow,
        lease_t: int,
        window_end: int,
    ) -> None:
        core, log = self.core, self.core.log
        try:
            found = future.result()
        except (StoreError, LeaseResultError, FileNotFoundError) as exc:
            log.debug(
                "contest_fetch_retry",
                f"contest {contest.contest_id}: cannot read the verdict lease {lease_t} yet "
                f"({exc})",
                contest=contest.contest_id,
            )
            core.state.update_contest(contest.contest_id, retry_at=time.monotonic() + RETRY)
            return
        looked = contest.looked
        replicas = contest.replicas_compared
        retry = False
        for (kind, side, lease), result in found.items():
            what = f"lease {lease} (side {'AB'[side]})" if kind == "side" else f"lease {lease}"
            done = self._act_on(contest, kind, side, lease, what, result, window_end)
            if not done:
                retry = True
            elif kind == "side":
                looked |= 1 << side
            else:
                replicas.add(lease)
        core.state.update_contest(
            contest.contest_id,
            looked=looked,
            replicas_looked=",".join(map(str, sorted(replicas))),
            retry_at=time.monotonic() + RETRY if retry else 0.0,
        )

    def _act_on(
        self,
        contest: ContestRow,
        kind: str,
        side: int,
        lease: int,
        what: str,
        found: _Found,
        window_end: int,
    ) -> bool:
        """Log a comparison with the verdict and prove a far lease on chain; True when there is
        nothing more to do about that lease."""
        core, log = self.core, self.core.log
        if found.problem is not None:
            report = log.warning if found.final else log.debug
            report(
                "contest_unopenable",
                f"contest {contest.contest_id}: {what}'s result cannot be compared with the "
                f"verdict ({found.problem})"
                + ("; it cannot be proven far" if found.final else "; trying again"),
                contest=contest.contest_id,
                lease=lease,
            )
            return found.final or core.clock.now() > window_end
        if found.openings is None:
            log.info(
                "side_agrees" if kind == "side" else "replica_agrees_verdict",
                f"contest {contest.contest_id}: {what} agrees with the jury's verdict on tile "
                f"{contest.tile}",
                contest=contest.contest_id,
                lease=lease,
            )
            return True
        if core.clock.now() > window_end:
            log.warning(
                "far_late",
                f"contest {contest.contest_id}: {what} is far from the verdict but the window to "
                f"prove it closed at {window_end}",
                contest=contest.contest_id,
            )
            return True
        log.info(
            "far_found",
            f"contest {contest.contest_id}: {what} is far from the jury's verdict on tile "
            f"{contest.tile}: proving it on chain ({len(found.openings)} opened leaves)",
            contest=contest.contest_id,
            lease=lease,
        )
        return self._prove_far(contest, kind, side, lease, what, found.openings)

    def _prove_far(
        self,
        contest: ContestRow,
        kind: str,
        side: int,
        lease: int,
        what: str,
        openings: list[Opening],
    ) -> bool:
        """Prove a side or another replica far from the verdict on chain; True when there is
        nothing more to do about that lease."""
        log = self.core.log
        market = self.core.market
        try:
            if kind == "side":
                market.prove_far(contest.contest_id, side, openings)
            else:
                market.prove_replica_far(contest.contest_id, lease, openings)
        except ContractRevertError as exc:
            if exc.name in ("MarketBadSide", "MarketWrongLeaseStatus", "MarketContestSide"):
                log.info(
                    "far_already_proven",
                    f"contest {contest.contest_id}: {what} cannot be proven far any more "
                    f"({exc.message})",
                    contest=contest.contest_id,
                )
                return True
            log.warning(
                "prove_far_failed",
                f"contest {contest.contest_id}: could not prove {what} far: {exc.message}",
                contest=contest.contest_id,
                error=exc.name,
            )
            return exc.name in ("MarketContestResolved", "MarketChallengeClosed")
        log.info(
            "far_proven",
            f"proved {what} far from the jury's verdict (contest {contest.contest_id}): it "
            + (
                "forfeits the tile when the contest resolves"
                if kind == "side"
                else "forfeits the tile and is slashed"
            ),
            contest=contest.contest_id,
            lease=lease,
        )
        return True

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
