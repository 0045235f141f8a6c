"""Helpers of the render-node suite (imported by its conftest and tests): the client that posts
real encrypted jobs, homes with keystores, staked accounts, render nodes as processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from blindframe.coordinator.accounts import create_account, unlock
from blindframe.coordinator.manifest import ContentRef, Manifest
from blindframe.coordinator.market import Market
from blindframe.coordinator.store import IpfsStore
from blindframe.coordinator.tx import TxSender
from blindframe.fhe_core.kernels import client_spec_hash
from blindframe.fhe_core.merkle import leaf_depth

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from blindframe.deploy.ipfs import NodeHandle
    from tests.conftest import Chain

PASSWORD = "render node password"
KERNEL = "volume@1"
REWARD = 10**15  # wei per tile-replica


@dataclass
class Ipfs:
    """The client's IPFS node and three render nodes' ones, all connected to each other."""

    client: NodeHandle
    workers: list[NodeHandle]


@dataclass
class Assets:
    """Jobs encrypted with the session's volume@1 keys, uploaded to the client's IPFS node."""

    key_dir: Path
    public4: Any  # 16x16 frame: 4 tiles
    secrets4: Any
    manifest4: str
    public1: Any  # 8x8 frame: 1 tile
    secrets1: Any
    manifest1: str
    eval_keys: ContentRef
    input1: ContentRef
    client_api: str
    fft_plan: str  # chosen like a client does (fhe_core.plans.choose_plan), once a session

    def upload(self, data: bytes) -> str:
        """Add bytes to the client's node; their CID."""
        with IpfsStore(self.client_api) as store:
            return store.add_bytes(data).cid

    def manifest(
        self,
        public: Any,
        inputs: list[ContentRef],
        *,
        spec_hash: str | None = None,
        fft_plan: str | None = None,
    ) -> str:
        """Upload a manifest for ``public`` (optionally with a wrong client-spec hash, or another
        FFT plan than the session's)."""
        document = Manifest.create(
            kernel=KERNEL,
            client_spec_hash=client_spec_hash(KERNEL),
            leaf_depth=leaf_depth(KERNEL),
            job=public.to_json(),
            evaluation_keys=self.eval_keys,
            inputs=inputs,
            fft_plan=fft_plan or self.fft_plan,
        ).to_json()
        if spec_hash is not None:
            document["clientSpecHash"] = spec_hash
        return self.upload(json.dumps(document, sort_keys=True).encode())


@dataclass
class Client:
    """The artist: posts jobs and settles leases."""

    account: LocalAccount
    market: Market

    def post(
        self,
        manifest_cid: str,
        tiles: int,
        *,
        replication: int = 1,
        lease_length: int = 300,
        deadline_in: int = 2000,
    ) -> int:
        return self.market.post_job(
            manifest_cid=manifest_cid,
            kernel_id=KERNEL,
            tile_count=tiles,
            replication=replication,
            reward_per_tile_replica=REWARD,
            lease_length=lease_length,
            deadline=self.market.now() + deadline_in,
            priority=1,
            leaf_depth=leaf_depth(KERNEL),
        )


@dataclass
class Home:
    """A blindframe home with a deployment file, a keystore folder and a password file."""

    path: Path
    deployment: Path
    keystores: Path
    password_file: Path
    rpc_url: str

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BLINDFRAME_")}
        env["BLINDFRAME_HOME"] = str(self.path)
        return env

    def new_account(self, chain: Chain, name: str, eth: int = 10) -> str:
        """A keystore ``name`` funded with ``eth`` ether; its address."""
        entry = create_account(self.keystores, name, PASSWORD)
        tx = chain.w3.eth.send_transaction(
            {"from": chain.w3.eth.accounts[0], "to": entry.address, "value": eth * 10**18}  # type: ignore[typeddict-item]
        )
        chain.w3.eth.wait_for_transaction_receipt(tx)
        return entry.address

    def market(self, chain: Chain, name: str) -> Market:
        """The market with a sender for keystore ``name``."""

        account = unlock(self.keystores / f"{name}.json", PASSWORD)
        sender = TxSender(
            chain.w3, account, endpoint=chain.anvil.rpc_url, lock_dir=self.path / "nonces"
        )
        return Market(chain.w3, chain.deployment, sender=sender)


def make_home(root: Path, chain: Chain) -> Home:
    root.mkdir(parents=True, exist_ok=True)
    deployment = root / "deployment.json"
    chain.deployment.save(deployment)
    password_file = root / "password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    return Home(root, deployment, root / "keystores", password_file, chain.anvil.rpc_url)


def stake(home: Home, chain: Chain, name: str, *, capacity: int = 16, eth: int = 1) -> str:
    """A funded, staked render-node account ``name``; its address."""
    address = home.new_account(chain, name, eth=eth + 5)
    home.market(chain, name).stake(capacity, eth * 10**18)
    return address


@dataclass
class NodeProcess:
    """`blindframe worker run --json-log` in its own process; its log lines as dicts."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _seen: int = 0
    lines: list[dict[str, Any]] = field(default_factory=list)

    def read(self) -> list[dict[str, Any]]:
        """Every JSON log line so far."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        out = []
        for line in text.splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        self.lines = out
        return out

    def tail(self, n: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-n:])

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.read() if line.get("event") == name]

    def wait_for(
        self,
        event: str,
        *,
        timeout: float = 120.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
        count: int = 1,
    ) -> dict[str, Any]:
        """The ``count``-th log line of ``event`` (matching ``where``), waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events(event) if where is None or where(e)]
            if len(found) >= count:
                return found[count - 1]
            if self.process.poll() is not None:
                raise AssertionError(
                    f"node {self.name} exited ({self.process.returncode}) before {event!r}:\n"
                    + self.tail()
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"node {self.name}: no {event!r} in {timeout} s:\n" + self.tail()
                )
            time.sleep(0.2)

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL the node and the sandbox children it started (they run in their own
        sessions, so they would outlive it)."""
        children: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(self.process.pid).children(recursive=True)
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        self.process.wait(timeout=30)
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"node {self.name} did not exit:\n" + self.tail()) from None

    def errors(self) -> list[dict[str, Any]]:
        """Log lines of level error, and tracebacks (there should be none of the latter)."""
        return [line for line in self.read() if line.get("level") == "error"]
