"""How good the encrypted renders look: the ``surface`` kernel and ``volume@1`` against Cycles.

For each model nobody in this project made (Blender's Suzanne, and the ant and the airplane
that pyvista ships in its wheel as sample meshes), three 128x128 frames of the same
orthographic camera:

- (a) ``surface``: the model voxelized at 64^3 by the Blender add-on's own path
  (:func:`~blindframe.client.blender.extract.extract_volume`), baked under the public light
  (:func:`~blindframe.fhe_core._surface.bake`), rendered by the kernel's numpy twin and painted;
- (b) ``volume@1``: the same voxels as its 16^3 occupancy grid, rendered by its numpy twin;
- (c) Blender Cycles (the reference): a sun in the light's direction, a diffuse material of the
  model's colour, a black world, 16 samples, no denoising (deterministic on the CPU).

The kernels' frames come from their twins: the tests prove the decrypted FHE output equal to
them, so this needs no FHE compute. It prints SSIM and PSNR of (a) and (b) against (c), on
luminance (Rec. 709 luma of the display values: ``volume@1`` is grey), the SSIM also over the
model's bounding box alone (the frame is mostly black background, where any two renders agree),
and writes the three side by side as ``bench/out/quality-<model>.png``. A second table gives
(a)'s SSIM with one choice changed at a time (:data:`VARIANTS`): what limits the score.

Lighting, chosen to match Cycles' sun + diffuse look: ``bake`` as the project has it (normals
from the occupancy's smoothed gradient, Lambert, 7-colour palette) in linear light with
``ambient = 0`` (the world is black, so Cycles has no ambient either), the albedo Blender's
default grey 0.8 (or the scene's albedo where the importer gives one), and the palette
sRGB-encoded for display as Cycles' "Standard" view transform is. The sun's strength (pi) makes
a diffuse surface facing it reflect its albedo, as Lambert does; its angle is 0 (hard, like a
directional light). Cycles casts shadows and bounces light; ``bake`` does neither.
"""

from __future__ import annotations

import importlib.util
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.figures import out_dir, record
from blindframe.fhe_core._surface import THIN_GRADIENT

FloatArray = npt.NDArray[np.float64]

SIZE = 128
# Linear grey of the material (Blender's default base colour) where the scene has no albedo.
GREY = 0.8
# Sun strength in Blender's units that makes a diffuse surface facing the sun reflect its
# albedo (Cycles' diffuse BSDF is albedo / pi times the irradiance).
SUN_STRENGTH = math.pi
CYCLES_SAMPLES = 16
# Where the pyvista wheel's meshes are unpacked (outside site-packages: pyvista itself needs VTK,
# which nothing here installs, so it must not be importable).
MESHES_ENV = "BENCH_MESHES"
MESHES_HINT = (
    "the quality bench reads the sample meshes of pyvista's wheel: run "
    "`make bench BENCH=quality` (it installs them), or "
    "`.venv/bin/python -m pip install --no-deps --target .venv/bench-meshes pyvista==0.49.2`"
)


@dataclass(frozen=True)
class Model:
    """One benchmark model: where it comes from and the orbit camera that frames it."""

    name: str
    source: str  # "suzanne" or a pyvista example mesh file name
    camera: Mapping[str, float]
    # The up axis Blender's PLY importer is told: Z keeps the file's coordinates as they are.
    up: str = "Z"


MODELS = (
    Model("suzanne", "suzanne", {"yaw": 25.0, "pitch": 15.0, "zoom": 1.5}),
    Model("ant", "ant.ply", {"yaw": 35.0, "pitch": 30.0, "zoom": 1.5}),
    Model("airplane", "airplane.ply", {"yaw": 30.0, "pitch": 25.0, "zoom": 1.5}),
)


# ------------------------------------------------------------------------------ camera


def y_up_to_blender(vec: npt.ArrayLike) -> FloatArray:
    """+y-up grid axes -> Blender's Z-up world (the inverse of ``to_y_up``)."""
    v = np.asarray(vec, dtype=np.float64)
    out: FloatArray = np.stack([v[..., 0], -v[..., 2], v[..., 1]], axis=-1)
    return out


def orbit_basis(params: Mapping[str, Any]) -> FloatArray:
    """The orbit camera's right, up and forward (rows, +y-up grid axes): the very basis the
    kernels' rays use (:func:`blindframe.fhe_core._volume.tile_rays`, 2**-16 units), as floats."""
    from blindframe.fhe_core._volume import _F, _basis, camera_from_params

    yaw, pitch, _ = camera_from_params(params)
    out: FloatArray = _basis(yaw, pitch) / _F
    return out


@dataclass(frozen=True)
class BlenderCamera:
    """An orthographic Blender camera: its world matrix (4x4, Blender's Z-up axes: the camera
    looks along its local -Z with +Y up) and ``ortho_scale`` (the frame's larger side, in world
    units)."""

    matrix: FloatArray
    ortho_scale: float
    clip_end: float


def blender_camera(
    params: Mapping[str, Any], bounds: npt.ArrayLike, frame_hw: tuple[int, int]
) -> BlenderCamera:
    """The Blender camera that sees what the kernels' orbit camera sees.

    ``bounds`` is the grid's world cube in +y-up axes (a volume scene's ``bounds``). The kernels
    fit the cube's bounding sphere (radius ``side * sqrt(3) / 2``) in the frame's smaller side
    at ``zoom = 1``; Blender's ``ortho_scale`` spans the larger side (sensor fit "auto").
    """
    from blindframe.fhe_core._volume import camera_from_params

    _, _, zoom = camera_from_params(params)
    box = np.asarray(bounds, dtype=np.float64)
    side = float(box[1, 0] - box[0, 0])
    radius = side * math.sqrt(3) / 2
    height, width = frame_hw
    world_per_pixel = 2 * radius / (zoom * min(height, width))
    right, up, forward = (y_up_to_blender(row) for row in orbit_basis(params))
    centre = y_up_to_blender((box[0] + box[1]) / 2)
    # Outside the bounding sphere, so nothing of the grid is clipped.
    distance = 2 * radius
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2] = right, up, -forward
    matrix[:3, 3] = centre - distance * forward
    return BlenderCamera(matrix, world_per_pixel * max(height, width), 4 * radius)


# ------------------------------------------------------------------------------ Blender


def linear_albedo(volume: Any) -> FloatArray | None:
    """A volume scene's albedo grid in linear light (the importer's is sRGB-encoded, display
    values), or None where the scene has none (then the material's flat grey is used)."""
    albedo = getattr(volume, "albedo", None)
    if albedo is None:
        return None
    from blindframe.client.scene._images import srgb_decode

    out: FloatArray = np.asarray(srgb_decode(albedo), dtype=np.float64)
    return out


def new_blender_scene() -> Any:
    """An empty Blender scene with a black world."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    # Blender 5 gives new worlds and materials their node trees (``use_nodes`` is deprecated).
    world = bpy.data.worlds.new("black")
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.0
    scene.world = world
    scene.cycles.seed = 0
    return scene


def add_model(scene: Any, model: Model, meshes: Path | None) -> Any:
    """Suzanne (smooth, one subdivision level, as she is usually shown) or a pyvista mesh
    through Blender's PLY importer; returns the object."""
    import bpy

    if model.source == "suzanne":
        bpy.ops.mesh.primitive_monkey_add(size=2.0)
        obj = bpy.context.active_object
        modifier = obj.modifiers.new("subdivision", "SUBSURF")
        modifier.levels = modifier.render_levels = 1
    else:
        assert meshes is not None
        from blindframe.client.scene._images import _native_output_silenced

        with _native_output_silenced():  # the importer prints its timing
            bpy.ops.wm.ply_import(filepath=str(meshes / model.source), up_axis=model.up)
        obj = bpy.context.selected_objects[0]
    bpy.ops.object.shade_smooth()
    return obj


def set_material(obj: Any, albedo: tuple[float, float, float], *, emit: bool = False) -> None:
    """A diffuse material of ``albedo`` (linear RGB), or with ``emit`` an emission of that
    colour that ignores the light (a silhouette)."""
    import bpy

    material = bpy.data.materials.new("emission" if emit else "diffuse")
    nodes = material.node_tree.nodes
    nodes.clear()
    shader = nodes.new("ShaderNodeEmission" if emit else "ShaderNodeBsdfDiffuse")
    shader.inputs["Color"].default_value = (*albedo, 1.0)
    # What the add-on's extraction reads from a material without a Principled BSDF.
    material.diffuse_color = (*albedo, 1.0)
    output = nodes.new("ShaderNodeOutputMaterial")
    material.node_tree.links.new(shader.outputs[0], output.inputs["Surface"])
    obj.data.materials.clear()
    obj.data.materials.append(material)


def set_camera(scene: Any, camera: BlenderCamera) -> None:
    import bpy
    import mathutils

    data = bpy.data.cameras.new("orbit")
    data.type = "ORTHO"
    data.ortho_scale = camera.ortho_scale
    data.sensor_fit = "AUTO"
    data.clip_start = 1e-3 * camera.clip_end
    data.clip_end = camera.clip_end
    obj = bpy.data.objects.new("orbit", data)
    scene.collection.objects.link(obj)
    obj.matrix_world = mathutils.Matrix(camera.matrix.tolist())
    scene.camera = obj


def set_sun(scene: Any, light: npt.ArrayLike) -> None:
    """A sun shining along ``-light`` (``light``: +y-up axes, from the model to the light)."""
    import bpy
    import mathutils

    data = bpy.data.lights.new("sun", "SUN")
    data.energy = SUN_STRENGTH
    data.angle = 0.0
    obj = bpy.data.objects.new("sun", data)
    scene.collection.objects.link(obj)
    direction = mathutils.Vector(y_up_to_blender(np.asarray(light, dtype=np.float64)).tolist())
    # A sun shines along its local -Z.
    obj.rotation_euler = direction.to_track_quat("Z", "Y").to_euler()


def render_cycles(scene: Any, size: int) -> FloatArray:
    """The scene's camera through Cycles: ``(H, W, 3)`` sRGB display values in [0, 1]."""
    from blindframe.client.blender.extract import extract_frame
    from blindframe.client.scene._images import _native_output_silenced

    # Cycles prints a line per tile and sample: the bench's table would drown in them.
    with _native_output_silenced():
        frame = extract_frame(scene, size=(size, size), samples=CYCLES_SAMPLES).frame
    assert frame is not None
    out: FloatArray = np.moveaxis(np.asarray(frame, dtype=np.float64), 0, -1)
    return out


# ------------------------------------------------------------------------------ kernels


def kernel_frame(kernel: Any, inputs: tuple[Any, ...], params: Mapping[str, Any], size: int) -> Any:
    """A kernel's frame from its numpy twin, tile by tile (row-major tiles)."""
    th, tw = kernel.tile_hw
    tiles_x = size // tw
    out = np.zeros((size, size), dtype=np.int64)
    for index in range((size // th) * tiles_x):
        ty, tx = divmod(index, tiles_x)
        clear = kernel.clear_args(params, (size, size), index)
        out[ty * th : (ty + 1) * th, tx * tw : (tx + 1) * tw] = kernel.twin(inputs, clear)
    return out


@dataclass(frozen=True)
class Variant:
    """How (a) is made: the benchmark's choice (the defaults) or one change to it, to see what
    moves the score. ``threshold``: the density that makes a voxel occupied (``volume@1``'s
    0.5; ``0`` marks every voxel the mesh touches); ``normal_radius``: ``voxel_normals``' blur;
    ``samples``: samples per ray of the kernel; ``thin``: ``bake``'s floor on the blurred
    occupancy's gradient, below which a voxel (a part thinner than the blur) is lit as a
    surface 60 degrees from the light rather than by its noisy or zero normal (0: never);
    ``linear``: False bakes the sRGB-encoded albedo (the importer's grid as it comes) and shows
    the palette as it is, as a client that skips the decoding would."""

    name: str
    ambient: float = 0.0
    threshold: float = 0.5
    normal_radius: int = 2
    samples: int = 64
    thin: float = THIN_GRADIENT
    linear: bool = True


BASELINE = Variant("as built")
# Each changes one thing (the combinations say so): the second table of the run.
VARIANTS = (
    Variant("sRGB bake", linear=False),
    Variant("ambient .1", ambient=0.1),
    Variant("touched", threshold=0.0),
    Variant("blur r1", normal_radius=1),
    Variant("128 samples", samples=128),
    Variant("touched+r1+128", threshold=0.0, normal_radius=1, samples=128),
    Variant("thin as normals say", thin=0.0),
)


def surface_frame(
    density: npt.ArrayLike,
    albedo: npt.ArrayLike | None,
    light: npt.ArrayLike,
    params: Mapping[str, Any],
    size: int,
    variant: Variant = BASELINE,
) -> FloatArray:
    """(a): baked in linear light, the twin's palette indices, painted, and the palette
    sRGB-encoded for display."""
    from blindframe.client.scene._images import srgb_encode
    from blindframe.fhe_core._surface import Geometry, bake, make_surface_kernel, paint

    grid = np.asarray(density)
    occ = grid > 0 if variant.threshold <= 0 else grid >= variant.threshold
    base = np.full((*occ.shape, 3), GREY) if albedo is None else np.asarray(albedo)
    # ambient 0 by default: Cycles' world is black, so a side the sun does not reach gets only
    # the little light the model bounces onto itself.
    geo = Geometry(grid=occ.shape[0], samples=variant.samples)
    if not variant.linear:
        base = np.asarray(srgb_encode(base), dtype=np.float64)
    baked = bake(
        occ,
        base,
        light,
        ambient=variant.ambient,
        normal_radius=variant.normal_radius,
        thin=variant.thin,
        geo=geo,
    )
    indices = kernel_frame(make_surface_kernel(geo), (baked.values,), params, size)
    painted = paint(indices, baked.palette)
    out: FloatArray = np.asarray(srgb_encode(painted) if variant.linear else painted, np.float64)
    return out


def volume_frame(density: npt.ArrayLike, params: Mapping[str, Any], size: int) -> FloatArray:
    """(b): ``volume@1``'s grey frame (32 levels, shown as ``v / 31``), as RGB."""
    from blindframe.fhe_core._volume import TRANSFER
    from blindframe.fhe_core.kernels import get_kernel
    from blindframe.fhe_core.voxels import quantize_density

    grid = quantize_density(np.asarray(density))
    grey = kernel_frame(get_kernel("volume@1"), (grid,), params, size) / int(TRANSFER.max())
    out: FloatArray = np.repeat(grey[..., None], 3, axis=-1)
    return out


# ------------------------------------------------------------------------------ metrics

_LUMA = np.array([0.2126, 0.7152, 0.0722])


def luminance(rgb: npt.ArrayLike) -> FloatArray:
    out: FloatArray = np.asarray(rgb, dtype=np.float64) @ _LUMA
    return out


def ssim(a: npt.ArrayLike, b: npt.ArrayLike, region: npt.ArrayLike | None = None) -> float:
    """Mean SSIM of two grey images in [0, 1] (Wang et al. 2004: Gaussian window, sigma 1.5,
    K1 0.01, K2 0.03, 11x11 sample covariances, a 5-pixel border left out): scikit-image's
    ``structural_similarity(gaussian_weights=True, use_sample_covariance=True, data_range=1)``,
    which is not installed here, to 1e-15 (checked against scikit-image 0.26). ``region``: a
    mask of the pixels to average over (default all)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"SSIM needs two grey images of one shape, not {x.shape} and {y.shape}")
    # scipy's gaussian_filter(sigma=1.5, truncate=3.5, mode="reflect"): 11 taps.
    taps = np.exp(-(np.arange(-5, 6) ** 2) / (2 * 1.5**2))
    taps /= taps.sum()

    def blur(img: FloatArray) -> FloatArray:
        return _filtered(_filtered(img, taps, 0, "symmetric"), taps, 1, "symmetric")

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    # Sample (not population) covariances over the 11x11 window, as scikit-image does.
    n = len(taps) ** 2
    scale = n / (n - 1)
    vx, vy, cxy = vx * scale, vy * scale, cxy * scale
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    # scikit-image drops a border of half the window (5 pixels) before averaging.
    inner = np.zeros(x.shape, dtype=bool)
    inner[5:-5, 5:-5] = True
    if region is not None:
        inner &= np.asarray(region, dtype=bool)
    return float(s[inner].mean())


def _filtered(img: FloatArray, taps: FloatArray, axis: int, pad: Any) -> FloatArray:
    """``img`` convolved with the odd, symmetric ``taps`` along ``axis``, same size, padded by
    numpy's ``pad`` mode (``"constant"``: zeros; ``"symmetric"``: mirrored, edge repeated)."""
    half = len(taps) // 2
    widths = [(0, 0)] * img.ndim
    widths[axis] = (half, half)
    padded = np.pad(img, widths, mode=pad)
    n = img.shape[axis]
    out: FloatArray = sum(
        w * np.take(padded, np.arange(k, k + n), axis=axis) for k, w in enumerate(taps)
    )
    return out


def psnr(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """PSNR in dB of two images in [0, 1]."""
    mse = float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


# ------------------------------------------------------------------------------ the run


def mesh_folder() -> Path:
    """The folder of pyvista's sample meshes (``$BENCH_MESHES``, else .venv/bench-meshes)."""
    root = os.environ.get(MESHES_ENV)
    if root:
        base = Path(root)
    else:
        spec = importlib.util.find_spec("blindframe")
        assert spec is not None
        assert spec.origin is not None
        base = Path(spec.origin).resolve().parent.parent / ".venv" / "bench-meshes"
    folder = base / "pyvista" / "examples"
    if not (folder / "ant.ply").is_file():
        raise SystemExit(f"no sample meshes in {folder}: {MESHES_HINT}")
    return folder


def side_by_side(frames: Sequence[FloatArray], path: Path, scale: int = 2) -> Path:
    """The frames in a row (``scale`` x nearest neighbour, 4-pixel grey gaps) as a PNG."""
    from PIL import Image

    gap = np.full((frames[0].shape[0] * scale, 4 * scale, 3), 0.35)
    parts: list[FloatArray] = []
    for i, frame in enumerate(frames):
        if i:
            parts.append(gap)
        parts.append(np.kron(frame, np.ones((scale, scale, 1))))
    row = np.concatenate(parts, axis=1)
    Image.fromarray(np.round(np.clip(row, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


def measure(model: Model, meshes: Path | None, light: npt.ArrayLike, size: int) -> dict[str, Any]:
    """One model's three frames, their scores and the side-by-side PNG."""
    from blindframe.client.blender.extract import extract_volume
    from blindframe.fhe_core._surface import GRID

    started = time.perf_counter()
    scene = new_blender_scene()
    obj = add_model(scene, model, meshes)
    # Before the voxels: the add-on's extraction colours them from the object's material.
    set_material(obj, (GREY, GREY, GREY))
    volume = extract_volume(scene, [obj], resolution=GRID)
    assert volume.density is not None
    assert volume.bounds is not None
    albedo = linear_albedo(volume)
    set_camera(scene, blender_camera(model.camera, volume.bounds, (size, size)))
    set_sun(scene, light)
    reference = render_cycles(scene, size)
    ref_y = luminance(reference)

    # The model's box: the frame is mostly black background, where any two renders agree.
    rows, cols = np.nonzero(ref_y > 0)
    box = np.zeros(ref_y.shape, dtype=bool)
    box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True

    def score(frame: FloatArray) -> dict[str, float]:
        y = luminance(frame)
        return {
            "ssim": round(ssim(y, ref_y), 4),
            "ssimBox": round(ssim(y, ref_y, box), 4),
            "psnr": round(psnr(y, ref_y), 2),
        }

    ours = surface_frame(volume.density, albedo, light, model.camera, size)
    old = volume_frame(volume.density, model.camera, size)
    row: dict[str, Any] = {
        "model": model.name,
        "camera": dict(model.camera),
        "triangles": volume.meta.get("triangles"),
        "surface": score(ours),
        "volume": score(old),
        "variants": {
            v.name: score(surface_frame(volume.density, albedo, light, model.camera, size, v))
            for v in VARIANTS
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = side_by_side([ours, old, reference], out_dir() / f"quality-{model.name}.png")
    row["png"] = path.name
    return row


def main() -> None:
    from blindframe.fhe_core import sample

    light = sample.SAMPLE_LIGHT["light"]
    meshes = mesh_folder() if any(m.source != "suzanne" for m in MODELS) else None
    rows = [measure(model, meshes, light, SIZE) for model in MODELS]
    print(f"\n{SIZE}x{SIZE}, light {light}: SSIM and PSNR (dB) on luminance against Cycles")
    print(
        f"{'model':<10} {'surface SSIM':>12} {'(box)':>6} {'PSNR':>5} "
        f"{'volume@1 SSIM':>14} {'(box)':>6} {'PSNR':>5}"
    )
    for row in rows:
        s, v = row["surface"], row["volume"]
        print(
            f"{row['model']:<10} {s['ssim']:>12.3f} {s['ssimBox']:>6.3f} {s['psnr']:>5.1f} "
            f"{v['ssim']:>14.3f} {v['ssimBox']:>6.3f} {v['psnr']:>5.1f}   bench/out/{row['png']}"
        )
    print("(box): SSIM over the model's bounding box in the Cycles frame only")
    print("\nsurface SSIM, one change at a time (Variant in bench/bench_quality.py says which)")
    names = [BASELINE.name] + [v.name for v in VARIANTS]
    print(f"{'model':<10} " + " | ".join(names))
    for row in rows:
        cells = [row["surface"]["ssim"]] + [row["variants"][n]["ssim"] for n in names[1:]]
        print(
            f"{row['model']:<10} "
            + " | ".join(f"{c:>{len(n)}.3f}" for c, n in zip(cells, names, strict=True))
        )
    record("quality", {"size": SIZE, "light": list(light), "rows": rows})


if __name__ == "__main__":
    main()
