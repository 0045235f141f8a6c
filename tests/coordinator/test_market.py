"""Typed market bindings against the real contract: views, actions, decoded errors."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from blindframe.coordinator.errors import ContractRevertError
from blindframe.coordinator.market import (
    NO_FAULT_LIMIT,
    PROFILE_FIELDS,
    SENTENCES,
    AvailabilityChallengeView,
    AvailabilityStatus,
    ContestOutcome,
    ContestView,
    JobView,
    LeaseStatus,
    LeaseView,
    Market,
    WorkerView,
    kernel_id_bytes,
    kernel_id_text,
)
from blindframe.coordinator.results import LeaseResult, disagreement_openings
from blindframe.fhe_core.merkle import TileTree
from blindframe.worker.info import job_admission

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


def test_a_gated_job_refuses_a_new_node_on_chain(chain: Chain) -> None:
    """The reputation gate on the real contract: a freshly staked node cannot claim a job that
    asks for paid tiles and a clean record, and the revert reads as a sentence with both sides'
    numbers; the node's advertisement and capacity come back through ``worker_profiles``, and
    ``worker account --job`` says the same as the chain."""
    client, node = chain.account(), chain.account()
    as_client = Market(chain.w3, chain.deployment, sender=chain.sender(client))
    as_node = Market(chain.w3, chain.deployment, sender=chain.sender(node))
    as_node.stake(4, chain.deployment.parameters["minStake"])
    as_node.advertise("volume@1", 2500)
    job_id = as_client.post_job(
        manifest_cid="QmGated",
        kernel_id="volume@1",
        tile_count=2,
        replication=1,
        reward_per_tile_replica=1000,
        lease_length=600,
        deadline=chain.now() + 3600,
        priority=0,
        leaf_depth=4,
        min_completed=3,
        max_faults=0,
    )
    job = as_client.job(job_id)
    assert (job.minCompleted, job.maxFaults, job.gated) == (3, 0, True)

    with pytest.raises(ContractRevertError) as info:
        as_node.claim(job_id, 0, 0, 1)
    assert info.value.name == "MarketReputationTooLow"
    message = str(info.value)
    assert node.address.lower() in message.lower()
    assert "has 0 paid tiles and 0 faults; this job takes nodes with at least 3 paid tiles " in (
        message
    )
    assert "and at most 0 faults" in message
    assert "render other jobs first" in message  # the hint
    assert as_node.job(job_id).reservedSlots == 0

    admission = job_admission(as_node, node.address, job_id)
    assert admission["admitted"] is False
    assert admission["sentence"].startswith("refuses this node: it asks for at least 3 tiles")
    open_job = as_client.post_job(
        manifest_cid="QmOpen",
        kernel_id="volume@1",
        tile_count=1,
        replication=1,
        reward_per_tile_replica=1000,
        lease_length=600,
        deadline=chain.now() + 3600,
        priority=0,
        leaf_depth=4,
    )
    assert as_client.job(open_job).maxFaults == NO_FAULT_LIMIT
    assert job_admission(as_node, node.address, open_job)["admitted"] is True
    as_node.claim(open_job, 0, 0, 1)

    profiles = {p.address: p for p in as_client.worker_profiles("volume@1")}
    mine = profiles[node.address]
    assert (mine.capacity, mine.free_capacity, mine.ms_per_tile) == (4, 3, 2500)
    assert (mine.completed, mine.faults) == (0, 0)
    assert mine.advertised_at > 0
    shade = {p.address: p for p in as_client.worker_profiles("shade@1")}
    assert shade[node.address].ms_per_tile == 0  # advertised per kernel


def test_kernel_id_round_trip() -> None:
    assert kernel_id_text(kernel_id_bytes("volume@1")) == "volume@1"
    assert len(kernel_id_bytes("shade@2")) == 32


def test_the_bindings_mirror_the_abi(chain: Chain) -> None:
    """Every view dataclass has the fields of its ABI struct, in order; the enums match the
    contract's; every sentence names an error the market has (none left over from removed
    errors), and every error a node or client meets in a contest or a challenge has one."""
    abi = chain.market.abi
    outputs = {
        item["name"]: item["outputs"][0]
        for item in abi
        if item.get("type") == "function" and item.get("outputs")
    }
    for function, view in (
        ("getJob", JobView),
        ("getLease", LeaseView),
        ("getContest", ContestView),
        ("getAvailabilityChallenge", AvailabilityChallengeView),
        ("workerInfo", WorkerView),
    ):
        components = [c["name"] for c in outputs[function]["components"]]
        assert [f.name for f in fields(view)] == components, function
    profile = [c["name"] for c in outputs["workerProfiles"]["components"]]
    assert tuple(profile) == PROFILE_FIELDS
    errors = {item["name"] for item in abi if item.get("type") == "error"}
    assert set(SENTENCES) <= errors, sorted(set(SENTENCES) - errors)
    new = {
        "MarketTileRevealed",
        "MarketLeafDepthTooShallow",
        "MarketDrawNotReady",
        "MarketDrawClosed",
        "MarketNoVerdict",
        "MarketContestSide",
        "MarketUnknownChallenge",
        "MarketAvailabilityOpen",
        "MarketChallengeNotOpen",
        "MarketAnswerWindow",
        "MarketWrongLeaves",
        "MarketReputationTooLow",
        "MarketFaultsMismatch",
    }
    assert new <= set(SENTENCES) & errors
    assert list(LeaseStatus)[-1] is LeaseStatus.FORFEITED
    assert LeaseStatus.FORFEITED.value == 6  # the last value of IRenderMarket.LeaseStatus
    assert "jurySize" in chain.deployment.parameters


def _tile(rng: np.random.Generator, depth: int) -> np.ndarray:
    stream = np.zeros(4 << depth, dtype=np.uint64)
    stream[:40] = rng.integers(0, 1 << 64, 40, dtype=np.uint64)
    stream[-4:] = rng.integers(0, 1 << 64, 4, dtype=np.uint64)  # the digest leaf
    return stream


def _result(job_id: int, lease_id: int, stream: np.ndarray, depth: int) -> LeaseResult:
    tree = TileTree.build(stream, depth)
    return LeaseResult(
        "volume@1", job_id, lease_id, 0, [b"-"], depth, [tree.root], {0: (stream, tree)}
    )


def test_a_contest_draws_its_jury_and_a_lease_answers_for_its_data(fresh_chain: Chain) -> None:
    """Against the real contract: two replicas prove apart by their digest leaf alone; the
    draw seats the only eligible staked worker in the jury lane; its reveal is the verdict and
    side B is proven far from it; an answered availability challenge and an unanswered one
    (the lease is forfeited)."""
    chain = fresh_chain
    params = chain.deployment.parameters
    assert params["jurySize"] == 1
    accounts = {name: chain.account() for name in ("client", "a", "b", "juror")}
    markets = {
        name: Market(chain.w3, chain.deployment, sender=chain.sender(account))
        for name, account in accounts.items()
    }
    for name in ("a", "b", "juror"):
        markets[name].stake(4, params["minStake"])
    depth = 4
    job_id = markets["client"].post_job(
        manifest_cid="QmTest",
        kernel_id="volume@1",
        tile_count=1,
        replication=2,
        reward_per_tile_replica=10**15,
        lease_length=600,
        deadline=chain.now() + 3600,
        priority=1,
        leaf_depth=depth,
    )
    rng = np.random.default_rng(7)
    honest = _tile(rng, depth)
    wrong = honest.copy()
    wrong[-1] ^= np.uint64(1)  # only the digest leaf differs
    leases, results = {}, {}
    for name, lane, stream in (("a", 0, honest), ("b", 1, wrong)):
        leases[name], _ = markets[name].claim(job_id, lane, 0, 1)
        results[name] = _result(job_id, leases[name], stream, depth)
    salt = bytes(32)
    for name in ("a", "b"):
        worker = accounts[name].address
        markets[name].commit(
            leases[name], markets[name].commitment(results[name].root, worker, salt)
        )
    for name in ("a", "b"):
        markets[name].reveal(leases[name], results[name].root, "QmResult", salt)

    openings = disagreement_openings(
        results["a"], results["b"], 0, tolerance=params["tolerance"], far_count=params["farCount"]
    )
    assert openings is not None
    assert [o.leaf for o in openings] == [(1 << depth) - 1]
    contest_id = markets["a"].prove_disagreement(job_id, 0, leases["a"], leases["b"], openings)
    contest = markets["client"].contest(contest_id)
    assert contest.drawBlock != 0
    assert contest.seated == 0
    assert markets["client"].jurors(contest_id) == []
    assert markets["client"].verdict(contest_id) == (0, 0)
    with pytest.raises(ContractRevertError) as info:
        markets["juror"].claim(job_id, contest.lane, 0, 1)
    assert info.value.name == "MarketBadLane"

    # The draw: anyone, once a block after the draw block exists (this transaction's own).
    drawn = markets["client"].draw_jury(contest_id)
    assert [(e["worker"], e["seat"]) for e in drawn] == [(accounts["juror"].address, 0)]
    juror_lease = int(drawn[0]["leaseId"])
    assert markets["client"].jurors(contest_id) == [juror_lease]
    lease = markets["client"].lease(juror_lease)
    assert (lease.lane, lease.firstTile, lease.count) == (contest.lane, 0, 1)
    assert lease.state is LeaseStatus.CLAIMED
    with pytest.raises(ContractRevertError) as info:
        markets["client"].draw_jury(contest_id)
    assert info.value.name == "MarketDrawNotReady"
    assert f"contest {contest_id} has no jury draw ready" in str(info.value)

    juror = _result(job_id, juror_lease, honest, depth)
    address = accounts["juror"].address
    markets["juror"].commit(juror_lease, markets["juror"].commitment(juror.root, address, salt))
    markets["juror"].reveal(juror_lease, juror.root, "QmJuror", salt)
    verdict, fixed_at = markets["client"].verdict(contest_id)
    assert verdict == juror_lease
    assert fixed_at > 0
    # getContest stores the verdict only when the contest resolves; until then `verdict` says it.
    assert markets["client"].contest(contest_id).leaseT == 0
    far = disagreement_openings(
        results["b"], juror, 0, tolerance=params["tolerance"], far_count=params["farCount"]
    )
    assert far is not None
    chain.warp(1)
    markets["a"].prove_far(contest_id, 1, far)
    assert markets["client"].contest(contest_id).farMask == 2
    assert (
        disagreement_openings(
            results["a"], juror, 0, tolerance=params["tolerance"], far_count=params["farCount"]
        )
        is None
    )

    # Availability: the worker opens the named leaves of its tile on chain.
    leaves = [0, 9, (1 << depth) - 1]
    challenge_id = markets["client"].challenge_availability(leases["a"], 0, leaves)
    challenge = markets["client"].availability_challenge(challenge_id)
    assert challenge.state is AvailabilityStatus.OPEN
    assert (challenge.leaseId, challenge.tile) == (leases["a"], 0)
    assert challenge.challenger == accounts["client"].address
    assert markets["client"].open_challenge(leases["a"]) == challenge_id
    tree = results["a"].tree(0)
    markets["a"].answer_availability(
        challenge_id,
        leaves,
        [tree.leaf(i) for i in leaves],
        [results["a"].proof(0, i) for i in leaves],
    )
    assert markets["client"].availability_challenge(challenge_id).state is (
        AvailabilityStatus.ANSWERED
    )
    assert markets["client"].open_challenge(leases["a"]) == 0

    chain.warp(params["challengeWindow"] + 1)
    markets["client"].resolve_contest(contest_id)
    resolved = markets["client"].contest(contest_id)
    assert resolved.outcome == ContestOutcome.B_FAR
    assert (resolved.leaseT, resolved.verdictAt) == (juror_lease, fixed_at)

    # Unanswered past its deadline: the lease is forfeited.
    unanswered = markets["client"].challenge_availability(leases["a"], 0, [3])
    with pytest.raises(ContractRevertError) as info:
        markets["client"].resolve_availability(unanswered)
    assert info.value.name == "MarketAnswerWindow"
    chain.warp(params["revealWindow"] + 1)
    markets["client"].resolve_availability(unanswered)
    assert markets["client"].availability_challenge(unanswered).state is AvailabilityStatus.FAILED
    assert markets["client"].lease(leases["a"]).state is LeaseStatus.FORFEITED


def test_the_agreement_rule_is_one_rule_in_python_the_deployment_and_the_vectors(
    chain: Chain,
) -> None:
    """The tolerance and far count are written in three places that must agree: the Python rule
    (fhe_core.agreement: what nodes use to decide they disagree), the deployment defaults (what
    the contract enforces; read back from the deployed market) and the Merkle vectors the Forge
    tests check the contract's Agreement library against."""
    from blindframe.fhe_core.agreement import AGREEMENT_FAR_COUNT, AGREEMENT_TOLERANCE
    from blindframe.fhe_core.merkle import torus_distance

    root = Path(__file__).resolve().parents[2]
    defaults = json.loads((root / "contracts" / "params.defaults.json").read_text())
    assert (int(defaults["tolerance"]), int(defaults["farCount"])) == (
        AGREEMENT_TOLERANCE,
        AGREEMENT_FAR_COUNT,
    )
    deployed = chain.market.functions.params().call()
    names = [c["name"] for c in _params_abi(chain)]
    on_chain = dict(zip(names, deployed, strict=True))
    assert (on_chain["tolerance"], on_chain["farCount"]) == (
        AGREEMENT_TOLERANCE,
        AGREEMENT_FAR_COUNT,
    )
    vector = json.loads((root / "contracts" / "test" / "vectors" / "merkle.json").read_text())
    rule = vector["agreement"]
    assert int(rule["tolerance"]) == AGREEMENT_TOLERANCE
    # The vector's two leaves hold `far` far pairs by the Python rule too (the contract's count
    # of the same leaves is checked against this file in TileMerkle.t.sol).
    a, b = (
        np.frombuffer(bytes.fromhex(rule[k].removeprefix("0x")), dtype="<u8")
        for k in ("leafA", "leafB")
    )
    far = int(np.count_nonzero(torus_distance(a, b) > np.uint64(AGREEMENT_TOLERANCE)))
    assert far == int(rule["far"])


def _params_abi(chain: Chain) -> list[dict[str, Any]]:
    (fn,) = (
        item
        for item in chain.market.abi
        if item.get("type") == "function" and item.get("name") == "params"
    )
    return list(fn["outputs"][0]["components"])
