"""Animation jobs: a frame range in the public job description (``frames``), one shared input for
every frame, tasks as (frame, tile) pairs; validated in the manifest, derived alike by the worker
(``task_clear_args``) and the client (twin frames). No FHE here: the plaintext side only."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from blindframe.client.errors import JobOptionsError
from blindframe.client.options import JobOptions
from blindframe.coordinator.errors import ManifestError
from blindframe.coordinator.manifest import ContentRef, Manifest
from blindframe.fhe_core import sample
from blindframe.fhe_core.artist_jobs import plain_frame, plan_volume_job
from blindframe.fhe_core.errors import ParameterError
from blindframe.fhe_core.jobs import MAX_FRAMES, PublicJob, task_clear_args
from blindframe.fhe_core.kernels import client_spec_hash
from blindframe.fhe_core.merkle import leaf_depth
from blindframe.fhe_core.plans import isa_level
from blindframe.fhe_core.tiling import tile_grid

KEYS = ContentRef("QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN", 1000)
VOLUME = ContentRef("QmNLei78zWmzUdbeRB3CiUfAizWUrbeeZh5K1rhAQKCh51", 11)
PLAN = f"{isa_level()}:2048=5e1b685f17f459e5"


def _manifest(job: dict[str, Any]) -> Manifest:
    return Manifest.create(
        kernel="volume@1",
        client_spec_hash=client_spec_hash("volume@1"),
        leaf_depth=leaf_depth("volume@1"),
        job=job,
        evaluation_keys=KEYS,
        inputs=[VOLUME],
        fft_plan=PLAN,
    )


def _job(frames: Any, tasks: int | None = None) -> dict[str, Any]:
    """A 16x16 volume job's description (no margin: 4 tiles a frame); ``frames`` None: none."""
    count = len(frames) if isinstance(frames, list) else 1
    job = {
        "kernel": "volume@1",
        "params": dict(sample.SAMPLE_CAMERA),
        "frame": [16, 16],
        "tasks": 4 * count if tasks is None else tasks,
        "shared_input": True,
    }
    return job if frames is None else {**job, "frames": frames}


def test_frames_round_trip_and_old_manifests_are_one_frame() -> None:
    one = _manifest(_job(None))
    assert "frames" not in one.job  # a one-frame job's manifest (and CID) is unchanged
    assert PublicJob.from_json(one.job).frame_count == 1

    turn = _manifest(_job([{"yaw": 0}, {"yaw": 90.0, "pitch": -30}, {"pitch": 10.5}]))
    parsed = Manifest.parse(turn.to_bytes())
    public = PublicJob.from_json(parsed.job)
    assert public.frames == ({"yaw": 0.0}, {"yaw": 90.0, "pitch": -30.0}, {"pitch": 10.5})
    assert (public.frame_count, public.tiles_per_frame, parsed.tile_count) == (3, 4, 12)
    assert public.frame_of(9) == (2, 1)
    assert public.frame_params(1) == {"yaw": 90.0, "pitch": -30.0, "zoom": 1.15}
    assert public.frame_params(2) == {"yaw": 20.0, "pitch": 10.5, "zoom": 1.15}
    assert {parsed.input_for(t) for t in range(12)} == {VOLUME}  # one upload for every frame


def test_each_task_is_a_frame_tile_pair_the_worker_derives() -> None:
    frames = [{"yaw": 0.0}, {"yaw": 120.0, "pitch": 40.0}]
    public = PublicJob.from_json(_job(frames))
    for task in range(public.tasks):
        frame, tile = divmod(task, 4)
        alone = PublicJob.from_json({**_job(None), **{"params": public.frame_params(frame)}})
        assert np.array_equal(task_clear_args(public, task), task_clear_args(alone, tile))
    # Different frames see the volume from different angles: their samples differ.
    assert not np.array_equal(task_clear_args(public, 0), task_clear_args(public, 4))


@pytest.mark.parametrize(
    ("frames", "tasks", "message"),
    [
        ([], None, f"a job has 1..{MAX_FRAMES} frames, not 0"),
        ([{"yaw": 1.0}] * (MAX_FRAMES + 1), None, f"1..{MAX_FRAMES} frames, not {MAX_FRAMES + 1}"),
        ({"yaw": 1.0}, 4, "1..256 frames, not dict"),
        ([{"yaw": math.nan}], None, "frame 0 yaw must be a finite number of degrees"),
        ([{"yaw": 1.0}, {"pitch": math.inf}], None, "frame 1 pitch must be a finite number"),
        ([{"yaw": "10"}], None, "frame 0 yaw must be a finite number"),
        ([{"yaw": True}], None, "frame 0 yaw must be a finite number"),
        ([{"zoom": 2.0}], None, "frame 0 must be an object of yaw|pitch angles"),
        ([7], None, "frame 0 must be an object of yaw|pitch angles"),
        ([{"pitch": 95.0}], None, "pitch = 95.0 is outside"),
        ([{"yaw": 0.0}, {"yaw": 1.0}], 4, r"one task per tile of each frame \(4 x 2, not 4\)"),
    ],
)
def test_bad_frames_are_refused_in_one_line(frames: Any, tasks: int | None, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        PublicJob.from_json(_job(frames, tasks))
    # A manifest is parsed from its bytes: the same error, as the manifest's, in one line.
    raw = json.loads(_manifest(_job(None)).to_bytes())
    raw["job"] = _job(frames, tasks)
    with pytest.raises(ManifestError, match="the job description is invalid") as caught:
        Manifest.parse(json.dumps(raw).encode())
    assert "\n" not in caught.value.message


def test_frames_need_a_shared_input() -> None:
    job = PublicJob("post@1", dict(sample.SAMPLE_FILTER), (8, 24), 3, False).to_json()
    job["frames"] = [{"yaw": 0.0}]
    with pytest.raises(ParameterError, match="post@1 jobs render one frame"):
        PublicJob.from_json(job)


def test_a_turntable_job_stacks_frames_each_equal_to_its_own_one_frame_job() -> None:
    # A random half-full grid: cheap, and no two views of it alike.
    volume = np.random.default_rng(7).integers(0, 2, 16**3)
    frames = [{"yaw": 0.0}, {"yaw": 135.0}]
    public, secrets = plan_volume_job(
        "volume@1", volume, sample.SAMPLE_CAMERA, (16, 16), margin_tiles=1, frames=frames
    )
    virtual = tile_grid(public.frame_hw, (8, 8)).count
    assert public.tasks == 2 * virtual == len(secrets.tasks)
    # The canary ring repeats in every frame.
    assert [t.canary for t in secrets.tasks[:virtual]] == [
        t.canary for t in secrets.tasks[virtual:]
    ]
    stack = plain_frame(public, secrets)
    assert stack.shape == (2, 16, 16)
    for index, angles in enumerate(frames):
        alone = plan_volume_job(
            "volume@1", volume, {**sample.SAMPLE_CAMERA, **angles}, (16, 16), margin_tiles=1
        )
        assert np.array_equal(plain_frame(*alone), stack[index])
    assert not np.array_equal(stack[0], stack[1])
    # One frame without ``frames`` stays a (H, W) frame, as before.
    assert (
        plain_frame(*plan_volume_job("volume@1", volume, sample.SAMPLE_CAMERA, (16, 16))).ndim == 2
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (JobOptions(frames=0), f"--frames must be 1..{MAX_FRAMES} \\(not 0\\)"),
        (JobOptions(frames=MAX_FRAMES + 1), f"--frames must be 1..{MAX_FRAMES}"),
        (JobOptions(orbit=360.0), "--orbit needs --frames"),
        (JobOptions(frames=4, orbit=math.nan), "--orbit must be a finite number of degrees"),
        (JobOptions(frames=4, orbit=math.inf), "--orbit must be a finite number of degrees"),
        (JobOptions(frames=4, orbit=720.0), "in -360..360"),
        (JobOptions(frame_angles=()), "--frames must be 1..256 \\(not 0\\)"),
        (JobOptions(frame_angles=({"yaw": math.nan},)), "frame 0: yaw = nan is not a finite"),
        (JobOptions(frames=2, frame_angles=({"yaw": 1.0},)), "not both"),
    ],
)
def test_bad_frame_options_are_one_line_errors(options: JobOptions, message: str) -> None:
    with pytest.raises(JobOptionsError, match=message) as caught:
        options.check()
    assert "\n" not in caught.value.message
