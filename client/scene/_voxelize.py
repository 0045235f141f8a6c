"""The one mesh voxelizer: triangles -> float density grid, by crossings along axis-aligned rays.

Method. Sample points sit on a regular grid (``supersample`` points per voxel and axis). For
each of the three axes, every triangle is rasterized onto the grid's columns along that axis
(the 2-D point-in-triangle test on the projected triangle), and the depth where the column's ray
crosses it is binned between the column's samples. A running sum along each column then gives,
at every sample, the crossings below it: their count (parity) and their signed sum (the winding
number: a triangle facing down counts +1, facing up -1). A column decides:

- an odd number of crossings in total: the ray entered and never left (or the reverse), so the
  mesh is open along this ray: the column abstains;
- signed crossings that add up to zero (a consistently oriented closed surface): inside where
  the winding number is not zero, so overlapping closed parts are a union, not carved out;
- otherwise (faces flipped inconsistently): inside where the crossing count is odd.

A sample is inside when a strict majority of the axes that did not abstain say so. For a closed
mesh all three agree; a mesh with small holes stays solid where the rays through a hole abstain
and the other axes vote; a surface that encloses nothing (a plane, a lone open sheet) abstains
everywhere and comes out empty. The density of a voxel is the fraction of its samples inside.

Points exactly on a projected edge or vertex are decided as if pushed by an infinitesimal fixed
offset (simulation of simplicity), with each edge's function computed from its endpoints in a
canonical order, so a ray through a shared edge or vertex is counted by exactly one triangle of
each sheet: no double counting, no leaks, even for axis-aligned boxes whose edges hit columns.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from blindframe.client.scene._errors import EmptySceneError, SceneFormatError, SceneTooLargeError

__all__ = [
    "MAX_CANDIDATES",
    "MAX_RESOLUTION",
    "MAX_SAMPLES_PER_AXIS",
    "MAX_TRIANGLES",
    "MIN_RESOLUTION",
    "fit_bounds",
    "mesh_bounds",
    "voxelize_mesh",
]

FloatArray = npt.NDArray[np.float64]
MIN_RESOLUTION = 16
MAX_RESOLUTION = 256
MAX_TRIANGLES = 4_000_000
# Samples per axis after supersampling: 256^3 samples x 3 axes is the memory ceiling (~0.5 GB).
MAX_SAMPLES_PER_AXIS = 256
# Candidate (triangle, column) pairs handled at once: bounds the temporary arrays (~0.5 GB).
_CHUNK = 4_000_000
# All candidate pairs of one axis: a few seconds per hundred million. Only meshes of many huge
# slivers come near (each triangle costs the area of its projected bounding box).
MAX_CANDIDATES = 400_000_000
# (u, v, w) for rays along each axis; cyclic, so (u, v, w) is right-handed and a triangle that
# winds counter-clockwise in (u, v) faces +w.
_AXES = ((1, 2, 0), (2, 0, 1), (0, 1, 2))


def fit_bounds(vertices: npt.ArrayLike) -> FloatArray:
    """The cube the grid covers: the vertices' bounding box, centred, its longest side kept.

    Returns ``[[x0, y0, z0], [x1, y1, z1]]`` with equal sides (aspect preserved). A box with
    no extent on some axis (a point, a line, a flat sheet) is still a cube; only a box with no
    extent at all is refused.
    """
    pts = _as_vertices(vertices)
    if len(pts) == 0:
        raise EmptySceneError("the mesh has no vertices", hint="export a mesh with triangles")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    side = float((hi - lo).max())
    if not side > 0.0:
        raise EmptySceneError(
            "the mesh has zero size: all its vertices are at one point",
            hint="check the export's scale and that the right objects were exported",
        )
    centre = (lo + hi) / 2
    return np.stack([centre - side / 2, centre + side / 2])


def mesh_bounds(vertices: npt.ArrayLike, faces: npt.ArrayLike) -> FloatArray:
    """:func:`fit_bounds` of the vertices that the (validated) triangles use."""
    pts = _as_vertices(vertices)
    tris = _as_faces(faces, len(pts))
    if len(tris) == 0:
        raise EmptySceneError("the mesh has no triangles", hint="export a mesh with faces")
    return fit_bounds(pts[np.unique(tris)])


def voxelize_mesh(
    vertices: npt.ArrayLike,
    faces: npt.ArrayLike,
    resolution: int,
    *,
    bounds: npt.ArrayLike | None = None,
    supersample: int = 2,
) -> FloatArray:
    """Triangles -> density grid ``(resolution,)*3`` in [0, 1], indexed ``[x, y, z]``.

    ``vertices`` is ``(N, 3)`` floats in the grid's frame (+y up: convert Z-up data first),
    ``faces`` ``(M, 3)`` vertex indices. The grid covers ``bounds`` (a cube ``[[lo], [hi]]``,
    default :func:`mesh_bounds`: the vertices the faces use). Each voxel's density is the
    fraction of its ``supersample**3`` sample points inside the mesh (see the module docstring
    for the inside test and how open meshes are handled). Raises EmptySceneError when the mesh
    has no triangles or encloses no volume at this resolution.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int | np.integer):
        raise SceneFormatError(f"resolution must be an integer (not {resolution!r})")
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise SceneTooLargeError(
            f"resolution {resolution} is outside {MIN_RESOLUTION}..{MAX_RESOLUTION}",
            hint="volume@1 renders a 16^3 grid: 64 is plenty",
        )
    if isinstance(supersample, bool) or not isinstance(supersample, int) or supersample < 1:
        raise SceneFormatError(f"supersample must be a positive integer (not {supersample!r})")
    pts = _as_vertices(vertices)
    tris = _as_faces(faces, len(pts))
    if len(tris) == 0:
        raise EmptySceneError("the mesh has no triangles", hint="export a mesh with faces")
    box = fit_bounds(pts[np.unique(tris)]) if bounds is None else _as_bounds(bounds)
    sub = max(1, min(int(supersample), MAX_SAMPLES_PER_AXIS // int(resolution)))
    n = int(resolution) * sub
    side = float(box[1, 0] - box[0, 0])
    # Grid units: sample i of an axis sits at exactly the integer i.
    grid_pts = (pts - box[0]) * (n / side) - 0.5
    votes_in = np.zeros((n, n, n), dtype=np.int8)
    votes = np.zeros((n, n, n), dtype=np.int8)
    odd_columns = 0
    for axes in _AXES:
        inside, valid = _axis_inside(grid_pts, tris, n, axes)
        odd_columns += int((~valid).sum())
        # (u, v, w)-indexed -> (x, y, z)-indexed.
        order = tuple(int(np.argsort(axes)[k]) for k in range(3))
        inside_xyz = np.transpose(inside, order)
        valid_xyz = np.transpose(np.broadcast_to(valid[:, :, None], inside.shape), order)
        votes_in += inside_xyz & valid_xyz
        votes += valid_xyz
    solid = (2 * votes_in.astype(np.int16)) > votes
    blocks = solid.reshape(resolution, sub, resolution, sub, resolution, sub)
    density: FloatArray = blocks.mean(axis=(1, 3, 5), dtype=np.float64)
    if not density.any():
        share = odd_columns / (3 * n * n)
        why = (
            f"{share:.0%} of the rays crossed an odd number of surfaces: the mesh is open"
            if share > 0.001
            else "it is flat or thinner than a voxel"
        )
        raise EmptySceneError(
            f"the mesh encloses no volume at resolution {resolution} ({why})",
            hint="close the mesh's holes or give thin parts thickness (Blender: Solidify)",
        )
    return density


def _as_vertices(vertices: npt.ArrayLike) -> FloatArray:
    pts = np.asarray(vertices, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise SceneFormatError(f"vertices must have shape (N, 3), not {pts.shape}")
    if not np.isfinite(pts).all():
        raise SceneFormatError("the mesh has NaN or infinite vertex coordinates")
    return pts


def _as_faces(faces: npt.ArrayLike, count: int) -> npt.NDArray[np.int64]:
    tris = np.asarray(faces)
    if tris.ndim != 2 or tris.shape[1] != 3:
        raise SceneFormatError(
            f"faces must have shape (M, 3) (triangles), not {tris.shape}",
            hint="triangulate the mesh first",
        )
    if len(tris) and not np.issubdtype(tris.dtype, np.integer):
        raise SceneFormatError(f"faces must hold vertex indices (integers, not {tris.dtype})")
    if len(tris) > MAX_TRIANGLES:
        raise SceneTooLargeError(
            f"the mesh has {len(tris):,} triangles, more than the {MAX_TRIANGLES:,} allowed",
            hint="decimate it first (Blender: Decimate modifier); a 16^3 grid needs few",
        )
    tris = tris.astype(np.int64)
    if len(tris) and (tris.min() < 0 or tris.max() >= count):
        raise SceneFormatError(f"faces refer to vertices outside 0..{count - 1}")
    return tris


def _as_bounds(bounds: npt.ArrayLike) -> FloatArray:
    box = np.asarray(bounds, dtype=np.float64)
    if box.shape != (2, 3) or not np.isfinite(box).all():
        raise SceneFormatError(f"bounds must be finite [[x0, y0, z0], [x1, y1, z1]], not {box}")
    sides = box[1] - box[0]
    if not (sides > 0).all() or not np.allclose(sides, sides[0], rtol=1e-9, atol=0.0):
        raise SceneFormatError(f"bounds must be a cube with positive sides, not sides {sides}")
    return box


def _axis_inside(
    pts: FloatArray, tris: npt.NDArray[np.int64], n: int, axes: tuple[int, int, int]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Rays along axis ``w``: inside ``(n, n, n)`` indexed ``[u, v, w]`` and valid ``(n, n)``."""
    iu, iv, iw = axes
    u = pts[:, iu][tris]  # (M, 3)
    v = pts[:, iv][tris]
    w = pts[:, iw][tris]
    orient: FloatArray = (u[:, 1] - u[:, 0]) * (v[:, 2] - v[:, 0]) - (v[:, 1] - v[:, 0]) * (
        u[:, 2] - u[:, 0]
    )
    # Column index ranges of each triangle's projected bounding box (integers inside it).
    u0 = np.maximum(np.ceil(u.min(axis=1)), 0)
    u1 = np.minimum(np.floor(u.max(axis=1)), n - 1)
    v0 = np.maximum(np.ceil(v.min(axis=1)), 0)
    v1 = np.minimum(np.floor(v.max(axis=1)), n - 1)
    nu = np.maximum(u1 - u0 + 1, 0).astype(np.int64)
    nv = np.maximum(v1 - v0 + 1, 0).astype(np.int64)
    count = np.where(orient != 0, nu * nv, 0)
    keep = np.nonzero(count)[0]
    crossings = np.zeros(n * n * (n + 1), dtype=np.int32)
    winding = np.zeros(n * n * (n + 1), dtype=np.int32)
    if len(keep):
        ends = np.cumsum(count[keep])
        if ends[-1] > MAX_CANDIDATES:
            raise SceneTooLargeError(
                f"the mesh's triangles span {int(ends[-1]):,} ray tests along one axis at "
                f"{n} samples a side, more than the {MAX_CANDIDATES:,} allowed",
                hint="remesh long thin triangles or lower --resolution",
            )
        start = 0
        while start < len(keep):
            # Triangles keep[start:stop] give at most _CHUNK candidates (or one triangle).
            base = ends[start - 1] if start else 0
            stop = max(start + 1, int(np.searchsorted(ends, base + _CHUNK, side="right")))
            sel = keep[start:stop]
            flat, signs = _crossings(u[sel], v[sel], w[sel], orient[sel], u0[sel], v0[sel],
                                     nv[sel], count[sel], n)  # fmt: skip
            crossings += np.bincount(flat, minlength=crossings.size).astype(np.int32)
            winding += np.bincount(flat, weights=signs, minlength=winding.size).astype(np.int32)
            start = stop
    crossings_2d = crossings.reshape(n * n, n + 1)
    winding_2d = winding.reshape(n * n, n + 1)
    total = crossings_2d.sum(axis=1)
    net = winding_2d.sum(axis=1)
    below_count = np.cumsum(crossings_2d[:, :n], axis=1, dtype=np.int32)
    below_wind = np.cumsum(winding_2d[:, :n], axis=1, dtype=np.int32)
    by_winding = below_wind != 0
    by_parity = (below_count & 1) == 1
    inside = np.where((net == 0)[:, None], by_winding, by_parity)
    valid = (total & 1) == 0
    return inside.reshape(n, n, n), valid.reshape(n, n)


def _crossings(
    u: FloatArray,
    v: FloatArray,
    w: FloatArray,
    orient: FloatArray,
    u0: FloatArray,
    v0: FloatArray,
    nv: npt.NDArray[np.int64],
    count: npt.NDArray[np.int64],
    n: int,
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Where each (triangle, column) ray crossing lands: flat bin index and its sign."""
    tri = np.repeat(np.arange(len(count)), count)
    offset = np.arange(len(tri)) - np.repeat(np.cumsum(count) - count, count)
    pu = u0[tri] + offset // nv[tri]
    pv = v0[tri] + offset % nv[tri]
    sign = np.sign(orient)[tri]
    inside = np.ones(len(tri), dtype=bool)
    weights = []
    for k in range(3):
        a, b = k, (k + 1) % 3
        au, av, bu, bv = u[tri, a], v[tri, a], u[tri, b], v[tri, b]
        # Canonical endpoint order (lexicographic on (u, v)): two triangles sharing this edge
        # compute the very same float, so on-edge decisions agree exactly.
        swap = (bu < au) | ((bu == au) & (bv < av))
        cu, cv = np.where(swap, bu, au), np.where(swap, bv, av)
        du, dv = np.where(swap, au - bu, bu - au), np.where(swap, av - bv, bv - av)
        e_canon = du * (pv - cv) - dv * (pu - cu)
        e_own = np.where(swap, -e_canon, e_canon)  # positive inside a counter-clockwise triangle
        side = sign * np.where(swap, -1.0, 1.0)  # makes the interior positive
        # On the edge: decide as if the point moved by (eps, eps^2): d/du = -dv, d/dv = du.
        grad_u, grad_v = side * -dv, side * du
        tie = (grad_u > 0) | ((grad_u == 0) & (grad_v > 0))
        inside &= (side * e_canon > 0) | ((e_canon == 0) & tie)
        weights.append(e_own)
    # Barycentric depth: edge k is opposite vertex (k + 2) % 3.
    total = weights[0] + weights[1] + weights[2]
    depth = (weights[1] * w[tri, 0] + weights[2] * w[tri, 1] + weights[0] * w[tri, 2]) / np.where(
        total == 0, 1.0, total
    )
    first_above = np.clip(np.floor(depth) + 1, 0, n).astype(np.int64)
    col = pu.astype(np.int64) * n + pv.astype(np.int64)
    flat = col * (n + 1) + first_above
    # Crossing a triangle that faces -w while going +w enters the solid: +1.
    return flat[inside], -sign[inside]
