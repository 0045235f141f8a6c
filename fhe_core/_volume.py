"""The ``volume@1`` kernel: an encrypted voxel grid seen by a public orbit camera.

Each output pixel is ``tf[sum_k w[p, k] * vol[i[p, k]]]``: a clear-weight sum over the 24
samples along the pixel's ray, then one 5-bit table lookup. Exactness comes from the bounds, not
from rounding: voxels are 0/1 occupancy, every pixel's weights sum to at most ``ACC_MAX = 31``, so
the accumulator never needs more than 5 bits and the single lookup reads it whole. The twin
computes the same integers.

The samples are PUBLIC: a worker derives each one's voxel index and weight from the camera in the
manifest with :func:`volume_samples`, in integer fixed-point arithmetic so a client and a worker
on different machines get the same integers (only the camera's sine and cosine come from libm;
they are rounded to 16 fractional bits first, which a 1-ulp libm difference does not move). The
worker expands the encrypted grid once per job and gathers each tile's samples from it in the
clear (:mod:`blindframe.fhe_core.server`): the circuit then costs one 5-bit bootstrap per pixel
and 24 ciphertext additions, not a product with the whole grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from blindframe.fhe_core._kernel import EncInput, IntArray, Kernel, Lookup, check_range
from blindframe.fhe_core.errors import ParameterError

__all__ = [
    "ACC_MAX",
    "GRID",
    "TRANSFER",
    "VOXEL_MAX",
    "camera_from_params",
    "make_volume_kernel",
    "tile_rays",
    "volume_samples",
]

GRID = 16
VOXELS = GRID**3
VOXEL_MAX = 1
ACC_MAX = 31
TILE = (8, 8)
# Weight units of the samples along a ray, front first: nearer samples count double (depth cue).
# They add up to ACC_MAX, so a ray full of occupied voxels reaches the accumulator's top exactly.
PROFILE = np.array([2] * 7 + [1] * 17, dtype=np.int64)
assert int(PROFILE.sum()) == ACC_MAX
WEIGHT_MAX = int(PROFILE.max())
# A tile's clear argument: [index, weight] of each of its 64 rays' 24 samples.
CLEAR_SHAPE = (2, TILE[0] * TILE[1], len(PROFILE))
# Transfer function: accumulated (front-weighted) occupancy -> brightness 0..31, saturating.
TRANSFER = np.array(
    [0] + [round(4 + 27 * (1 - math.exp(-a / 5))) for a in range(1, ACC_MAX + 1)],
    dtype=np.int64,
)
_FRAC = 16
_F = 1 << _FRAC
_LIMITS = {"yaw": (-360.0, 360.0), "pitch": (-89.0, 89.0), "zoom": (0.005, 4.0)}


def camera_from_params(params: Mapping[str, Any]) -> tuple[float, float, float]:
    """Validate ``{"yaw": deg, "pitch": deg, "zoom": x}`` and return it as floats."""
    if not isinstance(params, Mapping):
        raise ParameterError(f"volume camera must be a mapping (not {type(params).__name__})")
    unknown = sorted(set(params) - set(_LIMITS))
    if unknown:
        raise ParameterError(
            f"unknown volume camera parameter {unknown[0]!r}: expected yaw|pitch|zoom"
        )
    out = []
    for key, (lo, hi) in _LIMITS.items():
        value = params.get(key, 1.0 if key == "zoom" else 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParameterError(f"volume camera {key} must be a number (not {value!r})")
        if not math.isfinite(value) or not lo <= value <= hi:
            raise ParameterError(f"volume camera {key} = {value!r} is outside [{lo}, {hi}]")
        out.append(float(value))
    return out[0], out[1], out[2]


def _basis(yaw: float, pitch: float) -> IntArray:
    """Rows: right, up, forward, in voxel units scaled by 2**16 (integers)."""
    cy, sy = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
    cp, sp = math.cos(math.radians(pitch)), math.sin(math.radians(pitch))
    # Camera orbits the grid centre; forward points from the camera to the centre.
    forward = (-cp * sy, -sp, -cp * cy)
    right = (cy, 0.0, -sy)
    up = (-sp * sy, cp, -sp * cy)
    return np.array([[round(c * _F) for c in vec] for vec in (right, up, forward)], dtype=np.int64)


def tile_rays(
    params: Mapping[str, Any], frame_hw: tuple[int, int], tile_index: int, grid: int
) -> tuple[IntArray, IntArray, IntArray, float]:
    """The orbit camera's rays through one 8x8 tile of a ``grid``-voxel cube: the camera basis
    (right, up, forward; 2**-16 units), each pixel's image-plane offsets ``u``, ``v`` (voxel
    units in 2**-16, only +, *, / and sqrt on exact values: IEEE-exact) and the radius of the
    cube's bounding sphere, which ``zoom = 1`` fits in the frame's smaller side."""
    yaw, pitch, zoom = camera_from_params(params)
    height, width = frame_hw
    tiles_x = width // TILE[1]
    if height % TILE[0] or width % TILE[1] or tiles_x == 0:
        raise ParameterError(f"frame {frame_hw} is not a multiple of the {TILE} tile")
    if not 0 <= tile_index < (height // TILE[0]) * tiles_x:
        raise ParameterError(f"tile {tile_index} is outside a frame of {frame_hw}")
    ty, tx = divmod(tile_index, tiles_x)
    radius = grid * math.sqrt(3) / 2
    pix_per_unit = zoom * min(height, width) / (2 * radius)
    py, px = np.meshgrid(
        np.arange(ty * TILE[0], (ty + 1) * TILE[0]),
        np.arange(tx * TILE[1], (tx + 1) * TILE[1]),
        indexing="ij",
    )
    u = np.round((px.ravel() + 0.5 - width / 2) / pix_per_unit * _F).astype(np.int64)
    v = np.round((height / 2 - py.ravel() - 0.5) / pix_per_unit * _F).astype(np.int64)
    return _basis(yaw, pitch), u, v, radius


def volume_samples(
    params: Mapping[str, Any], frame_hw: tuple[int, int], tile_index: int
) -> IntArray:
    """The clear argument of one 8x8 tile: shape ``(2, 64, 24)``, ``[index, weight]`` per ray
    sample.

    Orthographic orbit camera around the grid centre. ``zoom = 1`` fits the grid's bounding sphere
    in the frame's smaller side. Each ray takes 24 nearest-voxel samples across that sphere, front
    first: ``index`` is the voxel a sample reads (flat, ``(x * 16 + y) * 16 + z``), ``weight`` its
    depth-cue unit from ``PROFILE``; a sample outside the grid reads voxel 0 with weight 0. The
    worker gathers each sample's ciphertext by ``index`` in the clear, so the circuit's cost per
    pixel follows the ray's 24 samples, not the grid's 4096 voxels.
    """
    basis, u, v, radius = tile_rays(params, frame_hw, tile_index, GRID)
    n = len(PROFILE)
    t = np.round((-radius + (np.arange(n) + 0.5) * (2 * radius / n)) * _F).astype(np.int64)
    centre = (GRID * _F * _F) // 2
    # pos[p, k, axis] in units of 2**-32 voxels: exact int64 (|value| < 2**40).
    pos = (
        centre
        + u[:, None, None] * basis[0][None, None, :]
        + v[:, None, None] * basis[1][None, None, :]
        + t[None, :, None] * basis[2][None, None, :]
    )
    idx = np.floor_divide(pos, _F * _F)
    inside = np.all((idx >= 0) & (idx < GRID), axis=2)
    flat = (idx[..., 0] * GRID + idx[..., 1]) * GRID + idx[..., 2]
    index = np.where(inside, flat, 0)
    weight = np.where(inside, PROFILE[None, :], 0)
    samples: IntArray = np.stack([index, weight]).astype(np.int64)
    return samples


def _check_clear(clear: IntArray) -> None:
    if clear.shape != CLEAR_SHAPE:
        raise ParameterError(f"volume samples have shape {clear.shape}, expected {CLEAR_SHAPE}")
    check_range("volume sample index", clear[0], 0, VOXELS - 1)
    check_range("volume sample weight", clear[1], 0, WEIGHT_MAX)
    sums = clear[1].sum(axis=1)
    if (sums > ACC_MAX).any():
        row = int(np.argmax(sums))
        raise ParameterError(
            f"volume weights of pixel {row} add up to {int(sums[row])}, more than {ACC_MAX}: "
            "the 5-bit accumulator would overflow silently"
        )


def _circuit(samples: Any, weights: Any) -> Any:
    from concrete import fhe

    rays = samples.reshape(CLEAR_SHAPE[1:])
    return fhe.LookupTable([int(x) for x in TRANSFER])[np.sum(rays * weights, axis=1)].reshape(TILE)


def _twin(enc: tuple[IntArray, ...], clear: IntArray) -> IntArray:
    acc = (enc[0].astype(np.int64)[clear[0]] * clear[1]).sum(axis=1)
    out: IntArray = TRANSFER[acc].reshape(TILE)
    return out


def _random_samples(rng: np.random.Generator) -> IntArray:
    """Every ray at full weight (sums of exactly ACC_MAX) over random voxels."""
    index = rng.integers(0, VOXELS, CLEAR_SHAPE[1:])
    weight = np.broadcast_to(PROFILE, CLEAR_SHAPE[1:])
    samples: IntArray = np.stack([index, weight]).astype(np.int64)
    return samples


def _inputset(rng: np.random.Generator) -> list[tuple[IntArray, ...]]:
    full = np.full(VOXELS, VOXEL_MAX, dtype=np.int64)
    out: list[tuple[IntArray, ...]] = [(full, _random_samples(rng)), (full, _random_samples(rng))]
    empty = np.zeros(VOXELS, dtype=np.int64)
    out.append((empty, _random_samples(rng)))
    out += [(rng.integers(0, VOXEL_MAX + 1, VOXELS), _random_samples(rng)) for _ in range(3)]
    return out


def make_volume_kernel() -> Kernel:
    """The registry entry of ``volume@1``."""

    return Kernel(
        name="volume",
        version=1,
        tile_hw=TILE,
        halo=0,
        enc=(
            EncInput(
                "vol",
                (VOXELS,),
                np.zeros(VOXELS, dtype=np.int64),
                np.full(VOXELS, VOXEL_MAX, dtype=np.int64),
            ),
        ),
        clear_name="weights",
        clear_shape=CLEAR_SHAPE,
        out_shape=TILE,
        out_max=int(TRANSFER.max()),
        lookups=(Lookup("transfer function on the 5-bit ray sum", 5, 1),),
        circuit=_circuit,
        twin=_twin,
        check_clear=_check_clear,
        clear_args=volume_samples,
        inputset=_inputset,
        gathered=CLEAR_SHAPE[1] * CLEAR_SHAPE[2],
        describe="16^3 occupancy grid, orthographic orbit camera, 8x8 tiles, 32 grey levels",
    )
