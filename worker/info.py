"""What `blindframe worker account` and `status` report: the node's account on chain, and its
leases from its state database joined with the chain's views."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from blindframe.coordinator.market import LeaseStatus
from blindframe.units import parse_eth as _parse_eth
from blindframe.worker.errors import NodeOptionError
from blindframe.worker.state import TERMINAL_STATES, JobStatus, LeaseKind, NodeState, OwnState

if TYPE_CHECKING:
    from blindframe.coordinator.market import Market
    from blindframe.worker.state import ContestRow, OwnLease

__all__ = ["account_report", "chain_now", "parse_eth", "status_report"]


def parse_eth(text: str, *, what: str = "--amount") -> int:
    """``"0.25"`` ETH as wei; NodeOptionError for anything else."""
    return _parse_eth(text, what, error=NodeOptionError)


def chain_now(market: Market) -> int:
    """The next block's timestamp (pending block), else the latest block's."""
    w3 = market.w3
    try:
        return int(w3.eth.get_block("pending")["timestamp"])
    except Exception:  # noqa: BLE001 - some nodes serve no pending block: fall back
        return int(w3.eth.get_block("latest")["timestamp"])


def account_report(market: Market, address: str, keystore: Path) -> dict[str, Any]:
    """The node's account: balance, stake, collateral, capacity, unbonding, reputation, pending."""
    view = market.worker(address)
    params = market.params
    return {
        "address": address,
        "keystore": str(keystore),
        "chainId": market.deployment.chain_id,
        "market": market.address,
        "balance": int(market.w3.eth.get_balance(address)),  # type: ignore[arg-type]
        "stake": view.stake,
        "locked": view.locked,
        "free": view.stake - view.locked,
        "minStake": int(params["minStake"]),
        "staked": view.stake >= int(params["minStake"]) and view.capacity > 0,
        "capacity": view.capacity,
        "activeTiles": view.activeTiles,
        "unbonding": view.unbonding,
        "unbondingEnd": view.unbondingEnd,
        "completed": view.completed,
        "faults": view.faults,
        "pending": market.pending_balance(address),
        "collateralPerTile": int(params["collateralPerTile"]),
        "now": chain_now(market),
    }


def status_report(
    market: Market, address: str, state_db: Path, *, show_all: bool = False
) -> dict[str, Any]:
    """Leases of the node (state DB) with their chain status, jobs it saw, what it earned."""
    state = NodeState(state_db, readonly=True)
    try:
        own = state.own_leases()
        window = int(market.params["revealWindow"])
        reveal_deadlines = {lease.lease_id: state.reveal_deadline(lease, window) for lease in own}
        jobs = state.jobs()
        credited = state.credited()
        checks = state.checks()
        contests = state.contests(open_only=False)
    finally:
        state.close()
    now = chain_now(market)
    leases = [
        _lease_row(market, lease, reveal_deadlines[lease.lease_id])
        for lease in own
        if show_all or lease.state not in TERMINAL_STATES
    ]
    by_status: dict[str, int] = {}
    for job in jobs:
        by_status[job.status.value] = by_status.get(job.status.value, 0) + 1
    own_ids = {lease.lease_id for lease in own}
    juries: dict[int, set[int]] = {}  # contest -> our juror leases in it
    for lease in own:
        if lease.kind == LeaseKind.JUROR and lease.contest_id is not None:
            juries.setdefault(lease.contest_id, set()).add(lease.lease_id)
    return {
        "address": address,
        "stateDb": str(state_db),
        "now": now,
        "leases": leases,
        "settledLeases": sum(1 for lease in own if lease.state == OwnState.SETTLED),
        "lostLeases": sum(1 for lease in own if lease.state == OwnState.LOST),
        "jobs": by_status,
        "refused": [
            {"job": job.job_id, "reason": job.reason}
            for job in jobs
            if job.status == JobStatus.REFUSED
        ],
        "earned": sum(int(lease.paid) for lease in own if lease.paid),
        "credited": sum(credited.values()),
        "pending": market.pending_balance(address),
        "checks": [
            {
                "lease": c.own_lease,
                "other": c.other_lease,
                "state": c.state.value,
                "detail": c.detail,
            }
            for c in checks
        ],
        "contests": [
            _contest_row(c, juries.get(c.contest_id, set()))
            for c in contests
            if {c.lease_a, c.lease_b} & own_ids or c.contest_id in juries
        ],
    }


def _lease_row(market: Market, lease: OwnLease, reveal_deadline: int) -> dict[str, Any]:
    """One own lease for the status report, with its chain view."""
    row: dict[str, Any] = {
        "lease": lease.lease_id,
        "job": lease.job_id,
        "lane": lease.lane,
        "kind": lease.kind.value,
        "firstTile": lease.first_tile,
        "count": lease.count,
        "state": lease.state.value,
        "commitDeadline": lease.commit_deadline,
        "revealDeadline": reveal_deadline,
        "resultCid": lease.result_cid,
        "paid": int(lease.paid) if lease.paid else 0,
        "error": lease.error,
    }
    chain = market.lease(lease.lease_id)
    row["chainStatus"] = LeaseStatus(chain.status).name.lower()
    row["openContests"] = chain.openContests
    row["forfeited"] = chain.forfeitedCount
    if chain.state == LeaseStatus.REVEALED and lease.kind == LeaseKind.REPLICA:
        verified = market.verified_at(lease.lease_id)
        row["verifiedAt"] = verified
        if verified:
            row["finalizableAt"] = verified + int(market.params["acceptanceWindow"])
    return row


def _contest_row(contest: ContestRow, jurors: set[int]) -> dict[str, Any]:
    """One contest this node is part of, for the status report."""
    return {
        "contest": contest.contest_id,
        "job": contest.job_id,
        "tile": contest.tile,
        "kind": contest.kind.value,
        "leaseA": contest.lease_a,
        "leaseB": contest.lease_b,
        "verdict": contest.tie_lease,
        "jurors": sorted(jurors),
        "outcome": contest.outcome or "open",
    }
