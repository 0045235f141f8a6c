"""A job followed through its states with a render node the test plays through the market:
snapshots at every step, verification against the twin, settlement exact to the wei, the frame
decrypted; wrong results disputed and decided by a drawn jury, tampered ones (bytes that are not
the revealed root's) challenged for availability and forfeited; refund after the deadline; a
cancel before it. (`client render` doing it all against real render nodes: tests/e2e.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import OpenEXR  # type: ignore[import-not-found]
import pytest
from PIL import Image
from support.wei import gas_paid

from blindframe.client._rendering import _stop
from blindframe.client.artist import JobOptions
from blindframe.client.jobdir import JobDir
from blindframe.client.scene._images import srgb_encode
from blindframe.coordinator.errors import ContractRevertError
from blindframe.coordinator.market import ContestOutcome, ContestView, LeaseStatus, Market
from blindframe.coordinator.results import disagreement_openings
from blindframe.coordinator.store import IpfsStore
from blindframe.fhe_core.artist_jobs import plain_frame
from blindframe.fhe_core.kernels import get_kernel

from .conftest import Home, RenderNode, one_line_error, relabel, run_cli

if TYPE_CHECKING:
    from tests.conftest import Chain

REWARD = 10**15
SMALL = JobOptions(frame=(16, 16), canaries=0, reward_wei=REWARD)


def _tile_states(snapshot: object) -> list[str]:
    return [t.state for t in snapshot.tiles]  # type: ignore[attr-defined]


def test_a_job_through_its_states_to_the_decrypted_frame(
    fresh_chain: Chain, make_home: Callable[..., Home], worker_store: IpfsStore
) -> None:
    chain = fresh_chain
    home = make_home(chain)
    artist = home.artist()
    steps: list[str] = []
    posted = artist.post("sample", SMALL, progress=lambda s, d, t: steps.append(s))
    assert {"encrypt", "upload"} <= set(steps)
    ref = posted.ref
    assert posted.tile_count == 4

    snap = artist.snapshot(ref)
    assert _tile_states(snap) == ["open"] * 4
    assert snap.phase == "rendering"
    assert snap.payments["escrowPosted"] == snap.payments["escrowLeft"] == str(4 * REWARD)
    assert [t.layout.canary for t in snap.tiles if t.layout] == [False] * 4
    assert [e.name for e in snap.events] == ["JobPosted"]

    node = RenderNode(chain, worker_store)
    lease = node.claim(ref.job_id, 0, 4)
    snap = artist.snapshot(ref)
    assert _tile_states(snap) == ["claimed"] * 4
    assert {t.slots[0].worker for t in snap.tiles} == {node.address}
    assert {t.slots[0].lease_id for t in snap.tiles} == {lease}

    outputs = node.compute(ref.job_id, range(4))
    result, salt = node.commit(ref.job_id, lease, 0, [outputs[t] for t in range(4)])
    assert _tile_states(artist.snapshot(ref)) == ["committed"] * 4
    node.reveal(lease, result, salt)
    snap = artist.snapshot(ref)
    assert _tile_states(snap) == ["revealed"] * 4
    (lease_state,) = snap.leases
    assert lease_state.root == "0x" + result.root.hex()
    assert lease_state.chain_verified is False

    # The client fetches the result from the node's IPFS (through its own node), checks the
    # root, decrypts every tile and compares it with the twin.
    report = artist.verify(ref)
    (verdict,) = report.checked
    assert verdict.status == "ok", verdict
    assert verdict.tiles == dict.fromkeys(range(4), "ok")
    assert report.downloaded_bytes == len(result.to_bytes())
    assert _tile_states(artist.snapshot(ref)) == ["verified"] * 4
    assert artist.verify(ref).checked == ()  # a final verdict is not checked twice

    # Replication 1: no replica can prove a disagreement, so there is no challenge window: the
    # chain counts the lease verified from the second after its reveal, and settling pays.
    chain.warp(1)
    paid = artist.settle(ref)
    assert paid.settled == (lease,)
    assert paid.paid_wei == 4 * REWARD
    market = Market(chain.w3, chain.deployment)
    assert market.pending_balance(node.address) == 4 * REWARD
    assert market.lease(lease).state == LeaseStatus.SETTLED

    snap = artist.snapshot(ref)
    assert snap.complete
    assert snap.phase == "complete"
    assert _tile_states(snap) == ["settled"] * 4
    assert snap.payments["paidToWorkers"] == str(4 * REWARD)
    assert snap.payments["escrowLeft"] == "0"
    assert snap.payments["earnings"] == {node.address: str(4 * REWARD)}
    assert [e.name for e in snap.events if e.name in ("Committed", "Revealed", "LeaseSettled")] == [
        "Committed",
        "Revealed",
        "LeaseSettled",
    ]
    document = snap.to_json()
    json.dumps(document)  # JSON-ready as it is
    assert document["progress"] == dict.fromkeys(
        ("claimed", "committed", "revealed", "verified", "settled"), 4
    )

    decrypted = artist.decrypt(ref, twin=True, scale=2)
    directory = JobDir(posted.directory)
    expected = plain_frame(directory.public(), directory.secrets())
    assert decrypted.matches_twin is True
    assert np.array_equal(decrypted.frame, expected)
    assert decrypted.frame.shape == (16, 16)
    with Image.open(decrypted.png) as png:
        assert png.size == (32, 32)
    assert decrypted.twin_png is not None

    # watch stops at once on a complete job; status and fetch from the CLI agree.
    watched = list(artist.watch(ref, interval=0))
    assert len(watched) == 1
    assert watched[0].complete
    code, out, err = run_cli(["--json", "client", "status", str(ref.job_id)], home.env)
    assert code == 0, err
    assert json.loads(out)["phase"] == "complete"
    code, out, err = run_cli(["--json", "client", "watch", ref.key, "--timeout", "5s"], home.env)
    assert code == 0, err
    (line,) = out.splitlines()
    assert json.loads(line)["tileStates"]["settled"] == 4
    code, out, err = run_cli(["client", "watch", "--timeout", "5s"], home.env)
    assert code == 0, err
    assert out.splitlines() == [
        f"job {ref.job_id}: claimed 4/4 committed 4/4 revealed 4/4 verified 4/4 settled 4/4 "
        f"(complete, paid 0.004 ETH, last event Credited)",
        f"job {ref.job_id}: complete",
    ]
    code, out, err = run_cli(
        ["--json", "client", "fetch", "-o", str(home.path / "out.png")], home.env
    )
    assert code == 0, err
    assert json.loads(out)["png"] == str(home.path / "out.png")
    # 16-bit PNG and OpenEXR from the same fetch: read back by Pillow and OpenEXR, the
    # decrypted integers exactly (v * 65535 / out_max; v / out_max sRGB-decoded to linear).
    top = get_kernel(directory.public().kernel_id).out_max
    for fmt, name in (("png16", "frame16.png"), ("exr", "frame.exr")):
        code, out, err = run_cli(
            ["--json", "client", "fetch", "--format", fmt, "-o", str(home.path / name)], home.env
        )
        assert code == 0, err
        assert (json.loads(out)["image"], json.loads(out)["format"]) == (
            str(home.path / name),
            fmt,
        )
    with Image.open(home.path / "frame16.png") as png16:
        stored = np.asarray(png16).astype(np.int64)
    assert np.array_equal(np.rint(stored * top / 65535), decrypted.frame)
    with OpenEXR.File(str(home.path / "frame.exr"), separate_channels=True) as exr:
        linear = np.stack([exr.channels()[c].pixels for c in "RGB"])
    assert np.array_equal(np.rint(srgb_encode(linear) * top), np.stack([decrypted.frame] * 3))

    # With the chain down, the decrypted job is still served from its directory, and `jobs`
    # says the chain is unreachable in one line but lists the job with its last known state.
    code, out, err = run_cli(["--json", "client", "jobs"], home.env)
    assert code == 0, err
    assert [(row["phase"], row["chainError"]) for row in json.loads(out)] == [("complete", None)]
    offline = {**home.env, "BLINDFRAME_RPC_URL": "http://127.0.0.1:9"}
    code, out, err = run_cli(
        ["--json", "client", "fetch", str(ref.job_id), "-o", str(home.path / "again.png")], offline
    )
    assert code == 0, err
    assert (home.path / "again.png").read_bytes() == (home.path / "out.png").read_bytes()
    code, out, err = run_cli(["client", "jobs"], offline)
    assert code == 0, err
    (warning,) = err.splitlines()
    assert warning.startswith("Warning: chain unreachable")
    (row,) = out.splitlines()
    assert "complete (as of " in row


@pytest.mark.chain_overrides(challengeWindow=3600)
def test_replicas_all_verified_are_paid_before_the_challenge_window(
    fresh_chain: Chain, make_home: Callable[..., Home], worker_store: IpfsStore
) -> None:
    # Replication 2 with an hour's challenge window: the client accepts a lease as soon as
    # every replica of its tiles revealed and decrypted to the twin, not an hour later.
    chain = fresh_chain
    home = make_home(chain)
    artist = home.artist()
    ref = artist.post(
        "sample", JobOptions(frame=(16, 16), canaries=0, reward_wei=REWARD, replication=2)
    ).ref
    alice, bob = RenderNode(chain, worker_store), RenderNode(chain, worker_store)
    whole = alice.claim(ref.job_id, 0, 4, lane=0)
    front = bob.claim(ref.job_id, 0, 2, lane=1)
    back = bob.claim(ref.job_id, 2, 2, lane=1)
    outputs = alice.compute(ref.job_id, range(4))
    commits = {
        whole: alice.commit(ref.job_id, whole, 0, [outputs[t] for t in range(4)]),
        front: bob.commit(ref.job_id, front, 0, [outputs[0], outputs[1]]),
        back: bob.commit(ref.job_id, back, 2, [outputs[2], outputs[3]]),
    }
    alice.reveal(whole, *commits[whole])
    bob.reveal(front, *commits[front])

    # Tiles 0 and 1 have both replicas verified: bob's first lease is paid at once. Alice's
    # lease also holds tiles 2 and 3, whose second replica has not revealed: it waits.
    first = artist.settle(ref)
    assert first.settled == (front,)
    assert first.paid_wei == 2 * REWARD
    (waiting,) = first.waiting
    assert waiting["leaseId"] == whole
    assert "every replica of tiles [2, 3] verified" in waiting["reason"]

    bob.reveal(back, *commits[back])
    second = artist.settle(ref)
    assert sorted(second.settled) == sorted((whole, back))
    market = Market(chain.w3, chain.deployment)
    # Paid before the chain's own verification time, which is an hour after the last reveal.
    assert chain.now() < market.verified_at(whole) - 3000
    assert market.pending_balance(alice.address) == 4 * REWARD
    assert market.pending_balance(bob.address) == 4 * REWARD
    snap = artist.snapshot(ref)
    assert snap.complete
    assert _tile_states(snap) == ["settled"] * 4


def test_wrong_results_are_disputed_and_undelivered_ones_challenged_for_availability(
    fresh_chain: Chain, make_home: Callable[..., Home], worker_store: IpfsStore
) -> None:
    chain = fresh_chain
    home = make_home(chain)
    artist = home.artist()
    ref = artist.post("sample", JobOptions(frame=(16, 24), canaries=0, reward_wei=REWARD)).ref
    node = RenderNode(chain, worker_store)
    first = node.claim(ref.job_id, 0, 2)
    second = node.claim(ref.job_id, 2, 2)
    third = node.claim(ref.job_id, 4, 2)
    honest = node.compute(ref.job_id, [3])[3]
    # Lease 1 reveals bytes other than those it committed to; lease 2 hands in tile 3's
    # (valid) ciphertext as tile 2; lease 3 alters bytes around the committed coefficients.
    result_1, salt_1 = node.commit(ref.job_id, first, 0, [relabel(honest, 0), relabel(honest, 1)])
    result_2, salt_2 = node.commit(ref.job_id, second, 2, [relabel(honest, 2), honest])
    result_3, salt_3 = node.commit(ref.job_id, third, 4, [relabel(honest, 4), relabel(honest, 5)])
    node.reveal(first, result_1, salt_1, tamper="coefficient")
    node.reveal(second, result_2, salt_2)
    node.reveal(third, result_3, salt_3, tamper="framing")

    code, out, err = run_cli(["--json", "client", "verify", str(ref.job_id)], home.env)
    assert code == 0, err
    report = json.loads(out)
    leases = {v["leaseId"]: v for v in report["leases"]}
    assert leases[first]["status"] == "tampered"
    assert "but its worker revealed" in leases[first]["reason"]
    assert leases[second]["status"] == "wrong"
    assert leases[second]["tiles"] == {"2": "wrong", "3": "ok"}
    assert "differ from the plaintext twin" in leases[second]["reasons"]["2"]
    # Bytes outside the ciphertext coefficients: refused, whether the root binds them (a
    # digest leaf: root mismatch) or only the decryption fails.
    assert leases[third]["status"] == "tampered"
    assert report["wrongTiles"] == [2]
    assert not (JobDir(artist.job_dir(ref).path).outputs / f"lease-{first}.bflr").exists()

    snap = artist.snapshot(ref)
    assert _tile_states(snap) == ["failed", "failed", "failed", "verified", "failed", "failed"]
    chain.warp(int(chain.deployment.parameters["challengeWindow"]) + 1)
    refused = artist.settle(ref)
    assert refused.settled == ()
    reasons = {row["leaseId"]: row["reason"] for row in refused.waiting}
    assert "tampered" in reasons[first]
    assert "tiles [2] failed verification" in reasons[second]
    assert "tampered" in reasons[third]

    # A render node that can sit on a jury: the sides and the client cannot.
    breaker = RenderNode(chain, worker_store)
    market = Market(chain.w3, chain.deployment)
    params = chain.deployment.parameters
    bond = int(params["disputeBond"])

    # `dispute` takes the wrong tile: its bytes gave the revealed root, so a jury can decide.
    # The bytes of the tampered leases never gave their roots: nobody could prove them far, so
    # those are challenged for availability instead (`challenge`), not disputed.
    code, out, err = run_cli(["--json", "client", "dispute", str(ref.job_id)], home.env)
    assert code == 0, err
    (record,) = json.loads(out)
    assert (record["tile"], record["leaseId"]) == (2, second)
    assert "differ from the plaintext twin" in record["reason"]
    contest_id = record["contestId"]
    contest: ContestView = market.contest(contest_id)
    assert (contest.jobId, contest.tile, contest.kind) == (ref.job_id, 2, 1)
    assert contest.leaseA == second
    assert contest.challenger == home.account.address
    assert contest.bond == bond
    assert market.lease(second).openContests == 1

    code, out, err = run_cli(["--json", "client", "challenge", str(ref.job_id)], home.env)
    assert code == 0, err
    challenged = json.loads(out)
    assert challenged["resolved"] == []
    rows = {row["leaseId"]: row for row in challenged["challenged"]}
    assert set(rows) == {first, third}
    depth = market.job(ref.job_id).leafDepth
    for lease_id, row in rows.items():
        view = market.availability_challenge(row["challengeId"])
        assert market.open_challenge(lease_id) == row["challengeId"]
        assert (view.leaseId, view.tile, view.challenger) == (
            lease_id,
            row["tile"],
            home.account.address,
        )
        assert row["tile"] in (range(0, 2) if lease_id == first else range(4, 6))
        assert row["leaves"][-1] == 2**depth - 1  # the digest leaf, and random coefficient leaves
        assert row["leaves"] == sorted(set(row["leaves"]))
        assert view.bond == bond

    snap = artist.snapshot(ref)
    assert _tile_states(snap) == ["failed"] * 2 + ["contested", "verified"] + ["failed"] * 2
    assert {(c.kind, c.outcome) for c in snap.contests} == {("dispute", "pending")}
    assert {(c.lease_id, c.status) for c in snap.challenges} == {(first, "open"), (third, "open")}
    assert snap.payments["bondsPosted"] == str(bond)
    assert snap.payments["challengeBondsPosted"] == str(2 * bond)
    # Nothing is left to dispute or challenge, and a disputed tile cannot be disputed again.
    assert artist.dispute(ref) == []
    assert artist.challenge_availability(ref) == []
    code, _out, err = run_cli(["client", "dispute", str(ref.job_id), "--tile", "2"], home.env)
    assert "already contested" in one_line_error(code, err)
    assert market.counts()[2] == 1

    # The client drew the jury when it disputed (on Anvil it mines the block the draw needs):
    # the only eligible node is the fresh one. Nobody claims a jury lane.
    with pytest.raises(ContractRevertError) as refused_claim:
        breaker.claim(ref.job_id, 2, 1, lane=contest.lane)
    assert refused_claim.value.name == "MarketBadLane"
    for _ in range(10):  # a draw that found nobody eligible in its tries is armed again
        if market.jurors(contest_id):
            break
        artist.draw_juries(ref)
    (tie_lease,) = market.jurors(contest_id)
    tie_view = market.lease(tie_lease)
    assert (tie_view.worker, tie_view.lane, tie_view.firstTile) == (
        breaker.address,
        contest.lane,
        2,
    )
    snap = artist.snapshot(ref)
    (shown,) = snap.contests
    assert [(s.seat, s.lease_id, s.worker, s.status) for s in shown.seats] == [
        (0, tie_lease, breaker.address, "claimed")
    ]

    # The juror computes the tile, commits and reveals; its root is the verdict, and the
    # disputed side is proven far from it. Once the verdict's window and the challenges'
    # deadlines pass, the client resolves the contest (tile 2 forfeited by lease 2), the
    # unanswered challenges (leases 1 and 3 forfeited), and settles what is left of lease 2.
    tie_result, tie_salt = breaker.commit(
        ref.job_id, tie_lease, 2, [breaker.compute(ref.job_id, [2])[2]]
    )
    breaker.reveal(tie_lease, tie_result, tie_salt)
    assert market.verdict(contest_id)[0] == tie_lease
    openings = disagreement_openings(
        result_2,
        tie_result,
        2,
        tolerance=params["tolerance"],
        far_count=params["farCount"],
    )
    assert openings is not None
    breaker.market.prove_far(contest_id, 0, openings)
    step = artist.step(ref)
    assert [v.lease_id for v in step.verify.checked] == [tie_lease]
    assert step.verify.checked[0].status == "ok"
    assert step.resolved == ()  # the challenge window after the verdict runs
    assert step.forfeited == ()  # the challenges' answer window runs
    chain.warp(max(int(params["challengeWindow"]), int(params["revealWindow"])) + 1)
    step = artist.step(ref)
    assert step.resolved == (contest_id,)
    assert sorted(step.forfeited) == sorted(row["challengeId"] for row in rows.values())
    assert step.settle.settled == (second,)
    assert step.settle.paid_wei == REWARD  # tile 3 only: tile 2 was forfeited
    assert market.contest(contest_id).outcome == ContestOutcome.A_FAR
    assert market.lease(first).state == LeaseStatus.FORFEITED
    assert market.lease(third).state == LeaseStatus.FORFEITED
    snap = artist.snapshot(ref)
    assert _tile_states(snap) == ["failed"] * 2 + ["settled"] * 2 + ["failed"] * 2
    (tile_2,) = [t for t in snap.tiles if t.tile == 2]
    assert [(s.state, s.juror, s.verdict) for s in tile_2.slots] == [
        ("failed", False, "wrong"),
        ("settled", True, "ok"),
    ]
    assert {(c.lease_id, c.status) for c in snap.challenges} == {
        (first, "failed"),
        (third, "failed"),
    }
    (shown,) = snap.contests
    assert (shown.outcome, shown.lease_t, [s.vote for s in shown.seats]) == (
        "aFar",
        tie_lease,
        ["majority"],
    )
    # Every bond came back: the won dispute's and both challenges'.
    assert snap.payments["bondsReturned"] == str(3 * bond)


def _post_small_job(home: Home, deadline: str) -> dict[str, Any]:
    """`client post --json` of a 16x16 frame, four tiles and no canaries, with 1-minute leases."""
    code, out, err = run_cli(
        [
            "--json",
            *("client", "post", "--scene", "sample", "--size", "16x16", "--canaries", "0"),
            *("--reward", "0.001", "--deadline", deadline, "--lease-length", "1m"),
        ],
        home.env,
    )
    assert code == 0, err
    posted: dict[str, Any] = json.loads(out)
    return posted


def test_refund_after_the_deadline(fresh_chain: Chain, make_home: Callable[..., Home]) -> None:
    chain = fresh_chain
    home = make_home(chain)
    posted = _post_small_job(home, "2m")
    job_id = posted["jobId"]

    code, _out, err = run_cli(["client", "refund", str(job_id)], home.env)
    assert "runs until its deadline" in one_line_error(code, err)

    chain.warp(150)
    w3 = chain.w3
    before = w3.eth.get_balance(home.account.address)
    first_block = w3.eth.block_number + 1
    code, out, err = run_cli(["--json", "client", "refund", str(job_id)], home.env)
    assert code == 0, err
    refund = json.loads(out)
    assert int(refund["refunded"]) == int(refund["withdrawn"]) == 4 * REWARD
    gas = gas_paid(chain.w3, home.account.address, first_block)
    assert gas > 0
    assert w3.eth.get_balance(home.account.address) == before + 4 * REWARD - gas
    market = Market(chain.w3, chain.deployment)
    assert market.job(job_id).escrow == 0
    assert market.pending_balance(home.account.address) == 0
    code, _out, err = run_cli(["client", "refund", str(job_id)], home.env)
    assert "nothing left to refund" in one_line_error(code, err)


def test_a_job_past_its_deadline_by_the_next_block_is_refunded_not_cancelled(
    fresh_chain: Chain, make_home: Callable[..., Home]
) -> None:
    """The chain's latest block and the wall clock both say the job runs, but the next block
    is past its deadline (an idle Anvil mines no block, and after a warp the wall clock lags):
    `client cancel` says the job ended, in one line, and points to refund; `client render`'s
    retry path, which stops a job to post its missing tiles again, refunds it instead (it
    cancelled, to be refused by the contract, and failed the render: CI, 2026-12-07)."""
    chain = fresh_chain
    home = make_home(chain)
    job_id = int(_post_small_job(home, "20m")["jobId"])
    market = Market(chain.w3, chain.deployment)
    deadline = market.job(job_id).deadline
    assert chain.now() < deadline

    def next_block_past_the_deadline() -> None:
        chain.w3.provider.make_request("evm_setNextBlockTimestamp", [deadline + 1])  # type: ignore[arg-type]

    next_block_past_the_deadline()
    code, _out, err = run_cli(["client", "cancel", str(job_id)], home.env)
    assert "passed its deadline 1s ago: there is nothing to cancel" in one_line_error(code, err)
    assert "blindframe client refund" in err
    assert market.job(job_id).escrow == 4 * REWARD  # nothing moved

    # The same moment inside `client render`: the job ended, so its escrow comes back.
    next_block_past_the_deadline()
    artist = home.artist()
    _stop(artist, artist.job_dir(job_id).ref)
    assert market.job(job_id).escrow == 0
    assert market.pending_balance(home.account.address) == 0  # refunded and withdrawn


def test_cancel_closes_the_job_and_refunds_what_no_lease_holds(
    fresh_chain: Chain, make_home: Callable[..., Home], worker_store: IpfsStore
) -> None:
    chain = fresh_chain
    home = make_home(chain)
    job_id = int(_post_small_job(home, "20m")["jobId"])
    node = RenderNode(chain, worker_store)
    lease = node.claim(job_id, 0, 1)

    w3 = chain.w3
    before = w3.eth.get_balance(home.account.address)
    first_block = w3.eth.block_number + 1
    code, out, err = run_cli(["--json", "client", "cancel", str(job_id)], home.env)
    assert code == 0, err
    cancelled = json.loads(out)
    # Three of the four tile-slots were free: their escrow comes back at once; the lease's stays.
    assert int(cancelled["refunded"]) == int(cancelled["withdrawn"]) == 3 * REWARD
    assert (cancelled["heldSlots"], int(cancelled["heldEscrow"])) == (1, REWARD)
    gas = gas_paid(chain.w3, home.account.address, first_block)
    assert w3.eth.get_balance(home.account.address) == before + 3 * REWARD - gas
    with pytest.raises(ContractRevertError) as refused:
        node.claim(job_id, 1, 1)
    assert refused.value.name == "MarketJobCancelled"
    code, _out, err = run_cli(["client", "cancel", str(job_id)], home.env)
    assert "already cancelled" in one_line_error(code, err)
    code, out, err = run_cli(["--json", "client", "status", str(job_id)], home.env)
    assert code == 0, err
    assert json.loads(out)["phase"] == "cancelled"

    # The lease runs out; once reclaimed, its tile's escrow is refundable long before the deadline.
    chain.warp(61)
    Market(chain.w3, chain.deployment, sender=chain.sender(chain.account())).reclaim(lease)
    market = Market(chain.w3, chain.deployment)
    assert chain.now() < market.job(job_id).deadline
    code, out, err = run_cli(["--json", "client", "refund", str(job_id)], home.env)
    assert code == 0, err
    refund = json.loads(out)
    assert int(refund["refunded"]) == REWARD
    assert int(refund["withdrawn"]) >= REWARD  # plus the client's share of the slash
    assert market.job(job_id).escrow == 0
    assert market.pending_balance(home.account.address) == 0
