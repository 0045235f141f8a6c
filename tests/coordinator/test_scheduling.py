"""The render node's claim policy: capacity, lease fit, ordering, replica exclusion."""

from __future__ import annotations

from pathlib import Path

import pytest

from blindframe.coordinator.scheduling import Claim, OpenJob, Policy, RuntimeModel, plan_claims

NOW = 1_000_000.0
POLICY = Policy(kernels=frozenset({"volume@1", "post@1"}), overhead_seconds=0.0, safety=1.0)


def job(job_id: int, **kw: object) -> OpenJob:
    base: dict[str, object] = {
        "job_id": job_id,
        "kernel_id": "volume@1",
        "priority": 0,
        "reward_per_tile": 1_000,
        "deadline": int(NOW) + 10_000,
        "lease_length": 600,
        "free": {0: [(0, 64)]},
    }
    base.update(kw)
    return OpenJob(**base)  # type: ignore[arg-type]


def test_never_exceeds_free_capacity() -> None:
    claims = plan_claims(
        [job(1), job(2)],
        free_capacity=10,
        seconds_per_tile={"volume@1": 1.0},
        policy=POLICY,
        now=NOW,
    )
    assert sum(c.count for c in claims) == 10
    assert claims == [Claim(1, 0, 0, 10)]


def test_takes_only_what_fits_in_the_lease() -> None:
    claims = plan_claims(
        [job(1, lease_length=100)],
        free_capacity=64,
        seconds_per_tile={"volume@1": 30.0},
        policy=POLICY,
        now=NOW,
    )
    assert claims == [Claim(1, 0, 0, 3)]


def test_deadline_closer_than_lease_limits_the_batch() -> None:
    claims = plan_claims(
        [job(1, deadline=int(NOW) + 20)],
        free_capacity=64,
        seconds_per_tile={"volume@1": 10.0},
        policy=POLICY,
        now=NOW,
    )
    assert claims == [Claim(1, 0, 0, 2)]


def test_orders_by_priority_then_pay_per_second_then_deadline() -> None:
    jobs = [
        job(1, reward_per_tile=5_000),
        job(2, priority=1),
        job(3, reward_per_tile=5_000, deadline=int(NOW) + 5_000),
        job(4, kernel_id="post@1", reward_per_tile=5_000),
    ]
    claims = plan_claims(
        jobs,
        free_capacity=256,
        seconds_per_tile={"volume@1": 1.0, "post@1": 0.5},
        policy=POLICY,
        now=NOW,
    )
    assert [c.job_id for c in claims] == [2, 4, 3, 1]


def test_skips_unknown_kernels_and_underpaid_jobs() -> None:
    policy = Policy(kernels=frozenset({"volume@1"}), min_wei_per_second=2_000, overhead_seconds=0)
    claims = plan_claims(
        [job(1), job(2, kernel_id="shade@1", reward_per_tile=10**9), job(3, reward_per_tile=4_000)],
        free_capacity=64,
        seconds_per_tile={"volume@1": 1.0, "shade@1": 1.0},
        policy=policy,
        now=NOW,
    )
    assert [c.job_id for c in claims] == [3]


def test_never_claims_a_tile_it_holds_in_another_lane() -> None:
    open_job = job(1, free={0: [], 1: [(0, 8)]}, held=frozenset({2, 3}))
    claims = plan_claims(
        [open_job], free_capacity=64, seconds_per_tile={"volume@1": 1.0}, policy=POLICY, now=NOW
    )
    assert claims == [Claim(1, 1, 4, 4)]


def test_runtime_model_uses_measured_median_over_prior(tmp_path: Path) -> None:
    model = RuntimeModel(tmp_path / "runs.sqlite", priors={"volume@1": 9.0})
    assert model.seconds_per_tile("volume@1") == 9.0
    assert model.seconds_per_tile("post@1") is None
    for tiles, seconds in [(4, 8.0), (2, 2.0), (1, 100.0)]:
        model.record("volume@1", tiles, seconds)
    assert model.seconds_per_tile("volume@1") == 2.0
    reopened = RuntimeModel(tmp_path / "runs.sqlite")
    assert reopened.estimates(["volume@1", "post@1"]) == {"volume@1": 2.0}
    with pytest.raises(ValueError):
        model.record("volume@1", 0, 1.0)
