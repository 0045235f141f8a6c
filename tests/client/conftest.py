"""Fixtures of the client suite: real IPFS nodes, one key set made by `client keygen`, artist
homes on a real chain, and a render node played through the market by the test itself."""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from eth_account import Account

from blindframe.client.artist import Artist
from blindframe.coordinator.accounts import import_private_key
from blindframe.coordinator.config import Settings
from blindframe.coordinator.manifest import Manifest
from blindframe.coordinator.market import Market
from blindframe.coordinator.results import LeaseResult, pack_lease_result
from blindframe.coordinator.store import IpfsStore
from blindframe.deploy.ipfs import NodeHandle, start_node

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from tests.conftest import Chain

PASSWORD = "correct horse battery"
KERNEL = "volume@1"


@pytest.fixture(scope="session")
def ipfs_client_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeHandle]:
    """The artist's IPFS node."""
    handle = start_node(tmp_path_factory.mktemp("client-ipfs"))
    yield handle
    handle.stop()
    shutil.rmtree(handle.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ipfs_worker_node(
    tmp_path_factory: pytest.TempPathFactory, ipfs_client_node: NodeHandle
) -> Iterator[NodeHandle]:
    """A render node's own IPFS node, connected to the artist's over libp2p."""
    handle = start_node(tmp_path_factory.mktemp("worker-ipfs"))
    with IpfsStore(handle.api_url) as store:
        store.connect(ipfs_client_node.multiaddrs[0])
    yield handle
    handle.stop()
    shutil.rmtree(handle.data_dir, ignore_errors=True)


def run_cli(args: Sequence[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run `blindframe ARGS` in this process, through the root group's real error handling,
    with the given BLINDFRAME_* environment; returns (exit code, stdout, stderr)."""
    from blindframe._cli import main

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return code, out.getvalue(), err.getvalue()


def one_line_error(code: int, err: str) -> str:
    """The single `Error: ...` line a failed command must print (no traceback)."""
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.fixture(scope="session")
def keys_home(tmp_path_factory: pytest.TempPathFactory, ipfs_client_node: NodeHandle) -> Path:
    """A home whose volume@1 key set was made by `blindframe client keygen --upload`."""
    home = tmp_path_factory.mktemp("keys-home")
    code, out, err = run_cli(
        ["--json", "client", "keygen", "--upload"],
        {"BLINDFRAME_HOME": str(home), "BLINDFRAME_IPFS_API": ipfs_client_node.api_url},
    )
    assert code == 0, err
    (made,) = json.loads(out)
    assert made["created"] is True
    return home


@dataclass
class Home:
    """An artist's home: keys, deployment file, a funded keystore, settings pointing at it all."""

    path: Path
    account: LocalAccount
    password_file: Path
    settings: Settings

    @property
    def env(self) -> dict[str, str]:
        """The BLINDFRAME_* variables of a CLI run in this home."""
        return {
            "BLINDFRAME_HOME": str(self.path),
            "BLINDFRAME_RPC_URL": self.settings.rpc_url,
            "BLINDFRAME_IPFS_API": self.settings.ipfs_api,
            "BLINDFRAME_ACCOUNT": "artist",
            "BLINDFRAME_PASSWORD_FILE": str(self.password_file),
        }

    def artist(self, **kwargs: Any) -> Artist:
        """The library on this home, signing with the artist's account."""
        return Artist(self.settings, account=self.account, **kwargs)


@pytest.fixture
def make_home(
    tmp_path: Path, keys_home: Path, ipfs_client_node: NodeHandle, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Home]:
    """Make an artist home on ``chain`` with the session's key set and ``wei`` to spend."""
    monkeypatch.chdir(tmp_path)  # no ./blindframe.toml from the checkout
    monkeypatch.delenv("BLINDFRAME_CONFIG", raising=False)

    def make(chain: Chain, wei: int = 10 * 10**18, name: str = "home") -> Home:
        home = tmp_path / name
        home.mkdir()
        shutil.copytree(keys_home / "keys", home / "keys")
        chain.deployment.save(home / "deployment.json")
        account: LocalAccount = Account.create()
        tx = chain.w3.eth.send_transaction(
            {"from": chain.w3.eth.accounts[0], "to": account.address, "value": wei}  # type: ignore[typeddict-item]
        )
        chain.w3.eth.wait_for_transaction_receipt(tx)
        password_file = tmp_path / f"{name}-password"
        password_file.write_text(PASSWORD + "\n")
        import_private_key(home / "keystores", "artist", account.key.hex(), PASSWORD)
        settings = Settings(
            home=home,
            rpc_url=chain.anvil.rpc_url,
            ipfs_api=ipfs_client_node.api_url,
            deployment=home / "deployment.json",
            account="artist",
            password_file=password_file,
        )
        return Home(home, account, password_file, settings)

    return make


class RenderNode:
    """A staked render node whose every step the test drives through the market itself:
    claim, compute with ``fhe_core.server.run_tile``, pack, upload to its own IPFS node, commit,
    reveal (honestly, or with a tampered file)."""

    def __init__(self, chain: Chain, store: IpfsStore, capacity: int = 64) -> None:
        self.chain = chain
        self.store = store
        self.account = chain.account()
        self.market = Market(chain.w3, chain.deployment, sender=chain.sender(self.account))
        self.market.stake(capacity, int(chain.deployment.parameters["minStake"]))

    @property
    def address(self) -> str:
        return str(self.account.address)

    def manifest(self, job_id: int) -> Manifest:
        """Fetch and validate the job's manifest, as a node does from JobPosted."""
        events = self.market.contract.events.JobPosted().get_logs(
            from_block=0, argument_filters={"jobId": job_id}
        )
        cid = bytes(events[0]["args"]["manifestCid"]).decode()
        return Manifest.parse(self.store.cat(cid))

    def compute(self, job_id: int, tiles: Sequence[int]) -> dict[int, bytes]:
        """Fetch keys and input over IPFS and run the tiles (what a node's sandbox child does)."""
        from blindframe.fhe_core.jobs import PublicJob, task_clear_args
        from blindframe.fhe_core.keys import read_evaluation_keys
        from blindframe.fhe_core.server import run_tile

        manifest = self.manifest(job_id)
        public = PublicJob.from_json(manifest.job)
        keys = read_evaluation_keys(
            manifest.kernel, self.store.cat(manifest.evaluation_keys.cid, max_size=1 << 30)
        )
        out = {}
        for tile in tiles:
            bundle = self.store.cat(manifest.input_for(tile).cid)
            out[tile] = run_tile(
                manifest.kernel, bundle, keys, task_clear_args(public, tile), tile_index=tile
            )
        return out

    def claim(self, job_id: int, first_tile: int, count: int, lane: int = 0) -> int:
        lease_id, _ = self.market.claim(job_id, lane, first_tile, count)
        return lease_id

    def commit(
        self, job_id: int, lease_id: int, first_tile: int, outputs: Sequence[bytes]
    ) -> tuple[LeaseResult, bytes]:
        """Pack and commit; returns the result and the salt to reveal with."""
        from blindframe.fhe_core.merkle import leaf_depth

        result = pack_lease_result(
            kernel=KERNEL,
            job_id=job_id,
            lease_id=lease_id,
            first_tile=first_tile,
            leaf_depth=leaf_depth(KERNEL),
            outputs=outputs,
        )
        salt = secrets.token_bytes(32)
        self.market.commit(lease_id, self.market.commitment(result.root, self.address, salt))
        return result, salt

    def reveal(
        self, lease_id: int, result: LeaseResult, salt: bytes, *, tamper: str | None = None
    ) -> str:
        """Upload the result file to this node's IPFS and reveal. ``tamper="coefficient"``
        uploads bytes that differ from the committed ones (one ciphertext coefficient changed);
        ``tamper="framing"`` changes the last byte of the last tile's serialized value, which
        the Merkle root does not cover (the coefficients still give the committed root)."""
        data = bytearray(result.to_bytes())
        if tamper == "coefficient":
            data[len(data) - len(result.outputs[-1]) // 2] ^= 0x01
        elif tamper == "framing":
            data[-1] ^= 0x01
        cid = self.store.add_bytes(bytes(data), name=f"lease-{lease_id}.bflr").cid
        self.market.reveal(lease_id, result.root, cid, salt)
        return cid


def relabel(output: bytes, tile: int) -> bytes:
    """The same ciphertext in an OUTPUT bundle labelled for another tile: a valid bundle whose
    decryption is the wrong tile's pixels (what a lazy node that copies a neighbour sends)."""
    from blindframe.fhe_core import wire
    from blindframe.fhe_core.kernels import client_spec_hash, expected_outputs, get_kernel

    bundle = wire.read_bundle(
        output,
        kind=wire.BundleKind.OUTPUT,
        kernel_id=KERNEL,
        spec_hash=client_spec_hash(KERNEL),
        expected=expected_outputs(KERNEL),
    )
    value = bundle.values[0]
    return wire.write_bundle(
        wire.BundleKind.OUTPUT,
        KERNEL,
        client_spec_hash(KERNEL),
        [wire.ValueEntry(value.name, get_kernel(KERNEL).out_shape, bytes(value.data))],
        tile,
    )


@pytest.fixture
def worker_store(ipfs_worker_node: NodeHandle) -> Iterator[IpfsStore]:
    """The render node's IPFS client."""
    with IpfsStore(ipfs_worker_node.api_url, retry_for=5.0, find_timeout=30.0) as store:
        yield store
