"""A volume frame that would show nothing is refused before anyone pays, and said when fetched.

The check runs on the plaintext twin from the client's own secrets (what the render nodes'
results must decrypt to), so a job is built here exactly as `post` builds it, without keys.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from blindframe.client._posting import check_not_empty
from blindframe.client.errors import JobOptionsError
from blindframe.client.jobdir import JobRef
from blindframe.client.reports import EMPTY_FRAME, DecryptResult
from blindframe.client.scene import Scene, to_kernel_input
from blindframe.client.scene._framing import volume_camera
from blindframe.fhe_core.artist_jobs import (
    EncryptedJob,
    JobSecrets,
    plain_frame,
    plan_volume_job,
)
from blindframe.fhe_core.jobs import PublicJob


@pytest.fixture(scope="module")
def ring() -> Scene:
    """A ring standing up, facing +z, its hole wider than a zoom of 4 shows from the front."""
    mesh = trimesh.creation.torus(
        major_radius=1.5, minor_radius=0.3, major_sections=48, minor_sections=12
    )
    return Scene.from_mesh(mesh.vertices, mesh.faces, resolution=32)


def _job(scene: Scene, camera: dict[str, float], frame_hw: tuple[int, int]) -> EncryptedJob:
    (volume,) = to_kernel_input(scene, "volume@1")
    public, secrets = plan_volume_job("volume@1", volume, camera, frame_hw, margin_tiles=1)
    return EncryptedJob(public, [], secrets)


def test_a_camera_through_the_hole_is_refused(ring: Scene) -> None:
    camera = {"yaw": 0.0, "pitch": 0.0, "zoom": 4.0}
    job = _job(ring, camera, (16, 16))
    assert not plain_frame(job.public, job.secrets).any()  # the premise: nothing to see
    with pytest.raises(JobOptionsError) as info:
        check_not_empty("volume@1", camera, job)
    assert str(info.value.message).startswith(
        "the frame would be empty: the camera misses the model (yaw 0, pitch 0, zoom 4 at 16x16"
    )
    assert "--allow-empty" in str(info.value.hint)


def test_a_framed_model_passes(ring: Scene) -> None:
    camera = volume_camera(ring.density, (16, 16))
    job = _job(ring, camera, (16, 16))
    check_not_empty("volume@1", camera, job)
    # The same zoom from the side sees the ring's rim: not empty either.
    check_not_empty("volume@1", {"yaw": 90.0}, _job(ring, {"yaw": 90.0, "zoom": 4.0}, (16, 16)))


def test_only_volume_frames_are_checked() -> None:
    """A post frame of black is a picture the artist made, not a camera that missed."""
    public = PublicJob("post@1", {"filter": "identity"}, (8, 8), 1, False)
    secrets = JobSecrets("post@1", [], (8, 8), (0, 0))
    check_not_empty("post@1", {}, EncryptedJob(public, [], secrets))


def test_fetch_says_an_empty_frame(tmp_path: Path) -> None:
    ref = JobRef(31337, "0x" + "00" * 20, 1)
    paths = (tmp_path / "frame.png", tmp_path / "frame.npy")
    empty = DecryptResult(ref, np.zeros((8, 8), dtype=np.int64), *paths, None, None, (1,))
    assert empty.to_json()["emptyFrame"] is True
    drawn = np.zeros((8, 8), dtype=np.int64)
    drawn[3, 4] = 7
    assert DecryptResult(ref, drawn, *paths, None, None, (1,)).to_json()["emptyFrame"] is False
    assert "the camera misses the model" in EMPTY_FRAME
