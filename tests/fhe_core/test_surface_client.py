"""The artist's side of ``surface@1`` without FHE (the FHE path is test_surface_bricks.py): a
mesh scene becomes a baked 64^3 grid and a secret palette, the job's plaintext frame shows the
model, the decrypted indices are painted with the palette, and a model that does not fit is
refused in one line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from blindframe.client._decrypting import _painted
from blindframe.client._posting import _prepare
from blindframe.client.artist import Artist
from blindframe.client.options import JobOptions
from blindframe.client.scene import Scene
from blindframe.client.scene._images import srgb_encode
from blindframe.coordinator.config import load_settings
from blindframe.fhe_core._surface import COLOURS, GREY
from blindframe.fhe_core.artist_jobs import plain_frame, plan_volume_job
from blindframe.fhe_core.errors import ParameterError

# A box, 2 x 1 x 1, its triangles wound outwards.
BOX_VERTICES = np.array(
    [[x, y, z] for x in (-1.0, 1.0) for y in (-0.5, 0.5) for z in (-0.5, 0.5)], dtype=np.float64
)
BOX_FACES = np.array(
    [
        [0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5],  # x = -1, x = +1
        [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6],  # y = -0.5, y = +0.5
        [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3],  # z = -0.5, z = +0.5
    ]
)  # fmt: skip


def _artist(tmp_path: Path) -> Artist:
    return Artist(load_settings(env={"BLINDFRAME_HOME": str(tmp_path)}))  # no chain needed


def test_a_mesh_becomes_a_painted_frame(tmp_path: Path) -> None:
    scene = Scene.from_mesh(BOX_VERTICES, BOX_FACES)
    options = JobOptions(kernel="surface@1", frame=(32, 32), params={"yaw": 0.0, "pitch": 0.0})
    prepared = _prepare(_artist(tmp_path), scene, options)
    assert prepared.palette is not None
    (values,) = prepared.inputs()
    assert values.shape == (64**3 * 2,)
    public, secrets = plan_volume_job(
        "surface@1", values, prepared.params, prepared.frame, margin_tiles=prepared.canaries
    )
    frame = plain_frame(public, secrets)
    # Seen from the front, the 2 x 1 box fills a band twice as wide as it is high, centred.
    hit = frame > 0
    rows, cols = np.flatnonzero(hit.any(axis=1)), np.flatnonzero(hit.any(axis=0))
    assert hit[16, 16]
    assert not hit[0].any()
    assert (cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1) == pytest.approx(2.0, rel=0.2)
    shown, top = _painted(frame, COLOURS, prepared.palette)
    assert top == 255
    assert shown.shape == (3, 32, 32)
    np.testing.assert_array_equal(shown[:, ~hit], 0)  # the background
    # No colours in the mesh: grey, lit (the front face faces the light partly).
    lit = shown[:, hit]
    np.testing.assert_array_equal(lit[0], lit[1])
    np.testing.assert_array_equal(lit[1], lit[2])
    # grey is linear albedo; the palette is sRGB-encoded for display
    assert 0 < lit.max() <= round(255 * float(srgb_encode(GREY)))


def test_a_scene_with_colours_is_painted_in_them(tmp_path: Path) -> None:
    scene = Scene.from_mesh(BOX_VERTICES, BOX_FACES)
    red = np.zeros((64, 64, 64, 3), dtype=np.float32)
    red[..., 0] = 0.9
    red[..., 1:] = 0.1
    red[scene.density == 0] = 0.0  # a scene's albedo is 0 outside the model
    coloured = dataclasses.replace(scene, albedo=red)
    prepared = _prepare(_artist(tmp_path), coloured, JobOptions(kernel="surface@1", frame=(16, 16)))
    assert prepared.palette is not None
    used = prepared.palette[1:]
    assert (used[:, 0] > 2 * used[:, 1]).all()
    np.testing.assert_allclose(used[:, 1], used[:, 2])


@pytest.mark.parametrize("side", [32, 96])
def test_a_grid_of_another_size_is_refused(tmp_path: Path, side: int) -> None:
    scene = Scene.from_mesh(BOX_VERTICES, BOX_FACES, resolution=32)
    if side != 32:  # a finer grid, without voxelizing at it (seconds)
        scene = dataclasses.replace(scene, density=np.ones((side,) * 3, np.float32), albedo=None)
    message = rf"surface renders a 64\^3 grid; the model is voxelized at {side}\^3"
    with pytest.raises(ParameterError, match=message) as caught:
        _prepare(_artist(tmp_path), scene, JobOptions(kernel="surface@1", frame=(16, 16)))
    assert "\n" not in str(caught.value)


def test_a_model_with_no_volume_is_refused(tmp_path: Path) -> None:
    scene = Scene.from_mesh(BOX_VERTICES, BOX_FACES)
    empty = dataclasses.replace(scene, density=np.zeros((64, 64, 64), dtype=np.float32))
    with pytest.raises(ParameterError, match="the model has no volume"):
        _prepare(_artist(tmp_path), empty, JobOptions(kernel="surface@1", frame=(16, 16)))
