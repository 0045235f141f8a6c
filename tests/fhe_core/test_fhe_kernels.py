"""Decrypted FHE output equals the numpy twin, for every kernel, on random and edge inputs."""

from __future__ import annotations

import numpy as np
import pytest

from blindframe.fhe_core import wire
from blindframe.fhe_core._surface import COLOURS, grid_values
from blindframe.fhe_core.client import KernelClient
from blindframe.fhe_core.errors import ParameterError, UnknownKernelError
from blindframe.fhe_core.kernels import KERNEL_IDS, get_kernel, output_function, tile_function
from blindframe.fhe_core.server import run_tile, tile_clear_args

PARAMS = {
    "volume@1": {"yaw": 35.0, "pitch": -20.0, "zoom": 1.4},
    "shade@1": {"light": [0.2, 0.9, 0.4], "view": [0.0, 0.3, 1.0]},
    "post@1": {"filter": "sharpen"},
}


def _edge_cases(kernel_id: str, rng: np.random.Generator) -> list[tuple[np.ndarray, ...]]:
    """Random inputs, then the extremes: ``volume`` all voxels full (the widest ray sums; all
    empty is a sum of 0, which random grids hold too); ``shade`` (pixels independent, 5
    bootstraps each) every pixel at an extreme, lowest and highest in a checkerboard, in one
    tile; ``post`` (cheap) highest, then lowest."""
    kernel = get_kernel(kernel_id)
    lo = tuple(np.broadcast_to(s.lo, s.shape).copy() for s in kernel.enc)
    hi = tuple(np.broadcast_to(s.hi, s.shape).copy() for s in kernel.enc)
    rand = tuple(rng.integers(s.lo, s.hi + 1) for s in kernel.enc)
    if kernel_id == "volume@1":
        return [rand, hi]
    if kernel_id == "shade@1":
        board = (np.indices(kernel.tile_hw).sum(axis=0) % 2).astype(bool)
        return [rand, tuple(np.where(board, h, low) for h, low in zip(hi, lo, strict=True))]
    return [rand, hi, lo]


def _clears(kernel_id: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Public parameters in use, plus the extremes the bounds allow."""
    if kernel_id == "volume@1":
        # Every ray at full weight, its samples on distinct random voxels.
        index = np.stack([rng.choice(4096, 24, replace=False) for _ in range(64)])
        weight = np.broadcast_to(np.array([2] * 7 + [1] * 17), (64, 24))
        worst = np.stack([index, weight])
        return [tile_clear_args(kernel_id, PARAMS[kernel_id], (32, 32), 5), worst]
    if kernel_id == "shade@1":
        return [
            tile_clear_args(kernel_id, PARAMS[kernel_id], (8, 8), 0),
            np.array([[-3, 0, 0], [1, -1, 1]]),
        ]
    return [
        tile_clear_args(kernel_id, PARAMS[kernel_id], (8, 8), 0),
        np.array([[17, 0, 0], [0, 0, 0], [0, 0, -18]]),
        np.array([[-4, -2, 0], [-2, 8, 2], [0, 2, 4]]),
    ]


# surface@1's 64^3 grid takes minutes to encrypt: its FHE tests run a small instance of the same
# code (tests/fhe_core/test_surface*.py).
@pytest.mark.parametrize("kernel_id", [k for k in KERNEL_IDS if not get_kernel(k).brick_values])
def test_decrypted_equals_twin(
    kernel_id: str,
    clients: dict[str, KernelClient],
    eval_keys: dict[str, object],
    rng: np.random.Generator,
) -> None:
    client = clients[kernel_id]
    kernel = client.kernel
    clears = _clears(kernel_id, rng)
    for n, plain in enumerate(_edge_cases(kernel_id, rng)):
        clear = clears[n % len(clears)]
        bundle = client.encrypt(*plain, tile_index=7)
        out = run_tile(kernel_id, bundle, eval_keys[kernel_id], clear, tile_index=7)
        got = client.decrypt(out, tile_index=7)
        assert got.shape == kernel.out_shape
        np.testing.assert_array_equal(got, kernel.twin(plain, clear))
        assert got.min() >= 0
        assert got.max() <= kernel.out_max


@pytest.mark.parametrize("kernel_id", KERNEL_IDS)
def test_twin_equals_concrete_graph_on_many_inputs(
    kernel_id: str, rng: np.random.Generator
) -> None:
    """The traced graph evaluated in the clear (Concrete's own semantics of every lookup and
    rounding) agrees with the twin on many random inputs and parameters."""
    kernel = get_kernel(kernel_id)
    circuit = tile_function(kernel_id)
    # surface@1's graph walks 4096 lookups per tile in Python: a few tiles do.
    for _ in range(2 if kernel.brick_values else 12):
        plain = tuple(rng.integers(s.lo, s.hi + 1) for s in kernel.enc)
        if kernel_id == "volume@1":
            plain = (rng.integers(0, 2, 4096) * (rng.random(4096) < 0.4),)
            params = {
                "yaw": float(rng.uniform(-180, 180)),
                "pitch": float(rng.uniform(-80, 80)),
                "zoom": float(rng.uniform(0.5, 3)),
            }
            clear = tile_clear_args(kernel_id, params, (32, 32), int(rng.integers(0, 16)))
        elif kernel_id == "surface@1":
            occ = rng.random((64, 64, 64)) < 0.05
            plain = (grid_values(occ, rng.integers(1, COLOURS + 1, occ.shape)),)
            params = {"yaw": float(rng.uniform(-180, 180)), "pitch": float(rng.uniform(-80, 80))}
            clear = tile_clear_args(kernel_id, params, (32, 32), int(rng.integers(0, 16)))
        elif kernel_id == "shade@1":
            params = {"light": rng.normal(size=3).tolist(), "view": rng.normal(size=3).tolist()}
            clear = tile_clear_args(kernel_id, params, (8, 8), 0)
        else:
            name = ["blur", "soften", "sharpen", "edge", "emboss", "identity"][int(rng.integers(6))]
            clear = tile_clear_args(kernel_id, {"filter": name}, (8, 8), 0)
        if kernel.gathered:  # the tile function sees the samples the worker gathers
            got = circuit.graph(plain[0][clear[0]].ravel(), clear[1])
        else:
            got = circuit.graph(*plain, clear)
        np.testing.assert_array_equal(
            np.asarray(got).reshape(kernel.out_shape), kernel.twin(plain, clear)
        )


def test_volume_samples_are_bounded_and_deterministic() -> None:
    params = {"yaw": 123.4, "pitch": 56.7, "zoom": 2.5}
    a = tile_clear_args("volume@1", params, (64, 64), 27)
    b = tile_clear_args("volume@1", params, (64, 64), 27)
    np.testing.assert_array_equal(a, b)
    index, weight = a
    assert weight.sum(axis=1).max() <= 31
    assert index.min() >= 0
    assert index.max() < 4096
    assert weight.min() >= 0
    assert weight.sum() > 0  # the centre tile's rays cross the grid
    assert (index[weight == 0] == 0).all()  # samples outside the grid read voxel 0 at weight 0


def test_bounds_are_enforced() -> None:
    kernel = get_kernel("volume@1")
    too_heavy = np.zeros((2, 64, 24), dtype=np.int64)
    too_heavy[1, 0, :] = 2  # 48 > 31
    with pytest.raises(ParameterError, match="overflow"):
        kernel.check_clear(too_heavy)
    out_of_grid = np.zeros((2, 64, 24), dtype=np.int64)
    out_of_grid[0, 3, 5] = 4096
    with pytest.raises(ParameterError, match="index"):
        kernel.check_clear(out_of_grid)
    with pytest.raises(ParameterError, match="outside"):
        get_kernel("shade@1").check_enc([np.full((3, 8, 8), 5), np.zeros((3, 8, 8))])
    with pytest.raises(ParameterError, match=r"\+18"):
        tile_clear_args("post@1", {"taps": [[18, 0, 0], [0, 0, 0], [0, 0, 0]]}, (8, 8), 0)
    with pytest.raises(ParameterError, match="pitch"):
        tile_clear_args("volume@1", {"pitch": 95.0}, (64, 64), 0)
    with pytest.raises(ParameterError, match="unknown post filter"):
        tile_clear_args("post@1", {"filter": "blurr"}, (8, 8), 0)
    with pytest.raises(ParameterError, match="light"):
        tile_clear_args("shade@1", {"light": [0, 0, 0]}, (8, 8), 0)


def test_unknown_kernel_ids_are_rejected() -> None:
    with pytest.raises(UnknownKernelError, match="expected one of"):
        get_kernel("volum@1")
    with pytest.raises(UnknownKernelError, match="malformed"):
        get_kernel("volume")


def test_registry_describes_each_kernel() -> None:
    for kernel_id in KERNEL_IDS:
        kernel = get_kernel(kernel_id)
        assert kernel.kernel_id == kernel_id
        assert all(lk.precision_bits <= 5 for lk in kernel.lookups)
        per_pixel = tile_function(kernel_id).programmable_bootstrap_count / kernel.pixels_per_tile
        assert per_pixel == kernel.bootstraps_per_pixel
        assert output_function(kernel_id)
    assert wire.NO_TILE == 0xFFFFFFFF
