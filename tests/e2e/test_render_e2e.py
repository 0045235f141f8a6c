"""The main job end to end on the real stack: Anvil, IPFS nodes, render nodes as processes, and
the artist's `blindframe client render`, checked on chain to the wei and against the twin."""

from __future__ import annotations

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
