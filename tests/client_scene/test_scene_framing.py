"""Imported models are framed by default, and the volume frame shows what the mesh looks like.

The frames come from the kernel's twin through the artist's own job (``plan_volume_job`` then
``plain_frame``, what ``client fetch`` decrypts to), with one canary margin tile: no FHE here.
The reference silhouette is the mesh's own: its triangles projected by the camera's definition
(orthographic, orbiting the grid's centre; ``zoom = 1`` fits the grid's bounding sphere in the
frame's smaller side) and filled, with no voxel in between.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import numpy as np
import numpy.typing as npt
import pytest
import trimesh
from click.testing import CliRunner

from blindframe.client.scene import Scene, load_scene, to_kernel_input, to_y_up
from blindframe.client.scene._framing import (
    DEFAULT_PITCH,
    DEFAULT_YAW,
    frame_model,
    volume_camera,
)
from blindframe.client.scene.importer import import_scene
from blindframe.fhe_core.artist_jobs import plain_frame, plan_volume_job
from blindframe.fhe_core.sample import SAMPLE_CAMERA

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
GRID = 16  # volume@1's grid side, in voxels
RADIUS = GRID * math.sqrt(3) / 2


def twin_mask(scene: Scene, camera: dict[str, float], frame_hw: tuple[int, int]) -> BoolArray:
    """Pixels the volume@1 frame of ``scene`` draws (its twin, through the artist's job)."""
    (volume,) = to_kernel_input(scene, "volume@1")
    frame = plain_frame(*plan_volume_job("volume@1", volume, camera, frame_hw, margin_tiles=1))
    mask: BoolArray = frame > 0
    return mask


def mesh_mask(
    vertices: FloatArray,
    faces: npt.NDArray[np.int64],
    scene: Scene,
    camera: dict[str, float],
    frame_hw: tuple[int, int],
) -> BoolArray:
    """Pixel centres inside the projection of any triangle (+y-up world coordinates, placed in
    the grid by the scene's bounds)."""
    assert scene.bounds is not None
    height, width = frame_hw
    yaw, pitch = math.radians(camera["yaw"]), math.radians(camera["pitch"])
    back = np.array(
        [math.cos(pitch) * math.sin(yaw), math.sin(pitch), math.cos(pitch) * math.cos(yaw)]
    )
    right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    side = scene.bounds[1, 0] - scene.bounds[0, 0]
    grid = (vertices - scene.bounds[0]) / side * GRID - GRID / 2  # voxels from the centre
    pixels_per_voxel = camera["zoom"] * min(height, width) / (2 * RADIUS)
    px = grid @ right * pixels_per_voxel + width / 2
    py = height / 2 - grid @ up * pixels_per_voxel
    rows, cols = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    qx, qy = cols.ravel()[None, :], rows.ravel()[None, :]
    corners = [(px[faces[:, k], None], py[faces[:, k], None]) for k in range(3)]
    signs = []
    for k in range(3):
        (ax, ay), (bx, by) = corners[k], corners[(k + 1) % 3]
        signs.append((bx - ax) * (qy - ay) - (by - ay) * (qx - ax))
    inside = ((signs[0] >= 0) & (signs[1] >= 0) & (signs[2] >= 0)) | (
        (signs[0] <= 0) & (signs[1] <= 0) & (signs[2] <= 0)
    )
    mask: BoolArray = inside.any(axis=0).reshape(height, width)
    return mask


def _dilate(mask: BoolArray, steps: int) -> BoolArray:
    out = mask.copy()
    for _ in range(steps):
        padded = np.pad(out, 1, constant_values=False)
        grown = np.zeros_like(out)
        for dy in range(3):
            for dx in range(3):
                grown |= padded[dy : dy + out.shape[0], dx : dx + out.shape[1]]
        out = grown
    return out


def check_framed(mask: BoolArray) -> None:
    """The model fills the frame, with background all around it."""
    assert mask.any(), "the frame is empty: the camera misses the model"
    edges = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    assert not edges.any(), f"the model is cut by the frame's edge:\n{mask.astype(int)}"
    rows, cols = np.nonzero(mask)
    span = max(
        (rows.max() - rows.min() + 1) / mask.shape[0], (cols.max() - cols.min() + 1) / mask.shape[1]
    )
    assert span >= 0.75, f"the model spans only {span:.0%} of the frame:\n{mask.astype(int)}"


@pytest.fixture(scope="module")
def off_centre_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, trimesh.Trimesh]:
    """A flat torus far from the origin, tilted, saved as GLB."""
    mesh = trimesh.creation.torus(
        major_radius=2.0, minor_radius=0.5, major_sections=48, minor_sections=16
    )
    mesh.apply_transform(trimesh.transformations.rotation_matrix(0.4, [1.0, 0.0, 0.2]))
    mesh.apply_translation([120.0, -45.0, 30.0])
    path = tmp_path_factory.mktemp("framing") / "torus.glb"
    mesh.export(path)
    return path, mesh


@pytest.fixture(scope="module")
def off_centre(off_centre_file: tuple[Path, trimesh.Trimesh]) -> tuple[Scene, trimesh.Trimesh]:
    """That torus imported as an artist would."""
    path, mesh = off_centre_file
    return load_scene(path, resolution=32), mesh


@pytest.mark.parametrize(
    "frame_hw", [(64, 64), (32, 48), (48, 24)], ids=["64x64", "48x32", "24x48"]
)
def test_imported_mesh_is_framed(
    off_centre: tuple[Scene, trimesh.Trimesh], frame_hw: tuple[int, int]
) -> None:
    scene, mesh = off_centre
    assert scene.density is not None
    camera = volume_camera(scene.density, frame_hw)
    assert (camera["yaw"], camera["pitch"]) == (DEFAULT_YAW, DEFAULT_PITCH)
    got = twin_mask(scene, camera, frame_hw)
    check_framed(got)
    # And it is the torus: the twin agrees with the mesh's own silhouette but for a voxel's
    # width (16^3 voxels occupied from half full) along its edge.
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    expected = mesh_mask(vertices, np.asarray(mesh.faces), scene, camera, frame_hw)
    band = math.ceil(camera["zoom"] * min(frame_hw) / (2 * RADIUS))
    assert not (got & ~_dilate(expected, band)).any()
    assert (got & expected).sum() / (got | expected).sum() >= 0.75


def test_sample_camera_does_not_frame_a_model(off_centre: tuple[Scene, trimesh.Trimesh]) -> None:
    """What meshes got before: the sample's camera leaves a thin model small in the frame."""
    scene, _ = off_centre
    with pytest.raises(AssertionError, match="spans only"):
        check_framed(twin_mask(scene, dict(SAMPLE_CAMERA), (64, 64)))


def test_given_camera_is_kept(off_centre: tuple[Scene, trimesh.Trimesh]) -> None:
    scene, _ = off_centre
    assert volume_camera(scene.density, (64, 64), {"yaw": 1.0, "pitch": 2.0, "zoom": 3.0}) == {
        "yaw": 1.0,
        "pitch": 2.0,
        "zoom": 3.0,
    }
    # A zoom alone keeps the default angles; angles alone get the zoom that frames them.
    assert volume_camera(scene.density, (64, 64), {"zoom": 2.5}) == {
        "yaw": DEFAULT_YAW,
        "pitch": DEFAULT_PITCH,
        "zoom": 2.5,
    }
    side = volume_camera(scene.density, (64, 64), {"yaw": 90.0})
    assert side == frame_model(scene.density, (64, 64), yaw=90.0, pitch=DEFAULT_PITCH)
    check_framed(twin_mask(scene, side, (64, 64)))
    # The sample scene (no model) keeps the sample's camera.
    assert volume_camera(None, (64, 64)) == SAMPLE_CAMERA
    assert volume_camera(None, (64, 64), {"pitch": 40.0}) == {**SAMPLE_CAMERA, "pitch": 40.0}


def test_frame_model_limits() -> None:
    """A speck is zoomed in no further than 4; an empty grid sees the whole grid."""
    speck = np.zeros((32, 32, 32))
    speck[15:17, 15:17, 15:17] = 1.0
    assert frame_model(speck, (64, 64))["zoom"] == 4.0
    assert frame_model(np.zeros((16, 16, 16)), (64, 64))["zoom"] == 1.0
    full = np.ones((16, 16, 16))
    # A full cube at yaw 20: its corners reach 0.5 * (cos 20 + sin 20) of the side across.
    expected = (
        0.9 * (math.sqrt(3) / 2) / (0.5 * (math.cos(math.radians(20)) + math.sin(math.radians(20))))
    )
    assert frame_model(full, (64, 64), pitch=0.0)["zoom"] == pytest.approx(expected, abs=1e-3)


def test_suzanne_front_and_top() -> None:
    """Blender's Suzanne, voxelized by the add-on's own path, framed by default: its volume
    frame matches the mesh's silhouette from the front three-quarter view and from the top."""
    import bpy

    from blindframe.client.blender.extract import extract_volume, mesh_arrays

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_monkey_add(location=(3.0, -1.0, 2.0), rotation=(0.0, 0.0, 0.3))
    monkey = bpy.context.active_object
    scene = extract_volume(objects=[monkey], resolution=64)
    vertices, faces = mesh_arrays([monkey])
    vertices = to_y_up(vertices)
    assert scene.density is not None
    for given in (None, {"yaw": 0.0, "pitch": 89.0}):
        camera = volume_camera(scene.density, (32, 32), given)
        got = twin_mask(scene, camera, (32, 32))
        check_framed(got)
        expected = mesh_mask(vertices, faces, scene, camera, (32, 32))
        band = math.ceil(camera["zoom"] * 32 / (2 * RADIUS))
        assert not (got & ~_dilate(expected, band)).any()
        # Suzanne's ears are thinner than half a 16^3 voxel: volume@1 loses them, hence 0.7.
        assert (got & expected).sum() / (got | expected).sum() >= 0.7


def test_import_shows_the_framing_camera(
    off_centre_file: tuple[Path, trimesh.Trimesh], tmp_path: Path
) -> None:
    @click.group()
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def root(ctx: click.Context, as_json: bool) -> None:
        ctx.obj = {"json": as_json}

    root.add_command(click.Group("client", commands={"import": import_scene}))
    path, _ = off_centre_file
    args = ["client", "import", str(path), "--resolution", "32", "-o", str(tmp_path / "s.npz")]
    result = CliRunner().invoke(root, ["--json", *args])
    assert result.exit_code == 0, result.output
    camera = json.loads(result.output)["camera"]
    scene = load_scene(tmp_path / "s.npz")
    assert camera == volume_camera(scene.density, (64, 64))
    assert camera["zoom"] > SAMPLE_CAMERA["zoom"]  # a thin ring: closer than the sample's view
    human = CliRunner().invoke(root, args)
    assert human.exit_code == 0, human.output
    assert f"camera    yaw 20, pitch 15, zoom {camera['zoom']:g} (the model framed" in human.output
