"""The one voxelizer against analytic occupancy: spheres, boxes, tori, transforms, bad meshes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh
from hypothesis import example, given, settings
from hypothesis import strategies as st

from blindframe.client.errors import ClientError
from blindframe.client.scene import (
    EmptySceneError,
    SceneFormatError,
    SceneTooLargeError,
    fit_bounds,
    mesh_bounds,
    voxelize_mesh,
)

from .shapes import analytic_density, torus_inside

CUBE = np.array([[-1.5, -1.5, -1.5], [1.5, 1.5, 1.5]])


def mismatch(a: np.ndarray, b: np.ndarray) -> float:
    """Share of voxels on different sides of the 0.5 threshold."""
    return float(((a >= 0.5) != (b >= 0.5)).mean())


def test_sphere_matches_analytic_occupancy() -> None:
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    density = voxelize_mesh(mesh.vertices, mesh.faces, 32, bounds=CUBE)
    # The tessellated sphere lies inside the true one by up to ~0.1% of its radius.
    expected = analytic_density(lambda x, y, z: x**2 + y**2 + z**2 < 1.0, CUBE, 32, 2)
    assert density.shape == (32, 32, 32)
    assert density.dtype == np.float64
    assert density.min() == 0.0
    assert density.max() == 1.0
    assert mismatch(density, expected) < 0.002
    assert abs(density.mean() - expected.mean()) < 0.002
    assert abs(density.sum() * (3.0 / 32) ** 3 - 4 / 3 * math.pi) < 0.05


def test_torus_matches_analytic_occupancy(torus: trimesh.Trimesh) -> None:
    density = voxelize_mesh(torus.vertices, torus.faces, 48, bounds=CUBE)
    expected = analytic_density(torus_inside(1.0, 0.4), CUBE, 48, 2)
    assert mismatch(density, expected) < 0.005
    # The hole stays empty and the tube is solid.
    centre = density[24, 24, 24]
    tube = density[int((1.5 + 1.0) / 3 * 48), 24, 24]
    assert centre == 0.0
    assert tube == 1.0


@settings(max_examples=30, deadline=None)
@given(
    lo=st.tuples(*[st.floats(-1.4, -0.05) for _ in range(3)]),
    hi=st.tuples(*[st.floats(0.05, 1.4) for _ in range(3)]),
    sub=st.sampled_from([1, 2, 3]),
)
@example(lo=(-1.0, -1.0, -0.0625), hi=(1.0, 1.0, 0.0625), sub=1)  # between two sample planes
def test_boxes_are_exact(
    lo: tuple[float, float, float], hi: tuple[float, float, float], sub: int
) -> None:
    """An axis-aligned box gives exactly the share of sample points inside it."""
    extents = np.subtract(hi, lo)
    mesh = trimesh.creation.box(extents=extents)
    mesh.apply_translation((np.add(hi, lo)) / 2)

    def inside(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return (x > lo[0]) & (x < hi[0]) & (y > lo[1]) & (y < hi[1]) & (z > lo[2]) & (z < hi[2])

    expected = analytic_density(inside, CUBE, 16, sub)
    if not expected.any():
        # Thinner than the sample spacing, between two samples: nothing to render, said so.
        with pytest.raises(EmptySceneError, match="encloses no volume"):
            voxelize_mesh(mesh.vertices, mesh.faces, 16, bounds=CUBE, supersample=sub)
        return
    density = voxelize_mesh(mesh.vertices, mesh.faces, 16, bounds=CUBE, supersample=sub)
    np.testing.assert_array_equal(density, expected)


def test_box_through_sample_points_is_counted_once() -> None:
    """Faces, edges and corners exactly on sample rays: no double or missed crossings, so no
    column leaks out of the box and none inside it is lost."""
    mesh = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    grid = np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    centres = -1 + (np.arange(16) + 0.5) / 8
    # Samples sit at -1 + (i + 0.5) / 8: sides 1.875 and 0.625 put the faces on them.
    for side in (1.0, 1.875, 0.625):
        density = voxelize_mesh(mesh.vertices * side, mesh.faces, 16, bounds=grid, supersample=1)
        strict = np.abs(centres) < side / 2 - 1e-12
        outside = np.abs(centres) > side / 2 + 1e-12
        inner = strict[:, None, None] & strict[None, :, None] & strict[None, None, :]
        outer = outside[:, None, None] | outside[None, :, None] | outside[None, None, :]
        assert (density[inner] == 1.0).all()
        assert (density[outer] == 0.0).all()


def test_fit_preserves_aspect_and_centres() -> None:
    mesh = trimesh.creation.box(extents=(4.0, 1.0, 2.0))
    mesh.apply_translation((10.0, -3.0, 5.0))
    box = fit_bounds(mesh.vertices)
    np.testing.assert_allclose(box, [[8.0, -5.0, 3.0], [12.0, -1.0, 7.0]])
    density = voxelize_mesh(mesh.vertices, mesh.faces, 16)
    # 4 x 1 x 2 in a cube of side 4: 16 x 4 x 8 voxels, centred.
    occupied = np.argwhere(density > 0.5)
    assert occupied.min(axis=0).tolist() == [0, 6, 4]
    assert occupied.max(axis=0).tolist() == [15, 9, 11]
    assert density.sum() == pytest.approx(16 * 4 * 8)


def test_transforms_move_the_grid_consistently(torus: trimesh.Trimesh) -> None:
    base = voxelize_mesh(torus.vertices, torus.faces, 32, bounds=CUBE)
    # Translation with the bounds: the same grid.
    shift = np.array([3.25, -7.5, 0.125])
    moved = voxelize_mesh(torus.vertices + shift, torus.faces, 32, bounds=CUBE + shift)
    assert mismatch(base, moved) < 0.001
    # Uniform scaling of mesh and bounds: the same grid.
    scaled = voxelize_mesh(torus.vertices * 40.0, torus.faces, 32, bounds=CUBE * 40.0)
    assert mismatch(base, scaled) < 0.001
    # A quarter turn about +x (y -> z, z -> -y) permutes the grid's axes.
    turn = trimesh.transformations.rotation_matrix(math.pi / 2, [1, 0, 0])[:3, :3]
    turned = voxelize_mesh(torus.vertices @ turn.T, torus.faces, 32, bounds=CUBE)
    expected = np.transpose(base, (0, 2, 1))[:, ::-1, :]
    assert mismatch(turned, expected) < 0.001
    # The fitted grid of the turned torus is the turned analytic torus.
    analytic = analytic_density(
        lambda x, y, z: (np.hypot(x, -z) - 1.0) ** 2 + y**2 < 0.16,
        fit_bounds(torus.vertices @ turn.T),
        32,
        2,
    )
    assert mismatch(voxelize_mesh(torus.vertices @ turn.T, torus.faces, 32), analytic) < 0.01


def test_watertight_variants_agree() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=4)
    reference = voxelize_mesh(sphere.vertices, sphere.faces, 32)
    # STL-style triangle soup: every triangle has its own copies of its vertices.
    soup_v = sphere.vertices[sphere.faces].reshape(-1, 3)
    soup_f = np.arange(len(soup_v)).reshape(-1, 3)
    np.testing.assert_array_equal(voxelize_mesh(soup_v, soup_f, 32), reference)
    # Inverted or inconsistently wound faces: parity still decides.
    np.testing.assert_array_equal(
        voxelize_mesh(sphere.vertices, sphere.faces[:, ::-1], 32), reference
    )
    mixed = sphere.faces.copy()
    mixed[::3] = mixed[::3, ::-1]
    np.testing.assert_array_equal(voxelize_mesh(sphere.vertices, mixed, 32), reference)


def test_overlapping_closed_parts_are_a_union() -> None:
    """Two intersecting spheres (each closed, outward facing): the overlap stays solid."""
    a = trimesh.creation.icosphere(subdivisions=4)
    b = a.copy()
    b.apply_translation([0.8, 0.0, 0.0])
    both = trimesh.util.concatenate([a, b])
    bounds = fit_bounds(both.vertices)
    density = voxelize_mesh(both.vertices, both.faces, 32, bounds=bounds)

    def union(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return (x**2 + y**2 + z**2 < 1) | ((x - 0.8) ** 2 + y**2 + z**2 < 1)

    assert mismatch(density, analytic_density(union, bounds, 32, 2)) < 0.005


def test_nested_cavity_stays_empty() -> None:
    """A hollow ball: outer surface facing out, inner surface facing in (into the cavity)."""
    outer = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    inner = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    inner.invert()
    shell = trimesh.util.concatenate([outer, inner])
    density = voxelize_mesh(shell.vertices, shell.faces, 32)
    assert density[16, 16, 16] == 0.0
    assert density[16, 16, 2] == 1.0


def test_small_hole_is_closed_by_the_other_axes() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=4)
    keep = sphere.vertices[sphere.faces][:, :, 1].max(axis=1) < 0.9
    assert (~keep).sum() > 0
    closed = voxelize_mesh(sphere.vertices, sphere.faces, 32, bounds=CUBE)
    holed = voxelize_mesh(sphere.vertices, sphere.faces[keep], 32, bounds=CUBE)
    # Only the cap by the hole (y > 0.9, from voxel row 25 up: under 1% of the ball) may go.
    assert mismatch(closed, holed) < 0.01
    assert (holed[:, :25, :] == closed[:, :25, :]).all()


def test_open_surface_encloses_nothing() -> None:
    plane_v = np.array([[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1.0]])
    with pytest.raises(EmptySceneError, match="encloses no volume") as info:
        voxelize_mesh(plane_v, [[0, 1, 2], [0, 2, 3]], 16)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, ClientError)


def test_large_mesh_voxelizes() -> None:
    """~330k triangles at 64^3 (no timing assertion: bench material; it takes about a second)."""
    sphere = trimesh.creation.icosphere(subdivisions=7)
    density = voxelize_mesh(sphere.vertices, sphere.faces, 64)
    assert abs(density.mean() - math.pi / 6) < 0.002


@pytest.mark.parametrize(
    ("vertices", "faces", "error", "message"),
    [
        (np.zeros((3, 2)), [[0, 1, 2]], SceneFormatError, "shape"),
        ([[0, 0, 0], [1, 0, 0], [0, np.nan, 0]], [[0, 1, 2]], SceneFormatError, "NaN"),
        ([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 5]], SceneFormatError, "outside"),
        ([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2, 0]], SceneFormatError, "triangles"),
        ([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.zeros((0, 3), int), EmptySceneError, "no triangles"),
        ([[1, 1, 1]] * 3, [[0, 1, 2]], EmptySceneError, "zero size"),
    ],
)
def test_bad_meshes_are_refused(
    vertices: object, faces: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        voxelize_mesh(vertices, faces, 16)  # type: ignore[arg-type]


def test_resolution_and_bounds_are_checked(torus: trimesh.Trimesh) -> None:
    with pytest.raises(SceneTooLargeError, match=r"outside 16\.\.256"):
        voxelize_mesh(torus.vertices, torus.faces, 512)
    with pytest.raises(SceneTooLargeError):
        voxelize_mesh(torus.vertices, torus.faces, 8)
    with pytest.raises(SceneFormatError, match="cube"):
        voxelize_mesh(torus.vertices, torus.faces, 16, bounds=[[0, 0, 0], [1, 2, 1]])
    assert mesh_bounds(torus.vertices, torus.faces)[1, 2] == pytest.approx(1.4)
