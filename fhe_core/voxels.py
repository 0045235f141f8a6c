"""Turn float grids (Blender, mesh importers) into the ``volume`` kernel's encrypted input."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from blindframe.fhe_core._kernel import IntArray
from blindframe.fhe_core._volume import GRID, VOXEL_MAX
from blindframe.fhe_core.errors import ParameterError

__all__ = ["GRID", "quantize_density"]

MAX_SOURCE_SIDE = 512


def quantize_density(
    density: npt.ArrayLike,
    colour: npt.ArrayLike | None = None,
    *,
    threshold: float = 0.5,
    kernel_id: str = "volume@1",
) -> IntArray:
    """A float density grid in [0, 1], shape ``(R, R, R)`` indexed ``[x, y, z]`` with +y up,
    -> the flat occupancy vector ``volume@1`` encrypts (``16**3`` values in {0, 1}).

    A grid of another side ``R`` is resampled: block means when ``R`` is a multiple of 16,
    nearest voxel centres otherwise. A voxel is occupied when its (mean) density reaches
    ``threshold``. ``colour`` is accepted for forward compatibility and must be None:
    ``volume@1`` renders density only.
    """
    if kernel_id != "volume@1":
        raise ParameterError(f"no voxel quantizer for {kernel_id!r}: expected volume@1")
    if colour is not None:
        raise ParameterError(
            "volume@1 renders density only: pass colour=None",
            hint="colour volumes need a future volume kernel version",
        )
    grid = np.asarray(density, dtype=np.float64)
    if grid.ndim != 3 or len(set(grid.shape)) != 1:
        raise ParameterError(f"density must be a cube (R, R, R), not shape {grid.shape}")
    side = grid.shape[0]
    if not 2 <= side <= MAX_SOURCE_SIDE:
        raise ParameterError(f"density side {side} must be 2..{MAX_SOURCE_SIDE}")
    if not np.isfinite(grid).all():
        raise ParameterError("density holds NaN or infinite values")
    if grid.min() < 0.0 or grid.max() > 1.0:
        raise ParameterError(
            f"density must lie in [0, 1] (found {grid.min():.3g}..{grid.max():.3g})"
        )
    if not 0.0 < threshold <= 1.0:
        raise ParameterError(f"threshold must be in (0, 1], not {threshold}")
    if side % GRID == 0:
        k = side // GRID
        small = grid.reshape(GRID, k, GRID, k, GRID, k).mean(axis=(1, 3, 5))
    else:
        centres = ((np.arange(GRID) + 0.5) * side / GRID).astype(np.int64)
        small = grid[np.ix_(centres, centres, centres)]
    occupied = (small >= threshold).astype(np.int64) * VOXEL_MAX
    flat: IntArray = occupied.reshape(-1)
    return flat
