"""Where this node's leases end up beyond their reveal, and around restarts: line them up with
the chain after a restart, finalize verified ones the client did not settle, reclaim other
workers' expired leases, and stop (finishing what is in flight) or abandon (saying what is at
stake)."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from typing import TYPE_CHECKING

import psutil

from blindframe.coordinator.errors import ContractRevertError
from blindframe.coordinator.market import LeaseStatus
from blindframe.worker.core import NodePart, commitment_of
from blindframe.worker.leases import COMMIT_MARGIN, RECLAIM_GRACE, at_stake
from blindframe.worker.logs import span, when
from blindframe.worker.state import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    ChainLeaseStatus,
    LeaseKind,
    OwnState,
)

if TYPE_CHECKING:
    from blindframe.worker.claiming import Runtimes
    from blindframe.worker.core import NodeCore
    from blindframe.worker.leases import LeaseRunner
    from blindframe.worker.pinned import PinnedPool
    from blindframe.worker.state import OwnLease

__all__ = ["EXIT_ABANDONED", "EXIT_OK", "Recovery"]

EXIT_OK = 0
EXIT_ABANDONED = 130


class Recovery(NodePart):
    """Restarts, payment of verified leases, reclaims of expired ones, stopping."""

    def __init__(
        self, core: NodeCore, *, leases: LeaseRunner, runtimes: Runtimes, pinned: PinnedPool
    ) -> None:
        super().__init__(core)
        self.leases = leases
        self.runtimes = runtimes
        self.pinned = pinned
        self._reclaim_tried: dict[int, float] = {}

    def recover(self) -> None:
        """After a restart: line our unfinished leases up with the chain."""
        states = (*ACTIVE_STATES, OwnState.REVEALED)
        for lease in self.state.own_leases(states):
            view = self.market.lease(lease.lease_id)
            now = self.core.clock.now()
            if view.state in (LeaseStatus.RECLAIMED, LeaseStatus.FORFEITED):
                self.state.update_own(lease.lease_id, state=OwnState.LOST)
                how = "reclaimed" if view.state == LeaseStatus.RECLAIMED else "forfeited"
                self.log.warning(
                    "lease_lost",
                    f"lease {lease.lease_id} was {how} while this node was away",
                    lease=lease.lease_id,
                )
            elif view.state == LeaseStatus.SETTLED:
                self.state.update_own(lease.lease_id, state=OwnState.SETTLED)
            elif view.state == LeaseStatus.REVEALED:
                self.state.update_own(lease.lease_id, state=OwnState.REVEALED)
                self.leases.republish(lease)
            elif view.state == LeaseStatus.COMMITTED:
                if not self._saved_result(lease, view.digest):
                    self.leases.lose(
                        lease, "it committed to a result this node no longer has", committed=True
                    )
                    continue
                self.state.update_own(lease.lease_id, state=OwnState.COMMITTED)
                self.log.info(
                    "resumed",
                    f"resuming lease {lease.lease_id}: committed before the restart, revealing it",
                    lease=lease.lease_id,
                )
            elif lease.state in (OwnState.COMPUTED, OwnState.COMMITTED) and self._saved_result(
                lease, None
            ):
                self.state.update_own(lease.lease_id, state=OwnState.COMPUTED)
                self.log.info(
                    "resumed",
                    f"resuming lease {lease.lease_id}: computed before the restart, committing it",
                    lease=lease.lease_id,
                )
            else:
                self._resume_compute(lease, now)

    def after_reorg(self, block: int) -> None:
        """The chain reorganised back to ``block`` and the index dropped the events after it:
        line the leases built from them up with the chain again, before the replacement events
        are folded. A lease the new chain no longer holds as it was (gone, or its id now another
        claim) is forgotten: its result and salt are never used again, and tiles claimed anew get
        a fresh salt. A commit the new chain lost is sent again with a fresh salt (the dropped
        one was public); a lost reveal is sent again (the commitment it opens stands)."""
        total = self.market.counts()[1]
        mine = self.state.own_leases()
        seen = self.state.leases(
            statuses=(
                ChainLeaseStatus.CLAIMED,
                ChainLeaseStatus.COMMITTED,
                ChainLeaseStatus.REVEALED,
            )
        )
        candidates = {lease.lease_id for lease in mine if lease.state not in TERMINAL_STATES}
        candidates |= {lease.lease_id for lease in seen}
        candidates |= {lease.lease_id for lease in mine if lease.lease_id > total}
        dropped: list[int] = []
        for lease_id in sorted(candidates):
            view = self.market.lease(lease_id) if lease_id <= total else None
            own = self.state.own(lease_id)
            known = self.state.lease(lease_id)
            reference = own or known
            assert reference is not None
            if (
                view is None
                or view.state == LeaseStatus.NONE
                or (view.jobId, view.firstTile, view.count)
                != (reference.job_id, reference.first_tile, reference.count)
                or (own is not None and not self.core.is_me(view.worker))
                or (known is not None and str(view.worker).lower() != known.worker.lower())
            ):
                dropped.append(lease_id)
                continue
            status = ChainLeaseStatus(view.state.name.lower())
            if known is not None and known.status != status:
                self.state.lease_status(lease_id, status)
            if own is not None:
                self._own_after_reorg(own, view.state)
        if dropped:
            self.state.forget_leases(dropped)
        self.log.warning(
            "chain_reorg",
            f"the chain reorganised back to block {block}: its events after it were dropped and "
            "this node's view of the market re-read from the chain"
            + (
                f"; lease(s) {', '.join(map(str, dropped))} no longer exist as claimed and are "
                "forgotten (their results and salts are never used again)"
                if dropped
                else ""
            ),
            block=block,
            dropped=dropped,
        )

    def _own_after_reorg(self, lease: OwnLease, status: LeaseStatus) -> None:
        """One lease of ours that the new chain still holds: undo what the reorganisation
        dropped (a commit, a reveal)."""
        if status == LeaseStatus.CLAIMED and lease.state in (OwnState.COMMITTED, OwnState.REVEALED):
            self.state.update_own(
                lease.lease_id, state=OwnState.COMPUTED, salt=secrets.token_bytes(32).hex()
            )
            self.log.warning(
                "commit_dropped",
                f"the reorganisation dropped lease {lease.lease_id}'s commit: committing it "
                "again, with a fresh salt",
                lease=lease.lease_id,
            )
        elif status == LeaseStatus.COMMITTED and lease.state == OwnState.REVEALED:
            self.state.update_own(lease.lease_id, state=OwnState.COMMITTED)
            self.log.warning(
                "reveal_dropped",
                f"the reorganisation dropped lease {lease.lease_id}'s reveal: revealing it again",
                lease=lease.lease_id,
            )

    def _saved_result(self, lease: OwnLease, digest: bytes | None) -> bool:
        """Whether our saved root, salt and result file still stand (and match ``digest``)."""
        if lease.root is None or lease.salt is None or not self.leases.republish(lease):
            return False
        if digest is None:
            return True
        commitment = commitment_of(bytes.fromhex(lease.root), self.me, bytes.fromhex(lease.salt))
        return bytes(digest) == commitment

    def _resume_compute(self, lease: OwnLease, now: int) -> None:
        job = self.state.job(lease.job_id)
        estimate = self.runtimes.estimate(job.kernel, lease.count) if job is not None else None
        left = lease.commit_deadline - now - COMMIT_MARGIN
        if left > 0 and (estimate is None or estimate < left):
            self.state.update_own(lease.lease_id, state=OwnState.CLAIMED, next_check=0)
            self.log.info(
                "resumed",
                f"resuming lease {lease.lease_id}: recomputing "
                f"{span(lease.first_tile, lease.count)}"
                + (f" (about {estimate:.0f} s)" if estimate is not None else "")
                + f", commit deadline {when(lease.commit_deadline, now)}",
                lease=lease.lease_id,
            )
            return
        self.state.update_own(
            lease.lease_id, state=OwnState.FAILED, error="no time left to recompute"
        )
        self.log.warning(
            "let_go",
            f"lease {lease.lease_id} cannot be recomputed before its commit deadline "
            f"({when(lease.commit_deadline, now)}): letting it go; "
            f"{at_stake(self.core, lease, committed=False)}",
            lease=lease.lease_id,
        )

    def finalize_verified(self) -> None:
        wall = time.time()
        acceptance = int(self.market.params["acceptanceWindow"])
        ready: dict[int, list[int]] = {}
        for lease in self.state.own_leases((OwnState.REVEALED,)):
            if lease.kind != LeaseKind.REPLICA or lease.next_check > wall:
                continue
            view = self.market.lease(lease.lease_id)
            if view.state == LeaseStatus.SETTLED:
                continue  # the payment event arrives with the next poll
            if view.openContests:
                self.state.update_own(lease.lease_id, next_check=wall + 5)
                continue
            verified = self.market.verified_at(lease.lease_id)
            now = self.core.clock.now()
            if verified == 0 or now <= verified + acceptance:
                wait = 5 if verified == 0 else verified + acceptance - now + 1
                self.state.update_own(lease.lease_id, next_check=wall + min(max(wait, 1), 30))
                continue
            ready.setdefault(lease.job_id, []).append(lease.lease_id)
        for job_id, leases in ready.items():
            for start in range(0, len(leases), 128):
                batch = leases[start : start + 128]
                try:
                    self.market.finalize(job_id, batch)
                except ContractRevertError as exc:
                    self.log.debug("finalize_wait", f"finalize not yet: {exc.message}")
                    for lease_id in batch:
                        self.state.update_own(lease_id, next_check=wall + 5)
                    continue
                self.log.info(
                    "finalized",
                    f"finalized lease(s) {', '.join(map(str, batch))} of job {job_id}: the client "
                    f"did not settle within the {acceptance} s acceptance window",
                    job=job_id,
                    leases=batch,
                )

    def reclaim_expired(self) -> None:
        """Reclaim other workers' expired leases for the bounty (policy ``reclaim``)."""
        if not self.options.reclaim or not self.core.behaviour.polices:
            return
        now, wall = self.core.clock.now(), time.monotonic()
        for lease in self.state.leases(
            statuses=(ChainLeaseStatus.CLAIMED, ChainLeaseStatus.COMMITTED)
        ):
            if self.core.is_me(lease.worker) or self._reclaim_tried.get(lease.lease_id, 0) > wall:
                continue
            deadline = (
                lease.commit_deadline
                if lease.status == ChainLeaseStatus.CLAIMED
                else lease.reveal_deadline
            )
            if now <= deadline + RECLAIM_GRACE:
                continue
            self._reclaim_tried[lease.lease_id] = wall + 30
            try:
                self.market.reclaim(lease.lease_id)
            except ContractRevertError as exc:
                self.log.debug("reclaim_skipped", f"lease {lease.lease_id}: {exc.message}")
                continue
            missed = "commit" if lease.status == ChainLeaseStatus.CLAIMED else "reveal"
            self.log.info(
                "reclaimed",
                f"reclaimed lease {lease.lease_id} of {lease.worker} (job {lease.job_id}, "
                f"{span(lease.first_tile, lease.count)}): it missed its "
                f"{missed} deadline; its tiles reopened and a bounty is credited to this node",
                lease=lease.lease_id,
                job=lease.job_id,
            )

    def in_flight(self) -> list[OwnLease]:
        return self.state.own_leases(ACTIVE_STATES)

    def announce_stop(self) -> None:
        leases = self.in_flight()
        if not leases:
            self.log.info("stopping", "stopping: no lease in flight")
            return
        names = ", ".join(f"{lease.lease_id} ({lease.state})" for lease in leases)
        self.log.info(
            "stopping",
            f"stopping: no new claims; finishing lease(s) {names} up to their reveal first. "
            "Press Ctrl-C again to abandon them (their collateral would be slashed)",
            leases=[lease.lease_id for lease in leases],
        )

    def finish(self) -> int:
        revealed = self.state.own_leases((OwnState.REVEALED,))
        if revealed:
            ids = ", ".join(str(lease.lease_id) for lease in revealed)
            self.log.info(
                "stopped",
                f"stopped: lease(s) {ids} are revealed and wait for verification and payment; "
                "the client settles them, or run the node again to compare replicas and "
                "finalize them",
                revealed=[lease.lease_id for lease in revealed],
            )
        else:
            self.log.info("stopped", "stopped: nothing in flight")
        return EXIT_OK

    def abandon(self) -> int:
        leases = self.in_flight()
        killed = self.core.running("compute")
        self.pinned.close()  # the idle pinned processes, then every busy one and its call:
        _kill_sandbox_children()
        for lease in leases:
            committed = lease.state == OwnState.COMMITTED
            self.state.update_own(
                lease.lease_id, state=OwnState.ABANDONED, error="abandoned by the operator"
            )
            self.log.warning(
                "abandoned",
                f"abandoning lease {lease.lease_id} (job {lease.job_id}, "
                f"{span(lease.first_tile, lease.count)}, {lease.state}): "
                f"{at_stake(self.core, lease, committed=committed)}",
                lease=lease.lease_id,
                state=lease.state,
            )
        if killed:
            self.log.warning(
                "sandbox_killed", f"stopped {killed} sandboxed computation(s) in progress"
            )
        if not leases:
            self.log.info("stopped", "stopped: nothing was in flight")
        return EXIT_ABANDONED


def _kill_sandbox_children() -> int:
    """Kill the sandbox children this process started (found by their module name)."""
    killed = 0
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(os.getpid()).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "blindframe.fhe_core._child" in " ".join(child.cmdline()):
                    child.kill()
                    killed += 1
    return killed
