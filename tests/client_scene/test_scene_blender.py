"""Scene extraction inside real Blender (bpy, headless): voxels, G-buffer passes, frame."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
import mathutils
import numpy as np
import pytest

from blindframe.client.blender.extract import (
    extract_frame,
    extract_gbuffer,
    extract_volume,
    mesh_arrays,
)
from blindframe.client.scene import BlenderSceneError, load_scene, save_scene, to_kernel_input
from blindframe.client.scene._images import srgb_encode
from blindframe.fhe_core.kernels import get_kernel
from blindframe.fhe_core.tiling import split_tiles, tile_grid

from .shapes import analytic_density, torus_inside

BASE_COLOUR = (0.8, 0.2, 0.1)
WIDTH, HEIGHT = 64, 48


@dataclass
class Blend:
    scene: Any
    torus: Any
    camera: Any
    folder: Path


@pytest.fixture(scope="module")
def blend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Blend]:
    """A torus (with an Array modifier: two rings), a camera and a sun, built with bpy."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    bpy.ops.mesh.primitive_torus_add(
        major_radius=1.0,
        minor_radius=0.4,
        major_segments=64,
        minor_segments=24,
        location=(0.4, -0.2, 0.3),
        rotation=(0.5, 0.3, 0.1),
    )
    torus = bpy.context.active_object
    torus.scale = (1.2, 1.2, 1.2)
    array = torus.modifiers.new("array", "ARRAY")
    array.count = 2
    array.use_relative_offset = False
    array.use_constant_offset = True
    array.constant_offset_displace = (3.0, 0.0, 0.0)
    material = bpy.data.materials.new("paint")
    if material.node_tree is None:
        material.use_nodes = True
    material.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (
        *BASE_COLOUR,
        1.0,
    )
    torus.data.materials.append(material)
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(camera)
    target = mathutils.Vector((1.9, -0.2, 0.3))
    camera.location = (1.9, -11.0, 5.5)
    camera.rotation_euler = (target - camera.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = camera
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    scene.collection.objects.link(sun)
    sun.rotation_euler = (0.6, 0.2, 0.0)
    scene.render.resolution_x, scene.render.resolution_y = WIDTH, HEIGHT
    scene.render.resolution_percentage = 100
    for obj in scene.objects:
        obj.select_set(obj == torus)
    bpy.context.view_layer.objects.active = torus
    bpy.context.view_layer.update()
    yield Blend(scene, torus, camera, tmp_path_factory.mktemp("blend"))
    bpy.ops.wm.read_factory_settings(use_empty=True)


def test_volume_matches_the_obj_export(blend: Blend) -> None:
    volume = extract_volume(resolution=32)
    assert volume.kind == "volume"
    assert volume.meta["objects"] == 1
    # The Array modifier doubled the rings: the evaluated mesh was voxelized.
    assert volume.meta["triangles"] == 2 * 2 * 64 * 24
    obj = blend.folder / "torus.obj"
    bpy.ops.wm.obj_export(
        filepath=str(obj),
        export_selected_objects=True,
        export_materials=False,
        apply_modifiers=True,
    )
    imported = load_scene(obj, resolution=32)
    assert imported.meta["triangles"] == volume.meta["triangles"]
    assert volume.bounds is not None
    assert imported.bounds is not None
    np.testing.assert_allclose(imported.bounds, volume.bounds, atol=1e-5)
    # OBJ keeps six decimals: at most a voxel or two may differ.
    assert np.abs(imported.density - volume.density).sum() <= 2.0
    saved = load_scene(save_scene(volume, blend.folder / "volume.npz"))
    np.testing.assert_array_equal(saved.density, volume.density)


def test_volume_matches_the_glb_export(blend: Blend) -> None:
    volume = extract_volume(resolution=32)
    glb = blend.folder / "torus.glb"
    bpy.ops.export_scene.gltf(
        filepath=str(glb), export_format="GLB", use_selection=True, export_apply=True
    )
    imported = load_scene(glb, resolution=32)
    assert np.abs(imported.density - volume.density).sum() <= 2.0


def test_volume_carries_the_material_colour(blend: Blend) -> None:
    volume = extract_volume(resolution=32)
    assert volume.albedo is not None
    occupied = volume.density > 0
    expected = srgb_encode(np.array(BASE_COLOUR))
    np.testing.assert_allclose(
        volume.albedo[occupied], np.tile(expected, (occupied.sum(), 1)), atol=1e-6
    )
    assert not volume.albedo[~occupied].any()


def test_volume_samples_an_image_texture(blend: Blend) -> None:
    """A cube whose Base Color is a 2x2 image: its top faces' UVs sit in the green texel, the
    others' in the red one. An image whose file is missing is refused."""
    bpy.ops.mesh.primitive_cube_add(size=2.0, location=(10.0, 0.0, 0.0))
    cube = bpy.context.active_object
    image = bpy.data.images.new("texels", 2, 2)
    # Blender stores the bottom row first: blue, white / red, green.
    image.pixels.foreach_set(
        np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 1, 0, 1], dtype=np.float32)
    )
    material = bpy.data.materials.new("textured")
    if material.node_tree is None:
        material.use_nodes = True
    nodes = material.node_tree.nodes
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    material.node_tree.links.new(
        texture.outputs["Color"], nodes["Principled BSDF"].inputs["Base Color"]
    )
    cube.data.materials.append(material)
    layer = cube.data.uv_layers.active
    for polygon in cube.data.polygons:
        uv = (0.75, 0.75) if polygon.normal.z > 0.5 else (0.25, 0.75)
        for loop in polygon.loop_indices:
            layer.data[loop].uv = uv
    missing = bpy.data.images.new("missing", 4, 4)
    try:
        volume = extract_volume(objects=[cube], resolution=16)
        assert volume.albedo is not None
        # Blender's +z is the grid's +y: the top layer is green inside its rim, the bottom red.
        np.testing.assert_allclose(volume.albedo[2:-2, -1, 2:-2], np.tile((0, 1, 0), (12, 12, 1)))
        np.testing.assert_allclose(volume.albedo[2:-2, 0, 2:-2], np.tile((1, 0, 0), (12, 12, 1)))
        missing.source = "FILE"
        missing.filepath = str(blend.folder / "nowhere.png")
        texture.image = missing
        with pytest.raises(BlenderSceneError, match="cannot read image texture 'missing'"):
            extract_volume(objects=[cube], resolution=16)
    finally:
        bpy.data.objects.remove(cube)
        bpy.data.materials.remove(material)
        bpy.data.images.remove(image)
        bpy.data.images.remove(missing)
        # Adding the cube selected it alone: the other tests extract the selected torus.
        blend.torus.select_set(True)
        bpy.context.view_layer.objects.active = blend.torus


def test_volume_is_the_analytic_tori(blend: Blend) -> None:
    """Blender's Z-up world turned +y up, the object's transform applied: two tori."""
    volume = extract_volume(resolution=32)
    assert volume.bounds is not None
    inverse = np.array(blend.torus.matrix_world.inverted(), dtype=np.float64)
    one = torus_inside(1.0, 0.4)

    def inside(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        world = np.stack([x, -z, y, np.ones_like(x)])  # grid (x, y, z) = Blender (x, z, -y)
        lx, ly, lz, _ = np.tensordot(inverse, world, axes=1)
        return one(lx, ly, lz) | one(lx - 3.0, ly, lz)

    expected = analytic_density(inside, volume.bounds, 32, 2)
    # 64 x 24 facets sit inside the true torus by up to ~1% of its radii.
    assert float(((volume.density >= 0.5) != (expected >= 0.5)).mean()) < 0.01
    (occupancy,) = to_kernel_input(volume, "volume@1")
    get_kernel("volume@1").check_enc([occupancy])
    assert 0 < occupancy.sum() < 4096


def ray_normals(blend: Blend, pixels: np.ndarray) -> np.ndarray:
    """World-space normals of the surface through each pixel centre, by Blender's own ray
    casts (independent of the render): NaN where the ray misses."""
    scene, camera = blend.scene, blend.camera
    graph = bpy.context.evaluated_depsgraph_get()
    top_right, _bottom_right, bottom_left, top_left = camera.data.view_frame(scene=scene)
    out = np.full((len(pixels), 3), np.nan)
    for k, (py, px) in enumerate(pixels):
        u, v = (px + 0.5) / WIDTH, (py + 0.5) / HEIGHT
        local = top_left + (top_right - top_left) * u + (bottom_left - top_left) * v
        direction = (camera.matrix_world.to_3x3() @ local).normalized()
        hit, _location, normal, *_ = scene.ray_cast(graph, camera.location, direction)
        if hit:
            out[k] = tuple(normal)
    return out


def test_gbuffer_passes(blend: Blend) -> None:
    gbuffer = extract_gbuffer()
    assert gbuffer.kind == "gbuffer"
    assert gbuffer.frame_hw == (HEIGHT, WIDTH)
    normals, albedo = gbuffer.normals, gbuffer.albedo
    assert normals is not None
    assert albedo is not None
    length = np.linalg.norm(normals, axis=0)
    surface = length > 0
    assert np.allclose(length[surface], 1.0, atol=1e-5)
    assert 0.1 < surface.mean() < 0.8
    # The albedo is the material's base colour (sRGB-encoded), black off the surface. (The
    # Principled BSDF's specular layer keeps a few percent of it from the diffuse pass.)
    expected = srgb_encode(np.array(BASE_COLOUR))
    np.testing.assert_allclose(np.median(albedo[:, surface], axis=1), expected, atol=0.03)
    assert (albedo[:, ~surface] == 0).all()
    # Camera space: what the camera sees faces it (+z), silhouettes face outwards.
    assert (normals[2][surface] > -0.05).mean() > 0.97
    rows = [r for r in range(HEIGHT) if surface[r].any()]
    left = [normals[0, r, np.argmax(surface[r])] for r in rows]
    right = [normals[0, r, WIDTH - 1 - np.argmax(surface[r, ::-1])] for r in rows]
    assert np.mean(np.array(left) < 0) > 0.9
    assert np.mean(np.array(right) > 0) > 0.9
    # Against Blender's ray casts through the same pixel centres, turned into camera space.
    rng = np.random.default_rng(0)
    pixels = np.argwhere(surface)[rng.choice(int(surface.sum()), 120, replace=False)]
    world = ray_normals(blend, pixels)
    rotation = np.array(blend.camera.matrix_world.to_3x3().normalized())
    hit = ~np.isnan(world[:, 0])
    assert hit.mean() > 0.95
    cam = world[hit] @ rotation  # n_cam = R^T n_world
    got = normals[:, pixels[hit, 0], pixels[hit, 1]].T
    angles = np.degrees(np.arccos(np.clip((cam * got).sum(axis=1), -1.0, 1.0)))
    assert np.mean(angles < 2.0) > 0.9
    # Kernel input: every tile passes shade@1's own bounds.
    planes = to_kernel_input(gbuffer, "shade@1")
    kernel = get_kernel("shade@1")
    grid = tile_grid((HEIGHT, WIDTH), kernel.tile_hw, kernel.halo)
    tiles = [split_tiles(grid, plane) for plane in planes]
    for index in range(grid.count):
        kernel.check_enc([t[index] for t in tiles])
    assert planes[0][2][surface].mean() > 2.0


def test_frame(blend: Blend) -> None:
    frame = extract_frame(size=(32, 24), samples=4)
    assert frame.kind == "frame"
    assert frame.frame is not None
    assert frame.frame.shape == (3, 24, 32)
    assert frame.frame.min() >= 0.0
    assert frame.frame.max() <= 1.0
    gbuffer = extract_gbuffer(size=(32, 24))
    assert gbuffer.normals is not None
    surface = np.abs(gbuffer.normals).sum(axis=0) > 0
    lit = frame.frame.mean(axis=0)
    # No world: the background is black (away from the antialiased silhouettes); the sunlit
    # rings are not; red paint is reddest.
    padded = np.pad(surface, 1)
    near = np.zeros_like(surface)
    for dy in range(3):
        for dx in range(3):
            near |= padded[dy : dy + surface.shape[0], dx : dx + surface.shape[1]]
    assert lit[~near].max() < 0.01
    assert lit[surface].mean() > 0.2
    assert frame.frame[0][surface].mean() > frame.frame[2][surface].mean()
    (grey,) = to_kernel_input(frame, "post@1")
    assert grey.shape == (24, 32)
    assert grey.min() >= 0
    assert grey.max() <= 7


def test_render_settings_are_restored(blend: Blend) -> None:
    render = blend.scene.render
    render.engine = "BLENDER_WORKBENCH"
    render.filepath = "//renders/shot_"
    render.image_settings.file_format = "PNG"
    layer = bpy.context.view_layer
    before = (
        render.engine, render.resolution_x, render.resolution_y, render.filepath,
        render.image_settings.media_type, render.image_settings.file_format,
        render.filter_size, layer.use_pass_normal, layer.use_pass_diffuse_color,
        blend.scene.cycles.samples,
    )  # fmt: skip
    extract_gbuffer(size=(16, 8))
    extract_frame(size=(16, 8), samples=2)
    after = (
        render.engine, render.resolution_x, render.resolution_y, render.filepath,
        render.image_settings.media_type, render.image_settings.file_format,
        render.filter_size, layer.use_pass_normal, layer.use_pass_diffuse_color,
        blend.scene.cycles.samples,
    )  # fmt: skip
    assert after == before


def test_errors(blend: Blend) -> None:
    blend.torus.select_set(False)
    try:
        with pytest.raises(BlenderSceneError, match="no mesh object is selected"):
            extract_volume()
        with pytest.raises(BlenderSceneError, match="holds no geometry"):
            extract_volume(objects=[blend.camera])
    finally:
        blend.torus.select_set(True)
    blend.scene.camera = None
    try:
        with pytest.raises(BlenderSceneError, match="no active camera") as info:
            extract_gbuffer()
        assert isinstance(info.value, ValueError)
    finally:
        blend.scene.camera = blend.camera
    with pytest.raises(BlenderSceneError, match="samples"):
        extract_frame(samples=0)


def test_mesh_arrays_apply_world_transforms(blend: Blend) -> None:
    vertices, faces = mesh_arrays([blend.torus])
    assert faces.shape == (2 * 2 * 64 * 24, 3)
    centre = np.array(blend.torus.matrix_world.translation)
    # The first ring is centred on the object's origin (up to facet sampling).
    first = vertices[: len(vertices) // 2]
    assert np.linalg.norm(first.mean(axis=0) - centre) < 1e-3
    radii = np.linalg.norm(first - centre, axis=1)
    assert radii.max() == pytest.approx(1.2 * 1.4, rel=1e-3)
    assert math.isclose(radii.min(), 1.2 * 0.6, rel_tol=1e-3)
