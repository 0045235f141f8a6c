"""The volume kernel draws the right picture: its twin's silhouette against an oracle.

Twin equality proves the circuit equals the numpy code; it cannot prove the numpy code draws what
the camera sees. The oracle here shares none of the kernel's code: an exact ray caster, written
from the camera's definition alone, that intersects each pixel's ray with the occupied voxels'
cubes. The twin's frame comes through the artist's own job (``plan_volume_job`` then
``plain_frame``, the frame ``client fetch`` decrypts to), so the canary margin and the zoom the
job sends are part of what is checked.

The camera's definition (README, ``volume_weights``): an orthographic camera orbiting the grid's
centre. At yaw 0 and pitch 0 it looks along -z with +y up and +x to the right; yaw turns it
about +y towards +x, pitch raises it (looking down). ``zoom = 1`` fits the grid's bounding sphere
(radius ``16 * sqrt(3) / 2`` voxels) in the frame's smaller side. Pixel centres map linearly to
the image plane, rows top to bottom. Voxel ``[x, y, z]`` fills the cube ``[x, x+1] x [y, y+1] x
[z, z+1]``; the flat input is indexed ``(x * 16 + y) * 16 + z``.

Tolerance. The kernel samples each ray at points about 1.15 voxels apart (nearest voxel), so a
ray that only clips an edge or a corner of the occupied voxels can pass between two samples: the
twin may miss a pixel the oracle hits, but only within one voxel's width of the silhouette's edge
(at least one pixel). It may never draw a pixel whose ray misses every occupied cube (the cubes
are grown by 1e-3 voxel for the kernel's 2**-16 fixed-point positions). Each case also checks
the oracle's silhouette is neither empty nor the whole frame, so a magnified or shrunken view
cannot agree by accident.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from blindframe.fhe_core.artist_jobs import plain_frame, plan_volume_job
from blindframe.fhe_core.errors import ParameterError

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
GRID = 16
RADIUS = GRID * math.sqrt(3) / 2  # the grid's bounding sphere, in voxels
CENTRE = np.full(3, GRID / 2)
GROW = 1e-3  # voxels: covers the kernel's fixed-point positions (2**-16 voxel)


# ------------------------------------------------------------------------------ shapes


def _centres() -> tuple[FloatArray, FloatArray, FloatArray]:
    c = np.arange(GRID) + 0.5
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    return x, y, z


def sphere() -> BoolArray:
    """A ball a little off the grid's centre."""
    x, y, z = _centres()
    return (x - 7.2) ** 2 + (y - 8.7) ** 2 + (z - 8.3) ** 2 < 5.5**2


def box() -> BoolArray:
    """An off-centre box of unequal sides: a mirrored or turned view shows."""
    x, y, z = _centres()
    return (x > 2) & (x < 10) & (y > 3) & (y < 14) & (z > 5) & (z < 12)


def torus() -> BoolArray:
    """A ring lying flat (its axis +y): seen from above, a hole in the middle."""
    x, y, z = _centres()
    return (np.hypot(x - 8, z - 8) - 5.0) ** 2 + (y - 8) ** 2 < 2.0**2


SHAPES: dict[str, Callable[[], BoolArray]] = {"sphere": sphere, "box": box, "torus": torus}


# ------------------------------------------------------------------------------ the oracle


def camera_axes(yaw: float, pitch: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Right, up and forward unit vectors, from the definition: the camera sits at yaw/pitch on
    a sphere around the centre (yaw about +y from +z towards +x, pitch up from the horizon)."""
    y, p = math.radians(yaw), math.radians(pitch)
    back = np.array([math.cos(p) * math.sin(y), math.sin(p), math.cos(p) * math.cos(y)])
    right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    return right, up, -back


def oracle_masks(
    occupied: BoolArray, camera: dict[str, float], frame_hw: tuple[int, int]
) -> tuple[BoolArray, BoolArray]:
    """Pixels whose ray crosses an occupied voxel's cube, and the same with the cubes grown by
    GROW: slab tests against the voxels that touch empty space (a line entering the solid
    enters one of those first)."""
    height, width = frame_hw
    right, up, forward = camera_axes(camera["yaw"], camera["pitch"])
    pixels_per_voxel = camera["zoom"] * min(height, width) / (2 * RADIUS)
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    u = ((cols + 0.5 - width / 2) / pixels_per_voxel).ravel()
    v = ((height / 2 - rows - 0.5) / pixels_per_voxel).ravel()
    origin = CENTRE + u[:, None] * right + v[:, None] * up  # (P, 3); the ray is a whole line
    padded = np.pad(occupied, 1, constant_values=False)
    interior = np.ones_like(occupied)
    for dx in range(3):
        for dy in range(3):
            for dz in range(3):
                interior &= padded[dx : dx + GRID, dy : dy + GRID, dz : dz + GRID]
    corner = np.argwhere(occupied & ~interior).astype(np.float64)  # (V, 3)
    # Only rays within the voxels' projected bounding box can hit (a cube reaches sqrt(3)/2
    # past its centre's projection).
    pu, pv = (corner + 0.5 - CENTRE) @ right, (corner + 0.5 - CENTRE) @ up
    reach = math.sqrt(3) / 2 + GROW
    near = (pu.min() - reach <= u) & (u <= pu.max() + reach)
    near &= (pv.min() - reach <= v) & (v <= pv.max() + reach)
    candidates = origin[near]
    masks = []
    for grow in (0.0, GROW):
        lo, hi = corner - grow, corner + 1.0 + grow
        hit = np.zeros(len(candidates), dtype=bool)
        for start in range(0, len(candidates), 256):
            o = candidates[start : start + 256, None, :]  # (p, 1, 3)
            enter = np.full((o.shape[0], len(lo)), -np.inf)
            leave = np.full((o.shape[0], len(lo)), np.inf)
            for axis in range(3):
                d = forward[axis]
                if abs(d) < 1e-12:  # parallel to this slab: inside it or never
                    inside = (lo[None, :, axis] <= o[..., axis]) & (
                        o[..., axis] <= hi[None, :, axis]
                    )
                    leave = np.where(inside, leave, -np.inf)
                    continue
                t0 = (lo[None, :, axis] - o[..., axis]) / d
                t1 = (hi[None, :, axis] - o[..., axis]) / d
                enter = np.maximum(enter, np.minimum(t0, t1))
                leave = np.minimum(leave, np.maximum(t0, t1))
            hit[start : start + 256] = (enter < leave).any(axis=1)
        mask = np.zeros(height * width, dtype=bool)
        mask[near] = hit
        masks.append(mask.reshape(height, width))
    return masks[0], masks[1]


def oracle_mask(
    occupied: BoolArray, camera: dict[str, float], frame_hw: tuple[int, int]
) -> BoolArray:
    """Pixels whose ray crosses an occupied voxel's cube."""
    return oracle_masks(occupied, camera, frame_hw)[0]


def _erode(mask: BoolArray, steps: int) -> BoolArray:
    """Pixels at least ``steps`` pixels (chessboard) from any pixel outside ``mask``."""
    out = mask.copy()
    for _ in range(steps):
        padded = np.pad(out, 1, constant_values=False)
        keep = np.ones_like(out)
        for dy in range(3):
            for dx in range(3):
                keep &= padded[dy : dy + out.shape[0], dx : dx + out.shape[1]]
        out = keep
    return out


def twin_mask(
    occupied: BoolArray, camera: dict[str, float], frame_hw: tuple[int, int], margin: int
) -> BoolArray:
    """The silhouette of the frame the artist's job decrypts to (through its twin)."""
    volume = occupied.reshape(-1).astype(np.int64)
    public, secrets = plan_volume_job("volume@1", volume, camera, frame_hw, margin_tiles=margin)
    frame = plain_frame(public, secrets)
    assert frame.shape == frame_hw
    mask: BoolArray = frame > 0
    return mask


def check_silhouette(
    occupied: BoolArray, camera: dict[str, float], frame_hw: tuple[int, int], margin: int
) -> None:
    expected, grown = oracle_masks(occupied, camera, frame_hw)
    assert 0 < expected.sum() < expected.size, "the oracle's view must show some shape and some sky"
    got = twin_mask(occupied, camera, frame_hw, margin)
    false_hits = got & ~grown
    assert not false_hits.any(), (
        f"the twin draws {int(false_hits.sum())} pixel(s) whose ray misses every occupied voxel, "
        f"first at {tuple(int(i) for i in np.argwhere(false_hits)[0])}:\n"
        f"oracle\n{expected.astype(int)}\ntwin\n{got.astype(int)}"
    )
    pixels_per_voxel = camera["zoom"] * min(frame_hw) / (2 * RADIUS)
    band = max(1, math.ceil(pixels_per_voxel))
    misses = expected & ~got & _erode(expected, band)
    assert not misses.any(), (
        f"the twin misses {int(misses.sum())} pixel(s) deeper than {band} px inside the "
        f"silhouette, first at {tuple(int(i) for i in np.argwhere(misses)[0])}:\n"
        f"oracle\n{expected.astype(int)}\ntwin\n{got.astype(int)}"
    )


# ------------------------------------------------------------------------------ the cases

FRAMES = [(8, 8), (16, 16), (64, 64), (16, 40), (40, 24)]


@pytest.mark.parametrize("margin", [0, 1])
@pytest.mark.parametrize("frame_hw", FRAMES, ids=lambda hw: f"{hw[1]}x{hw[0]}")
@pytest.mark.parametrize(
    ("shape", "camera"),
    [
        ("sphere", {"yaw": 0.0, "pitch": 0.0, "zoom": 1.0}),
        ("box", {"yaw": 0.0, "pitch": 0.0, "zoom": 1.3}),
        ("box", {"yaw": 35.0, "pitch": 20.0, "zoom": 1.0}),
        ("box", {"yaw": -120.0, "pitch": -40.0, "zoom": 1.6}),
        ("torus", {"yaw": 0.0, "pitch": 89.0, "zoom": 1.0}),
        ("torus", {"yaw": 20.0, "pitch": 15.0, "zoom": 1.15}),
    ],
    ids=["sphere-front", "box-front", "box-3q", "box-below", "torus-top", "torus-sample-camera"],
)
def test_twin_silhouette_matches_oracle(
    shape: str, camera: dict[str, float], frame_hw: tuple[int, int], margin: int
) -> None:
    check_silhouette(SHAPES[shape](), camera, frame_hw, margin)


def test_margin_does_not_change_the_picture() -> None:
    """Canary tiles only widen the job: the real frame is the same, pixel for pixel, with 0, 1, 2
    or 16 of them (the zoom is scaled, never the view)."""
    camera = {"yaw": 35.0, "pitch": 20.0, "zoom": 1.0}
    volume = box().reshape(-1).astype(np.int64)
    frames = [
        plain_frame(*plan_volume_job("volume@1", volume, camera, (16, 24), margin_tiles=margin))
        for margin in (0, 1, 2, 16)
    ]
    assert frames[0].any()
    for frame in frames[1:]:
        np.testing.assert_array_equal(frame, frames[0])


def test_zoom_limits() -> None:
    """The artist's zoom stays in 0.25..4; the smallest frame with the widest margin still gets
    a zoom the kernel takes."""
    volume = box().reshape(-1).astype(np.int64)
    public, _ = plan_volume_job(
        "volume@1", volume, {"yaw": 0.0, "pitch": 0.0, "zoom": 0.25}, (8, 8), margin_tiles=16
    )
    assert public.params["zoom"] == pytest.approx(0.25 * 8 / 264)
    for zoom in (0.2, 4.5):
        with pytest.raises(ParameterError, match=r"zoom = .* is outside \[0.25, 4.0\]"):
            plan_volume_job("volume@1", volume, {"zoom": zoom}, (8, 8), margin_tiles=0)


def test_oracle_sees_orientation() -> None:
    """The oracle's own conventions, on a box whose place says which way is which."""
    occupied = np.zeros((GRID, GRID, GRID), dtype=bool)
    occupied[12:16, 12:16, 12:16] = True  # +x, +y, +z corner
    front = oracle_mask(occupied, {"yaw": 0.0, "pitch": 0.0, "zoom": 1.0}, (32, 32))
    rows, cols = np.nonzero(front)
    assert cols.min() > 16  # right: +x
    assert rows.max() < 16  # up: +y
    side = oracle_mask(occupied, {"yaw": 90.0, "pitch": 0.0, "zoom": 1.0}, (32, 32))
    rows, cols = np.nonzero(side)
    assert cols.max() < 16  # from +x, +z is on the left
    below = oracle_mask(occupied, {"yaw": 0.0, "pitch": -60.0, "zoom": 1.0}, (32, 32))
    rows, _ = np.nonzero(below)
    assert rows.min() < 16  # from below, the +y,+z corner shows above the centre
