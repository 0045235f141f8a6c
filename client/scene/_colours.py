"""A mesh's surface colours (materials, vertex colours, textures) and the voxel albedo grid.

Colour model. The colour at a point of triangle ``f`` is, in linear RGB,
``base[f] * corner colour (interpolated) * texture(uv interpolated)``; the product is
sRGB-encoded at the end, so the grid is display-referred like every colour of the package.
Each source is read in its own encoding:

- glTF ``baseColorFactor`` and ``COLOR_0``: linear (the glTF spec); ``baseColorTexture``: sRGB;
- OBJ/MTL ``Kd``: linear, as Blender writes and reads it; ``map_Kd``: sRGB, and it replaces
  ``Kd`` (Blender's importer does the same; many exporters write a placeholder ``Kd``);
- PLY (and OBJ) vertex or face colours: sRGB bytes, as viewers show them;
- Blender and FBX materials' Base Color: linear; their Image Texture nodes: sRGB bytes.

A texture is sampled at the nearest texel, wrapping (glTF's default ``REPEAT``); UVs have their
origin at the image's bottom-left corner (OBJ, Blender; trimesh turns glTF's top-left origin
into this). A part of a file with no colour at all gets Blender's default base colour
(:data:`DEFAULT_LINEAR`) when other parts have one; a file with no colour anywhere has none.

Per voxel (:func:`bake_albedo`): every triangle is cut into ``k * k`` equal sub-triangles
no wider than half a voxel; each sub-triangle's centroid colour, weighted by its area, goes to
the voxel it falls in (a point on a voxel's boundary goes to the voxel behind the triangle, so
two solids that touch keep their own colours). A voxel's colour is the area-weighted mean of
the surface inside it (averaged in linear light): a voxel that two colours share gets their
blend, and a texture is box-filtered to the grid. An occupied voxel with no surface inside (the
interior, or a rim voxel whose surface lies just past its edge) takes the colour of the nearest
coloured voxel along the six axis directions (the mean surface colour if none); an empty voxel
gets 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from blindframe.client.scene._errors import SceneFormatError, SceneTooLargeError
from blindframe.client.scene._images import MAX_IMAGE_SIDE, srgb_decode, srgb_encode

__all__ = [
    "DEFAULT_LINEAR",
    "MeshColours",
    "bake_albedo",
    "concat_colours",
    "texture_array",
]

FloatArray = npt.NDArray[np.float64]
ByteArray = npt.NDArray[np.uint8]
# Blender's default Base Color (linear 0.8 grey).
DEFAULT_LINEAR = (0.8, 0.8, 0.8)
# Sample points handled at once in bake_albedo: bounds its temporary arrays (~0.3 GB).
_CHUNK = 2_000_000
# How far (voxels) a sample moves into the solid behind its triangle.
_NUDGE = 1e-4
# Samples per voxel width along a triangle's longest edge.
_SAMPLES_PER_VOXEL = 2


# Byte -> linear, for texels.
_BYTE_TO_LINEAR = srgb_decode(np.arange(256) / 255.0)


@dataclass(frozen=True)
class MeshColours:
    """The colours of ``M`` triangles (see the module docstring for the model).

    ``base`` ``(M, 3)`` linear RGB; ``corner`` ``(M, 3, 3)`` linear RGB per triangle corner or
    None; ``uv`` ``(M, 3, 2)`` per corner and ``texture`` ``(M,)`` (an index into ``textures``,
    -1 for none) or both None; ``textures`` 8-bit sRGB images ``(H, W, 3)``, row 0 on top.
    """

    base: FloatArray
    corner: FloatArray | None = None
    uv: npt.NDArray[np.float32] | None = None
    texture: npt.NDArray[np.int32] | None = None
    textures: tuple[ByteArray, ...] = ()

    def __post_init__(self) -> None:
        base = _rgb_array("base colours", self.base, 2)
        count = len(base)
        object.__setattr__(self, "base", base)
        if self.corner is not None:
            corner = _rgb_array("corner colours", self.corner, 3)
            _check_count("corner colours", len(corner), count)
            object.__setattr__(self, "corner", corner)
        if (self.uv is None) != (self.texture is None):
            raise SceneFormatError("texture coordinates and texture indices come together")
        if self.uv is not None and self.texture is not None:
            uv = np.asarray(self.uv, dtype=np.float32)
            if uv.ndim != 3 or uv.shape[1:] != (3, 2):
                raise SceneFormatError(f"texture coordinates must be (M, 3, 2), not {uv.shape}")
            _check_count("texture coordinates", len(uv), count)
            if not np.isfinite(uv).all():
                raise SceneFormatError("texture coordinates hold NaN or infinite values")
            index = np.asarray(self.texture)
            if index.shape != (count,) or not np.issubdtype(index.dtype, np.integer):
                raise SceneFormatError(
                    f"texture indices must be {count} integers (one per triangle), "
                    f"not {index.dtype} {index.shape}"
                )
            if len(index) and (index.min() < -1 or index.max() >= len(self.textures)):
                raise SceneFormatError(
                    f"texture indices refer to textures outside 0..{len(self.textures) - 1}"
                )
            object.__setattr__(self, "uv", uv)
            object.__setattr__(self, "texture", index.astype(np.int32))
        textures = tuple(texture_array(t, f"texture {i}") for i, t in enumerate(self.textures))
        object.__setattr__(self, "textures", textures)

    def __len__(self) -> int:
        return len(self.base)

    @classmethod
    def uniform(cls, count: int, rgb: Sequence[float] = DEFAULT_LINEAR) -> MeshColours:
        """``count`` triangles of one linear colour."""
        return cls(np.tile(np.asarray(rgb, dtype=np.float64), (count, 1)))

    def colour_at(self, tri: npt.NDArray[np.int64], bary: FloatArray) -> FloatArray:
        """Linear RGB ``(P, 3)`` at barycentric ``bary`` ``(P, 3)`` of triangles ``tri``."""
        rgb = self.base[tri].copy()
        if self.corner is not None:
            rgb *= np.einsum("pc,pck->pk", bary, self.corner[tri])
        if self.uv is not None and self.texture is not None:
            which = self.texture[tri]
            uv = np.einsum("pc,pck->pk", bary, self.uv[tri].astype(np.float64))
            for index, image in enumerate(self.textures):
                sel = which == index
                if sel.any():
                    rgb[sel] *= _sample(image, uv[sel])
        return rgb


def concat_colours(parts: Sequence[MeshColours]) -> MeshColours:
    """One :class:`MeshColours` for triangles concatenated in the parts' order."""
    base = np.concatenate([p.base for p in parts]) if parts else np.zeros((0, 3))
    corner = None
    if any(p.corner is not None for p in parts):
        corner = np.concatenate(
            [p.corner if p.corner is not None else np.ones((len(p), 3, 3)) for p in parts]
        )
    uv = texture = None
    textures: list[ByteArray] = []
    if any(p.uv is not None for p in parts):
        uvs, indices = [], []
        for p in parts:
            if p.uv is not None and p.texture is not None:
                uvs.append(p.uv)
                indices.append(np.where(p.texture >= 0, p.texture + len(textures), -1))
                textures.extend(p.textures)
            else:
                uvs.append(np.zeros((len(p), 3, 2), dtype=np.float32))
                indices.append(np.full(len(p), -1))
        uv = np.concatenate(uvs).astype(np.float32)
        texture = np.concatenate(indices).astype(np.int32)
    return MeshColours(base, corner, uv, texture, tuple(textures))


def texture_array(image: npt.ArrayLike, what: str) -> ByteArray:
    """An image as 8-bit sRGB ``(H, W, 3)`` (grey is repeated, alpha dropped), checked."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise SceneFormatError(f"{what} must be an (H, W, 3) image, not shape {arr.shape}")
    if max(arr.shape[:2]) > MAX_IMAGE_SIDE:
        raise SceneTooLargeError(
            f"{what} is {arr.shape[1]}x{arr.shape[0]} pixels; up to {MAX_IMAGE_SIDE} a side",
            hint="scale the texture down: the grid samples a few hundred texels a side at most",
        )
    if arr.dtype != np.uint8:
        raise SceneFormatError(f"{what} must hold 8-bit values (not {arr.dtype})")
    rgb = arr[:, :, :3] if arr.shape[2] >= 3 else np.repeat(arr[:, :, :1], 3, axis=2)
    out: ByteArray = np.ascontiguousarray(rgb)
    return out


def bake_albedo(
    density: npt.ArrayLike,
    bounds: npt.ArrayLike,
    vertices: npt.ArrayLike,
    faces: npt.ArrayLike,
    colours: MeshColours,
) -> FloatArray:
    """The albedo grid ``(R, R, R, 3)``, sRGB in [0, 1], of ``density`` ``(R, R, R)`` voxelized
    from these triangles over the cube ``bounds``; 0 where the density is 0 (see the module
    docstring for how a voxel's colour is chosen)."""
    dens = np.asarray(density, dtype=np.float64)
    side = dens.shape[0]
    box = np.asarray(bounds, dtype=np.float64)
    pts = np.asarray(vertices, dtype=np.float64)
    tris = np.asarray(faces, dtype=np.int64)
    _check_count("colours", len(colours), len(tris))
    # Grid units: voxel i spans [i, i + 1).
    grid = (pts - box[0]) * (side / float(box[1, 0] - box[0, 0]))
    corners = grid[tris]  # (M, 3, 3)
    edges = np.stack(
        [np.linalg.norm(corners[:, (c + 1) % 3] - corners[:, c], axis=1) for c in range(3)]
    )
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    area = 0.5 * np.linalg.norm(cross, axis=1)
    # A sample exactly on a voxel face (an axis-aligned face on a voxel boundary) belongs to
    # the voxel behind the triangle, inside the solid it bounds: a nudge against its normal.
    nudge = -_NUDGE * cross / np.maximum(2.0 * area, 1e-300)[:, None]
    steps = np.maximum(1, np.ceil(edges.max(axis=0) * _SAMPLES_PER_VOXEL)).astype(np.int64)
    total = np.zeros((side**3, 3))
    weight = np.zeros(side**3)
    live = area > 0
    for k in np.unique(steps[live]):
        bary = _sub_centroids(int(k))
        members = np.nonzero(live & (steps == k))[0]
        per = max(1, _CHUNK // len(bary))
        for start in range(0, len(members), per):
            sel = members[start : start + per]
            tri = np.repeat(sel, len(bary))
            b = np.tile(bary, (len(sel), 1))
            where = np.einsum("pc,pck->pk", b, corners[tri]) + nudge[tri]
            cell = np.clip(np.floor(where).astype(np.int64), 0, side - 1)
            flat = (cell[:, 0] * side + cell[:, 1]) * side + cell[:, 2]
            w = np.repeat(area[sel] / (k * k), len(bary))
            rgb = colours.colour_at(tri, b)
            # Sums over the voxels this chunk touches only: a bincount over the whole grid
            # per chunk would cost more than the samples themselves on a large grid.
            cells, local = np.unique(flat, return_inverse=True)
            weight[cells] += np.bincount(local, weights=w, minlength=len(cells))
            for c in range(3):
                total[cells, c] += np.bincount(local, weights=w * rgb[:, c], minlength=len(cells))
    weight = weight.reshape((side,) * 3)
    total = total.reshape((side,) * 3 + (3,))
    has = weight > 0
    linear = np.zeros((side,) * 3 + (3,))
    linear[has] = total[has] / weight[has][:, None]
    occupied = dens > 0
    missing = occupied & ~has
    if missing.any():
        fallback = total.sum(axis=(0, 1, 2)) / max(float(weight.sum()), 1e-300)
        # Only the box around the occupied voxels (one voxel wider) takes part: less memory.
        where = np.nonzero(occupied)
        box_slices = tuple(
            slice(max(int(w.min()) - 1, 0), min(int(w.max()) + 2, side)) for w in where
        )
        part = linear[box_slices]
        part[missing[box_slices]] = _nearest_along_axes(
            part, has[box_slices], missing[box_slices], fallback
        )
    out: FloatArray = np.zeros_like(linear)
    out[occupied] = srgb_encode(linear[occupied])
    return out


def _sub_centroids(k: int) -> FloatArray:
    """Barycentric centroids ``(k * k, 3)`` of a triangle's ``k * k`` equal sub-triangles."""
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    up = i + j <= k - 1
    down = i + j <= k - 2
    a = np.concatenate([(i[up] + 1 / 3) / k, (i[down] + 2 / 3) / k])
    b = np.concatenate([(j[up] + 1 / 3) / k, (j[down] + 2 / 3) / k])
    return np.stack([1.0 - a - b, a, b], axis=1)


def _nearest_along_axes(
    linear: FloatArray,
    has: npt.NDArray[np.bool_],
    missing: npt.NDArray[np.bool_],
    fallback: FloatArray,
) -> FloatArray:
    """Colours ``(count, 3)`` for the ``missing`` voxels: of the nearest voxel in ``has`` along
    +-x, +-y, +-z (``fallback`` where a voxel sees none)."""
    shape = has.shape
    none = np.iinfo(np.int32).max
    best = np.full(shape, none, dtype=np.int32)
    source = np.full(shape, -1, dtype=np.int64)
    here = np.arange(has.size, dtype=np.int64).reshape(shape)
    for axis in range(3):
        side = shape[axis]
        stride = int(np.prod(shape[axis + 1 :]))
        pos = np.arange(side, dtype=np.int32).reshape([side if a == axis else 1 for a in range(3)])
        # The nearest coloured position at or below, and at or above, along this axis.
        below = np.maximum.accumulate(np.where(has, pos, -1), axis=axis)
        above = np.flip(
            np.minimum.accumulate(np.flip(np.where(has, pos, side), axis), axis=axis), axis
        )
        for found, dist, at in (
            (below >= 0, pos - below, below),
            (above < side, above - pos, above),
        ):
            closer = found & (dist < best)
            best = np.where(closer, dist, best)
            source = np.where(closer, here + (at - pos).astype(np.int64) * stride, source)
    picked = source[missing]
    out: FloatArray = np.where(
        (picked >= 0)[:, None], linear.reshape(-1, 3)[np.maximum(picked, 0)], fallback
    )
    return out


def _sample(image: ByteArray, uv: FloatArray) -> FloatArray:
    """Linear RGB of ``image``'s nearest texel at ``uv`` ``(P, 2)`` (wrapping; v up)."""
    height, width = image.shape[:2]
    col = np.floor(np.mod(uv[:, 0], 1.0) * width).astype(np.int64) % width
    row = np.floor(np.mod(1.0 - uv[:, 1], 1.0) * height).astype(np.int64) % height
    out: FloatArray = _BYTE_TO_LINEAR[image[row, col]]
    return out


def _rgb_array(what: str, value: npt.ArrayLike, ndim: int) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != ndim or arr.shape[-1] != 3 or (ndim == 3 and arr.shape[1] != 3):
        wanted = "(M, 3)" if ndim == 2 else "(M, 3, 3)"
        raise SceneFormatError(f"{what} must have shape {wanted} (RGB), not {arr.shape}")
    if not np.isfinite(arr).all():
        raise SceneFormatError(f"{what} hold NaN or infinite values")
    out: FloatArray = np.clip(arr, 0.0, 1.0)
    return out


def _check_count(what: str, found: int, count: int) -> None:
    if found != count:
        raise SceneFormatError(
            f"the mesh has {count:,} triangles but {found:,} {what}",
            hint="export the colours with the mesh they belong to",
        )
