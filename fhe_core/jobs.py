"""What is public about a job: :class:`PublicJob` (the manifest's description of the frame, its
tiles and the kernel's public parameters) and each task's clear argument, which a render node
derives itself.

A job may render several frames of one shared input (an animation: ``frames``, each frame's
camera angles over ``params``): task ``f * tiles_per_frame + t`` is tile ``t`` of frame ``f``, so
one upload and one key set serve every frame. A description without ``frames`` is one frame.

The artist's side (encryption, secrets, decryption) is :mod:`blindframe.fhe_core.artist_jobs`:
render nodes and the coordinator import only this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from blindframe.fhe_core._kernel import IntArray
from blindframe.fhe_core.errors import ParameterError
from blindframe.fhe_core.kernels import get_kernel
from blindframe.fhe_core.server import tile_clear_args
from blindframe.fhe_core.tiling import (
    tile_grid,
)

__all__ = ["FRAME_KEYS", "MAX_FRAMES", "PublicJob", "task_clear_args"]

# The most frames one job renders: 10 s at 24 fps, with room (a manifest stays a few KiB per
# 100 frames; the task count, frames x tiles, has its own bound below).
MAX_FRAMES = 256
# What a frame may change over the job's params: the orbit camera's angles. The zoom stays the
# job's (a volume job's zoom is scaled to its canary margin once, for every frame).
FRAME_KEYS = ("yaw", "pitch")


@dataclass(frozen=True)
class PublicJob:
    """The public description of a job's tasks (goes into the manifest, in clear)."""

    kernel_id: str
    params: dict[str, Any]
    frame_hw: tuple[int, int]
    tasks: int
    shared_input: bool
    # Each frame's camera angles (FRAME_KEYS) over ``params``; None: a one-frame job.
    frames: tuple[dict[str, float], ...] | None = None

    @property
    def frame_count(self) -> int:
        """Frames the job renders (1 without ``frames``)."""
        return 1 if self.frames is None else len(self.frames)

    @property
    def tiles_per_frame(self) -> int:
        """Tasks of one frame: all of them in a one-frame job."""
        return self.tasks // self.frame_count

    def frame_of(self, task_index: int) -> tuple[int, int]:
        """(frame, the task's index within its frame)."""
        return divmod(task_index, self.tiles_per_frame)

    def frame_params(self, frame: int) -> dict[str, Any]:
        """The public parameters of frame ``frame``: ``params`` with its angles."""
        if self.frames is None:
            return self.params
        return {**self.params, **self.frames[frame]}

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``frames`` only in a job that has them)."""
        extra = {} if self.frames is None else {"frames": [dict(f) for f in self.frames]}
        return {
            "kernel": self.kernel_id,
            "params": self.params,
            "frame": list(self.frame_hw),
            "tasks": self.tasks,
            "shared_input": self.shared_input,
            **extra,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PublicJob:
        """Parse and validate the manifest's dict (raises ParameterError)."""
        try:
            job = cls(
                kernel_id=str(data["kernel"]),
                params=dict(data["params"]),
                frame_hw=(int(data["frame"][0]), int(data["frame"][1])),
                tasks=int(data["tasks"]),
                shared_input=bool(data["shared_input"]),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ParameterError(f"malformed public job description: {exc!r}") from exc
        if "frames" in data:
            job = replace(job, frames=_frames(data["frames"]))
        kernel = get_kernel(job.kernel_id)
        if not 0 < job.tasks <= 1 << 16:
            raise ParameterError(f"a job has 1..65536 tasks, not {job.tasks}")
        if job.shared_input != bool(kernel.gathered):
            raise ParameterError(
                f"{job.kernel_id} jobs share one input only for gathered kernels (volume, surface)"
            )
        grid = tile_grid(job.frame_hw, kernel.tile_hw)
        if job.frames is not None and not job.shared_input:
            # Frames share one input; per-tile inputs would be a new upload per frame.
            raise ParameterError(
                f"{job.kernel_id} jobs render one frame (frames need a shared input)"
            )
        if job.shared_input and job.tasks != grid.count * job.frame_count:
            raise ParameterError(
                f"a {kernel.name} job has one task per tile of each frame "
                f"({grid.count} x {job.frame_count}, not {job.tasks})"
            )
        # The public parameters must give every task a valid clear argument: check one now
        # (one per frame: each frame's angles are checked like the job's own camera).
        for frame in range(job.frame_count):
            tile_clear_args(job.kernel_id, job.frame_params(frame), grid.padded_hw, 0)
        return job


def _frames(data: Any) -> tuple[dict[str, float], ...]:
    """The manifest's ``frames``: 1..MAX_FRAMES objects of finite angles (FRAME_KEYS)."""
    if not isinstance(data, list) or not 1 <= len(data) <= MAX_FRAMES:
        count = len(data) if isinstance(data, list) else type(data).__name__
        raise ParameterError(f"a job has 1..{MAX_FRAMES} frames, not {count}")
    frames = []
    for index, frame in enumerate(data):
        if not isinstance(frame, dict) or not set(frame) <= set(FRAME_KEYS):
            raise ParameterError(
                f"frame {index} must be an object of {'|'.join(FRAME_KEYS)} angles"
            )
        for key, value in frame.items():
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise ParameterError(
                    f"frame {index} {key} must be a finite number of degrees (not {value!r})"
                )
        frames.append({key: float(frame[key]) for key in FRAME_KEYS if key in frame})
    return tuple(frames)


def task_clear_args(public: PublicJob, task_index: int) -> IntArray:
    """Worker side: the clear argument of task ``task_index`` from the public job alone."""
    if not 0 <= task_index < public.tasks:
        raise ParameterError(f"task {task_index} is outside a job of {public.tasks} tasks")
    if not public.shared_input:
        return tile_clear_args(public.kernel_id, public.params, public.frame_hw, 0)
    frame, tile = public.frame_of(task_index)
    return tile_clear_args(public.kernel_id, public.frame_params(frame), public.frame_hw, tile)
