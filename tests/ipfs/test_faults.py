"""Faults: node down, node restarted mid-download, unknown CID, tampered bytes, taken ports."""

from __future__ import annotations

import http.server
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from blindframe.coordinator.store import (
    ContentIntegrityError,
    ContentNotFoundError,
    IpfsStore,
    StoreConnectionError,
    kubo_cid_of_bytes,
)
from blindframe.coordinator.store.cid import Cid
from blindframe.deploy.ipfs import NodeHandle, NodePortInUseError, NodeRuntimeMissingError
from blindframe.deploy.ipfs import node as node_module

from .conftest import sha256_file, write_pseudorandom


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_node_down_at_start(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    store = IpfsStore(url, retry_for=1.5)
    started = time.monotonic()
    with pytest.raises(StoreConnectionError) as caught:
        store.get(str(kubo_cid_of_bytes(b"x")), tmp_path / "out")
    waited = time.monotonic() - started
    assert url in str(caught.value)
    assert "blindframe stack up" in str(caught.value)
    assert 1.0 <= waited < 10
    assert "attempts" in caught.value.message  # it retried with backoff before giving up
    assert leftovers(tmp_path) == []
    assert isinstance(caught.value, ConnectionError)


def test_node_restarted_mid_download_resumes(
    make_node: Callable[..., NodeHandle], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api_port = free_port()
    node = make_node("restarting", api_port=api_port)
    source = tmp_path / "keys.bin"
    digest = write_pseudorandom(source, 64_000_000, seed=3)
    store = IpfsStore(node.api_url, retry_for=30.0, parallel=2)
    cid = store.add_file(source).cid
    peer_id = node.peer_id
    restarted: list[NodeHandle] = []
    trigger = threading.Event()

    def restart() -> None:
        trigger.wait()
        node.stop()
        time.sleep(0.5)  # the node is down for a while: the client must retry
        restarted.append(make_node("restarting", api_port=api_port))

    worker = threading.Thread(target=restart)
    worker.start()

    def progress(done: int, total: int | None) -> None:
        if total and done > total // 4 and not trigger.is_set():
            trigger.set()
            deadline = time.monotonic() + 20
            while node.alive() and time.monotonic() < deadline:
                time.sleep(0.02)  # hold the download until the node is really down

    with caplog.at_level(logging.WARNING, logger="blindframe.coordinator.store.client"):
        out = store.get(cid, tmp_path / "out" / "keys.bin", progress=progress)
    worker.join()
    assert restarted, "the node was not restarted during the download"
    assert any("retrying" in record.getMessage() for record in caplog.records)
    assert not node.alive()
    assert sha256_file(out) == digest
    # The restarted node kept its blocks, pins and identity (persistent data directory).
    assert restarted[0].peer_id == peer_id
    assert store.is_pinned(cid)
    store.close()


def test_node_gone_mid_download_fails_cleanly(
    make_node: Callable[..., NodeHandle], tmp_path: Path
) -> None:
    node = make_node("vanishing")
    source = tmp_path / "keys.bin"
    write_pseudorandom(source, 32_000_000, seed=4)
    store = IpfsStore(node.api_url, retry_for=1.0, parallel=2)
    cid = store.add_file(source).cid
    out_dir = tmp_path / "out"

    def progress(done: int, total: int | None) -> None:
        if total and done > total // 4 and node.alive():
            node.stop()

    with pytest.raises(StoreConnectionError, match=node.api_url):
        store.get(cid, out_dir / "keys.bin", progress=progress)
    assert leftovers(out_dir) == []  # no partial file, nothing that looks complete
    store.close()


def test_unknown_cid_waits_a_bounded_time(store_b: IpfsStore, node_b: NodeHandle) -> None:
    unknown = str(kubo_cid_of_bytes(b"nobody ever added this " + str(time.time()).encode()))
    store = IpfsStore(node_b.api_url, find_timeout=1.5)
    started = time.monotonic()
    with pytest.raises(ContentNotFoundError) as caught:
        store.cat(unknown)
    assert 1.4 <= time.monotonic() - started < 15
    assert unknown in str(caught.value)
    assert node_b.api_url in str(caught.value)
    assert isinstance(caught.value, TimeoutError)
    store.close()


def test_tampered_blockstore_is_rejected(
    make_node: Callable[..., NodeHandle], tmp_path: Path
) -> None:
    node = make_node("tampered")
    store = IpfsStore(node.api_url)
    data = bytes(range(256)) * 4096  # 1 MiB: four leaves under one root
    cid = store.add_bytes(data).cid
    assert store.cat(cid) == data
    # Flip one byte in the middle of a leaf block file on disk (Helia serves local blocks as-is).
    blocks = sorted(
        (p for p in (node.data_dir / "blocks").rglob("*.data") if p.stat().st_size > 1000),
        key=lambda p: p.stat().st_size,
    )
    assert blocks, "no leaf block files found in the blockstore"
    victim = blocks[-1]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    victim.write_bytes(bytes(raw))
    with pytest.raises(ContentIntegrityError, match="does not match its CID"):
        store.get(cid, tmp_path / "out" / "data.bin")
    assert leftovers(tmp_path / "out") == []
    with pytest.raises(ContentIntegrityError):
        store.cat(cid)
    store.close()


class _FlippingProxy(http.server.BaseHTTPRequestHandler):
    """Forwards RPC calls to a real node and flips one byte of every block it returns."""

    upstream = ""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        response = httpx.post(
            f"{self.upstream}{self.path}",
            content=body,
            headers={"Content-Type": self.headers.get("Content-Type", "")},
            timeout=30,
        )
        payload = bytearray(response.content)
        if self.path.startswith("/api/v0/block/get") and len(payload) > 100:
            payload[-10] ^= 0xFF
        self.send_response(response.status_code)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(bytes(payload))

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def flipping_proxy(node_a: NodeHandle) -> Iterator[str]:
    handler = type("Handler", (_FlippingProxy,), {"upstream": node_a.api_url})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_bytes_altered_in_transit_are_rejected(
    store_a: IpfsStore, flipping_proxy: str, tmp_path: Path
) -> None:
    data = b"encrypted tile " * 50_000
    cid = store_a.add_bytes(data).cid
    with IpfsStore(flipping_proxy) as through_proxy:
        with pytest.raises(ContentIntegrityError, match=str(Cid.parse(cid))):
            through_proxy.get(cid, tmp_path / "tile.bin")
        with pytest.raises(ContentIntegrityError):
            through_proxy.stat(cid)
    assert leftovers(tmp_path) == []


class _StartingProxy(_FlippingProxy):
    """A node that is still starting: HTTP 503 (as the local node answers before libp2p is up)
    for the first ``starting`` calls, then the real node's answers, unaltered."""

    starting = 0

    def do_POST(self) -> None:
        cls = type(self)
        if cls.starting > 0:
            cls.starting -= 1
            body = b'{"Message": "the node is starting: try again", "Code": 0, "Type": "error"}'
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        length = int(self.headers.get("Content-Length") or 0)
        response = httpx.post(
            f"{self.upstream}{self.path}", content=self.rfile.read(length) if length else b""
        )
        self.send_response(response.status_code)
        self.send_header("Content-Length", str(len(response.content)))
        self.end_headers()
        self.wfile.write(response.content)


def test_a_node_still_starting_is_waited_for(
    store_a: IpfsStore, node_a: NodeHandle, caplog: pytest.LogCaptureFixture
) -> None:
    cid = store_a.add_bytes(b"an evaluation key, say").cid
    handler = type("Handler", (_StartingProxy,), {"upstream": node_a.api_url, "starting": 3})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with (
            caplog.at_level(logging.WARNING, logger="blindframe.coordinator.store.client"),
            IpfsStore(url, retry_for=10.0) as store,
        ):
            assert store.cat(cid) == b"an evaluation key, say"
        assert handler.starting == 0
        assert sum("HTTP 503" in r.getMessage() for r in caplog.records) == 3
        # One that never finishes starting: a bounded wait, then the one-line error.
        handler.starting = 1000
        with (
            IpfsStore(url, retry_for=1.0) as store,
            pytest.raises(StoreConnectionError, match="the node is starting"),
        ):
            store.cat(cid)
    finally:
        server.shutdown()
        server.server_close()


def test_taken_api_port_is_a_clear_error(
    node_a: NodeHandle, make_node: Callable[..., NodeHandle]
) -> None:
    with pytest.raises(NodePortInUseError, match=f"port {node_a.api_port} on 127.0.0.1 is taken"):
        make_node("second", api_port=node_a.api_port)


def test_missing_node_22_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A checkout without npm's Node 22 and no node on PATH.
    monkeypatch.setattr(node_module, "_ROOT", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("BLINDFRAME_NODE_BIN", raising=False)
    with pytest.raises(NodeRuntimeMissingError, match=r"Node\.js 22 or newer") as caught:
        node_module.start_node(tmp_path / "data")
    assert "make bootstrap" in str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
