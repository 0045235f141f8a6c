"""Child side of a lease: what a sandbox child computes for the parent's ``lease`` call.

It compiles the kernel once, loads the keys once and runs every tile. It runs only inside a
sandbox child (:mod:`blindframe.fhe_core._child`, started by :mod:`blindframe.fhe_core.sandbox`:
a fresh interpreter with memory and CPU limits), so whatever the downloaded bundles do to
Concrete's native code stays there. The kernel is compiled here from its id (nothing a client
sent is executed); each tile's clear argument is derived from the job's public description. The
parent chose every path in the request; the child reads its inputs from them and writes one
OUTPUT bundle per tile into ``out_dir``. A single tile is a lease of one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator

    from blindframe.fhe_core.jobs import PublicJob
    from blindframe.fhe_core.server import SharedInput

__all__ = ["LeaseAnswer", "LeaseRequest", "TileDone", "run_lease", "tile_path"]


class LeaseRequest(TypedDict):
    """What the parent asks of a ``lease`` call (JSON, every path chosen by the parent)."""

    kernel: str  # the kernel id, compiled in the child
    job: dict[str, Any]  # the job's public description (PublicJob JSON, the manifest's)
    tiles: list[int]  # task indices
    inputs: list[str]  # one INPUT bundle path per tile, in the same order (may repeat)
    eval_keys: str  # the EVAL_KEYS bundle path
    out_dir: str  # where the OUTPUT bundles go (:func:`tile_path`)
    expanded_dir: NotRequired[str]  # where expanded shared inputs are kept between calls
    report_plan: NotRequired[bool]  # also say which FFT plan the process computed with


class TileDone(TypedDict):
    """One computed tile: where its OUTPUT bundle is, how long it took, its size."""

    tile: int
    path: str
    seconds: float
    bytes: int


class LeaseAnswer(TypedDict):
    """What a ``lease`` call answers."""

    tiles: list[TileDone]
    setup_seconds: float
    total_seconds: float
    fft_plan: NotRequired[str]  # with ``report_plan``: this process's plan for the kernel


# A gathered kernel's shared input is expanded once per job and node: each call runs in a fresh
# fork of the pinned child, so the expansion (``volume``: 4096 voxels, 64 MiB) is kept on disk in
# the parent's ``expanded_dir``, keyed by the kernel and the input's hash, for the job's next
# leases; only the last few inputs are kept. A bricked kernel's input (``surface``) gets a folder
# there instead, of the bricks its tiles have read so far (16 MiB each), at most
# BRICK_CACHE_BYTES of them: the least recently read go first.
EXPANDED_KEEP = 2
BRICK_CACHE_BYTES = 4 << 30


def _expanded(kernel: str, data: bytes, keys: Any, cache: Path | None) -> SharedInput:
    from blindframe.fhe_core.kernels import get_kernel
    from blindframe.fhe_core.server import ExpandedInput, expand_input

    digest = hashlib.sha256(data).hexdigest()
    if cache is None:
        return expand_input(kernel, data, keys)
    stem = cache / f"{kernel.replace('@', '-')}-{digest}"
    if get_kernel(kernel).brick_values:
        stem.mkdir(parents=True, exist_ok=True)
        os.utime(stem)
        _keep_latest(cache)
        return expand_input(kernel, data, keys, cache=stem, budget_bytes=BRICK_CACHE_BYTES)
    rows, template = stem.with_suffix(".npy"), stem.with_suffix(".template")
    if rows.is_file() and template.is_file():
        os.utime(rows)
        return ExpandedInput(
            kernel, np.load(rows, mmap_mode="r", allow_pickle=False), template.read_bytes()
        )
    expanded = expand_input(kernel, data, keys)
    assert isinstance(expanded, ExpandedInput)
    cache.mkdir(parents=True, exist_ok=True)
    for path, write in (
        (template, lambda fh: fh.write(expanded.template)),
        (rows, lambda fh: np.save(fh, expanded.ciphertexts, allow_pickle=False)),
    ):
        part = path.with_name(f".{path.name}.{os.getpid()}")
        with part.open("wb") as fh:
            write(fh)
        part.replace(path)  # the rows last: a reader that finds them finds the template too
    _keep_latest(cache)
    return expanded


def _keep_latest(cache: Path) -> None:
    """Remove all but the EXPANDED_KEEP most recently used expanded inputs (files and folders)."""
    kept = [*cache.glob("*.npy"), *(p for p in cache.iterdir() if p.is_dir())]
    kept.sort(key=lambda f: f.stat().st_mtime, reverse=True)
    for old in kept[EXPANDED_KEEP:]:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
            continue
        old.unlink(missing_ok=True)
        old.with_suffix(".template").unlink(missing_ok=True)


def _outputs(
    kernel: str,
    public: PublicJob,
    tiles: list[int],
    inputs: list[Path],
    keys: Any,
    expanded: dict[Path, SharedInput],
) -> Iterator[tuple[int, bytes]]:
    """Each tile's OUTPUT bundle, in order: a gathered kernel's tiles of one expanded input
    pipelined (:func:`~blindframe.fhe_core.server.run_gathered_tiles`), others one by one."""
    from blindframe.fhe_core.jobs import task_clear_args
    from blindframe.fhe_core.server import run_gathered_tiles, run_tile

    loaded: dict[Path, bytes] = {}  # tiles may share one input: read it once
    n = 0
    while n < len(tiles):
        path = inputs[n]
        if path in expanded:
            end = n
            while end < len(tiles) and inputs[end] == path:
                end += 1
            batch = [(t, task_clear_args(public, t)) for t in tiles[n:end]]
            yield from run_gathered_tiles(kernel, expanded[path], keys, batch)
            n = end
            continue
        if path not in loaded:
            loaded[path] = path.read_bytes()
        clear = task_clear_args(public, tiles[n])
        yield tiles[n], run_tile(kernel, loaded[path], keys, clear, tile_index=tiles[n])
        n += 1


def tile_path(out_dir: Path, tile: int) -> Path:
    """Where a lease writes the OUTPUT bundle of ``tile``."""
    return Path(out_dir) / f"tile-{int(tile)}.bundle"


def run_lease(payload: dict[str, Any]) -> dict[str, Any]:
    """Compute the tiles of one lease (a :class:`LeaseRequest`); answer with a
    :class:`LeaseAnswer`. Raises ValueError or an FheCoreError on a request that does not fit
    (the child reports it to the parent)."""
    start = time.perf_counter()
    from blindframe.fhe_core.jobs import PublicJob
    from blindframe.fhe_core.kernels import compile_kernel, get_kernel
    from blindframe.fhe_core.keys import read_evaluation_keys

    kernel = str(payload["kernel"])
    public = PublicJob.from_json(payload["job"])
    if public.kernel_id != kernel:
        raise ValueError(f"the job is for {public.kernel_id}, the lease for {kernel}")
    tiles = [int(t) for t in payload["tiles"]]
    inputs = [Path(p) for p in payload["inputs"]]
    if len(inputs) != len(tiles):
        raise ValueError(f"{len(tiles)} tiles but {len(inputs)} input paths")
    out_dir = Path(payload["out_dir"])
    compile_kernel(kernel)
    keys = read_evaluation_keys(kernel, Path(payload["eval_keys"]).read_bytes())
    cache = Path(payload["expanded_dir"]) if payload.get("expanded_dir") else None
    expanded: dict[Path, SharedInput] = {}
    if get_kernel(kernel).gathered:
        expanded = {p: _expanded(kernel, p.read_bytes(), keys, cache) for p in set(inputs)}
    setup = time.perf_counter() - start
    done: list[TileDone] = []
    began = time.perf_counter()
    for tile, output in _outputs(kernel, public, tiles, inputs, keys, expanded):
        seconds, began = time.perf_counter() - began, time.perf_counter()
        target = tile_path(out_dir, tile)
        target.write_bytes(output)
        done.append({"tile": tile, "path": str(target), "seconds": seconds, "bytes": len(output)})
    answer: LeaseAnswer = {
        "tiles": done,
        "setup_seconds": setup,
        "total_seconds": time.perf_counter() - start,
    }
    if payload.get("report_plan"):
        from blindframe.fhe_core.plans import plan_fingerprint

        # The plans are fixed by now (the tiles used them): the fingerprint only reads them.
        answer["fft_plan"] = plan_fingerprint(kernel)
    return dict(answer)
