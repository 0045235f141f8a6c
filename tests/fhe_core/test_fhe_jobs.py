"""Whole frames: tiling with halos and padding, canaries, decrypt + twin check + assembly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from blindframe.fhe_core import artist_jobs, jobs, wire
from blindframe.fhe_core.client import KernelClient
from blindframe.fhe_core.errors import BundleMismatchError, ParameterError, TwinMismatchError
from blindframe.fhe_core.kernels import expected_outputs
from blindframe.fhe_core.server import run_tile
from blindframe.fhe_core.tiling import assemble_tiles, plan_tasks, split_tiles, tile_grid


def test_split_and_assemble_round_trip(rng: np.random.Generator) -> None:
    frame = rng.integers(0, 8, (3, 13, 21))
    grid = tile_grid((13, 21), (8, 8), halo=1)
    tiles = split_tiles(grid, frame)
    assert grid.count == 6
    assert grid.padded_hw == (16, 24)
    assert all(t.shape == (3, 10, 10) for t in tiles)
    # the halo of tile 1 is the last column of tile 0
    np.testing.assert_array_equal(tiles[1][:, 1:9, 0], frame[:, 0:8, 7])
    inner = [t[:, 1:-1, 1:-1] for t in tiles]
    np.testing.assert_array_equal(assemble_tiles(grid, inner), frame)


def test_plan_tasks_hides_canaries(rng: np.random.Generator) -> None:
    tasks = plan_tasks(10, 3, rng)
    assert sorted(t.task_index for t in tasks) == list(range(13))
    assert sum(t.canary for t in tasks) == 3
    assert sorted(t.source_tile for t in tasks if not t.canary) == list(range(10))
    with pytest.raises(ParameterError):
        plan_tasks(0, 1, rng)
    with pytest.raises(ParameterError):
        tile_grid((0, 8), (8, 8))


def _run_all(job: artist_jobs.EncryptedJob, eval_keys: object) -> dict[int, bytes]:
    public = jobs.PublicJob.from_json(job.public.to_json())  # what the worker reads
    outputs = {}
    for task in range(public.tasks):
        bundle = job.inputs[0] if public.shared_input else job.inputs[task]
        clear = jobs.task_clear_args(public, task)
        outputs[task] = run_tile(public.kernel_id, bundle, eval_keys, clear, tile_index=task)
    return outputs


def test_frame_job_with_canaries_end_to_end(
    tmp_path: Path,
    clients: dict[str, KernelClient],
    eval_keys: dict[str, object],
    rng: np.random.Generator,
) -> None:
    client = clients["post@1"]
    frame = rng.integers(0, 8, (8, 13))
    job = artist_jobs.encrypt_frame_job(client, (frame,), {"filter": "edge"}, canaries=1, rng=rng)
    assert job.public.tasks == 3
    assert len(job.inputs) == 3
    assert len({len(b) for b in job.inputs}) == 1  # every task bundle looks alike
    job.secrets.save(tmp_path / "secrets.npz")
    secrets = artist_jobs.JobSecrets.load(tmp_path / "secrets.npz")
    outputs = _run_all(job, eval_keys["post@1"])
    image = artist_jobs.decrypt_job(client, job.public, secrets, outputs)
    assert image.shape == (8, 13)
    np.testing.assert_array_equal(image, artist_jobs.plain_frame(job.public, secrets))
    # A worker that hands in another task's result as it is: the bundle's label says so.
    swapped = dict(outputs)
    swapped[0], swapped[1] = outputs[1], outputs[0]
    with pytest.raises(BundleMismatchError, match="bundle is for tile 1, expected tile 0"):
        artist_jobs.decrypt_job(client, job.public, secrets, swapped)

    # A wrong result in the canary task: a valid ciphertext (another real tile's output), its
    # label made to match. It decrypts; only the canary's plaintext twin can tell, and does,
    # even when the client checks canaries alone.
    (canary,) = [t for t in secrets.tasks if t.canary]
    (other,) = [t for t in secrets.tasks if not t.canary and t.source_tile != canary.source_tile]
    parsed = wire.read_bundle(
        outputs[other.task_index],
        kind=wire.BundleKind.OUTPUT,
        kernel_id="post@1",
        spec_hash=client.spec_hash,
        expected=expected_outputs("post@1"),
    )
    wrong = dict(outputs)
    wrong[canary.task_index] = wire.write_bundle(
        wire.BundleKind.OUTPUT,
        "post@1",
        client.spec_hash,
        [wire.ValueEntry("out", client.kernel.out_shape, bytes(parsed.values[0].data))],
        canary.task_index,
    )
    client.decrypt(wrong[canary.task_index], tile_index=canary.task_index)  # well formed
    for check_all in (False, True):
        with pytest.raises(TwinMismatchError, match=rf"^canary task {canary.task_index}: "):
            artist_jobs.decrypt_job(client, job.public, secrets, wrong, check_all=check_all)


def test_the_public_job_does_not_reveal_the_canaries(clients: dict[str, KernelClient]) -> None:
    """Two encryptions of one frame whose canaries sit at different tasks (and copy different
    tiles) publish the same job description and manifest: nothing uploaded says which tasks
    are canaries; every task's bundle has the same size."""
    from blindframe.coordinator.manifest import ContentRef, Manifest
    from blindframe.fhe_core.merkle import leaf_depth
    from blindframe.fhe_core.plans import isa_level, plan_sizes

    client = clients["post@1"]
    frame = np.random.default_rng(3).integers(0, 8, (16, 16))
    jobs_ = [
        artist_jobs.encrypt_frame_job(
            client, (frame,), {"filter": "edge"}, canaries=2, rng=np.random.default_rng(seed)
        )
        for seed in (1, 2)
    ]
    placements = [
        sorted((t.task_index, t.source_tile) for t in j.secrets.tasks if t.canary) for j in jobs_
    ]
    assert placements[0] != placements[1]  # the canaries differ...
    plan = f"{isa_level()}:" + "+".join(f"{n}=0123456789abcdef" for n in plan_sizes("post@1"))
    cid = "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN"
    manifests = []
    for job in jobs_:
        assert job.public.tasks == 6
        assert len({len(b) for b in job.inputs}) == 1
        manifest = Manifest.create(
            kernel="post@1",
            client_spec_hash=client.spec_hash,
            leaf_depth=leaf_depth("post@1"),
            job=job.public.to_json(),
            evaluation_keys=ContentRef(cid, 1000),
            inputs=[ContentRef(cid, len(b)) for b in job.inputs],
            fft_plan=plan,
        ).to_json()
        manifest.pop("createdAt")
        manifests.append(manifest)
    assert jobs_[0].public == jobs_[1].public  # ...what is published does not
    assert manifests[0] == manifests[1]
    assert "canar" not in json.dumps(manifests[0]).lower()


def test_volume_job_with_canary_margin(
    clients: dict[str, KernelClient], eval_keys: dict[str, object]
) -> None:
    from blindframe.fhe_core.sample import SAMPLE_CAMERA, sample_volume

    client = clients["volume@1"]
    job = artist_jobs.encrypt_volume_job(
        client, sample_volume(), SAMPLE_CAMERA, (8, 8), margin_tiles=1
    )
    assert job.public.frame_hw == (24, 24)
    assert job.public.tasks == 9
    assert sum(t.canary for t in job.secrets.tasks) == 8
    outputs = _run_all(job, eval_keys["volume@1"])
    image = artist_jobs.decrypt_job(client, job.public, job.secrets, outputs)
    assert image.shape == (8, 8)
    assert image.max() > 0
    np.testing.assert_array_equal(image, artist_jobs.plain_frame(job.public, job.secrets))


def test_shade_frame(clients: dict[str, KernelClient], eval_keys: dict[str, object]) -> None:
    from blindframe.fhe_core.sample import SAMPLE_LIGHT, sample_gbuffer

    client = clients["shade@1"]
    normals, albedo = sample_gbuffer((8, 8))
    job = artist_jobs.encrypt_frame_job(client, (normals, albedo), SAMPLE_LIGHT, canaries=0)
    image = artist_jobs.decrypt_job(
        client, job.public, job.secrets, _run_all(job, eval_keys["shade@1"])
    )
    assert image.shape == (3, 8, 8)
    np.testing.assert_array_equal(image, artist_jobs.plain_frame(job.public, job.secrets))


def test_public_job_is_validated() -> None:
    with pytest.raises(ParameterError, match="malformed"):
        jobs.PublicJob.from_json({"kernel": "post@1"})
    with pytest.raises(ParameterError, match="unknown post filter"):
        jobs.PublicJob.from_json(
            {
                "kernel": "post@1",
                "params": {"filter": "x"},
                "frame": [8, 8],
                "tasks": 1,
                "shared_input": False,
            }
        )
    with pytest.raises(ParameterError, match="share one input"):
        jobs.PublicJob.from_json(
            {"kernel": "post@1", "params": {}, "frame": [8, 8], "tasks": 1, "shared_input": True}
        )
