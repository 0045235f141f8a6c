"""Manifests and lease results: validation of everything a worker or client downloads."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest

from blindframe.coordinator.errors import LeaseResultError, ManifestError
from blindframe.coordinator.manifest import ContentRef, Manifest
from blindframe.coordinator.results import (
    LeaseResult,
    disagreement_openings,
    open_lease_result,
    pack_lease_result,
)
from blindframe.fhe_core.agreement import AGREEMENT_FAR_COUNT, AGREEMENT_TOLERANCE
from blindframe.fhe_core.kernels import client_spec_hash
from blindframe.fhe_core.merkle import (
    TileTree,
    coefficient_stream,
    digest_leaf,
    digest_leaf_at,
    leaf_depth,
    verify_proof,
)
from blindframe.fhe_core.plans import PlanUnreachableError, isa_level, plan_sizes

if TYPE_CHECKING:
    from tests.conftest import VolumeJob

CID = "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN"
# A plan string of volume@1's shape (one size, 2048) on this machine's code path.
PLAN = f"{isa_level()}:2048=5e1b685f17f459e5"


def manifest(volume_job: VolumeJob) -> Manifest:
    return Manifest.create(
        kernel="volume@1",
        client_spec_hash=client_spec_hash("volume@1"),
        leaf_depth=leaf_depth("volume@1"),
        job=volume_job.public.to_json(),
        evaluation_keys=ContentRef(CID, 1000),
        inputs=[ContentRef(CID, 99)],
        fft_plan=PLAN,
    )


def test_manifest_round_trip_and_chain_check(volume_job: VolumeJob) -> None:
    original = manifest(volume_job)
    parsed = Manifest.parse(original.to_bytes())
    assert parsed == original
    assert parsed.tile_count == 4
    assert parsed.input_for(3) == ContentRef(CID, 99)
    assert parsed.fft_plan == PLAN
    assert parsed.to_json()["fftPlan"] == PLAN
    assert parsed.plan.polynomial_sizes == plan_sizes("volume@1") == (2048,)
    parsed.check_plan_reachable()
    parsed.check_against_chain(kernel="volume@1", tile_count=4, leaf_depth=leaf_depth("volume@1"))
    with pytest.raises(ManifestError, match="the chain says 5 tiles"):
        parsed.check_against_chain(
            kernel="volume@1", tile_count=5, leaf_depth=leaf_depth("volume@1")
        )
    with pytest.raises(ManifestError, match="kernel 'shade@1'"):
        parsed.check_against_chain(
            kernel="shade@1", tile_count=4, leaf_depth=leaf_depth("volume@1")
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("inputs"), "missing"),
        (lambda d: d.update(extra=1), "unknown"),
        (lambda d: d.update(format="other/1"), "not a blindframe-manifest/1"),
        (lambda d: d.update(kernel="volume@9"), "is for volume@1, not volume@9"),
        (lambda d: d.update(clientSpecHash="0x12"), "64 lowercase hex"),
        (lambda d: d.update(leafDepth=99), "leafDepth must be 0..24"),
        (lambda d: d["job"].update(tasks=5), "job description is invalid"),
        (lambda d: d["job"].update(kernel="teapot@1"), "job description is invalid"),
        (lambda d: d.update(inputs=[{"cid": CID, "size": 1}] * 2), "needs 1 input"),
        (lambda d: d.update(inputs=[{"cid": "Qmnope", "size": 1}]), "invalid CID"),
        (lambda d: d.update(inputs=[{"cid": CID, "size": -1}]), "size must be"),
        (lambda d: d.update(evaluationKeys={"cid": CID}), "exactly 'cid' and 'size'"),
        (lambda d: d.pop("fftPlan"), r"missing: \['fftPlan'\]"),
        (lambda d: d.update(fftPlan=7), "fftPlan is invalid: malformed FFT plan"),
        (lambda d: d.update(fftPlan="x86-64-v4"), "fftPlan is invalid: malformed FFT plan"),
        (lambda d: d.update(fftPlan="x86-64-v4:2048=5E1B685F17F459E5"), "16 lowercase hex"),
        (lambda d: d.update(fftPlan="x86-64-v4:2000=5e1b685f17f459e5"), "not a polynomial size"),
        (lambda d: d.update(fftPlan="X86:2048=5e1b685f17f459e5"), "bad code path name"),
        # A plan for another kernel's sizes (post@1 bootstraps with 512 and 4096).
        (
            lambda d: d.update(fftPlan="x86-64-v4:512=b3d65171f374b708+4096=5c785f4de7c65f5b"),
            r"covers sizes \[512, 4096\], but volume@1 bootstraps with \[2048\]",
        ),
    ],
)
def test_bad_manifests_are_refused(volume_job: VolumeJob, change, message: str) -> None:  # type: ignore[no-untyped-def]
    document = manifest(volume_job).to_json()
    change(document)
    with pytest.raises(ManifestError, match=message):
        Manifest.parse(json.dumps(document).encode())


def test_a_plan_of_another_code_path_is_refused_by_the_worker_check(
    volume_job: VolumeJob,
) -> None:
    # Well-formed, so the manifest parses; but no worker on this machine's SIMD code path can
    # reach it, and the worker's check (before it claims anything) says so.
    document = manifest(volume_job).to_json()
    document["fftPlan"] = "x86-64-v9:2048=5e1b685f17f459e5"
    other = Manifest.parse(json.dumps(document).encode())
    assert other.plan.isa == "x86-64-v9"
    with pytest.raises(
        PlanUnreachableError, match=f"x86-64-v9 code path and this machine runs {isa_level()}"
    ):
        other.check_plan_reachable()
    other.check_plan_reachable("x86-64-v9")
    with pytest.raises(PlanUnreachableError, match="this machine runs x86-64-v9"):
        manifest(volume_job).check_plan_reachable("x86-64-v9")


def test_garbage_manifests(volume_job: VolumeJob) -> None:
    with pytest.raises(ManifestError, match="not JSON"):
        Manifest.parse(b"\xff\x00garbage")
    with pytest.raises(ManifestError, match="at most"):
        Manifest.parse(b" " * (2 << 20))


def test_lease_result_gives_its_root_and_nothing_else(volume_job: VolumeJob) -> None:
    depth = leaf_depth("volume@1")
    outputs = [volume_job.outputs[0], volume_job.outputs[1]]
    packed = pack_lease_result(
        kernel="volume@1", job_id=7, lease_id=3, first_tile=0, leaf_depth=depth, outputs=outputs
    )
    data = packed.to_bytes()
    common = {
        "kernel": "volume@1",
        "job_id": 7,
        "lease_id": 3,
        "first_tile": 0,
        "count": 2,
        "leaf_depth": depth,
    }
    opened = open_lease_result(data, root=packed.root, **common)
    assert opened.outputs == outputs
    # A replica's bit-identical result (another lease) is checked from the tile roots already
    # known for these bytes: no tree is built until a proof asks for one.
    replica = pack_lease_result(
        kernel="volume@1", job_id=7, lease_id=4, first_tile=0, leaf_depth=depth, outputs=outputs
    ).to_bytes()
    again = open_lease_result(replica, root=packed.root, **{**common, "lease_id": 4})
    assert again.tile_roots == opened.tile_roots
    assert not again._built
    leaf = 5
    assert verify_proof(
        opened.tree(1).leaf(leaf), leaf, 1, opened.proof(1, leaf), packed.root, depth
    )

    with pytest.raises(LeaseResultError, match="do not pay"):
        open_lease_result(data, root=bytes(32), **common)
    tampered = bytearray(data)
    tampered[-100] ^= 0x01
    with pytest.raises(LeaseResultError, match=r"gives root|give root"):
        open_lease_result(bytes(tampered), root=packed.root, **common)
    with pytest.raises(LeaseResultError, match="lease 4"):
        open_lease_result(data, root=packed.root, **{**common, "lease_id": 4})
    with pytest.raises(LeaseResultError, match="covers 3 tiles"):
        open_lease_result(data, root=packed.root, **{**common, "count": 3})
    with pytest.raises(LeaseResultError, match="bytes"):
        open_lease_result(data[:-1], root=packed.root, **common)
    with pytest.raises(LeaseResultError, match="not a blindframe lease result"):
        open_lease_result(b"X" * 64, root=packed.root, **common)


def test_openings_prove_a_lazy_result_far(volume_job: VolumeJob) -> None:
    depth = leaf_depth("volume@1")
    honest = pack_lease_result(
        kernel="volume@1",
        job_id=1,
        lease_id=1,
        first_tile=1,
        leaf_depth=depth,
        outputs=[volume_job.outputs[1]],
    )
    # Another tile's output passed off as this tile's: a lazy result.
    lazy = pack_lease_result(
        kernel="volume@1",
        job_id=1,
        lease_id=2,
        first_tile=1,
        leaf_depth=depth,
        outputs=[volume_job.outputs[0]],
    )
    openings = disagreement_openings(
        honest, lazy, 1, tolerance=AGREEMENT_TOLERANCE, far_count=AGREEMENT_FAR_COUNT
    )
    assert openings is not None
    # Two different outputs: the digest leaf (the last one) alone proves them apart.
    (opening,) = openings
    assert opening.leaf == digest_leaf("volume@1") == (1 << depth) - 1
    assert opening.leafA != opening.leafB
    assert opening.leafA == coefficient_stream("volume@1", volume_job.outputs[1])[-4:].tobytes()
    assert verify_proof(opening.leafA, opening.leaf, 0, opening.proofA, honest.root, depth)
    assert verify_proof(opening.leafB, opening.leaf, 0, opening.proofB, lazy.root, depth)
    assert (
        disagreement_openings(
            honest, honest, 1, tolerance=AGREEMENT_TOLERANCE, far_count=AGREEMENT_FAR_COUNT
        )
        is None
    )
    assert np.array_equal(honest.stream(1), honest.stream(1))


def _synthetic(lease_id: int, stream: np.ndarray, depth: int) -> LeaseResult:
    """A one-tile lease result over a given stream (no bundle behind it: only its trees and
    streams are read by the openings)."""
    tree = TileTree.build(stream, depth)
    return LeaseResult("volume@1", 1, lease_id, 0, [b"x"], depth, [tree.root], {0: (stream, tree)})


def test_openings_fall_back_to_far_coefficients_when_the_digest_leaves_agree() -> None:
    """With equal digest leaves (streams that differ only in coefficients, which no real pair of
    outputs gives), the coefficient rule applies: the leaves with the most pairs farther apart
    than the tolerance, exactly at the tolerance not far."""
    depth = 4
    digest = digest_leaf_at(depth)
    rng = np.random.default_rng(10)
    base = rng.integers(0, 1 << 64, 4 << depth, dtype=np.uint64)
    far = base.copy()
    far[12:16] += np.uint64(AGREEMENT_TOLERANCE + 1)  # leaf 3: 4 far pairs
    far[20:24] -= np.uint64(AGREEMENT_TOLERANCE + 1)  # leaf 5: 4 far pairs
    far[40] += np.uint64(AGREEMENT_TOLERANCE + 1)  # leaf 10: 1 far pair, not needed
    near = base.copy()
    near[:-4] += np.uint64(AGREEMENT_TOLERANCE)  # every coefficient moved, none far
    a, b, c = _synthetic(1, base, depth), _synthetic(2, far, depth), _synthetic(3, near, depth)
    assert a.tree(0).leaf(digest) == b.tree(0).leaf(digest) == c.tree(0).leaf(digest)
    openings = disagreement_openings(
        a, b, 0, tolerance=AGREEMENT_TOLERANCE, far_count=AGREEMENT_FAR_COUNT
    )
    assert openings is not None
    assert [o.leaf for o in openings] == [3, 5]
    for o in openings:
        assert verify_proof(o.leafA, o.leaf, 0, o.proofA, a.root, depth)
        assert verify_proof(o.leafB, o.leaf, 0, o.proofB, b.root, depth)
    assert disagreement_openings(a, c, 0, tolerance=AGREEMENT_TOLERANCE, far_count=1) is None
    # A changed digest leaf alone is one opening, whatever the coefficients.
    d = base.copy()
    d[-1] ^= np.uint64(1)
    changed = disagreement_openings(
        a, _synthetic(4, d, depth), 0, tolerance=AGREEMENT_TOLERANCE, far_count=AGREEMENT_FAR_COUNT
    )
    assert changed is not None
    assert [o.leaf for o in changed] == [digest]
