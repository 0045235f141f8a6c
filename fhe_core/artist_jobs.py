"""A whole frame as the artist's job: encrypt it into task bundles (+ canaries), then decrypt,
check every task against the twin and assemble the frame.

What stays with the client is :class:`JobSecrets` (the task order, which tasks are canaries, the
plaintexts for the twin check); what is public is :class:`~blindframe.fhe_core.jobs.PublicJob`.
This module holds the secret-key side (it imports :mod:`blindframe.fhe_core.client`): only the
artist's code imports it (import-linter checks it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from blindframe.fhe_core._kernel import IntArray
from blindframe.fhe_core._volume import camera_from_params
from blindframe.fhe_core.client import KernelClient, check_against_twin
from blindframe.fhe_core.errors import ParameterError
from blindframe.fhe_core.jobs import PublicJob, task_clear_args
from blindframe.fhe_core.kernels import get_kernel
from blindframe.fhe_core.server import tile_clear_args
from blindframe.fhe_core.tiling import (
    Task,
    TileGrid,
    assemble_tiles,
    plan_tasks,
    split_tiles,
    tile_grid,
)

__all__ = [
    "VIEW_ZOOM",
    "EncryptedJob",
    "JobSecrets",
    "check_volume_camera",
    "decrypt_job",
    "encrypt_frame_job",
    "encrypt_volume_job",
    "plain_frame",
    "plan_volume_job",
]


@dataclass
class JobSecrets:
    """What only the client keeps: task order, canaries, plaintexts, the real frame's place."""

    kernel_id: str
    tasks: list[Task]
    real_hw: tuple[int, int]
    offset_tiles: tuple[int, int]
    plain: dict[int, tuple[IntArray, ...]] = field(default_factory=dict)
    volume: IntArray | None = None
    # surface: the baked palette (index -> RGB in [0, 1]) the decrypted indices are painted with.
    palette: npt.NDArray[np.float64] | None = None

    def save(self, path: Path) -> None:
        """Write to an ``.npz`` (no pickle); keep it with the key directory."""
        arrays: dict[str, npt.NDArray[Any]] = {}
        for tile, planes in self.plain.items():
            for i, plane in enumerate(planes):
                arrays[f"plain_{tile}_{i}"] = plane
        if self.volume is not None:
            arrays["volume"] = self.volume
        if self.palette is not None:
            arrays["palette"] = self.palette
        meta = {
            "kernel_id": self.kernel_id,
            "tasks": [[t.task_index, t.source_tile, t.canary] for t in self.tasks],
            "real_hw": list(self.real_hw),
            "offset_tiles": list(self.offset_tiles),
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8).astype(np.int64)
        with Path(path).open("wb") as fh:
            np.savez_compressed(fh, **arrays)

    @classmethod
    def load(cls, path: Path) -> JobSecrets:
        """Read what :meth:`save` wrote."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"].astype(np.uint8)).decode())
            plain: dict[int, list[tuple[int, IntArray]]] = {}
            for key in data.files:
                if key.startswith("plain_"):
                    _, tile, i = key.split("_")
                    plain.setdefault(int(tile), []).append((int(i), data[key]))
            volume = data["volume"] if "volume" in data.files else None
            palette = data["palette"] if "palette" in data.files else None
        return cls(
            kernel_id=meta["kernel_id"],
            tasks=[Task(int(a), int(b), bool(c)) for a, b, c in meta["tasks"]],
            real_hw=(int(meta["real_hw"][0]), int(meta["real_hw"][1])),
            offset_tiles=(int(meta["offset_tiles"][0]), int(meta["offset_tiles"][1])),
            plain={k: tuple(a for _, a in sorted(v, key=lambda x: x[0])) for k, v in plain.items()},
            volume=volume,
            palette=palette,
        )


@dataclass
class EncryptedJob:
    """A job ready to upload: its public part, its input bundles, and the client's secrets.

    ``inputs`` holds one bundle shared by every task (``volume``) or one bundle per task, in
    task order.
    """

    public: PublicJob
    inputs: list[bytes]
    secrets: JobSecrets


# The zoom an artist's camera may ask for. The job's own zoom is smaller, scaled to the canary
# margin (see plan_volume_job), so the kernel accepts down to 0.005: an 8-pixel side with 16
# margin tiles each side scales 0.25 by 8 / 264, to 0.0076.
VIEW_ZOOM = (0.25, 4.0)


def check_volume_camera(camera: Mapping[str, Any]) -> None:
    """Refuse a volume camera (``yaw``, ``pitch``, ``zoom``) outside what an artist may ask for."""
    lo, hi = VIEW_ZOOM
    zoom = camera.get("zoom", 1.0) if isinstance(camera, Mapping) else None
    # Before camera_from_params, whose wider range (the scaled zoom's) is not the artist's.
    if isinstance(zoom, int | float) and not isinstance(zoom, bool) and not lo <= zoom <= hi:
        raise ParameterError(f"volume camera zoom = {zoom!r} is outside [{lo}, {hi}]")
    camera_from_params(camera)


def plan_volume_job(
    kernel_id: str,
    volume: IntArray,
    camera: Mapping[str, Any],
    frame_hw: tuple[int, int],
    *,
    margin_tiles: int = 1,
    frames: Sequence[Mapping[str, float]] | None = None,
) -> tuple[PublicJob, JobSecrets]:
    """The public job and the secrets of a volume frame, before any encryption: the tiles of a
    virtual frame with ``margin_tiles`` of canary tiles on each side (the zoom is scaled so the
    real frame's view is unchanged). ``frames``: each frame's camera angles over ``camera`` (an
    animation of the one volume: frame ``f``'s tasks follow frame ``f - 1``'s)."""
    kernel = get_kernel(kernel_id)
    if not kernel.gathered:  # volume, surface: one shared grid seen by the orbit camera
        raise ParameterError(f"{kernel_id} is not a volume kernel")
    (vol,) = kernel.check_enc([volume])
    th, tw = kernel.tile_hw
    real = tile_grid(frame_hw, kernel.tile_hw)
    ph, pw = real.padded_hw
    if (ph, pw) != tuple(frame_hw):
        raise ParameterError(f"volume frames must be a multiple of the {kernel.tile_hw} tile")
    if not 0 <= margin_tiles <= 16:
        raise ParameterError(f"margin_tiles must be 0..16, not {margin_tiles}")
    vh, vw = ph + 2 * margin_tiles * th, pw + 2 * margin_tiles * tw
    check_volume_camera(camera)
    params = dict(camera)
    # volume_weights sizes the view from the frame it is given, here the virtual one: at the
    # same zoom the real frame would see the model magnified by virtual/real. Scaling the zoom
    # by real/virtual gives the real frame's pixels exactly the camera's view.
    params["zoom"] = float(params.get("zoom", 1.0)) * min(ph, pw) / min(vh, vw)
    virtual = tile_grid((vh, vw), kernel.tile_hw)
    count = 1 if frames is None else len(frames)
    tasks = []
    for index in range(virtual.count * count):
        ty, tx = divmod(index % virtual.count, virtual.tiles_x)
        inside = (
            margin_tiles <= ty < margin_tiles + real.tiles_y
            and margin_tiles <= tx < margin_tiles + real.tiles_x
        )
        tasks.append(Task(index, index, not inside))
    public = PublicJob(
        kernel_id,
        params,
        (vh, vw),
        virtual.count * count,
        True,
        None if frames is None else tuple(dict(f) for f in frames),
    )
    # Validates the camera, and each frame's, early (PublicJob.from_json checks them again).
    PublicJob.from_json(public.to_json())
    secrets = JobSecrets(kernel_id, tasks, (ph, pw), (margin_tiles, margin_tiles), volume=vol)
    return public, secrets


def encrypt_volume_job(
    client: KernelClient,
    volume: IntArray,
    camera: Mapping[str, Any],
    frame_hw: tuple[int, int],
    *,
    margin_tiles: int = 1,
    frames: Sequence[Mapping[str, float]] | None = None,
) -> EncryptedJob:
    """Encrypt the volume once, for every frame; the job is :func:`plan_volume_job`'s."""
    public, secrets = plan_volume_job(
        client.kernel_id, volume, camera, frame_hw, margin_tiles=margin_tiles, frames=frames
    )
    assert secrets.volume is not None
    return EncryptedJob(public, [client.encrypt(secrets.volume)], secrets)


def encrypt_frame_job(
    client: KernelClient,
    planes: tuple[IntArray, ...],
    params: Mapping[str, Any],
    *,
    canaries: int,
    rng: np.random.Generator | None = None,
) -> EncryptedJob:
    """Tile a frame (one array ``(..., H, W)`` per encrypted input), add ``canaries`` tasks that
    re-encrypt random real tiles, shuffle, encrypt each task separately."""
    kernel = client.kernel
    if kernel.gathered:
        raise ParameterError("use encrypt_volume_job for volume kernels")
    rng = rng or np.random.default_rng()
    frame_hw = tuple(np.asarray(planes[0]).shape[-2:])
    grid = tile_grid((int(frame_hw[0]), int(frame_hw[1])), kernel.tile_hw, kernel.halo)
    per_plane = [split_tiles(grid, np.asarray(p)) for p in planes]
    plain = {t: kernel.check_enc([pl[t] for pl in per_plane]) for t in range(grid.count)}
    tile_clear_args(client.kernel_id, params, grid.padded_hw, 0)  # validates params early
    tasks = plan_tasks(grid.count, canaries, rng)
    inputs = [
        client.encrypt(*plain[task.source_tile], tile_index=task.task_index) for task in tasks
    ]
    public = PublicJob(client.kernel_id, dict(params), grid.padded_hw, len(tasks), False)
    secrets = JobSecrets(client.kernel_id, tasks, grid.frame_hw, (0, 0), plain=plain)
    return EncryptedJob(public, inputs, secrets)


def _plain_inputs(public: PublicJob, secrets: JobSecrets, task: Task) -> tuple[IntArray, ...]:
    if public.shared_input:
        assert secrets.volume is not None
        return (secrets.volume,)
    return secrets.plain[task.source_tile]


def plain_frame(public: PublicJob, secrets: JobSecrets) -> IntArray:
    """The frame the twin computes for this job (the plaintext path; a job with ``frames``:
    every frame, stacked on a first axis). Only the real frame's tasks are computed: canaries
    repeat a real tile or lie outside the frame."""
    kernel = get_kernel(public.kernel_id)
    return _assemble(
        public,
        secrets,
        {
            t.task_index: kernel.twin(
                _plain_inputs(public, secrets, t), task_clear_args(public, t.task_index)
            )
            for t in secrets.tasks
            if not t.canary
        },
    )


def _assemble(public: PublicJob, secrets: JobSecrets, results: Mapping[int, IntArray]) -> IntArray:
    """The real frame from the results of its tasks (canaries' are not needed); a job with
    ``frames``: each frame, stacked on a first axis."""
    kernel = get_kernel(public.kernel_id)
    if public.shared_input:
        # Task i is tile i of the virtual frame (of frame i // its tile count); the real
        # frame sits offset_tiles inside it.
        virtual = tile_grid(public.frame_hw, kernel.tile_hw)
        real = tile_grid(secrets.real_hw, kernel.tile_hw)
        oy, ox = secrets.offset_tiles
        images = [
            assemble_tiles(
                real,
                [
                    results[
                        frame * virtual.count
                        + (oy + index // real.tiles_x) * virtual.tiles_x
                        + ox
                        + index % real.tiles_x
                    ]
                    for index in range(real.count)
                ],
            )
            for frame in range(public.frame_count)
        ]
        return images[0] if public.frames is None else np.stack(images)
    grid = TileGrid(secrets.real_hw, kernel.tile_hw, kernel.halo)
    by_tile = {t.source_tile: results[t.task_index] for t in secrets.tasks if not t.canary}
    return assemble_tiles(grid, [by_tile[i] for i in range(grid.count)])


def decrypt_job(
    client: KernelClient,
    public: PublicJob,
    secrets: JobSecrets,
    outputs: Mapping[int, bytes],
    *,
    check_all: bool = True,
) -> IntArray:
    """Decrypt every task's OUTPUT bundle, check canaries (and, with ``check_all``, every task)
    against the twin — raising TwinMismatchError naming the task — and assemble the frame."""
    results: dict[int, IntArray] = {}
    for task in secrets.tasks:
        if task.task_index not in outputs:
            raise ParameterError(f"no result for task {task.task_index}")
        got = client.decrypt(outputs[task.task_index], tile_index=task.task_index)
        if check_all or task.canary:
            kind = "canary task" if task.canary else "task"
            check_against_twin(
                client.kernel,
                got,
                _plain_inputs(public, secrets, task),
                task_clear_args(public, task.task_index),
                f"{kind} {task.task_index}",
            )
        results[task.task_index] = got
    return _assemble(public, secrets, results)
