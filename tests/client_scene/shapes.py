"""Analytic shapes and file writers the scene tests compare against."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import OpenEXR  # type: ignore[import-not-found]
from PIL import Image

FloatArray = npt.NDArray[np.float64]
Inside = Callable[[FloatArray, FloatArray, FloatArray], npt.NDArray[np.bool_]]


def sample_points(bounds: FloatArray, resolution: int, sub: int) -> tuple[FloatArray, ...]:
    """The voxelizer's sample points: ``sub`` per voxel and axis, at cell centres."""
    n = resolution * sub
    side = bounds[1, 0] - bounds[0, 0]
    axes = [bounds[0, k] + (np.arange(n) + 0.5) * side / n for k in range(3)]
    return tuple(np.meshgrid(*axes, indexing="ij"))


def analytic_density(inside: Inside, bounds: FloatArray, resolution: int, sub: int) -> FloatArray:
    """Fraction of each voxel's ``sub**3`` sample points where ``inside`` holds."""
    x, y, z = sample_points(bounds, resolution, sub)
    solid = inside(x, y, z).astype(np.float64)
    return solid.reshape(resolution, sub, resolution, sub, resolution, sub).mean(axis=(1, 3, 5))


def torus_inside(major: float, minor: float) -> Inside:
    """Inside test of a torus around +z centred at the origin."""

    def inside(x: FloatArray, y: FloatArray, z: FloatArray) -> npt.NDArray[np.bool_]:
        return (np.hypot(x, y) - major) ** 2 + z**2 < minor**2

    return inside


def sphere_gbuffer(height: int, width: int) -> tuple[FloatArray, FloatArray]:
    """Camera-space normals (3, H, W) of a sphere filling 80% of the frame, 0 outside, and an
    albedo (3, H, W) in [0, 1] that varies across it (0 outside)."""
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    radius = 0.4 * min(height, width)
    u = (xs + 0.5 - width / 2) / radius
    v = (height / 2 - ys - 0.5) / radius
    r2 = u**2 + v**2
    hit = r2 < 1.0
    normals = np.stack([u, v, np.sqrt(np.clip(1 - r2, 0, 1))])
    normals[:, ~hit] = 0.0
    albedo = np.stack([(u + 1) / 2, (v + 1) / 2, np.full_like(u, 0.5)])
    albedo = np.clip(albedo, 0.0, 1.0)
    albedo[:, ~hit] = 0.0
    return normals, albedo


def write_png(path: Path, planes: npt.ArrayLike, mode: str | None = None) -> Path:
    """Write ``(C, H, W)`` floats in [0, 1] as an 8-bit PNG (C = 1, 3 or 4)."""
    arr = np.clip(np.rint(np.asarray(planes, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    img = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
    Image.fromarray(img, mode=mode).save(path)
    return path


def write_exr(path: Path, channels: dict[str, npt.ArrayLike]) -> Path:
    """Write named float32 channels (each ``(H, W)``) as a one-part OpenEXR file."""
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    data = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in channels.items()}
    with OpenEXR.File(header, data) as exr:
        exr.write(str(path))
    return path


def srgb_decode(values: npt.ArrayLike) -> FloatArray:
    """sRGB-encoded [0, 1] -> linear (the inverse of what EXR import applies)."""
    x = np.asarray(values, dtype=np.float64)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
