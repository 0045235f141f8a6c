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
    from blindframe.coordinator.results import open_lease_result
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
    # Loading the keys (once per process, in the client too) is timed apart from the per-frame
    # work: a first decryption loads them.
    started = time.perf_counter()
    first = (jobdir / "outputs" / leases[0]["file"]).read_bytes()
    result = open_lease_result(
        first,
        kernel=manifest.kernel,
        job_id=int(state["jobId"]),
        lease_id=int(leases[0]["leaseId"]),
        first_tile=int(leases[0]["firstTile"]),
        count=int(leases[0]["count"]),
        leaf_depth=manifest.leaf_depth,
        root=bytes.fromhex(leases[0]["root"].removeprefix("0x")),
    )
    client.decrypt(result.output(int(leases[0]["firstTile"])), tile_index=leases[0]["firstTile"])
    load_s = time.perf_counter() - started

    started = time.perf_counter()
    outputs: dict[int, bytes] = {}
    checked = 0
    for lease in leases:
        result = open_lease_result(
            (jobdir / "outputs" / lease["file"]).read_bytes(),
            kernel=manifest.kernel,
            job_id=int(state["jobId"]),
            lease_id=int(lease["leaseId"]),
            first_tile=int(lease["firstTile"]),
            count=int(lease["count"]),
            leaf_depth=manifest.leaf_depth,
            root=bytes.fromhex(lease["root"].removeprefix("0x")),
        )
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

    pixels = int(secrets.real_hw[0]) * int(secrets.real_hw[1])
    seconds = {k: float(v) for k, v in dict(state.get("seconds", {})).items()}
    seconds.update({"load keys": load_s, "verify": verify_s, "decrypt": decrypt_s})
    return {
        "frame": list(secrets.real_hw),
        "tileReplicasChecked": checked,
        "seconds": seconds,
        "usPerPixel": {k: 1e6 * v / pixels for k, v in seconds.items()},
    }


def main() -> None:
    figures = measure(out_dir() / "demo-demo")
    for step, spent in figures["seconds"].items():
        print(f"{step:<8} {spent:8.2f} s  ({figures['usPerPixel'][step]:.0f} us per frame pixel)")
    record("client", figures)


if __name__ == "__main__":
    main()
