"""Keeping replicas honest: compare other replicas of our tiles with ours, prove disagreements,
draw contests' juries, prove sides and other replicas far from the jury's verdict, resolve
contests, and answer availability challenges on our own leases.

Every comparison opens the other worker's result against the root it revealed on chain
(``open_lease_result``), then applies the contract's agreement rule tile by tile
(``disagreement_openings`` with the deployment's ``tolerance`` and ``farCount``: one opening of
the digest leaf when two outputs differ at all); the openings it returns are exactly what
``proveDisagreement`` / ``proveFar`` / ``proveReplicaFar`` verify. Nobody claims a contest's
tie-breaker: once a contest's draw block is mined, any node following the job calls
``drawJury``, and a node drawn as a juror computes the tile as one of its own leases (see
:mod:`blindframe.worker.node`). Downloads run on the io pool; transactions are sent from the
main loop.
"""

from __future__ import annotations

import functools
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from web3.types import RPCEndpoint

from blindframe.coordinator.errors import ContractRevertError, LeaseResultError
from blindframe.coordinator.market import ContestOutcome, ContestView, Opening
from blindframe.coordinator.results import LeaseResult, disagreement_openings
from blindframe.coordinator.store import StoreError
from blindframe.worker.faults import LOCAL_CHAIN_ID
from blindframe.worker.logs import span, when

if TYPE_CHECKING:
    from blindframe.worker.core import NodeCore
    from blindframe.worker.state import ChainLease, ChallengeRow, ContestRow, JobRow, OwnLease

__all__ = ["OUTCOMES", "Referee"]

OUTCOMES = {
    ContestOutcome.A_FAR: "side A was far from the jury's verdict: it forfeits the tile and is "
    "slashed, the jurors on the verdict are paid",
    ContestOutcome.B_FAR: "side B was far from the jury's verdict: it forfeits the tile and is "
    "slashed, the jurors on the verdict are paid",
    ContestOutcome.BOTH_FAR: "both sides were far from the jury's verdict: both forfeit the tile",
    ContestOutcome.NONE_FAR: "neither side was proven far: both keep the tile",
    ContestOutcome.NO_TIE_BREAKER: "the jury reached no verdict in time: as if both were far",
}
_RETRY = 2.0
_MINE_AFTER = 3.0  # seconds without a new block before a dev chain is asked to mine one


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


@dataclass(frozen=True)
class _Found:
    """One lease compared with a contest's verdict: far (``openings``), agreeing (neither set),
    or not comparable: ``problem`` says why, ``final`` whether trying again could help."""

    openings: list[Opening] | None = None
    problem: str | None = None
    final: bool = True


# A lease to compare with the verdict: ("side", 0 | 1, lease) or ("replica", -1, lease).
_Target = tuple[str, int, int]


class Referee:
    """Replica checks, contests and availability challenges of one node."""

    def __init__(self, core: NodeCore) -> None:
        self.core = core
        self._deadlines: dict[tuple[int, int], int] = {}
        self._draw_waiting: dict[int, tuple[int, float]] = {}
        self._draw_closed: set[int] = set()

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
        """Whether a comparison, a contest of ours or a challenge of one of our leases is open."""
        state = self.core.state
        if state.checks(("pending",)):
            return True
        own = self._own_ids()
        if any(c.lease_id in own for c in state.challenges(("open",))):
            return True
        return any(self._involved(c) for c in state.contests())

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
            if own.state in ("lost", "failed", "abandoned") or other.status in (
                "reclaimed",
                "forfeited",
            ):
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
                f"contest {contest} opened; a jury drawn at random decides",
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
        """A side of the contest, one of its jurors, or a replica of its tile is ours."""
        own = self._own_ids() if own is None else own
        if {contest.lease_a, contest.lease_b} & own:
            return True
        for lease in self.core.state.own_leases():
            if lease.job_id != contest.job_id:
                continue
            if lease.kind == "juror" and lease.contest_id == contest.contest_id:
                return True
            if (
                lease.kind == "replica"
                and contest.tile in lease.tiles
                and lease.state in ("revealed", "settled")
            ):
                return True
        return False

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
            if not involved and not self._may_draw(contest, job):
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

    def _may_draw(self, contest: ContestRow, job: JobRow) -> bool:
        """Whether this node calls the draw of a contest it is not part of: it follows the job
        (a job it validated) and the draw window is open."""
        core = self.core
        return (
            not core.stopping
            and core.options.fault is None
            and job.status == "valid"
            and contest.claim_deadline is not None
            and contest.contest_id not in self._draw_closed
            and core.clock.now() <= contest.claim_deadline
        )

    def _retry(self, contest: ContestRow, seconds: float) -> None:
        self.core.state.update_contest(
            contest.contest_id, retry_at=time.monotonic() + max(_RETRY, min(60.0, seconds))
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
            and core.options.fault is None
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
            self._retry(contest, _RETRY)  # a draw may still run, or jurors commit or reveal
            return
        window_end = fixed_at + int(core.params["challengeWindow"])
        if now > window_end or lease_t == 0:
            # No verdict (nobody drawn, or no majority): nothing to prove against, the contest
            # ends undecided; with one, once its window to prove sides far has passed.
            self._resolve(contest)
            return
        if now <= fixed_at:
            self._retry(contest, _RETRY)  # proofs are taken strictly after the verdict is fixed
            return
        targets = self._targets(contest, view, job)
        if not targets:
            self._retry(contest, window_end - now + 1)
            return
        refs: list[tuple[_Target, _Ref | str]] = []
        for target in targets:
            try:
                refs.append((target, self._ref(target[2])))
            except LeaseResultError as exc:
                refs.append((target, exc.message))
        core.spawn(
            ("contest", contest.contest_id),
            core.io_pool,
            functools.partial(
                self._compare_with_verdict, job, contest.tile, self._ref(lease_t), refs
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
        own = self._own_ids()
        out: list[_Target] = []
        sides = [(0, view.leaseA)] + ([(1, view.leaseB)] if view.leaseB else [])
        for side, lease in sides:
            if lease in own or (view.farMask >> side) & 1 or (contest.looked >> side) & 1:
                continue
            out.append(("side", side, lease))
        looked = contest.replicas_compared
        for other in self.core.state.leases(job_id=job.job_id, statuses=("revealed",)):
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
        self, job: JobRow, tile: int, verdict: _Ref, targets: list[tuple[_Target, _Ref | str]]
    ) -> dict[_Target, _Found]:
        """(io thread) Each lease against the verdict lease's result on ``tile``."""
        params = self.core.params
        verdict_result = self._load(job, verdict)
        out: dict[_Target, _Found] = {}
        for target, ref in targets:
            if isinstance(ref, str):
                out[target] = _Found(problem=ref, final=False)
                continue
            try:
                result = self._load(job, ref)
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
            core.state.update_contest(contest.contest_id, retry_at=time.monotonic() + _RETRY)
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
            retry_at=time.monotonic() + _RETRY if retry else 0.0,
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
        try:
            if kind == "side":
                core.market.prove_far(contest.contest_id, side, found.openings)
            else:
                core.market.prove_replica_far(contest.contest_id, lease, found.openings)
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

    def describe_claim_window(self, contest: ContestRow) -> str:
        """When the contest's jury draw window closes, for log lines."""
        if contest.claim_deadline is None:
            return "soon"
        return when(contest.claim_deadline, self.core.clock.now())

    # -- data availability -----------------------------------------------------------------------

    def defend(self) -> None:
        """Answer availability challenges on our own leases from our stored results (every
        node but a ``withhold`` one), and end unanswered ones that concern us past their
        deadline. Called every tick from the main loop."""
        core = self.core
        if core.options.fault == "withhold":
            return  # TEST-ONLY: it never opens its leaves
        wall, now = time.monotonic(), core.clock.now()
        for challenge in core.state.challenges(("open",)):
            if challenge.retry_at > wall or ("answer", challenge.challenge_id) in core.tasks:
                continue
            own = core.state.own(challenge.lease_id)
            if own is not None and own.root is not None:
                if now > challenge.deadline:
                    core.state.update_challenge(challenge.challenge_id, retry_at=wall + 60)
                    continue
                job = core.state.job(own.job_id)
                if job is None:
                    continue
                core.spawn(
                    ("answer", challenge.challenge_id),
                    core.defense_pool,
                    functools.partial(self._answer, job, self._own_ref(own), challenge),
                    functools.partial(self._answered, challenge=challenge),
                )
                continue
            if now > challenge.deadline and self._concerns_us(challenge):
                self._resolve_availability(challenge)

    def _answer(
        self, job: JobRow, ref: _Ref, challenge: ChallengeRow
    ) -> tuple[list[bytes], list[list[bytes]]]:
        """(io thread) The challenged leaves of our result and their proofs."""
        result = self._load(job, ref)
        tree = result.trees[challenge.tile - result.first_tile]
        leaves = challenge.leaf_indices
        return (
            [tree.leaf(leaf) for leaf in leaves],
            [result.proof(challenge.tile, leaf) for leaf in leaves],
        )

    def _answered(
        self, future: Future[tuple[list[bytes], list[list[bytes]]]], challenge: ChallengeRow
    ) -> None:
        core, log = self.core, self.core.log
        try:
            leaf_data, proofs = future.result()
        except (LeaseResultError, FileNotFoundError) as exc:
            log.error(
                "availability_unanswerable",
                f"cannot answer availability challenge {challenge.challenge_id} on our lease "
                f"{challenge.lease_id}: {exc}; the lease will be forfeited after "
                f"{when(challenge.deadline, core.clock.now())}",
                challenge=challenge.challenge_id,
                lease=challenge.lease_id,
            )
            core.state.update_challenge(challenge.challenge_id, retry_at=time.monotonic() + 60)
            return
        try:
            core.market.answer_availability(
                challenge.challenge_id, challenge.leaf_indices, leaf_data, proofs
            )
        except ContractRevertError as exc:
            if exc.name == "MarketChallengeNotOpen":
                core.state.update_challenge(challenge.challenge_id, status="answered")
                return
            log.warning(
                "availability_answer_failed",
                f"could not answer availability challenge {challenge.challenge_id}: {exc.message}",
                challenge=challenge.challenge_id,
                error=exc.name,
            )
            core.state.update_challenge(challenge.challenge_id, retry_at=time.monotonic() + _RETRY)
            return
        core.state.update_challenge(challenge.challenge_id, status="answered")

    def _concerns_us(self, challenge: ChallengeRow) -> bool:
        """We challenged it, or the challenged lease shares a tile with a replica of ours."""
        core = self.core
        if core.options.fault is not None:
            return False
        if challenge.challenger.lower() == core.me.lower():
            return True
        return any(
            own.job_id == challenge.job_id
            and own.kind == "replica"
            and challenge.tile in own.tiles
            and own.state not in ("lost", "failed", "abandoned")
            for own in core.state.own_leases()
        )

    def _resolve_availability(self, challenge: ChallengeRow) -> None:
        core = self.core
        core.state.update_challenge(challenge.challenge_id, retry_at=time.monotonic() + 30)
        try:
            core.market.resolve_availability(challenge.challenge_id)
        except ContractRevertError as exc:
            if exc.name == "MarketChallengeNotOpen":
                return  # answered, or resolved by someone else: its event says which
            core.log.debug(
                "availability_wait",
                f"availability challenge {challenge.challenge_id}: {exc.message}",
                challenge=challenge.challenge_id,
            )
            return
        core.log.info(
            "availability_resolved",
            f"availability challenge {challenge.challenge_id} went unanswered: lease "
            f"{challenge.lease_id} is forfeited and its worker slashed",
            challenge=challenge.challenge_id,
            lease=challenge.lease_id,
        )


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
