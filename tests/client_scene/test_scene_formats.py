"""Every import format, written by the test itself, read back into scenes and kernel inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import trimesh

from blindframe.client.scene import (
    SCENE_FORMAT,
    Scene,
    default_kernel,
    fit_bounds,
    load_scene,
    preview_caption,
    preview_image,
    preview_panels,
    save_preview,
    save_scene,
    to_kernel_input,
    to_y_up,
    voxelize_mesh,
)
from blindframe.fhe_core.kernels import get_kernel
from blindframe.fhe_core.tiling import split_tiles, tile_grid
from blindframe.fhe_core.voxels import quantize_density

from .shapes import srgb_decode, write_exr, write_png


def two_part_scene() -> tuple[trimesh.Scene, np.ndarray, np.ndarray]:
    """A scene graph with two instances of one torus and a box, each under its own transform;
    and the same triangles flattened by hand."""
    torus = trimesh.creation.torus(major_radius=1.0, minor_radius=0.3, major_sections=48)
    box = trimesh.creation.box(extents=(0.5, 2.0, 0.5))
    placements = [
        (torus, trimesh.transformations.translation_matrix([0.0, 0.0, 0.0])),
        (torus, trimesh.transformations.rotation_matrix(math.pi / 2, [0, 1, 0], [2.5, 0, 0])),
        (box, trimesh.transformations.translation_matrix([-2.0, 0.5, 0.25])),
    ]
    scene = trimesh.Scene()
    vertices, faces, offset = [], [], 0
    for index, (mesh, matrix) in enumerate(placements):
        scene.add_geometry(mesh, node_name=f"part{index}", transform=matrix)
        vertices.append(trimesh.transform_points(mesh.vertices, matrix))
        faces.append(mesh.faces + offset)
        offset += len(mesh.vertices)
    return scene, np.concatenate(vertices), np.concatenate(faces)


@pytest.fixture(scope="module")
def parts() -> tuple[trimesh.Scene, np.ndarray, np.ndarray]:
    return two_part_scene()


def export(scene: trimesh.Scene, folder: Path, name: str) -> Path:
    """Write ``scene`` as ``name``; glTF keeps its buffers in separate files beside it."""
    suffix = Path(name).suffix
    if suffix == ".gltf":
        for file_name, data in scene.export(file_type="gltf").items():
            (folder / (name if file_name == "model.gltf" else file_name)).write_bytes(data)
    elif suffix in (".stl", ".ply"):
        scene.to_mesh().export(folder / name)  # one mesh per file: the graph flattened
    else:
        scene.export(folder / name)
    return folder / name


@pytest.mark.parametrize("name", ["model.glb", "model.gltf", "model.obj", "model.stl", "model.ply"])
def test_meshes_round_trip(
    name: str, parts: tuple[trimesh.Scene, np.ndarray, np.ndarray], out: Path
) -> None:
    scene_graph, vertices, faces = parts
    path = export(scene_graph, out, name)
    scene = load_scene(path, resolution=32)
    expected = voxelize_mesh(vertices, faces, 32)
    assert scene.kind == "volume"
    assert scene.source == name
    assert scene.resolution == 32
    # Files store float32 (OBJ: decimal text): a few boundary voxels may move.
    assert np.abs(scene.density - expected).mean() < 0.002
    assert scene.bounds is not None
    np.testing.assert_allclose(scene.bounds, fit_bounds(vertices), atol=1e-5)
    assert scene.meta["triangles"] == len(faces)
    # Saved and read back bit for bit.
    saved = save_scene(scene, out / "scene.npz")
    again = load_scene(saved)
    np.testing.assert_array_equal(again.density, scene.density)
    np.testing.assert_array_equal(again.bounds, scene.bounds)
    assert dict(again.meta) == dict(scene.meta)
    assert again.source == name


def test_z_up_files_are_turned(out: Path) -> None:
    box = trimesh.creation.box(extents=(1.0, 0.5, 2.0))  # tall along z
    box.export(out / "tall.stl")
    z_up = load_scene(out / "tall.stl", resolution=16, up="z")
    y_up = load_scene(out / "tall.stl", resolution=16, up="y")
    # Read as Z-up, the tall axis becomes +y; z then runs along the old -y.
    extents = [np.ptp(np.argwhere(z_up.density > 0.5)[:, k]) + 1 for k in range(3)]
    assert extents == [8, 16, 4]
    extents = [np.ptp(np.argwhere(y_up.density > 0.5)[:, k]) + 1 for k in range(3)]
    assert extents == [8, 4, 16]
    np.testing.assert_allclose(to_y_up([[1.0, 2.0, 3.0]]), [[1.0, 3.0, -2.0]])


def test_volume_kernel_input_is_fhe_cores_quantization(
    parts: tuple[trimesh.Scene, np.ndarray, np.ndarray], out: Path
) -> None:
    scene = load_scene(export(parts[0], out, "model.glb"), resolution=64)
    (occupancy,) = to_kernel_input(scene, "volume@1")
    np.testing.assert_array_equal(occupancy, quantize_density(scene.density))
    get_kernel("volume@1").check_enc([occupancy])
    assert 0 < occupancy.sum() < 4096
    assert default_kernel("volume") == "volume@1"


def check_tiles(kernel_id: str, planes: tuple[np.ndarray, ...]) -> None:
    """Every tile passes the kernel's own input validation (shapes and ranges)."""
    kernel = get_kernel(kernel_id)
    grid = tile_grid(planes[0].shape[-2:], kernel.tile_hw, kernel.halo)
    tiles = [split_tiles(grid, plane) for plane in planes]
    for index in range(grid.count):
        kernel.check_enc([t[index] for t in tiles])


def assert_normals_close(got: np.ndarray, expected: np.ndarray, degrees: float) -> None:
    surface = np.abs(expected).sum(axis=0) > 0
    assert (np.abs(got).sum(axis=0) > 0).tolist() == surface.tolist()
    cos = np.clip((got * expected).sum(axis=0)[surface], -1, 1)
    assert np.degrees(np.arccos(cos)).max() < degrees


def test_png_gbuffer(gbuffer: tuple[np.ndarray, np.ndarray], out: Path) -> None:
    normals, albedo = gbuffer
    write_png(out / "n.png", (normals + 1) / 2 * (np.abs(normals).sum(axis=0) > 0))
    write_png(out / "a.png", albedo)
    scene = load_scene(normal=out / "n.png", albedo=out / "a.png")
    assert scene.kind == "gbuffer"
    assert scene.frame_hw == (40, 48)
    assert scene.normals is not None
    assert scene.albedo is not None
    assert_normals_close(scene.normals, normals, degrees=1.0)
    np.testing.assert_allclose(scene.albedo, albedo, atol=0.5 / 255 + 1e-6)
    planes = to_kernel_input(scene, "shade@1")
    assert [p.shape for p in planes] == [(3, 40, 48), (3, 40, 48)]
    assert (planes[0].min(), planes[0].max()) == (-4, 4)
    assert (planes[1].min(), planes[1].max()) == (0, 3)
    # The sphere's centre faces the viewer: (0, 0, 4); the background is all zero.
    assert planes[0][:, 20, 24].tolist() == [0, 0, 4]
    assert planes[0][:, 0, 0].tolist() == [0, 0, 0]
    assert planes[1][:, 0, 0].tolist() == [0, 0, 0]
    check_tiles("shade@1", planes)


def test_png_alpha_marks_the_background(gbuffer: tuple[np.ndarray, np.ndarray], out: Path) -> None:
    normals, albedo = gbuffer
    surface = np.abs(normals).sum(axis=0) > 0
    # A mid-grey background (decodes to length 0) and an opaque white albedo background.
    encoded = np.where(surface, (normals + 1) / 2, 0.5)
    write_png(out / "n.png", encoded)
    rgba = np.concatenate([np.where(surface, albedo, 1.0), surface[None].astype(float)])
    write_png(out / "a.png", rgba)
    scene = load_scene(normal=out / "n.png", albedo=out / "a.png")
    assert scene.albedo is not None
    assert (scene.albedo[:, ~surface] == 0).all()
    assert scene.meta["coverage"] == pytest.approx(surface.mean(), abs=1e-6)


def test_exr_gbuffer(gbuffer: tuple[np.ndarray, np.ndarray], out: Path) -> None:
    normals, albedo = gbuffer
    linear = srgb_decode(albedo)
    write_exr(out / "n.exr", {c: normals[i] for i, c in enumerate("RGB")})
    write_exr(out / "a.exr", {c: linear[i] for i, c in enumerate("RGB")})
    scene = load_scene(normal=out / "n.exr", albedo=out / "a.exr")
    assert scene.normals is not None
    assert scene.albedo is not None
    assert_normals_close(scene.normals, normals, degrees=0.05)
    # EXR colours are linear: imported as sRGB-encoded display values.
    np.testing.assert_allclose(scene.albedo, albedo, atol=1e-4)
    check_tiles("shade@1", to_kernel_input(scene, "shade@1"))


def test_mixed_pass_formats(gbuffer: tuple[np.ndarray, np.ndarray], out: Path) -> None:
    normals, albedo = gbuffer
    write_exr(out / "n.exr", {c: normals[i] for i, c in enumerate("XYZ")})
    write_png(out / "a.png", albedo)
    scene = load_scene(normal=out / "n.exr", albedo=out / "a.png")
    assert scene.normals is not None
    assert_normals_close(scene.normals, normals, degrees=0.05)


def test_blender_style_multilayer_exr(gbuffer: tuple[np.ndarray, np.ndarray], out: Path) -> None:
    """One EXR with Blender's pass names: a G-buffer when it holds Normal and Diffuse Color,
    a frame from its Combined layer otherwise."""
    normals, albedo = gbuffer
    linear = srgb_decode(albedo)
    channels = {f"ViewLayer.Normal.{c}": normals[i] for i, c in enumerate("XYZ")}
    channels |= {f"ViewLayer.Diffuse Color.{c}": linear[i] for i, c in enumerate("RGB")}
    channels |= {f"ViewLayer.Combined.{c}": linear[i] * 0.5 for i, c in enumerate("RGB")}
    channels["ViewLayer.Combined.A"] = np.ones_like(linear[0])
    scene = load_scene(write_exr(out / "passes.exr", channels))
    assert scene.kind == "gbuffer"
    assert scene.normals is not None
    assert_normals_close(scene.normals, normals, degrees=0.05)
    del channels["ViewLayer.Normal.X"]
    frame = load_scene(write_exr(out / "beauty.exr", channels))
    assert frame.kind == "frame"
    assert frame.frame is not None
    assert frame.frame.shape == (3, 40, 48)


def test_frames(out: Path) -> None:
    rng = np.random.default_rng(5)
    rgb = rng.random((3, 24, 40))
    write_png(out / "rgb.png", rgb)
    scene = load_scene(out / "rgb.png")
    assert scene.kind == "frame"
    assert scene.frame is not None
    np.testing.assert_allclose(scene.frame, np.rint(rgb * 255) / 255, atol=1e-6)
    (grey,) = to_kernel_input(scene, "post@1")
    luma = np.tensordot([0.2126, 0.7152, 0.0722], np.rint(rgb * 255) / 255, axes=1)
    np.testing.assert_array_equal(grey, np.rint(luma * 7).astype(np.int64))
    check_tiles("post@1", (grey,))
    # Grey PNG: one channel; RGBA: straight alpha over black.
    write_png(out / "grey.png", rgb[:1], mode="L")
    assert load_scene(out / "grey.png").frame.shape == (1, 24, 40)  # type: ignore[union-attr]
    alpha = np.zeros((1, 24, 40))
    alpha[:, :, 20:] = 1.0
    write_png(out / "rgba.png", np.concatenate([rgb, alpha]))
    over_black = load_scene(out / "rgba.png").frame
    assert over_black is not None
    assert (over_black[:, :, :20] == 0).all()
    np.testing.assert_allclose(
        over_black[:, :, 20:], np.rint(rgb[:, :, 20:] * 255) / 255, atol=1e-6
    )
    # EXR: linear, sRGB-encoded on import, clipped above 1.
    write_exr(out / "f.exr", {c: srgb_decode(rgb[i]) * (1 + (i == 0)) for i, c in enumerate("RGB")})
    exr = load_scene(out / "f.exr").frame
    assert exr is not None
    np.testing.assert_allclose(exr[1:], rgb[1:], atol=1e-4)
    assert exr[0].max() == 1.0


def test_sixteen_bit_grey_png(out: Path) -> None:
    from PIL import Image

    values = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.uint16)
    Image.fromarray(values).save(out / "deep.png")
    frame = load_scene(out / "deep.png").frame
    assert frame is not None
    np.testing.assert_allclose(frame[0], values / 65535, atol=1e-6)


def test_scene_files_round_trip_every_kind(
    gbuffer: tuple[np.ndarray, np.ndarray], out: Path
) -> None:
    normals, albedo = gbuffer
    scenes = [
        Scene.from_mesh(*_tetra(), resolution=16, source="tetra", meta={"note": "ok"}),
        Scene.from_passes(normals, albedo, source="passes"),
        Scene("frame", "noise", frame=np.random.default_rng(1).random((3, 8, 16))),
    ]
    for scene in scenes:
        path = save_scene(scene, out / f"{scene.kind}.npz")
        with np.load(path, allow_pickle=False) as data:
            assert str(data["format"]) == SCENE_FORMAT
            assert str(data["kind"]) == scene.kind
            assert isinstance(json.loads(str(data["meta"])), dict)
        again = load_scene(path)
        assert again.kind == scene.kind
        for name in ("density", "normals", "albedo", "frame", "bounds"):
            before, after = getattr(scene, name), getattr(again, name)
            if before is None:
                assert after is None
            else:
                np.testing.assert_array_equal(after, before)
        check = default_kernel(scene.kind)
        assert [a.shape for a in to_kernel_input(again, check)] == [
            a.shape for a in to_kernel_input(scene, check)
        ]


def test_previews(gbuffer: tuple[np.ndarray, np.ndarray], out: Path) -> None:
    from PIL import Image

    volume = Scene.from_mesh(*_tetra(), resolution=32, source="tetra")
    picture = preview_image(volume)
    assert picture.shape == (64, 100, 3)  # two rows of three 32x32 views with 2-pixel gaps
    assert picture.max() == 1.0
    gb = Scene.from_passes(*gbuffer, source="passes")
    save_preview(gb, out / "g.png")
    with Image.open(out / "g.png") as image:
        assert image.size[1] >= 256
        assert image.size[0] == (48 * 2 + 2) * (image.size[1] // 40)
        # A caption strip above the panels names them: white text on black, then the picture.
        strip = np.asarray(image.convert("L"))[:16]
        assert strip.max() > 200
        assert strip[:, : image.size[0] // 2].max() > 200  # "normals" over the left panel
        assert strip[:, image.size[0] // 2 + 8 :].max() > 200  # "albedo" over the right one
    assert preview_panels(gb) == [["normals (n+1)/2", "albedo"]]
    assert preview_panels(volume) == [
        ["density: front", "density: side", "density: top"],
        ["16^3 voxels: front", "16^3 voxels: side", "16^3 voxels: top"],
    ]
    save_preview(volume, out / "v.png")
    with Image.open(out / "v.png") as image:
        # Two rows of panels, each under its own 16-pixel caption strip.
        assert image.size[1] == 64 * (image.size[0] // 100) + 2 * 16
    assert "16^3 voxels" in preview_caption(volume)


def _tetra() -> tuple[np.ndarray, np.ndarray]:
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.0]])
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return vertices, faces
