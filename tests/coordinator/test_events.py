"""The event indexer on a real chain: resume from its cursor, at-least-once handling, reorgs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from blindframe.coordinator.events import ChainEvent, EventIndexer
from blindframe.coordinator.market import Market

if TYPE_CHECKING:
    from tests.conftest import Chain


def _post(market: Market, chain: Chain, tiles: int) -> int:
    return market.post_job(
        manifest_cid=f"QmJob{tiles}",
        kernel_id="volume@1",
        tile_count=tiles,
        replication=1,
        reward_per_tile_replica=10,
        lease_length=600,
        deadline=chain.now() + 3600,
        priority=0,
        leaf_depth=2,
    )


def _indexer(chain: Chain, db: Path, **kw: int) -> EventIndexer:
    return EventIndexer(
        chain.w3,
        chain.market,
        db,
        name="market",
        start_block=chain.deployment.deploy_block,
        endpoint=chain.anvil.rpc_url,
        **kw,
    )


def test_resumes_and_hands_each_event_until_handled(fresh_chain: Chain, tmp_path: Path) -> None:
    market = Market(
        fresh_chain.w3, fresh_chain.deployment, sender=fresh_chain.sender(fresh_chain.account())
    )
    db = tmp_path / "events.sqlite"
    first = _post(market, fresh_chain, 3)
    indexer = _indexer(fresh_chain, db, batch_size=1)
    assert indexer.poll() == 1
    assert indexer.poll() == 0
    seen: list[int] = []

    def failing(event: ChainEvent) -> None:
        raise RuntimeError("handler crashed")

    with pytest.raises(RuntimeError):
        indexer.handle(failing, consumer="worker")
    assert indexer.handle(lambda e: seen.append(e.args["jobId"]), consumer="worker") == 1
    assert seen == [first]
    indexer.close()

    second = _post(market, fresh_chain, 4)
    resumed = _indexer(fresh_chain, db)
    assert resumed.poll() == 1
    assert resumed.handle(lambda e: seen.append(e.args["jobId"]), consumer="worker") == 1
    assert seen == [first, second]
    assert [e.args["tileCount"] for e in resumed.events(names=("JobPosted",))] == [3, 4]


def test_confirmations_hold_back_recent_blocks(fresh_chain: Chain, tmp_path: Path) -> None:
    market = Market(
        fresh_chain.w3, fresh_chain.deployment, sender=fresh_chain.sender(fresh_chain.account())
    )
    _post(market, fresh_chain, 2)
    indexer = _indexer(fresh_chain, tmp_path / "e.sqlite", confirmations=2)
    assert indexer.poll() == 0
    fresh_chain.w3.provider.make_request("anvil_mine", [2])  # type: ignore[arg-type]
    assert indexer.poll() == 1


def test_reorg_drops_orphaned_events(fresh_chain: Chain, tmp_path: Path) -> None:
    w3 = fresh_chain.w3
    market = Market(w3, fresh_chain.deployment, sender=fresh_chain.sender(fresh_chain.account()))
    indexer = _indexer(fresh_chain, tmp_path / "e.sqlite")
    indexer.poll()
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    _post(market, fresh_chain, 5)
    assert indexer.poll() == 1
    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True  # type: ignore[arg-type]
    fresh_chain.warp(1)  # the replacement block differs from the orphaned one
    _post(market, fresh_chain, 7)
    indexer.poll()
    assert [e.args["tileCount"] for e in indexer.events(names=("JobPosted",))] == [7]
