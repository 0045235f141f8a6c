"""A render node as a real process against real Anvil, IPFS and Concrete: it finds a posted job,
pins a compute process to the job's FFT plan, claims, computes in the sandbox, commits, reveals a
result that opens against its root and decrypts to the plaintext twin; it refuses bad jobs (and
jobs whose plan it cannot reach) without crashing and is paid. Two honest nodes pinned to a
job's plan reveal equal roots."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import numpy as np
from worker_helpers import KERNEL, REWARD, stake

from blindframe.coordinator.manifest import ContentRef
from blindframe.coordinator.market import LeaseStatus
from blindframe.coordinator.results import open_lease_result
from blindframe.coordinator.store import IpfsStore
from blindframe.fhe_core.artist_jobs import decrypt_job, plain_frame
from blindframe.fhe_core.client import KernelClient
from blindframe.fhe_core.merkle import leaf_depth
from blindframe.worker.state import NodeState

if TYPE_CHECKING:
    from collections.abc import Callable

    from support.node_process import NodeProcess
    from worker_helpers import Assets, Client, Home, Ipfs

    from tests.conftest import Chain


def cli_json(home: Home, *args: str) -> tuple[int, str, str]:
    """`blindframe --json worker ...` as a real process."""
    result = subprocess.run(
        [
            sys.executable, "-m", "blindframe", "--json", "worker", *args,
            "--keystore-dir", str(home.keystores), "--rpc", home.rpc_url,
            "--deployment", str(home.deployment),
        ],
        env=home.env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )  # fmt: skip
    return result.returncode, result.stdout, result.stderr


def test_node_renders_a_job_and_refuses_bad_ones(
    fresh_chain: Chain,
    home: Home,
    client: Client,
    assets: Assets,
    ipfs: Ipfs,
    run_node: Callable[..., NodeProcess],
) -> None:
    node_a = stake(home, fresh_chain, "node-a")
    # Bad jobs first: a manifest that is not JSON, one compiled for other client specs, and one
    # whose input is garbage of the declared size (it fails inside the sandbox).
    garbage = client.post(assets.upload(b"this is not a manifest"), 1)
    wrong_spec = client.post(
        assets.manifest(assets.public1, [assets.input1], spec_hash="ab" * 32), 1
    )
    # A plan measured on another SIMD code path: no process here can ever hold it.
    other_path = client.post(
        assets.manifest(
            assets.public1, [assets.input1], fft_plan="x86-64-v9:2048=5e1b685f17f459e5"
        ),
        1,
    )
    junk = assets.upload(bytes(assets.input1.size))
    bad_input = client.post(
        assets.manifest(assets.public1, [ContentRef(junk, assets.input1.size)]), 1
    )
    data = home.path.parent / "data-node-a"
    node = run_node("node-a", "--tile-seconds", f"{KERNEL}=3", "--max-idle", "3", data_dir=data)
    # At start it advertises its (configured) speed on chain, for artists' quotes.
    advertised = node.wait_for("advertised")
    assert (advertised["kernel"], advertised["ms_per_tile"]) == (KERNEL, 3000)
    node.wait_for("job_refused", count=3)
    refused = {e["job"]: e["reason"] for e in node.events("job_refused")}
    assert "not JSON" in refused[garbage]
    assert "client-spec hash" in refused[wrong_spec]
    assert "cannot compute with its FFT plan" in refused[other_path]
    assert "x86-64-v9 code path" in refused[other_path]
    failed = node.wait_for("lease_failed", timeout=120)
    assert "failed in the child" in failed["reason"]
    node.wait_for("job_refused", where=lambda e: e["job"] == bad_input)
    # Pinned before its first claim, to the job's plan.
    pinned = node.events("pinned")[0]
    assert pinned["plan"] == assets.fft_plan
    assert pinned["attempts"] >= 1
    assert pinned["time"] < node.events("claimed")[0]["time"]

    # A good job that asks for more reputation than this new node has: never claimed, said once.
    gated = client.market.post_job(
        manifest_cid=assets.manifest4,
        kernel_id=KERNEL,
        tile_count=4,
        replication=1,
        reward_per_tile_replica=REWARD,
        lease_length=300,
        deadline=client.market.now() + 2000,
        priority=1,
        leaf_depth=leaf_depth(KERNEL),
        min_completed=100,
    )
    refused_by_gate = node.wait_for("gate_refuses", where=lambda e: e["job"] == gated)
    assert (refused_by_gate["min_completed"], refused_by_gate["completed"]) == (100, 0)

    # The node is still alive: it takes the real job.
    job = client.post(assets.manifest4, 4, lease_length=300)
    claimed = node.wait_for("claimed", where=lambda e: e["job"] == job)
    assert (claimed["first_tile"], claimed["count"]) == (0, 4)
    revealed = node.wait_for(
        "revealed", timeout=180, where=lambda e: e["lease"] == claimed["lease"]
    )
    lease_id = revealed["lease"]
    view = client.market.lease(lease_id)
    assert view.state == LeaseStatus.REVEALED
    assert view.tiles == range(4)

    # The client fetches the result from the worker's node, checks it against the revealed root,
    # and decrypts it to the plaintext twin.
    with IpfsStore(ipfs.client.api_url) as store:
        blob = store.cat(revealed["cid"], max_size=64 << 20)
    result = open_lease_result(
        blob,
        kernel=KERNEL,
        job_id=job,
        lease_id=lease_id,
        first_tile=0,
        count=4,
        leaf_depth=leaf_depth(KERNEL),
        root=view.digest,
    )
    frame = decrypt_job(
        KernelClient(KERNEL, assets.key_dir),
        assets.public4,
        assets.secrets4,
        {tile: result.output(tile) for tile in range(4)},
    )
    assert np.array_equal(frame, plain_frame(assets.public4, assets.secrets4))

    # Paid once the client settles after the challenge window.
    fresh_chain.warp(int(fresh_chain.deployment.parameters["challengeWindow"]) + 1)
    client.market.settle(job, [lease_id])
    paid = node.wait_for("paid", where=lambda e: e["lease"] == lease_id)
    assert paid["amount"] == 4 * REWARD

    # Past its commit deadline the failed lease is reclaimed by the node itself.
    failed_lease = client.market.lease(failed["lease"])
    fresh_chain.warp(failed_lease.commitDeadline - fresh_chain.now() + 5)
    node.wait_for("reclaimed_own", where=lambda e: e["lease"] == failed["lease"])

    # Nothing left to do: --max-idle ends the node by itself.
    assert node.wait(timeout=60) == 0
    assert node.events("stopped")
    assert not [e for e in node.errors() if e["event"] != "lease_failed"]
    # One pinned process served both leases: the garbage input crashed its call's fork only.
    assert len(node.events("pinned")) == 1
    assert {e["job"] for e in node.events("claimed")} == {bad_input, job}
    assert [e["job"] for e in node.events("gate_refuses")] == [gated]  # said once
    assert client.market.job(gated).reservedSlots == 0
    profiles = client.market.worker_profiles(KERNEL)
    (profile,) = [p for p in profiles if p.address.lower() == node_a.lower()]
    assert profile.ms_per_tile == 3000

    code, out, err = cli_json(
        home, "status", "--all", "--account", "node-a", "--data-dir", str(data)
    )
    assert code == 0, err
    status = json.loads(out)
    rows = {row["lease"]: row for row in status["leases"]}
    assert rows[lease_id]["state"] == "settled"
    assert rows[lease_id]["chainStatus"] == "settled"
    assert rows[lease_id]["paid"] == 4 * REWARD
    assert rows[failed["lease"]]["state"] == "lost"
    assert status["earned"] == 4 * REWARD
    assert status["pending"] >= 4 * REWARD
    assert {r["job"] for r in status["refused"]} == {garbage, wrong_spec, other_path, bad_input}

    state = NodeState(
        next((home.path.parent / "data-node-a" / "state").glob("*.sqlite")), readonly=True
    )
    try:
        own = {lease.lease_id: lease for lease in state.own_leases()}
        assert own[lease_id].state == "settled"
        assert int(own[lease_id].paid or 0) == 4 * REWARD
        assert own[failed["lease"]].state == "lost"
        assert {j.job_id: j.status for j in state.jobs()} == {
            garbage: "refused",
            wrong_spec: "refused",
            other_path: "refused",
            bad_input: "refused",
            job: "valid",
            gated: "valid",
        }
    finally:
        state.close()


def test_two_honest_replicas_pinned_to_the_job_plan_reveal_equal_roots(
    fresh_chain: Chain,
    home: Home,
    client: Client,
    assets: Assets,
    run_node: Callable[..., NodeProcess],
) -> None:
    stake(home, fresh_chain, "node-a")
    stake(home, fresh_chain, "node-b")
    job = client.post(assets.manifest1, 1, replication=2, lease_length=300)
    prior = ("--tile-seconds", f"{KERNEL}=3")
    nodes = [run_node("node-a", *prior, ipfs_index=0), run_node("node-b", *prior, ipfs_index=1)]
    leases = [node.wait_for("revealed", timeout=180)["lease"] for node in nodes]
    for node in nodes:
        pinned = node.wait_for("pinned")
        assert pinned["plan"] == assets.fft_plan
        assert node.wait_for("job_valid")["fft_plan"] == assets.fft_plan
    views = [client.market.lease(lease) for lease in leases]
    assert {(v.jobId, v.lane, v.tiles) for v in views} == {(job, 0, range(1)), (job, 1, range(1))}
    # Computed on two machines' worth of processes, independently: the same root, bit for bit.
    assert views[0].digest == views[1].digest
    for node, own, other in ((nodes[0], *leases), (nodes[1], *reversed(leases))):
        agrees = node.wait_for("replica_agrees", where=lambda e, o=other: e["other"] == o)
        assert agrees["lease"] == own
        assert "bit-identical" in agrees["message"]
    assert not client.market.contract.events.DisagreementProven().get_logs(from_block=0)

    fresh_chain.warp(int(fresh_chain.deployment.parameters["challengeWindow"]) + 1)
    client.market.settle(job, sorted(leases))
    for node, lease in zip(nodes, leases, strict=True):
        assert node.wait_for("paid", where=lambda e, le=lease: e["lease"] == le)["amount"] == REWARD
    for node in nodes:
        assert not node.errors()
