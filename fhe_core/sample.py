"""The sample scene — a trefoil torus knot — rendered through every kernel, encrypted and plain.

``python -m blindframe.fhe_core.sample OUTDIR [--size 64] [--plain-only]`` writes one PNG per
kernel: the decrypted FHE render on the left, the plaintext twin's on the right (they are equal
pixel for pixel; the command checks it and fails otherwise).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from blindframe.fhe_core._kernel import IntArray
from blindframe.fhe_core._shade import ALBEDO_MAX, NORMAL_MAX
from blindframe.fhe_core._volume import GRID
from blindframe.fhe_core.voxels import quantize_density

__all__ = [
    "SAMPLE_CAMERA",
    "SAMPLE_LIGHT",
    "knot_points",
    "main",
    "render_sample",
    "sample_density",
    "sample_gbuffer",
    "sample_volume",
]

FloatArray = npt.NDArray[np.float64]
SAMPLE_CAMERA: dict[str, float] = {"yaw": 20.0, "pitch": 15.0, "zoom": 1.15}
SAMPLE_LIGHT: dict[str, list[float]] = {"light": [-0.4, 0.6, 0.7], "view": [0.0, 0.0, 1.0]}
SAMPLE_FILTER: dict[str, str] = {"filter": "sharpen"}
_TUBE = 1.35  # tube radius, in voxels of the 16^3 grid


def knot_points(count: int = 720) -> FloatArray:
    """Points of a (2, 3) torus knot in grid coordinates (centre 8, 8, 8), facing +z."""
    t = np.linspace(0.0, 2 * math.pi, count, endpoint=False)
    r = np.cos(3 * t) + 2.0
    pts = np.stack([r * np.cos(2 * t), r * np.sin(2 * t), -np.sin(3 * t)], axis=1)
    out: FloatArray = pts * 2.05 + GRID / 2
    return out


def _distance(points: FloatArray, curve: FloatArray) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Distance of each point to the curve (and the nearest curve sample), in chunks."""
    dist = np.empty(len(points))
    near = np.empty(len(points), dtype=np.int64)
    for start in range(0, len(points), 4096):
        chunk = points[start : start + 4096]
        d2 = ((chunk[:, None, :] - curve[None, :, :]) ** 2).sum(axis=2)
        near[start : start + 4096] = np.argmin(d2, axis=1)
        dist[start : start + 4096] = np.sqrt(d2[np.arange(len(chunk)), near[start : start + 4096]])
    return dist, near


def sample_density(side: int = 64) -> FloatArray:
    """The knot as a float density grid ``(side,)*3`` in [0, 1], indexed ``[x, y, z]``."""
    centres = (np.arange(side) + 0.5) * GRID / side
    xs, ys, zs = np.meshgrid(centres, centres, centres, indexing="ij")
    pts = np.stack([xs.ravel(), ys.ravel(), zs.ravel()], axis=1)
    dist, _ = _distance(pts, knot_points())
    edge = GRID / side
    return np.clip((_TUBE - dist) / edge + 0.5, 0.0, 1.0).reshape(side, side, side)


def sample_volume() -> IntArray:
    """The knot quantized for ``volume@1`` (4096 occupancy values)."""
    return quantize_density(sample_density(64))


def sample_gbuffer(
    frame_hw: tuple[int, int], camera: dict[str, float] = SAMPLE_CAMERA
) -> tuple[IntArray, IntArray]:
    """Normals (camera space, quantized to [-4, 4]) and RGB albedo ([0, 3]) of the knot, as a
    renderer's G-buffer passes would give them: sphere tracing of its distance field."""
    height, width = frame_hw
    yaw, pitch, zoom = (math.radians(camera["yaw"]), math.radians(camera["pitch"]), camera["zoom"])
    forward = np.array(
        [-math.cos(pitch) * math.sin(yaw), -math.sin(pitch), -math.cos(pitch) * math.cos(yaw)]
    )
    right = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])
    up = np.cross(right, forward)
    radius = GRID * math.sqrt(3) / 2
    ppu = zoom * min(height, width) / (2 * radius)
    py, px = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    u = ((px + 0.5 - width / 2) / ppu).ravel()
    v = ((height / 2 - py - 0.5) / ppu).ravel()
    centre = np.full(3, GRID / 2)
    origin = centre + u[:, None] * right + v[:, None] * up - radius * forward
    curve = knot_points()
    t = np.zeros(len(u))
    hit = np.zeros(len(u), dtype=bool)
    for _ in range(48):
        pos = origin + t[:, None] * forward
        dist, _near = _distance(pos, curve)
        sdf = dist - _TUBE
        hit |= sdf < 1e-3
        t = np.where(hit, t, t + np.maximum(sdf, 1e-3))
    pos = origin + t[:, None] * forward
    hit &= t < 2 * radius
    _dist, near = _distance(pos, curve)
    normal = pos - curve[near]
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
    cam = np.stack([normal @ right, normal @ up, -(normal @ forward)], axis=0)
    normals = np.clip(np.rint(cam * NORMAL_MAX), -NORMAL_MAX, NORMAL_MAX).astype(np.int64)
    hue = near / len(curve)
    rgb = 0.5 + 0.5 * np.cos(2 * math.pi * (hue[None, :] + np.array([[0.0], [1 / 3], [2 / 3]])))
    albedo = np.clip(np.rint(1 + rgb * (ALBEDO_MAX - 1)), 0, ALBEDO_MAX).astype(np.int64)
    normals[:, ~hit] = 0
    albedo[:, ~hit] = 0
    return normals.reshape(3, height, width), albedo.reshape(3, height, width)


def _to_png(image: IntArray, top: int, path: Path, scale: int = 4) -> None:
    from PIL import Image

    arr = np.asarray(image, dtype=np.float64) * (255.0 / top)
    arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    if arr.ndim == 3:
        arr = np.moveaxis(arr, 0, -1)
    arr = np.repeat(np.repeat(arr, scale, axis=0), scale, axis=1)
    Image.fromarray(arr).save(path)


def _side_by_side(left: IntArray, right: IntArray) -> IntArray:
    gap = np.zeros((*left.shape[:-1], 2), dtype=np.int64)
    return np.concatenate([left, gap, right], axis=-1)


def render_sample(
    outdir: Path,
    *,
    size: int = 64,
    kernels: Sequence[str] = ("volume", "shade", "post"),
    encrypted: bool = True,
    key_dir: Path | None = None,
) -> dict[str, Any]:
    """Render the sample through ``kernels``; write ``<kernel>.png`` (FHE | twin) in ``outdir``.

    Returns per kernel the output path and, when encrypted, the FHE compute seconds.
    """
    from blindframe.fhe_core import artist_jobs, jobs
    from blindframe.fhe_core.client import KernelClient
    from blindframe.fhe_core.keys import export_evaluation_keys, generate_keys, key_info
    from blindframe.fhe_core.server import run_tile

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    frame = (size, size)
    report: dict[str, Any] = {}
    plain_volume_frame: IntArray | None = None
    with tempfile.TemporaryDirectory(prefix="bf-sample-keys-") as tmp:
        keys = Path(key_dir) if key_dir is not None else Path(tmp)
        for name in kernels:
            kernel_id = f"{name}@1"
            client: KernelClient | None = None
            if encrypted:
                try:
                    key_info(kernel_id, keys)
                except FileNotFoundError:
                    generate_keys(kernel_id, keys)
                client = KernelClient(kernel_id, keys)
            if name == "volume":
                inputs: tuple[IntArray, ...] = (sample_volume(),)
                params: dict[str, Any] = dict(SAMPLE_CAMERA)
            elif name == "shade":
                inputs = sample_gbuffer(frame)
                params = dict(SAMPLE_LIGHT)
            else:
                if plain_volume_frame is None:
                    plain_volume_frame = _plain_volume(frame)
                inputs = (plain_volume_frame >> 2,)
                params = dict(SAMPLE_FILTER)
            job = _make_job(name, client, inputs, params, frame)
            plain = artist_jobs.plain_frame(job.public, job.secrets)
            if name == "volume":
                plain_volume_frame = plain
            left = plain
            if client is not None:
                ek = export_evaluation_keys(kernel_id, keys)
                start = time.perf_counter()
                outputs = {}
                for task in range(job.public.tasks):
                    bundle = job.inputs[0] if job.public.shared_input else job.inputs[task]
                    clear = jobs.task_clear_args(job.public, task)
                    outputs[task] = run_tile(kernel_id, bundle, ek, clear, tile_index=task)
                report[f"{name}_fhe_seconds"] = time.perf_counter() - start
                left = artist_jobs.decrypt_job(client, job.public, job.secrets, outputs)
            top = {"volume": 31, "shade": 31, "post": 7}[name]
            path = outdir / f"{name}.png"
            _to_png(_side_by_side(left, plain), top, path)
            report[name] = str(path)
    return report


def _plain_volume(frame: tuple[int, int]) -> IntArray:
    from blindframe.fhe_core import artist_jobs, jobs
    from blindframe.fhe_core.kernels import get_kernel
    from blindframe.fhe_core.tiling import Task

    kernel = get_kernel("volume@1")
    grid_count = (frame[0] // kernel.tile_hw[0]) * (frame[1] // kernel.tile_hw[1])
    public = jobs.PublicJob("volume@1", dict(SAMPLE_CAMERA), frame, grid_count, True)
    secrets = artist_jobs.JobSecrets(
        "volume@1",
        [Task(i, i, False) for i in range(grid_count)],
        frame,
        (0, 0),
        volume=sample_volume(),
    )
    return artist_jobs.plain_frame(public, secrets)


def _make_job(
    name: str,
    client: Any,
    inputs: tuple[IntArray, ...],
    params: dict[str, Any],
    frame: tuple[int, int],
) -> Any:
    from blindframe.fhe_core import artist_jobs, jobs
    from blindframe.fhe_core.kernels import get_kernel
    from blindframe.fhe_core.tiling import Task, plan_tasks, split_tiles, tile_grid

    if client is not None:
        if name == "volume":
            return artist_jobs.encrypt_volume_job(client, inputs[0], params, frame, margin_tiles=0)
        return artist_jobs.encrypt_frame_job(client, inputs, params, canaries=0)
    kernel = get_kernel(f"{name}@1")
    if name == "volume":
        count = (frame[0] // 8) * (frame[1] // 8)
        public = jobs.PublicJob(kernel.kernel_id, params, frame, count, True)
        secrets = artist_jobs.JobSecrets(
            kernel.kernel_id,
            [Task(i, i, False) for i in range(count)],
            frame,
            (0, 0),
            volume=inputs[0],
        )
        return artist_jobs.EncryptedJob(public, [], secrets)
    grid = tile_grid(frame, kernel.tile_hw, kernel.halo)
    per_plane = [split_tiles(grid, p) for p in inputs]
    plain = {t: tuple(pl[t] for pl in per_plane) for t in range(grid.count)}
    tasks = plan_tasks(grid.count, 0, np.random.default_rng(0))
    public = jobs.PublicJob(kernel.kernel_id, params, grid.padded_hw, len(tasks), False)
    return artist_jobs.EncryptedJob(
        public, [], artist_jobs.JobSecrets(kernel.kernel_id, tasks, frame, (0, 0), plain=plain)
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: render the sample scene into OUTDIR."""
    parser = argparse.ArgumentParser(prog="python -m blindframe.fhe_core.sample")
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels (multiple of 8)")
    parser.add_argument("--plain-only", action="store_true", help="twin only, no FHE")
    parser.add_argument("--kernels", default="volume,shade,post")
    args = parser.parse_args(argv)
    if args.size <= 0 or args.size % 8:
        parser.error(f"--size must be a positive multiple of 8 (not {args.size})")
    kernels = [k for k in args.kernels.split(",") if k]
    for k in kernels:
        if k not in ("volume", "shade", "post"):
            parser.error(f"unknown kernel {k!r}: expected volume|shade|post")
    report = render_sample(
        args.outdir, size=args.size, kernels=kernels, encrypted=not args.plain_only
    )
    for key, value in report.items():
        print(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
