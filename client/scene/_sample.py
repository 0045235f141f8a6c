"""The sample scene (the torus knot of ``fhe_core.sample``) as each kernel's plaintext input."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = ["SAMPLE", "default_params", "sample_inputs"]

# What ``post`` and ``render`` take instead of a scene to render the sample knot.
SAMPLE = "sample"


def default_params(kernel_name: str) -> dict[str, Any]:
    """A kernel's public parameters when the job names none: the sample camera, light or filter."""
    from blindframe.fhe_core import sample

    if kernel_name == "volume":
        return dict(sample.SAMPLE_CAMERA)
    if kernel_name == "shade":
        return {k: list(v) for k, v in sample.SAMPLE_LIGHT.items()}
    return dict(sample.SAMPLE_FILTER)


@functools.cache
def _sample_volume() -> np.ndarray[Any, np.dtype[np.int64]]:
    """The sample knot for volume@1, computed once per process (it takes seconds)."""
    from blindframe.fhe_core import sample

    volume = sample.sample_volume()
    volume.flags.writeable = False
    return volume


def sample_inputs(
    kernel_name: str, frame: tuple[int, int]
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], ...]:
    """The sample scene as ``kernel_name``'s plaintext input for a ``frame`` (height, width)."""
    from blindframe.fhe_core import sample

    if kernel_name == "volume":
        return (_sample_volume(),)
    if kernel_name == "shade":
        return sample.sample_gbuffer(frame)
    return (_sample_volume_frame(frame) >> 2,)


def _sample_volume_frame(frame: tuple[int, int]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The sample knot rendered plainly by volume@1's twin: the sample scene of ``post``."""
    from blindframe.fhe_core import sample
    from blindframe.fhe_core.artist_jobs import JobSecrets, plain_frame
    from blindframe.fhe_core.jobs import PublicJob
    from blindframe.fhe_core.kernels import get_kernel
    from blindframe.fhe_core.tiling import Task, tile_grid

    kernel = get_kernel("volume@1")
    grid = tile_grid(frame, kernel.tile_hw)
    padded = grid.padded_hw
    public = PublicJob("volume@1", dict(sample.SAMPLE_CAMERA), padded, grid.count, True)
    secrets = JobSecrets(
        "volume@1",
        [Task(i, i, False) for i in range(grid.count)],
        padded,
        (0, 0),
        volume=_sample_volume(),
    )
    out: np.ndarray[Any, np.dtype[np.int64]] = plain_frame(public, secrets)[: frame[0], : frame[1]]
    return out
