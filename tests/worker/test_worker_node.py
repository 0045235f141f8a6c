"""A render node as a real process against real Anvil, IPFS and Concrete: it finds a posted job,
claims, computes in the sandbox, commits, reveals a result that opens against its root and
decrypts to the plaintext twin; it refuses bad jobs without crashing and is paid."""

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
from blindframe.fhe_core.client import KernelClient
from blindframe.fhe_core.jobs import decrypt_job, plain_frame
from blindframe.fhe_core.merkle import leaf_depth
from blindframe.worker.state import NodeState

if TYPE_CHECKING:
    from collections.abc import Callable

    from worker_helpers import Assets, Client, Home, Ipfs, NodeProcess

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
    stake(home, fresh_chain, "node-a")
    # Bad jobs first: a manifest that is not JSON, one compiled for other client specs, and one
    # whose input is garbage of the declared size (it fails inside the sandbox).
    garbage = client.post(assets.upload(b"this is not a manifest"), 1)
    wrong_spec = client.post(
        assets.manifest(assets.public1, [assets.input1], spec_hash="ab" * 32), 1
    )
    junk = assets.upload(bytes(assets.input1.size))
    bad_input = client.post(
        assets.manifest(assets.public1, [ContentRef(junk, assets.input1.size)]), 1
    )
    data = home.path.parent / "data-node-a"
    node = run_node("node-a", "--tile-seconds", f"{KERNEL}=3", "--max-idle", "3", data_dir=data)
    node.wait_for("job_refused", count=2)
    refused = {e["job"]: e["reason"] for e in node.events("job_refused")}
    assert "not JSON" in refused[garbage]
    assert "client-spec hash" in refused[wrong_spec]
    failed = node.wait_for("lease_failed", timeout=120)
    assert "failed in the child" in failed["reason"]
    node.wait_for("job_refused", where=lambda e: e["job"] == bad_input)

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
    assert {r["job"] for r in status["refused"]} == {garbage, wrong_spec, bad_input}

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
            bad_input: "refused",
            job: "valid",
        }
    finally:
        state.close()
