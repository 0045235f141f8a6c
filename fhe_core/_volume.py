"""The ``volume@1`` kernel: an encrypted voxel grid seen by a public orbit camera.

Each output pixel is ``tf[sum_j w[p, j] * vol[j]]``: a clear-weight sum along the pixel's ray,
then one 5-bit table lookup. Exactness comes from the bounds, not from rounding: voxels are 0/1
occupancy, every pixel's weights sum to at most ``ACC_MAX = 31``, so the accumulator never needs
more than 5 bits and the single lookup reads it whole. The twin computes the same integers.

The weights are PUBLIC: a worker derives them from the camera in the manifest with
:func:`volume_weights`, in integer fixed-point arithmetic so a client and a worker on different
machines get the same integers (only the camera's sine and cosine come from libm; they are
rounded to 16 fractional bits first, which a 1-ulp libm difference does not move).
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
    "volume_weights",
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
# Transfer function: accumulated (front-weighted) occupancy -> brightness 0..31, saturating.
TRANSFER = np.array(
    [0] + [round(4 + 27 * (1 - math.exp(-a / 5))) for a in range(1, ACC_MAX + 1)],
    dtype=np.int64,
)
_FRAC = 16
_F = 1 << _FRAC
_LIMITS = {"yaw": (-360.0, 360.0), "pitch": (-89.0, 89.0), "zoom": (0.25, 4.0)}


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


def volume_weights(
    params: Mapping[str, Any], frame_hw: tuple[int, int], tile_index: int
) -> IntArray:
    """The clear weights of one 8x8 tile: shape ``(64, 4096)``, each row summing to <= 31.

    Orthographic orbit camera around the grid centre. ``zoom = 1`` fits the grid's bounding sphere
    in the frame's smaller side. Each ray takes 24 nearest-voxel samples across that sphere,
    weighted by the depth-cue profile; samples outside the grid weigh nothing.
    """
    yaw, pitch, zoom = camera_from_params(params)
    height, width = frame_hw
    tiles_x = width // TILE[1]
    if height % TILE[0] or width % TILE[1] or tiles_x == 0:
        raise ParameterError(f"frame {frame_hw} is not a multiple of the {TILE} tile")
    if not 0 <= tile_index < (height // TILE[0]) * tiles_x:
        raise ParameterError(f"tile {tile_index} is outside a frame of {frame_hw}")
    ty, tx = divmod(tile_index, tiles_x)
    basis = _basis(yaw, pitch)
    radius = GRID * math.sqrt(3) / 2
    pix_per_unit = zoom * min(height, width) / (2 * radius)
    py, px = np.meshgrid(
        np.arange(ty * TILE[0], (ty + 1) * TILE[0]),
        np.arange(tx * TILE[1], (tx + 1) * TILE[1]),
        indexing="ij",
    )
    # Image-plane offsets (voxel units) in fixed point; only +, *, / and sqrt: IEEE-exact.
    u = np.round((px.ravel() + 0.5 - width / 2) / pix_per_unit * _F).astype(np.int64)
    v = np.round((height / 2 - py.ravel() - 0.5) / pix_per_unit * _F).astype(np.int64)
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
    weights = np.zeros((TILE[0] * TILE[1], VOXELS), dtype=np.int64)
    rows = np.broadcast_to(np.arange(weights.shape[0])[:, None], flat.shape)
    units = np.broadcast_to(PROFILE[None, :], flat.shape)
    np.add.at(weights, (rows[inside], flat[inside]), units[inside])
    return weights


def _check_clear(weights: IntArray) -> None:
    if weights.shape != (TILE[0] * TILE[1], VOXELS):
        raise ParameterError(f"volume weights have shape {weights.shape}, expected (64, 4096)")
    check_range("volume weights", weights, 0, ACC_MAX)
    sums = weights.sum(axis=1)
    if (sums > ACC_MAX).any():
        row = int(np.argmax(sums))
        raise ParameterError(
            f"volume weights of pixel {row} add up to {int(sums[row])}, more than {ACC_MAX}: "
            "the 5-bit accumulator would overflow silently"
        )


def _circuit(vol: Any, weights: Any) -> Any:
    from concrete import fhe

    return fhe.LookupTable([int(x) for x in TRANSFER])[weights @ vol]


def _twin(enc: tuple[IntArray, ...], weights: IntArray) -> IntArray:
    acc = weights @ enc[0].astype(np.int64)
    out: IntArray = TRANSFER[acc].reshape(TILE)
    return out


def _random_weights(rng: np.random.Generator) -> IntArray:
    """Rows whose sums hit ACC_MAX exactly, spread over random voxels (bounds for compilation)."""
    w = np.zeros((TILE[0] * TILE[1], VOXELS), dtype=np.int64)
    for row in range(w.shape[0]):
        cols = rng.choice(VOXELS, size=len(PROFILE), replace=False)
        w[row, cols] = PROFILE
    return w


def _inputset(rng: np.random.Generator) -> list[tuple[IntArray, ...]]:
    full = np.full(VOXELS, VOXEL_MAX, dtype=np.int64)
    # One ray whose samples all land in one voxel: a single weight of ACC_MAX. This sets the
    # clear input's bit width, so every weight the bounds allow is representable exactly.
    single = _random_weights(rng)
    single[0] = 0
    single[0, 0] = ACC_MAX
    out: list[tuple[IntArray, ...]] = [(full, single), (full, _random_weights(rng))]
    out += [(rng.integers(0, VOXEL_MAX + 1, VOXELS), _random_weights(rng)) for _ in range(3)]
    return out


def make_volume_kernel() -> Kernel:
    """The registry entry of ``volume@1``."""

    def _circuit_tile(vol: Any, weights: Any) -> Any:
        return _circuit(vol, weights).reshape(TILE)

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
        clear_shape=(TILE[0] * TILE[1], VOXELS),
        out_shape=TILE,
        out_max=int(TRANSFER.max()),
        lookups=(Lookup("transfer function on the 5-bit ray sum", 5, 1),),
        circuit=_circuit_tile,
        twin=_twin,
        check_clear=_check_clear,
        clear_args=volume_weights,
        inputset=_inputset,
        describe="16^3 occupancy grid, orthographic orbit camera, 8x8 tiles, 32 grey levels",
    )
