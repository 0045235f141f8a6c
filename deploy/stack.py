"""The local stack: Anvil and IPFS nodes on loopback, the contracts deployed, a state file.

`stack up` is idempotent: what already runs is reused, and the deployment is kept while Anvil's
persisted chain still holds the contract code. `stack down` stops everything it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from blindframe.coordinator.accounts import create_account, find_keystore, unlock
from blindframe.coordinator.chain import connect
from blindframe.coordinator.deployment import Deployment, bind
from blindframe.coordinator.errors import DeploymentError, KeystoreError
from blindframe.coordinator.store.client import IpfsStore
from blindframe.coordinator.tx import TxSender
from blindframe.deploy.anvil import ANVIL_CHAIN_ID, start_anvil
from blindframe.deploy.deployer import LOCAL_OVERRIDES, MARKET, deploy_market, market_parameters
from blindframe.deploy.ipfs.node import running_node, start_node, stop_node
from blindframe.deploy.processes import process_alive, stop_process

__all__ = ["DEPLOYER", "StackInfo", "fund", "stack_down", "stack_status", "stack_up"]

DEPLOYER = "local-deployer"
_STATE = "stack.json"


@dataclass
class StackInfo:
    """What runs: the chain, the IPFS nodes by name, and where the deployment file is."""

    home: str
    rpc_url: str
    chain_id: int
    anvil_pid: int
    anvil_create_time: float
    ipfs: dict[str, str] = field(default_factory=dict)  # name -> RPC API URL
    deployment: str = ""
    market: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the state file and --json output)."""
        return asdict(self)


def _stack_dir(home: Path) -> Path:
    return home / "stack"


def _read_state(home: Path) -> StackInfo | None:
    path = _stack_dir(home) / _STATE
    try:
        return StackInfo(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _write_state(home: Path, info: StackInfo) -> None:
    path = _stack_dir(home) / _STATE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info.to_dict(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def stack_status(home: Path) -> StackInfo | None:
    """The running stack of ``home``, or None when its chain is not running."""
    info = _read_state(home)
    if info is None or not process_alive(info.anvil_pid, info.anvil_create_time):
        return None
    return info


def _local_password(home: Path) -> str:
    """The local stack's keystore password, generated once and kept 0600 beside the stack."""
    path = _stack_dir(home) / "password"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text(encoding="utf-8").splitlines()[0]


def local_password_file(home: Path) -> Path:
    """The password file of the local stack's keystores."""
    _local_password(home)
    return _stack_dir(home) / "password"


def fund(rpc_url: str, address: str, wei: int) -> None:
    """Send ``wei`` from Anvil's first (unlocked) dev account: local chains only."""
    w3 = connect(rpc_url, expected_chain_id=ANVIL_CHAIN_ID)
    source = w3.eth.accounts[0]
    tx_hash = w3.eth.send_transaction({"from": source, "to": address, "value": wei})  # type: ignore[typeddict-item]
    w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)


def stack_up(
    home: Path,
    keystores: Path,
    *,
    rpc_port: int = 8545,
    ipfs_port: int = 5001,
    extra_ipfs: tuple[str, ...] = (),
    parameters: dict[str, int] | None = None,
    fresh: bool = False,
) -> StackInfo:
    """Start (or reuse) Anvil and the IPFS nodes, and deploy the market if it is not deployed.

    The client's IPFS node is named ``client`` (on ``ipfs_port``); ``extra_ipfs`` names more nodes
    (one per local render node) on free ports, all connected to each other.
    """
    stack_dir = _stack_dir(home)
    if fresh:
        stack_down(home)
        (stack_dir / "anvil" / "anvil-state.json").unlink(missing_ok=True)
        (home / "deployment.json").unlink(missing_ok=True)
    stack_dir.mkdir(parents=True, exist_ok=True)
    info = stack_status(home)
    if info is None:
        anvil = start_anvil(stack_dir / "anvil", port=rpc_port)
        proc_create = _create_time(anvil.pid)
        info = StackInfo(
            home=str(home),
            rpc_url=anvil.rpc_url,
            chain_id=ANVIL_CHAIN_ID,
            anvil_pid=anvil.pid,
            anvil_create_time=proc_create,
        )
        _write_state(home, info)
    for name, port in [("client", ipfs_port), *((n, 0) for n in extra_ipfs)]:
        node_dir = stack_dir / "ipfs" / name
        node = running_node(node_dir) or start_node(node_dir, api_port=port, detach=True)
        info.ipfs[name] = node.api_url
    _connect_ipfs(stack_dir, list(info.ipfs))
    info.deployment = str(home / "deployment.json")
    info.market = _ensure_deployed(home, keystores, info, parameters)
    _write_state(home, info)
    return info


def _create_time(pid: int) -> float:
    return float(psutil.Process(pid).create_time())


def _connect_ipfs(stack_dir: Path, names: list[str]) -> None:
    handles = [running_node(stack_dir / "ipfs" / n) for n in names]
    live = [h for h in handles if h is not None]
    for i, handle in enumerate(live):
        with IpfsStore(handle.api_url) as store:
            for other in live[i + 1 :]:
                store.connect(other.multiaddrs[0])


def _ensure_deployed(
    home: Path, keystores: Path, info: StackInfo, parameters: dict[str, int] | None
) -> str:
    path = home / "deployment.json"
    w3 = connect(info.rpc_url, expected_chain_id=ANVIL_CHAIN_ID)
    with contextlib.suppress(DeploymentError):
        existing = Deployment.load(path)
        bind(w3, existing, MARKET)
        return existing.address(MARKET)
    password = _local_password(home)
    try:
        keystore = find_keystore(keystores, DEPLOYER)
    except KeystoreError:
        keystore = create_account(keystores, DEPLOYER, password).path
    account = unlock(keystore, password)
    if w3.eth.get_balance(account.address) < 10**18:
        fund(info.rpc_url, account.address, 100 * 10**18)
    sender = TxSender(w3, account, endpoint=info.rpc_url)
    params = market_parameters({**LOCAL_OVERRIDES, **(parameters or {})})
    deployment = deploy_market(sender, params, rpc_url=info.rpc_url)
    deployment.save(path)
    return deployment.address(MARKET)


def stack_down(home: Path) -> list[str]:
    """Stop the chain and every IPFS node of ``home``; returns what was stopped."""
    stopped: list[str] = []
    info = _read_state(home)
    if info is not None and stop_process(info.anvil_pid, info.anvil_create_time):
        stopped.append(f"anvil (pid {info.anvil_pid})")
    ipfs_root = _stack_dir(home) / "ipfs"
    if ipfs_root.is_dir():
        for node_dir in sorted(p for p in ipfs_root.iterdir() if p.is_dir()):
            if stop_node(node_dir):
                stopped.append(f"ipfs node {node_dir.name}")
    if info is None and not stopped:
        return []
    (_stack_dir(home) / _STATE).unlink(missing_ok=True)
    return stopped
