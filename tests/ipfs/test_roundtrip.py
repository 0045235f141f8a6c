"""Round trips through a real node: small content in memory, a 320 MiB file streamed both ways."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from blindframe.coordinator.store import (
    ContentTooLargeError,
    InvalidCidError,
    IpfsStore,
    kubo_cid_of_bytes,
)

from .conftest import LARGE_SIZE, sha256_file
from .test_cid import ipfs_cid


def test_small_round_trip(store_a: IpfsStore, tmp_path: Path) -> None:
    data = b'{"kernel": "volume", "tiles": 16}\n'
    added = store_a.add_bytes(data)
    assert added.cid == str(kubo_cid_of_bytes(data))
    assert added.size == len(data)
    assert store_a.cat(added.cid) == data
    assert store_a.get(added.cid, tmp_path / "out" / "manifest.json").read_bytes() == data
    stat = store_a.stat(added.cid)
    assert (stat.size, stat.dag_size, stat.links) == (len(data), added.dag_size, 0)
    # The CIDv1 form names the same content.
    v1 = str(kubo_cid_of_bytes(data).v1())
    assert store_a.cat(v1) == data


def test_empty_content(store_a: IpfsStore) -> None:
    added = store_a.add_bytes(b"")
    assert added.cid == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    assert store_a.cat(added.cid) == b""


def test_large_round_trip(store_a: IpfsStore, large_file: tuple[Path, str], tmp_path: Path) -> None:
    path, digest = large_file
    seen: list[tuple[int, int | None]] = []
    added = store_a.add_file(path, progress=lambda done, total: seen.append((done, total)))
    assert added.size == LARGE_SIZE
    assert added.cid == ipfs_cid(path)[0]  # an independent implementation agrees
    assert seen[-1] == (LARGE_SIZE, LARGE_SIZE)
    assert store_a.stat(added.cid).size == LARGE_SIZE
    out = store_a.get(added.cid, tmp_path / "large.out")
    assert out.stat().st_size == LARGE_SIZE
    assert sha256_file(out) == digest
    out.unlink()


def test_pin_unpin_and_gc(store_a: IpfsStore) -> None:
    data = b"short-lived result " * 1000
    added = store_a.add_bytes(data, pin=False)
    assert not store_a.is_pinned(added.cid)
    store_a.pin(added.cid)
    assert store_a.is_pinned(added.cid)
    assert added.cid in store_a.pins()
    store_a.unpin(added.cid)
    store_a.unpin(added.cid)  # idempotent
    assert not store_a.is_pinned(added.cid)
    assert store_a.collect_garbage() >= 1


def test_size_limits_are_checked_before_download(store_a: IpfsStore, tmp_path: Path) -> None:
    added = store_a.add_bytes(b"x" * 300_000)
    with pytest.raises(ContentTooLargeError, match="300000 bytes"):
        store_a.cat(added.cid, max_size=1000)
    with pytest.raises(ContentTooLargeError):
        store_a.get(added.cid, tmp_path / "big", max_size=1000)
    assert list(tmp_path.iterdir()) == []


def test_invalid_cid_is_a_value_error(store_a: IpfsStore) -> None:
    with pytest.raises(InvalidCidError, match="not a CID"):
        store_a.cat("not-a-cid")
    with pytest.raises(ValueError):
        store_a.stat("Qm123")


def test_node_identity_and_version(store_a: IpfsStore) -> None:
    identity = store_a.node_id()
    assert identity.peer_id.startswith("12D3KooW")
    assert all(a.startswith("/ip4/127.0.0.1/tcp/") for a in identity.addresses)
    # A bare semantic version, as Kubo reports it (ipfshttpclient parses it as numbers).
    assert re.fullmatch(r"\d+\.\d+\.\d+", store_a.version())
