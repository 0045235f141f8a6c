"""FBX import through Blender's own FBX importer, of files written by Blender's FBX exporter (the
tool 3ds Max, Maya and Cinema 4D files are checked against here): the grid equals the one from
a glTF export of the same objects, whichever up axis the FBX was written with, and each
material's base colour is kept. Files it cannot read give one line saying why."""

from __future__ import annotations

import contextlib
import io
import json
import struct
from pathlib import Path

import bpy
import numpy as np
import pytest

from blindframe.client.scene import EmptySceneError, SceneFormatError, load_scene
from blindframe.client.scene._images import srgb_encode

PAINT = (0.8, 0.2, 0.1, 1.0)
STEEL = (0.25, 0.3, 0.35, 1.0)
RESOLUTION = 32


def _material(name: str, colour: tuple[float, float, float, float]) -> object:
    material = bpy.data.materials.new(name)
    if material.node_tree is None:
        material.use_nodes = True
    material.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = colour
    return material


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torus (painted) and a box (steel), non-uniformly scaled and rotated so a wrong axis
    shows, written by Blender's exporters: FBX Y-up (Maya's axes), FBX Z-up (3ds Max's), GLB;
    and an FBX with only a camera and an empty."""
    folder = tmp_path_factory.mktemp("fbx")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_torus_add(
        major_radius=1.0,
        minor_radius=0.4,
        major_segments=48,
        minor_segments=16,
        location=(0.4, -0.2, 0.3),
        rotation=(0.5, 0.3, 0.1),
    )
    torus = bpy.context.active_object
    torus.scale = (1.3, 0.9, 1.0)
    torus.data.materials.append(_material("paint", PAINT))
    bpy.ops.mesh.primitive_cube_add(size=0.8, location=(2.2, 0.5, -0.6), rotation=(0.0, 0.0, 0.4))
    box = bpy.context.active_object
    box.data.materials.append(_material("steel", STEEL))
    bpy.ops.export_scene.fbx(
        filepath=str(folder / "y-up.fbx"), axis_forward="-Z", axis_up="Y", use_selection=False
    )
    bpy.ops.export_scene.fbx(
        filepath=str(folder / "z-up.fbx"), axis_forward="Y", axis_up="Z", use_selection=False
    )
    bpy.ops.export_scene.gltf(filepath=str(folder / "same.glb"), export_format="GLB")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.object.empty_add(location=(1.0, 0.0, 0.0))
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    bpy.context.scene.collection.objects.link(camera)
    bpy.ops.export_scene.fbx(filepath=str(folder / "no-mesh.fbx"))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return folder


def _import(path: Path, out: Path, *options: str, as_json: bool = False) -> tuple[int, str, str]:
    """`blindframe [--json] client import PATH OPTIONS -o OUT/scene.npz` in this process,
    through the root group's error handling; returns (exit code, stdout, stderr)."""
    from blindframe._cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            root = ["--json"] if as_json else []
            main([*root, "client", "import", str(path), *options, "-o", str(out / "scene.npz")])
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.mark.parametrize(("name", "as_json"), [("y-up.fbx", True), ("z-up.fbx", False)])
def test_fbx_gives_the_gltf_grid_and_keeps_base_colours(
    exported: Path, out: Path, name: str, as_json: bool
) -> None:
    code, stdout, stderr = _import(
        exported / name, out, "--resolution", str(RESOLUTION), as_json=as_json
    )
    assert code == 0, stderr
    if as_json:
        materials = json.loads(stdout)["materials"]
        assert set(materials) == {"paint", "steel"}
        np.testing.assert_allclose(materials["paint"], PAINT, atol=1e-6)
    else:
        assert "material  paint: base colour 0.800, 0.200, 0.100" in stdout
    scene = load_scene(out / "scene.npz")
    reference = load_scene(exported / "same.glb", resolution=RESOLUTION)
    assert scene.kind == "volume"
    assert scene.meta["objects"] == 2
    assert scene.meta["triangles"] == reference.meta["triangles"] == 48 * 16 * 2 + 12
    assert scene.bounds is not None
    assert reference.bounds is not None
    np.testing.assert_allclose(scene.bounds, reference.bounds, atol=1e-4)
    # glTF keeps float32 coordinates: a voxel or two on the surface may differ.
    assert np.abs(scene.density - reference.density).sum() <= 2.0
    assert 0.02 < float(scene.density.mean()) < 0.5
    # The scene file keeps the base colours.
    kept = json.loads(str(scene.meta["materials"]))
    np.testing.assert_allclose(kept["paint"], PAINT, atol=1e-6)
    np.testing.assert_allclose(kept["steel"], STEEL, atol=1e-6)
    # And they colour the grid: voxels are paint or steel (sRGB), as in the glTF's grid
    # (whose factors trimesh keeps as bytes: a little off).
    assert scene.albedo is not None
    assert reference.albedo is not None
    voxels = scene.albedo[scene.density > 0]
    expected = srgb_encode(np.array([PAINT[:3], STEEL[:3]]))
    distance = np.abs(voxels[:, None, :] - expected[None, :, :]).max(axis=2)  # (voxels, 2)
    pure = distance.min(axis=1) < 1e-5
    # The rest are voxels where the box dips into the torus: they blend the two.
    assert pure.mean() > 0.9
    assert set(np.argmin(distance[pure], axis=1).tolist()) == {0, 1}
    both = (scene.density > 0) & (reference.density > 0)
    np.testing.assert_allclose(scene.albedo[both], reference.albedo[both], atol=0.01)


def _broken(exported: Path, out: Path, kind: str) -> Path:
    path = out / f"{kind}.fbx"
    if kind == "no-mesh":
        return exported / "no-mesh.fbx"
    if kind == "png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    elif kind == "ascii":
        path.write_text("; FBX 7.4.0 project file\nFBXHeaderExtension:  {\n\tFBXVersion: 7400\n}\n")
    elif kind == "header-only":
        path.write_bytes(b"Kaydara FBX Binary")
    elif kind == "fbx-6.1":
        path.write_bytes(b"Kaydara FBX Binary  \x00\x1a\x00" + struct.pack("<I", 6100) + bytes(64))
    else:  # truncated: the first 60 % of a good file
        data = (exported / "y-up.fbx").read_bytes()
        path.write_bytes(data[: len(data) * 6 // 10])
    return path


@pytest.mark.parametrize(
    ("kind", "error", "words"),
    [
        ("no-mesh", EmptySceneError, "holds no mesh to render (only camera, empty objects)"),
        ("png", SceneFormatError, "is not an FBX file: this file is a PNG image"),
        ("ascii", SceneFormatError, "is ASCII FBX; Blender's importer reads binary FBX only"),
        ("fbx-6.1", SceneFormatError, "is FBX 6.1; Blender reads FBX 7.1 (2011) and later"),
        ("header-only", SceneFormatError, "is truncated: it ends inside its header"),
        ("truncated", SceneFormatError, "is truncated"),
    ],
)
def test_unreadable_fbx_is_one_line(
    exported: Path, out: Path, kind: str, error: type[Exception], words: str
) -> None:
    code, stdout, stderr = _import(_broken(exported, out, kind), out, as_json=True)
    assert code == 1
    assert "Traceback" not in stderr
    (line,) = stderr.strip().splitlines()
    assert line.startswith("Error: ")
    assert words in line
    assert json.loads(stdout)["error"] == error.__name__
    assert not (out / "scene.npz").exists()
