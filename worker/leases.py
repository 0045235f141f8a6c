"""The path of each lease of this node after its claim: compute it (in the sandbox, on the
compute pool), commit, reveal once the other replicas committed, and let go of it, lose it or
reclaim it ourselves when that path breaks."""

from __future__ import annotations

import errno
import functools
import secrets
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

from blindframe.coordinator.errors import ContractRevertError, LeaseResultError
from blindframe.coordinator.market import LeaseStatus
from blindframe.coordinator.store import ContentNotFoundError, StoreConnectionError, StoreError
from blindframe.fhe_core.errors import FheCoreError, SandboxError
from blindframe.worker import faults
from blindframe.worker.compute import BadJobDataError, LeaseOutput, LeaseTask
from blindframe.worker.core import NodePart, commitment_of
from blindframe.worker.logs import eth, span, when
from blindframe.worker.state import JobStatus, LeaseKind, OwnState

if TYPE_CHECKING:
    from blindframe.coordinator.results import LeaseResult
    from blindframe.worker.claiming import Runtimes
    from blindframe.worker.compute import LeaseComputer
    from blindframe.worker.core import NodeCore
    from blindframe.worker.state import JobRow, OwnLease
    from blindframe.worker.validation import JobValidator

__all__ = ["COMMIT_MARGIN", "RECLAIM_GRACE", "LeaseRunner", "at_stake"]

COMMIT_MARGIN = 10  # seconds kept for the commit transaction after computing
RECLAIM_GRACE = 2  # seconds past a lease's deadline before reclaiming it (block time skew)
DISK_FULL_PAUSE = 60  # seconds without new claims after a lease found the disk full
# A write that does not fit: no space left, the user's quota, or the largest file allowed.
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def at_stake(core: NodeCore, lease: OwnLease, *, committed: bool) -> str:
    """What an unfinished lease of ours risks, for the log: when it can be reclaimed and what
    collateral it would lose then."""
    params = core.market.params
    collateral = int(params["collateralPerTile"]) * lease.count
    slashed = collateral * int(params["slashBps"]) // 10_000
    deadline = lease.commit_deadline + (int(params["revealWindow"]) if committed else 0)
    return (
        f"anyone may reclaim it after {when(deadline, core.clock.now())}, slashing "
        f"{eth(slashed)} of its {eth(collateral)} collateral"
    )


class LeaseRunner(NodePart):
    """Computes, commits and reveals this node's leases; fails, loses and reclaims them."""

    def __init__(
        self,
        core: NodeCore,
        *,
        computer: LeaseComputer,
        validator: JobValidator,
        runtimes: Runtimes,
        on_revealed: Callable[[int], None],
    ) -> None:
        super().__init__(core)
        self.computer = computer
        self.validator = validator
        self.runtimes = runtimes
        self.on_revealed = on_revealed
        self._waiting_logged: set[int] = set()
        self._republished: set[int] = set()
        self._disk_full_until = 0.0

    def start_computes(self) -> None:
        wall = time.time()
        for lease in self.state.own_leases((OwnState.CLAIMED,)):
            if self.core.running("compute") >= self.options.parallel:
                return
            if lease.next_check > wall:
                continue
            job = self.state.job(lease.job_id)
            if job is None:
                continue
            if job.status in (JobStatus.REFUSED, JobStatus.IGNORED):
                what = "refused" if job.status == JobStatus.REFUSED else "ignored by this node"
                self._fail(lease, f"its job was {what} ({job.reason})")
                continue
            manifest = self.validator.manifest(job)
            if manifest is None:
                continue  # validation pending
            left = lease.commit_deadline - self.core.clock.now() - COMMIT_MARGIN
            if left <= 0:
                self._fail(lease, "its commit deadline came before it could be computed")
                continue
            estimate = self.runtimes.estimate(job.kernel, lease.count)
            self.state.update_own(lease.lease_id, state=OwnState.COMPUTING)
            task = LeaseTask(
                lease_id=lease.lease_id,
                job_id=job.job_id,
                kernel=job.kernel,
                first_tile=lease.first_tile,
                count=lease.count,
                leaf_depth=job.leaf_depth,
                manifest=manifest,
                timeout_s=float(left),
            )
            if self.core.behaviour.copies(lease.kind):
                self._start_copy(lease, job, task)
                continue
            self.log.info(
                "computing",
                f"computing lease {lease.lease_id} ({span(lease.first_tile, lease.count)} of job "
                f"{job.job_id}) in the sandbox"
                + (f": about {estimate:.0f} s" if estimate is not None else "")
                + f", commit deadline {when(lease.commit_deadline, self.core.clock.now())}",
                lease=lease.lease_id,
                job=job.job_id,
                estimate=estimate,
            )
            self.core.spawn(
                ("compute", lease.lease_id),
                self.core.compute_pool,
                functools.partial(self.computer.compute, task),
                functools.partial(
                    self._computed,
                    lease=lease,
                    job=job,
                    deadline=time.monotonic() + task.timeout_s,
                ),
            )

    def _start_copy(self, lease: OwnLease, job: JobRow, task: LeaseTask) -> None:
        """TEST-ONLY (``--fault copy``): a juror lease takes a contested side's revealed tile
        instead of computing it."""
        contest = self.state.contest(lease.contest_id) if lease.contest_id is not None else None
        source = None
        if contest is not None:
            source = self.state.lease(faults.copied_side(contest.lease_a, contest.lease_b))
        if source is None or source.root is None or source.result_cid is None:
            self.state.update_own(
                lease.lease_id, state=OwnState.CLAIMED, next_check=time.time() + 2
            )
            return
        ref = source

        def copy() -> LeaseOutput:
            result: LeaseResult = self.core.lease_result(
                job=job,
                lease_id=ref.lease_id,
                first_tile=ref.first_tile,
                count=ref.count,
                root=bytes.fromhex(str(ref.root).removeprefix("0x")),
                cid=ref.result_cid,
            )
            return self.computer.copy(task, result, lease.first_tile)

        self.log.warning(
            "copying",
            f"FAULT copy: juror lease {lease.lease_id} copies lease {source.lease_id}'s tile "
            f"{lease.first_tile} instead of computing it",
            lease=lease.lease_id,
            source=source.lease_id,
        )
        self.core.spawn(
            ("compute", lease.lease_id),
            self.core.io_pool,
            copy,
            functools.partial(
                self._computed,
                lease=lease,
                job=job,
                deadline=time.monotonic() + task.timeout_s,
            ),
        )

    def _computed(
        self, future: Future[LeaseOutput], lease: OwnLease, job: JobRow, deadline: float
    ) -> None:
        if self.core.abandoning or self.state.own(lease.lease_id) is None:
            return
        current = self.state.own(lease.lease_id)
        if current is not None and current.state != OwnState.COMPUTING:
            return  # abandoned or lost meanwhile
        try:
            out = future.result()
        except Exception as exc:  # noqa: BLE001 - the node must outlive any single lease
            self._compute_failed(exc, lease, job, deadline)
            return
        if out.tiles_computed:
            self.runtimes.record(
                job.kernel, out.tiles_computed, out.tile_seconds, out.total_seconds
            )
        self.core.remember_result(lease.lease_id, out.result)
        salt = secrets.token_bytes(32)
        # The salt and root are on disk before the commit transaction exists: a node restarted
        # after committing can still reveal.
        self.state.update_own(
            lease.lease_id,
            state=OwnState.COMPUTED,
            salt=salt.hex(),
            root=out.root.hex(),
            result_cid=out.cid,
            result_path=str(out.path),
            compute_seconds=out.total_seconds,
            error=None,
        )
        per_tile = out.tile_seconds / max(out.tiles_computed, 1)
        self.log.info(
            "computed",
            f"computed lease {lease.lease_id} ({span(lease.first_tile, lease.count)}) in "
            f"{out.total_seconds:.1f} s ({per_tile:.1f} s/tile in the sandbox, "
            f"{out.setup_seconds:.1f} s to load the kernel and keys); result "
            f"{out.size / 1e6:.1f} MB added to IPFS as {out.cid}",
            lease=lease.lease_id,
            seconds=round(out.total_seconds, 3),
            seconds_per_tile=round(per_tile, 3),
            cid=out.cid,
            bytes=out.size,
        )
        self.core.behaviour.report_computed(self.log, lease.lease_id, lease.kind)

    def _compute_failed(
        self, exc: Exception, lease: OwnLease, job: JobRow, deadline: float
    ) -> None:
        """A lease's computation raised ``exc``: retry it later, or fail it (and refuse its job
        when the job is to blame)."""
        log = self.log
        if isinstance(exc, StoreConnectionError | ContentNotFoundError):
            self.state.update_own(
                lease.lease_id,
                state=OwnState.CLAIMED,
                next_check=time.time() + 10,
                error=exc.message,
            )
            log.warning(
                "fetch_retry",
                f"cannot fetch lease {lease.lease_id}'s data yet: {exc.message}; "
                "trying again in 10 s",
                lease=lease.lease_id,
            )
        elif isinstance(exc, StoreError):
            self._fail(lease, exc.message)
            self.validator.refuse(job.job_id, f"its data is bad: {exc.message}")
        elif isinstance(exc, SandboxError):
            self._fail(lease, exc.message)
            if time.monotonic() >= deadline - 1:
                # Killed at the time limit: this node was too slow, the job is not to blame.
                log.warning(
                    "too_slow",
                    f"lease {lease.lease_id} ran out of its time: this node computes {job.kernel} "
                    "slower than it planned (see --tile-seconds and --safety)",
                    lease=lease.lease_id,
                )
                return
            self.validator.refuse(job.job_id, f"its lease {lease.lease_id} failed: {exc.message}")
        elif isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            # Not the job's fault: this node's disk. Claiming more would fail the same way (and
            # be slashed each time), so it claims nothing until the pause is over.
            self._disk_full_until = time.monotonic() + DISK_FULL_PAUSE
            data_dir = self.computer.work_dir.parent  # <data-dir>/work
            where = f" ({exc.filename})" if exc.filename else ""
            self._fail(
                lease,
                f"the disk is full under the data directory {data_dir}: a write of the job's "
                f"keys, inputs or result failed{where}: {exc.strerror}; free space there (this "
                f"node claims no new tiles for {DISK_FULL_PAUSE} s)",
            )
        elif isinstance(exc, BadJobDataError | LeaseResultError | FheCoreError):
            self._fail(lease, exc.message)
            self.validator.refuse(job.job_id, f"its lease {lease.lease_id} failed: {exc.message}")
        else:
            log.debug("compute_traceback", "".join(traceback.format_exception(exc)))
            self._fail(lease, f"{type(exc).__name__}: {exc}")

    def disk_full(self) -> bool:
        """Whether a lease found the disk full within the last DISK_FULL_PAUSE seconds."""
        return time.monotonic() < self._disk_full_until

    def _fail(self, lease: OwnLease, reason: str) -> None:
        self.state.update_own(lease.lease_id, state=OwnState.FAILED, error=reason)
        self.log.error(
            "lease_failed",
            f"lease {lease.lease_id} ({span(lease.first_tile, lease.count)} of job "
            f"{lease.job_id}) failed: {reason}. {at_stake(self.core, lease, committed=False)}; "
            "this node reclaims it itself then (the bounty share comes back)",
            lease=lease.lease_id,
            reason=reason,
        )

    def drive(self) -> None:
        wall = time.time()
        for lease in self.state.own_leases(
            (OwnState.COMPUTED, OwnState.COMMITTED, OwnState.FAILED, OwnState.ABANDONED)
        ):
            if (
                lease.kind == LeaseKind.JUROR
                and lease.state == OwnState.COMMITTED
                and lease.next_check > wall
            ):
                continue  # a juror waiting for the other jurors' commits
            try:
                if lease.state == OwnState.COMPUTED:
                    self._commit(lease)
                elif lease.state == OwnState.COMMITTED:
                    self._reveal(lease)
                else:
                    self._reclaim_own(lease)
            except ContractRevertError as exc:
                self.log.debug(
                    "lease_wait", f"lease {lease.lease_id}: {exc.message}", lease=lease.lease_id
                )
                self.state.update_own(lease.lease_id, next_check=time.time() + 2)

    def _commit(self, lease: OwnLease) -> None:
        assert lease.root is not None
        assert lease.salt is not None
        root, salt = bytes.fromhex(lease.root), bytes.fromhex(lease.salt)
        commitment = commitment_of(root, self.me, salt)
        if self.core.clock.now() > lease.commit_deadline:
            self.lose(lease, "the commit deadline passed before the commit", committed=False)
            return
        try:
            self.market.commit(lease.lease_id, commitment)
        except ContractRevertError as exc:
            view = self.market.lease(lease.lease_id)
            if view.state in (LeaseStatus.COMMITTED, LeaseStatus.REVEALED) and (
                view.state == LeaseStatus.REVEALED or view.digest == commitment
            ):
                pass  # this node committed before a restart
            elif exc.name == "MarketLeaseExpired" or view.state == LeaseStatus.RECLAIMED:
                self.lose(lease, exc.message, committed=False)
                return
            elif exc.name == "MarketTileRevealed":
                self._overtaken(lease, exc.message)
                return
            else:
                raise
        self.state.update_own(lease.lease_id, state=OwnState.COMMITTED)
        self.log.info(
            "committed",
            f"committed lease {lease.lease_id} (root 0x{lease.root[:12]}…)",
            lease=lease.lease_id,
            root="0x" + lease.root,
        )
        self._reveal(self.state.own(lease.lease_id) or lease)

    def _overtaken(self, lease: OwnLease, reason: str) -> None:
        """Another lane revealed a tile of our lease before we committed: the market takes no
        commit for it now (a replica then could be a copy). The lease misses its commit and is
        reclaimed after its deadline like any other (an unslashed exit would let one operator
        hold a second lane for free); the claim policy avoids this by leaving tiles whose
        partner leases close their commit windows too soon."""
        self.state.update_own(lease.lease_id, state=OwnState.LOST, error=reason)
        self.log.warning(
            "lease_overtaken",
            f"lease {lease.lease_id} ({span(lease.first_tile, lease.count)} of job "
            f"{lease.job_id}) cannot commit: {reason}; it will be reclaimed (slashed) after "
            f"{when(lease.commit_deadline, self.core.clock.now())}",
            lease=lease.lease_id,
        )

    def _reveal(self, lease: OwnLease) -> None:
        assert lease.root is not None
        assert lease.salt is not None
        assert lease.result_cid is not None
        now = self.core.clock.now()
        reveal_deadline = self.state.reveal_deadline(lease, int(self.market.params["revealWindow"]))
        if now > reveal_deadline:
            self.lose(lease, "the reveal deadline passed", committed=True)
            return
        if lease.kind == LeaseKind.REPLICA and now <= lease.commit_deadline:
            job = self.market.job(lease.job_id)
            total = job.tileCount * job.replication
            if job.committedSlots < total:
                if lease.lease_id not in self._waiting_logged:
                    self._waiting_logged.add(lease.lease_id)
                    self.log.info(
                        "reveal_wait",
                        f"lease {lease.lease_id} waits to reveal until every replica slot of job "
                        f"{lease.job_id} has committed ({job.committedSlots} of {total}) or its "
                        f"commit window closes at {when(lease.commit_deadline, now)}",
                        lease=lease.lease_id,
                    )
                return
        self._republish_before_reveal(lease)
        try:
            self.market.reveal(
                lease.lease_id,
                bytes.fromhex(lease.root),
                lease.result_cid,
                bytes.fromhex(lease.salt),
            )
        except ContractRevertError as exc:
            view = self.market.lease(lease.lease_id)
            if view.state == LeaseStatus.REVEALED:
                pass  # revealed before a restart
            elif view.state == LeaseStatus.RECLAIMED or exc.name == "MarketLeaseExpired":
                self.lose(lease, exc.message, committed=True)
                return
            elif exc.name == "MarketRevealTooEarly" and lease.kind == LeaseKind.JUROR:
                # A juror reveals once every seated juror committed (or the draw window closed).
                if lease.lease_id not in self._waiting_logged:
                    self._waiting_logged.add(lease.lease_id)
                    self.log.info(
                        "reveal_wait",
                        f"juror lease {lease.lease_id} waits to reveal until every juror of "
                        f"contest {lease.contest_id} has committed: {exc.message}",
                        lease=lease.lease_id,
                    )
                self.state.update_own(lease.lease_id, next_check=time.time() + 2)
                return
            else:
                raise
        self.state.update_own(lease.lease_id, state=OwnState.REVEALED, next_check=0)
        job_row = self.state.job(lease.job_id)
        if job_row is not None and job_row.replication == 1:
            # The market verifies a replication-1 lease at its reveal: no replica to compare.
            after = "verified now (no other replica to compare); the client settles it"
        else:
            verify = int(self.market.params["challengeWindow"])
            after = f"replicas may challenge it for {verify} s after the last of them reveals"
        self.log.info(
            "revealed",
            f"revealed lease {lease.lease_id} (job {lease.job_id}, "
            f"{span(lease.first_tile, lease.count)}): result {lease.result_cid}; {after}",
            lease=lease.lease_id,
            cid=lease.result_cid,
        )
        self.on_revealed(lease.lease_id)

    def _republish_before_reveal(self, lease: OwnLease) -> None:
        """The result was added to IPFS when computed, but the IPFS node may have lost it since
        (wiped, replaced, garbage-collected): once revealed, the artist and the replicas fetch
        it at once, so add it again from our file first (adding is idempotent; once per lease
        and run: a juror's reveal may be tried every few seconds)."""
        try:
            if lease.lease_id not in self._republished:
                self.republish(lease)
                self._republished.add(lease.lease_id)
        except (StoreError, OSError) as exc:
            self.log.warning(
                "republish_failed",
                f"could not add lease {lease.lease_id}'s result to IPFS again before revealing "
                f"it: {exc}; revealing anyway (the file answers availability challenges)",
                lease=lease.lease_id,
            )

    def lose(self, lease: OwnLease, reason: str, *, committed: bool) -> None:
        self.state.update_own(lease.lease_id, state=OwnState.FAILED, error=reason)
        self.log.error(
            "lease_late",
            f"lease {lease.lease_id} ({span(lease.first_tile, lease.count)} of job "
            f"{lease.job_id}) is lost: {reason}. {at_stake(self.core, lease, committed=committed)}",
            lease=lease.lease_id,
        )

    def _reclaim_own(self, lease: OwnLease) -> None:
        """A failed or abandoned lease of ours: reclaim it ourselves once it expired."""
        wall = time.time()
        if lease.next_check > wall:
            return
        view = self.market.lease(lease.lease_id)
        now = self.core.clock.now()
        if view.state in (
            LeaseStatus.RECLAIMED,
            LeaseStatus.SETTLED,
            LeaseStatus.FORFEITED,
            LeaseStatus.NONE,
        ):
            self.state.update_own(lease.lease_id, state=OwnState.LOST)
            return
        if view.state == LeaseStatus.REVEALED:
            self.state.update_own(lease.lease_id, state=OwnState.REVEALED)
            return
        deadline = view.commitDeadline + (
            int(self.market.params["revealWindow"]) if view.state == LeaseStatus.COMMITTED else 0
        )
        if now <= deadline + RECLAIM_GRACE:
            self.state.update_own(lease.lease_id, next_check=wall + min(max(deadline - now, 1), 30))
            return
        self.market.reclaim(lease.lease_id)

    def republish(self, lease: OwnLease) -> bool:
        """Add our result file to IPFS again (pinned); False if the file is gone."""
        if lease.result_path is None or not Path(lease.result_path).is_file():
            return False
        if not self.core.behaviour.serves_results:
            return True  # TEST-ONLY (withhold): its bytes are never served
        added = self.core.store.add_file(Path(lease.result_path))
        return lease.result_cid is None or added.cid == lease.result_cid
