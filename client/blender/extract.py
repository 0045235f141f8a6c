"""Turn the open Blender scene into blindframe scenes: voxels, G-buffer passes, a frame.

Runs inside Blender (or with ``bpy`` as a Python module, headless). Every function returns a
:class:`blindframe.client.scene.Scene` built by the same code as ``blindframe client import``:

- :func:`extract_volume` voxelizes the selected objects' evaluated geometry (modifiers applied,
  world transforms, triangulated) with :func:`~blindframe.client.scene.voxelize_mesh`, after
  the rotation Blender's glTF/OBJ exporters apply (Z-up -> +y up), so the grid equals the one
  ``import`` makes from the same objects exported to glTF or OBJ; each triangle's material
  colours the albedo grid (:func:`material_colour`: the Principled BSDF's Base Color, or the
  image of an Image Texture node plugged straight into it, sampled at the active UV map);
- :func:`extract_gbuffer` renders the active camera's Normal and Diffuse Color passes with
  Cycles and turns the normals from world into camera space (+x right, +y up, +z towards the
  viewer: Blender's camera axes);
- :func:`extract_frame` renders the Combined pass (for ``post``).

Rendering writes a multilayer OpenEXR into a temporary folder and reads it back; every render
setting it touches (engine, samples, passes, resolution, output format...) is restored after,
so the artist's file is left as it was. Colours are the passes' linear values clipped to [0, 1]
and sRGB-encoded: Blender's "Standard" view transform (the scene's own view transform and
compositor are not applied).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bpy
import numpy as np
import numpy.typing as npt

from blindframe.client.scene import (
    DEFAULT_RESOLUTION,
    BlenderSceneError,
    Scene,
    SceneTooLargeError,
    to_y_up,
)
from blindframe.client.scene._colours import DEFAULT_LINEAR, MeshColours, texture_array
from blindframe.client.scene._images import MAX_IMAGE_SIDE, read_image, srgb_encode

__all__ = [
    "GEOMETRY_TYPES",
    "extract_frame",
    "extract_gbuffer",
    "extract_volume",
    "material_colour",
    "mesh_arrays",
    "mesh_parts",
]

# Object types whose evaluated geometry converts to a mesh.
GEOMETRY_TYPES = frozenset({"MESH", "CURVE", "SURFACE", "META", "FONT"})


def mesh_arrays(
    objects: Iterable[Any], depsgraph: Any | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """World-space triangles of ``objects`` as evaluated (modifiers applied), still Z-up:
    ``(N, 3)`` vertices and ``(M, 3)`` faces, concatenated in the given order."""
    vertices, faces, _ = mesh_parts(objects, depsgraph, colours=False)
    return vertices, faces


def mesh_parts(
    objects: Iterable[Any], depsgraph: Any | None = None, *, colours: bool = True
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], MeshColours | None]:
    """:func:`mesh_arrays` and, with ``colours``, each triangle's material colour (a triangle
    without a material gets Blender's default grey). Raises BlenderSceneError for an image
    texture whose pixels cannot be read."""
    graph = depsgraph if depsgraph is not None else bpy.context.evaluated_depsgraph_get()
    parts_v: list[npt.NDArray[np.float64]] = []
    parts_f: list[npt.NDArray[np.int64]] = []
    parts_c: list[_Colours] = []
    images: dict[str, tuple[int, npt.NDArray[np.uint8]]] = {}
    offset = 0
    for obj in objects:
        evaluated = obj.evaluated_get(graph)
        mesh = evaluated.to_mesh()
        try:
            mesh.calc_loop_triangles()
            coords = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
            mesh.vertices.foreach_get("co", coords)
            tris = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int32)
            mesh.loop_triangles.foreach_get("vertices", tris)
            if colours:
                slots = [slot.material for slot in evaluated.material_slots]
                parts_c.append(_triangle_colours(mesh, slots, images))
        finally:
            evaluated.to_mesh_clear()
        matrix = np.array(evaluated.matrix_world, dtype=np.float64)
        local = coords.reshape(-1, 3).astype(np.float64)
        parts_v.append(local @ matrix[:3, :3].T + matrix[:3, 3])
        parts_f.append(tris.reshape(-1, 3).astype(np.int64) + offset)
        offset += len(local)
    if not parts_v:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), None
    found = None
    if colours:
        textures = tuple(image for _, image in sorted(images.values(), key=lambda kv: kv[0]))
        found = _joined(parts_c, textures)
    return np.concatenate(parts_v), np.concatenate(parts_f), found


def material_colour(material: Any) -> tuple[tuple[float, float, float], Any | None]:
    """A material's linear base colour and the image that replaces it, or None.

    The first Principled BSDF decides: an Image Texture node (with an image) linked straight
    into its Base Color gives the image (factor 1); an unlinked Base Color gives its value.
    Anything else (no Principled BSDF, another node in Base Color) falls back to the material's
    viewport colour, which Blender's importers set from the file's diffuse colour.
    """
    tree = getattr(material, "node_tree", None)
    for node in tree.nodes if tree is not None else ():
        if node.type != "BSDF_PRINCIPLED":
            continue
        socket = node.inputs["Base Color"]
        if not socket.is_linked:
            r, g, b = (float(c) for c in socket.default_value[:3])
            return (r, g, b), None
        source = socket.links[0].from_node
        if source.type == "TEX_IMAGE" and source.image is not None:
            return (1.0, 1.0, 1.0), source.image
        break
    r, g, b = (float(c) for c in material.diffuse_color[:3])
    return (r, g, b), None


# One mesh's triangle colours before the textures of every object are known: linear base
# colours (M, 3), corner UVs (M, 3, 2) or None, and texture indices (M,) into all the images.
_Colours = tuple[npt.NDArray[np.float64], npt.NDArray[np.float32] | None, npt.NDArray[np.int32]]


def _triangle_colours(
    mesh: Any, materials: list[Any], images: dict[str, tuple[int, npt.NDArray[np.uint8]]]
) -> _Colours:
    """One evaluated mesh's triangle colours; ``images`` gathers the textures of every object
    (name -> (index, pixels)) so that objects sharing an image share one copy."""
    count = len(mesh.loop_triangles)
    slot = np.zeros(count, dtype=np.int32)
    mesh.loop_triangles.foreach_get("material_index", slot)
    base = np.tile(np.asarray(DEFAULT_LINEAR, dtype=np.float64), (count, 1))
    texture = np.full(count, -1, dtype=np.int32)
    for index, material in enumerate(materials):
        if material is None:
            continue
        chosen = slot == index
        rgb, image = material_colour(material)
        base[chosen] = rgb
        if image is not None:
            if image.name not in images:
                images[image.name] = (len(images), _image_pixels(image, material))
            texture[chosen] = images[image.name][0]
    layer = mesh.uv_layers.active
    if layer is None or not (texture >= 0).any():
        # No UV map: a texture cannot be placed, so its material's factor (1) would paint
        # white; the viewport colour is the better guess.
        for index, material in enumerate(materials):
            if material is not None and material_colour(material)[1] is not None:
                base[slot == index] = [float(c) for c in material.diffuse_color[:3]]
        return base, None, np.full(count, -1, dtype=np.int32)
    loops = np.zeros(count * 3, dtype=np.int32)
    mesh.loop_triangles.foreach_get("loops", loops)
    uv = np.zeros(len(mesh.loops) * 2, dtype=np.float32)
    layer.data.foreach_get("uv", uv)
    corner_uv = uv.reshape(-1, 2)[loops].reshape(count, 3, 2)
    return base, corner_uv, texture


def _joined(parts: list[_Colours], textures: tuple[npt.NDArray[np.uint8], ...]) -> MeshColours:
    """The parts' colours as one, their texture indices into ``textures``."""
    base = np.concatenate([p[0] for p in parts])
    if not textures:
        return MeshColours(base)
    uv = np.concatenate(
        [p[1] if p[1] is not None else np.zeros((len(p[0]), 3, 2), np.float32) for p in parts]
    )
    texture = np.concatenate([p[2] for p in parts])
    return MeshColours(base, uv=uv, texture=texture, textures=textures)


def _image_pixels(image: Any, material: Any) -> npt.NDArray[np.uint8]:
    """An image's pixels as 8-bit sRGB, row 0 on top (Blender stores the bottom row first)."""
    # Reading the size loads the image's file; a missing or unreadable file gives 0 x 0.
    width, height = (int(v) for v in image.size)
    if width * height == 0:
        where = f" ({image.filepath})" if image.filepath else ""
        raise BlenderSceneError(
            f"cannot read image texture {image.name!r}{where} of material {material.name!r}",
            hint="relink or pack the image (File > External Data > Pack Resources)",
        )
    if max(width, height) > MAX_IMAGE_SIDE:
        raise SceneTooLargeError(
            f"image texture {image.name!r} is {width}x{height} pixels; up to {MAX_IMAGE_SIDE} a "
            "side",
            hint="scale the image down: the grid samples a few hundred texels a side at most",
        )
    channels = int(image.channels)
    pixels = np.empty(width * height * channels, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    grid = pixels.reshape(height, width, channels)[::-1]
    rgb = grid[:, :, :3] if channels >= 3 else np.repeat(grid[:, :, :1], 3, axis=2)
    # Byte images hold their encoded values (sRGB); float images hold linear light.
    encoded = srgb_encode(rgb) if image.is_float else np.clip(rgb, 0.0, 1.0)
    return texture_array(np.rint(encoded * 255.0).astype(np.uint8), f"image {image.name!r}")


def extract_volume(
    scene: Any | None = None,
    objects: Iterable[Any] | None = None,
    *,
    resolution: int = DEFAULT_RESOLUTION,
    depsgraph: Any | None = None,
) -> Scene:
    """Voxelize ``objects`` (default: the selected objects that have geometry) for ``volume``,
    with their materials' colours as the albedo grid."""
    scene = scene if scene is not None else bpy.context.scene
    chosen = list(objects) if objects is not None else list(bpy.context.selected_objects)
    meshes = [obj for obj in chosen if obj.type in GEOMETRY_TYPES]
    if not meshes:
        raise BlenderSceneError(
            "no mesh object is selected"
            if not chosen
            else "the selection holds no geometry "
            f"(only {', '.join(sorted({obj.type.lower() for obj in chosen}))})",
            hint="select the objects to render (meshes, curves, text) and try again",
        )
    vertices, faces, colours = mesh_parts(meshes, depsgraph)
    names = ", ".join(obj.name for obj in meshes)
    return Scene.from_mesh(
        to_y_up(vertices),
        faces,
        resolution=resolution,
        source=f"blender:{scene.name}",
        meta={"objects": len(meshes), "object_names": names[:500], "up": "z"},
        colours=colours,
    )


def extract_gbuffer(
    scene: Any | None = None,
    *,
    size: tuple[int, int] | None = None,
    samples: int = 1,
    view_layer: Any | None = None,
) -> Scene:
    """Render the active camera's normal and albedo passes (``size`` = (width, height), default
    the scene's output size) for ``shade``. One sample with a tiny pixel filter gives each pixel
    the normal of the surface through its centre, as a G-buffer should."""
    scene = scene if scene is not None else bpy.context.scene
    camera = _camera(scene)
    layers = _render(scene, view_layer, size, samples, passes=("normal", "diffuse_color"))
    normal = _find(layers, ("Normal",), "XYZ")
    colour = _find(layers, ("Diffuse Color", "DiffCol"), "RGB")
    world = np.stack([normal[c] for c in "XYZ"]).astype(np.float64)
    rotation = np.array(camera.matrix_world.to_3x3().normalized(), dtype=np.float64)
    # Camera axes are the rotation's columns: n_cam[i] = sum_j R[j, i] n_world[j].
    in_camera = np.einsum("ji,jhw->ihw", rotation, world)
    albedo = srgb_encode(np.stack([colour[c] for c in "RGB"]))
    return Scene.from_passes(
        in_camera,
        albedo,
        source=f"blender:{scene.name}",
        meta={"camera": camera.name, "samples": samples},
    )


def extract_frame(
    scene: Any | None = None,
    *,
    size: tuple[int, int] | None = None,
    samples: int = 16,
    view_layer: Any | None = None,
) -> Scene:
    """Render the active camera's Combined pass with Cycles as an RGB frame for ``post``."""
    scene = scene if scene is not None else bpy.context.scene
    camera = _camera(scene)
    layers = _render(scene, view_layer, size, samples, passes=())
    combined = _find(layers, ("Combined",), "RGB")
    frame = srgb_encode(np.stack([combined[c] for c in "RGB"]))
    return Scene(
        "frame",
        f"blender:{scene.name}",
        frame=frame,
        meta={"camera": camera.name, "samples": samples},
    )


def _camera(scene: Any) -> Any:
    camera = scene.camera
    if camera is None or camera.type != "CAMERA":
        raise BlenderSceneError(
            f"scene {scene.name!r} has no active camera",
            hint="add a camera and make it the scene's camera (View > Cameras > Set Active)",
        )
    return camera


def _find(layers: dict[str, dict[str, Any]], names: Sequence[str], comps: str) -> dict[str, Any]:
    for layer, channels in layers.items():
        if layer.rpartition(".")[2] in names and all(c in channels for c in comps):
            return channels
    raise BlenderSceneError(
        f"the render has no {names[0]} pass (layers: {', '.join(sorted(layers))})",
        hint="this Blender may name its passes differently; please report it",
    )


def _render(
    scene: Any,
    view_layer: Any | None,
    size: tuple[int, int] | None,
    samples: int,
    passes: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """Render one view layer with Cycles into a multilayer EXR; return its layers."""
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= 4096:
        raise BlenderSceneError(f"samples must be 1..4096 (not {samples!r})")
    render = scene.render
    if size is None:
        scale = render.resolution_percentage / 100
        size = (round(render.resolution_x * scale), round(render.resolution_y * scale))
    width, height = (int(v) for v in size)
    if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
        raise SceneTooLargeError(
            f"render size {width}x{height} is outside 1..{MAX_IMAGE_SIDE} pixels a side",
            hint="every pixel is rendered under FHE: small frames (64x64) are the norm",
        )
    layer = view_layer if view_layer is not None else _active_layer(scene)
    with tempfile.TemporaryDirectory(prefix="blindframe-render-") as tmp:
        target = Path(tmp) / "passes.exr"
        settings: list[tuple[Any, str, Any]] = [
            (render, "engine", "CYCLES"),
            (scene.cycles, "samples", samples),
            (scene.cycles, "use_adaptive_sampling", False),
            (scene.cycles, "use_denoising", False),
            (scene.cycles, "device", "CPU"),
            (render, "resolution_x", width),
            (render, "resolution_y", height),
            (render, "resolution_percentage", 100),
            (render, "use_border", False),
            # A G-buffer pixel is the surface through its centre, not a filtered blend.
            (render, "filter_size", 0.01 if passes else render.filter_size),
            (render, "use_compositing", False),
            (render, "use_sequencer", False),
            (render, "filepath", str(target)),
            (render, "use_file_extension", True),
            # media_type before file_format: the formats offered depend on it.
            (render.image_settings, "media_type", "MULTI_LAYER_IMAGE"),
            (render.image_settings, "file_format", "OPEN_EXR_MULTILAYER"),
            (render.image_settings, "color_depth", "32"),
            (render.image_settings, "exr_codec", "ZIP"),
            *[(layer, f"use_pass_{name}", True) for name in passes],
            *[(other, "use", other == layer) for other in scene.view_layers],
        ]
        with _temporarily(settings):
            bpy.ops.render.render(write_still=True, scene=scene.name, layer=layer.name)
        written = sorted(Path(tmp).glob("*.exr"))
        if not written:
            raise BlenderSceneError("Cycles wrote no image", hint="check Blender's console output")
        image = read_image(written[0], "render")
    prefix = f"{layer.name}."
    return {
        name[len(prefix) :] if name.startswith(prefix) else name: channels
        for name, channels in image.layers.items()
    }


def _active_layer(scene: Any) -> Any:
    context_layer = getattr(bpy.context, "view_layer", None)
    if context_layer is not None and bpy.context.scene == scene:
        return context_layer
    return scene.view_layers[0]


@contextmanager
def _temporarily(settings: Sequence[tuple[Any, str, Any]]) -> Iterator[None]:
    """Set each (owner, attribute, value) in order; restore the old values in the same order
    (media_type must come back before file_format)."""
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in settings]
    try:
        for owner, attr, value in settings:
            setattr(owner, attr, value)
        yield
    finally:
        for owner, attr, value in saved:
            setattr(owner, attr, value)
