"""Decentralization for real: separate nodes exchange content over libp2p; workers cache keys."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from blindframe.coordinator.store import ContentTooLargeError, IpfsStore, KeyCache
from blindframe.deploy.ipfs import NodeHandle

from .conftest import sha256_file, write_pseudorandom


def test_nodes_are_separate_peers(node_a: NodeHandle, node_b: NodeHandle) -> None:
    assert node_a.peer_id != node_b.peer_id
    assert node_a.pid != node_b.pid
    assert node_a.data_dir != node_b.data_dir


def test_add_on_one_get_from_the_other(
    store_a: IpfsStore, store_b: IpfsStore, node_a: NodeHandle, tmp_path: Path
) -> None:
    assert node_a.peer_id in store_b.peers()
    source = tmp_path / "tile.bin"
    digest = write_pseudorandom(source, 5_000_000, seed=42)
    added = store_a.add_file(source)
    assert not store_b.is_pinned(added.cid)
    out = store_b.get(added.cid, tmp_path / "fetched.bin")
    assert sha256_file(out) == digest
    # Pinning on B keeps the blocks it fetched over bitswap.
    store_b.pin(added.cid)
    assert store_b.is_pinned(added.cid)


def test_key_cache_fetches_once_for_all_jobs(
    store_a: IpfsStore, store_b: IpfsStore, tmp_path: Path
) -> None:
    keys = tmp_path / "eval-keys.bin"
    digest = write_pseudorandom(keys, 3_000_000, seed=7)
    cid = store_a.add_file(keys).cid
    cache = KeyCache(store_b, tmp_path / "cache")
    paths: list[Path] = []

    def job() -> None:
        paths.append(cache.get(cid))

    jobs = [threading.Thread(target=job) for _ in range(4)]
    for thread in jobs:
        thread.start()
    for thread in jobs:
        thread.join()
    assert cache.misses == 1
    assert cache.hits == 3
    assert len(set(paths)) == 1
    assert sha256_file(paths[0]) == digest
    assert cid in cache
    assert cache.total_bytes == 3_000_000
    # Another process's cache over the same directory finds the entry without fetching.
    again = KeyCache(store_b, tmp_path / "cache")
    assert again.get(cid) == paths[0]
    assert (again.hits, again.misses) == (1, 0)


def test_key_cache_evicts_least_recently_used(store_a: IpfsStore, tmp_path: Path) -> None:
    cids = [store_a.add_bytes(bytes([n]) * 400_000).cid for n in range(3)]
    cache = KeyCache(store_a, tmp_path / "cache", max_bytes=900_000)
    cache.get(cids[0])
    cache.get(cids[1])
    cache.get(cids[0])  # 0 is now more recent than 1
    cache.get(cids[2])  # over the limit: 1 goes
    assert cids[0] in cache
    assert cids[1] not in cache
    assert cids[2] in cache
    assert cache.total_bytes == 800_000
    assert [entry.size for entry in cache.entries()] == [400_000, 400_000]


def test_key_cache_fetches_nothing_past_the_size_it_is_told(
    store_a: IpfsStore, tmp_path: Path
) -> None:
    """A worker passes the manifest's size: a bigger file is refused before it is written."""
    cid = store_a.add_bytes(b"y" * 300_000).cid
    cache = KeyCache(store_a, tmp_path / "cache")
    with pytest.raises(ContentTooLargeError, match="300000 bytes"):
        cache.get(cid, max_size=1000)
    assert cid not in cache
    assert cache.get(cid, max_size=300_000).stat().st_size == 300_000
