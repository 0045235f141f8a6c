"""The ``post@1`` kernel: a 3x3 convolution with public taps, then tone mapping, on a frame.

Pixels are 3-bit (0..7). The taps are clear runtime integers whose positive part adds up to at
most 17 and whose negative part to at most 18, so the accumulator stays in signed 8 bits for any
frame (7 * 17 + 4 <= 127). Concrete's exact rounding removes its 3 low bits (3 one-bit
bootstraps, exact by construction: the twin computes ``floor((acc + 4) / 8)``), then one 5-bit
lookup applies the tone curve. Taps that add up to 8 keep the brightness (the kernel divides by 8).
Tiles are 8x8 and carry a 1-pixel halo, so the encrypted input of a tile is 10x10.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from blindframe.fhe_core._kernel import EncInput, IntArray, Kernel, Lookup
from blindframe.fhe_core.errors import ParameterError

__all__ = ["FILTERS", "PIXEL_MAX", "filter_taps", "make_post_kernel"]

TILE = (8, 8)
HALO = 1
PIXEL_MAX = 7
POS_MAX = 17
NEG_MAX = 18
SHIFT = 3
FILTERS: dict[str, list[list[int]]] = {
    "identity": [[0, 0, 0], [0, 8, 0], [0, 0, 0]],
    "blur": [[1, 1, 1], [1, 0, 1], [1, 1, 1]],
    "soften": [[0, 1, 0], [1, 4, 1], [0, 1, 0]],
    "sharpen": [[0, -1, 0], [-1, 12, -1], [0, -1, 0]],
    "edge": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
    "emboss": [[-4, -2, 0], [-2, 8, 2], [0, 2, 4]],
}
_WHITE = 15 / 7


def _tone(r: int) -> int:
    """Extended Reinhard on the rescaled value ``r`` in [-16, 15]: 0..7, white at r = 15."""
    x = max(r, 0) / 7
    return round(7 * x * (1 + x / _WHITE**2) / (1 + x))


# Indexed by the rounded 8-bit signed accumulator (low 3 bits zero): entry i is for acc = i
# (i < 128) or i - 256, so Concrete's negative indexing and the twin agree.
TONE = np.array([_tone((i if i < 128 else i - 256) >> SHIFT) for i in range(256)], dtype=np.int64)


def filter_taps(
    params: Mapping[str, Any], frame_hw: tuple[int, int] = (8, 8), tile_index: int = 0
) -> IntArray:
    """``{"filter": "blur"}`` or ``{"taps": [[..], [..], [..]]}`` -> the 3x3 clear taps."""
    del frame_hw, tile_index
    if not isinstance(params, Mapping):
        raise ParameterError("post parameters must be a mapping with filter or taps")
    unknown = sorted(set(params) - {"filter", "taps"})
    if unknown:
        raise ParameterError(f"unknown post parameter {unknown[0]!r}: expected filter|taps")
    if "taps" in params:
        try:
            taps = np.array(params["taps"], dtype=np.int64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ParameterError(f"post taps must be a 3x3 integer list ({exc})") from exc
    else:
        name = params.get("filter", "identity")
        if not isinstance(name, str) or name not in FILTERS:
            raise ParameterError(
                f"unknown post filter {str(name)[:40]!r}: expected one of {'|'.join(FILTERS)}"
            )
        taps = np.array(FILTERS[name], dtype=np.int64)
    _check_clear(taps)
    return taps


def _check_clear(taps: IntArray) -> None:
    if taps.shape != (3, 3):
        raise ParameterError(f"post taps have shape {taps.shape}, expected (3, 3)")
    pos = int(taps[taps > 0].sum())
    neg = int(-taps[taps < 0].sum())
    if pos > POS_MAX or neg > NEG_MAX:
        raise ParameterError(
            f"post taps add up to +{pos} / -{neg}; the 8-bit accumulator allows at most "
            f"+{POS_MAX} / -{NEG_MAX}"
        )


def _circuit(img: Any, taps: Any) -> Any:
    from concrete import fhe

    h, w = TILE
    acc = img[0:h, 0:w] * taps[0, 0]
    for dy in range(3):
        for dx in range(3):
            if dy or dx:
                acc = acc + img[dy : dy + h, dx : dx + w] * taps[dy, dx]
    rounded = fhe.round_bit_pattern(acc, lsbs_to_remove=SHIFT, overflow_protection=False)
    return fhe.LookupTable([int(x) for x in TONE])[rounded]


def _twin(enc: tuple[IntArray, ...], taps: IntArray) -> IntArray:
    h, w = TILE
    g = enc[0].astype(np.int64)
    acc = np.zeros(TILE, dtype=np.int64)
    for dy in range(3):
        for dx in range(3):
            acc += g[dy : dy + h, dx : dx + w] * taps[dy, dx]
    rounded = ((acc + (1 << (SHIFT - 1))) >> SHIFT) << SHIFT
    out: IntArray = TONE[rounded % 256]
    return out


def _inputset(rng: np.random.Generator) -> list[tuple[IntArray, ...]]:
    shape = (TILE[0] + 2 * HALO, TILE[1] + 2 * HALO)
    full = np.full(shape, PIXEL_MAX, dtype=np.int64)
    worst_pos = np.array([[17, 0, 0], [0, 0, 0], [0, 0, -18]], dtype=np.int64)
    out: list[tuple[IntArray, ...]] = [(full, worst_pos), (full, -worst_pos[::-1, ::-1].copy())]
    out += [(full, np.array(t, dtype=np.int64)) for t in FILTERS.values()]
    out += [(rng.integers(0, PIXEL_MAX + 1, shape), np.array(FILTERS["sharpen"])) for _ in range(3)]
    return out


def make_post_kernel() -> Kernel:
    """The registry entry of ``post@1``."""
    shape = (TILE[0] + 2 * HALO, TILE[1] + 2 * HALO)
    return Kernel(
        name="post",
        version=1,
        tile_hw=TILE,
        halo=HALO,
        enc=(
            EncInput(
                "img",
                shape,
                np.zeros(shape, dtype=np.int64),
                np.full(shape, PIXEL_MAX, dtype=np.int64),
            ),
        ),
        clear_name="taps",
        clear_shape=(3, 3),
        out_shape=TILE,
        out_max=int(TONE.max()),
        lookups=(
            Lookup("exact rounding: one bit removed each (of the 8-bit sum)", 1, SHIFT),
            Lookup("tone curve on the rounded sum (5-bit)", 5, 1),
        ),
        circuit=_circuit,
        twin=_twin,
        check_clear=_check_clear,
        clear_args=filter_taps,
        inputset=_inputset,
        describe="3-bit frame, 3x3 taps (+17/-18), /8 with exact rounding, Reinhard tone curve",
    )
