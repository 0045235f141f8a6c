"""Artists' scenes as float arrays, read from their files, and turned into the kernels' inputs.

A :class:`Scene` is one of three kinds, each what one kernel family renders:

- ``volume``: ``density`` ``(R, R, R)`` in [0, 1], indexed ``[x, y, z]``, +y up, the grid
  covering the cube ``bounds`` (world units) -- from a mesh, through :func:`voxelize_mesh`;
  optionally ``albedo`` ``(R, R, R, 3)`` in [0, 1], the surface colour of each voxel (0 where
  the density is 0), from the mesh's materials, vertex colours and textures (see
  :mod:`blindframe.client.scene._colours`); ``volume@1`` renders occupancy only;
- ``gbuffer``: ``normals`` ``(3, H, W)`` camera-space unit vectors (+x right, +y up, +z towards
  the viewer; ``0`` where no surface is) and ``albedo`` ``(3, H, W)`` in [0, 1] -- for ``shade``;
- ``frame``: ``frame`` ``(C, H, W)`` in [0, 1], ``C`` 1 (grey) or 3 (RGB) -- for ``post``.

Rows run top to bottom. Colours (albedo, frame) are display-referred, sRGB-encoded values, as an
8-bit PNG stores them: the kernels' outputs are shown as they come, so their inputs live in the
same space. OpenEXR (linear) colours are clipped to [0, 1] and sRGB-encoded on import, which is
Blender's "Standard" view transform.

File conventions (:func:`load_scene`):

- meshes ``.gltf .glb .obj .stl .ply``: every mesh instance of the file's scene graph with its
  transform, +y up (``up="z"`` for Z-up files), voxelized at ``resolution``;
- ``.fbx`` (binary FBX 7.1+, from 3ds Max, Maya, Cinema 4D): read by Blender's own FBX importer
  in a child process (the file's axes and units applied; ``up`` unused), voxelized likewise;
  each material's base colour (linear RGBA, as Blender holds it) is kept in the scene's meta as
  ``materials``, a JSON object ``{name: [r, g, b, a]}``, and colours the albedo grid;
- a normal pass: PNG stores ``(n + 1) / 2`` per channel (a tangent-space-map style encoding
  of camera-space normals); EXR stores ``n`` raw in [-1, 1]. A pixel is background where the
  decoded vector is not close to unit length (black, or mid-grey, in a PNG; zero in an EXR) or
  where a PNG's alpha is 0. World-space passes (Blender's Normal pass is one) must be turned
  into camera space first: a pass where many surface pixels face away from the camera is
  refused;
- an albedo (diffuse colour) pass: RGB (or grey) PNG/EXR; its alpha, when present, marks
  coverage too. Background pixels get albedo 0 and normal 0, so ``shade`` leaves them black;
- a frame for ``post``: an RGB or grey PNG/EXR; a PNG's alpha is composited over black;
- a multilayer EXR (Blender's "OpenEXR MultiLayer") given alone is a G-buffer when it holds
  Normal and diffuse-colour (``DiffCol``/``Diffuse Color``/``Albedo``) passes, else a frame from
  its Combined/Image layer;
- ``.npz``: a scene file written by :func:`save_scene`.

Limits: files up to MAX_FILE_BYTES, meshes up to MAX_TRIANGLES triangles, images up to
MAX_IMAGE_SIDE pixels a side, grids MIN_RESOLUTION..MAX_RESOLUTION a side.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from blindframe.client.scene._colours import MeshColours, bake_albedo
from blindframe.client.scene._errors import (
    BlenderSceneError,
    EmptySceneError,
    SceneError,
    SceneFileError,
    SceneFormatError,
    SceneKindError,
    SceneTooLargeError,
)
from blindframe.client.scene._images import (
    IMAGE_SUFFIXES,
    MAX_FILE_BYTES,
    MAX_IMAGE_SIDE,
    Image,
    check_file,
    read_image,
    srgb_encode,
)
from blindframe.client.scene._meshes import MESH_SUFFIXES, UpAxis, read_mesh, to_y_up
from blindframe.client.scene._voxelize import (
    MAX_RESOLUTION,
    MAX_TRIANGLES,
    MIN_RESOLUTION,
    fit_bounds,
    mesh_bounds,
    voxelize_mesh,
)

__all__ = [
    "DEFAULT_RESOLUTION",
    "KINDS",
    "MAX_FILE_BYTES",
    "MAX_IMAGE_SIDE",
    "MAX_RESOLUTION",
    "MAX_SCENE_BYTES",
    "MAX_TRIANGLES",
    "MESH_SUFFIXES",
    "MIN_RESOLUTION",
    "SCENE_FORMAT",
    "SCENE_FORMAT_COLOURED",
    "BlenderSceneError",
    "EmptySceneError",
    "Scene",
    "SceneError",
    "SceneFileError",
    "SceneFormatError",
    "SceneKind",
    "SceneKindError",
    "SceneTooLargeError",
    "UpAxis",
    "default_kernel",
    "fit_bounds",
    "load_scene",
    "mesh_bounds",
    "preview_caption",
    "preview_image",
    "preview_panels",
    "quantize_albedo",
    "quantize_frame",
    "quantize_normals",
    "save_preview",
    "save_scene",
    "to_kernel_input",
    "to_y_up",
    "voxelize_mesh",
]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
SceneKind = Literal["volume", "gbuffer", "frame"]
KINDS: tuple[SceneKind, ...] = ("volume", "gbuffer", "frame")
DEFAULT_RESOLUTION = 64
SCENE_FORMAT = "blindframe-scene/1"
# Written instead of SCENE_FORMAT when a volume carries an albedo grid: a reader that knows only
# /1 then names the format rather than refusing an unknown entry. Both are read.
SCENE_FORMAT_COLOURED = "blindframe-scene/2"
# Uncompressed bytes of a scene file's arrays: a 4096x4096 G-buffer (six float32 planes) fits.
MAX_SCENE_BYTES = 512 * 1024 * 1024
# Which kernel family renders which scene kind.
_KIND_OF_KERNEL: dict[str, SceneKind] = {"volume": "volume", "shade": "gbuffer", "post": "frame"}
_ARRAYS: dict[SceneKind, tuple[str, ...]] = {
    "volume": ("density",),
    "gbuffer": ("normals", "albedo"),
    "frame": ("frame",),
}
# Arrays a kind may hold besides its own: a volume's colours.
_OPTIONAL: dict[SceneKind, tuple[str, ...]] = {"volume": ("albedo",), "gbuffer": (), "frame": ()}
_NORMAL_LAYERS = ("normal", "normals", "n")
_ALBEDO_LAYERS = ("diffcol", "diffuse color", "albedo", "denoising albedo", "base color")
_FRAME_LAYERS = ("combined", "image", "composite", "beauty", "rgba", "")
# Rec. 709 luma: post@1 filters one grey channel.
_LUMA = np.array([0.2126, 0.7152, 0.0722])
MetaValue = str | int | float | bool


@dataclass(frozen=True, eq=False)
class Scene:
    """One artist's scene as float arrays (see the module docstring for each kind's arrays).

    Arrays are stored as read-only float32 copies and validated on construction.
    ``source`` says where the scene came from; ``bounds`` (volume only) is the world-space cube
    ``[[x0, y0, z0], [x1, y1, z1]]`` the grid covers; ``meta`` holds scalar facts (triangle
    count, camera...) that travel with the scene file.
    """

    kind: SceneKind
    source: str
    density: FloatArray | None = None
    normals: FloatArray | None = None
    albedo: FloatArray | None = None
    frame: FloatArray | None = None
    bounds: npt.NDArray[np.float64] | None = None
    meta: Mapping[str, MetaValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SceneKindError(f"scene kind must be one of {'|'.join(KINDS)} (not {self.kind!r})")
        if not isinstance(self.source, str):
            raise SceneFormatError(f"scene source must be a string (not {self.source!r})")
        wanted = _ARRAYS[self.kind]
        for name in ("density", "normals", "albedo", "frame"):
            value = getattr(self, name)
            if name in wanted:
                if value is None:
                    raise SceneFormatError(f"a {self.kind} scene needs {name}")
                object.__setattr__(self, name, _float_array(name, value))
            elif name in _OPTIONAL[self.kind] and value is not None:
                object.__setattr__(self, name, _float_array(name, value))
            elif value is not None:
                raise SceneKindError(f"a {self.kind} scene has no {name}")
        if self.kind == "volume":
            self._check_volume()
        else:
            self._check_image()
        if self.bounds is not None:
            if self.kind != "volume":
                raise SceneKindError(f"a {self.kind} scene has no bounds")
            box = np.array(self.bounds, dtype=np.float64)
            if box.shape != (2, 3) or not np.isfinite(box).all() or not (box[1] > box[0]).all():
                raise SceneFormatError(f"bounds must be [[x0, y0, z0], [x1, y1, z1]], not {box}")
            box.flags.writeable = False
            object.__setattr__(self, "bounds", box)
        object.__setattr__(self, "meta", _check_meta(self.meta))

    def _check_volume(self) -> None:
        density = self.density
        assert density is not None
        if density.ndim != 3 or len(set(density.shape)) != 1:
            raise SceneFormatError(f"density must be a cube (R, R, R), not shape {density.shape}")
        side = density.shape[0]
        if not MIN_RESOLUTION <= side <= MAX_RESOLUTION:
            raise SceneTooLargeError(
                f"density grid side {side} is outside {MIN_RESOLUTION}..{MAX_RESOLUTION}"
            )
        _check_unit_range("density", density)
        albedo = self.albedo
        if albedo is not None:
            if albedo.shape != (*density.shape, 3):
                raise SceneFormatError(
                    f"a volume's albedo must have shape {(*density.shape, 3)} (the density's "
                    f"grid, RGB), not {albedo.shape}"
                )
            _check_unit_range("albedo", albedo)
            if (albedo[density == 0] != 0).any():
                raise SceneFormatError("a volume's albedo must be 0 where the density is 0")

    def _check_image(self) -> None:
        planes = [getattr(self, name) for name in _ARRAYS[self.kind]]
        for name, arr in zip(_ARRAYS[self.kind], planes, strict=True):
            channels = (3,) if name in ("normals", "albedo") else (1, 3)
            if arr.ndim != 3 or arr.shape[0] not in channels:
                raise SceneFormatError(
                    f"{name} must have shape ({'|'.join(map(str, channels))}, H, W), "
                    f"not {arr.shape}"
                )
            height, width = arr.shape[1:]
            if not (1 <= height <= MAX_IMAGE_SIDE and 1 <= width <= MAX_IMAGE_SIDE):
                raise SceneTooLargeError(
                    f"{name} is {width}x{height} pixels; 1..{MAX_IMAGE_SIDE} a side allowed"
                )
        if self.kind == "gbuffer":
            normals, albedo = planes
            if normals.shape != albedo.shape:
                raise SceneFormatError(
                    f"normals {normals.shape[1:]} and albedo {albedo.shape[1:]} differ in size",
                    hint="render both passes at the same resolution",
                )
            length = np.sqrt((normals.astype(np.float64) ** 2).sum(axis=0))
            bad = (length > 1e-6) & (np.abs(length - 1.0) > 1e-3)
            if bad.any():
                y, x = (int(i) for i in np.argwhere(bad)[0])
                raise SceneFormatError(
                    f"normal at pixel ({x}, {y}) has length {length[y, x]:.3g}: normals must "
                    "be unit vectors, or 0 where there is no surface",
                    hint="build G-buffer scenes with Scene.from_passes",
                )
            _check_unit_range("albedo", albedo)
        else:
            _check_unit_range("frame", planes[0])

    # ----------------------------------------------------------------------------- builders

    @classmethod
    def from_mesh(
        cls,
        vertices: npt.ArrayLike,
        faces: npt.ArrayLike,
        *,
        resolution: int = DEFAULT_RESOLUTION,
        source: str = "mesh",
        bounds: npt.ArrayLike | None = None,
        meta: Mapping[str, MetaValue] | None = None,
        colours: MeshColours | None = None,
    ) -> Scene:
        """Voxelize triangles (+y up, world units) into a volume scene. ``bounds`` defaults to
        the fitted cube (:func:`mesh_bounds`: the vertices the faces use, centred, aspect kept).
        With ``colours`` (one per triangle) the scene gets an albedo grid (:func:`bake_albedo`)."""
        box = mesh_bounds(vertices, faces) if bounds is None else bounds
        density = voxelize_mesh(vertices, faces, resolution, bounds=box)
        albedo = None
        if colours is not None:
            albedo = bake_albedo(density, box, vertices, faces, colours).astype(np.float32)
        tris, pts = np.shape(faces), np.shape(vertices)
        info: dict[str, MetaValue] = {"triangles": int(tris[0]), "vertices": int(pts[0])}
        info.update(meta or {})
        return cls(
            "volume",
            source,
            density=density.astype(np.float32),
            albedo=albedo,
            bounds=np.asarray(box, dtype=np.float64),
            meta=info,
        )

    @classmethod
    def from_passes(
        cls,
        normals: npt.ArrayLike,
        albedo: npt.ArrayLike,
        *,
        source: str = "passes",
        coverage: npt.ArrayLike | None = None,
        meta: Mapping[str, MetaValue] | None = None,
    ) -> Scene:
        """A G-buffer scene from raw passes: ``normals`` ``(3, H, W)`` camera-space vectors of
        any length, ``albedo`` ``(3, H, W)`` display-referred colours (clipped to [0, 1]).

        A pixel is background where its normal is shorter than 0.5 (renderers write 0 there;
        antialiased silhouettes average towards it) or where ``coverage`` (``(H, W)`` bools) is
        False; background pixels get normal 0 and albedo 0. Other normals are normalized.
        """
        n = np.asarray(normals, dtype=np.float64)
        a = np.asarray(albedo, dtype=np.float64)
        if n.ndim != 3 or n.shape[0] != 3 or a.shape != n.shape:
            raise SceneFormatError(
                f"normals {n.shape} and albedo {a.shape} must both be (3, H, W) of one size",
                hint="render both passes at the same resolution",
            )
        n = np.nan_to_num(n, nan=0.0, posinf=0.0, neginf=0.0)
        a = np.clip(np.nan_to_num(a, nan=0.0), 0.0, 1.0)
        length = np.sqrt((n**2).sum(axis=0))
        surface = length >= 0.5
        if coverage is not None:
            mask = np.asarray(coverage, dtype=bool)
            if mask.shape != n.shape[1:]:
                raise SceneFormatError(f"coverage {mask.shape} does not match {n.shape[1:]}")
            surface &= mask
        if not surface.any():
            raise EmptySceneError(
                f"the G-buffer from {source} shows no surface: every normal is zero or masked",
                hint="point the camera at the objects; check the normal pass is not empty",
            )
        n = np.where(surface, n / np.maximum(length, 1e-12), 0.0)
        a = np.where(surface, a, 0.0)
        info: dict[str, MetaValue] = {"coverage": round(float(surface.mean()), 6)}
        info.update(meta or {})
        return cls(
            "gbuffer", source, normals=n.astype(np.float32), albedo=a.astype(np.float32), meta=info
        )

    # ----------------------------------------------------------------------------- views

    @property
    def resolution(self) -> int:
        """The grid's side (volume scenes)."""
        if self.density is None:
            raise SceneKindError(f"a {self.kind} scene has no grid resolution")
        return int(self.density.shape[0])

    @property
    def frame_hw(self) -> tuple[int, int]:
        """Height and width in pixels (gbuffer and frame scenes)."""
        arr = self.normals if self.kind == "gbuffer" else self.frame
        if arr is None:
            raise SceneKindError(f"a {self.kind} scene has no pixels")
        return int(arr.shape[1]), int(arr.shape[2])

    def summary(self) -> dict[str, Any]:
        """What a command prints about the scene (JSON-ready)."""
        out: dict[str, Any] = {"kind": self.kind, "source": self.source}
        if self.kind == "volume":
            assert self.density is not None
            out["resolution"] = self.resolution
            out["filled"] = round(float(self.density.mean()), 6)
            out["coloured"] = self.albedo is not None
            if self.bounds is not None:
                out["bounds"] = [[round(float(c), 6) for c in row] for row in self.bounds]
        else:
            height, width = self.frame_hw
            out["width"], out["height"] = width, height
            if self.frame is not None:
                out["channels"] = int(self.frame.shape[0])
        out["meta"] = dict(self.meta)
        return out


def _float_array(name: str, value: Any) -> FloatArray:
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise SceneFormatError(f"{name} must hold numbers (not {arr.dtype})")
    out = np.array(arr, dtype=np.float32, order="C")
    if not np.isfinite(out).all():
        raise SceneFormatError(f"{name} holds NaN or infinite values")
    out.flags.writeable = False
    return out


def _check_unit_range(name: str, arr: FloatArray) -> None:
    if arr.size == 0:
        raise EmptySceneError(f"{name} is empty")
    low, high = float(arr.min()), float(arr.max())
    if low < 0.0 or high > 1.0:
        raise SceneFormatError(f"{name} must lie in [0, 1] (found {low:.3g}..{high:.3g})")


def _check_meta(meta: Any) -> dict[str, MetaValue]:
    if not isinstance(meta, Mapping):
        raise SceneFormatError(f"scene meta must be a mapping (not {type(meta).__name__})")
    out: dict[str, MetaValue] = {}
    for key, value in meta.items():
        if not isinstance(key, str) or not isinstance(value, str | int | float | bool):
            raise SceneFormatError(f"scene meta {key!r} must map a name to a scalar")
        if isinstance(value, float) and not math.isfinite(value):
            raise SceneFormatError(f"scene meta {key!r} is not finite")
        out[key] = value
    return out


# --------------------------------------------------------------------------------- loading


def load_scene(
    path: str | os.PathLike[str] | None = None,
    *,
    normal: str | os.PathLike[str] | None = None,
    albedo: str | os.PathLike[str] | None = None,
    resolution: int = DEFAULT_RESOLUTION,
    up: UpAxis = "y",
) -> Scene:
    """Read a scene from files (see the module docstring for formats and conventions).

    ``path`` alone: a mesh (voxelized at ``resolution``, ``up`` its up axis), a PNG/EXR frame
    (or a multilayer EXR G-buffer), or a ``.npz`` scene file. ``normal`` and ``albedo`` without
    ``path``: a G-buffer from two passes.
    """
    if path is None:
        if normal is None or albedo is None:
            raise SceneKindError(
                "nothing to import: give a scene file, or both a normal and an albedo pass",
                hint="e.g. `import model.glb` or `import --normal n.exr --albedo a.png`",
            )
        return _gbuffer_from_files(Path(normal), Path(albedo))
    if normal is not None or albedo is not None:
        raise SceneKindError(
            "give either a scene file or G-buffer passes (--normal and --albedo), not both"
        )
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix == ".npz":
        return _read_scene_file(file)
    if suffix == ".fbx":
        return _fbx_scene(file, resolution)
    if suffix in MESH_SUFFIXES:
        mesh = read_mesh(file, up=up)
        return Scene.from_mesh(
            mesh.vertices,
            mesh.faces,
            resolution=resolution,
            source=file.name,
            meta={"objects": mesh.objects, "up": up},
            colours=mesh.colours,
        )
    if suffix in IMAGE_SUFFIXES:
        return _image_scene(read_image(file))
    known = ", ".join([*MESH_SUFFIXES, *IMAGE_SUFFIXES, ".npz"])
    raise SceneFormatError(
        f"cannot import {str(file)!r}: unknown file type {suffix or '(no suffix)'!r}",
        hint=f"supported: {known}; export to glTF/GLB from other 3D tools",
    )


def _fbx_scene(file: Path, resolution: int) -> Scene:
    """An FBX file voxelized, its materials' base colours in the meta."""
    from blindframe.client.scene._fbx import read_fbx  # starts Blender only for FBX files

    fbx = read_fbx(file)
    materials = json.dumps({name: list(rgba) for name, rgba in fbx.materials.items()})
    return Scene.from_mesh(
        fbx.mesh.vertices,
        fbx.mesh.faces,
        resolution=resolution,
        source=file.name,
        meta={"objects": fbx.mesh.objects, "up": "file", "materials": materials},
        colours=fbx.mesh.colours,
    )


def _layer(image: Image, names: tuple[str, ...], comps: tuple[str, ...]) -> dict[str, Any] | None:
    """The first layer whose last name segment is in ``names`` and has components ``comps``."""
    for wanted in names:
        for layer, channels in image.layers.items():
            if layer.rpartition(".")[2].lower() == wanted and all(c in channels for c in comps):
                return channels
    return None


def _rgb(channels: dict[str, Any], what: str, path: Path) -> npt.NDArray[np.float64]:
    if all(c in channels for c in "RGB"):
        rgb: npt.NDArray[np.float64] = np.stack([channels[c] for c in "RGB"]).astype(np.float64)
        return rgb
    if "Y" in channels:
        return np.repeat(channels["Y"][None].astype(np.float64), 3, axis=0)
    raise SceneFormatError(
        f"{what} {str(path)!r} has no RGB channels (found {', '.join(sorted(channels))})"
    )


def _normal_pass(image: Image) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Decoded normals and the pixels the file itself marks as covered."""
    channels = _layer(image, _NORMAL_LAYERS, ("X", "Y", "Z")) or _layer(
        image, _NORMAL_LAYERS, ("R", "G", "B")
    )
    if channels is None:
        channels = image.layers.get("")
    if channels is None or not (
        all(c in channels for c in "XYZ") or all(c in channels for c in "RGB")
    ):
        found = ", ".join(sorted(image.layers)) or "none"
        raise SceneFormatError(
            f"normal pass {str(image.path)!r} has no X/Y/Z or R/G/B channels (layers: {found})",
            hint="export the normal pass as an RGB PNG or EXR",
        )
    comps = "XYZ" if all(c in channels for c in "XYZ") else "RGB"
    vec = np.stack([channels[c] for c in comps]).astype(np.float64)
    covered = np.ones(vec.shape[1:], dtype=bool)
    if "A" in channels:
        covered &= channels["A"] > 0
    if not image.linear:
        # PNG: (n + 1) / 2 per channel. Black and mid-grey decode to vectors far from unit
        # length: those are the background.
        vec = vec * 2.0 - 1.0
        length = np.sqrt((vec**2).sum(axis=0))
        covered &= (length > 0.5) & (length < 1.5)
    else:
        length = np.sqrt((vec**2).sum(axis=0))
        surface = length >= 0.5
        off = surface & (np.abs(length - 1.0) > 0.2)
        if surface.any() and off.sum() > 0.25 * surface.sum():
            raise SceneFormatError(
                f"normal pass {str(image.path)!r} does not hold unit vectors "
                f"({off.sum() / surface.sum():.0%} of its surface pixels are far from length 1)",
                hint="EXR normals are read raw in [-1, 1]; a pass encoded as (n + 1) / 2 "
                "belongs in a PNG",
            )
    # Camera space: what the camera sees faces it (z >= 0), but for grazing views at the edge
    # of a wide lens. Many pixels facing away means another space (Blender's Normal pass, for
    # one, is in world space).
    length = np.sqrt((vec**2).sum(axis=0))
    seen = covered & (length >= 0.5)
    away = seen & (vec[2] < -0.35 * length)
    if seen.any() and away.sum() > 0.25 * seen.sum():
        raise SceneFormatError(
            f"normal pass {str(image.path)!r} does not look like camera space: "
            f"{away.sum() / seen.sum():.0%} of its surface pixels face away from the camera",
            hint="export camera-space normals (+x right, +y up, +z towards the viewer); "
            "from Blender, use the blindframe add-on, which converts its world-space pass",
        )
    return vec, covered


def _albedo_pass(image: Image) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    channels = _layer(image, _ALBEDO_LAYERS, ("R", "G", "B")) or image.layers.get("")
    if channels is None:
        found = ", ".join(sorted(image.layers)) or "none"
        raise SceneFormatError(
            f"albedo pass {str(image.path)!r} has no diffuse-colour layer (layers: {found})",
            hint="export the diffuse colour (albedo) pass as an RGB PNG or EXR",
        )
    rgb = _rgb(channels, "albedo pass", image.path)
    if image.linear:
        rgb = srgb_encode(rgb).astype(np.float64)
    covered = channels["A"] > 0 if "A" in channels else np.ones(rgb.shape[1:], dtype=bool)
    return np.clip(rgb, 0.0, 1.0), np.asarray(covered, dtype=bool)


def _gbuffer_from_files(normal: Path, albedo: Path) -> Scene:
    n_image = read_image(normal, "normal pass")
    a_image = read_image(albedo, "albedo pass")
    vec, n_cover = _normal_pass(n_image)
    rgb, a_cover = _albedo_pass(a_image)
    if vec.shape != rgb.shape:
        raise SceneFormatError(
            f"normal pass is {vec.shape[2]}x{vec.shape[1]} but albedo pass is "
            f"{rgb.shape[2]}x{rgb.shape[1]} pixels",
            hint="render both passes at the same resolution",
        )
    return Scene.from_passes(
        vec, rgb, source=f"{normal.name} + {albedo.name}", coverage=n_cover & a_cover
    )


def _image_scene(image: Image) -> Scene:
    normal = _layer(image, _NORMAL_LAYERS, ("X", "Y", "Z"))
    albedo = _layer(image, _ALBEDO_LAYERS, ("R", "G", "B"))
    if normal is not None and albedo is not None:
        vec, n_cover = _normal_pass(image)
        rgb, a_cover = _albedo_pass(image)
        return Scene.from_passes(vec, rgb, source=image.path.name, coverage=n_cover & a_cover)
    channels = _layer(image, _FRAME_LAYERS, ("R", "G", "B")) or _layer(image, _FRAME_LAYERS, ("Y",))
    if channels is None:
        rgb_layers = [ch for ch in image.layers.values() if all(c in ch for c in "RGB")]
        if len(rgb_layers) != 1:
            found = ", ".join(sorted(image.layers)) or "none"
            raise SceneFormatError(
                f"cannot tell which layer of {str(image.path)!r} is the frame (layers: {found})",
                hint="export the Combined (beauty) pass alone",
            )
        channels = rgb_layers[0]
    if all(c in channels for c in "RGB"):
        pixels = np.stack([channels[c] for c in "RGB"]).astype(np.float64)
    else:
        pixels = channels["Y"][None].astype(np.float64)
    if image.linear:
        pixels = srgb_encode(pixels).astype(np.float64)
    elif "A" in channels:
        pixels = pixels * channels["A"][None]  # straight alpha over black
    frame = np.clip(pixels, 0.0, 1.0).astype(np.float32)
    return Scene("frame", image.path.name, frame=frame)


# --------------------------------------------------------------------------------- scene files


def save_scene(scene: Scene, path: str | os.PathLike[str]) -> Path:
    """Write ``scene`` as a ``.npz`` scene file (no pickle; atomic replace); return its path.

    Entries: ``format`` (``"blindframe-scene/1"``, or ``"blindframe-scene/2"`` for a volume
    with an albedo grid), ``kind``, ``source``, ``meta`` (a JSON object), the kind's float32
    arrays (``density`` and, when coloured, ``albedo`` ``(R, R, R, 3)``; ``normals`` +
    ``albedo`` ``(3, H, W)``; ``frame``) and, for volumes with known bounds, ``bounds`` (float64
    ``(2, 3)``). Strings are 0-d unicode arrays, so ``numpy.load(path, allow_pickle=False)``
    reads every entry.
    """
    out = Path(path)
    if out.suffix.lower() != ".npz":
        raise SceneFormatError(
            f"scene files end in .npz (not {str(out)!r})", hint="name the output e.g. scene.npz"
        )
    coloured = scene.kind == "volume" and scene.albedo is not None
    entries: dict[str, npt.NDArray[Any]] = {
        "format": np.array(SCENE_FORMAT_COLOURED if coloured else SCENE_FORMAT),
        "kind": np.array(scene.kind),
        "source": np.array(scene.source),
        "meta": np.array(json.dumps(dict(scene.meta), sort_keys=True)),
    }
    for name in (*_ARRAYS[scene.kind], *_OPTIONAL[scene.kind]):
        if getattr(scene, name) is not None:
            entries[name] = np.asarray(getattr(scene, name), dtype=np.float32)
    if scene.bounds is not None:
        entries["bounds"] = np.asarray(scene.bounds, dtype=np.float64)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".scene-", suffix=".npz", dir=out.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez_compressed(fh, **entries)
            Path(tmp).replace(out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise SceneFileError(f"cannot write scene file {str(out)!r}: {exc.strerror}") from None
    return out


def _read_scene_file(path: Path) -> Scene:
    check_file(path, "scene file")
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise SceneFormatError(
            f"{str(path)!r} is not a scene file (not an .npz archive: {exc})",
            hint="write scene files with `blindframe client import ... -o scene.npz`",
        ) from None
    if unpacked > MAX_SCENE_BYTES:
        raise SceneTooLargeError(
            f"scene file {str(path)!r} unpacks to {unpacked / 2**20:.0f} MiB, more than the "
            f"{MAX_SCENE_BYTES // 2**20} MiB allowed"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            entries = {name: data[name] for name in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise SceneFormatError(f"cannot read scene file {str(path)!r}: {exc}") from None
    fmt = _string(entries, "format", path)
    if fmt not in (SCENE_FORMAT, SCENE_FORMAT_COLOURED):
        raise SceneFormatError(
            f"{str(path)!r} is a {fmt!r} file, not a {SCENE_FORMAT} scene",
            hint="re-import the original model with this version of blindframe",
        )
    kind = _string(entries, "kind", path)
    if kind not in KINDS:
        raise SceneFormatError(f"scene file {str(path)!r} has unknown kind {kind!r}")
    scene_kind: SceneKind = kind
    optional = _OPTIONAL[scene_kind] if fmt == SCENE_FORMAT_COLOURED else ()
    allowed = {"format", "kind", "source", "meta", "bounds", *_ARRAYS[scene_kind], *optional}
    extra = sorted(set(entries) - allowed)
    if extra:
        raise SceneFormatError(f"scene file {str(path)!r} has unexpected entries {extra}")
    try:
        meta = json.loads(_string(entries, "meta", path))
    except json.JSONDecodeError as exc:
        raise SceneFormatError(f"scene file {str(path)!r} has unreadable meta: {exc}") from None
    arrays: dict[str, Any] = {}
    for name in _ARRAYS[scene_kind]:
        if name not in entries:
            raise SceneFormatError(f"scene file {str(path)!r} ({kind}) lacks {name}")
        arrays[name] = entries[name]
    for name in optional:
        if name in entries:
            arrays[name] = entries[name]
    bounds = entries.get("bounds")
    try:
        return Scene(
            scene_kind, _string(entries, "source", path), bounds=bounds, meta=meta, **arrays
        )
    except SceneError as exc:
        raise type(exc)(f"scene file {str(path)!r}: {exc.message}", hint=exc.hint) from None


def _string(entries: Mapping[str, npt.NDArray[Any]], name: str, path: Path) -> str:
    value = entries.get(name)
    if value is None or value.ndim != 0 or value.dtype.kind != "U":
        raise SceneFormatError(
            f"{str(path)!r} is not a blindframe scene file ({name!r} entry missing or not text)",
            hint="write scene files with `blindframe client import ... -o scene.npz`",
        )
    return str(value)


# --------------------------------------------------------------------------------- kernels


def default_kernel(kind: SceneKind) -> str:
    """The kernel that renders a scene of this kind: volume@1, shade@1 or post@1."""
    for name, scene_kind in _KIND_OF_KERNEL.items():
        if scene_kind == kind:
            return f"{name}@1"
    raise SceneKindError(f"scene kind must be one of {'|'.join(KINDS)} (not {kind!r})")


def quantize_normals(normals: npt.ArrayLike, top: int) -> IntArray:
    """Camera-space unit normals ``(3, H, W)`` (0 = background) -> integers in [-top, top]:
    ``rint(n * top)``, the convention of ``fhe_core.sample.sample_gbuffer``. Scaling by the
    Euclidean length keeps ``n . L`` proportional to the cosine the kernel's tables expect."""
    arr = np.asarray(normals, dtype=np.float64)
    out: IntArray = np.clip(np.rint(arr * top), -top, top).astype(np.int64)
    return out


def quantize_albedo(albedo: npt.ArrayLike, top: int) -> IntArray:
    """Display-referred albedo ``(3, H, W)`` in [0, 1] -> integers in [0, top], ``rint(a * top)``.

    Background pixels (albedo 0) stay 0, so ``shade`` leaves them black."""
    arr = np.asarray(albedo, dtype=np.float64)
    out: IntArray = np.clip(np.rint(arr * top), 0, top).astype(np.int64)
    return out


def quantize_frame(frame: npt.ArrayLike, top: int) -> IntArray:
    """A frame ``(C, H, W)`` in [0, 1] -> one grey plane ``(H, W)`` of integers in [0, top].

    RGB becomes Rec. 709 luma (``post@1`` filters one channel); then ``rint(y * top)``.
    """
    arr = np.asarray(frame, dtype=np.float64)
    grey = np.tensordot(_LUMA, arr, axes=1) if arr.shape[0] == 3 else arr[0]
    out: IntArray = np.clip(np.rint(grey * top), 0, top).astype(np.int64)
    return out


def to_kernel_input(scene: Scene, kernel_id: str) -> tuple[IntArray, ...]:
    """The plaintext arrays ``kernel_id`` encrypts, from ``scene``:

    - ``volume@1``: ``(quantize_density(density),)`` -- 4096 occupancy values (fhe_core);
    - ``shade@1``: ``(normals, albedo)``, each ``(3, H, W)``: normals in [-4, 4], albedo [0, 3];
    - ``post@1``: ``(frame,)``, ``(H, W)`` grey in [0, 7].

    The ranges come from the kernel registry's input bounds. A scene of the wrong kind raises
    SceneKindError; an unknown kernel id, fhe_core's UnknownKernelError.
    """
    from blindframe.fhe_core.kernels import get_kernel
    from blindframe.fhe_core.voxels import quantize_density

    kernel = get_kernel(kernel_id)
    needed = _KIND_OF_KERNEL.get(kernel.name)
    if needed is None:
        raise SceneKindError(f"no scene converter for kernel {kernel_id!r}")
    if scene.kind != needed:
        raise SceneKindError(
            f"{kernel_id} renders a {needed} scene, but {scene.source!r} is a {scene.kind} scene",
            hint={
                "volume": "import a mesh (glTF, OBJ, STL, PLY)",
                "gbuffer": "import a normal and an albedo pass (--normal, --albedo)",
                "frame": "import a rendered PNG/EXR frame",
            }[needed],
        )
    tops = [int(np.max(enc.hi)) for enc in kernel.enc]
    if scene.density is not None:
        return (quantize_density(scene.density, kernel_id=kernel_id),)
    if scene.normals is not None and scene.albedo is not None:
        return (quantize_normals(scene.normals, tops[0]), quantize_albedo(scene.albedo, tops[1]))
    assert scene.frame is not None
    return (quantize_frame(scene.frame, tops[0]),)


# --------------------------------------------------------------------------------- previews


def preview_image(scene: Scene) -> npt.NDArray[np.float32]:
    """An RGB picture ``(H, W, 3)`` in [0, 1] of what the scene holds.

    volume: top row, the density seen along -z (front), -x (side) and -y (top), as thickness;
    next row, the same views of the 16^3 occupancy ``volume@1`` encrypts; last, for a volume
    with an albedo grid, the colour of the first occupied voxel seen from +z, +x and +y (the
    same three views, unlit). gbuffer: the
    normals as ``(n + 1) / 2`` (background black) beside the albedo. frame: the frame.
    """
    if scene.kind == "volume":
        from blindframe.fhe_core.voxels import GRID, quantize_density

        assert scene.density is not None
        side = scene.resolution
        occupancy = quantize_density(scene.density).reshape(GRID, GRID, GRID).astype(np.float64)
        scale = side // GRID if side % GRID == 0 else 1
        if scale > 1:
            occupancy = occupancy.repeat(scale, 0).repeat(scale, 1).repeat(scale, 2)
        rows = [_projections(scene.density.astype(np.float64))]
        if occupancy.shape == scene.density.shape:
            rows.append(_projections(occupancy))
        grey = np.concatenate(rows, axis=0)
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
        if scene.albedo is not None:
            colour = _colour_projections(scene.density > 0, scene.albedo.astype(np.float64))
            rgb = np.concatenate([rgb, colour], axis=0)
        return rgb.astype(np.float32)
    if scene.kind == "gbuffer":
        assert scene.normals is not None
        assert scene.albedo is not None
        covered = np.abs(scene.normals).sum(axis=0) > 0
        normals = np.where(covered, (scene.normals + 1.0) / 2.0, 0.0)
        gap = np.zeros((3, normals.shape[1], 2), dtype=np.float32)
        both = np.concatenate([normals, gap, scene.albedo], axis=2)
        return np.moveaxis(both, 0, -1).astype(np.float32)
    assert scene.frame is not None
    frame = scene.frame if scene.frame.shape[0] == 3 else np.repeat(scene.frame, 3, axis=0)
    return np.moveaxis(frame, 0, -1).astype(np.float32)


def _projections(grid: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Front (along z), side (along x) and top (along y) thickness views, +y up on screen."""
    front = grid.mean(axis=2).T[::-1]  # rows: y from the top; columns: x
    side = grid.mean(axis=0)[::-1, ::-1]  # rows: y; columns: -z (seen from +x)
    top = grid.mean(axis=1).T  # rows: z from the back; columns: x (seen from +y)
    views = [v / max(float(v.max()), 1e-9) for v in (front, side, top)]
    gap = np.zeros((grid.shape[0], 2))
    return np.concatenate([views[0], gap, views[1], gap, views[2]], axis=1)


def _colour_projections(
    occupied: npt.NDArray[np.bool_], albedo: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """The first occupied voxel's colour seen from +z (front), +x (side) and +y (top), laid out
    like :func:`_projections` ``(R, 3R + 4, 3)``; black where a ray meets nothing."""

    def first_hit(axis: int) -> npt.NDArray[np.float64]:
        side = occupied.shape[axis]
        # The viewer is on the + side: the last occupied index along the axis.
        index = side - 1 - np.argmax(np.flip(occupied, axis), axis=axis)
        seen = np.take_along_axis(albedo, np.expand_dims(index, axis)[..., None], axis=axis)
        out: npt.NDArray[np.float64] = np.where(
            occupied.any(axis=axis)[..., None], seen.squeeze(axis), 0.0
        )
        return out

    front = first_hit(2).transpose(1, 0, 2)[::-1]  # rows: y from the top; columns: x
    side = first_hit(0)[::-1, ::-1]  # rows: y; columns: -z
    top = first_hit(1).transpose(1, 0, 2)  # rows: z from the back; columns: x
    gap = np.zeros((occupied.shape[0], _PANEL_GAP, 3))
    return np.concatenate([front, gap, side, gap, top], axis=1)


# Height in pixels of the caption strip above each row of panels in a saved preview.
_CAPTION_HEIGHT = 16
_PANEL_GAP = 2  # pixels between panels in preview_image


def preview_panels(scene: Scene) -> list[list[str]]:
    """What each panel of :func:`preview_image` shows, row by row, left to right."""
    if scene.kind == "volume":
        from blindframe.fhe_core.voxels import GRID

        assert scene.density is not None
        views = ("front", "side", "top")
        rows = [[f"density: {view}" for view in views]]
        scale = scene.resolution // GRID if scene.resolution % GRID == 0 else 1
        if GRID * scale == scene.resolution:
            rows.append([f"{GRID}^3 voxels: {view}" for view in views])
        if scene.albedo is not None:
            rows.append([f"colour: {view}" for view in views])
        return rows
    if scene.kind == "gbuffer":
        return [["normals (n+1)/2", "albedo"]]
    return [["frame"]]


def preview_caption(scene: Scene) -> str:
    """One sentence saying what a saved preview shows, for the command's output."""
    if scene.kind == "volume":
        text = "front, side and top views of the imported density (thickness)"
        if any(row[0].endswith("voxels: front") for row in preview_panels(scene)):
            text += "; below, the 16^3 voxels volume@1 encrypts"
        if scene.albedo is not None:
            text += "; last, the colour of the nearest surface in each view"
        return text
    if scene.kind == "gbuffer":
        return "the normals pass as (n+1)/2, beside the albedo pass"
    return "the frame as imported"


def save_preview(scene: Scene, path: str | os.PathLike[str], *, min_side: int = 256) -> Path:
    """Write :func:`preview_image` as a PNG, scaled up (nearest) to at least ``min_side``, with
    a caption strip above each row naming its panels (:func:`preview_panels`)."""
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise SceneFormatError(f"previews are PNG files (not {str(out)!r})")
    rgb = preview_image(scene)
    factor = max(1, math.ceil(min_side / max(1, min(rgb.shape[:2]))))
    factor = min(factor, max(1, MAX_IMAGE_SIDE // max(rgb.shape[:2])))
    rgb = rgb.repeat(factor, axis=0).repeat(factor, axis=1)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _captioned(rgb, preview_panels(scene), factor).save(out, format="PNG")
    except OSError as exc:
        raise SceneFileError(f"cannot write preview {str(out)!r}: {exc.strerror}") from None
    return out


def _captioned(rgb: npt.NDArray[np.float32], rows: list[list[str]], factor: int) -> Any:
    """The scaled preview with a black caption strip above each row, each panel's label at its
    left edge (panels are equal-width, ``_PANEL_GAP`` pixels apart before scaling)."""
    from PIL import Image as PilImage
    from PIL import ImageDraw, ImageFont

    pixels = np.clip(np.rint(rgb.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    height, width = pixels.shape[:2]
    row_height = height // len(rows)
    canvas = PilImage.new("RGB", (width, height + _CAPTION_HEIGHT * len(rows)))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=12)
    for index, labels in enumerate(rows):
        top = index * (row_height + _CAPTION_HEIGHT)
        part = pixels[index * row_height : (index + 1) * row_height]
        canvas.paste(PilImage.fromarray(part), (0, top + _CAPTION_HEIGHT))
        gap = _PANEL_GAP * factor
        panel = (width - gap * (len(labels) - 1)) // len(labels)
        for column, label in enumerate(labels):
            draw.text((column * (panel + gap) + 2, top + 1), label, fill=(255, 255, 255), font=font)
    return canvas
