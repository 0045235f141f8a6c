"""A two-frame turntable as one job on the real stack: `client render --frames 2 --orbit 180`
encrypts the sample volume once and uploads it once; the shared stack's volume@1 nodes derive
each (frame, tile) task's camera from the manifest, compute, commit and reveal; the artist
verifies every task of every frame against its twin, settles and decrypts a numbered PNG
sequence and an animated preview, each frame equal to the twin's. The smallest frame (8x8: one
tile a frame, no canary ring), replication 1, so it adds one short job to the shared stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image
from support.e2e import (
    check_frame,
    finish_render,
    job_leases,
    stack_market,
    start_render,
    withdraw,
)

from blindframe.coordinator.manifest import Manifest
from blindframe.coordinator.market import LeaseStatus
from blindframe.fhe_core import sample
from blindframe.fhe_core.artist_jobs import JobSecrets, plain_frame, plan_volume_job
from blindframe.fhe_core.jobs import PublicJob

if TYPE_CHECKING:
    from support.render_stack import RenderStack

pytestmark = pytest.mark.slow


def test_a_two_frame_turntable_is_one_job_and_every_frame_equals_its_twin(
    shared_stack: RenderStack, tmp_path: Path
) -> None:
    stack = shared_stack
    _, market = stack_market(stack)
    render = start_render(
        stack, tmp_path, "--size", "8x8", "--canaries", "0", "--replication", "1",
        "--frames", "2", "--orbit", "180", "--yaw", "20", "--pitch", "15", "--zoom", "1.15",
    )  # fmt: skip
    result = finish_render(stack, render, 600)

    # One job of two tasks, (frame 0, tile 0) and (frame 1, tile 0), on one uploaded volume.
    job_id = int(result["job"]["jobId"])
    directory = Path(result["job"]["directory"])
    manifest = Manifest.parse((directory / "manifest.json").read_bytes())
    public = PublicJob.from_json(manifest.job)
    assert public.frames == ({"yaw": 20.0}, {"yaw": 110.0})  # 180 degrees over 2 frames
    assert len(manifest.inputs) == 1
    assert market.job(job_id).tileCount == public.tasks == 2
    leases = job_leases(market, job_id)
    assert leases
    assert all(lease.state is LeaseStatus.SETTLED for _, lease in leases), leases

    # Every frame decrypted equals the twin, recomputed here from the job's secrets; and each
    # is the frame a one-frame job at that yaw would have (the node derived frame 1's camera).
    check_frame(result)
    frames = np.load(result["frame"]["array"])
    assert frames.shape == (2, 8, 8)
    volume = JobSecrets.load(directory / "secrets.npz").volume
    assert volume is not None
    for index, yaw in enumerate((20.0, 110.0)):
        camera = {**sample.SAMPLE_CAMERA, "yaw": yaw}
        alone = plan_volume_job("volume@1", volume, camera, (8, 8), margin_tiles=0)
        np.testing.assert_array_equal(frames[index], plain_frame(*alone))
    assert not np.array_equal(frames[0], frames[1])

    # The numbered sequence beside -o, pixel for pixel the twin's, and the animated preview.
    sequence = [Path(p) for p in result["frame"]["frames"]]
    assert sequence == [tmp_path / "frame" / f"frame-000{i}.png" for i in (1, 2)]
    twins = [Path(p) for p in result["frame"]["twinFrames"]]
    assert twins == [tmp_path / "twin" / f"frame-000{i}.png" for i in (1, 2)]
    for got, want in zip(sequence, twins, strict=True):
        with Image.open(got) as a, Image.open(want) as b:
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert result["frame"]["preview"] == str(tmp_path / "frame.png")
    with Image.open(tmp_path / "frame.png") as preview:
        assert preview.format == "PNG"
        assert getattr(preview, "n_frames", 1) == 2
    with Image.open(directory / "frame.png") as preview:  # what the dashboard shows
        assert getattr(preview, "n_frames", 1) == 2

    # What the dashboard and `client status` show: each frame's tiles, all verified.
    status = subprocess.run(
        [sys.executable, "-m", "blindframe", "--json", "client", "status", str(job_id)],
        env=stack.env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert json.loads(status.stdout)["frames"] == [
        {"frame": 0, "tiles": 1, "done": 1},
        {"frame": 1, "tiles": 1, "done": 1},
    ]

    for name in ("node-0", "node-1"):
        withdraw(stack, name)  # the shared stack's nodes leave with nothing pending
