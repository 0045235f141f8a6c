"""Decrypting a job's frame from its verified results, written as PNG or OpenEXR."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from blindframe.client._frames import FrameFormat, write_frame, write_preview, write_sequence
from blindframe.client._frames import frame_format as format_of
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
    frame_format: str | FrameFormat | None = None,
) -> DecryptResult:
    """Decrypt the whole frame from verified results (every task checked against the twin
    again by ``fhe_core.jobs.decrypt_job``) and write it: always the job directory's 8-bit
    ``frame.png`` and ``frame.npy``, and ``output`` in ``frame_format`` (png8|png16|exr) or the
    format its extension names (:mod:`blindframe.client._frames`). ``frame_format`` without
    ``output``: the job directory's ``frame.exr`` or ``frame16.png`` too. ``twin``: also write
    the plaintext twin's frame (True: ``twin.png`` in the job directory; a path: there, in
    ``frame_format`` or the path's format).

    An animation job (``frames`` in its manifest) writes each of its frames instead: the job
    directory's ``frames/frame-0001.png``... and ``frame.png``, their animated preview; an
    ``output`` ``NAME.png`` or ``NAME.exr`` is the sequence ``NAME/frame-0001.<ext>``... and the
    preview ``NAME.png``; the twin's likewise (``twin/``, ``twin.png``). Every frame's every
    task is checked against the twin."""
    from blindframe.fhe_core.artist_jobs import decrypt_job, plain_frame
    from blindframe.fhe_core.kernels import get_kernel

    # Bad formats and names fail here, before anything is downloaded or decrypted.
    wanted = _frame_file(output, frame_format)
    if isinstance(twin, Path):
        _frame_file(twin, frame_format)
    from blindframe.client._retrying import attempts

    # Every attempt at the frame (the first job and its follow-ups, `client retry`), whichever
    # of them ``job`` names; the first job's directory holds the frame.
    chain = attempts(artist.job_dir(job))
    directory = chain[0]
    ref = directory.ref
    array = directory.path / "frame.npy"
    # frame.npy is written only once every tile was verified and decrypted: a job decrypted
    # before is served from its directory, without the chain (which may be down or gone).
    decrypted_before = array.is_file()
    if verify and not decrypted_before:
        for attempt in chain:
            artist.verify(attempt.ref, progress=progress)
    public = directory.public()
    secrets = directory.secrets()
    outputs, leases = _attempt_outputs(chain, public.tasks)
    progress(DECRYPT, 0, public.tasks)
    if decrypted_before:
        frame = np.load(array, allow_pickle=False)
    else:
        with artist._fhe_lock:
            frame = decrypt_job(artist._kernel_client(public.kernel_id), public, secrets, outputs)
        np.save(array, frame)
    progress(DECRYPT, public.tasks, public.tasks)
    top = get_kernel(public.kernel_id).out_max
    if public.frames is not None:
        expected = plain_frame(public, secrets) if twin else None
        return _animation(
            directory,
            frame,
            expected,
            top,
            wanted,
            twin,
            scale,
            frame_format,
            leases,
            secrets.palette,
        )
    shown, shown_top = _painted(frame, top, secrets.palette)
    png = write_frame(directory.path / "frame.png", shown, shown_top, scale=scale)
    image, image_format = png, FrameFormat.PNG8
    if wanted is not None:
        path, image_format = wanted
        image = write_frame(
            path or directory.path / _JOB_FILES[image_format],
            shown,
            shown_top,
            scale=scale,
            fmt=image_format,
        )
        if image_format != FrameFormat.EXR:
            png = image
    twin_png: Path | None = None
    matches: bool | None = None
    if twin:
        expected = plain_frame(public, secrets)
        np.save(directory.path / "twin.npy", expected)
        target = directory.path / "twin.png" if twin is True else Path(twin)
        twin_format = frame_format if twin is not True else None
        twin_shown, _ = _painted(expected, top, secrets.palette)
        twin_png = write_frame(target, twin_shown, shown_top, scale=scale, fmt=twin_format)
        matches = bool(np.array_equal(frame, expected))
    directory.log_action("decrypt", png=str(png), image=str(image), format=str(image_format))
    return DecryptResult(ref, frame, png, array, twin_png, matches, leases, image, image_format)


def _animation(
    directory: JobDir,
    frames: np.ndarray[Any, np.dtype[np.int64]],
    expected: np.ndarray[Any, np.dtype[np.int64]] | None,
    top: int,
    wanted: tuple[Path | None, FrameFormat] | None,
    twin: Path | bool,
    scale: int,
    frame_format: str | FrameFormat | None,
    leases: tuple[int, ...],
    palette: np.ndarray[Any, np.dtype[np.float64]] | None = None,
) -> DecryptResult:
    """An animation job's files (see :func:`decrypt`): sequences and previews."""
    decrypted, twin_frames = frames, expected
    (frames, top), expected = _painted(frames, top, palette), _painted_or_none(expected, palette)
    preview = write_preview(directory.path / "frame.png", frames, top, scale=scale)
    sequence = write_sequence(directory.path / "frames", frames, top, scale=scale)
    image_format = FrameFormat.PNG8
    if wanted is not None:
        path, image_format = wanted
        if path is not None:
            preview = write_preview(path.with_suffix(".png"), frames, top, scale=scale)
            folder = path.with_suffix("")
        else:
            folder = directory.path / _JOB_SEQUENCES[image_format]
        if path is not None or image_format != FrameFormat.PNG8:
            sequence = write_sequence(folder, frames, top, scale=scale, fmt=image_format)
    twin_preview: Path | None = None
    twin_sequence: tuple[Path, ...] = ()
    matches: bool | None = None
    if expected is not None and twin_frames is not None:
        np.save(directory.path / "twin.npy", twin_frames)
        target = directory.path / "twin.png" if twin is True else Path(str(twin))
        twin_format = format_of(target, frame_format if twin is not True else None)
        twin_preview = write_preview(target.with_suffix(".png"), expected, top, scale=scale)
        twin_sequence = write_sequence(
            target.with_suffix(""), expected, top, scale=scale, fmt=twin_format
        )
        matches = bool(np.array_equal(decrypted, twin_frames))
    directory.log_action(
        "decrypt", png=str(preview), frames=len(sequence), format=str(image_format)
    )
    return DecryptResult(
        directory.ref,
        decrypted,
        preview,
        directory.path / "frame.npy",
        twin_preview,
        matches,
        leases,
        sequence[0],
        image_format,
        sequence=sequence,
        preview=preview,
        twin_sequence=twin_sequence,
    )


# The job directory's sequence folder for each format when --format is given without an
# output file (png16's names would be png8's).
_JOB_SEQUENCES = {
    FrameFormat.PNG8: "frames",
    FrameFormat.PNG16: "frames16",
    FrameFormat.EXR: "frames",
}

# The job directory's file for each format when --format is given without an output file.
_JOB_FILES = {
    FrameFormat.PNG8: "frame.png",
    FrameFormat.PNG16: "frame16.png",
    FrameFormat.EXR: "frame.exr",
}


def _frame_file(
    output: Path | None, requested: str | FrameFormat | None
) -> tuple[Path | None, FrameFormat] | None:
    """The extra frame file asked for (its path, None for the job directory's) and its format;
    None when only the job directory's PNG is wanted."""
    if output is None and requested is None:
        return None
    return (None if output is None else Path(output)), format_of(output, requested)


def _chosen_leases(directory: JobDir) -> dict[int, LeaseVerdict]:
    """The verified lease each of the job's tiles is decrypted from (tiles without one are left
    out)."""
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
    return chosen


def _attempt_outputs(chain: list[JobDir], tasks: int) -> tuple[dict[int, bytes], tuple[int, ...]]:
    """Each of the first job's ``tasks`` encrypted outputs, from the first attempt of ``chain``
    that verified it (a follow-up's tile is a task of the first job), and the leases used;
    raises when a task has none yet."""
    outputs: dict[int, bytes] = {}
    used: list[int] = []
    for attempt in chain:
        manifest = attempt.manifest()
        tiles, leases = _tile_outputs(attempt, manifest, _chosen_leases(attempt))
        for tile, output in tiles.items():
            outputs.setdefault(manifest.task_of(tile), output)
        used += leases
    missing = [t for t in range(tasks) if t not in outputs]
    if missing:
        shown = ", ".join(map(str, missing[:12])) + ("…" if len(missing) > 12 else "")
        first, last = chain[0].ref.job_id, chain[-1].ref.job_id
        over = f" over {len(chain)} attempts (jobs {first} to {last})" if len(chain) > 1 else ""
        raise ResultUnavailableError(
            f"{len(missing)} of {tasks} tiles of job {first} have no verified result yet"
            f"{over} (tiles {shown})",
            hint="wait for the render nodes (`blindframe client watch`), then fetch again; "
            f"once job {last} ended, `blindframe client retry {last}` posts them again",
        )
    return outputs, tuple(sorted(used))


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


def _painted(
    frame: np.ndarray[Any, np.dtype[np.int64]],
    top: int,
    palette: np.ndarray[Any, np.dtype[np.float64]] | None,
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], int]:
    """What a frame file shows: the decrypted integers, or for ``surface`` the palette indices
    painted with the job's secret palette, as RGB ``(..., 3, H, W)`` in [0, 255]."""
    if palette is None:
        return frame, top
    from blindframe.fhe_core._surface import paint

    rgb = np.rint(paint(frame, palette) * 255).astype(np.int64)
    return np.moveaxis(rgb, -1, -3), 255


def _painted_or_none(
    frame: np.ndarray[Any, np.dtype[np.int64]] | None,
    palette: np.ndarray[Any, np.dtype[np.float64]] | None,
) -> np.ndarray[Any, np.dtype[np.int64]] | None:
    return None if frame is None else _painted(frame, 0, palette)[0]
