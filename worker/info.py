"""What `blindframe worker account` and `status` report: the node's account on chain, and its
leases from its state database joined with the chain's views."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from blindframe.coordinator.market import NO_FAULT_LIMIT, LeaseStatus
from blindframe.units import format_eth
from blindframe.units import parse_eth as _parse_eth
from blindframe.worker.errors import NodeOptionError
from blindframe.worker.state import TERMINAL_STATES, JobStatus, LeaseKind, NodeState, OwnState

if TYPE_CHECKING:
    from blindframe.coordinator.market import Market
    from blindframe.worker.state import ContestRow, OwnLease

__all__ = [
    "account_report",
    "capacity_shortfall",
    "chain_now",
    "collateral_shortfall",
    "current_state",
    "job_admission",
    "parse_eth",
    "status_report",
]


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


def _stake_command(capacity: int | None, more_wei: int) -> str:
    """The `worker stake` command line that raises the capacity and/or adds stake."""
    parts = ["blindframe worker stake"]
    if more_wei > 0:
        parts.append(f"--amount {format_eth(more_wei).removesuffix(' ETH')}")
    if capacity is not None:
        parts.append(f"--capacity {capacity}")
    return "`" + " ".join(parts) + "`"


def capacity_shortfall(market: Market, address: str, wanted: int) -> str | None:
    """Why a run's ``--capacity wanted`` is more than the node may hold in work, and the
    `worker stake` command that covers it; None when the stake covers ``wanted`` tiles (or the
    node is not staked at all, which `worker run` refuses with its own error).

    A claim needs room in the capacity staked on chain and ``collateralPerTile`` of free stake
    per tile, so the node holds at most the smaller of the two at once.
    """
    view = market.worker(address)
    if view.capacity == 0 or view.stake < int(market.params["minStake"]):
        return None  # not staked: `worker run` refuses to start with its own error
    per_tile = max(int(market.params["collateralPerTile"]), 1)
    by_collateral = view.stake // per_tile
    covered = min(view.capacity, by_collateral)
    if wanted <= covered:
        return None
    more = wanted * per_tile - view.stake
    return (
        f"--capacity {wanted} is more than the stake covers: {covered} tiles at once (capacity "
        f"{view.capacity} staked; {format_eth(view.stake)} of stake is the collateral of "
        f"{by_collateral} at {format_eth(per_tile)} a tile), so this run holds at most {covered}; "
        f"for {wanted}, "
        + (f"add {format_eth(more)} of stake and " if more > 0 else "")
        + "run "
        + _stake_command(wanted if view.capacity < wanted else None, more)
    )


def collateral_shortfall(market: Market, address: str) -> str | None:
    """Why the capacity staked is more than the stake's collateral covers (the market accepts
    it: a claim checks both), with what to add; None when the stake covers it."""
    view = market.worker(address)
    per_tile = max(int(market.params["collateralPerTile"]), 1)
    by_collateral = view.stake // per_tile
    if view.capacity <= by_collateral:
        return None
    more = view.capacity * per_tile - view.stake
    return (
        f"capacity {view.capacity} tiles, but the stake ({format_eth(view.stake)}) is the "
        f"collateral of only {by_collateral} at {format_eth(per_tile)} a tile: the node holds at "
        f"most {by_collateral} at once; for all {view.capacity}, add {format_eth(more)} with "
        + _stake_command(None, more)
    )


def account_report(market: Market, address: str, keystore: Path | None) -> dict[str, Any]:
    """The node's account: balance, stake, collateral, capacity, unbonding, reputation, pending
    (``keystore`` None: asked for by bare address)."""
    view = market.worker(address)
    params = market.params
    return {
        "address": address,
        "keystore": None if keystore is None else str(keystore),
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


def job_admission(market: Market, address: str, job_id: int) -> dict[str, Any]:
    """Whether job ``job_id``'s reputation gate admits ``address`` to claim its tiles (and to be
    drawn to its juries), with the numbers and a sentence saying so."""
    job = market.job(job_id)
    view = market.worker(address)
    admitted = job.admits(view.completed, view.faults)
    limit = "any number of" if job.maxFaults == NO_FAULT_LIMIT else f"at most {job.maxFaults}"
    asks = f"at least {job.minCompleted} tiles paid and {limit} faults"
    if not job.gated:
        sentence = "open to every staked node (no reputation gate)"
    elif admitted:
        sentence = f"admits this node: it asks for {asks}"
    else:
        sentence = (
            f"refuses this node: it asks for {asks}; this node has {view.completed} tiles paid "
            f"and {view.faults} fault(s)"
        )
    return {
        "jobId": job_id,
        "minCompleted": job.minCompleted,
        "maxFaults": None if job.maxFaults == NO_FAULT_LIMIT else job.maxFaults,
        "admitted": admitted,
        "sentence": sentence,
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
    # The state database moves on only while the node runs: where the chain is further along
    # (settled since the node stopped), show the chain's state and keep the node's record, dated.
    shown = current_state(lease.state, LeaseStatus(chain.status))
    if shown != lease.state:
        row["state"] = shown.value
        row["recordedState"] = lease.state.value
        row["recordedAt"] = int(lease.updated_at)
    row["openContests"] = chain.openContests
    row["forfeited"] = chain.forfeitedCount
    if chain.state == LeaseStatus.REVEALED and lease.kind == LeaseKind.REPLICA:
        verified = market.verified_at(lease.lease_id)
        row["verifiedAt"] = verified
        if verified:
            row["finalizableAt"] = verified + int(market.params["acceptanceWindow"])
    return row


# How far a lease has gone, in the node's words and the chain's: a larger rank is further on.
_LOCAL_RANK = {
    OwnState.CLAIMED: 1,
    OwnState.COMPUTING: 1,
    OwnState.COMPUTED: 1,
    OwnState.FAILED: 1,
    OwnState.ABANDONED: 1,
    OwnState.COMMITTED: 2,
    OwnState.REVEALED: 3,
    OwnState.SETTLED: 4,
    OwnState.LOST: 4,
}
_CHAIN_STATE = {
    LeaseStatus.CLAIMED: (1, OwnState.CLAIMED),
    LeaseStatus.COMMITTED: (2, OwnState.COMMITTED),
    LeaseStatus.REVEALED: (3, OwnState.REVEALED),
    LeaseStatus.SETTLED: (4, OwnState.SETTLED),
    LeaseStatus.RECLAIMED: (4, OwnState.LOST),
    LeaseStatus.FORFEITED: (4, OwnState.LOST),
}


def current_state(recorded: OwnState, chain: LeaseStatus) -> OwnState:
    """A lease's state now: the node's record, unless the chain has moved it further on (a
    lease settled or reclaimed while the node was not running)."""
    rank, state = _CHAIN_STATE.get(chain, (0, recorded))
    return state if rank > _LOCAL_RANK[recorded] else recorded


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
