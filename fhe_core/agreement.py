"""Replica agreement: the noise-tolerant rule the contract applies, and the script that measured it.

Honest replicas of a tile never produce the same bytes (Concrete's FFT picks its algorithm by
timing at start-up), but their torus coefficients stay close. Two results *disagree* when at least
``AGREEMENT_FAR_COUNT`` coefficient pairs of the opened leaves are farther apart than
``AGREEMENT_TOLERANCE`` on the torus. Both numbers go to the contract at deployment; the
measurement behind them is in ``AGREEMENT.md`` (``python -m blindframe.fhe_core.agreement``
reproduces it).
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
from pathlib import Path
from typing import Any

import numpy as np

from blindframe.fhe_core.merkle import U64Array, torus_distance

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


def _tile_inputs(kernel_id: str) -> tuple[tuple[Any, ...], Any, Any, int]:
    """A representative tile of the sample scene: plaintext inputs, clear args (two tiles)."""
    from blindframe.fhe_core import sample
    from blindframe.fhe_core.server import tile_clear_args
    from blindframe.fhe_core.tiling import split_tiles, tile_grid

    frame = (64, 64)
    if kernel_id == "volume@1":
        vol = sample.sample_volume()
        a = tile_clear_args(kernel_id, sample.SAMPLE_CAMERA, frame, 27)
        b = tile_clear_args(kernel_id, sample.SAMPLE_CAMERA, frame, 28)
        return (vol,), a, b, 27
    if kernel_id == "shade@1":
        normals, albedo = sample.sample_gbuffer(frame)
        grid = tile_grid(frame, (8, 8))
        planes = (split_tiles(grid, normals)[27], split_tiles(grid, albedo)[27])
        clear = tile_clear_args(kernel_id, sample.SAMPLE_LIGHT, frame, 0)
        return planes, clear, clear, 27
    vol_frame = sample._plain_volume(frame) >> 2
    grid = tile_grid(frame, (8, 8), 1)
    clear = tile_clear_args(kernel_id, sample.SAMPLE_FILTER, frame, 0)
    return (split_tiles(grid, vol_frame)[27],), clear, clear, 27


def measure(kernel_id: str, runs: int, threads: Sequence[int], workdir: Path) -> dict[str, Any]:
    """Run one tile ``runs`` times in separate processes (cycling ``threads``); compare streams."""
    from blindframe.fhe_core.client import KernelClient
    from blindframe.fhe_core.keys import evaluation_keys_path, generate_keys
    from blindframe.fhe_core.merkle import coefficient_stream
    from blindframe.fhe_core.sandbox import run_tile_sandboxed

    keys, other = workdir / "keys", workdir / "other-keys"
    generate_keys(kernel_id, keys)
    generate_keys(kernel_id, other)
    client = KernelClient(kernel_id, keys)
    plain, clear, clear_b, tile = _tile_inputs(kernel_id)
    shared = kernel_id == "volume@1"
    bundle = client.encrypt(*plain, tile_index=0xFFFFFFFF if shared else tile)
    inp = workdir / "input.bundle"
    inp.write_bytes(bundle)
    streams, seconds = [], []
    for run in range(runs):
        out = workdir / f"out-{run}.bundle"
        res = run_tile_sandboxed(
            kernel_id,
            inp,
            evaluation_keys_path(kernel_id, keys),
            clear,
            tile,
            out,
            threads=threads[run % len(threads)],
        )
        seconds.append(res.seconds)
        data = out.read_bytes()
        streams.append(coefficient_stream(kernel_id, data))
        got = client.decrypt(data, tile_index=tile)
        assert np.array_equal(got, client.kernel.twin(tuple(plain), clear)), "honest run wrong"
    # A second tile (same keys) and the same tile under another key set, for the lazy cases.
    other_tile_out = workdir / "other-tile.bundle"
    if shared:
        run_tile_sandboxed(
            kernel_id, inp, evaluation_keys_path(kernel_id, keys), clear_b, tile + 1, other_tile_out
        )
    else:
        rng = np.random.default_rng(7)
        shuffled = tuple(rng.permutation(p.reshape(-1)).reshape(p.shape) for p in plain)
        inp_b = workdir / "input-b.bundle"
        inp_b.write_bytes(client.encrypt(*shuffled, tile_index=tile))
        run_tile_sandboxed(
            kernel_id, inp_b, evaluation_keys_path(kernel_id, keys), clear, tile, other_tile_out
        )
    other_client = KernelClient(kernel_id, other)
    inp_o = workdir / "input-other.bundle"
    inp_o.write_bytes(other_client.encrypt(*plain, tile_index=0xFFFFFFFF if shared else tile))
    other_key_out = workdir / "other-keys.bundle"
    run_tile_sandboxed(
        kernel_id, inp_o, evaluation_keys_path(kernel_id, other), clear, tile, other_key_out
    )
    distinct = len({s.tobytes() for s in streams})
    pairs = list(itertools.combinations(range(runs), 2))
    exceed = {k: [] for k in range(40, 64)}  # type: dict[int, list[int]]
    all_d = []
    for i, j in pairs:
        d = torus_distance(streams[i], streams[j])
        all_d.append(d)
        for k in exceed:
            exceed[k].append(int(np.count_nonzero(d > np.uint64(1 << k))))
    dist = np.concatenate(all_d)
    nonzero = dist[dist > 0]
    log2 = np.log2(nonzero.astype(np.float64)) if len(nonzero) else np.zeros(1)
    rng = np.random.default_rng(11)
    lazy = _lazy_streams(
        kernel_id,
        streams[0],
        bundle,
        coefficient_stream(kernel_id, other_tile_out.read_bytes()),
        coefficient_stream(kernel_id, other_key_out.read_bytes()),
        rng,
    )
    lazy_report = {}
    for name, stream in lazy.items():
        d = torus_distance(streams[0], stream)
        lazy_report[name] = {
            "far_fraction": float(np.mean(d > np.uint64(AGREEMENT_TOLERANCE))),
            "leaves_to_prove": leaves_to_prove(streams[0], stream),
        }
    honest_far = [exceed[58][n] for n in range(len(pairs))]
    identical_pairs = sum(1 for i, j in pairs if np.array_equal(streams[i], streams[j]))
    rule_flags = sum(1 for i, j in pairs if disagree(streams[i], streams[j]))
    return {
        "kernel": kernel_id,
        "runs": runs,
        "threads": list(threads),
        "coefficients_per_tile": len(streams[0]),
        "distinct_outputs": distinct,
        "pairs": len(pairs),
        "seconds_per_run": [round(s, 2) for s in seconds],
        "identical_fraction": float(np.mean(dist == 0)),
        "log2_distance_quantiles": {
            q: round(float(np.quantile(log2, q / 100)), 2) for q in (50, 90, 99, 99.9, 99.99, 100)
        },
        "max_per_pair_exceeding_2^k": {k: max(v) for k, v in exceed.items()},
        "mean_per_pair_exceeding_2^k": {k: round(float(np.mean(v)), 2) for k, v in exceed.items()},
        "honest_max_far_at_tolerance": max(honest_far),
        "identical_pairs": identical_pairs,
        "honest_pairs_flagged_by_rule": rule_flags,
        "output_hashes": [hashlib.sha256(s.tobytes()).hexdigest()[:12] for s in streams],
        "lazy": lazy_report,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m blindframe.fhe_core.agreement [--runs 20] [--kernels ...] [--out FILE]``."""
    parser = argparse.ArgumentParser(prog="python -m blindframe.fhe_core.agreement")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--kernels", default="volume@1,shade@1,post@1")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    results = []
    for kernel_id in args.kernels.split(","):
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bf-agreement-") as tmp:
            result = measure(kernel_id, args.runs, threads, Path(tmp))
        result["wall_seconds"] = round(time.perf_counter() - start, 1)
        print(json.dumps(result, indent=1), flush=True)
        results.append(result)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
