"""Faults on the real stack (issue 14): Anvil, the stack's IPFS nodes, render nodes as separate
processes and the artist's `client render`. Each scenario ends with the job complete, the frame
equal to the plaintext twin and every balance exact to the wei; several faults that do not
interfere share one job. `make faults` runs it (minutes on 2 cores, beyond make test's budget)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.e2e import (
    check_books,
    check_frame,
    finish_render,
    job_leases,
    no_duplicates,
    stack_market,
    start_render,
)
from support.reliability import record
from support.render_stack import RenderStack, start_render_stack

from blindframe.coordinator.accounts import read_password_file, unlock
from blindframe.coordinator.market import LeaseStatus

if TYPE_CHECKING:
    from support.node_process import NodeProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

LEASE = 90  # seconds to commit: short, so a dead node's lease expires within the test
STAKE = 2 * 10**17  # twice the local minimum: a node slashed once may still claim


def test_killed_restarted_and_ipfs_faults_complete_the_job_to_the_wei(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """One job of four tiles (16x16, no canary margin, replication 1) on three nodes, with:
    - ``dies`` SIGKILLed right after its claim: its lease expires, another node reclaims it (the
      bounty), claims the reopened tile and finishes it; ``dies`` is slashed as reclaim says;
    - ``phoenix`` SIGKILLed once committed (waiting to reveal: the dead lease's slot never
      commits), started again: it reveals its committed result from its saved root and salt,
      computes nothing again and sends no second commit;
    - the artist's IPFS node stopped while the nodes fetch the job's keys, and started again;
    - ``steady``'s IPFS node wiped (blockstore deleted) after it committed, before anyone fetched
      its results: the artist still gets them."""
    stack = start_render_stack(
        tmp_path_factory.mktemp("faults"), nodes=0, ipfs_nodes=("dies", "phoenix", "steady")
    )
    try:
        _kills_and_ipfs(stack, tmp_path)
    finally:
        stack.close()


def _kills_and_ipfs(stack: RenderStack, out: Path) -> None:
    w3, market = stack_market(stack)
    dies = stack.add_node("dies", capacity=1, stake=STAKE)
    phoenix = stack.add_node("phoenix", capacity=1, stake=STAKE)
    steady = stack.add_node("steady", capacity=2, stake=STAKE)
    for node in (dies, phoenix, steady):
        node.wait_for("started", timeout=300)
    artist = unlock(
        stack.settings.keystores / "artist.json", read_password_file(stack.password_file)
    ).address
    nodes = {n.name: n.address for n in (dies, phoenix, steady)}
    accounts = [artist, *nodes.values()]
    first_block = w3.eth.block_number + 1
    before = {a: w3.eth.get_balance(a) for a in accounts}
    staked = {a: market.worker(a).stake for a in nodes.values()}

    render = start_render(
        stack, out, "--size", "16x16", "--canaries", "0", "--replication", "1",
        "--lease-length", f"{LEASE}s", "--deadline", "30m",
    )  # fmt: skip
    try:
        _faults_during(stack, render, dies, phoenix, steady, first_block, before, staked)
    finally:
        if render.poll() is None:
            render.kill()


def _faults_during(
    stack: RenderStack,
    render: subprocess.Popen[str],
    dies: NodeProcess,
    phoenix: NodeProcess,
    steady: NodeProcess,
    first_block: int,
    before: dict[str, int],
    staked: dict[str, int],
) -> None:
    _, market = stack_market(stack)
    dead_lease = int(dies.wait_for("claimed", timeout=900)["lease"])
    dies.kill()
    # The others claimed too; their keys and inputs come from the artist's node, now down.
    phoenix.wait_for("claimed", timeout=120)
    steady.wait_for("claimed", timeout=120)
    stack.stop_ipfs("client")
    time.sleep(3)
    stack.start_ipfs()

    committed = phoenix.wait_for("committed", timeout=240)
    phoenix_lease = int(committed["lease"])
    phoenix.wait_for("reveal_wait", where=lambda e: e["lease"] == phoenix_lease)
    phoenix.kill()
    steady.wait_for("committed", timeout=240)
    stack.wipe_ipfs("steady")
    stack.start_ipfs()
    earlier = len(phoenix.read())  # the restarted node appends to the same log
    again = stack.start_node("phoenix")
    resumed = again.wait_for("resumed", timeout=300)
    assert (resumed["lease"], "revealing" in resumed["message"]) == (phoenix_lease, True)

    result = finish_render(stack, render, 900)
    job_id = int(result["job"]["jobId"])
    check_frame(result)

    leases = dict(job_leases(market, job_id))
    assert leases[dead_lease].state is LeaseStatus.RECLAIMED
    assert leases[phoenix_lease].state is LeaseStatus.SETTLED
    reclaimed = market.contract.events.LeaseReclaimed().get_logs(from_block=first_block)
    assert [(e["args"]["leaseId"], e["args"]["committed"]) for e in reclaimed] == [
        (dead_lease, False)
    ]
    assert reclaimed[0]["args"]["caller"] in (phoenix.address, steady.address)
    # The dead tile was finished by another node in this job.
    dead = leases[dead_lease]
    finishers = {
        lease.worker
        for lease in leases.values()
        if lease.state is LeaseStatus.SETTLED and lease.firstTile <= dead.firstTile
        and dead.firstTile < lease.firstTile + lease.count
    }  # fmt: skip
    assert finishers
    assert dies.address not in finishers
    # Restarted after its commit, phoenix revealed its saved result: nothing computed again,
    # one commit and one reveal (the reveal only passes with the salt it committed with).
    after_restart = again.read()[earlier:]
    assert not [
        e
        for e in after_restart
        if e.get("event") in ("computing", "committed") and e.get("lease") == phoenix_lease
    ]
    no_duplicates(market, first_block)
    assert market.job(job_id).escrow == 0
    assert not steady.errors(), steady.tail()

    check_books(stack, market, [job_id], first_block, before, staked)
    for name in ("sigkill mid-lease", "restart after commit", "artist ipfs bounced",
                 "worker ipfs wiped"):  # fmt: skip
        record("faults", name, survived=1, wei_lost=0)
