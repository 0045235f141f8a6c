"""`blindframe demo` run as a user runs it (a small frame, one render node), and its summary
checked against what happened: the gas against the chain's receipts, the bytes against the
artist's job directory, each node's earnings against the market, the PNG against the twin, and
nothing of the demo left running."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import psutil
import pytest
from PIL import Image
from support.e2e import contract_books, job_leases

from blindframe.client.jobdir import JobDir
from blindframe.coordinator.accounts import keystore_address
from blindframe.coordinator.chain import connect
from blindframe.coordinator.deployment import Deployment
from blindframe.coordinator.manifest import Manifest
from blindframe.coordinator.market import LeaseStatus, Market
from blindframe.deploy.anvil import start_anvil
from blindframe.fhe_core.artist_jobs import JobSecrets, plain_frame
from blindframe.fhe_core.jobs import PublicJob

if TYPE_CHECKING:
    from web3 import Web3

pytestmark = pytest.mark.slow  # minutes: `-m "not slow"` leaves it out while iterating

SIZE = 8  # one volume tile: the smallest frame the demo renders
ETH = 10**18
REWARD = 10**15  # the demo's --reward 0.001

SUMMARY = {
    "frame": r"frame +(\d+)x(\d+) px, (\d+) tiles x (\d+) replicas \(volume@1, .*\)",
    "decrypted": r"decrypted +(\S+) +\(plaintext twin: (\S+)\)",
    "wall": r"wall time +(\d+) s in all",
    "gas": r"gas +([\d,]+) in (\d+) transactions: ([\d,]+) per tile-replica, ([\d,]+) per tile "
    r"\(staking included\)",
    "bytes": r"bytes moved +uploaded ([\d,]+) \(evaluation keys, encrypted volume, manifest\); "
    r"results ([\d,]+) = ([\d,]+) per pixel verified",
    "node": r"(node-\d+) +earned (\d+\.\d{4}) ETH for (\d+) tiles \(pending withdrawal\)",
}


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def _summary(stdout: str) -> dict[str, list[tuple[str, ...]]]:
    """The summary's lines by kind, each as its regex groups (the render's own output, which
    shares stdout, matches none: its `frame` line has no size)."""
    found: dict[str, list[tuple[str, ...]]] = {}
    for line in stdout.splitlines():
        for kind, pattern in SUMMARY.items():
            match = re.fullmatch(pattern, line.strip())
            if match:
                found.setdefault(kind, []).append(match.groups())
    return found


def _gas_to(w3: Web3, market: str, first_block: int) -> tuple[int, int]:
    """(gas used, transactions) of the transactions to ``market`` from ``first_block`` on."""
    gas, count = 0, 0
    for number in range(first_block, int(w3.eth.block_number) + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            assert not isinstance(tx, bytes)
            if tx["to"] is not None and str(tx["to"]).lower() == market.lower():
                gas += int(w3.eth.get_transaction_receipt(tx["hash"])["gasUsed"])
                count += 1
    return gas, count


def test_the_demo_renders_and_its_summary_adds_up(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLINDFRAME_")}
    argv = [sys.executable, "-m", "blindframe", "demo", "--home", str(home)]
    argv += ["--size", str(SIZE), "--nodes", "1", "--replication", "1"]
    started = time.monotonic()
    run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
    took = time.monotonic() - started
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in home.glob("logs/*.log"))
    assert run.returncode == 0, f"{run.stderr[-3000:]}\n{logs}"
    assert "5/5 summary" in run.stderr

    # The demo stopped everything it started: the chain, the IPFS nodes, the render node.
    left = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if any(str(home) in part for part in process.info["cmdline"] or ()):
            left.append(process.info)
    assert not left, f"still running after the demo: {left}"

    summary = _summary(run.stdout)
    assert {k: len(v) for k, v in summary.items()} == {k: 1 for k in SUMMARY}, run.stdout
    ((width, height, tiles, replicas),) = summary["frame"]
    assert (int(width), int(height)) == (SIZE, SIZE)
    ((frame_png, twin_png),) = summary["decrypted"]
    ((wall,),) = summary["wall"]
    assert 0 < int(wall) <= took + 1

    # The frame: the PNG exists and equals the twin's pixel for pixel, and the decrypted frame
    # equals the plaintext twin recomputed here from the job's secrets.
    assert (Path(frame_png), Path(twin_png)) == (home / "frame.png", home / "twin.png")
    with Image.open(frame_png) as got, Image.open(twin_png) as want:
        assert got.size == (4 * SIZE, 4 * SIZE)  # the demo's --scale 4
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    (job_path,) = sorted((home / "jobs").glob("*-1"))
    job_dir = JobDir(job_path)
    raw_manifest = (job_dir.path / "manifest.json").read_bytes()
    manifest = Manifest.parse(raw_manifest)
    twin = plain_frame(
        PublicJob.from_json(manifest.job), JobSecrets.load(job_dir.path / "secrets.npz")
    )
    np.testing.assert_array_equal(np.load(job_dir.path / "frame.npy"), twin)

    # Bytes: what the artist uploaded (the manifest, the evaluation keys as its key directory
    # holds them, the encrypted inputs) and the verified results it downloaded.
    ((uploaded, results, per_pixel),) = summary["bytes"]
    evaluation_keys = (home / "keys" / "volume@1" / "evaluation.bundle").stat().st_size
    assert manifest.evaluation_keys.size == evaluation_keys
    assert _number(uploaded) == (
        len(raw_manifest) + evaluation_keys + sum(i.size for i in manifest.inputs)
    )
    downloaded = sum(p.stat().st_size for p in (job_dir.path / "outputs").iterdir())
    assert downloaded > 0
    assert (_number(results), _number(per_pixel)) == (downloaded, downloaded // SIZE**2)

    # Gas and earnings, against the chain the demo left (Anvil started again on its state).
    anvil = start_anvil(home / "stack" / "anvil")
    try:
        deployment = Deployment.load(home / "deployment.json")
        w3 = connect(anvil.rpc_url, expected_chain_id=deployment.chain_id)
        market = Market(w3, deployment)
        assert market.counts()[0] == 1
        job = market.job(1)
        assert (job.tileCount, job.replication) == (int(tiles), int(replicas))
        assert job.rewardPerTileReplica == REWARD
        assert job.escrow == 0
        leases = job_leases(market, 1)
        assert leases
        assert all(lease.state is LeaseStatus.SETTLED for _, lease in leases), leases
        slots = job.tileCount * job.replication
        assert sum(lease.count for _, lease in leases) == slots

        ((gas, txs, per_replica, per_tile),) = summary["gas"]
        measured, count = _gas_to(w3, market.address, deployment.deploy_block + 1)
        assert (_number(gas), int(txs)) == (measured, count)
        assert _number(per_replica) == measured // slots
        assert _number(per_tile) == measured // job.tileCount

        keystores = {p.stem: p for p in (home / "keystores").glob("*.json")}
        paid_tiles = 0
        for name, earned, done in summary["node"]:
            address = keystore_address(keystores[name])
            info = market.worker(address)
            pending = market.pending_balance(address)
            assert (
                int(done)
                == info.completed
                == sum(lease.count for _, lease in leases if lease.worker == address)
            )
            assert pending == info.completed * REWARD
            assert earned == f"{pending / ETH:.4f}"
            paid_tiles += int(done)
        assert paid_tiles == slots
        artist = keystore_address(keystores["artist"])
        accounts = [artist, *(keystore_address(keystores[n]) for n, _, _ in summary["node"])]
        assert w3.eth.get_balance(market.address) == contract_books(market, accounts, [1])
    finally:
        anvil.stop()


def test_the_demo_empties_its_own_home_and_refuses_another(tmp_path: Path) -> None:
    from blindframe._demo import DemoError, _empty_home

    # A previous run's home (marked, or from before the mark: its stack's password) is emptied.
    for mark in (".blindframe-demo", "stack/password"):
        home = tmp_path / mark.replace("/", "-")
        for path in (mark, "keystores/artist.json", "jobs/0xabc-1/job.json", "frame.png"):
            (home / path).parent.mkdir(parents=True, exist_ok=True)
            (home / path).write_text("a previous run")
        _empty_home(home)
        assert [p.name for p in home.iterdir()] == [".blindframe-demo"]

    # A directory the demo did not make is refused, in one line, and left as it was.
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("mine")
    with pytest.raises(DemoError, match="holds files the demo did not write"):
        _empty_home(foreign)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLINDFRAME_")}
    run = subprocess.run(
        [sys.executable, "-m", "blindframe", "demo", "--home", str(foreign)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode != 0
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("Error:"), line
    assert "choose a new or empty directory" in line, line
    assert [p.name for p in foreign.iterdir()] == ["todo.txt"]
