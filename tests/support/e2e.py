"""Helpers of the end-to-end suites: the market of a render stack, `client render` run as the
artist in its own process, a job's leases, and the money checks (to the wei) every scenario
ends with."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from blindframe.client.jobdir import JobDir
from blindframe.coordinator.chain import connect
from blindframe.coordinator.deployment import Deployment
from blindframe.coordinator.manifest import Manifest
from blindframe.coordinator.market import LeaseView, Market
from blindframe.fhe_core.artist_jobs import JobSecrets, plain_frame
from blindframe.fhe_core.jobs import PublicJob

if TYPE_CHECKING:
    from web3 import Web3

    from support.render_stack import RenderStack

BPS = 10_000


def stack_market(stack: RenderStack) -> tuple[Web3, Market]:
    """The stack's chain and market (read-only)."""
    deployment = Deployment.load(Path(stack.info.deployment))
    w3 = connect(stack.info.rpc_url, expected_chain_id=deployment.chain_id)
    return w3, Market(w3, deployment)


def start_render(stack: RenderStack, out: Path, *args: str) -> subprocess.Popen[str]:
    """`blindframe --json client render` of the sample scene as the artist, in its own process
    (``args`` after the defaults: a later option wins)."""
    argv = [
        sys.executable, "-m", "blindframe", "--json", "client", "render",
        "--scene", "sample", "--kernel", "volume@1", "--reward", "0.001",
        "--lease-length", "10m", "--deadline", "1h", "--interval", "0.5",
        # Each test counts every wei of one job: follow-up jobs only where a test asks for them.
        "--retries", "0",
        "-o", str(out / "frame.png"), "--twin", str(out / "twin.png"), *args,
    ]  # fmt: skip
    return subprocess.Popen(
        argv, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish_render(
    stack: RenderStack, process: subprocess.Popen[str], timeout: float
) -> dict[str, Any]:
    """The render's JSON result (it must succeed within ``timeout`` seconds)."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"render timed out:\n{err[-3000:]}\n{stack.worker_logs()}") from None
    assert process.returncode == 0, f"{err[-3000:]}\n{stack.worker_logs()}"
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def job_leases(market: Market, job_id: int) -> list[tuple[int, LeaseView]]:
    """Every lease of the job (juror leases included), by id."""
    leases = []
    for lease_id in range(1, market.counts()[1] + 1):
        lease = market.lease(lease_id)
        if lease.jobId == job_id:
            leases.append((lease_id, lease))
    return leases


def withdraw(stack: RenderStack, name: str) -> int:
    """Withdraw keystore ``name``'s pending balance; returns the amount."""
    market = stack.market_as(name)
    assert market.sender is not None
    pending = market.pending_balance(market.sender.account.address)
    if pending:
        market.withdraw()
    return pending


def check_frame(result: dict[str, Any]) -> None:
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


def contract_books(market: Market, accounts: list[str], job_ids: list[int]) -> int:
    """What the market owes: stakes, unbonding and pending balances of ``accounts``, escrow."""
    owed = sum(market.job(j).escrow for j in job_ids)
    for address in accounts:
        info = market.worker(address)
        owed += info.stake + info.unbonding + market.pending_balance(address)
    return owed


def fraud_slash(params: dict[str, Any], worker_free_stake: int) -> int:
    """What a proven fraud on one tile costs its worker (a far result, a juror off the verdict,
    withheld data): slashBps of the tile's collateral, plus slashBps of the minimum stake taken
    from its free stake (as much as there is; the unbonding stake is not touched here)."""
    locked_part = int(params["collateralPerTile"]) * int(params["slashBps"]) // BPS
    extra = int(params["minStake"]) * int(params["slashBps"]) // BPS
    return locked_part + min(extra, worker_free_stake)


def bounty(params: dict[str, Any], slashed: int) -> int:
    """The share of a slash paid as a bounty (bountyBps)."""
    return slashed * int(params["bountyBps"]) // BPS


def warp_past(w3: Web3, timestamp: int) -> None:
    """Move the local chain's clock past ``timestamp`` (Anvil) and mine a block."""
    now = int(w3.eth.get_block("latest")["timestamp"])
    if now <= timestamp:
        w3.provider.make_request("evm_increaseTime", [timestamp - now + 1])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
