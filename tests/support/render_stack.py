"""A real local render stack for the artist-tool suites (the Blender add-on and the dashboard):
Anvil and IPFS started by ``deploy.stack.stack_up`` in a temporary home, the artist's funded
keystore and volume@1 keys, and staked render nodes run as real ``blindframe worker run``
processes, each with its own IPFS node."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from blindframe.client.artist import Artist
from blindframe.coordinator.accounts import create_account, read_password_file, unlock
from blindframe.coordinator.chain import connect
from blindframe.coordinator.config import Settings
from blindframe.coordinator.deployment import Deployment
from blindframe.coordinator.market import Market
from blindframe.coordinator.tx import TxSender
from blindframe.deploy.ipfs.node import stop_node
from blindframe.deploy.processes import free_port
from blindframe.deploy.stack import StackInfo, fund, local_password_file, stack_down, stack_up
from support.node_process import NodeProcess

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

KERNEL = "volume@1"
ARTIST = "artist"
# Replication 1 has no replica to compare: a short challenge window keeps each render short
# (the local stack's 60 s leave nodes time to prove disagreements at replication 2 and more).
WINDOWS = {"challengeWindow": 10, "acceptanceWindow": 60}


@dataclass
class RenderStack:
    """The running stack: the artist's home and settings, render nodes, and how to stop it all."""

    home: Path
    info: StackInfo
    settings: Settings
    password_file: Path
    workers: list[NodeProcess] = field(default_factory=list)
    accounts: dict[str, str] = field(default_factory=dict)  # staked keystores: name -> address
    kernels: tuple[str, ...] = (KERNEL,)  # what the render nodes run

    @property
    def env(self) -> dict[str, str]:
        """The BLINDFRAME_* environment of a command run as the artist."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BLINDFRAME_")}
        env.update(
            BLINDFRAME_HOME=str(self.home),
            BLINDFRAME_RPC_URL=self.info.rpc_url,
            BLINDFRAME_IPFS_API=self.info.ipfs["client"],
            BLINDFRAME_ACCOUNT=ARTIST,
            BLINDFRAME_PASSWORD_FILE=str(self.password_file),
        )
        return env

    def artist(self) -> Artist:
        """The client library on the artist's home (unlocks the keystore when it signs)."""
        return Artist(self.settings)

    def worker_logs(self) -> str:
        """The last lines of every node's log (for assertion messages)."""
        return "\n".join(f"--- {w.name}\n{w.tail()}" for w in self.workers)

    def add_node(
        self,
        name: str,
        *,
        capacity: int = 2,
        tile_seconds: float = 4.0,
        fault: str | None = None,
        ipfs_name: str | None = None,
        stake: int | None = None,
        rpc_url: str | None = None,
        limit_file_bytes: int | None = None,
        kernels: tuple[str, ...] | None = None,
    ) -> NodeProcess:
        """A funded, staked render node running as `blindframe worker run` (``fault``: the
        hidden test-only misbehaviour, e.g. ``lazy``). Its IPFS node is ``ipfs_name`` (default:
        the stack's node of the same name). ``stake``: wei staked (default the minimum stake);
        jurors are drawn with probabilities proportional to stakes. ``rpc_url`` and
        ``limit_file_bytes``: see :meth:`start_node`."""
        self.staked_account(name, capacity=capacity, stake=stake)
        return self.start_node(
            name,
            tile_seconds=tile_seconds,
            fault=fault,
            ipfs_name=ipfs_name,
            rpc_url=rpc_url,
            limit_file_bytes=limit_file_bytes,
            kernels=kernels,
        )

    def start_node(
        self,
        name: str,
        *,
        tile_seconds: float = 4.0,
        fault: str | None = None,
        ipfs_name: str | None = None,
        rpc_url: str | None = None,
        limit_file_bytes: int | None = None,
        kernels: tuple[str, ...] | None = None,
    ) -> NodeProcess:
        """Run the render node of ``name``, an account staked before (:meth:`staked_account`):
        a node may be staked (and drawn as a juror) before it runs. ``rpc_url``: the chain's
        RPC as this node sees it (a proxy a test can cut; default the stack's).
        ``limit_file_bytes``: the largest file the node may write (RLIMIT_FSIZE), the way a
        full disk looks to it without root (writes past it fail with EFBIG). ``kernels``: what it
        runs (default: the stack's)."""
        address = self.accounts[name]
        worker = _start_worker(
            self,
            name,
            address,
            tile_seconds,
            fault,
            ipfs_name or name,
            rpc_url or self.info.rpc_url,
            limit_file_bytes,
            kernels or self.kernels,
        )
        self.workers.append(worker)
        return worker

    def staked_account(
        self, name: str, *, capacity: int = 2, stake: int | None = None
    ) -> LocalAccount:
        """A keystore ``name``, funded and staked (``stake`` wei, default the minimum stake) but
        running no node."""
        password = read_password_file(self.password_file)
        entry = create_account(self.settings.keystores, name, password)
        deployment = Deployment.load(Path(self.info.deployment))
        amount = int(deployment.parameters["minStake"]) if stake is None else stake
        fund(self.info.rpc_url, entry.address, 10 * 10**18 + amount)
        market = self.market_as(name)
        market.stake(capacity, amount)
        self.accounts[name] = entry.address
        return unlock(entry.path, password)

    def market_as(self, name: str) -> Market:
        """The market, signing as keystore ``name``."""
        deployment = Deployment.load(Path(self.info.deployment))
        w3 = connect(self.info.rpc_url, expected_chain_id=deployment.chain_id)
        account = unlock(
            self.settings.keystores / f"{name}.json", read_password_file(self.password_file)
        )
        sender = TxSender(w3, account, endpoint=self.info.rpc_url, lock_dir=self.home / "nonces")
        return Market(w3, deployment, sender=sender)

    def retire(self, name: str) -> None:
        """Take ``name`` out of the market: stop its node (if it runs one) and start unbonding
        all its free stake, so no jury draw can pick it any more."""
        for worker in self.workers:
            if worker.name == name:
                worker.kill()
        market = self.market_as(name)
        address = market.sender.account.address if market.sender is not None else ""
        info = market.worker(address)
        if info.stake > info.locked:
            market.request_unstake(info.stake - info.locked)

    def stop_ipfs(self, name: str) -> None:
        """Stop the IPFS node ``name`` (its blocks stay on disk)."""
        assert stop_node(self.home / "stack" / "ipfs" / name), f"IPFS node {name} was not running"

    def wipe_ipfs(self, name: str) -> None:
        """Stop the IPFS node ``name`` and delete its blockstore (pins and blocks are gone)."""
        self.stop_ipfs(name)
        shutil.rmtree(self.home / "stack" / "ipfs" / name / "blocks")

    def start_ipfs(self) -> None:
        """Start the stack's stopped IPFS nodes again, on their ports, connected to the others
        (`stack up` on the running stack)."""
        info = stack_up(self.home, self.settings.keystores)
        assert info.ipfs == self.info.ipfs, (info.ipfs, self.info.ipfs)

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        stack_down(self.home)


def start_render_stack(
    root: Path,
    *,
    nodes: int = 2,
    capacity: int = 2,
    tile_seconds: float = 4.0,
    ipfs_nodes: tuple[str, ...] = (),
    windows: dict[str, int] | None = None,
    kernels: tuple[str, ...] = (KERNEL,),
) -> RenderStack:
    """Start everything under ``root`` (a fresh folder); the caller must ``close()`` it.
    ``kernels``: what its render nodes run (each with the same expected seconds per tile)."""
    home = root / "home"
    keystores = home / "keystores"
    names = tuple(f"node-{i}" for i in range(nodes))
    info = stack_up(
        home,
        keystores,
        rpc_port=free_port(),
        ipfs_port=free_port(),
        extra_ipfs=(*names, *ipfs_nodes),
        parameters={**WINDOWS, **(windows or {})},
    )

    stack = RenderStack(home, info, Settings(), local_password_file(home), kernels=kernels)
    try:
        password = read_password_file(stack.password_file)
        artist = create_account(keystores, ARTIST, password)
        fund(info.rpc_url, artist.address, 50 * 10**18)
        stack.settings = Settings(
            home=home,
            rpc_url=info.rpc_url,
            ipfs_api=info.ipfs["client"],
            deployment=Path(info.deployment),
            keystore_dir=keystores,
            account=ARTIST,
            password_file=stack.password_file,
        )
        for name in names:
            stack.add_node(name, capacity=capacity, tile_seconds=tile_seconds)
        return stack
    except BaseException:
        stack.close()
        raise


def _start_worker(
    stack: RenderStack,
    name: str,
    address: str,
    tile_seconds: float,
    fault: str | None,
    ipfs_name: str,
    rpc_url: str,
    limit_file_bytes: int | None,
    kernels: tuple[str, ...],
) -> NodeProcess:
    data = stack.home.parent / f"worker-{name}"
    data.mkdir(exist_ok=True)  # a node started again keeps its state (its leases, its jobs)
    log_path = data.parent / f"{name}.log"
    argv = [
        sys.executable, "-m", "blindframe", "worker", "run",
        "--account", name,
        "--password-file", str(stack.password_file),
        "--keystore-dir", str(stack.settings.keystores),
        "--rpc", rpc_url,
        "--deployment", stack.info.deployment,
        "--ipfs-api", stack.info.ipfs[ipfs_name],
        "--kernels", ",".join(kernels),
        *(a for k in kernels for a in ("--tile-seconds", f"{k}={tile_seconds}")),
        "--data-dir", str(data),
        "--poll", "0.3",
        "--json-log",
        *(["--fault", fault] if fault else []),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLINDFRAME_")}
    env["BLINDFRAME_HOME"] = str(stack.home)
    if limit_file_bytes is not None:
        # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG instead of killing
        # the node. The log file is opened here, outside the limit, but the node's writes to it
        # are its own: the log is kept short of the limit by the tests that set one.
        argv = ["prlimit", f"--fsize={limit_file_bytes}", "--", *argv]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv, env=env, cwd=data, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    return NodeProcess(name, process, log_path, address)
