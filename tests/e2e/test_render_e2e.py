"""The main job end to end on the real stack: Anvil, IPFS nodes, render nodes as processes, and
the artist's `blindframe client render`, checked on chain to the wei and against the twin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.e2e import (
    check_frame,
    contract_books,
    finish_render,
    job_leases,
    stack_market,
    start_render,
    withdraw,
)
from support.render_stack import RenderStack, start_render_stack
from support.wei import gas_paid

from blindframe.coordinator.accounts import read_password_file, unlock
from blindframe.coordinator.manifest import FollowUp, Manifest
from blindframe.coordinator.market import ContestOutcome, LeaseStatus
from blindframe.coordinator.results import open_lease_result

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.slow  # minutes each: `-m "not slow"` leaves them out while iterating

REWARD = 10**15  # wei per tile-replica (0.001 ETH)
# Replicas are compared by the nodes inside the challenge window: long enough to fetch a
# replica's result and rebuild its trees on a loaded 2-core machine.
WINDOWS = {"challengeWindow": 30, "acceptanceWindow": 60}


# -- two honest nodes ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def honest_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RenderStack]:
    stack = start_render_stack(
        tmp_path_factory.mktemp("e2e-honest"), nodes=2, capacity=32, windows=WINDOWS
    )
    try:
        yield stack
    finally:
        stack.close()


def test_two_nodes_render_replicas_agree_and_every_balance_is_exact(
    honest_stack: RenderStack, tmp_path: Path
) -> None:
    stack = honest_stack
    w3, market = stack_market(stack)
    artist = unlock(
        stack.settings.keystores / "artist.json", read_password_file(stack.password_file)
    )
    nodes = {w.name: w.address for w in stack.workers}
    first_block = w3.eth.block_number + 1
    before = {a: w3.eth.get_balance(a) for a in [artist.address, *nodes.values()]}

    result = finish_render(
        stack, start_render(stack, tmp_path, "--size", "16x16", "--replication", "2"), 900
    )

    job_id = int(result["job"]["jobId"])
    job = market.job(job_id)
    assert (job.tileCount, job.replication) == (16, 2)  # 16x16 plus a margin of canary tiles
    leases = job_leases(market, job_id)
    assert all(lease.state is LeaseStatus.SETTLED for _, lease in leases), leases
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
    assert sorted(roots) == list(range(16))
    assert all(len(r) == 1 for r in roots.values()), "replicas of a tile differ"
    check_frame(result)

    # Money, to the wei: the artist paid the escrow and gas; each node earned its tiles.
    earned = {name: withdraw(stack, name) for name in nodes}
    tiles_done = {name: 0 for name in nodes}
    for _, lease in leases:
        name = next(n for n, a in nodes.items() if a == lease.worker)
        tiles_done[name] += lease.count
    assert sum(tiles_done.values()) == 32
    for name, address in nodes.items():
        assert earned[name] == tiles_done[name] * REWARD
        gas = gas_paid(w3, address, first_block)
        assert w3.eth.get_balance(address) == before[address] + earned[name] - gas
    gas = gas_paid(w3, artist.address, first_block)
    assert w3.eth.get_balance(artist.address) == before[artist.address] - 32 * REWARD - gas
    assert job.escrow == 0
    assert w3.eth.get_balance(market.address) == contract_books(
        market, [artist.address, *nodes.values()], [job_id]
    )


# -- a node dying mid-lease: its tiles retried -----------------------------------------------


def test_a_node_dying_mid_lease_has_its_tiles_retried_in_a_follow_up_job(
    honest_stack: RenderStack, tmp_path: Path
) -> None:
    """`client render --retries 1`: a node killed right after its claim is reclaimed, the job
    ends without its tiles, and they are posted again as a follow-up job on the first job's
    uploaded inputs and keys; another node renders it, the node that failed keeps out of it,
    and the frame assembled from both jobs equals the plaintext twin."""
    stack = honest_stack
    _, market = stack_market(stack)
    for worker in list(stack.workers):
        stack.retire(worker.name)  # the two-node test's nodes: this one picks its own
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
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    stack = start_render_stack(
        tmp_path_factory.mktemp("e2e-lazy"),
        nodes=0,
        ipfs_nodes=("honest", "lazy", "breaker"),
        windows=WINDOWS,
    )
    try:
        _lazy_scenario(stack, tmp_path)
    finally:
        stack.close()


def _lazy_scenario(stack: RenderStack, out: Path) -> None:
    w3, market = stack_market(stack)
    honest = stack.add_node("honest", capacity=4)
    lazy = stack.add_node("lazy", capacity=4, fault="lazy")
    first_block = w3.eth.block_number + 1
    # One tile (8x8, no canary margin) at replication 2: the honest node and the lazy node take
    # its two replica lanes; the third node, started after, can only be drawn as the juror that
    # breaks the tie (a jury of one on the local stack).
    render = start_render(stack, out, "--size", "8x8", "--canaries", "0", "--replication", "2")
    honest.wait_for("claimed", timeout=300)
    lazy.wait_for("claimed", timeout=300)
    breaker = stack.add_node("breaker", capacity=4)
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

    slashes = market.contract.events.Slashed().get_logs(from_block=first_block)
    assert [s["args"]["worker"] for s in slashes] == [lazy.address]
    assert market.worker(lazy.address).faults == 1
    assert market.worker(honest.address).faults == 0
    assert market.pending_balance(lazy.address) == 0
    assert market.pending_balance(honest.address) >= REWARD
    assert market.pending_balance(breaker.address) >= REWARD
    check_frame(result)
    artist = unlock(
        stack.settings.keystores / "artist.json", read_password_file(stack.password_file)
    )
    owed = contract_books(
        market, [artist.address, honest.address, lazy.address, breaker.address], [job_id]
    )
    assert w3.eth.get_balance(market.address) == owed
