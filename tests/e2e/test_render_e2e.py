"""The main job end to end on the real stack: Anvil, IPFS nodes, render nodes as processes, and
the artist's `blindframe client render`, checked on chain to the wei and against the twin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from PIL import Image
from support.render_stack import RenderStack, start_render_stack
from support.wei import gas_paid

from blindframe.client.jobdir import JobDir
from blindframe.coordinator.accounts import read_password_file, unlock
from blindframe.coordinator.chain import connect
from blindframe.coordinator.deployment import Deployment
from blindframe.coordinator.manifest import Manifest
from blindframe.coordinator.market import ContestOutcome, LeaseStatus, LeaseView, Market
from blindframe.coordinator.results import open_lease_result
from blindframe.coordinator.tx import TxSender
from blindframe.fhe_core.jobs import JobSecrets, PublicJob, plain_frame

if TYPE_CHECKING:
    from collections.abc import Iterator

    from web3 import Web3

pytestmark = pytest.mark.slow  # minutes each: `-m "not slow"` leaves them out while iterating

REWARD = 10**15  # wei per tile-replica (0.001 ETH)
# Replicas are compared by the nodes inside the challenge window: long enough to fetch a
# replica's result and rebuild its trees on a loaded 2-core machine.
WINDOWS = {"challengeWindow": 30, "acceptanceWindow": 60}


def _market(stack: RenderStack) -> tuple[Web3, Market]:
    deployment = Deployment.load(Path(stack.info.deployment))
    w3 = connect(stack.info.rpc_url, expected_chain_id=deployment.chain_id)
    return w3, Market(w3, deployment)


def _render(stack: RenderStack, out: Path, *args: str) -> subprocess.Popen[str]:
    """`blindframe --json client render` of the sample scene as the artist, in its own process."""
    argv = [
        sys.executable, "-m", "blindframe", "--json", "client", "render",
        "--scene", "sample", "--kernel", "volume@1", "--reward", "0.001",
        "--lease-length", "10m", "--deadline", "1h", "--interval", "0.5",
        "-o", str(out / "frame.png"), "--twin", str(out / "twin.png"), *args,
    ]  # fmt: skip
    return subprocess.Popen(
        argv, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(stack: RenderStack, process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"render timed out:\n{err[-3000:]}\n{stack.worker_logs()}") from None
    assert process.returncode == 0, f"{err[-3000:]}\n{stack.worker_logs()}"
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _job_leases(market: Market, job_id: int) -> list[tuple[int, LeaseView]]:
    leases = []
    for lease_id in range(1, market.counts()[1] + 1):
        lease = market.lease(lease_id)
        if lease.jobId == job_id:
            leases.append((lease_id, lease))
    return leases


def _withdraw(stack: RenderStack, name: str) -> int:
    """Withdraw ``name``'s pending balance; returns the amount."""
    deployment = Deployment.load(Path(stack.info.deployment))
    w3 = connect(stack.info.rpc_url)
    account = unlock(
        stack.settings.keystores / f"{name}.json", read_password_file(stack.password_file)
    )
    market = Market(w3, deployment, sender=TxSender(w3, account, endpoint=stack.info.rpc_url))
    pending = market.pending_balance(account.address)
    if pending:
        market.withdraw()
    return pending


def _check_frame(stack: RenderStack, result: dict[str, Any]) -> None:
    """The decrypted frame equals the plaintext twin, recomputed here from the job's secrets."""
    assert result["frame"]["matchesTwin"] is True
    job = JobDir(Path(result["job"]["directory"]))
    manifest = Manifest.parse((job.path / "manifest.json").read_bytes())
    twin = plain_frame(PublicJob.from_json(manifest.job), JobSecrets.load(job.path / "secrets.npz"))
    decrypted = np.load(result["frame"]["array"])
    np.testing.assert_array_equal(decrypted, twin)
    # The PNGs the artist looks at: the decrypted frame's is pixel for pixel the twin's.
    assert result["frame"]["png"].endswith("frame.png")
    with Image.open(result["frame"]["png"]) as got, Image.open(result["frame"]["twinPng"]) as want:
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def _contract_books(w3: Web3, market: Market, accounts: list[str], job_ids: list[int]) -> int:
    """What the market owes: stakes, unbonding and pending balances of ``accounts``, escrow."""
    owed = sum(market.job(j).escrow for j in job_ids)
    for address in accounts:
        info = market.worker(address)
        owed += info.stake + info.unbonding + market.pending_balance(address)
    return owed


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
    w3, market = _market(stack)
    artist = unlock(
        stack.settings.keystores / "artist.json", read_password_file(stack.password_file)
    )
    nodes = {w.name: w.address for w in stack.workers}
    first_block = w3.eth.block_number + 1
    before = {a: w3.eth.get_balance(a) for a in [artist.address, *nodes.values()]}

    result = _finish(stack, _render(stack, tmp_path, "--size", "16x16", "--replication", "2"), 900)

    job_id = int(result["job"]["jobId"])
    job = market.job(job_id)
    assert (job.tileCount, job.replication) == (16, 2)  # 16x16 plus a margin of canary tiles
    leases = _job_leases(market, job_id)
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
    _check_frame(stack, result)

    # Money, to the wei: the artist paid the escrow and gas; each node earned its tiles.
    earned = {name: _withdraw(stack, name) for name in nodes}
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
    assert w3.eth.get_balance(market.address) == _contract_books(
        w3, market, [artist.address, *nodes.values()], [job_id]
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
    w3, market = _market(stack)
    honest = stack.add_node("honest", capacity=4)
    lazy = stack.add_node("lazy", capacity=4, fault="lazy")
    first_block = w3.eth.block_number + 1
    # One tile (8x8, no canary margin) at replication 2: the honest node and the lazy node take
    # its two replica lanes; the third node, started after, can only break the tie.
    render = _render(stack, out, "--size", "8x8", "--canaries", "0", "--replication", "2")
    honest.wait_for("claimed", timeout=300)
    lazy.wait_for("claimed", timeout=300)
    breaker = stack.add_node("breaker", capacity=4)
    result = _finish(stack, render, 900)
    job_id = int(result["job"]["jobId"])

    leases = dict(_job_leases(market, job_id))
    by_worker = {lease.worker: lease_id for lease_id, lease in leases.items()}
    honest_lease, lazy_lease = by_worker[honest.address], by_worker[lazy.address]
    (proven,) = market.contract.events.DisagreementProven().get_logs(from_block=first_block)
    assert {proven["args"]["leaseA"], proven["args"]["leaseB"]} == {honest_lease, lazy_lease}
    assert proven["args"]["challenger"] in (honest.address, breaker.address)
    contest = market.contest(proven["args"]["contestId"])
    lazy_side = ContestOutcome.A_FAR if contest.leaseA == lazy_lease else ContestOutcome.B_FAR
    assert ContestOutcome(contest.outcome) is lazy_side

    # The tie-breaker computed the same bytes as the honest replica.
    tie = leases[contest.leaseT]
    assert tie.worker == breaker.address
    assert tie.digest == leases[honest_lease].digest

    slashes = market.contract.events.Slashed().get_logs(from_block=first_block)
    assert [s["args"]["worker"] for s in slashes] == [lazy.address]
    assert market.worker(lazy.address).faults == 1
    assert market.worker(honest.address).faults == 0
    assert market.pending_balance(lazy.address) == 0
    assert market.pending_balance(honest.address) >= REWARD
    assert market.pending_balance(breaker.address) >= REWARD
    _check_frame(stack, result)
    artist = unlock(
        stack.settings.keystores / "artist.json", read_password_file(stack.password_file)
    )
    owed = _contract_books(
        w3, market, [artist.address, honest.address, lazy.address, breaker.address], [job_id]
    )
    assert w3.eth.get_balance(market.address) == owed
