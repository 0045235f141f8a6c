"""Render nodes when things go wrong: a lazy replica (proven far on chain by its digest leaf; the
nodes draw the contest's jury, the one eligible node is drawn and, pinned to the job's plan,
agrees with the honest replica bit for bit; the lazy side is slashed, the honest one and the
juror paid), availability challenges (a node answers for its lease by itself; a withholding one
is forfeited), a node killed mid-lease (resumes from SQLite and the chain), Ctrl-C (finishes its
leases; a second Ctrl-C abandons them, saying so)."""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

import psutil
from support.e2e import bounty, fraud_slash
from support.reliability import record
from worker_helpers import KERNEL, REWARD, stake

from blindframe.coordinator.market import AvailabilityStatus, ContestOutcome, LeaseStatus
from blindframe.fhe_core.merkle import leaf_depth
from blindframe.worker.state import NodeState

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from support.node_process import NodeProcess
    from worker_helpers import Assets, Client, Home

    from tests.conftest import Chain

PRIOR = ("--tile-seconds", f"{KERNEL}=3")


def _logs(chain: Chain, name: str) -> list[dict[str, object]]:
    event = chain.market.events[name]()
    return [dict(log["args"]) for log in event.get_logs(from_block=0)]


def test_lazy_replica_is_proven_far_and_loses_its_tile(
    fresh_chain: Chain,
    home: Home,
    client: Client,
    assets: Assets,
    run_node: Callable[..., NodeProcess],
) -> None:
    honest_address = stake(home, fresh_chain, "honest")
    lazy_address = stake(home, fresh_chain, "lazy")
    tie_address = stake(home, fresh_chain, "tie")
    job = client.post(assets.manifest1, 1, replication=2, lease_length=300)
    honest = run_node("honest", *PRIOR, ipfs_index=0)
    lazy = run_node("lazy", *PRIOR, "--fault", "lazy", ipfs_index=1)
    assert lazy.wait_for("fault_injection")["fault"] == "lazy"
    honest_lease = honest.wait_for("claimed")["lease"]
    lazy_lease = lazy.wait_for("claimed")["lease"]
    # The third node starts once both replica lanes are taken: it holds no replica of the tile,
    # so it is the one worker the jury draw can seat (jurySize 1 on the local stack).
    tie = run_node("tie", *PRIOR, ipfs_index=2)

    proven = honest.wait_for("disagreement_proven", timeout=180)
    (event,) = _logs(fresh_chain, "DisagreementProven")
    assert event["challenger"] == honest_address
    assert (event["jobId"], event["tile"]) == (job, 0)
    assert (event["leaseA"], event["leaseB"]) == (honest_lease, lazy_lease)
    # the digest leaf alone: the two outputs differ
    assert event["far"] >= fresh_chain.deployment.parameters["farCount"]
    contest = proven["contest"]

    # Nobody claims the tie-breaker: a node calls the draw, which seats the fresh node.
    drawn = tie.wait_for("juror_drawn", timeout=120)
    assert drawn["contest"] == contest
    assert drawn["lane"] == 2  # the job's first jury lane (replication 2)
    tie_lease = drawn["lease"]
    (juror,) = _logs(fresh_chain, "JurorDrawn")
    assert (juror["contestId"], juror["leaseId"], juror["worker"]) == (
        contest,
        tie_lease,
        tie_address,
    )
    assert client.market.jurors(contest) == [tie_lease]
    # The juror, pinned to the job's plan like the honest replica, agrees with it bit for bit;
    # the lazy side is proven far from the verdict (by whichever of the two honest nodes is first).
    agrees = tie.wait_for("side_agrees", timeout=180, where=lambda e: e["lease"] == honest_lease)
    assert agrees["contest"] == contest
    assert client.market.lease(tie_lease).digest == client.market.lease(honest_lease).digest
    deadline = time.monotonic() + 120
    while lazy_lease not in {e["leaseId"] for e in _logs(fresh_chain, "FarProven")}:
        assert time.monotonic() < deadline, tie.tail() + honest.tail()
        time.sleep(0.5)
    verdict, fixed_at = client.market.verdict(contest)
    assert verdict == tie_lease
    # Both looked at the contest; the rest of its challenge window changes nothing: skip it.
    window = int(fresh_chain.deployment.parameters["challengeWindow"])
    fresh_chain.warp(max(fixed_at + window - fresh_chain.now() + 1, 1))
    while client.market.contest(contest).outcome == ContestOutcome.PENDING:
        assert time.monotonic() < deadline, tie.tail() + honest.tail()
        time.sleep(0.5)
    view = client.market.contest(contest)
    assert view.leaseT == tie_lease
    assert ContestOutcome(view.outcome) == ContestOutcome.B_FAR
    assert {e["leaseId"] for e in _logs(fresh_chain, "FarProven")} == {lazy_lease}
    assert client.market.lease(lazy_lease).forfeitedCount == 1
    assert client.market.lease(honest_lease).forfeitedCount == 0
    slashed = _logs(fresh_chain, "Slashed")
    assert {e["worker"] for e in slashed} == {lazy_address}
    assert {e["reason"] for e in slashed} == {2}  # FarFromTieBreaker (far from the verdict)
    # Every wei of the contest: the lazy side (staked 1 ETH, one tile's collateral locked) is
    # slashed its share of the collateral and of the minimum stake; the bounty goes to the honest
    # side, the rest to the client; the jury of one is paid the lazy side's forfeited reward.
    params = fresh_chain.deployment.parameters
    slash = fraud_slash(params, 10**18 - int(params["collateralPerTile"]))
    assert [(e["leaseId"], e["amount"]) for e in slashed] == [(lazy_lease, slash)]
    tie_paid = _logs(fresh_chain, "TieBreakerSettled")
    assert [(e["leaseId"], e["worker"], e["amount"]) for e in tie_paid] == [
        (tie_lease, tie_address, REWARD)
    ]
    assert client.market.pending_balance(tie_address) == REWARD
    assert client.market.pending_balance(honest_address) == bounty(params, slash)
    assert client.market.pending_balance(lazy_address) == 0
    assert client.market.pending_balance(client.account.address) == slash - bounty(params, slash)
    lazy_info = client.market.worker(lazy_address)
    assert (lazy_info.stake, lazy_info.locked, lazy_info.faults) == (10**18 - slash, 0, 1)
    assert lazy.events("fault_injected")

    # The client never settles: past the acceptance window the honest node finalizes its lease.
    verified = client.market.verified_at(honest_lease)
    accept = int(fresh_chain.deployment.parameters["acceptanceWindow"])
    fresh_chain.warp(max(verified + accept - fresh_chain.now() + 1, 1))
    finalized = honest.wait_for("finalized", timeout=60)
    assert finalized["leases"] == [honest_lease]
    paid = honest.wait_for("paid")
    assert (paid["lease"], paid["amount"]) == (honest_lease, REWARD)
    assert client.market.lease(honest_lease).state == LeaseStatus.SETTLED
    assert client.market.pending_balance(honest_address) == REWARD + bounty(params, slash)
    for node in (honest, lazy, tie):
        node.signal(signal.SIGINT)
    for node in (honest, lazy, tie):
        assert node.wait() == 0


def test_killed_node_resumes_its_lease_from_its_state(
    fresh_chain: Chain,
    home: Home,
    client: Client,
    assets: Assets,
    run_node: Callable[..., NodeProcess],
    tmp_path: Path,
) -> None:
    stake(home, fresh_chain, "node-r")
    # Replication 2 with one node: its lease must wait for its commit window to close before it
    # may reveal, which leaves time to kill it once committed.
    job = client.post(assets.manifest1, 1, replication=2, lease_length=120)
    data = tmp_path / "data-r"
    first = run_node("node-r", data_dir=data)  # no prior: it measures on a single tile first
    claimed = first.wait_for("claimed")
    assert "to measure volume@1" in claimed["message"]
    assert claimed["count"] == 1
    lease = first.wait_for("computing")["lease"]
    first.kill()  # mid-computation, sandbox child included

    second = run_node("node-r", *PRIOR, data_dir=data)
    resumed = second.wait_for("resumed")
    assert resumed["lease"] == lease
    assert "recomputing" in resumed["message"]
    second.wait_for("committed")
    second.wait_for("reveal_wait")
    second.kill()  # committed, not revealed
    committed = client.market.lease(lease)
    assert committed.state == LeaseStatus.COMMITTED

    third = run_node("node-r", *PRIOR, "--once", data_dir=data)
    resumed = third.wait_for("resumed")
    assert "revealing" in resumed["message"]
    fresh_chain.warp(committed.commitDeadline - fresh_chain.now() + 1)
    revealed = third.wait_for("revealed", timeout=60)
    assert revealed["lease"] == lease
    assert client.market.lease(lease).state == LeaseStatus.REVEALED
    assert client.market.counts()[1] == 1  # one lease in all: nothing was claimed twice
    assert third.wait() == 0  # --once: its lease revealed, nothing else open, it ends itself
    assert third.events("stopped")
    assert job == 1


def test_ctrl_c_finishes_leases_in_flight_and_a_second_one_abandons(
    fresh_chain: Chain,
    home: Home,
    client: Client,
    assets: Assets,
    run_node: Callable[..., NodeProcess],
    tmp_path: Path,
) -> None:
    address = stake(home, fresh_chain, "node-c")
    first_job = client.post(assets.manifest1, 1)
    data = tmp_path / "data-c"
    node = run_node("node-c", *PRIOR, data_dir=data)
    lease = node.wait_for("computing")["lease"]
    second_job = client.post(assets.manifest1, 1)
    node.signal(signal.SIGINT)
    stopping = node.wait_for("stopping")
    assert stopping["leases"] == [lease]
    assert node.wait(timeout=120) == 0
    assert client.market.lease(lease).state == LeaseStatus.REVEALED
    assert [e["job"] for e in node.events("claimed")] == [first_job]
    assert client.market.free_range(second_job, 0, address, 0, 1) == (0, 1)

    again = run_node("node-c", *PRIOR, data_dir=data)
    claimed = again.wait_for("claimed")
    assert claimed["job"] == second_job
    again.wait_for("computing")
    children = psutil.Process(again.process.pid).children(recursive=True)
    again.signal(signal.SIGINT)
    again.wait_for("stopping")
    again.signal(signal.SIGINT)
    abandoned = again.wait_for("abandoned")
    assert abandoned["lease"] == claimed["lease"]
    assert "collateral" in abandoned["message"]
    assert "reclaim" in abandoned["message"]
    assert again.wait() == 130
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    state = NodeState(next((data / "state").glob("*.sqlite")), readonly=True)
    try:
        lease_state = state.own(claimed["lease"])
        assert lease_state is not None
        assert lease_state.state == "abandoned"
    finally:
        state.close()

    # Past its commit deadline another node reclaims the abandoned lease for the bounty (it is
    # told to take no work itself: its price floor is above any job's pay).
    stake(home, fresh_chain, "keeper")
    expired = client.market.lease(claimed["lease"])
    fresh_chain.warp(expired.commitDeadline - fresh_chain.now() + 5)
    keeper = run_node("keeper", *PRIOR, "--min-price", str(10**30))
    reclaimed = keeper.wait_for("reclaimed")
    assert reclaimed["lease"] == claimed["lease"]
    assert client.market.lease(claimed["lease"]).state == LeaseStatus.RECLAIMED
    assert client.market.free_range(second_job, 0, address, 0, 1) == (0, 1)
    keeper.signal(signal.SIGINT)
    assert keeper.wait() == 0


def test_a_node_answers_availability_challenges_and_a_withholding_one_forfeits(
    fresh_chain: Chain,
    home: Home,
    client: Client,
    assets: Assets,
    run_node: Callable[..., NodeProcess],
) -> None:
    """A node opens the challenged leaves of its own lease on chain by itself; a node that
    withholds its result (reveals a root, serves no bytes, answers nothing) is forfeited once
    the challenge's deadline passes, ended by the honest replica of the same tile."""
    honest_address = stake(home, fresh_chain, "honest")
    withholder_address = stake(home, fresh_chain, "withhold")
    client.post(assets.manifest1, 1, replication=2, lease_length=300)
    honest = run_node("honest", *PRIOR, ipfs_index=0)
    withholder = run_node("withhold", *PRIOR, "--fault", "withhold", ipfs_index=1)
    assert withholder.wait_for("fault_injection")["fault"] == "withhold"
    honest_lease = honest.wait_for("revealed", timeout=240)["lease"]
    withheld_lease = withholder.wait_for("revealed", timeout=240)["lease"]
    assert withholder.events("fault_injected")
    params = fresh_chain.deployment.parameters
    digest = (1 << leaf_depth(KERNEL)) - 1

    leaves = [0, 7, digest]
    challenge = client.market.challenge_availability(honest_lease, 0, leaves)
    answered = honest.wait_for("availability_answered", timeout=60)
    assert answered["challenge"] == challenge
    assert client.market.availability_challenge(challenge).state is AvailabilityStatus.ANSWERED
    (log,) = fresh_chain.market.events.AvailabilityAnswered().get_logs(from_block=0)
    event = log["args"]
    assert (event["challengeId"], event["leaseId"]) == (challenge, honest_lease)
    # The answer's gas, paid out of the challenger's bond: the contract counts it with gasleft()
    # (not reproducible here to the unit), so it is checked as a whole number of gas units at the
    # answer's gas price, within the allowance the contract adds to its measured execution (the
    # intrinsic cost at 16 per calldata byte and 30,000 for the credits); and every wei of the bond
    # is accounted for: the compensation to the node, the rest back to the client.
    compensation = int(event["compensation"])
    assert answered["compensation"] == compensation
    bond = int(params["disputeBond"])
    receipt = fresh_chain.w3.eth.get_transaction_receipt(log["transactionHash"])
    price, used = int(receipt["effectiveGasPrice"]), int(receipt["gasUsed"])
    calldata = len(fresh_chain.w3.eth.get_transaction(log["transactionHash"])["input"])
    assert compensation % price == 0
    assert used - 30_000 < compensation // price < used + 30_000 + 16 * calldata
    assert compensation < bond
    assert client.market.pending_balance(honest_address) == compensation
    assert client.market.pending_balance(client.account.address) == bond - compensation

    unanswered = client.market.challenge_availability(withheld_lease, 0, [digest])
    assert withholder.wait_for("availability_challenged")["challenge"] == unanswered
    fresh_chain.warp(params["revealWindow"] + 1)
    resolved = honest.wait_for("availability_resolved", timeout=60)
    assert resolved["challenge"] == unanswered
    assert client.market.availability_challenge(unanswered).state is AvailabilityStatus.FAILED
    assert client.market.lease(withheld_lease).state is LeaseStatus.FORFEITED
    assert withholder.wait_for("lease_forfeited", timeout=60)["lease"] == withheld_lease
    slashed = _logs(fresh_chain, "Slashed")
    # Unavailable: its share of the tile's collateral and of the minimum stake (it staked 1 ETH),
    # the bounty and the rest both to the client, which challenged; the client's second bond
    # comes back to it whole.
    slash = fraud_slash(params, 10**18 - int(params["collateralPerTile"]))
    assert [(e["worker"], e["leaseId"], e["amount"], e["reason"]) for e in slashed] == [
        (withholder_address, withheld_lease, slash, 5)  # Unavailable
    ]
    assert client.market.pending_balance(client.account.address) == (
        bond - compensation + bond + slash
    )
    assert client.market.pending_balance(withholder_address) == 0
    assert client.market.worker(withholder_address).stake == 10**18 - slash
    assert [e["challengeId"] for e in _logs(fresh_chain, "AvailabilityAnswered")] == [challenge]
    for node in (honest, withholder):
        node.signal(signal.SIGINT)
    for node in (honest, withholder):
        assert node.wait() == 0


def test_a_copying_juror_reveals_a_sides_tile_instead_of_computing(
    fresh_chain: Chain,
    home: Home,
    client: Client,
    assets: Assets,
    run_node: Callable[..., NodeProcess],
) -> None:
    """TEST-ONLY ``--fault copy``: drawn as the juror of a contest, the node commits to side B's
    revealed tile (here the lazy one) instead of computing it: its revealed root is that
    side's, and it never computed the tile. (With a jury of one, a copy decides; jurySize 3 and
    the e2e suite show a majority outvoting it.)"""
    stake(home, fresh_chain, "honest")
    stake(home, fresh_chain, "lazy")
    copier_address = stake(home, fresh_chain, "copier")
    client.post(assets.manifest1, 1, replication=2, lease_length=300)
    honest = run_node("honest", *PRIOR, ipfs_index=0)
    lazy = run_node("lazy", *PRIOR, "--fault", "lazy", ipfs_index=1)
    honest.wait_for("claimed")
    lazy_lease = lazy.wait_for("claimed")["lease"]
    copier = run_node("copier", *PRIOR, "--fault", "copy", ipfs_index=2)
    drawn = copier.wait_for("juror_drawn", timeout=240)
    copying = copier.wait_for("copying", timeout=60)
    assert (copying["lease"], copying["source"]) == (drawn["lease"], lazy_lease)
    copier.wait_for("revealed", timeout=120)
    roots = {e["leaseId"]: e["root"] for e in _logs(fresh_chain, "Revealed")}
    assert roots[drawn["lease"]] == roots[lazy_lease]
    (juror,) = _logs(fresh_chain, "JurorDrawn")
    assert juror["worker"] == copier_address
    assert not copier.events("computing")  # nothing was computed for the juror lease
    assert copier.events("fault_injected")
    for node in (honest, lazy, copier):
        node.kill()


def test_a_reorganisation_dropping_a_claim_and_a_commit_is_lined_up_with_the_chain(
    fresh_chain: Chain,
    home: Home,
    client: Client,
    assets: Assets,
    run_node: Callable[..., NodeProcess],
) -> None:
    """A chain reorganisation (Anvil's snapshot and revert, then a replacement block) drops the
    node's claim and commit. Its index re-syncs, it forgets the dropped lease (result and salt
    with it), claims the tile again on the new chain, commits once there with a fresh salt (the
    same root, another commitment) and reveals: nothing is acted on twice."""
    address = stake(home, fresh_chain, "node-g")
    # Replication 2 with one node: the lease waits to reveal, committed, until its window closes.
    job = client.post(assets.manifest1, 1, replication=2, lease_length=120)
    w3 = fresh_chain.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    node = run_node("node-g", *PRIOR)
    first = node.wait_for("committed", timeout=240)
    node.wait_for("reveal_wait")
    orphaned = client.market.lease(first["lease"]).digest  # the commitment the reorg drops
    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True  # type: ignore[arg-type]
    # A replacement block (the orphaned blocks' hashes are gone), at the wall clock's time: a
    # revert also takes Anvil's clock back, which a real reorganisation never does.
    fresh_chain.warp(max(int(time.time()) - fresh_chain.now(), 1))
    assert client.market.counts()[1] == 0  # the claim is gone with them

    reorg = node.wait_for("chain_reorg", timeout=60)
    # Either the node's next poll finds the lease gone, or a round that polled just before the
    # revert claims the tile again first: the new claim takes the old id, which says the same.
    replaced = [e["lease"] for e in node.events("lease_replaced")]
    assert (reorg["dropped"], replaced) in (([first["lease"]], []), ([], [first["lease"]]))
    second = node.wait_for("committed", count=2, timeout=240)
    lease = client.market.lease(second["lease"])
    assert (lease.jobId, lease.worker, lease.state) == (job, address, LeaseStatus.COMMITTED)
    assert lease.digest != orphaned  # a fresh salt
    committed = [e for e in _logs(fresh_chain, "Committed") if e["leaseId"] == second["lease"]]
    assert len(committed) == 1
    assert len(_logs(fresh_chain, "TilesClaimed")) == 1  # claimed once on the new chain
    collateral = int(fresh_chain.deployment.parameters["collateralPerTile"])
    assert client.market.worker(address).locked == collateral  # one lease holds collateral

    fresh_chain.warp(lease.commitDeadline - fresh_chain.now() + 1)
    revealed = node.wait_for("revealed", timeout=60)
    assert revealed["lease"] == second["lease"]
    assert client.market.lease(second["lease"]).state == LeaseStatus.REVEALED
    assert not node.errors(), node.tail()
    node.signal(signal.SIGINT)
    assert node.wait() == 0
    record("faults", "chain reorganisation", survived=1, wei_lost=0)
