"""The ``shade@1`` kernel: deferred Blinn–Phong shading of an encrypted G-buffer.

Per pixel the G-buffer holds a quantized normal ``n`` (3 signed integers in [-4, 4]) and an
albedo ``a`` (3 channels in [0, 3]): two encrypted inputs, since Concrete cannot mix a signed
tensor's slices into unsigned arithmetic. The public light is two small integer vectors: the
light direction ``L`` and the Blinn half vector ``H``, each with ``|x|+|y|+|z| <= 3``, so
``L.n`` and ``H.n`` stay in [-12, 12] (5-bit signed) for every possible G-buffer. Then, with no
rounding anywhere:

- ``d = DIFFUSE[L.n]`` (0..7, clamped cosine), ``s = SPECULAR[H.n]`` (0..8, cosine^8): 2 lookups;
- per channel ``out_c = ALBEDO_DIFFUSE[8 * a_c + d] + s`` (0..31): 3 lookups on 5 bits.

The integer light vectors also carry the light's strength (a longer vector is a brighter light);
:func:`light_matrix` picks them from float directions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from blindframe.fhe_core._kernel import EncInput, IntArray, Kernel, Lookup
from blindframe.fhe_core.errors import ParameterError

__all__ = ["ALBEDO_MAX", "NORMAL_MAX", "light_matrix", "make_shade_kernel"]

TILE = (8, 8)
NORMAL_MAX = 4
ALBEDO_MAX = 3
LIGHT_L1 = 3
DOT_MAX = NORMAL_MAX * LIGHT_L1  # 12
AMBIENT = 0.25


def _signed_table(values: dict[int, int]) -> list[int]:
    """A 32-entry table for a signed 5-bit input: Concrete indexes negatives from the end."""
    return [values.get(i if i < 16 else i - 32, 0) for i in range(32)]


_DIFFUSE = {x: round(7 * max(0, x) / DOT_MAX) for x in range(-16, 16)}
_SPECULAR = {x: round(8 * (max(0, min(x, DOT_MAX)) / DOT_MAX) ** 8) for x in range(-16, 16)}
_ALBEDO_DIFFUSE = [
    round(23 * (a / ALBEDO_MAX) * (AMBIENT + (1 - AMBIENT) * d / 7))
    for a in range(ALBEDO_MAX + 1)
    for d in range(8)
]
DIFFUSE = np.array(_signed_table(_DIFFUSE), dtype=np.int64)
SPECULAR = np.array(_signed_table(_SPECULAR), dtype=np.int64)
ALBEDO_DIFFUSE = np.array(_ALBEDO_DIFFUSE, dtype=np.int64)
# Every integer vector with L1 norm exactly 3: the directions a light can take.
_CANDIDATES = np.array(
    [v for v in itertools.product(range(-3, 4), repeat=3) if sum(abs(c) for c in v) == LIGHT_L1],
    dtype=np.int64,
)


def _unit(name: str, value: Any) -> tuple[float, float, float]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 3
        or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in value)
    ):
        raise ParameterError(f"shade {name} must be 3 numbers (not {value!r})")
    vec = tuple(float(c) for c in value)
    norm = math.sqrt(sum(c * c for c in vec))
    if not math.isfinite(norm) or norm < 1e-6:
        raise ParameterError(f"shade {name} {value!r} has no direction")
    return vec[0] / norm, vec[1] / norm, vec[2] / norm


def _nearest(direction: tuple[float, float, float]) -> IntArray:
    cand = _CANDIDATES.astype(np.float64)
    cos = cand @ np.array(direction) / np.linalg.norm(cand, axis=1)
    best: IntArray = _CANDIDATES[int(np.argmax(cos))].copy()  # first of ties: deterministic
    return best


def light_matrix(
    params: Mapping[str, Any], frame_hw: tuple[int, int] = (8, 8), tile_index: int = 0
) -> IntArray:
    """``{"light": [x, y, z], "view": [x, y, z]}`` (towards the light / the viewer) -> ``[L; H]``.

    Directions are in the G-buffer's normal space. The same matrix serves every tile of a job.
    """
    del frame_hw, tile_index
    if not isinstance(params, Mapping):
        raise ParameterError("shade parameters must be a mapping with light and view")
    unknown = sorted(set(params) - {"light", "view"})
    if unknown:
        raise ParameterError(f"unknown shade parameter {unknown[0]!r}: expected light|view")
    light = _unit("light", params.get("light", [0.3, 0.5, 0.8]))
    view = _unit("view", params.get("view", [0.0, 0.0, 1.0]))
    half = _unit("half vector", [light[i] + view[i] for i in range(3)])
    return np.stack([_nearest(light), _nearest(half)])


def _check_clear(lights: IntArray) -> None:
    if lights.shape != (2, 3):
        raise ParameterError(f"shade lights have shape {lights.shape}, expected (2, 3)")
    l1 = np.abs(lights).sum(axis=1)
    if (l1 > LIGHT_L1).any():
        raise ParameterError(
            f"shade light vector {lights[int(np.argmax(l1))].tolist()} has |x|+|y|+|z| > "
            f"{LIGHT_L1}: its dot products would overflow the 5-bit lookup"
        )


def _circuit(normals: Any, albedo: Any, lights: Any) -> Any:
    from concrete import fhe

    # Each product and partial sum stays within +-12: the chain is 5-bit signed throughout.
    dl = normals[0] * lights[0, 0] + normals[1] * lights[0, 1] + normals[2] * lights[0, 2]
    dh = normals[0] * lights[1, 0] + normals[1] * lights[1, 1] + normals[2] * lights[1, 2]
    d = fhe.LookupTable([int(x) for x in DIFFUSE])[dl]
    s = fhe.LookupTable([int(x) for x in SPECULAR])[dh]
    # d and s broadcast over the three albedo channels: no reshape, no concatenation.
    return fhe.LookupTable([int(x) for x in ALBEDO_DIFFUSE])[albedo * 8 + d] + s


def _twin(enc: tuple[IntArray, ...], lights: IntArray) -> IntArray:
    normals, albedo = (e.astype(np.int64) for e in enc)
    dl = np.einsum("k,kyx->yx", lights[0], normals)
    dh = np.einsum("k,kyx->yx", lights[1], normals)
    d = DIFFUSE[dl % 32]
    s = SPECULAR[dh % 32]
    out: IntArray = ALBEDO_DIFFUSE[albedo * 8 + d] + s
    return out


_SHAPE = (3, *TILE)


def _inputset(rng: np.random.Generator) -> list[tuple[IntArray, ...]]:
    out: list[tuple[IntArray, ...]] = []
    top = np.full(_SHAPE, ALBEDO_MAX, dtype=np.int64)
    # Corners first: every extreme normal against every extreme light bounds the dot products.
    for sign in (1, -1):
        for light in ([3, 0, 0], [0, 3, 0], [0, 0, 3], [1, 1, 1], [2, 1, 0]):
            normals = np.full(_SHAPE, sign * NORMAL_MAX, dtype=np.int64)
            lm = np.array([light, light], dtype=np.int64)
            out.append((normals, top, lm))
            out.append((normals, top, -lm))
    for _ in range(6):
        normals = rng.integers(-NORMAL_MAX, NORMAL_MAX + 1, _SHAPE)
        albedo = rng.integers(0, ALBEDO_MAX + 1, _SHAPE)
        out.append((normals, albedo, _CANDIDATES[rng.integers(0, len(_CANDIDATES), 2)]))
    return out


def make_shade_kernel() -> Kernel:
    """The registry entry of ``shade@1``."""
    return Kernel(
        name="shade",
        version=1,
        tile_hw=TILE,
        halo=0,
        enc=(
            EncInput(
                "normals",
                _SHAPE,
                np.full(_SHAPE, -NORMAL_MAX, dtype=np.int64),
                np.full(_SHAPE, NORMAL_MAX, dtype=np.int64),
            ),
            EncInput(
                "albedo",
                _SHAPE,
                np.zeros(_SHAPE, dtype=np.int64),
                np.full(_SHAPE, ALBEDO_MAX, dtype=np.int64),
            ),
        ),
        clear_name="lights",
        clear_shape=(2, 3),
        out_shape=(3, *TILE),
        out_max=int(ALBEDO_DIFFUSE.max() + SPECULAR.max()),
        lookups=(
            Lookup("clamped cosine L.n (signed 5-bit)", 5, 1),
            Lookup("specular (H.n)^8 (signed 5-bit)", 5, 1),
            Lookup("albedo x diffuse, per channel (5-bit)", 5, 3),
        ),
        circuit=_circuit,
        twin=_twin,
        check_clear=_check_clear,
        clear_args=light_matrix,
        inputset=_inputset,
        describe="G-buffer normals [-4,4]^3 + RGB albedo [0,3], one light, ambient 0.25",
    )
