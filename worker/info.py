"""What `blindframe worker account` and `status` report: the node's account on chain, and its
leases from its state database joined with the chain's views."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from blindframe.coordinator.market import LeaseStatus
from blindframe.units import parse_eth as _parse_eth
from blindframe.worker.errors import NodeOptionError
from blindframe.worker.state import TERMINAL_STATES, NodeState

if TYPE_CHECKING:
    from blindframe.coordinator.market import Market

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
    leases = []
    for lease in own:
        if lease.state in TERMINAL_STATES and not show_all:
            continue
        row: dict[str, Any] = {
            "lease": lease.lease_id,
            "job": lease.job_id,
            "lane": lease.lane,
            "kind": lease.kind,
            "firstTile": lease.first_tile,
            "count": lease.count,
            "state": lease.state,
            "commitDeadline": lease.commit_deadline,
            "revealDeadline": reveal_deadlines[lease.lease_id],
            "resultCid": lease.result_cid,
            "paid": int(lease.paid) if lease.paid else 0,
            "error": lease.error,
        }
        chain = market.lease(lease.lease_id)
        row["chainStatus"] = LeaseStatus(chain.status).name.lower()
        row["openContests"] = chain.openContests
        row["forfeited"] = chain.forfeitedCount
        if chain.state == LeaseStatus.REVEALED and lease.kind == "replica":
            verified = market.verified_at(lease.lease_id)
            row["verifiedAt"] = verified
            if verified:
                row["finalizableAt"] = verified + int(market.params["acceptanceWindow"])
        leases.append(row)
    by_status: dict[str, int] = {}
    for job in jobs:
        by_status[job.status] = by_status.get(job.status, 0) + 1
    own_ids = {lease.lease_id for lease in own}
    juries: dict[int, set[int]] = {}  # contest -> our juror leases in it
    for lease in own:
        if lease.kind == "juror" and lease.contest_id is not None:
            juries.setdefault(lease.contest_id, set()).add(lease.lease_id)
    return {
        "address": address,
        "stateDb": str(state_db),
        "now": now,
        "leases": leases,
        "settledLeases": sum(1 for lease in own if lease.state == "settled"),
        "lostLeases": sum(1 for lease in own if lease.state == "lost"),
        "jobs": by_status,
        "refused": [
            {"job": job.job_id, "reason": job.reason} for job in jobs if job.status == "refused"
        ],
        "earned": sum(int(lease.paid) for lease in own if lease.paid),
        "credited": sum(credited.values()),
        "pending": market.pending_balance(address),
        "checks": [
            {"lease": c.own_lease, "other": c.other_lease, "state": c.state, "detail": c.detail}
            for c in checks
        ],
        "contests": [
            {
                "contest": c.contest_id,
                "job": c.job_id,
                "tile": c.tile,
                "kind": c.kind,
                "leaseA": c.lease_a,
                "leaseB": c.lease_b,
                "verdict": c.tie_lease,
                "jurors": sorted(juries.get(c.contest_id, ())),
                "outcome": c.outcome or "open",
            }
            for c in contests
            if {c.lease_a, c.lease_b} & own_ids or c.contest_id in juries
        ],
    }
