"""Typed market bindings against the real contract: views, actions, decoded errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from blindframe.coordinator.errors import ContractRevertError
from blindframe.coordinator.market import LeaseStatus, Market, kernel_id_bytes, kernel_id_text

if TYPE_CHECKING:
    from tests.conftest import Chain


def test_actions_views_and_error_sentences(chain: Chain) -> None:
    client, worker = chain.account(), chain.account()
    as_client = Market(chain.w3, chain.deployment, sender=chain.sender(client))
    as_worker = Market(chain.w3, chain.deployment, sender=chain.sender(worker))
    min_stake = chain.deployment.parameters["minStake"]

    with pytest.raises(ContractRevertError) as info:
        as_worker.stake(4, min_stake - 1)
    assert info.value.name == "StakingBelowMinimum"
    assert f"the minimum is {min_stake} wei" in str(info.value)
    assert "blindframe worker stake" in str(info.value)

    as_worker.stake(4, min_stake)
    assert as_worker.worker(worker.address).free_capacity == 4

    job_id = as_client.post_job(
        manifest_cid="QmTest",
        kernel_id="volume@1",
        tile_count=6,
        replication=2,
        reward_per_tile_replica=1000,
        lease_length=600,
        deadline=chain.now() + 3600,
        priority=3,
        leaf_depth=4,
    )
    job = as_client.job(job_id)
    assert job.kernel == "volume@1"
    assert (job.tileCount, job.replication, job.priority, job.escrow) == (6, 2, 3, 12_000)

    lease_id, event = as_worker.claim(job_id, 0, 1, 3)
    assert event["worker"] == worker.address
    lease = as_worker.lease(lease_id)
    assert lease.state is LeaseStatus.CLAIMED
    assert list(lease.tiles) == [1, 2, 3]
    assert as_worker.free_range(job_id, 1, worker.address, 0, 16) == (0, 1)

    with pytest.raises(ContractRevertError) as info:
        as_worker.claim(job_id, 0, 2, 2)
    assert info.value.name == "MarketTilesTaken"
    assert f"in job {job_id} are already leased" in str(info.value)

    with pytest.raises(ContractRevertError) as info:
        as_client.job(10_000)
    assert "there is no job 10000" in str(info.value)


def test_kernel_id_round_trip() -> None:
    assert kernel_id_text(kernel_id_bytes("volume@1")) == "volume@1"
    assert len(kernel_id_bytes("shade@2")) == 32
