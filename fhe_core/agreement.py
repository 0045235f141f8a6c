"""Replica agreement: the rule the contract applies, and the script that measured replicas.

Honest replicas pinned to the same FFT plan (:mod:`blindframe.fhe_core.plans`) are bit-identical;
a result that skipped the computation is unrelated to them, far on the torus in ~97 % of its
coefficients. Two results *disagree* when at least ``AGREEMENT_FAR_COUNT`` coefficient pairs of
the opened leaves are farther apart than ``AGREEMENT_TOLERANCE``. Both numbers go to the contract
at deployment; the measurement behind them is in ``AGREEMENT.md``
(``python -m blindframe.fhe_core.agreement`` reproduces it: unpinned runs, the plan each used,
pinned runs, lazy results).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from blindframe.fhe_core.merkle import U64Array, torus_distance

if TYPE_CHECKING:
    from blindframe.fhe_core._kernel import IntArray
    from blindframe.fhe_core.client import KernelClient

__all__ = [
    "AGREEMENT_FAR_COUNT",
    "AGREEMENT_TOLERANCE",
    "disagree",
    "leaves_to_prove",
    "main",
    "measure",
]

AGREEMENT_TOLERANCE = 1 << 58
AGREEMENT_FAR_COUNT = 8


def disagree(a: U64Array, b: U64Array) -> bool:
    """The rule on two coefficient streams (or the coefficients of the same opened leaves)."""
    far = np.count_nonzero(torus_distance(a, b) > np.uint64(AGREEMENT_TOLERANCE))
    return int(far) >= AGREEMENT_FAR_COUNT


def leaves_to_prove(a: U64Array, b: U64Array) -> int | None:
    """The fewest 4-coefficient leaves a challenger must open to prove disagreement, choosing the
    leaves with the most far pairs; None when even the whole tile is not enough."""
    n = min(len(a), len(b))
    far = (torus_distance(a[:n], b[:n]) > np.uint64(AGREEMENT_TOLERANCE)).astype(np.int64)
    far = np.pad(far, (0, (-n) % 4)).reshape(-1, 4).sum(axis=1)
    best = np.sort(far)[::-1]
    total = np.cumsum(best)
    enough = np.nonzero(total >= AGREEMENT_FAR_COUNT)[0]
    return int(enough[0]) + 1 if len(enough) else None


def _lazy_streams(
    kernel_id: str,
    honest: U64Array,
    input_bundle: bytes,
    other_tile: U64Array,
    other_keys: U64Array,
    rng: np.random.Generator,
) -> dict[str, U64Array]:
    from blindframe.fhe_core import wire
    from blindframe.fhe_core.kernels import get_kernel

    kernel = get_kernel(kernel_id)
    parsed = wire.read_bundle(
        input_bundle,
        kind=wire.BundleKind.INPUT,
        kernel_id=kernel_id,
        spec_hash=parsed_spec(kernel_id),
        expected=_expected_inputs(kernel_id),
    )
    raw = np.frombuffer(
        wire.value_payload(parsed.values[0].data, kernel.enc[0].shape, 3), dtype="<u8"
    )
    copied = np.resize(raw, len(honest)).astype(np.uint64)
    return {
        "random bytes": rng.integers(0, 1 << 64, len(honest), dtype=np.uint64),
        "input copied": copied,
        "another tile's output": other_tile,
        "another key set's output": other_keys,
        "all zeros": np.zeros(len(honest), dtype=np.uint64),
    }


def parsed_spec(kernel_id: str) -> str:
    """The client-spec hash (imported lazily: Concrete is slow to import)."""
    from blindframe.fhe_core.kernels import client_spec_hash

    return client_spec_hash(kernel_id)


def _expected_inputs(kernel_id: str) -> list[tuple[str, tuple[int, ...], int]]:
    from blindframe.fhe_core.kernels import expected_inputs

    return expected_inputs(kernel_id)


def _tile_inputs(kernel_id: str) -> tuple[tuple[Any, ...], dict[str, Any], int]:
    """A representative tile of the sample scene: its plaintext inputs, the public description
    of a 64 x 64 job of the kernel (the tile's clear argument derives from it, as on a worker),
    its task index."""
    from blindframe.fhe_core import sample
    from blindframe.fhe_core.jobs import PublicJob
    from blindframe.fhe_core.kernels import get_kernel
    from blindframe.fhe_core.tiling import split_tiles, tile_grid

    frame = (64, 64)
    tasks = tile_grid(frame, get_kernel(kernel_id).tile_hw).count
    if kernel_id == "volume@1":
        job = PublicJob(kernel_id, dict(sample.SAMPLE_CAMERA), frame, tasks, True)
        return (sample.sample_volume(),), job.to_json(), 27
    if kernel_id == "shade@1":
        normals, albedo = sample.sample_gbuffer(frame)
        grid = tile_grid(frame, (8, 8))
        planes = (split_tiles(grid, normals)[27], split_tiles(grid, albedo)[27])
        job = PublicJob(kernel_id, dict(sample.SAMPLE_LIGHT), frame, tasks, False)
        return planes, job.to_json(), 27
    vol_frame = sample._plain_volume(frame) >> 2
    grid = tile_grid(frame, (8, 8), 1)
    job = PublicJob(kernel_id, dict(sample.SAMPLE_FILTER), frame, tasks, False)
    return (split_tiles(grid, vol_frame)[27],), job.to_json(), 27


def _run(
    job: dict[str, Any],
    inp: Path,
    keys: Path,
    tile: int,
    out_dir: Path,
    *,
    threads: int | None = None,
    fft_plan: str | None = None,
) -> dict[str, Any]:
    """One tile (a lease of one) in a fresh sandbox child; the plan it ran with, what pinning
    cost, and where its OUTPUT bundle is (``path``)."""
    from blindframe.fhe_core.sandbox import LEASE, lease_request, run_in_child

    out_dir.mkdir(parents=True, exist_ok=True)
    res = run_in_child(
        LEASE,
        lease_request(job, [tile], [inp], keys, out_dir, report_plan=True),
        threads=threads,
        timeout_s=900,
        fft_plan=fft_plan,
    )
    (done,) = res.answer["tiles"]
    return {
        "plan": res.answer["fft_plan"],
        "seconds": res.seconds,
        "tile_seconds": float(done["seconds"]),
        "attempts": res.plan_attempts,
        "pin_seconds": res.pin_seconds,
        "path": done["path"],
    }


class _Hog:
    """A busy-looping process: CPU contention while FFT plans are measured and used."""

    def __init__(self) -> None:
        import subprocess

        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _pair_stats(streams: list[U64Array]) -> dict[str, Any]:
    pairs = list(itertools.combinations(range(len(streams)), 2))
    identical = sum(1 for i, j in pairs if np.array_equal(streams[i], streams[j]))
    flagged = sum(1 for i, j in pairs if disagree(streams[i], streams[j]))
    far = [
        float(np.mean(torus_distance(streams[i], streams[j]) > np.uint64(AGREEMENT_TOLERANCE)))
        for i, j in pairs
        if not np.array_equal(streams[i], streams[j])
    ]
    return {
        "pairs": len(pairs),
        "identical_pairs": identical,
        "pairs_flagged_by_rule": flagged,
        "far_fraction_of_other_pairs": [round(min(far), 4), round(max(far), 4)] if far else [],
    }


@dataclass(frozen=True)
class _MeasuredTile:
    """The tile every run of :func:`measure` computes, encrypted under the measured key set."""

    kernel_id: str
    client: KernelClient
    plain: tuple[Any, ...]
    job: dict[str, Any]
    index: int
    clear: IntArray
    # The volume kernel's input is the whole volume, shared by every tile (encrypted with
    # NO_TILE), so another tile's output needs no new input; other kernels take per-tile planes.
    shared: bool
    bundle: bytes
    input_path: Path
    eval_keys: Path


def _prepare_tile(kernel_id: str, keys: Path, workdir: Path) -> _MeasuredTile:
    """Encrypt the representative tile under ``keys`` and write its INPUT bundle to ``workdir``."""
    from blindframe.fhe_core.client import KernelClient
    from blindframe.fhe_core.jobs import PublicJob, task_clear_args
    from blindframe.fhe_core.keys import evaluation_keys_path

    client = KernelClient(kernel_id, keys)
    plain, job, tile = _tile_inputs(kernel_id)
    clear = task_clear_args(PublicJob.from_json(job), tile)
    shared = kernel_id == "volume@1"
    bundle = client.encrypt(*plain, tile_index=0xFFFFFFFF if shared else tile)
    inp = workdir / "input.bundle"
    inp.write_bytes(bundle)
    eval_path = evaluation_keys_path(kernel_id, keys)
    return _MeasuredTile(kernel_id, client, plain, job, tile, clear, shared, bundle, inp, eval_path)


def _run_phases(
    tile: _MeasuredTile,
    runs: int,
    threads: Sequence[int],
    workdir: Path,
    target: str,
    contention: bool,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[bytes]]]:
    """Run the tile ``runs`` times unpinned, then ``runs`` times pinned to ``target``; check each
    output decrypts to the plaintext twin and print one JSON line per run. Returns each phase's
    rows and its OUTPUT bundles."""
    phases: dict[str, list[dict[str, Any]]] = {"unpinned": [], "pinned": []}
    outputs: dict[str, list[bytes]] = {"unpinned": [], "pinned": []}
    for phase in ("unpinned", "pinned"):
        hog = None
        for run in range(runs):
            if contention and run == runs // 2:
                hog = _Hog()
            row = _run(
                tile.job,
                tile.input_path,
                tile.eval_keys,
                tile.index,
                workdir / f"{phase}-{run}",
                threads=threads[run % len(threads)],
                fft_plan=target if phase == "pinned" else None,
            )
            row["contention"] = hog is not None
            data = Path(row.pop("path")).read_bytes()
            row["output"] = hashlib.sha256(data).hexdigest()[:12]
            got = tile.client.decrypt(data, tile_index=tile.index)
            assert np.array_equal(got, tile.client.kernel.twin(tuple(tile.plain), tile.clear)), (
                "honest run wrong"
            )
            phases[phase].append(row)
            outputs[phase].append(data)
            print(json.dumps({"kernel": tile.kernel_id, "phase": phase, **row}), flush=True)
        if hog is not None:
            hog.stop()
    return phases, outputs


def _lazy_reference_outputs(
    tile: _MeasuredTile, other_keys: Path, workdir: Path
) -> tuple[Path, Path]:
    """OUTPUT bundles a lazy worker could hand in instead of computing this tile: a second tile
    (same keys), and the same tile under another key set."""
    from blindframe.fhe_core.client import KernelClient
    from blindframe.fhe_core.keys import evaluation_keys_path

    if tile.shared:
        other_tile = _run(
            tile.job, tile.input_path, tile.eval_keys, tile.index + 1, workdir / "other-tile"
        )
    else:
        # Per-tile inputs: a "second tile" is the same planes shuffled, encrypted afresh.
        rng = np.random.default_rng(7)
        shuffled = tuple(rng.permutation(p.reshape(-1)).reshape(p.shape) for p in tile.plain)
        inp_b = workdir / "input-b.bundle"
        inp_b.write_bytes(tile.client.encrypt(*shuffled, tile_index=tile.index))
        other_tile = _run(tile.job, inp_b, tile.eval_keys, tile.index, workdir / "other-tile")
    other_client = KernelClient(tile.kernel_id, other_keys)
    inp_o = workdir / "input-other.bundle"
    inp_o.write_bytes(
        other_client.encrypt(*tile.plain, tile_index=0xFFFFFFFF if tile.shared else tile.index)
    )
    other_key_run = _run(
        tile.job,
        inp_o,
        evaluation_keys_path(tile.kernel_id, other_keys),
        tile.index,
        workdir / "other-keys",
    )
    return Path(other_tile["path"]), Path(other_key_run["path"])


def _lazy_report(
    tile: _MeasuredTile, reference: U64Array, other_tile_out: Path, other_key_out: Path
) -> dict[str, dict[str, Any]]:
    """How far each lazy result is from an honest one, and how many leaves prove it."""
    from blindframe.fhe_core.merkle import ciphertext_coefficients

    lazy = _lazy_streams(
        tile.kernel_id,
        reference,
        tile.bundle,
        ciphertext_coefficients(tile.kernel_id, other_tile_out.read_bytes()),
        ciphertext_coefficients(tile.kernel_id, other_key_out.read_bytes()),
        np.random.default_rng(11),
    )
    return {
        name: {
            "far_fraction": float(
                np.mean(torus_distance(reference, s) > np.uint64(AGREEMENT_TOLERANCE))
            ),
            "leaves_to_prove": leaves_to_prove(reference, s),
        }
        for name, s in lazy.items()
    }


def _unpinned_summary(
    rows: list[dict[str, Any]], streams: list[U64Array], target: str
) -> dict[str, Any]:
    return {
        "distinct_outputs": len({r["output"] for r in rows}),
        "distinct_plans": len({r["plan"] for r in rows}),
        "runs_on_target_plan": sum(1 for r in rows if r["plan"] == target),
        "seconds": [round(r["seconds"], 2) for r in rows],
        **_pair_stats(streams),
    }


def _pinned_summary(
    rows: list[dict[str, Any]], outputs: list[bytes], streams: list[U64Array]
) -> dict[str, Any]:
    attempts = [row["attempts"] for row in rows]
    return {
        "distinct_outputs": len({r["output"] for r in rows}),
        "bit_identical_bundles": len(set(outputs)) == 1,
        "attempts": attempts,
        "attempts_mean": round(float(np.mean(attempts)), 2),
        "attempts_max": max(attempts),
        "pin_seconds": [round(r["pin_seconds"], 2) for r in rows],
        "seconds_per_attempt": round(
            sum(r["pin_seconds"] for r in rows) / max(1, sum(attempts)), 3
        ),
        "seconds": [round(r["seconds"], 2) for r in rows],
        **_pair_stats(streams),
    }


def _plan_output_mapping(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether plan and output determine each other across all runs, and which plan gave what."""
    plan_outputs: dict[str, set[str]] = {}
    output_plans: dict[str, set[str]] = {}
    for row in rows:
        plan_outputs.setdefault(row["plan"], set()).add(row["output"])
        output_plans.setdefault(row["output"], set()).add(row["plan"])
    return {
        "plans_with_several_outputs": sum(1 for v in plan_outputs.values() if len(v) > 1),
        "outputs_with_several_plans": sum(1 for v in output_plans.values() if len(v) > 1),
        "plan_to_output": {p: sorted(v) for p, v in plan_outputs.items()},
    }


def measure(
    kernel_id: str, runs: int, threads: Sequence[int], workdir: Path, *, contention: bool = True
) -> dict[str, Any]:
    """Run one tile ``runs`` times unpinned, then ``runs`` times pinned to the plan
    :func:`plans.choose_plan` picks, each in a separate process (cycling ``threads``; the second
    half of each phase beside a busy-looping process when ``contention``); compare outputs."""
    from blindframe.fhe_core.keys import generate_keys
    from blindframe.fhe_core.merkle import ciphertext_coefficients
    from blindframe.fhe_core.plans import survey_kernel

    keys, other = workdir / "keys", workdir / "other-keys"
    generate_keys(kernel_id, keys)
    generate_keys(kernel_id, other)
    tile = _prepare_tile(kernel_id, keys, workdir)
    survey_seconds = time.perf_counter()
    survey = survey_kernel(kernel_id)
    survey_seconds = time.perf_counter() - survey_seconds
    target = str(survey.mode())
    phases, outputs = _run_phases(tile, runs, threads, workdir, target, contention)
    other_tile_out, other_key_out = _lazy_reference_outputs(tile, other, workdir)
    streams = {k: [ciphertext_coefficients(kernel_id, o) for o in v] for k, v in outputs.items()}
    reference = streams["pinned"][0]
    lazy_report = _lazy_report(tile, reference, other_tile_out, other_key_out)
    return {
        "kernel": kernel_id,
        "runs_per_phase": runs,
        "threads": list(threads),
        "contention": contention,
        "coefficients_per_tile": len(reference),
        "survey": survey.to_json(),
        "survey_wall_seconds": round(survey_seconds, 2),
        "target_plan": target,
        "target_share_in_survey": round(survey.share(survey.mode()), 3),
        "unpinned": _unpinned_summary(phases["unpinned"], streams["unpinned"], target),
        "pinned": _pinned_summary(phases["pinned"], outputs["pinned"], streams["pinned"]),
        **_plan_output_mapping(phases["unpinned"] + phases["pinned"]),
        "lazy": lazy_report,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m blindframe.fhe_core.agreement [--runs 20] [--kernels ...] [--out FILE]``."""
    parser = argparse.ArgumentParser(prog="python -m blindframe.fhe_core.agreement")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", default="1,2,1,2,2")
    parser.add_argument("--kernels", default="volume@1,shade@1,post@1")
    parser.add_argument("--no-contention", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    results = []
    for kernel_id in args.kernels.split(","):
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bf-agreement-") as tmp:
            result = measure(
                kernel_id, args.runs, threads, Path(tmp), contention=not args.no_contention
            )
        result["wall_seconds"] = round(time.perf_counter() - start, 1)
        print(json.dumps(result, indent=1), flush=True)
        results.append(result)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
