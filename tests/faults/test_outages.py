"""Faults that outlast a lease (issue 14), on the real stack: the chain's RPC cut for longer than
a lease's commit window while a render node's disk is full, and the artist offline from posting
to the end while every process but the chain is killed and started again. Each job completes,
the frame equals the plaintext twin, and every balance is exact to the wei. Minutes each:
`make faults` runs them (see conftest.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

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
from support.rpc_proxy import RpcProxy

from blindframe.coordinator.accounts import read_password_file, unlock
from blindframe.coordinator.market import LeaseStatus

# A stack, a job and an outage longer than a lease: past the suite's 15-minute default on a
# loaded machine.
pytestmark = pytest.mark.timeout(2400)

LEASE = 90  # seconds to commit
STAKE = 2 * 10**17  # twice the local minimum: a node slashed once may still claim
# The largest file the cramped node may write: its state and log fit, the job's evaluation keys
# (megabytes) do not, as on a full disk.
CRAMPED_BYTES = 4 << 20


def _artist(stack: RenderStack) -> str:
    password = read_password_file(stack.password_file)
    return unlock(stack.settings.keystores / "artist.json", password).address


def test_rpc_down_longer_than_a_commit_window_and_a_full_disk(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """Nodes ``a`` and ``b`` and the artist reach the chain through a proxy that is cut, right
    after both nodes claimed, for longer than their leases' commit window: they back off, say
    the RPC is down and when it is back, say which lease missed its commit, send nothing twice,
    and the job completes on the reopened tiles. Node ``cramped`` cannot write the job's keys
    (its files are limited to a few MB): its lease fails saying the disk is full, without
    blaming the job."""
    stack = start_render_stack(
        tmp_path_factory.mktemp("outage"), nodes=0, ipfs_nodes=("a", "b", "cramped")
    )
    proxy = RpcProxy(target=int(stack.info.rpc_url.rsplit(":", 1)[1])).start()
    try:
        _outage(stack, proxy, tmp_path)
    finally:
        proxy.close()
        stack.close()


def _outage(stack: RenderStack, proxy: RpcProxy, out: Path) -> None:
    w3, market = stack_market(stack)
    cramped = stack.add_node("cramped", capacity=1, stake=STAKE, limit_file_bytes=CRAMPED_BYTES)
    a = stack.add_node("a", capacity=2, stake=STAKE, rpc_url=proxy.url)
    b = stack.add_node("b", capacity=2, stake=STAKE, rpc_url=proxy.url)
    for node in (cramped, a, b):
        node.wait_for("started", timeout=300)
    artist = _artist(stack)
    nodes = {n.name: n.address for n in (cramped, a, b)}
    first_block = w3.eth.block_number + 1
    before = {x: w3.eth.get_balance(x) for x in [artist, *nodes.values()]}
    staked = {x: market.worker(x).stake for x in nodes.values()}

    env = {**stack.env, "BLINDFRAME_RPC_URL": proxy.url}
    render = start_render(
        stack, out, "--size", "16x16", "--canaries", "0", "--replication", "1",
        "--lease-length", f"{LEASE}s", "--deadline", "30m", env=env,
    )  # fmt: skip
    try:
        for node in (a, b):
            node.wait_for("claimed", timeout=900)
        proxy.cut()
        cut_at = time.monotonic()
        for node in (a, b):
            node.wait_for("rpc_down", timeout=60)

        # Meanwhile the cramped node (on the chain directly) found its disk full.
        failed = cramped.wait_for("lease_failed", timeout=300)
        assert "the disk is full" in failed["reason"], failed
        assert "File too large" in failed["reason"]
        assert not cramped.events("job_refused")  # the job is not to blame
        cramped.signal(signal.SIGINT)  # its operator stops it to make room
        assert cramped.wait() == 0

        time.sleep(max(LEASE + 10 - (time.monotonic() - cut_at), 0))
        proxy.restore()
        for node in (a, b):
            back = node.wait_for("rpc_back", timeout=120)
            assert "answers again" in back["message"]
        stderr: list[str] = []
        result = finish_render(stack, render, 900, stderr)
        job_id = int(result["job"]["jobId"])
        check_frame(result)

        # What each node missed, said in its own words: a lease that could not commit in time.
        late = [e for node in (a, b) for e in node.events("lease_late")]
        assert late, stack.worker_logs()
        # Its commit came too late: seen by the node's clock, or refused by the market.
        assert all(
            "the commit deadline passed before the commit" in e["message"]
            or "[MarketLeaseExpired]" in e["message"]
            for e in late
        ), late
        assert not [e for e in late if " (in " in e["message"]]  # no deadline said ahead
        lost = {int(e["lease"]) for e in late} | {int(failed["lease"])}
        leases = dict(job_leases(market, job_id))
        assert {i for i, lease in leases.items() if lease.state is LeaseStatus.RECLAIMED} == lost
        # The artist rode the outage out and said what happened meanwhile.
        assert "waiting for it to answer again" in stderr[0], stderr[0][-2000:]
        assert "the chain RPC answers again after" in stderr[0]
        no_duplicates(market, first_block)
        check_books(stack, market, [job_id], first_block, before, staked)
        record("faults", "chain rpc down past a commit window", survived=1, wei_lost=0)
        record("faults", "disk full under a worker", survived=1, wei_lost=0)
    finally:
        if render.poll() is None:
            render.kill()


def test_artist_offline_and_every_process_restarted_mid_job(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """The artist posts (`client post`) and goes offline. Mid-job, once a lease committed, both
    render nodes are SIGKILLed and every IPFS node (the artist's included) is stopped; all are
    started again at once. The nodes resume, reveal, and past the acceptance window finalize
    their leases themselves: paid to the wei with nobody settling. Back online, the artist
    fetches the frame, equal to the plaintext twin."""
    stack = start_render_stack(tmp_path_factory.mktemp("offline"), nodes=0, ipfs_nodes=("a", "b"))
    try:
        _offline(stack, tmp_path)
    finally:
        stack.close()


def _offline(stack: RenderStack, out: Path) -> None:
    w3, market = stack_market(stack)
    a = stack.add_node("a", capacity=2, stake=STAKE)
    b = stack.add_node("b", capacity=2, stake=STAKE)
    for node in (a, b):
        node.wait_for("started", timeout=300)
    artist = _artist(stack)
    first_block = w3.eth.block_number + 1
    before = {x: w3.eth.get_balance(x) for x in (artist, a.address, b.address)}
    staked = {x: market.worker(x).stake for x in (a.address, b.address)}

    posted = _blindframe(
        stack, "client", "post", "--yes", "--scene", "sample", "--kernel", "volume@1",
        "--size", "16x16", "--canaries", "0", "--replication", "1", "--reward", "0.001",
        "--lease-length", "10m", "--deadline", "1h",
    )  # fmt: skip
    job_id = int(posted["jobId"])
    # The artist is offline from here on. Mid-job: everything but the chain goes down at once.
    committed = a.wait_for("committed", timeout=900)
    for node in (a, b):
        node.kill()
    for name in ("client", "a", "b"):
        stack.stop_ipfs(name)
    stack.start_ipfs()
    again = [stack.start_node(name) for name in ("a", "b")]
    resumed = again[0].wait_for(
        "resumed", timeout=300, where=lambda e: e["lease"] == committed["lease"]
    )
    assert "revealing" in resumed["message"]

    # Nobody settles: past the acceptance window each node finalizes its own leases.
    deadline = time.monotonic() + 600
    while not all(lease.state is LeaseStatus.SETTLED for _, lease in job_leases(market, job_id)):
        assert time.monotonic() < deadline, stack.worker_logs()
        time.sleep(2)
    finalized = market.contract.events.LeaseFinalized().get_logs(from_block=first_block)
    assert {e["args"]["leaseId"] for e in finalized} == {i for i, _ in job_leases(market, job_id)}
    assert not market.contract.events.LeaseSettled().get_logs(from_block=first_block)
    no_duplicates(market, first_block)
    check_books(stack, market, [job_id], first_block, before, staked)

    # Back online, the artist verifies what was delivered and decrypts the frame.
    fetched = _blindframe(
        stack, "client", "fetch", str(job_id), "-o", str(out / "frame.png"),
        "--twin", str(out / "twin.png"),
    )  # fmt: skip
    assert fetched["matchesTwin"] is True, fetched
    for name in ("client offline to the end", "every process restarted"):
        record("faults", name, survived=1, wei_lost=0)


def _blindframe(stack: RenderStack, *args: str) -> dict[str, object]:
    """`blindframe --json ARGS` as the artist; its JSON output (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-m", "blindframe", "--json", *args],
        env=stack.env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return out
