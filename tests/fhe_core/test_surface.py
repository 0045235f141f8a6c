"""The ``surface`` kernel: nearest surface in colour, its twin, geometry, bricks and baking.

Most tests are the twin's (cheap): hand-built rays with a known answer, the camera's samples, the
brick layout, and the silhouette and the colours against an exact ray caster (which
shares no code with the kernel). One FHE test compiles a small instance of the kernel (the same
circuit code, fewer samples) as the composable module workers run, and checks decrypted tiles
against the twin on the edge cases.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from blindframe.fhe_core._kernel import IntArray
from blindframe.fhe_core._surface import (
    COLOURS,
    LANES,
    Geometry,
    bake,
    check_grid,
    grid_index,
    grid_values,
    make_surface_kernel,
    paint,
    surface_samples,
    tile_bricks,
    voxel_normals,
)
from blindframe.fhe_core.errors import ParameterError

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
SMALL = Geometry(grid=8, brick=4, samples=5)
PIXELS = 64


GROW = 1e-3  # voxels: covers the kernel's fixed-point positions (2**-16 voxel)


def _rays(geo: Geometry, voxels: IntArray, mask: IntArray | None = None) -> IntArray:
    """A clear argument whose ray ``p`` reads the flat voxel numbers ``voxels[p]`` (brick order
    does not matter here: these are positions in the flat grid)."""
    occ = voxels * LANES
    index = np.stack([occ, occ + 1], axis=2).reshape(PIXELS, -1)
    m = np.ones_like(voxels) if mask is None else mask
    out: IntArray = np.stack([index, np.repeat(m, LANES, axis=1)]).astype(np.int64)
    return out


def _grid(geo: Geometry, colours: IntArray) -> IntArray:
    """Flat grid values from one palette index per voxel number (0 = empty)."""
    out: IntArray = np.stack([(colours > 0).astype(np.int64), colours], axis=1).reshape(-1)
    return out


def _first_hit(values: IntArray, clear: IntArray) -> IntArray:
    """The expected picture, straight from the definition: walk each ray front to back."""
    out = np.zeros(PIXELS, dtype=np.int64)
    for p in range(PIXELS):
        for k in range(0, clear.shape[2], LANES):
            if clear[1, p, k] and values[clear[0, p, k]]:
                out[p] = values[clear[0, p, k + 1]]
                break
    return out.reshape(8, 8)


def _edge_case_tile(geo: Geometry, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    """Voxel 0 empty; voxels 1..COLOURS carry colours 1..COLOURS; the rest random. Rays:
    empty, a surface on the first or on the last sample in every colour, a masked surface in
    front of a visible one, and random rays."""
    n = geo.samples
    colours = np.where(
        rng.integers(0, 2, geo.voxels) == 1, rng.integers(1, COLOURS + 1, geo.voxels), 0
    )
    colours[0] = 0
    colours[1 : COLOURS + 1] = np.arange(1, COLOURS + 1)
    voxels = rng.integers(0, geo.voxels, (PIXELS, n))
    mask = np.ones((PIXELS, n), dtype=np.int64)
    voxels[0] = 0  # empty ray
    mask[1] = 0  # a ray outside the grid: everything masked
    voxels[1] = 1
    for c in range(1, COLOURS + 1):
        voxels[1 + c] = 0
        voxels[1 + c, 0] = c  # surface on the first sample, empties behind
        voxels[9 + c] = 0
        voxels[9 + c, n - 1] = c  # surface on the last sample
        voxels[17 + c] = c  # every sample the same colour (the accumulator's top)
    voxels[25] = 0
    voxels[25, 0] = 7
    voxels[25, 1] = 3
    mask[25, 0] = 0  # a masked colour in front: the one behind shows
    return _grid(geo, colours), _rays(geo, voxels, mask)


# ------------------------------------------------------------------------------ twin


def test_twin_edge_cases_match_the_definition() -> None:
    geo = Geometry(grid=8, brick=4, samples=64)
    kernel = make_surface_kernel(geo)
    rng = np.random.default_rng(1)
    for _ in range(3):
        values, clear = _edge_case_tile(geo, rng)
        kernel.check_clear(clear)
        got = kernel.twin((values,), clear)
        np.testing.assert_array_equal(got, _first_hit(values, clear))
        flat = got.ravel()
        assert flat[0] == 0
        assert flat[1] == 0
        for c in range(1, COLOURS + 1):
            assert [flat[1 + c], flat[9 + c], flat[17 + c]] == [c, c, c]
        assert flat[25] == 3


def test_twin_refuses_a_colour_on_an_empty_voxel() -> None:
    kernel = make_surface_kernel(SMALL)
    values = np.zeros(SMALL.values, dtype=np.int64)
    values[5 * LANES + 1] = 2  # voxel 5: empty, colour 2
    clear = _rays(SMALL, np.zeros((PIXELS, SMALL.samples), dtype=np.int64))
    with pytest.raises(ParameterError, match="empty but has palette index 2"):
        kernel.twin((values,), clear)
    with pytest.raises(ParameterError, match="empty but has palette index 2"):
        kernel.check_enc([values])


def _spoil(clear: IntArray, how: str) -> None:
    if how == "lanes":
        clear[0, 0, 1] += 2  # the colour of another voxel
    elif how == "masks":
        clear[1, 0, 0] = 1 - clear[1, 0, 0]
    elif how == "mask":
        clear[1, 0, :2] = 2
    else:
        clear[0, 0, :2] = [-2, -1]


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("lanes", "not one voxel's occupancy and colour"),
        ("masks", "different masks"),
        ("mask", r"mask\[0, 0\] = 2 is outside \[0, 1\]"),
        ("index", r"index\[0, 0\] = -2 is outside"),
    ],
)
def test_check_clear_refuses_bad_samples(how: str, message: str) -> None:
    kernel = make_surface_kernel(SMALL)
    clear = surface_samples({"yaw": 10.0}, (16, 16), 0, SMALL)
    kernel.check_clear(clear)
    _spoil(clear, how)
    with pytest.raises(ParameterError, match=message):
        kernel.check_clear(clear)


# ------------------------------------------------------------------------------ geometry


def test_front_view_samples_each_voxel_of_the_column_front_first() -> None:
    geo = Geometry(grid=16, brick=4, samples=16)
    # 16x16 frame at zoom sqrt(3): one pixel per voxel column, the grid filling the frame.
    clear = surface_samples({"zoom": math.sqrt(3)}, (16, 16), 0, geo)
    assert clear[1].all()
    # Pixel (row 0, col 0) sees the column x = 0, y = 15; the camera at +z looks along -z.
    expected = grid_index(np.zeros(16), np.full(16, 15), np.arange(15, -1, -1), 0, geo)
    np.testing.assert_array_equal(clear[0, 0, 0::2], expected)
    np.testing.assert_array_equal(clear[0, 0, 1::2], expected + 1)


def test_samples_stay_inside_the_grid_and_rays_that_miss_are_masked() -> None:
    geo = Geometry(grid=16, brick=4, samples=24)
    kernel = make_surface_kernel(geo)
    for camera in ({"yaw": 0.0}, {"yaw": 33.0, "pitch": -20.0}, {"yaw": 45.0, "pitch": 35.3}):
        for tile in (0, 5, 10, 15):
            clear = surface_samples(camera, (32, 32), tile, geo)
            kernel.check_clear(clear)
    # At zoom 1 the frame's corner pixel sees past the grid: its rays are masked, and they read
    # no brick that the tile's real samples do not read.
    corner = surface_samples({"yaw": 0.0}, (32, 32), 0, geo)
    assert not corner[1, 0].any()
    assert corner[1].any()
    real = np.unique(corner[0][corner[1] == 1] // geo.brick_values)
    np.testing.assert_array_equal(tile_bricks(corner, geo), real)
    # A tile that sees nothing reads brick 0 only.
    sky = surface_samples({"yaw": 0.0, "zoom": 0.5}, (64, 64), 0, geo)
    assert not sky[1].any()
    np.testing.assert_array_equal(tile_bricks(sky, geo), [0])


def test_bricks_at_the_grid_border_map_back_to_their_voxels() -> None:
    geo = Geometry(grid=16, brick=4, samples=16)
    x, y, z = np.meshgrid(*(np.arange(16),) * 3, indexing="ij")
    flat = grid_index(x, y, z, 0, geo).ravel()
    assert sorted(flat // LANES) == list(range(geo.voxels))  # a permutation of the voxels
    brick, offset = np.divmod(flat, geo.brick_values)
    np.testing.assert_array_equal(brick, ((x // 4) * 16 + (y // 4) * 4 + z // 4).ravel())
    assert offset.max() == geo.brick_values - LANES
    # The far corner voxel is the last brick's last voxel.
    assert grid_index(15, 15, 15, 1, geo) == geo.values - 1
    # A front view's corner tile reads only the bricks of its columns, border bricks included.
    clear = surface_samples({"zoom": math.sqrt(3)}, (16, 16), 0, geo)
    # Tile 0 sees the columns x 0..7, y 8..15 through every z: bricks x//4 in {0, 1}, y//4 in
    # {2, 3}, z//4 in 0..3.
    expected = sorted((bx * 4 + by) * 4 + bz for bx in (0, 1) for by in (2, 3) for bz in range(4))
    np.testing.assert_array_equal(tile_bricks(clear, geo), expected)


# The oracle: an exact ray caster written from the camera's definition alone (README): an
# orthographic camera orbiting the grid's centre; at yaw 0, pitch 0 it looks along -z with +y up;
# yaw turns it about +y towards +x, pitch raises it; zoom 1 fits the grid's bounding sphere in
# the frame's smaller side. Voxel [x, y, z] fills the cube [x, x+1] x [y, y+1] x [z, z+1].


def _centres(side: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    c = np.arange(side) + 0.5
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    return x, y, z


def _sphere() -> BoolArray:
    x, y, z = _centres(16)
    out: BoolArray = (x - 7.2) ** 2 + (y - 8.7) ** 2 + (z - 8.3) ** 2 < 5.5**2
    return out


def _box() -> BoolArray:
    x, y, z = _centres(16)
    out: BoolArray = (x > 2) & (x < 10) & (y > 3) & (y < 14) & (z > 5) & (z < 12)
    return out


def _torus() -> BoolArray:
    x, y, z = _centres(16)
    out: BoolArray = (np.hypot(x - 8, z - 8) - 5.0) ** 2 + (y - 8) ** 2 < 2.0**2
    return out


def _border() -> BoolArray:
    """Slabs on three of the grid's faces (x = 15, y = 0, z = 0): the border bricks' voxels."""
    x, y, z = _centres(16)
    out: BoolArray = (x > 14) | ((y < 2) & (z < 8)) | ((z < 1) & (x > 6))
    return out


SHAPES: dict[str, Callable[[], BoolArray]] = {
    "sphere": _sphere,
    "box": _box,
    "torus": _torus,
    "border": _border,
}


def oracle(
    colours: IntArray, camera: dict[str, float], frame: tuple[int, int], grow: float = 0.0
) -> IntArray:
    """The colour of the first voxel cube (grown by ``grow``) each pixel's ray enters."""
    side = colours.shape[0]
    yaw, pitch = math.radians(camera.get("yaw", 0.0)), math.radians(camera.get("pitch", 0.0))
    back = np.array(
        [math.cos(pitch) * math.sin(yaw), math.sin(pitch), math.cos(pitch) * math.cos(yaw)]
    )
    right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    height, width = frame
    per_voxel = camera.get("zoom", 1.0) * min(frame) / (side * math.sqrt(3))
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    u = ((cols + 0.5 - width / 2) / per_voxel).ravel()
    v = ((height / 2 - rows - 0.5) / per_voxel).ravel()
    origin = side / 2 + u[:, None] * right + v[:, None] * up
    lo = np.argwhere(colours > 0).astype(np.float64) - grow
    hi = lo + 1.0 + 2 * grow
    enter = np.full((len(origin), len(lo)), -np.inf)
    leave = np.full((len(origin), len(lo)), np.inf)
    for axis in range(3):
        d = -back[axis]
        o = origin[:, None, axis]
        if abs(d) < 1e-12:
            inside = (lo[None, :, axis] <= o) & (o <= hi[None, :, axis])
            leave = np.where(inside, leave, -np.inf)
            continue
        t0, t1 = (lo[None, :, axis] - o) / d, (hi[None, :, axis] - o) / d
        enter = np.maximum(enter, np.minimum(t0, t1))
        leave = np.minimum(leave, np.maximum(t0, t1))
    enter = np.where(enter < leave, enter, np.inf)
    first = np.argmin(enter, axis=1)
    hit = np.isfinite(enter[np.arange(len(origin)), first])
    values = colours[tuple(np.argwhere(colours > 0).T)]
    out: IntArray = np.where(hit, values[first], 0).reshape(frame)
    return out


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


@pytest.mark.parametrize(
    ("shape", "camera"),
    [
        ("sphere", {"yaw": 0.0, "pitch": 0.0, "zoom": 1.0}),
        ("box", {"yaw": 35.0, "pitch": 25.0, "zoom": 1.3}),
        ("torus", {"yaw": 0.0, "pitch": 89.0, "zoom": 1.0}),
        ("border", {"yaw": 20.0, "pitch": 30.0, "zoom": 1.0}),
        ("border", {"yaw": 200.0, "pitch": -40.0, "zoom": 1.2}),
    ],
)
def test_twin_silhouette_matches_the_oracle(shape: str, camera: dict[str, float]) -> None:
    """The 16^3 instance against the exact ray caster, same camera."""
    colours = SHAPES[shape]().astype(np.int64)
    geo = Geometry(grid=16, brick=4, samples=32)
    frame = (32, 32)
    got = _twin_frame(geo, colours, camera, frame) > 0
    expected = oracle(colours, camera, frame) > 0
    assert 0 < expected.sum() < expected.size
    assert not (got & ~(oracle(colours, camera, frame, grow=GROW) > 0)).any()
    band = max(1, math.ceil(camera["zoom"] * 32 / (16 * math.sqrt(3))))
    assert not (expected & ~got & _erode(expected, band)).any()


def _twin_frame(
    geo: Geometry, colours: IntArray, camera: dict[str, float], frame: tuple[int, int]
) -> IntArray:
    kernel = make_surface_kernel(geo)
    values = grid_values(colours > 0, colours, geo)
    out = np.zeros(frame, dtype=np.int64)
    tiles_x = frame[1] // 8
    for tile in range(frame[0] // 8 * tiles_x):
        ty, tx = divmod(tile, tiles_x)
        out[ty * 8 : ty * 8 + 8, tx * 8 : tx * 8 + 8] = kernel.twin(
            (values,), kernel.clear_args(camera, frame, tile)
        )
    return out


def test_the_nearer_box_hides_the_farther_one() -> None:
    """Occlusion, not a sum: a box in front (colour 2) over a larger box behind (colour 5)."""
    c = np.arange(16) + 0.5
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    front = (abs(x - 8) < 2.5) & (abs(y - 8) < 2.5) & (z > 11) & (z < 14)
    back = (abs(x - 8) < 7) & (abs(y - 8) < 7) & (z > 2) & (z < 6)
    colours = np.where(front, 2, np.where(back, 5, 0))
    camera = {"yaw": 0.0, "pitch": 0.0, "zoom": 1.5}
    frame = (32, 32)
    got = _twin_frame(Geometry(grid=16, brick=4, samples=32), colours, camera, frame)
    expected = oracle(colours, camera, frame)
    for colour in (2, 5):
        inner = _erode(expected == colour, 1)
        assert inner.sum() > 8
        np.testing.assert_array_equal(got[inner], colour)


# ------------------------------------------------------------------------------ baking


def test_bake_lights_the_side_facing_the_light() -> None:
    geo = Geometry(grid=16, brick=4, samples=16)
    occupied = SHAPES["sphere"]()
    albedo = np.full((*occupied.shape, 3), 0.8)
    baked = bake(occupied, albedo, [1.0, 0.0, 0.0], geo=geo)
    check_grid(baked.values, geo)
    lanes = baked.values.reshape(-1, LANES)
    x, y, z = np.meshgrid(*(np.arange(16),) * 3, indexing="ij")
    colour = lanes[grid_index(x, y, z, 0, geo) // LANES, 1]
    brightness = baked.palette[colour].sum(axis=-1)
    # The sphere's centre is near x = 7.2: its +x surface is lit, its -x surface only ambient.
    assert brightness[12, 8, 8] > 2 * brightness[2, 8, 8] > 0
    np.testing.assert_array_equal(baked.palette[0], [0.0, 0.0, 0.0])
    assert paint(colour[:, :, 8], baked.palette).shape == (16, 16, 3)


def test_normals_point_outward() -> None:
    occupied = SHAPES["sphere"]()
    n = voxel_normals(occupied)
    assert n[12, 8, 8, 0] > 0.9
    assert n[2, 8, 8, 0] < -0.9
    assert n[7, 14, 8, 1] > 0.9


@pytest.mark.parametrize(
    ("occupancy", "colours", "message"),
    [
        (np.zeros((8, 8, 8), bool), np.zeros((8, 8, 8), np.int64), "no volume"),
        (np.ones((9, 9, 9), bool), np.ones((9, 9, 9), np.int64), "must be 8\\^3 voxels"),
        (np.ones((8, 8, 8), bool), np.zeros((8, 8, 8), np.int64), "= 0 is outside"),
        (np.ones((8, 8, 8), bool), np.full((8, 8, 8), 0.5), "must be integers"),
    ],
)
def test_bad_grids_are_refused(occupancy: Any, colours: Any, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        grid_values(occupancy, colours, SMALL)


def test_bake_refuses_bad_light() -> None:
    occupied = np.ones((8, 8, 8), bool)
    with pytest.raises(ParameterError, match="light must be a non-zero 3-vector"):
        bake(occupied, np.zeros((8, 8, 8, 3)), [0.0, 0.0, 0.0], geo=SMALL)


# ------------------------------------------------------------------------------ FHE


def test_circuit_equals_twin_under_fhe() -> None:
    """One compile of a small instance (5 samples per ray) as the composable module workers
    run, one tile decrypted and equal to the twin: the edge cases' rays, then camera rays."""
    from blindframe.fhe_core.kernels import _compile_gathered

    kernel = make_surface_kernel(SMALL)
    module = _compile_gathered(kernel, kernel.inputset(np.random.default_rng(7)))
    assert module.tile.programmable_bootstrap_count == PIXELS * SMALL.samples
    module.keygen()
    values, clear = _edge_case_tile(SMALL, np.random.default_rng(3))
    camera = surface_samples({"yaw": 30.0, "pitch": 20.0}, (16, 16), 3, SMALL)
    clear[:, 26:] = camera[:, 26:]
    assert clear[1, 26:].any()
    kernel.check_clear(clear)
    args = module.tile.encrypt(values[clear[0]].ravel(), clear[1])
    got = module.tile.decrypt(module.tile.run(*args))
    np.testing.assert_array_equal(got, kernel.twin((values,), clear))
    np.testing.assert_array_equal(got, _first_hit(values, clear))
