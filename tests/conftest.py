"""Shared pytest fixtures: a real Anvil chain with the market deployed by the project's own code.

Area-specific fixtures live in tests/<area>/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from eth_account import Account
from support.reliability import render as render_reliability

from blindframe.coordinator.artifacts import compile_contracts
from blindframe.coordinator.chain import connect
from blindframe.coordinator.deployment import Deployment, bind
from blindframe.coordinator.tx import ErrorDecoder, TxSender
from blindframe.deploy.anvil import AnvilHandle, start_anvil
from blindframe.deploy.deployer import LOCAL_OVERRIDES, MARKET, deploy_market, market_parameters

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3
    from web3.contract.contract import Contract


_EXIT_STATUS = pytest.StashKey[int]()


_TESTS = Path(__file__).resolve().parent


def _xdist_group(item: pytest.Item) -> str:
    parts = item.path.resolve().relative_to(_TESTS).parts
    if parts[0] == "e2e" and "shared_stack" not in getattr(item, "fixturenames", ()):
        return "/".join(parts)  # an end-to-end module that starts stacks of its own
    return parts[0]


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the marks into the test ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test` runs two workers, ``--dist loadgroup``) each area of the
    suite (a folder under tests/) runs on one worker: its session fixtures (key sets, IPFS
    nodes, the end-to-end render stack) are built once, not once per worker. End-to-end
    modules with stacks of their own are groups of their own, and the end-to-end groups, the
    longest, are handed out first, so no worker is left with one of them at the end."""
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_xdist_group(item)))
    items.sort(key=lambda item: not _xdist_group(item).startswith("e2e"))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Under ``--dist loadgroup`` an xdist worker sees each test's group in its id
    (``path::test@group``): refuse a run where it does not, rather than let every area's session
    fixtures be built on both workers (pytest 9.2 with xdist 3.8 did so, silently)."""
    if not getattr(session.config.option, "loadgroup", False) or not session.items:
        return
    lost = [item.nodeid for item in session.items if "@" not in item.nodeid]
    if lost:
        message = (
            f"pytest-xdist's loadgroup did not name the group of {len(lost)} tests "
            f"(first: {lost[0]}): this pytest and pytest-xdist do not work together; "
            "reinstall the versions pyproject.toml allows (make bootstrap)"
        )
        sys.stderr.write(message + "\n")  # the controller shows only an INTERNALERROR
        raise pytest.UsageError(message)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller writes the figures once every worker is done
    # tests/RELIABILITY.md from the figures the runs recorded (none recorded: left as it is).
    render_reliability()


def pytest_testnodedown(node: Any, error: object) -> None:
    """A worker that died (``make test`` then stops: --max-worker-restart=0) took its own story
    with it: a SIGKILL from the kernel's OOM killer prints nothing, and what a dying native
    library wrote went to the test's captured output. Say what the kernel and the memory say."""
    if error is None:
        return
    lines = [f"worker {node.gateway.id} died ({error}); the kernel's last ten minutes said:"]
    try:
        kernel = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10).stdout
        since = float(Path("/proc/uptime").read_text().split()[0]) - 600
    except (OSError, subprocess.SubprocessError) as exc:
        kernel, since = "", 0.0
        lines.append(f"(dmesg unreadable: {exc})")
    words = ("oom", "killed process", "segfault", "general protection", "trap")
    for line in kernel.splitlines():
        stamp = re.match(r"\[\s*(\d+\.\d+)\]", line)
        if stamp and float(stamp[1]) >= since and any(w in line.lower() for w in words):
            lines.append(line)
    with contextlib.suppress(OSError):
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        lines += [line for line in meminfo if line.startswith(("MemTotal", "MemAvailable"))]
    sys.stderr.write("\n".join(lines) + "\n")


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave with pytest's own exit status once bpy (Blender as a module) was loaded: a full
    session (CI, 2026-11-25) ended with failures yet exit status 0, while Blender's exit
    handlers ran ("Not freed memory blocks"); exiting here, after every report and every
    fixture's teardown, skips them so a failure can never read as a pass."""
    status = config.stash.get(_EXIT_STATUS, None)
    if status is not None and "bpy" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


@dataclass
class Chain:
    """A running Anvil with RenderMarket deployed, and helpers to make funded accounts."""

    anvil: AnvilHandle
    w3: Web3
    deployment: Deployment
    market: Contract
    decoder: ErrorDecoder

    def account(self, eth: int = 100) -> LocalAccount:
        """A fresh account funded with ``eth`` ether from Anvil's dev account."""
        account: LocalAccount = Account.create()
        tx = self.w3.eth.send_transaction(
            {"from": self.w3.eth.accounts[0], "to": account.address, "value": eth * 10**18}  # type: ignore[typeddict-item]
        )
        self.w3.eth.wait_for_transaction_receipt(tx)
        return account

    def sender(self, account: LocalAccount) -> TxSender:
        """A transaction sender for ``account`` that decodes the market's errors."""
        return TxSender(self.w3, account, endpoint=self.anvil.rpc_url, decoder=self.decoder)

    def warp(self, seconds: int) -> None:
        """Move the chain's clock forward and mine a block."""
        self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def now(self) -> int:
        """The latest block's timestamp."""
        return int(self.w3.eth.get_block("latest")["timestamp"])


def _deploy(anvil: AnvilHandle, overrides: dict[str, Any] | None = None) -> Chain:
    w3 = connect(anvil.rpc_url)
    artifacts = compile_contracts()
    decoder = ErrorDecoder([artifacts[MARKET].abi])
    deployer: LocalAccount = Account.create()
    tx = w3.eth.send_transaction(
        {"from": w3.eth.accounts[0], "to": deployer.address, "value": 10 * 10**18}  # type: ignore[typeddict-item]
    )
    w3.eth.wait_for_transaction_receipt(tx)
    sender = TxSender(w3, deployer, endpoint=anvil.rpc_url, decoder=decoder)
    params = market_parameters({**LOCAL_OVERRIDES, **(overrides or {})})
    deployment = deploy_market(sender, params, rpc_url=anvil.rpc_url, artifacts=artifacts)
    market = bind(w3, deployment, MARKET, artifacts)
    return Chain(anvil=anvil, w3=w3, deployment=deployment, market=market, decoder=decoder)


@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """One Anvil for the session with the market deployed (local-stack parameters)."""
    anvil = start_anvil(tmp_path_factory.mktemp("anvil"))
    try:
        yield _deploy(anvil)
    finally:
        anvil.stop()


@pytest.fixture
def fresh_chain(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Chain]:
    """A chain of its own, for tests that move its clock or count every wei (market parameters
    from a ``chain_overrides`` mark, over the local stack's)."""
    mark = request.node.get_closest_marker("chain_overrides")
    anvil = start_anvil(tmp_path / "anvil")
    try:
        yield _deploy(anvil, mark.kwargs if mark else None)
    finally:
        anvil.stop()


@dataclass
class VolumeJob:
    """A small encrypted ``volume@1`` job and the OUTPUT bundles of its first tiles."""

    key_dir: Path
    public: Any
    secrets: Any
    input_bundle: bytes
    eval_keys: bytes
    outputs: dict[int, bytes]


@pytest.fixture(scope="session")
def volume_job(tmp_path_factory: pytest.TempPathFactory) -> VolumeJob:
    """Keys, a 16x16 sample-scene job (4 tiles, no margin) and two computed tiles, made once."""
    from blindframe.fhe_core.artist_jobs import encrypt_volume_job
    from blindframe.fhe_core.client import KernelClient
    from blindframe.fhe_core.jobs import task_clear_args
    from blindframe.fhe_core.keys import export_evaluation_keys, generate_keys, read_evaluation_keys
    from blindframe.fhe_core.sample import SAMPLE_CAMERA, sample_volume
    from blindframe.fhe_core.server import run_tile

    key_dir = tmp_path_factory.mktemp("volume-keys")
    generate_keys("volume@1", key_dir)
    job = encrypt_volume_job(
        KernelClient("volume@1", key_dir), sample_volume(), SAMPLE_CAMERA, (16, 16), margin_tiles=0
    )
    eval_bytes = export_evaluation_keys("volume@1", key_dir)
    keys = read_evaluation_keys("volume@1", eval_bytes)
    outputs = {
        tile: run_tile(
            "volume@1", job.inputs[0], keys, task_clear_args(job.public, tile), tile_index=tile
        )
        for tile in (0, 1)
    }
    return VolumeJob(key_dir, job.public, job.secrets, job.inputs[0], eval_bytes, outputs)
