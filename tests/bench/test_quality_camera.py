"""The quality bench's camera: Blender's orthographic camera derived from the kernels' orbit
camera (bench/bench_quality.py) sees what the ``surface`` kernel's rays see.

The oracle is Cycles itself: a box with a ball beside it (neither symmetric under a flip of
right or up, nor under a half turn), rendered as an emitting silhouette by Blender and by the
kernel's twin from the same voxels, must agree within a pixel at 64x64 and differ in at most 3%
of the silhouette's pixels (measured: 0.6-2.5%; a camera 5 degrees off in yaw or pitch, or 5%
off in scale, differs in 4.8-12%: 32x32 is too coarse to see those).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bpy
import numpy as np
import pytest

from bench.bench_quality import (
    blender_camera,
    kernel_frame,
    luminance,
    new_blender_scene,
    psnr,
    render_cycles,
    set_camera,
    set_material,
    ssim,
)
from blindframe.client.blender.extract import extract_volume
from blindframe.fhe_core._surface import bake, make_surface_kernel

SIZE = 64
# sRGB encoding of linear 0.5: a pixel of the filtered render at least half covered.
HALF_COVERED = 0.7354


def _grown(mask: np.ndarray[Any, np.dtype[np.bool_]]) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """``mask`` and its 8 neighbours of every pixel."""
    padded = np.pad(mask, 1)
    h, w = mask.shape
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy : dy + h, dx : dx + w]
    return out


@dataclass(frozen=True)
class Shapes:
    scene: Any
    bounds: Any
    values: Any  # the surface kernel's grid plaintext, every occupied voxel at full brightness


@pytest.fixture(scope="module")
def shapes() -> Shapes:
    scene = new_blender_scene()
    bpy.ops.mesh.primitive_cube_add(size=1.0)
    box = bpy.context.active_object
    box.scale = (1.6, 0.6, 0.8)
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.35, location=(1.1, -0.2, 0.6))
    ball = bpy.context.active_object
    for obj in (box, ball):
        set_material(obj, (1.0, 1.0, 1.0), emit=True)
    volume = extract_volume(scene, [box, ball], resolution=64)
    assert volume.density is not None
    assert volume.bounds is not None
    occupied = np.asarray(volume.density) >= 0.5
    baked = bake(occupied, np.ones((*occupied.shape, 3)), [0.0, 1.0, 0.0], ambient=1.0)
    return Shapes(scene, volume.bounds, baked.values)


@pytest.mark.parametrize(
    "camera",
    [
        {"yaw": 0.0, "pitch": 0.0, "zoom": 1.0},
        {"yaw": 40.0, "pitch": 25.0, "zoom": 1.3},
        {"yaw": -120.0, "pitch": -35.0, "zoom": 1.6},
    ],
)
def test_blender_silhouette_matches_the_kernel(shapes: Shapes, camera: dict[str, float]) -> None:
    ours = kernel_frame(make_surface_kernel(), (shapes.values,), camera, SIZE) > 0

    scene = shapes.scene
    for old in [o for o in scene.objects if o.type == "CAMERA"]:
        bpy.data.objects.remove(old)
    set_camera(scene, blender_camera(camera, shapes.bounds, (SIZE, SIZE)))
    theirs = luminance(render_cycles(scene, SIZE)) > HALF_COVERED

    assert 0.05 < ours.mean() < 0.6, "the shapes should fill a good part of the frame"
    # Every pixel one silhouette has and the other lacks is on the other's edge.
    assert not (ours & ~_grown(theirs)).any()
    assert not (theirs & ~_grown(ours)).any()
    assert (ours != theirs).sum() <= 0.03 * ours.sum()


def test_ssim_and_psnr() -> None:
    rng = np.random.default_rng(7)
    image = rng.random((32, 32))
    assert ssim(image, image) == pytest.approx(1.0)
    assert psnr(image, image) == float("inf")
    noisy = np.clip(image + rng.normal(0, 0.1, image.shape), 0, 1)
    assert 0.0 < ssim(image, noisy) < 0.95
    assert ssim(image, noisy) == pytest.approx(ssim(noisy, image))
    assert psnr(image, np.clip(image + 0.1, 0, 1)) == pytest.approx(20.0, abs=1.0)
    with pytest.raises(ValueError, match="one shape"):
        ssim(image, image[:16])
