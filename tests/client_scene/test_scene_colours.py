"""Coloured import: glTF/GLB base colours and textures, OBJ+MTL, PLY vertex colours -> albedo grid.

Every fixture is a real file written here (by trimesh's exporters or by hand) and imported
through `blindframe client import`; the expected colours are known from how the file was made.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import trimesh
from click.testing import CliRunner
from PIL import Image

from blindframe.client.scene import (
    SCENE_FORMAT,
    Scene,
    SceneFormatError,
    load_scene,
    preview_image,
    preview_panels,
    save_preview,
    save_scene,
)
from blindframe.client.scene._colours import MeshColours
from blindframe.client.scene._images import srgb_encode

from .test_scene_cli import root, run

RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
# The 2x2 texture, row 0 on top: red, green / blue, white.
TEXELS = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
RESOLUTION = 16


def textured_cube() -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.float64]
]:
    """A cube [-1, 1]^3 with 4 vertices per face (so each face has its own UVs): the +z face maps
    the whole texture (uv (0, 0) at x = y = -1), every other face the white texel's centre."""
    vertices, faces, uvs = [], [], []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            u_axis, v_axis = (axis + 1) % 3, (axis + 2) % 3
            corners = []
            for du, dv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                point = np.zeros(3)
                point[axis], point[u_axis], point[v_axis] = sign, du, dv
                corners.append(point)
            base = len(vertices)
            vertices.extend(corners)
            # Counter-clockwise seen from outside: (u, v) is right-handed with the axis.
            quad = [[0, 1, 2], [0, 2, 3]] if sign > 0 else [[0, 2, 1], [0, 3, 2]]
            faces.extend([[base + a, base + b, base + c] for a, b, c in quad])
            if axis == 2 and sign > 0:
                # u_axis is x, v_axis is y on this face.
                uvs.extend([[(p[0] + 1) / 2, (p[1] + 1) / 2] for p in corners])
            else:
                uvs.extend([[0.75, 0.25]] * 4)
    return np.array(vertices), np.array(faces, dtype=np.int64), np.array(uvs)


def two_boxes() -> tuple[trimesh.Trimesh, trimesh.Trimesh]:
    """Two unit boxes side by side along x: [-1, 0] and [0, 1] (y, z in [-0.5, 0.5])."""
    left = trimesh.creation.box(extents=(1, 1, 1))
    left.apply_translation((-0.5, 0, 0))
    right = trimesh.creation.box(extents=(1, 1, 1))
    right.apply_translation((0.5, 0, 0))
    return left, right


def write_obj(path: Path, parts: list[tuple[trimesh.Trimesh, str]], mtl: str) -> Path:
    """An OBJ (one `usemtl` per part) and its material library, written by hand."""
    lines = [f"mtllib {path.stem}.mtl"]
    offset = 1
    for mesh, material in parts:
        lines.append(f"usemtl {material}")
        lines.extend(f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in mesh.vertices)
        lines.extend(f"f {a + offset} {b + offset} {c + offset}" for a, b, c in mesh.faces)
        offset += len(mesh.vertices)
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".mtl").write_text(mtl)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The coloured models, written once."""
    folder = tmp_path_factory.mktemp("coloured")
    left, right = two_boxes()
    pbr = trimesh.visual.material.PBRMaterial
    left.visual = trimesh.visual.TextureVisuals(material=pbr(baseColorFactor=[255, 0, 0, 255]))
    right.visual = trimesh.visual.TextureVisuals(material=pbr(baseColorFactor=[0, 0, 255, 255]))
    trimesh.Scene([left, right]).export(folder / "two.glb")
    write_obj(
        folder / "two.obj",
        [(left, "red"), (right, "blue")],
        "newmtl red\nKd 1 0 0\n\nnewmtl blue\nKd 0 0 1\n",
    )
    # Both boxes' vertices at x = 0 coincide, each with its own box's colour.
    both = trimesh.Trimesh(
        np.vstack([left.vertices, right.vertices]),
        np.vstack([left.faces, right.faces + len(left.vertices)]),
        process=False,
    )
    colours = [[255, 0, 0, 255]] * len(left.vertices) + [[0, 0, 255, 255]] * len(right.vertices)
    both.visual = trimesh.visual.ColorVisuals(both, vertex_colors=np.array(colours, np.uint8))
    both.export(folder / "two.ply")
    # glTF COLOR_0 beside a material multiplies its factor: grey factor, red and blue boxes.
    tinted = trimesh.Trimesh(both.vertices, both.faces, process=False)
    tinted.visual = trimesh.visual.TextureVisuals(material=pbr(baseColorFactor=[128] * 3 + [255]))
    tinted.visual.vertex_attributes["color"] = np.array(colours, np.uint8)
    tinted.export(folder / "tinted.glb")
    # Mid-grey: linear 0.5 in glTF and MTL, sRGB byte 128 in PLY.
    grey = trimesh.creation.box(extents=(1, 1, 1))
    grey.visual = trimesh.visual.TextureVisuals(material=pbr(baseColorFactor=[128, 128, 128, 255]))
    grey.export(folder / "grey.glb")
    write_obj(folder / "grey.obj", [(grey, "grey")], "newmtl grey\nKd 0.5 0.5 0.5\n")
    plain = trimesh.Trimesh(grey.vertices, grey.faces)
    plain.visual = trimesh.visual.ColorVisuals(
        plain,
        vertex_colors=np.tile([128, 128, 128, 255], (len(plain.vertices), 1)).astype(np.uint8),
    )
    plain.export(folder / "grey.ply")
    # The textured cube, as GLB (baseColorTexture) and as OBJ + MTL + PNG (map_Kd).
    vertices, faces, uvs = textured_cube()
    cube = trimesh.Trimesh(vertices, faces, process=False)
    image = Image.fromarray(TEXELS)
    cube.visual = trimesh.visual.TextureVisuals(uv=uvs, material=pbr(baseColorTexture=image))
    cube.export(folder / "textured.glb")
    Image.fromarray(TEXELS).save(folder / "texels.png")
    lines = ["mtllib textured.mtl", "usemtl tex"]
    lines += [f"v {x:g} {y:g} {z:g}" for x, y, z in vertices]
    lines += [f"vt {u:g} {v:g}" for u, v in uvs]
    lines += [f"f {a + 1}/{a + 1} {b + 1}/{b + 1} {c + 1}/{c + 1}" for a, b, c in faces]
    (folder / "textured.obj").write_text("\n".join(lines) + "\n")
    # Kd is a placeholder: map_Kd replaces it (as Blender's importer does).
    (folder / "textured.mtl").write_text("newmtl tex\nKd 0.2 0.2 0.2\nmap_Kd texels.png\n")
    return folder


def imported(models: Path, name: str, tmp_path: Path) -> tuple[Scene, dict[str, object]]:
    """Import through the command (JSON output), then read back the scene file it wrote."""
    out = tmp_path / f"{name}.npz"
    result = CliRunner().invoke(
        root,
        ["--json", "client", "import", str(models / name), "--resolution", str(RESOLUTION),
         "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    return load_scene(out), data


@pytest.mark.parametrize("name", ["two.glb", "two.obj", "two.ply"])
def test_two_colour_boxes(models: Path, name: str, tmp_path: Path) -> None:
    scene, data = imported(models, name, tmp_path)
    assert data["coloured"] is True
    assert scene.albedo is not None
    assert scene.density is not None
    assert scene.albedo.shape == (RESOLUTION,) * 3 + (3,)
    occupied = scene.density > 0
    # The boxes fill x in [-1, 1] of the cube [-1, 1]^3: x voxels 0..7 are the left box.
    left = np.zeros_like(occupied)
    left[: RESOLUTION // 2] = True
    assert occupied[left].any()
    assert occupied[~left].any()
    right = ~left
    np.testing.assert_array_equal(
        scene.albedo[occupied & left], np.tile(RED, (int((occupied & left).sum()), 1))
    )
    np.testing.assert_array_equal(
        scene.albedo[occupied & right], np.tile(BLUE, (int((occupied & right).sum()), 1))
    )
    assert not scene.albedo[~occupied].any()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # glTF factors and MTL Kd are linear: linear 0.5 is sRGB 0.735 (trimesh keeps both
        # as bytes: 0.5 is 128 / 255).
        ("grey.glb", float(srgb_encode(128 / 255))),
        ("grey.obj", float(srgb_encode(128 / 255))),
        # PLY colours are display bytes: 128 stays 128 / 255.
        ("grey.ply", 128 / 255),
    ],
)
def test_colour_spaces(models: Path, name: str, expected: float, tmp_path: Path) -> None:
    scene, _ = imported(models, name, tmp_path)
    assert scene.albedo is not None
    assert scene.density is not None
    inside = scene.albedo[scene.density > 0]
    np.testing.assert_allclose(inside, expected, atol=1e-5)


@pytest.mark.parametrize("name", ["textured.glb", "textured.obj"])
def test_texture_is_sampled_at_the_uvs(models: Path, name: str, tmp_path: Path) -> None:
    scene, _ = imported(models, name, tmp_path)
    assert scene.albedo is not None
    assert scene.density is not None
    front = scene.albedo[:, :, -1]  # the +z layer, [x, y]
    assert (scene.density[:, :, -1] > 0).all()
    half, inner = RESOLUTION // 2, slice(1, RESOLUTION // 2 - 1)
    quadrants = [
        # (x range, y range): the texel there. v grows up, image rows grow down.
        ((inner, inner), (0, 0, 255)),  # bottom-left: blue
        ((slice(half + 1, -1), inner), (255, 255, 255)),  # bottom-right: white
        ((inner, slice(half + 1, -1)), (255, 0, 0)),  # top-left: red
        ((slice(half + 1, -1), slice(half + 1, -1)), (0, 255, 0)),  # top-right: green
    ]
    for (xs, ys), texel in quadrants:
        np.testing.assert_allclose(
            front[xs, ys], np.broadcast_to(np.divide(texel, 255), front[xs, ys].shape), atol=1e-6
        )
    # The other faces map the white texel; the back layer shows it.
    np.testing.assert_allclose(scene.albedo[1:-1, 1:-1, 0], 1.0, atol=1e-6)
    # The preview's colour row, front panel (seen from +z, +y up): top-left red.
    picture = preview_image(scene)
    assert preview_panels(scene)[-1] == ["colour: front", "colour: side", "colour: top"]
    colour_row = picture[-RESOLUTION:]
    np.testing.assert_allclose(colour_row[2, 2], (1, 0, 0), atol=1e-6)
    np.testing.assert_allclose(colour_row[-3, 2], (0, 0, 1), atol=1e-6)


def test_uncoloured_meshes_have_no_albedo(tmp_path: Path) -> None:
    trimesh.creation.box().export(tmp_path / "box.stl")
    scene = load_scene(tmp_path / "box.stl", resolution=RESOLUTION)
    assert scene.albedo is None
    written = save_scene(scene, tmp_path / "box.npz")
    with np.load(written) as data:
        assert str(data["format"]) == SCENE_FORMAT
        assert "albedo" not in data.files


def test_scene_file_keeps_the_albedo(models: Path, tmp_path: Path) -> None:
    scene, _ = imported(models, "two.glb", tmp_path)
    written = save_scene(scene, tmp_path / "again.npz")
    with np.load(written) as data:
        assert str(data["format"]) == "blindframe-scene/2"
        assert data["albedo"].shape == (RESOLUTION,) * 3 + (3,)
    again = load_scene(written)
    assert again.albedo is not None
    assert scene.albedo is not None
    np.testing.assert_array_equal(again.albedo, scene.albedo)
    preview = save_preview(again, tmp_path / "preview.png")
    with Image.open(preview) as img:
        pixels = np.asarray(img.convert("RGB"))
    # Three rows of panels (density, 16^3 voxels, colour): red and blue both show.
    assert ((pixels == (255, 0, 0)).all(axis=2)).any()
    assert ((pixels == (0, 0, 255)).all(axis=2)).any()


def test_bad_colours_are_refused(tmp_path: Path) -> None:
    box = trimesh.creation.box()
    with pytest.raises(SceneFormatError, match="12 triangles but 5 colours"):
        Scene.from_mesh(box.vertices, box.faces, resolution=16, colours=MeshColours.uniform(5))
    with pytest.raises(SceneFormatError, match="12 triangles but 3 corner colours"):
        MeshColours(np.ones((12, 3)), corner=np.ones((3, 3, 3)))
    with pytest.raises(SceneFormatError, match=r"texture indices refer to textures outside"):
        MeshColours(np.ones((2, 3)), uv=np.zeros((2, 3, 2)), texture=np.array([0, 1]),
                    textures=(np.zeros((2, 2, 3), dtype=np.uint8),))  # fmt: skip
    density = np.zeros((16, 16, 16))
    density[4:8, 4:8, 4:8] = 1.0
    with pytest.raises(SceneFormatError, match="albedo must have shape"):
        Scene("volume", "x", density=density, albedo=np.zeros((16, 16, 16)))
    albedo = np.full((16, 16, 16, 3), 0.5)
    with pytest.raises(SceneFormatError, match="0 where the density is 0"):
        Scene("volume", "x", density=density, albedo=albedo)
    with pytest.raises(SceneFormatError, match=r"albedo must lie in \[0, 1\]"):
        Scene(
            "volume",
            "x",
            density=density,
            albedo=np.where(density[..., None] > 0, [2.0, 0.0, 0.0], 0.0),
        )
    # A /1 scene file has no albedo entry.
    entries = {
        "format": np.array(SCENE_FORMAT),
        "kind": np.array("volume"),
        "source": np.array("x"),
        "meta": np.array("{}"),
        "density": density.astype(np.float32),
        "albedo": np.zeros((16, 16, 16, 3), dtype=np.float32),
    }
    np.savez(tmp_path / "old.npz", **entries)  # type: ignore[arg-type]
    with pytest.raises(SceneFormatError, match=r"unexpected entries \['albedo'\]"):
        load_scene(tmp_path / "old.npz")


def test_unreadable_textures_are_one_line_errors(models: Path, tmp_path: Path) -> None:
    # OBJ whose map_Kd names a missing file.
    obj = tmp_path / "lost.obj"
    obj.write_text((models / "textured.obj").read_text().replace("textured.mtl", "lost.mtl"))
    (tmp_path / "lost.mtl").write_text("newmtl tex\nmap_Kd -s 1 1 1 nowhere.png\n")
    # GLB whose embedded PNG is garbage (same length, so the file's structure stays valid).
    raw = bytearray((models / "textured.glb").read_bytes())
    start = raw.find(b"\x89PNG")
    raw[start : start + 16] = b"\x00" * 16
    (tmp_path / "bad.glb").write_bytes(bytes(raw))
    for name, words in [("lost.obj", "nowhere.png"), ("bad.glb", "base-colour texture 0")]:
        done = run("client", "import", name, "-o", "s.npz", cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "cannot read" in lines[0], done.stderr
        assert words in lines[0], done.stderr


def test_surface_kernel_takes_the_coloured_volume(models: Path, tmp_path: Path) -> None:
    """surface@1 bakes its input when the job is posted (it needs the job's light): import
    checks the kind and says so; the human output names the colours."""
    result = CliRunner().invoke(
        root,
        ["client", "import", str(models / "two.glb"), "--resolution", str(RESOLUTION),
         "--kernel", "surface@1", "-o", str(tmp_path / "s.npz")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"volume {RESOLUTION}^3, 25.0% filled, with colours" in result.output
    assert "surface@1: its input is baked when the job is posted" in result.output
    assert load_scene(tmp_path / "s.npz").albedo is not None


def test_gltf_vertex_colours_multiply_the_base_colour(models: Path, tmp_path: Path) -> None:
    scene, _ = imported(models, "tinted.glb", tmp_path)
    assert scene.albedo is not None
    assert scene.density is not None
    half = float(srgb_encode(128 / 255))  # linear factor 128/255 times linear 1
    occupied = scene.density > 0
    left = occupied.copy()
    left[RESOLUTION // 2 :] = False
    np.testing.assert_allclose(scene.albedo[left], np.tile((half, 0, 0), (int(left.sum()), 1)))
    right = occupied & ~left
    np.testing.assert_allclose(scene.albedo[right], np.tile((0, 0, half), (int(right.sum()), 1)))
