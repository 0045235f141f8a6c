"""The main job end to end on the real stack: Anvil, IPFS nodes, render nodes as processes, and
the artist's `blindframe client render`, checked on chain to the wei and against the twin."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.e2e import (
    assert_secret_keys_stayed_home,
    bounty,
    check_frame,
    contract_books,
    finish_render,
    fraud_slash,
    job_leases,
    skip_verdict_window_once_proven_far,
    stack_market,
    start_render,
    warp_past,
    withdraw,
)
from support.wei import gas_paid

from blindframe.coordinator.accounts import read_password_file, unlock
from blindframe.coordinator.manifest import FollowUp, Manifest
from blindframe.coordinator.market import ContestOutcome, LeaseStatus, Market
from blindframe.coordinator.results import open_lease_result

if TYPE_CHECKING:
    from support.render_stack import RenderStack

pytestmark = pytest.mark.slow  # minutes each: `-m "not slow"` leaves them out while iterating

REWARD = 10**15  # wei per tile-replica (0.001 ETH)
FAR_FROM_VERDICT = 2  # IStaking.SlashReason


# -- two honest nodes ------------------------------------------------------------------------


def _skip_the_challenge_window_once_replicas_agree(
    stack: RenderStack,
    render: subprocess.Popen[str],
    market: Market,
    job_id: int,
    tile_slots: int,
    timeout: float,
) -> dict[int, set[str]]:
    """Wait until every tile-replica of ``job_id`` is revealed and each node has compared every
    lease of the other's with its own and found it agrees (the nodes' `replica_agrees` log
    events), then move the chain's clock past the challenge window: nothing is left for the
    window to catch, and waiting it out in real time would only cost the suite time. Returns
    the nodes that checked each lease (nothing is moved if the render ends first: its result
    says why)."""
    w3, _ = stack_market(stack)
    deadline = time.monotonic() + timeout
    while True:
        leases = job_leases(market, job_id)
        checked: dict[int, set[str]] = {lease_id: set() for lease_id, _ in leases}
        for worker in stack.workers:
            for event in worker.events("replica_agrees"):
                if event.get("job") == job_id and event.get("other") in checked:
                    checked[event["other"]].add(worker.address)
        revealed = sum(
            lease.count
            for _, lease in leases
            if lease.state in (LeaseStatus.REVEALED, LeaseStatus.SETTLED)
        )
        if revealed == tile_slots and all(
            checked[lease_id] - {lease.worker} for lease_id, lease in leases
        ):
            break
        if render.poll() is not None:
            return checked
        assert time.monotonic() < deadline, f"replicas not all compared\n{stack.worker_logs()}"
        time.sleep(0.5)
    latest = max(int(lease.revealedAt) for _, lease in leases)
    warp_past(w3, latest + int(market.params["challengeWindow"]))
    return checked


def test_two_nodes_render_replicas_agree_and_every_balance_is_exact(
    shared_stack: RenderStack, tmp_path: Path
) -> None:
    """Two honest nodes render every tile twice; the replicas are the same bytes, the nodes
    check each other's and agree, every balance is exact to the wei; and no piece of the
    artist's secret keys is in any block of any IPFS node nor in any transaction."""
    stack = shared_stack
    w3, market = stack_market(stack)
    artist = unlock(
        stack.settings.keystores / "artist.json", read_password_file(stack.password_file)
    )
    nodes = {w.name: w.address for w in stack.workers if w.name in ("node-0", "node-1")}
    first_block = w3.eth.block_number + 1
    before = {a: w3.eth.get_balance(a) for a in [artist.address, *nodes.values()]}
    artist_pending = market.pending_balance(artist.address)

    # Four tiles (16x16, no canary ring: shade@1 and post@1 jobs carry canaries end to end in
    # test_kernels_e2e), each rendered by both nodes.
    render = start_render(
        stack, tmp_path, "--size", "16x16", "--canaries", "0", "--replication", "2"
    )
    job_id = market.counts()[0] + 1
    checked = _skip_the_challenge_window_once_replicas_agree(stack, render, market, job_id, 8, 900)
    result = finish_render(stack, render, 900)

    assert int(result["job"]["jobId"]) == job_id
    job = market.job(job_id)
    assert (job.tileCount, job.replication) == (4, 2)
    leases = job_leases(market, job_id)
    assert all(lease.state is LeaseStatus.SETTLED for _, lease in leases), leases
    # Each lease was checked by the node that did not compute it, and found to agree.
    assert all(checked[i] == set(nodes.values()) - {lease.worker} for i, lease in leases)
    assert not market.contract.events.DisagreementProven().get_logs(from_block=first_block)

    # Consensus: both replicas of every tile are the same bytes (pinned FFT plans), as the
    # Merkle trees of the results the artist verified show tile by tile.
    roots: dict[int, set[bytes]] = {}
    outputs = Path(result["job"]["directory"]) / "outputs"
    for lease_id, lease in leases:
        opened = open_lease_result(
            (outputs / f"lease-{lease_id}.bflr").read_bytes(),
            kernel="volume@1", job_id=job_id, lease_id=lease_id, first_tile=lease.firstTile,
            count=lease.count, leaf_depth=job.leafDepth, root=lease.digest,
        )  # fmt: skip
        for tile, root in zip(opened.tiles, opened.tile_roots, strict=True):
            roots.setdefault(tile, set()).add(root)
    assert sorted(roots) == list(range(4))
    assert all(len(r) == 1 for r in roots.values()), "replicas of a tile differ"
    check_frame(result)

    # Money, to the wei: the artist paid the escrow and gas; each node earned its tiles.
    earned = {name: withdraw(stack, name) for name in nodes}
    tiles_done = {name: 0 for name in nodes}
    for _, lease in leases:
        name = next(n for n, a in nodes.items() if a == lease.worker)
        tiles_done[name] += lease.count
    assert sum(tiles_done.values()) == 8
    for name, address in nodes.items():
        assert earned[name] == tiles_done[name] * REWARD
        gas = gas_paid(w3, address, first_block)
        assert w3.eth.get_balance(address) == before[address] + earned[name] - gas
    gas = gas_paid(w3, artist.address, first_block)
    assert w3.eth.get_balance(artist.address) == before[artist.address] - 8 * REWARD - gas
    assert market.pending_balance(artist.address) == artist_pending
    assert job.escrow == 0
    jobs = list(range(1, market.counts()[0] + 1))
    assert w3.eth.get_balance(market.address) == contract_books(
        market, [artist.address, *stack.accounts.values()], jobs
    )

    # The artist's secret keys (of every kernel this home has keys for) stayed on its machine.
    assert_secret_keys_stayed_home(stack, stack.home / "keys")


# -- a node dying mid-lease: its tiles retried -----------------------------------------------


def test_a_node_dying_mid_lease_has_its_tiles_retried_in_a_follow_up_job(
    shared_stack: RenderStack, tmp_path: Path
) -> None:
    """`client render --retries 1`: a node killed right after its claim is reclaimed, the job
    ends without its tiles, and they are posted again as a follow-up job on the first job's
    uploaded inputs and keys; another node renders it, the node that failed keeps out of it,
    and the frame assembled from both jobs equals the plaintext twin."""
    stack = shared_stack
    w3, market = stack_market(stack)
    for worker in list(stack.workers):
        stack.retire(worker.name)  # the shared stack's nodes: this test picks its own
    # Four tiles (16x16, no canary margin); each node may hold two at a time, so each claims
    # two. Nodes claim until 60 s + a 15 s margin before the 140 s deadline; the dead lease
    # reopens 62 s after its claim at the earliest: too late to be claimed again in this job.
    dies = stack.add_node("dies", capacity=2, ipfs_name="node-0")
    finisher = stack.add_node("finisher", capacity=2, ipfs_name="node-1")
    dies.wait_for("started", timeout=300)
    finisher.wait_for("started", timeout=300)
    render = start_render(
        stack, tmp_path, "--size", "16x16", "--canaries", "0", "--replication", "1",
        "--lease-length", "60s", "--deadline", "140s", "--retries", "1",
    )  # fmt: skip
    claimed = dies.wait_for("claimed", timeout=300)
    dies.kill()
    # The dead lease expires 60 s after its claim, and the finisher, having committed, waits to
    # reveal until every slot has committed or its own commit window closes. Once it has
    # committed the other tiles, the chain's clock is moved past every commit deadline of the
    # job's leases and past the last moment nodes claim tiles of this job (its deadline less a
    # lease and their 15 s margin), rather than waiting them out; the finisher's reveal window
    # (120 s) is left whole.
    dead = market.lease(int(claimed["lease"]))
    job = market.job(dead.jobId)
    deadline = time.monotonic() + 300
    while render.poll() is None:
        theirs = [v for _, v in job_leases(market, dead.jobId) if v.worker == finisher.address]
        done = [
            v
            for v in theirs
            if v.state in (LeaseStatus.COMMITTED, LeaseStatus.REVEALED, LeaseStatus.SETTLED)
        ]
        if theirs and len(done) == len(theirs) and sum(v.count for v in done) == 4 - dead.count:
            commits = [v.commitDeadline for v in theirs] + [dead.commitDeadline]
            warp_past(w3, max(*commits, job.deadline - job.leaseLength - 15))
            break
        assert time.monotonic() < deadline, f"the finisher's tiles\n{stack.worker_logs()}"
        time.sleep(0.5)
    result = finish_render(stack, render, 600)

    parent_id = int(result["job"]["jobId"])
    (follow_up,) = result["followUps"]
    child_id = int(follow_up["job"]["jobId"])
    assert follow_up["parent"]["jobId"] == parent_id
    dead = market.lease(int(claimed["lease"]))
    assert (dead.jobId, dead.state) == (parent_id, LeaseStatus.RECLAIMED)
    delivered = {
        tile
        for _, lease in job_leases(market, parent_id)
        if lease.state is LeaseStatus.SETTLED
        for tile in range(lease.firstTile, lease.firstTile + lease.count)
    }
    assert delivered  # the finisher rendered part of the first job
    retried = set(follow_up["tasks"])
    assert retried == set(range(4)) - delivered
    assert set(range(dead.firstTile, dead.firstTile + dead.count)) <= retried
    assert market.job(child_id).tileCount == len(retried)
    child_leases = job_leases(market, child_id)
    assert child_leases
    assert all(
        (lease.worker, lease.state) == (finisher.address, LeaseStatus.SETTLED)
        for _, lease in child_leases
    )

    # Nothing encrypted or uploaded again: the follow-up's manifest names the first job's CIDs.
    first = Manifest.parse((Path(result["job"]["directory"]) / "manifest.json").read_bytes())
    second = Manifest.parse((Path(follow_up["job"]["directory"]) / "manifest.json").read_bytes())
    assert (second.inputs, second.evaluation_keys, second.job, second.fft_plan) == (
        first.inputs,
        first.evaluation_keys,
        first.job,
        first.fft_plan,
    )
    assert second.follow_up == FollowUp((parent_id,), tuple(follow_up["tasks"]))
    assert follow_up["quote"]["upload"] == {
        "inputs": 0,
        "evaluationKeys": 0,
        "manifest": len(second.to_bytes()),
    }

    # The frame: tiles of both jobs, equal to the plaintext twin.
    assert {market.lease(i).jobId for i in result["frame"]["leases"]} == {parent_id, child_id}
    check_frame(result)

    # Nothing left to retry: said in one line.
    again = subprocess.run(
        [sys.executable, "-m", "blindframe", "client", "retry", str(parent_id)],
        env=stack.env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert again.returncode == 1, again.stderr
    (line,) = again.stderr.strip().splitlines()
    assert f"job {parent_id} has nothing to retry" in line

    # The node that failed the first job keeps out of the follow-up by its own policy: its stake
    # topped up after the slash (the chain would let it claim), started again, it finds its
    # lease reclaimed and refuses the job that retries it.
    stack.market_as("dies").stake(2, int(market.params["minStake"]))
    restarted = stack.start_node("dies", ipfs_name="node-0")
    refused = restarted.wait_for(
        "job_refused", where=lambda e: e.get("job") == child_id, timeout=300
    )
    assert f"it retries tiles of job {parent_id}, where this node's lease" in refused["reason"]


# -- a lazy node -----------------------------------------------------------------------------


def test_a_lazy_replica_is_proven_far_slashed_and_the_honest_nodes_paid(
    shared_stack: RenderStack, tmp_path: Path
) -> None:
    for worker in list(shared_stack.workers):
        # The nodes of the tests before: none may claim this job's tile or sit on its jury.
        shared_stack.retire(worker.name)
    _lazy_scenario(shared_stack, tmp_path)


def _lazy_scenario(stack: RenderStack, out: Path) -> None:
    w3, market = stack_market(stack)
    honest = stack.add_node("honest", capacity=4)
    lazy = stack.add_node("lazy", capacity=4, fault="lazy")
    first_block = w3.eth.block_number + 1
    artist_before = w3.eth.get_balance(stack.artist().address)
    artist_pending = market.pending_balance(stack.artist().address)
    # One tile (8x8, no canary margin) at replication 2: the honest node and the lazy node take
    # its two replica lanes; the third node, started after, can only be drawn as the juror that
    # breaks the tie (a jury of one on the local stack).
    render = start_render(stack, out, "--size", "8x8", "--canaries", "0", "--replication", "2")
    honest.wait_for("claimed", timeout=300)
    lazy.wait_for("claimed", timeout=300)
    breaker = stack.add_node("breaker", capacity=4)
    skip_verdict_window_once_proven_far(stack, render, first_block, 900)
    result = finish_render(stack, render, 900)
    job_id = int(result["job"]["jobId"])

    leases = dict(job_leases(market, job_id))
    by_worker = {lease.worker: lease_id for lease_id, lease in leases.items()}
    honest_lease, lazy_lease = by_worker[honest.address], by_worker[lazy.address]
    (proven,) = market.contract.events.DisagreementProven().get_logs(from_block=first_block)
    assert {proven["args"]["leaseA"], proven["args"]["leaseB"]} == {honest_lease, lazy_lease}
    assert proven["args"]["challenger"] in (honest.address, breaker.address)
    contest = market.contest(proven["args"]["contestId"])
    lazy_side = ContestOutcome.A_FAR if contest.leaseA == lazy_lease else ContestOutcome.B_FAR
    assert ContestOutcome(contest.outcome) is lazy_side

    # The jury of one was drawn (the sides and the client cannot be): the third node, whose
    # result, the verdict, is the honest replica's bytes.
    assert market.jurors(proven["args"]["contestId"]) == [contest.leaseT]
    tie = leases[contest.leaseT]
    assert tie.worker == breaker.address
    assert tie.lane == contest.lane
    assert tie.digest == leases[honest_lease].digest

    # Money, to the wei (as MarketFaults.t.sol has it): the lazy side (the minimum stake, one
    # tile's collateral locked) is slashed its share of the collateral and of the minimum stake;
    # the bounty goes to the honest side, which the client also paid for its tile; the jury of
    # one shares the lazy side's forfeited reward; the rest of the slash is the client's.
    params = market.params
    slashed = fraud_slash(params, int(params["minStake"]) - int(params["collateralPerTile"]))
    slashes = market.contract.events.Slashed().get_logs(from_block=first_block)
    assert [
        (s["args"]["worker"], s["args"]["leaseId"], s["args"]["amount"], s["args"]["reason"])
        for s in slashes
    ] == [(lazy.address, lazy_lease, slashed, FAR_FROM_VERDICT)]
    ties = market.contract.events.TieBreakerSettled().get_logs(from_block=first_block)
    assert [(t["args"]["leaseId"], t["args"]["amount"]) for t in ties] == [(contest.leaseT, REWARD)]
    artist = unlock(
        stack.settings.keystores / "artist.json", read_password_file(stack.password_file)
    )
    assert market.worker(lazy.address).faults == 1
    assert market.worker(honest.address).faults == 0
    assert market.pending_balance(lazy.address) == 0
    assert market.pending_balance(honest.address) == REWARD + bounty(params, slashed)
    assert market.pending_balance(breaker.address) == REWARD
    assert market.pending_balance(artist.address) == (
        artist_pending + slashed - bounty(params, slashed)
    )
    lazy_info = market.worker(lazy.address)
    assert (lazy_info.stake, lazy_info.locked) == (int(params["minStake"]) - slashed, 0)
    assert market.job(job_id).escrow == 0
    # The artist paid its two tile-replicas and its gas (what came back is pending above).
    gas = gas_paid(w3, artist.address, first_block)
    assert w3.eth.get_balance(artist.address) == artist_before - 2 * REWARD - gas
    check_frame(result)
    jobs = list(range(1, market.counts()[0] + 1))
    owed = contract_books(market, [artist.address, *stack.accounts.values()], jobs)
    assert w3.eth.get_balance(market.address) == owed
