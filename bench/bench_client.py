"""The artist's own cost per frame: keygen, FFT plan, encrypt, upload, verify, decrypt.

Keygen, plan, encryption and upload are what the client measured while posting the demo run's
job (its job directory's ``job.json``: ``seconds``). Verification and decryption are measured
here again on that job's real results, with the client's own code, without the chain: each
downloaded lease result opened against its revealed root (Merkle trees rebuilt), every tile
decrypted and compared with the plaintext twin (verify; loading the keys, once per process, is
timed apart), then the frame decrypted from one
result per task, assembled and written as a PNG (decrypt). Needs the ``demo`` run of
``bench_demo`` first (``bench/out/demo-demo``).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.figures import out_dir, record


def _job_dir(home: Path) -> Path:
    jobs = sorted(p for p in (home / "jobs").glob("*-*") if (p / "job.json").is_file())
    if not jobs:
        raise SystemExit(f"no job in {home}: run `python -m bench demo` first")
    return jobs[-1]


def measure(home: Path) -> dict[str, Any]:
    """The client's costs of the last job of the demo home ``home``."""
    from blindframe.client._frames import write_frame_png
    from blindframe.coordinator.manifest import Manifest
    from blindframe.coordinator.results import LeaseResult, open_lease_result
    from blindframe.fhe_core.artist_jobs import JobSecrets, decrypt_job
    from blindframe.fhe_core.client import KernelClient, check_against_twin
    from blindframe.fhe_core.jobs import PublicJob, task_clear_args

    jobdir = _job_dir(home)
    state = json.loads((jobdir / "job.json").read_text())
    verdicts = json.loads((jobdir / "verdicts.json").read_text())
    manifest = Manifest.parse((jobdir / "manifest.json").read_bytes())
    public = PublicJob.from_json(manifest.job)
    secrets = JobSecrets.load(jobdir / "secrets.npz")
    client = KernelClient(manifest.kernel, home / "keys")
    tasks = {t.task_index: t for t in secrets.tasks}
    plain = (secrets.volume,) if public.shared_input else None

    leases = [lease for lease in verdicts["leases"].values() if lease.get("file")]
    if not leases:
        raise SystemExit(f"{jobdir} holds no verified result")

    def opened(lease: dict[str, Any]) -> LeaseResult:
        """A downloaded result, opened against its revealed root (trees rebuilt)."""
        return open_lease_result(
            (jobdir / "outputs" / lease["file"]).read_bytes(),
            kernel=manifest.kernel,
            job_id=int(state["jobId"]),
            lease_id=int(lease["leaseId"]),
            first_tile=int(lease["firstTile"]),
            count=int(lease["count"]),
            leaf_depth=manifest.leaf_depth,
            root=bytes.fromhex(lease["root"].removeprefix("0x")),
        )

    # Loading the keys (once per process, in the client too) is timed apart from the per-frame
    # work: a first decryption loads them.
    started = time.perf_counter()
    result = opened(leases[0])
    client.decrypt(result.output(int(leases[0]["firstTile"])), tile_index=leases[0]["firstTile"])
    load_s = time.perf_counter() - started

    started = time.perf_counter()
    outputs: dict[int, bytes] = {}
    checked = 0
    for lease in leases:
        result = opened(lease)
        for tile in range(lease["firstTile"], lease["firstTile"] + lease["count"]):
            output = result.output(tile)
            got = client.decrypt(output, tile_index=tile)
            task = tasks[tile]
            inputs = plain if plain is not None else secrets.plain[task.source_tile]
            check_against_twin(
                client.kernel, got, inputs, task_clear_args(public, tile), f"task {tile}"
            )
            outputs.setdefault(tile, output)
            checked += 1
    verify_s = time.perf_counter() - started

    started = time.perf_counter()
    frame = decrypt_job(client, public, secrets, outputs, check_all=False)
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        write_frame_png(Path(tmp) / "frame.png", frame, client.kernel.out_max)
    decrypt_s = time.perf_counter() - started

    # The fullest tile of the largest result (border tiles are mostly zero padding, hashed free).
    largest = max(leases, key=lambda lease: int(lease["count"]))
    result = opened(largest)
    fullest = max(result.tiles, key=lambda t: int(np.count_nonzero(result.stream(t))))
    tree_s, baseline_tree_s = _tile_tree_seconds(result.stream(fullest), manifest.leaf_depth)

    pixels = int(secrets.real_hw[0]) * int(secrets.real_hw[1])
    seconds = {k: float(v) for k, v in dict(state.get("seconds", {})).items()}
    seconds.update({"load keys": load_s, "verify": verify_s, "decrypt": decrypt_s})
    return {
        "frame": list(secrets.real_hw),
        "tileReplicasChecked": checked,
        "seconds": seconds,
        "usPerPixel": {k: 1e6 * v / pixels for k, v in seconds.items()},
        "tileTree": {"seconds": tree_s, "baselineSeconds": baseline_tree_s},
    }


def _tile_tree_seconds(stream: Any, depth: int) -> tuple[float, float]:
    """One tile's Merkle tree, best of 3: the product's (``TileTree.build``) and the baseline
    it replaced, the same walk (zero subtrees skipped) through pycryptodome's keccak (the roots
    must agree)."""
    from Crypto.Hash import keccak

    from blindframe.fhe_core.merkle import TileTree, leaves_of

    def hash_(data: bytes) -> bytes:
        return bytes(keccak.new(digest_bits=256, data=data).digest())

    def pycryptodome_root() -> bytes:
        zeros = [hash_(bytes(33))]
        for _ in range(depth):
            zeros.append(hash_(b"\x01" + zeros[-1] + zeros[-1]))
        leaves = leaves_of(stream, depth)
        nonzero = leaves.any(axis=1).tolist()
        level = [
            hash_(b"\x00" + bytes(leaf)) if nz else zeros[0]
            for leaf, nz in zip(leaves, nonzero, strict=True)
        ]
        for height in range(depth):
            zero = zeros[height]
            level = [
                zeros[height + 1]
                if level[i] == zero and level[i + 1] == zero
                else hash_(b"\x01" + level[i] + level[i + 1])
                for i in range(0, len(level), 2)
            ]
        return level[0]

    def best(build: Any) -> tuple[float, bytes]:
        times, root = [], b""
        for _ in range(3):
            started = time.perf_counter()
            root = build()
            times.append(time.perf_counter() - started)
        return min(times), root

    ours, root = best(lambda: TileTree.build(stream, depth).root)
    baseline, baseline_root = best(pycryptodome_root)
    if root != baseline_root:
        raise SystemExit("the baseline tile tree gave another root: the bench is wrong")
    return ours, baseline


def main() -> None:
    figures = measure(out_dir() / "demo-demo")
    for step, spent in figures["seconds"].items():
        print(f"{step:<8} {spent:8.2f} s  ({figures['usPerPixel'][step]:.0f} us per frame pixel)")
    tree = figures["tileTree"]
    print(
        f"tile tree {tree['seconds']:.3f} s against {tree['baselineSeconds']:.3f} s "
        f"(pycryptodome), {tree['seconds'] / tree['baselineSeconds']:.2f}x"
    )
    record("client", figures)


if __name__ == "__main__":
    main()
