"""Fixtures of the IPFS suite: real Helia nodes on free loopback ports, large files on disk."""

from __future__ import annotations

import hashlib
import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from blindframe.coordinator.store import IpfsStore
from blindframe.deploy.ipfs import NodeHandle, start_node

MIB = 1024 * 1024
LARGE_SIZE = 320 * MIB  # the issue asks for >= 300 MB


def write_pseudorandom(path: Path, size: int, seed: int) -> str:
    """Write ``size`` seeded random bytes in 1 MiB pieces (never whole in memory); return sha256."""
    digest = hashlib.sha256()
    rng = random.Random(seed)
    with path.open("wb") as out:
        written = 0
        while written < size:
            chunk = rng.randbytes(min(MIB, size - written))
            out.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(MIB):
            digest.update(piece)
    return digest.hexdigest()


@pytest.fixture(scope="session")
def node_a(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeHandle]:
    """The client's node: its own process and blockstore."""
    handle = start_node(tmp_path_factory.mktemp("node-a"))
    yield handle
    handle.stop()
    shutil.rmtree(handle.data_dir, ignore_errors=True)  # hundreds of MB of blocks


@pytest.fixture(scope="session")
def node_b(tmp_path_factory: pytest.TempPathFactory, node_a: NodeHandle) -> Iterator[NodeHandle]:
    """A worker's node, connected to node A over libp2p (there is no discovery offline)."""
    handle = start_node(tmp_path_factory.mktemp("node-b"))
    with IpfsStore(handle.api_url) as store:
        store.connect(node_a.multiaddrs[0])
    yield handle
    handle.stop()
    shutil.rmtree(handle.data_dir, ignore_errors=True)


@pytest.fixture
def store_a(node_a: NodeHandle) -> Iterator[IpfsStore]:
    with IpfsStore(node_a.api_url, retry_for=5.0, find_timeout=10.0) as store:
        yield store


@pytest.fixture
def store_b(node_b: NodeHandle) -> Iterator[IpfsStore]:
    with IpfsStore(node_b.api_url, retry_for=5.0, find_timeout=10.0) as store:
        yield store


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Callable[..., NodeHandle]]:
    """Start extra nodes for one test (fault tests stop and restart them); all stopped after."""
    started: list[NodeHandle] = []

    def make(name: str = "node", **kwargs: int) -> NodeHandle:
        handle = start_node(tmp_path / name, **kwargs)
        started.append(handle)
        return handle

    yield make
    for handle in started:
        handle.stop()
    for handle in started:
        shutil.rmtree(handle.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def large_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A 320 MiB file written in pieces (never held in memory) and its sha256."""
    folder = tmp_path_factory.mktemp("large")
    path = folder / "large.bin"
    digest = write_pseudorandom(path, LARGE_SIZE, seed=1)
    yield path, digest
    shutil.rmtree(folder, ignore_errors=True)
