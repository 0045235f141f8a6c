"""Settling a job: paying verified leases, cancelling, refunding unfinished escrow, withdrawing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blindframe.client.errors import (
    JobExpiredError,
    JobStateError,
)
from blindframe.client.jobdir import Verdicts, VerdictStatus
from blindframe.client.progress import Progress
from blindframe.client.progress import no_progress as _no_progress
from blindframe.client.reports import (
    CancelReport,
    RefundReport,
    SettleReport,
)
from blindframe.client.snapshot import JobSnapshot, LeaseStatusName
from blindframe.client.units import format_duration
from blindframe.coordinator.errors import ContractRevertError
from blindframe.coordinator.market import (
    LeaseStatus,
)

if TYPE_CHECKING:
    from blindframe.client.artist import Artist, JobLike

__all__ = ["cancel", "refund", "settle", "withdraw"]


def settle(
    artist: Artist, job: JobLike = None, *, verify: bool = True, progress: Progress = _no_progress
) -> SettleReport:
    """Pay for leases whose every tile the client verified, once the chain counts them as
    verified and no contest holds them (``verify`` first checks what is new)."""
    directory = artist.job_dir(job)
    ref = directory.ref
    if verify:
        artist.verify(ref, progress=progress)
    snap = artist.snapshot(ref)
    verdicts = directory.verdicts()
    now = artist.chain_now()
    verified_lanes = _verified_lanes(snap, verdicts)
    ready, waiting = [], []
    for lease in snap.leases:
        if lease.juror or lease.status != LeaseStatusName.REVEALED:
            continue
        why = _settle_blocker(lease, verdicts, now, verified_lanes, snap.replication)
        if why is None:
            ready.append(lease.lease_id)
        else:
            waiting.append({"leaseId": lease.lease_id, "reason": why})
    settled: list[int] = []
    paid = 0
    if ready:
        market = artist._signing_market()
        # The snapshot comes from indexed events, which can lag the chain by a block: read
        # each lease's status now, so a lease settled a moment ago is not settled twice.
        ready = [i for i in ready if market.lease(i).state is LeaseStatus.REVEALED]
        for start in range(0, len(ready), 128):
            batch = ready[start : start + 128]
            try:
                receipt = market.settle(ref.job_id, batch)
            except ContractRevertError as exc:
                if exc.name in (
                    "MarketNotVerified",
                    "MarketLeaseContested",
                    "MarketAvailabilityOpen",
                ):
                    waiting += [{"leaseId": i, "reason": exc.message} for i in batch]
                    continue
                raise
            amounts = [int(e["amount"]) for e in market.events(receipt, "LeaseSettled")]
            paid += sum(amounts)
            settled += batch
            directory.log_action(
                "settle",
                leases=batch,
                paid=str(sum(amounts)),
                tx="0x" + bytes(receipt["transactionHash"]).hex(),
            )
    return SettleReport(ref, tuple(settled), paid, tuple(waiting))


def _verified_lanes(snap: JobSnapshot, verdicts: Verdicts) -> dict[int, set[int]]:
    """Tile -> the replica lanes whose revealed (or paid) result the client verified ok on it."""
    lanes: dict[int, set[int]] = {}
    for lease in snap.leases:
        if lease.juror or lease.status not in (LeaseStatusName.REVEALED, LeaseStatusName.SETTLED):
            continue
        for tile in range(lease.first_tile, lease.first_tile + lease.count):
            if verdicts.tile_verdict(lease.lease_id, tile) == VerdictStatus.OK:
                lanes.setdefault(tile, set()).add(lease.lane)
    return lanes


def _settle_blocker(
    lease: Any,
    verdicts: Verdicts,
    now: int,
    verified_lanes: dict[int, set[int]],
    replication: int,
) -> str | None:
    """Why a revealed replica lease cannot be settled now (None: it can). Before the challenge
    window ends, a lease whose every tile the client verified ok in every replica lane is
    accepted at once: the window only hosts disagreement proofs between those replicas, and
    all of them gave the twin's pixels (the contract allows the early accept once every lane
    revealed; contracts/README.md, "Early acceptance")."""
    verdict = verdicts.leases.get(lease.lease_id)
    if verdict is None or verdict.status == VerdictStatus.PENDING:
        return "not verified by the client yet"
    if verdict.status in (VerdictStatus.TAMPERED, VerdictStatus.UNAVAILABLE):
        return f"result {verdict.status}: {verdict.reason}"
    bad = [
        t
        for t in range(lease.first_tile, lease.first_tile + lease.count)
        if verdict.tiles.get(t) != VerdictStatus.OK and t not in lease.forfeited
    ]
    if bad:
        return f"tiles {bad} failed verification (dispute them)"
    if lease.open_contests:
        return f"{lease.open_contests} contest(s) still open"
    if not lease.verified_at:
        return "the chain does not count it as verified yet"
    if now <= lease.verified_at:
        every_lane = set(range(replication))
        unchecked = [
            t
            for t in range(lease.first_tile, lease.first_tile + lease.count)
            if t not in lease.forfeited and verified_lanes.get(t, set()) != every_lane
        ]
        if unchecked:
            return (
                f"the challenge window runs {lease.verified_at - now + 1} s more (or until "
                f"every replica of tiles {unchecked} verified)"
            )
    return None


def withdraw(artist: Artist) -> int:
    """Take this account's pending balance (refunds, returned bonds, compensation) out of the
    market; returns the wei withdrawn (0: nothing was pending, nothing sent)."""
    market = artist._signing_market()
    pending = int(artist._rpc(lambda: market.pending_balance(artist.address), "read balance"))
    if pending == 0:
        return 0
    market.withdraw()
    return pending


def cancel(artist: Artist, job: JobLike = None, *, withdraw: bool = True) -> CancelReport:
    """Cancel a job before its deadline: no render node can claim its tiles any more, and
    the escrow of every tile-slot no live lease holds comes back now (with ``withdraw``, sent
    to the account). Leases already claimed go on: they are verified and paid as usual, or
    their escrow becomes refundable (``refund``) when they end."""
    directory = artist.job_dir(job)
    ref = directory.ref
    artist._check_here(ref)
    market = artist._signing_market()
    view = artist._rpc(lambda: market.job(ref.job_id), f"read job {ref.job_id}")
    if view.client.lower() != artist.address.lower():
        raise JobStateError(
            f"job {ref.job_id} belongs to {view.client}, not {artist.address}",
            hint="use the account that posted it (--account)",
        )
    if view.cancelledAt != 0:
        raise JobStateError(
            f"job {ref.job_id} was already cancelled",
            hint=f"`blindframe client refund {ref.job_id}` returns what its leases freed since",
        )
    now = artist.chain_now()
    if now > view.deadline:
        raise _ended(ref.job_id, now - view.deadline)
    try:
        receipt = market.cancel(ref.job_id)
    except ContractRevertError as exc:
        if exc.name != "MarketJobExpired":
            raise
        # Mined after the deadline: a cancel sent in its last seconds can land past it.
        raise _ended(ref.job_id, None) from None
    refunded = sum(int(e["refunded"]) for e in market.events(receipt, "JobCancelled"))
    directory.log_action(
        "cancel", amount=str(refunded), tx="0x" + bytes(receipt["transactionHash"]).hex()
    )
    after = artist._rpc(lambda: market.job(ref.job_id), f"read job {ref.job_id}")
    withdrawn = artist.withdraw() if withdraw and refunded > 0 else 0
    return CancelReport(
        ref,
        refunded_wei=refunded,
        withdrawn_wei=withdrawn,
        held_slots=after.reservedSlots,
        held_wei=after.escrow,
    )


def _ended(job_id: int, ago: int | None) -> JobExpiredError:
    when = "" if ago is None else f" {format_duration(ago)} ago"
    return JobExpiredError(
        f"job {job_id} passed its deadline{when}: there is nothing to cancel",
        hint=f"`blindframe client refund {job_id}` returns the unfinished escrow",
    )


def refund(artist: Artist, job: JobLike = None, *, withdraw: bool = True) -> RefundReport:
    """After the deadline (or once the job was cancelled), take back the escrow of tiles no
    live lease holds (and, with ``withdraw``, send the pending balance to the account)."""
    directory = artist.job_dir(job)
    ref = directory.ref
    artist._check_here(ref)
    market = artist._signing_market()
    view = artist._rpc(lambda: market.job(ref.job_id), f"read job {ref.job_id}")
    now = artist.chain_now()
    if now <= view.deadline and view.cancelledAt == 0:
        raise JobStateError(
            f"job {ref.job_id} runs until its deadline, in "
            f"{format_duration(view.deadline - now)}; the escrow of unfinished tiles is "
            "refundable after it",
            hint=f"wait, or stop it now: `blindframe client cancel {ref.job_id}`",
        )
    amount = int(artist._rpc(lambda: market.refundable(ref.job_id), "read refundable"))
    refunded = 0
    if amount > 0:
        receipt = market.refund(ref.job_id)
        refunded = sum(int(e["amount"]) for e in market.events(receipt, "Refunded"))
        directory.log_action(
            "refund", amount=str(refunded), tx="0x" + bytes(receipt["transactionHash"]).hex()
        )
    elif not withdraw:
        raise JobStateError(f"job {ref.job_id} has nothing left to refund")
    withdrawn = artist.withdraw() if withdraw else 0
    if refunded == 0 and withdrawn == 0:
        raise JobStateError(
            f"job {ref.job_id} has nothing left to refund and nothing is pending for "
            f"{artist.address}"
        )
    return RefundReport(ref, refunded, withdrawn)
