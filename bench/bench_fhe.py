"""FHE render kernels: cost per pixel, sizes, keygen; ratios to a naive kernel and to the twin.

For each kernel of the registry (one 8x8 tile of the sample scene; a gathered kernel's tile four
times over, as a lease runs them on its expanded input, per tile): lookups per pixel and their
precision, ms per pixel (best of two runs, all cores this process has), input bytes per voxel or
pixel, output bytes per pixel, evaluation-key size, keygen time; then in the same run the same
figures for a naive version of the kernel (8-bit lookups everywhere, no rounding; an 8-pixel
tile, its cost per pixel is the same) and the numpy twin's time. Last, the whole 64x64 sample
frame through ``volume@1`` (the 3-minute target). Prints a markdown table (bench/RESULTS.md).

``surface@1`` (the 64^3 knot, grey, lit by the sample light) costs about a second a pixel:
it runs its tile 27 once, after expanding the bricks the tile reads (timed apart), and has no
naive twin (its naive version is the issue's 486 ms/px exact first hit on 16 samples).
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from blindframe.fhe_core import artist_jobs, jobs, sample
from blindframe.fhe_core.client import KernelClient
from blindframe.fhe_core.kernels import (
    KERNEL_IDS,
    configuration,
    get_kernel,
    import_concrete,
)
from blindframe.fhe_core.keys import export_evaluation_keys, generate_keys
from blindframe.fhe_core.server import expand_input, run_gathered_tiles, run_tile
from blindframe.fhe_core.tiling import split_tiles, tile_grid

NAIVE_PIXELS = 8
# Tiles per timed lease of a gathered kernel (ms/px is per tile of it).
LEASE_TILES = 4


def _tile(kernel_id: str) -> tuple[tuple[np.ndarray, ...], np.ndarray, int]:
    """The sample scene's tile 27 (of a 64x64 frame): plaintext inputs and clear argument."""
    from blindframe.fhe_core.server import tile_clear_args

    frame = (64, 64)
    if kernel_id == "volume@1":
        clear = tile_clear_args(kernel_id, sample.SAMPLE_CAMERA, frame, 27)
        return (sample.sample_volume(),), clear, 0xFFFFFFFF
    kernel = get_kernel(kernel_id)
    grid = tile_grid(frame, kernel.tile_hw, kernel.halo)
    if kernel_id == "shade@1":
        planes = sample.sample_gbuffer(frame)
        params: dict[str, Any] = sample.SAMPLE_LIGHT
    else:
        planes = (sample._plain_volume(frame) >> 2,)
        params = sample.SAMPLE_FILTER
    tiles = tuple(split_tiles(grid, p)[27] for p in planes)
    return tiles, tile_clear_args(kernel_id, params, frame, 0), 27


def _naive(kernel_id: str) -> tuple[Any, list[tuple[Any, ...]], tuple[Any, ...]]:
    """8-bit lookups everywhere, no rounding: the same computation with wide values."""
    fhe = import_concrete()
    rng = np.random.default_rng(0)
    t8 = fhe.LookupTable([(i * 7) % 256 for i in range(256)])
    n = NAIVE_PIXELS
    if kernel_id == "volume@1":
        # 4-bit densities, weights summing to 17: an 8-bit ray sum, one 8-bit lookup.
        def volume(vol: Any, w: Any) -> Any:
            return t8[w @ vol]

        def weights() -> np.ndarray:
            w = np.zeros((n, 4096), dtype=np.int64)
            for row in range(n):
                w[row, rng.choice(4096, 17, replace=False)] = 1
            return w

        inputset = [(np.full(4096, 15), weights())] + [
            (rng.integers(0, 16, 4096), weights()) for _ in range(3)
        ]
        return fhe.Compiler(volume, {"vol": "encrypted", "w": "clear"}), inputset, inputset[1]
    if kernel_id == "shade@1":
        # normals in [-15, 15] against lights with |L|_1 <= 4: 8-bit signed dots, 8-bit lookups.
        def shade(normals: Any, albedo: Any, lights: Any) -> Any:
            dl = normals[0] * lights[0, 0] + normals[1] * lights[0, 1] + normals[2] * lights[0, 2]
            dh = normals[0] * lights[1, 0] + normals[1] * lights[1, 1] + normals[2] * lights[1, 2]
            d = fhe.LookupTable([min(max(i if i < 128 else i - 256, 0), 63) for i in range(256)])[
                dl
            ]
            s = fhe.LookupTable([(i % 64) // 4 for i in range(256)])[dh]
            return fhe.LookupTable([(i * 3) % 128 for i in range(256)])[albedo * 64 + d] + s

        shape = (3, n)
        inputset = [
            (np.full(shape, sg * 15), np.full(shape, 3), np.array([[4, 0, 0], [0, 4, 0]]) * sl)
            for sg in (1, -1)
            for sl in (1, -1)
        ] + [
            (
                rng.integers(-15, 16, shape),
                rng.integers(0, 4, shape),
                np.array([[1, 2, 1], [2, 1, 1]]),
            )
        ]
        return (
            fhe.Compiler(shade, {"normals": "encrypted", "albedo": "encrypted", "lights": "clear"}),
            inputset,
            inputset[-1],
        )

    # post: 3-tap rows of 4-bit pixels, an 8-bit sum read whole by an 8-bit lookup.
    def post(img: Any, taps: Any) -> Any:
        acc = img[0:n] * taps[0] + img[1 : n + 1] * taps[1] + img[2 : n + 2] * taps[2]
        return fhe.LookupTable([(i * 5) % 256 for i in range(256)])[acc]

    inputset = [
        (np.full(n + 2, 15), np.array([8, 0, -8])),
        (np.full(n + 2, 15), np.array([-8, 0, 8])),
    ]
    inputset += [(rng.integers(0, 16, n + 2), np.array([1, 6, 1])) for _ in range(3)]
    return fhe.Compiler(post, {"img": "encrypted", "taps": "clear"}), inputset, inputset[-1]


def _time_naive(kernel_id: str) -> dict[str, float]:
    compiler, inputset, sample_args = _naive(kernel_id)
    circuit = compiler.compile(inputset, configuration())
    start = time.perf_counter()
    circuit.keygen()
    keygen = time.perf_counter() - start
    encrypted = circuit.encrypt(*sample_args[:-1], None)
    encrypted = encrypted if isinstance(encrypted, tuple) else (encrypted,)
    args = (
        [*encrypted[:-1], sample_args[-1]]
        if len(encrypted) > 1
        else [encrypted[0], sample_args[-1]]
    )
    best = min(_timed(lambda: circuit.run(*args)) for _ in range(2))
    pixels = NAIVE_PIXELS * (3 if kernel_id == "shade@1" else 1)
    return {
        "ms_per_pixel": 1000 * best / NAIVE_PIXELS,
        "pbs_per_pixel": circuit.programmable_bootstrap_count / NAIVE_PIXELS,
        "eval_mb": len(circuit.client.evaluation_keys.serialize()) / 1e6,
        "keygen_s": keygen,
        "out_bytes_per_pixel": len(circuit.run(*args).serialize()) / NAIVE_PIXELS,
        "pixels": pixels,
    }


def _dense_volume() -> float:
    """ms/px of ``volume@1`` as it was before the per-tile gather: ``tf[W @ vol]`` with the tile's
    dense 64x4096 weights, the seeded volume expanded inside every tile's run (same tile, same
    configuration, decrypted output checked against the twin)."""
    from blindframe.fhe_core import _volume

    fhe = import_concrete()
    kernel = get_kernel("volume@1")
    (vol,), samples, _ = _tile("volume@1")
    dense = np.zeros((64, 4096), dtype=np.int64)
    np.add.at(dense, (np.arange(64)[:, None], samples[0]), samples[1])
    table = fhe.LookupTable([int(x) for x in _volume.TRANSFER])

    def circuit(vol: Any, weights: Any) -> Any:
        return table[weights @ vol].reshape(_volume.TILE)

    rng = np.random.default_rng(0)
    heavy = np.zeros((64, 4096), dtype=np.int64)
    heavy[:, 0] = _volume.ACC_MAX  # the widest weight the bounds allow, for the clear's width
    inputset = [(np.ones(4096, dtype=np.int64), heavy), (np.ones(4096, dtype=np.int64), dense)]
    inputset += [(rng.integers(0, 2, 4096), dense) for _ in range(3)]
    compiled = fhe.Compiler(circuit, {"vol": "encrypted", "weights": "clear"}).compile(
        inputset, configuration()
    )
    compiled.keygen()
    enc = compiled.encrypt(vol, None)[0]
    best = min(_timed(lambda: compiled.run(enc, dense)) for _ in range(2))
    got = compiled.decrypt(compiled.run(enc, dense))
    assert np.array_equal(np.asarray(got), kernel.twin((vol,), samples))
    return 1000 * best / kernel.pixels_per_tile


def _surface_row(keys: Path) -> dict[str, Any]:
    """``surface@1`` on one tile: client encryption, the tile's bricks expanded, the tile run."""
    from blindframe.fhe_core import _surface
    from blindframe.fhe_core.keys import read_evaluation_keys
    from blindframe.fhe_core.server import BrickedInput, tile_clear_args

    kernel_id = "surface@1"
    kernel = get_kernel(kernel_id)
    info = generate_keys(kernel_id, keys)
    client = KernelClient(kernel_id, keys)
    ek = export_evaluation_keys(kernel_id, keys)
    ekd = read_evaluation_keys(kernel_id, ek)
    occupancy = sample.sample_density(_surface.GRID) >= 0.5
    grey = np.full((*occupancy.shape, 3), 0.8)
    baked = _surface.bake(occupancy, grey, sample.SAMPLE_LIGHT["light"])
    clear = tile_clear_args(kernel_id, sample.SAMPLE_CAMERA, (64, 64), 27)
    start = time.perf_counter()
    bundle = client.encrypt(baked.values)
    encrypt_s = time.perf_counter() - start
    expanded = expand_input(kernel_id, bundle, ekd)
    assert isinstance(expanded, BrickedInput)
    start = time.perf_counter()
    expanded.rows(clear[0].ravel())  # the tile's bricks, expanded (and the tile's template made)
    expand_s = time.perf_counter() - start
    start = time.perf_counter()
    ((_, out),) = run_gathered_tiles(kernel_id, expanded, ekd, [(27, clear)])
    best = time.perf_counter() - start
    got = client.decrypt(out, tile_index=27)
    assert np.array_equal(got, kernel.twin((baked.values,), clear))
    assert got.any(), "tile 27 should see the knot"
    px = kernel.pixels_per_tile
    twin = min(_timed(lambda: kernel.twin((baked.values,), clear)) for _ in range(5))
    ms = 1000 * best / px
    samples = _surface.SAMPLES
    return {
        "kernel": kernel_id,
        "lookups": " + ".join(f"{lk.per_pixel}x{lk.precision_bits}-bit" for lk in kernel.lookups),
        "pbs": kernel.bootstraps_per_pixel,
        "pbs_per_sample": kernel.bootstraps_per_pixel / samples,
        "ms": ms,
        "in_bytes": len(bundle) / _surface.GRID**3,
        "in_unit": "voxel",
        "out_bytes": len(out) / px,
        "eval_mb": len(ek) / 1e6,
        "keygen_s": info.keygen_seconds,
        "naive_ms": 0.0,
        "naive_pbs": 0.0,
        "naive_eval_mb": 0.0,
        "naive_keygen_s": 0.0,
        "vs_naive": 0.0,
        "twin_us": 1e6 * twin / px,
        "vs_twin": best / twin,
        "encrypt_s": encrypt_s,
        "bricks": len(expanded.expanded),
        "bricks_s": expand_s,
    }


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    warnings.filterwarnings("ignore")
    print(f"cores available: {len(os.sched_getaffinity(0))}, load average: {os.getloadavg()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-fhe-") as tmp:
        keys = Path(tmp)
        for kernel_id in KERNEL_IDS:
            kernel = get_kernel(kernel_id)
            if kernel.brick_values:
                rows.append(_surface_row(keys))
                print(rows[-1], flush=True)
                continue
            info = generate_keys(kernel_id, keys)
            client = KernelClient(kernel_id, keys)
            ek = export_evaluation_keys(kernel_id, keys)
            plain, clear, tile = _tile(kernel_id)
            bundle = client.encrypt(*plain, tile_index=tile)
            run_tile(kernel_id, bundle, ek, clear, tile_index=27)  # warm-up (FFT plans)
            from blindframe.fhe_core.keys import read_evaluation_keys

            ekd = read_evaluation_keys(kernel_id, ek)

            if kernel.gathered:
                # A worker's path: the shared input expanded once per job, then gathered per tile.
                expanded = expand_input(kernel_id, bundle, ekd)

                def gathered(
                    kid: str = kernel_id, e: Any = expanded, k: Any = ekd, c: Any = clear
                ) -> None:
                    # A lease's tiles (here tile 27, LEASE_TILES times) as a worker runs them:
                    # the next tile's samples gathered while the current one computes.
                    for _ in run_gathered_tiles(kid, e, k, [(27, c)] * LEASE_TILES):
                        pass

                once: Any = gathered
            else:

                def whole(
                    kid: str = kernel_id, b: bytes = bundle, k: Any = ekd, c: Any = clear
                ) -> None:
                    run_tile(kid, b, k, c, tile_index=27)

                once = whole
            best = min(_timed(once) for _ in range(2))
            if kernel.gathered:
                best /= LEASE_TILES
            out = run_tile(kernel_id, bundle, ekd, clear, tile_index=27)
            assert np.array_equal(client.decrypt(out, tile_index=27), kernel.twin(plain, clear))

            def twin_once(kern: Any = kernel, p: Any = plain, c: Any = clear) -> None:
                kern.twin(p, c)

            twin = min(_timed(twin_once) for _ in range(20))
            px = kernel.pixels_per_tile
            values_in = sum(int(np.prod(s.shape)) for s in kernel.enc)
            unit_in = values_in if kernel.name == "volume" else px
            # BENCH_NAIVE=0 leaves the naive kernels out: their 8-bit key sets take most of the run.
            naive = (
                _time_naive(kernel_id)
                if os.environ.get("BENCH_NAIVE", "1") != "0"
                else dict.fromkeys(("ms_per_pixel", "pbs_per_pixel", "eval_mb", "keygen_s"), 0.0)
            )
            ms = 1000 * best / px
            rows.append(
                {
                    "kernel": kernel_id,
                    "lookups": " + ".join(
                        f"{lk.per_pixel}x{lk.precision_bits}-bit" for lk in kernel.lookups
                    ),
                    "pbs": kernel.bootstraps_per_pixel,
                    "ms": ms,
                    "in_bytes": len(bundle) / unit_in,
                    "in_unit": "voxel" if kernel.name == "volume" else "pixel",
                    "out_bytes": len(out) / px,
                    "eval_mb": len(ek) / 1e6,
                    "keygen_s": info.keygen_seconds,
                    "naive_ms": naive["ms_per_pixel"],
                    "naive_pbs": naive["pbs_per_pixel"],
                    "naive_eval_mb": naive["eval_mb"],
                    "naive_keygen_s": naive["keygen_s"],
                    "vs_naive": naive["ms_per_pixel"] / ms if naive["ms_per_pixel"] else 0.0,
                    "twin_us": 1e6 * twin / px,
                    "vs_twin": best / twin,
                }
            )
            print(rows[-1], flush=True)
        # The whole 64x64 sample frame through volume@1 (in-process tiles, sequential).
        client = KernelClient("volume@1", keys)
        ek = export_evaluation_keys("volume@1", keys)
        job = artist_jobs.encrypt_volume_job(
            client, sample.sample_volume(), sample.SAMPLE_CAMERA, (64, 64), margin_tiles=0
        )
        from blindframe.fhe_core.keys import read_evaluation_keys

        ekd = read_evaluation_keys("volume@1", ek)
        start = time.perf_counter()
        expanded = expand_input("volume@1", job.inputs[0], ekd)
        expand_s = time.perf_counter() - start
        outputs = dict(
            run_gathered_tiles(
                "volume@1",
                expanded,
                ekd,
                [(t, jobs.task_clear_args(job.public, t)) for t in range(job.public.tasks)],
            )
        )
        frame_s = time.perf_counter() - start
        dense = _dense_volume()
        image = artist_jobs.decrypt_job(client, job.public, job.secrets, outputs)
        assert image.shape == (64, 64)
    print()
    print(
        "| kernel | lookups per pixel | PBS/px | ms/px | input B per | output B/px | eval keys MB "
        "| keygen s | naive ms/px (PBS/px, keys MB, keygen s) | naive / ours | ours / twin |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['kernel']} | {r['lookups']} | {r['pbs']} | {r['ms']:.1f} "
            f"| {r['in_bytes']:.1f} per {r['in_unit']} "
            f"| {r['out_bytes']:.0f} | {r['eval_mb']:.1f} | {r['keygen_s']:.1f} "
            f"| {r['naive_ms']:.1f} ({r['naive_pbs']:.0f}, {r['naive_eval_mb']:.0f}, "
            f"{r['naive_keygen_s']:.1f}) "
            f"| {r['vs_naive']:.1f}x | {r['vs_twin']:.0f}x (twin {r['twin_us']:.2f} us/px) |"
        )
    for r in rows:
        if "bricks" in r:
            print(
                f"\n{r['kernel']}: {r['pbs_per_sample']:.2f} PBS per ray sample; one tile (64 px, "
                f"64 samples each) read {r['bricks']} bricks of the 512, expanded in "
                f"{r['bricks_s']:.1f} s ({1000 * r['bricks_s'] / 64:.0f} ms/px more on the job's "
                f"first tiles over them); the client encrypts the grid in {r['encrypt_s']:.0f} s"
            )
    print()
    print(
        f"volume@1, 64x64 sample frame (64 tiles, one volume): {frame_s:.1f} s of FHE compute "
        f"(expanding the volume once: {expand_s:.1f} s)"
    )
    ours = float(next(r["ms"] for r in rows if r["kernel"] == "volume@1"))
    print(
        f"volume@1 before the gather (a 64x4096 product with the whole grid per tile, seeded "
        f"inputs expanded per tile), same tile, same run: {dense:.1f} ms/px; "
        f"now {ours:.1f} ms/px ({dense / ours:.2f}x faster)"
    )
    # For the run's one table (bench/report.py) and the network's ceiling (bench/ceiling.py):
    # a row's "baseline_ms" is today's path timed in the same run.
    from bench.figures import record

    for r in rows:
        if r["kernel"] == "volume@1":
            r["baseline_ms"] = dense
    record("fhe", {"rows": rows, "frame_s": frame_s, "expand_s": expand_s, "frame_tiles": 64})


if __name__ == "__main__":
    main()
