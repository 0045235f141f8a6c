"""The local stack: Anvil and IPFS nodes on loopback, the contracts deployed, a state file.

`stack up` is idempotent: what already runs is reused, what died is started again, and the
deployment is kept while Anvil's persisted chain still holds the contract code. Ports stay the
same from one `up` to the next (remembered in ``<home>/stack/ports.json``), so the deployment
file's RPC URL and a render node's IPFS API stay right across restarts. A failed `up` stops what
it started. `stack down` stops everything it started.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import secrets
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from blindframe.coordinator.config import LOCAL_STACK_IPFS, STACK_STATE
from blindframe.coordinator.errors import DeploymentError, KeystoreError
from blindframe.deploy.anvil import ANVIL_CHAIN_ID, start_anvil
from blindframe.deploy.errors import DeployError
from blindframe.deploy.ipfs.node import (
    NodeHandle,
    NodePortInUseError,
    running_node,
    start_node,
    stop_node,
)
from blindframe.deploy.processes import process_alive, stop_process

__all__ = [
    "DEFAULT_IPFS_PORT",
    "DEFAULT_RPC_PORT",
    "DEPLOYER",
    "StackInfo",
    "fund",
    "stack_down",
    "stack_report",
    "stack_status",
    "stack_up",
]

DEPLOYER = "local-deployer"
DEFAULT_RPC_PORT = 8545
DEFAULT_IPFS_PORT = 5001
_STATE = STACK_STATE.name  # <home>/stack/stack.json, which coordinator.config reads too
_PORTS = "ports.json"  # ports (and node names) of the last `up`: `stack down` keeps it
_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


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


def stack_report(home: Path) -> dict[str, Any]:
    """What of ``home``'s stack runs, checked now: the state as `stack up` wrote it, plus
    ``running`` (the chain and every IPFS node), ``chain_running`` and ``ipfs_down`` (names of
    nodes not running). ``{"running": False}`` when nothing was started or all was stopped."""
    state = _read_state(home)
    ipfs_root = _stack_dir(home) / "ipfs"
    nodes = dict(state.ipfs) if state is not None else {}
    if ipfs_root.is_dir():
        for node_dir in sorted(p for p in ipfs_root.iterdir() if p.is_dir()):
            handle = running_node(node_dir)
            if handle is not None:
                nodes[node_dir.name] = handle.api_url
    down = sorted(name for name in nodes if running_node(ipfs_root / name) is None)
    chain_running = state is not None and process_alive(state.anvil_pid, state.anvil_create_time)
    if not chain_running and len(down) == len(nodes):
        return {"running": False}
    report: dict[str, Any] = state.to_dict() if state is not None else {"home": str(home)}
    report.update(
        ipfs=nodes, running=chain_running and not down, chain_running=chain_running, ipfs_down=down
    )
    return report


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
    from blindframe.coordinator.chain import connect

    w3 = connect(rpc_url, expected_chain_id=ANVIL_CHAIN_ID)
    source = w3.eth.accounts[0]
    tx_hash = w3.eth.send_transaction({"from": source, "to": address, "value": wei})  # type: ignore[typeddict-item]
    w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)


def stack_up(
    home: Path,
    keystores: Path,
    *,
    rpc_port: int | None = None,
    ipfs_port: int | None = None,
    extra_ipfs: tuple[str, ...] = (),
    parameters: dict[str, int] | None = None,
    fresh: bool = False,
) -> StackInfo:
    """Start (or reuse) Anvil and the IPFS nodes, and deploy the market if it is not deployed.

    The client's IPFS node is named ``client`` (on ``ipfs_port``); ``extra_ipfs`` names more nodes
    (one per local render node), all connected to each other. A port left out is the one this
    home's stack used last (then 8545 and 5001; a free one for extra nodes); every node named
    before is started again. A port that another process holds is refused before anything
    starts; a failure on the way stops what this call started.
    """
    _check_node_names(extra_ipfs)
    stack_dir = _stack_dir(home)
    if fresh:
        stack_down(home)
        (stack_dir / "anvil" / "anvil-state.json").unlink(missing_ok=True)
        (stack_dir / _PORTS).unlink(missing_ok=True)
        (home / "deployment.json").unlink(missing_ok=True)
    stack_dir.mkdir(parents=True, exist_ok=True)
    info = stack_status(home)
    want_rpc, want_ipfs, last_ipfs = _plan_ports(home, info, rpc_port, ipfs_port)
    names = list(dict.fromkeys([LOCAL_STACK_IPFS, *last_ipfs, *extra_ipfs]))
    undo: list[Callable[[], object]] = []
    try:
        if info is None:
            anvil = start_anvil(stack_dir / "anvil", port=want_rpc)
            undo.append(anvil.stop)
            info = StackInfo(
                home=str(home),
                rpc_url=anvil.rpc_url,
                chain_id=ANVIL_CHAIN_ID,
                anvil_pid=anvil.pid,
                anvil_create_time=_create_time(anvil.pid),
            )
        info.ipfs = {}
        for name in names:
            node_dir = stack_dir / "ipfs" / name
            node = running_node(node_dir)
            if node is None:
                port = want_ipfs if name == LOCAL_STACK_IPFS else _free_or_any(last_ipfs.get(name))
                node = _start_ipfs(node_dir, name, port)
                undo.append(node.stop)
            info.ipfs[name] = node.api_url
        _connect_ipfs(stack_dir, list(info.ipfs))
        info.deployment = str(home / "deployment.json")
        info.market = _ensure_deployed(home, keystores, info, parameters)
    except BaseException:
        for step in reversed(undo):
            with contextlib.suppress(Exception):
                step()
        if info is not None and not process_alive(info.anvil_pid, info.anvil_create_time):
            (stack_dir / _STATE).unlink(missing_ok=True)
        raise
    _write_state(home, info)
    _write_ports(home, info)
    return info


def _check_node_names(extra_ipfs: tuple[str, ...]) -> None:
    """Render nodes' IPFS node names: not the artist's, and safe as folder names."""
    for name in extra_ipfs:
        if name == LOCAL_STACK_IPFS:
            raise DeployError(
                f"--ipfs-node {name}: that is the artist's node, which `stack up` always starts",
                hint="name a render node's IPFS node like its account, e.g. --ipfs-node node-1",
            )
        if not _NODE_NAME.fullmatch(name):
            raise DeployError(
                f"--ipfs-node {name!r} is not a node name: use letters, digits, '.', '_' and '-'"
            )


def _plan_ports(
    home: Path, info: StackInfo | None, rpc_port: int | None, ipfs_port: int | None
) -> tuple[int, int, dict[str, Any]]:
    """The chain's and the client IPFS node's ports for this `up` (asked, else last used, else
    the defaults), and the ports every IPFS node used last; refused before anything starts when
    a running part sits elsewhere or a port is taken."""
    last = _read_ports(home)
    client = running_node(_stack_dir(home) / "ipfs" / LOCAL_STACK_IPFS)
    if info is not None:
        _same_port(home, "chain (Anvil)", _port_of(info.rpc_url), rpc_port, "--rpc-port")
    if client is not None:
        _same_port(home, "client IPFS node", client.api_port, ipfs_port, "--ipfs-port")
    want_rpc = rpc_port if rpc_port is not None else int(last.get("rpc", DEFAULT_RPC_PORT))
    recorded = last.get("ipfs")
    last_ipfs: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    want_ipfs = (
        ipfs_port
        if ipfs_port is not None
        else int(last_ipfs.get(LOCAL_STACK_IPFS, DEFAULT_IPFS_PORT))
    )
    if info is None:
        _require_free(want_rpc, "--rpc-port", "Anvil's JSON-RPC API")
    if client is None:
        if info is None and want_ipfs == want_rpc:
            raise DeployError(
                f"--rpc-port and --ipfs-port are both {want_rpc}", hint="give them different ports"
            )
        _require_free(want_ipfs, "--ipfs-port", "the client IPFS node's API")
    return want_rpc, want_ipfs, last_ipfs


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def _same_port(home: Path, what: str, running: int, asked: int | None, flag: str) -> None:
    """A second `up` may not move what already runs to another port."""
    if asked is not None and asked != running:
        raise DeployError(
            f"the {what} of {home}'s local stack already runs on port {running}, not {asked}",
            hint=f"leave {flag} out to reuse it, or move it: `blindframe stack down`, then "
            f"`blindframe stack up {flag} {asked}`",
        )


def _require_free(port: int, flag: str, what: str) -> None:
    """Refuse a port another process listens on (another home's Anvil would answer there)."""
    if not 0 < port <= 65535:
        raise DeployError(f"{flag} must be a port number 1..65535 (not {port})")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return
        except OSError:
            pass
    who, home = _listener(port)
    stop = f"`blindframe stack down --home {home}`" if home else f"stop what listens on {port}"
    raise DeployError(
        f"port {port} on 127.0.0.1 is taken by {who}: {what} cannot listen there",
        hint=f"pass {flag} with a free port, or {stop}",
    )


def _listener(port: int) -> tuple[str, Path | None]:
    """Who listens on ``port``, in words, and the home when it is another local stack's."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return "another process", None
    for conn in connections:
        if conn.status != psutil.CONN_LISTEN or conn.laddr.port != port or conn.pid is None:
            continue
        try:
            argv = psutil.Process(conn.pid).cmdline()
        except psutil.Error:
            break
        for flag in ("--state", "--data-dir"):  # Anvil's state file, an IPFS node's folder
            if flag in argv[:-1]:
                parts = Path(argv[argv.index(flag) + 1]).parts
                if "stack" in parts:  # <home>/stack/anvil/... or <home>/stack/ipfs/<name>
                    home = Path(*parts[: len(parts) - parts[::-1].index("stack") - 1])
                    kind = "Anvil" if flag == "--state" else "an IPFS node"
                    return f"{kind} of the local stack of {home} (pid {conn.pid})", home
        name = Path(argv[0]).name if argv else "a process"
        return f"{name} (pid {conn.pid})", None
    return "another process", None


def _free_or_any(port: object) -> int:
    """``port`` when it is a remembered port still free, else 0 (the node picks a free one)."""
    if not isinstance(port, int) or not 0 < port <= 65535:
        return 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def _start_ipfs(node_dir: Path, name: str, port: int) -> NodeHandle:
    """Start one IPFS node detached; a taken port names the option that chose it."""
    try:
        return start_node(node_dir, api_port=port, detach=True)
    except NodePortInUseError as exc:
        if name != LOCAL_STACK_IPFS:
            raise
        raise DeployError(
            f"port {port} on 127.0.0.1 is taken: the client IPFS node cannot serve its API there",
            hint="pass --ipfs-port with a free port, or stop what listens on it",
        ) from exc


def _read_ports(home: Path) -> dict[str, Any]:
    try:
        document = json.loads((_stack_dir(home) / _PORTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def _write_ports(home: Path, info: StackInfo) -> None:
    ports = {
        "rpc": _port_of(info.rpc_url),
        "ipfs": {name: _port_of(url) for name, url in info.ipfs.items()},
    }
    path = _stack_dir(home) / _PORTS
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(ports, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _create_time(pid: int) -> float:
    return float(psutil.Process(pid).create_time())


def _connect_ipfs(stack_dir: Path, names: list[str]) -> None:
    from blindframe.coordinator.store.client import IpfsStore

    handles = [running_node(stack_dir / "ipfs" / n) for n in names]
    live = [h for h in handles if h is not None]
    for i, handle in enumerate(live):
        with IpfsStore(handle.api_url) as store:
            for other in live[i + 1 :]:
                store.connect(other.multiaddrs[0])


def _ensure_deployed(
    home: Path, keystores: Path, info: StackInfo, parameters: dict[str, int] | None
) -> str:
    # Imported here: web3, eth_account and the compiler take seconds to import, and `stack
    # status` / `stack down` need none of them.
    from blindframe.coordinator.accounts import create_account, find_keystore, unlock
    from blindframe.coordinator.chain import connect
    from blindframe.coordinator.deployment import Deployment, bind
    from blindframe.coordinator.tx import TxSender
    from blindframe.deploy.deployer import (
        LOCAL_OVERRIDES,
        MARKET,
        deploy_market,
        market_parameters,
    )

    path = home / "deployment.json"
    w3 = connect(info.rpc_url, expected_chain_id=ANVIL_CHAIN_ID)
    with contextlib.suppress(DeploymentError):
        existing = Deployment.load(path)
        bind(w3, existing, MARKET)
        if existing.rpc_url != info.rpc_url:  # the chain came back on another port
            dataclasses.replace(existing, rpc_url=info.rpc_url).save(path)
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
