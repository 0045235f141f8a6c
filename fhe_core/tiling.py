"""Split frames into fixed-size tiles (with halos), reassemble them, and mix in canary tasks.

Padding hides the true extent: frames are padded to whole tiles (edge-replicated, so padding
pixels look like their neighbours) and a job may add whole padding tiles around the frame.

Canary tasks, and why a worker cannot tell them from real ones:

- ``shade`` / ``post``: every task carries its own encrypted tile, and the public parameters
  (lights, filter taps) are the same for every task, so a task's clear argument says nothing
  about it. A canary is a fresh encryption of a copy of a randomly chosen real tile: same
  statistics, and under IND-CPA encryption a fresh ciphertext of the same plaintext looks like
  any other. Tasks are numbered in a shuffled order that only the client knows; the client
  checks each canary's decryption against the twin (it knows the answer) and drops it.
- ``volume``: every task shares the one encrypted volume and its clear weights are public and
  derived from the tile's position, so a canary must be a tile of the same camera. The client
  renders a *virtual* frame with extra tiles around the real one (the camera's zoom is scaled
  so the real frame's view does not change); the extra tiles are the canaries, their answers
  come from the twin, and they are cropped away. A worker sees a frame of some size; it cannot
  tell which tiles are kept, and cannot tell empty voxels from occupied ones. What it can see:
  a pixel whose ray misses the grid entirely has weight 0 and a known answer — tiles made only
  of such pixels verify nothing, so canary tiles should stay within the grid's silhouette
  (``zoom >= 1`` keeps the bounding sphere filling the frame). Since the client holds the
  volume, it checks every tile, real or canary, against the twin anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from blindframe.fhe_core._kernel import IntArray
from blindframe.fhe_core.errors import ParameterError

__all__ = ["Task", "TileGrid", "assemble_tiles", "plan_tasks", "split_tiles", "tile_grid"]

MAX_FRAME_SIDE = 4096


@dataclass(frozen=True)
class TileGrid:
    """A frame of ``frame_hw`` pixels cut into ``tiles_y x tiles_x`` tiles of ``tile_hw``."""

    frame_hw: tuple[int, int]
    tile_hw: tuple[int, int]
    halo: int

    @property
    def tiles_y(self) -> int:
        """Tile rows (the last one may be padding)."""
        return -(-self.frame_hw[0] // self.tile_hw[0])

    @property
    def tiles_x(self) -> int:
        """Tile columns."""
        return -(-self.frame_hw[1] // self.tile_hw[1])

    @property
    def count(self) -> int:
        """Number of tiles."""
        return self.tiles_y * self.tiles_x

    @property
    def padded_hw(self) -> tuple[int, int]:
        """The frame's size padded to whole tiles."""
        return self.tiles_y * self.tile_hw[0], self.tiles_x * self.tile_hw[1]

    def origin(self, index: int) -> tuple[int, int]:
        """Top-left pixel of tile ``index`` (row-major)."""
        if not 0 <= index < self.count:
            raise ParameterError(f"tile {index} is outside a grid of {self.count} tiles")
        ty, tx = divmod(index, self.tiles_x)
        return ty * self.tile_hw[0], tx * self.tile_hw[1]


def tile_grid(frame_hw: tuple[int, int], tile_hw: tuple[int, int], halo: int = 0) -> TileGrid:
    """Validate a frame size and make its grid."""
    h, w = (int(x) for x in frame_hw)
    if not (0 < h <= MAX_FRAME_SIDE and 0 < w <= MAX_FRAME_SIDE):
        raise ParameterError(f"frame {frame_hw} must be 1..{MAX_FRAME_SIDE} pixels a side")
    return TileGrid((h, w), (int(tile_hw[0]), int(tile_hw[1])), int(halo))


def split_tiles(grid: TileGrid, frame: IntArray) -> list[IntArray]:
    """Cut ``frame`` (``(..., H, W)``) into tiles with their halo, edge-replicating borders."""
    arr = np.asarray(frame)
    if arr.shape[-2:] != grid.frame_hw:
        raise ParameterError(f"frame has shape {arr.shape[-2:]}, grid expects {grid.frame_hw}")
    ph, pw = grid.padded_hw
    h, w = grid.frame_hw
    hal = grid.halo
    pad = [(0, 0)] * (arr.ndim - 2) + [(hal, ph - h + hal), (hal, pw - w + hal)]
    padded = np.pad(arr, pad, mode="edge")
    th, tw = grid.tile_hw
    out = []
    for index in range(grid.count):
        y, x = grid.origin(index)
        out.append(np.ascontiguousarray(padded[..., y : y + th + 2 * hal, x : x + tw + 2 * hal]))
    return out


def assemble_tiles(grid: TileGrid, tiles: Sequence[IntArray]) -> IntArray:
    """Put tile outputs (``(..., th, tw)``) back together and crop the padding."""
    if len(tiles) != grid.count:
        raise ParameterError(f"{len(tiles)} tiles given, the grid has {grid.count}")
    first = np.asarray(tiles[0])
    ph, pw = grid.padded_hw
    out = np.zeros((*first.shape[:-2], ph, pw), dtype=first.dtype)
    th, tw = grid.tile_hw
    for index, tile in enumerate(tiles):
        y, x = grid.origin(index)
        out[..., y : y + th, x : x + tw] = tile
    return out[..., : grid.frame_hw[0], : grid.frame_hw[1]]


@dataclass(frozen=True)
class Task:
    """One task of a job, as the client (only) knows it."""

    task_index: int
    source_tile: int
    canary: bool


def plan_tasks(real_tiles: int, canaries: int, rng: np.random.Generator) -> list[Task]:
    """Real tiles plus ``canaries`` copies of random real tiles, in a secret shuffled order."""
    if real_tiles <= 0 or canaries < 0:
        raise ParameterError("a job needs at least one real tile and a non-negative canary count")
    sources = [(t, False) for t in range(real_tiles)]
    sources += [(int(rng.integers(0, real_tiles)), True) for _ in range(canaries)]
    order = rng.permutation(len(sources))
    return [Task(i, sources[j][0], sources[j][1]) for i, j in enumerate(order)]
