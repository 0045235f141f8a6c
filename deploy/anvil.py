"""A local Anvil chain (Foundry's node from npm) on loopback."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from blindframe.deploy.processes import free_port, start_detached, stop_process, wait_until
from blindframe.deploy.toolchain import foundry_binary

__all__ = ["ANVIL_CHAIN_ID", "AnvilHandle", "start_anvil"]

ANVIL_CHAIN_ID = 31337


@dataclass
class AnvilHandle:
    """A running Anvil: its RPC URL, pid, and the file it keeps its chain state in."""

    rpc_url: str
    port: int
    pid: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """Stop Anvil; its state file keeps the chain for the next start."""
        stop_process(self.pid)
        if self.process is not None:
            self.process.wait(timeout=10)


def _answers(rpc_url: str) -> bool:
    try:
        response = httpx.post(
            rpc_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
            timeout=1,
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and "result" in response.json()


def start_anvil(
    data_dir: Path,
    *,
    port: int | None = None,
    chain_id: int = ANVIL_CHAIN_ID,
    accounts: int = 10,
    balance_eth: int = 10_000,
    timeout: float = 30.0,
) -> AnvilHandle:
    """Start Anvil on 127.0.0.1 with its state persisted in ``data_dir/anvil-state.json``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port() if port is None else port
    log_path = data_dir / "anvil.log"
    argv = [
        str(foundry_binary("anvil")),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--accounts",
        str(accounts),
        "--balance",
        str(balance_eth),
        "--state",
        str(data_dir / "anvil-state.json"),
    ]
    process = start_detached(argv, log_path)
    rpc_url = f"http://127.0.0.1:{port}"
    handle = AnvilHandle(
        rpc_url=rpc_url, port=port, pid=process.pid, log_path=log_path, process=process
    )
    try:
        wait_until(
            lambda: _answers(rpc_url),
            what="anvil",
            timeout=timeout,
            process=process,
            log_path=log_path,
        )
    except BaseException:
        handle.stop()
        raise
    return handle
