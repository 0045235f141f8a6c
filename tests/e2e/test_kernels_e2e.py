"""shade@1 and post@1 as jobs on the real stack, as volume@1 is in test_render_e2e: the artist's
`client render` encrypts the sample scene for the kernel (its G-buffer, its frame) with a canary
task, posts it; a render node runs the kernel on the ciphertexts in its sandbox, commits and
reveals; the artist verifies every task against its twin, settles and decrypts. The frame equals
the plaintext twin and every wei is accounted for. The smallest frame: one 8x8 tile and its
canary, at replication 1, on the shared stack."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
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
from support.wei import gas_paid

from blindframe.client.jobdir import JobDir, VerdictStatus
from blindframe.coordinator.manifest import Manifest
from blindframe.coordinator.market import LeaseStatus
from blindframe.coordinator.results import open_lease_result
from blindframe.fhe_core.artist_jobs import JobSecrets

if TYPE_CHECKING:
    from collections.abc import Iterator

    from support.node_process import NodeProcess
    from support.render_stack import RenderStack

pytestmark = pytest.mark.slow  # minutes each: `-m "not slow"` leaves them out while iterating

KERNELS = ("shade@1", "post@1")
REWARD = 10**15  # start_render's --reward 0.001
NODE = "kernels"


@pytest.fixture(scope="module")
def kernel_node(shared_stack: RenderStack) -> Iterator[NodeProcess]:
    """A node that runs shade@1 and post@1 only (the shared stack's node-0 and node-1 run
    volume@1 and leave these jobs alone), on node-1's IPFS node; retired afterwards so that no
    later test draws it as a juror."""
    node = shared_stack.add_node(NODE, capacity=8, ipfs_name="node-1", kernels=KERNELS)
    try:
        yield node
    finally:
        shared_stack.retire(NODE)


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_job_is_posted_computed_verified_settled_and_decrypted(
    shared_stack: RenderStack, kernel_node: NodeProcess, tmp_path: Path, kernel: str
) -> None:
    stack = shared_stack
    w3, market = stack_market(stack)
    artist = stack.artist().address
    node = kernel_node.address
    first_block = w3.eth.block_number + 1
    before = {a: w3.eth.get_balance(a) for a in (artist, node)}
    artist_pending = market.pending_balance(artist)

    render = start_render(
        stack, tmp_path, "--kernel", kernel, "--size", "8x8", "--replication", "1"
    )
    result = finish_render(stack, render, 600)

    job_id = int(result["job"]["jobId"])
    job = market.job(job_id)
    directory = Path(result["job"]["directory"])
    manifest = Manifest.parse((directory / "manifest.json").read_bytes())
    secrets = JobSecrets.load(directory / "secrets.npz")
    assert job.kernel == manifest.kernel == secrets.kernel_id == kernel
    # One real tile and its canary (a copy of it, in a place only the artist knows).
    assert sorted(t.canary for t in secrets.tasks) == [False, True]
    assert {t.source_tile for t in secrets.tasks} == {0}
    assert (job.tileCount, job.replication) == (2, 1)

    # The node ran the kernel on both tasks; its results open to the roots it revealed, and the
    # artist checked each task, the canary included, against its twin before paying.
    leases = job_leases(market, job_id)
    assert leases
    assert all((v.worker, v.state) == (node, LeaseStatus.SETTLED) for _, v in leases), leases
    computed = {e["lease"] for e in kernel_node.events("computed")}
    assert {lease_id for lease_id, _ in leases} <= computed
    tiles: list[int] = []
    verdicts = JobDir(directory).verdicts()
    for lease_id, lease in leases:
        opened = open_lease_result(
            (directory / "outputs" / f"lease-{lease_id}.bflr").read_bytes(),
            kernel=kernel, job_id=job_id, lease_id=lease_id, first_tile=lease.firstTile,
            count=lease.count, leaf_depth=job.leafDepth, root=lease.digest,
        )  # fmt: skip
        tiles += opened.tiles
        verdict = verdicts.leases[lease_id]
        assert verdict.status is VerdictStatus.OK
        assert verdict.tiles == {t: VerdictStatus.OK for t in opened.tiles}
    assert sorted(tiles) == [0, 1]
    check_frame(result)
    assert np.load(result["frame"]["array"]).shape[-2:] == (8, 8)  # (channels,) height, width

    # Money, to the wei: the artist paid two tile-replicas and its gas, the node earned them.
    assert job.escrow == 0
    assert market.pending_balance(artist) == artist_pending
    earned = withdraw(stack, NODE)
    assert earned == 2 * REWARD
    assert w3.eth.get_balance(node) == before[node] + earned - gas_paid(w3, node, first_block)
    assert w3.eth.get_balance(artist) == (
        before[artist] - 2 * REWARD - gas_paid(w3, artist, first_block)
    )
    jobs = list(range(1, market.counts()[0] + 1))
    assert w3.eth.get_balance(market.address) == contract_books(
        market, [artist, *stack.accounts.values()], jobs
    )
