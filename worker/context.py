"""What every worker command opens: the account, the chain and market, the node's files.

The node's data directory (``--data-dir``, default ``<home>/worker/<address>``) holds::

    state/<chainId>-<market>.sqlite   the node's state and event index (worker/state.py)
    runtime.sqlite                    measured compute time per kernel (RuntimeModel)
    cache/keys/                       evaluation keys by CID (KeyCache)
    cache/inputs/                     encrypted inputs by CID
    results/<chainId>-<market>/       lease result files (also pinned on the node's IPFS node)
    work/                             the sandbox's per-lease output folders
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eth_utils.address import is_hex_address, to_checksum_address

from blindframe.coordinator.accounts import find_keystore, unlock
from blindframe.coordinator.chain import connect
from blindframe.coordinator.cli_support import password
from blindframe.coordinator.deployment import Deployment
from blindframe.coordinator.errors import KeystoreError
from blindframe.coordinator.market import Market
from blindframe.coordinator.tx import TxSender
from blindframe.worker.errors import NodeOptionError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from blindframe.coordinator.config import Settings

__all__ = [
    "NodePaths",
    "account_keystore",
    "default_data_dir",
    "node_paths",
    "open_market",
    "read_only_account",
    "unlock_account",
]


@dataclass(frozen=True)
class NodePaths:
    """Where a node keeps its files for one deployment."""

    data_dir: Path
    state_db: Path
    runtime_db: Path
    keys: Path
    inputs: Path
    results: Path
    work: Path


def default_data_dir(home: Path, address: str) -> Path:
    """``<home>/worker/<address>`` (lower case)."""
    return home / "worker" / address.lower()


def node_paths(data_dir: Path, chain_id: int, market: str) -> NodePaths:
    """The files of a node in ``data_dir`` for the market ``market`` on chain ``chain_id``."""
    tag = f"{chain_id}-{market.lower()}"
    return NodePaths(
        data_dir=data_dir,
        state_db=data_dir / "state" / f"{tag}.sqlite",
        runtime_db=data_dir / "runtime.sqlite",
        keys=data_dir / "cache" / "keys",
        inputs=data_dir / "cache" / "inputs",
        results=data_dir / "results" / tag,
        work=data_dir / "work",
    )


def account_keystore(cfg: Settings) -> tuple[str, Path]:
    """(checksum address, keystore file) of ``--account``, without asking for the password."""
    if not cfg.account:
        raise KeystoreError(
            "no account given",
            hint="pass --account NAME|ADDRESS|FILE or set BLINDFRAME_ACCOUNT "
            "(`blindframe account list` shows yours)",
        )
    path = find_keystore(cfg.keystores, cfg.account)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        raw = str(document["address"])
    except (OSError, ValueError, KeyError, TypeError):
        raise KeystoreError(f"{path} is not an Ethereum keystore (no address)") from None
    address = "0x" + raw.removeprefix("0x")
    if not is_hex_address(address):
        raise KeystoreError(f"{path} holds no valid address")
    return to_checksum_address(address), path


def read_only_account(cfg: Settings, address: str | None) -> tuple[str, Path | None]:
    """(checksum address, keystore file or None) for a read-only command: ``address`` (from
    --address) as given, without any keystore, else --account's keystore."""
    if address is None:
        return account_keystore(cfg)
    if not is_hex_address(address):
        raise NodeOptionError(
            f"--address must be a 20-byte hex address such as 0x5FbD...0aa3 (not {address!r})",
            hint="`blindframe account list` shows your accounts' addresses",
        )
    return to_checksum_address(address), None


def unlock_account(cfg: Settings) -> LocalAccount:
    """The node's signing account, decrypted with the password file or a prompt."""
    address, path = account_keystore(cfg)
    return unlock(path, password(cfg, prompt=f"Password for {address}"))


def open_market(cfg: Settings, account: LocalAccount | None = None) -> Market:
    """The market of the deployment file on ``cfg.rpc_url`` (with a sender for ``account``)."""
    deployment = Deployment.load(cfg.deployment_path)
    w3 = connect(cfg.rpc_url, expected_chain_id=deployment.chain_id)
    sender = None
    if account is not None:
        sender = TxSender(w3, account, endpoint=cfg.rpc_url, lock_dir=cfg.home / "nonces")
    return Market(w3, deployment, sender=sender)
