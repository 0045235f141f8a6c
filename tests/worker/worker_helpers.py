"""Helpers of the render-node suite (imported by its conftest and tests): the client that posts
real encrypted jobs, homes with keystores, staked accounts (render nodes as processes:
``support.node_process.NodeProcess``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
