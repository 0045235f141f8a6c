"""Decrypting a job's frame from its verified results, written as PNG."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from blindframe.client._frames import write_frame_png
from blindframe.client.errors import (
    ResultUnavailableError,
)
from blindframe.client.jobdir import JobDir, LeaseVerdict, VerdictStatus
from blindframe.client.progress import DECRYPT, Progress
from blindframe.client.progress import no_progress as _no_progress
from blindframe.client.reports import (
    DecryptResult,
)
from blindframe.coordinator.results import LeaseResult, open_lease_result

if TYPE_CHECKING:
    from blindframe.client.artist import Artist, JobLike
    from blindframe.coordinator.manifest import Manifest

__all__ = ["decrypt"]


def decrypt(
    artist: Artist,
    job: JobLike = None,
    *,
    output: Path | None = None,
    twin: Path | bool = False,
    scale: int = 1,
    verify: bool = True,
    progress: Progress = _no_progress,
) -> DecryptResult:
    """Decrypt the whole frame from verified results (every task checked against the twin
    again by ``fhe_core.jobs.decrypt_job``) and write it as PNG (the job directory's
    ``frame.png``, and ``output`` if given). ``twin``: also write the plaintext twin's frame
    (True: ``twin.png`` in the job directory; a path: there)."""
    from blindframe.fhe_core.jobs import decrypt_job, plain_frame
    from blindframe.fhe_core.kernels import get_kernel

    directory = artist.job_dir(job)
    ref = directory.ref
    if verify:
        artist.verify(ref, progress=progress)
    public = directory.public()
    secrets = directory.secrets()
    manifest = directory.manifest()
    chosen = _chosen_leases(directory, public.tasks)
    outputs, leases = _tile_outputs(directory, manifest, chosen)
    progress(DECRYPT, 0, public.tasks)
    with artist._fhe_lock:
        frame = decrypt_job(artist._kernel_client(public.kernel_id), public, secrets, outputs)
    progress(DECRYPT, public.tasks, public.tasks)
    top = get_kernel(public.kernel_id).out_max
    array = directory.path / "frame.npy"
    np.save(array, frame)
    png = write_frame_png(directory.path / "frame.png", frame, top, scale=scale)
    if output is not None:
        png = write_frame_png(Path(output), frame, top, scale=scale)
    twin_png: Path | None = None
    matches: bool | None = None
    if twin:
        expected = plain_frame(public, secrets)
        np.save(directory.path / "twin.npy", expected)
        target = directory.path / "twin.png" if twin is True else Path(twin)
        twin_png = write_frame_png(target, expected, top, scale=scale)
        matches = bool(np.array_equal(frame, expected))
    directory.log_action("decrypt", png=str(png))
    return DecryptResult(ref, frame, png, array, twin_png, matches, leases)


def _chosen_leases(directory: JobDir, tasks: int) -> dict[int, LeaseVerdict]:
    """The verified lease each of the job's ``tasks`` tiles is decrypted from; raises when a tile
    has none yet."""
    verdicts = directory.verdicts()
    replication = int(directory.state().get("replication", 1))
    chosen: dict[int, LeaseVerdict] = {}
    # Prefer replica lanes, then jurors; older leases first.
    ordered = sorted(verdicts.leases.values(), key=lambda v: (v.lane >= replication, v.lease_id))
    for verdict in ordered:
        if verdict.file is None:
            continue
        for tile, state in verdict.tiles.items():
            if state == VerdictStatus.OK and tile not in chosen:
                chosen[tile] = verdict
    missing = [t for t in range(tasks) if t not in chosen]
    if missing:
        shown = ", ".join(map(str, missing[:12])) + ("…" if len(missing) > 12 else "")
        raise ResultUnavailableError(
            f"{len(missing)} of {tasks} tiles of job {directory.ref.job_id} have no verified "
            f"result yet (tiles {shown})",
            hint="wait for the render nodes (`blindframe client watch`), then fetch again",
        )
    return chosen


def _tile_outputs(
    directory: JobDir, manifest: Manifest, chosen: dict[int, LeaseVerdict]
) -> tuple[dict[int, bytes], tuple[int, ...]]:
    """Each tile's encrypted output, read from its chosen lease's saved result, and the leases
    used (sorted)."""
    results: dict[int, LeaseResult] = {}
    outputs: dict[int, bytes] = {}
    for tile, verdict in sorted(chosen.items()):
        result = results.get(verdict.lease_id)
        if result is None:
            path = directory.outputs / str(verdict.file)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise ResultUnavailableError(
                    f"the verified result of lease {verdict.lease_id} is gone ({exc})",
                    hint="delete its entry from verdicts.json and verify again",
                ) from None
            result = open_lease_result(
                data,
                kernel=manifest.kernel,
                job_id=directory.ref.job_id,
                lease_id=verdict.lease_id,
                first_tile=verdict.first_tile,
                count=verdict.count,
                leaf_depth=manifest.leaf_depth,
                root=bytes.fromhex(verdict.root.removeprefix("0x")),
            )
            results[verdict.lease_id] = result
        outputs[tile] = result.output(tile)
    return outputs, tuple(sorted(results))
