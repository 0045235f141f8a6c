"""Folding the market's events into the node's state: jobs, every lease, contests, payments.

The event indexer hands each event over at least once, in chain order; every handler here is an
idempotent upsert, touches only the state database (no RPC), and logs what concerns this node.
An event whose fields cannot be read is logged and skipped rather than offered again forever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from blindframe.coordinator.events import event_cid
from blindframe.coordinator.market import ContestOutcome, kernel_id_text
from blindframe.worker.logs import eth, span
from blindframe.worker.state import (
    ACTIVE_STATES,
    ChainLeaseStatus,
    ChallengeStatus,
    ContestKind,
    LeaseKind,
    OwnState,
)

if TYPE_CHECKING:
    from blindframe.coordinator.events import ChainEvent
    from blindframe.worker.logs import NodeLog
    from blindframe.worker.state import NodeState

__all__ = ["Ledger"]

# IStaking.SlashReason, in order.
_SLASH_REASONS = (
    "missed its commit",
    "missed its reveal",
    "was proven far from the jury's verdict",
    "lost a client dispute",
    "voted against the jury's verdict",
    "did not answer an availability challenge",
)


class Ledger:
    """Applies market events to a node's state."""

    def __init__(
        self,
        state: NodeState,
        log: NodeLog,
        me: str,
        *,
        on_revealed: Callable[[int], None],
        on_reopened: Callable[[int], None],
    ) -> None:
        self.state = state
        self.log = log
        self.me = me.lower()
        self.on_revealed = on_revealed
        self.on_reopened = on_reopened
        self._handlers: dict[str, Callable[[ChainEvent, dict[str, Any]], None]] = {
            "JobPosted": self._job_posted,
            "JobCancelled": self._job_cancelled,
            "TilesClaimed": self._tiles_claimed,
            "Committed": self._committed,
            "Revealed": self._revealed,
            "LeaseReclaimed": self._reclaimed,
            "DisagreementProven": self._disagreement,
            "Disputed": self._disputed,
            "TieBreakerOpened": self._tie_opened,
            "JuryDrawArmed": self._draw_armed,
            "JurorDrawn": self._juror_drawn,
            "FarProven": self._far_proven,
            "AvailabilityChallenged": self._availability_challenged,
            "AvailabilityAnswered": self._availability_answered,
            "AvailabilityFailed": self._availability_failed,
            "ContestResolved": self._resolved,
            "LeaseSettled": self._paid,
            "LeaseFinalized": self._paid,
            "TieBreakerSettled": self._tie_paid,
            "Credited": self._credited,
            "Slashed": self._slashed,
        }

    def fold(self, event: ChainEvent) -> None:
        """Apply one event (unknown events are ignored)."""
        handler = self._handlers.get(event.name)
        if handler is None:
            return
        try:
            handler(event, event.args)
        except (KeyError, TypeError, ValueError) as exc:
            self.log.warning(
                "odd_event",
                f"ignored a {event.name} event in block {event.block_number} that this node "
                f"cannot read: {exc!r}",
            )

    def _mine(self, address: Any) -> bool:
        return str(address).lower() == self.me

    # -- jobs and leases -------------------------------------------------------------------------

    def _job_posted(self, event: ChainEvent, a: dict[str, Any]) -> None:
        cid = _cid_text(a["manifestCid"])
        kernel = kernel_id_text(str(a["kernelId"]))
        if self.state.add_job(a, kernel, cid, event.block_number):
            self.log.debug(
                "job_posted",
                f"job {a['jobId']} posted: {kernel}, {a['tileCount']} tiles x "
                f"{a['replication']} replicas, {eth(int(a['rewardPerTileReplica']))} per "
                f"tile-replica, manifest {cid}",
                job=int(a["jobId"]),
            )

    def _job_cancelled(self, event: ChainEvent, a: dict[str, Any]) -> None:
        # Its replica lanes take no claims now (the market's freeRange says so); leases held go on.
        job_id = int(a["jobId"])
        held = [o.lease_id for o in self.state.own_leases(ACTIVE_STATES) if o.job_id == job_id]
        self.log.info(
            "job_cancelled",
            f"job {job_id} was cancelled by its client: no new claims"
            + (f"; this node's leases {held} go on as before" if held else ""),
            job=job_id,
        )

    def _tiles_claimed(self, event: ChainEvent, a: dict[str, Any]) -> None:
        state = self.state
        state.add_lease(a)
        lease_id, job_id, lane = int(a["leaseId"]), int(a["jobId"]), int(a["lane"])
        job = state.job(job_id)
        juror = job is not None and lane >= job.replication
        contest_id = None
        tile = int(a["firstTile"])
        if juror:
            for contest in state.contests_of(job_id, tile):
                if contest.lane == lane:
                    contest_id = contest.contest_id
        if not self._mine(a["worker"]) or state.own(lease_id) is not None:
            return
        state.add_own(
            lease_id=lease_id,
            job_id=job_id,
            lane=lane,
            first_tile=tile,
            count=int(a["count"]),
            kind=LeaseKind.JUROR if juror else LeaseKind.REPLICA,
            commit_deadline=int(a["commitDeadline"]),
            contest_id=contest_id,
        )
        if juror:
            # Nobody claims a jury seat: the market drew this node. It computes the tile like
            # any lease of its own.
            self.log.info(
                "juror_drawn",
                f"drawn as a juror of contest {contest_id} (job {job_id}, tile {tile}): lease "
                f"{lease_id} in lane {lane}; computing the tile, commit by "
                f"{a['commitDeadline']}",
                lease=lease_id,
                contest=contest_id,
                job=job_id,
                tile=tile,
                lane=lane,
            )
            return
        # Our claim, but the node did not record it (it stopped between the transaction and
        # the database write): take it over.
        self.log.info(
            "lease_found",
            f"found our lease {lease_id} (job {job_id}, "
            f"{span(tile, int(a['count']))}) on chain: taking it over",
            lease=lease_id,
        )

    def _committed(self, event: ChainEvent, a: dict[str, Any]) -> None:
        self.state.lease_status(int(a["leaseId"]), ChainLeaseStatus.COMMITTED)

    def _revealed(self, event: ChainEvent, a: dict[str, Any]) -> None:
        lease_id = int(a["leaseId"])
        self.state.lease_status(
            lease_id,
            ChainLeaseStatus.REVEALED,
            root=str(a["root"]),
            result_cid=_cid_text(a["resultCid"]),
            block=event.block_number,
        )
        self.on_revealed(lease_id)

    def _reclaimed(self, event: ChainEvent, a: dict[str, Any]) -> None:
        state = self.state
        lease_id = int(a["leaseId"])
        state.lease_status(lease_id, ChainLeaseStatus.RECLAIMED)
        self.on_reopened(int(a["jobId"]))
        own = state.own(lease_id)
        if own is None or own.state == OwnState.LOST:
            return
        state.update_own(lease_id, state=OwnState.LOST)
        why = "a missed reveal" if a["committed"] else "a missed commit"
        if self._mine(a["caller"]):
            self.log.info(
                "reclaimed_own",
                f"reclaimed our own lease {lease_id} after {why}: its tiles reopened; the bounty "
                "share of the slash came back to us",
                lease=lease_id,
            )
        else:
            self.log.warning(
                "lease_lost",
                f"our lease {lease_id} ({span(own.first_tile, own.count)} of job {own.job_id}) "
                f"was reclaimed by {a['caller']} after {why}: its collateral was slashed",
                lease=lease_id,
            )

    # -- contests --------------------------------------------------------------------------------

    def _disagreement(self, event: ChainEvent, a: dict[str, Any]) -> None:
        contest_id = int(a["contestId"])
        lease_a, lease_b = int(a["leaseA"]), int(a["leaseB"])
        self.state.add_contest(
            contest_id=contest_id,
            job_id=int(a["jobId"]),
            tile=int(a["tile"]),
            kind=ContestKind.DISAGREEMENT,
            lease_a=lease_a,
            lease_b=lease_b,
        )
        if self._mine(a["challenger"]):
            return
        for ours, theirs in ((lease_a, lease_b), (lease_b, lease_a)):
            if self.state.own(ours) is not None:
                self.log.warning(
                    "our_lease_contested",
                    f"{a['challenger']} proved our lease {ours} and lease {theirs} disagree on "
                    f"tile {a['tile']} of job {a['jobId']}: contest {contest_id}; a jury drawn "
                    "at random decides",
                    contest=contest_id,
                    lease=ours,
                )

    def _disputed(self, event: ChainEvent, a: dict[str, Any]) -> None:
        lease_id, contest_id = int(a["leaseId"]), int(a["contestId"])
        self.state.add_contest(
            contest_id=contest_id,
            job_id=int(a["jobId"]),
            tile=int(a["tile"]),
            kind=ContestKind.DISPUTE,
            lease_a=lease_id,
            lease_b=0,
        )
        if self.state.own(lease_id) is not None:
            self.log.warning(
                "disputed",
                f"the client of job {a['jobId']} disputes tile {a['tile']} of our lease "
                f"{lease_id} (contest {contest_id}): a jury drawn at random decides",
                contest=contest_id,
                lease=lease_id,
            )

    def _tie_opened(self, event: ChainEvent, a: dict[str, Any]) -> None:
        # Opening a contest arms its first jury draw on the opening block.
        self.state.update_contest(
            int(a["contestId"]),
            lane=int(a["lane"]),
            claim_deadline=int(a["claimDeadline"]),
            draw_block=event.block_number,
            retry_at=0.0,
        )

    def _draw_armed(self, event: ChainEvent, a: dict[str, Any]) -> None:
        self.state.update_contest(int(a["contestId"]), draw_block=int(a["drawBlock"]), retry_at=0.0)

    def _juror_drawn(self, event: ChainEvent, a: dict[str, Any]) -> None:
        contest_id, lease_id = int(a["contestId"]), int(a["leaseId"])
        self.state.update_contest(contest_id, draw_block=0, retry_at=0.0)
        own = self.state.own(lease_id)
        if own is not None and own.contest_id is None:
            self.state.update_own(lease_id, contest_id=contest_id)
        self.log.debug(
            "juror_seated",
            f"contest {contest_id}: seat {a['seat']} went to {a['worker']} (lease {lease_id})",
            contest=contest_id,
            lease=lease_id,
        )

    def _far_proven(self, event: ChainEvent, a: dict[str, Any]) -> None:
        contest = self.state.contest(int(a["contestId"]))
        if contest is None:
            return
        lease_id = int(a["leaseId"])
        if lease_id == contest.lease_a:
            self.state.update_contest(contest.contest_id, far_mask=contest.far_mask | 1)
        elif lease_id == contest.lease_b:
            self.state.update_contest(contest.contest_id, far_mask=contest.far_mask | 2)
        else:  # another replica of the tile (proveReplicaFar): it forfeits the tile at once
            looked = contest.replicas_compared | {lease_id}
            self.state.update_contest(
                contest.contest_id, replicas_looked=",".join(map(str, sorted(looked)))
            )
        if self.state.own(lease_id) is not None:
            self.log.warning(
                "proven_far",
                f"our lease {lease_id} was proven far from the jury's verdict in contest "
                f"{contest.contest_id}: it forfeits tile {contest.tile}",
                contest=contest.contest_id,
                lease=lease_id,
            )

    def _resolved(self, event: ChainEvent, a: dict[str, Any]) -> None:
        outcome = ContestOutcome(int(a["outcome"])).name
        self.state.update_contest(int(a["contestId"]), outcome=outcome)

    # -- data availability -----------------------------------------------------------------------

    def _availability_challenged(self, event: ChainEvent, a: dict[str, Any]) -> None:
        challenge_id, lease_id = int(a["challengeId"]), int(a["leaseId"])
        leaves = [int(leaf) for leaf in a["leaves"]]
        self.state.add_challenge(
            challenge_id=challenge_id,
            lease_id=lease_id,
            job_id=int(a["jobId"]),
            tile=int(a["tile"]),
            leaves=leaves,
            challenger=str(a["challenger"]),
            deadline=int(a["deadline"]),
        )
        if self.state.own(lease_id) is not None:
            self.log.warning(
                "availability_challenged",
                f"{a['challenger']} challenges the availability of our lease {lease_id} "
                f"(tile {a['tile']}, {len(leaves)} leaf/leaves, challenge {challenge_id}): "
                f"the leaves must be opened on chain by {a['deadline']}",
                challenge=challenge_id,
                lease=lease_id,
                tile=int(a["tile"]),
                leaves=leaves,
            )

    def _availability_answered(self, event: ChainEvent, a: dict[str, Any]) -> None:
        challenge_id = int(a["challengeId"])
        self.state.update_challenge(challenge_id, status=ChallengeStatus.ANSWERED)
        if self._mine(a["answerer"]):
            self.log.info(
                "availability_answered",
                f"answered availability challenge {challenge_id} on lease {a['leaseId']}: "
                f"{eth(int(a['compensation']))} of the bond paid the answer's gas",
                challenge=challenge_id,
                lease=int(a["leaseId"]),
                compensation=int(a["compensation"]),
            )

    def _availability_failed(self, event: ChainEvent, a: dict[str, Any]) -> None:
        challenge_id, lease_id = int(a["challengeId"]), int(a["leaseId"])
        self.state.update_challenge(challenge_id, status=ChallengeStatus.FAILED)
        self.state.lease_status(lease_id, ChainLeaseStatus.FORFEITED)
        self.on_reopened(int(a["jobId"]))
        own = self.state.own(lease_id)
        if own is None or own.state == OwnState.LOST:
            return
        self.state.update_own(
            lease_id,
            state=OwnState.LOST,
            error=f"availability challenge {challenge_id} went unanswered",
        )
        self.log.warning(
            "lease_forfeited",
            f"our lease {lease_id} ({span(own.first_tile, own.count)} of job {own.job_id}) is "
            f"forfeited: availability challenge {challenge_id} went unanswered; none of its "
            "tiles is paid and its collateral was slashed",
            lease=lease_id,
            challenge=challenge_id,
        )

    # -- money -----------------------------------------------------------------------------------

    def _paid(self, event: ChainEvent, a: dict[str, Any]) -> None:
        lease_id = int(a["leaseId"])
        self.state.lease_status(lease_id, ChainLeaseStatus.SETTLED)
        own = self.state.own(lease_id)
        if own is None or own.state == OwnState.SETTLED:
            return
        self.state.update_own(lease_id, state=OwnState.SETTLED, paid=str(int(a["amount"])))
        how = "settled by the client" if event.name == "LeaseSettled" else "finalized"
        self.log.info(
            "paid",
            f"job {a['jobId']} paid our lease {lease_id} ({how}): {a['paidTiles']} tile(s), "
            f"{eth(int(a['amount']))} credited; take it out with `blindframe worker withdraw`",
            lease=lease_id,
            job=int(a["jobId"]),
            amount=int(a["amount"]),
        )

    def _tie_paid(self, event: ChainEvent, a: dict[str, Any]) -> None:
        lease_id = int(a["leaseId"])
        self.state.lease_status(lease_id, ChainLeaseStatus.SETTLED)
        own = self.state.own(lease_id)
        if own is None or own.state == OwnState.SETTLED:
            return
        self.state.update_own(lease_id, state=OwnState.SETTLED, paid=str(int(a["amount"])))
        self.log.info(
            "paid",
            f"our juror lease {lease_id} (contest {a['contestId']}) ended: "
            f"{eth(int(a['amount']))} credited",
            lease=lease_id,
            amount=int(a["amount"]),
        )

    def _credited(self, event: ChainEvent, a: dict[str, Any]) -> None:
        if self._mine(a["account"]):
            self.state.add_credit(
                f"{event.block_hash}:{event.log_index}",
                int(a["jobId"]),
                int(a["amount"]),
                int(a["reason"]),
                event.block_number,
            )

    def _slashed(self, event: ChainEvent, a: dict[str, Any]) -> None:
        if not self._mine(a["worker"]):
            return
        reason = int(a["reason"])
        why = _SLASH_REASONS[reason] if reason < len(_SLASH_REASONS) else "faulted"
        self.log.warning(
            "slashed",
            f"slashed {eth(int(a['amount']))} over lease {a['leaseId']}: the lease {why}",
            lease=int(a["leaseId"]),
            amount=int(a["amount"]),
            reason=reason,
        )


def _cid_text(raw: Any) -> str:
    """An event's CID, or its raw hex when the bytes are not a CID's text: the node keeps the
    job (its manifest then fails to parse, and the refusal names the bytes) instead of guessing."""
    return event_cid(raw) or str(raw)
