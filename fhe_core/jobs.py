"""What is public about a job: :class:`PublicJob` (the manifest's description of the frame, its
tiles and the kernel's public parameters) and each task's clear argument, which a render node
derives itself. The artist's side (encryption, secrets, decryption) is
:mod:`blindframe.fhe_core.artist_jobs`: render nodes and the coordinator import only this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from blindframe.fhe_core._kernel import IntArray
from blindframe.fhe_core.errors import ParameterError
from blindframe.fhe_core.kernels import get_kernel
from blindframe.fhe_core.server import tile_clear_args
from blindframe.fhe_core.tiling import (
    tile_grid,
)

__all__ = ["PublicJob", "task_clear_args"]


@dataclass(frozen=True)
class PublicJob:
    """The public description of a job's tasks (goes into the manifest, in clear)."""

    kernel_id: str
    params: dict[str, Any]
    frame_hw: tuple[int, int]
    tasks: int
    shared_input: bool

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "kernel": self.kernel_id,
            "params": self.params,
            "frame": list(self.frame_hw),
            "tasks": self.tasks,
            "shared_input": self.shared_input,
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
        kernel = get_kernel(job.kernel_id)
        if not 0 < job.tasks <= 1 << 16:
            raise ParameterError(f"a job has 1..65536 tasks, not {job.tasks}")
        if job.shared_input != (kernel.name == "volume"):
            raise ParameterError(f"{job.kernel_id} jobs share one input only for volume kernels")
        grid = tile_grid(job.frame_hw, kernel.tile_hw)
        if job.shared_input and job.tasks != grid.count:
            raise ParameterError("a volume job has one task per tile of its frame")
        # The public parameters must give every task a valid clear argument: check one now.
        tile_clear_args(job.kernel_id, job.params, grid.padded_hw, 0)
        return job


def task_clear_args(public: PublicJob, task_index: int) -> IntArray:
    """Worker side: the clear argument of task ``task_index`` from the public job alone."""
    if not 0 <= task_index < public.tasks:
        raise ParameterError(f"task {task_index} is outside a job of {public.tasks} tasks")
    tile = task_index if public.shared_input else 0
    return tile_clear_args(public.kernel_id, public.params, public.frame_hw, tile)
