"""A gathered kernel (``volume``): the shared input is expanded once per job and node, kept on
disk between a pinned child's calls, and each tile gathers its ray samples from it in the clear.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from blindframe.fhe_core import lease_child, sample
from blindframe.fhe_core.client import KernelClient
from blindframe.fhe_core.errors import BundleMismatchError, ParameterError
from blindframe.fhe_core.jobs import PublicJob, task_clear_args
from blindframe.fhe_core.sandbox import lease_request
from blindframe.fhe_core.server import expand_input, run_gathered_tile

KERNEL = "volume@1"
FRAME = (16, 16)
JOB = PublicJob(KERNEL, dict(sample.SAMPLE_CAMERA), FRAME, 4, True)


def _lease(tmp_path: Path, bundle: Path, keys: Path, cache: Path, tiles: list[int]) -> list[bytes]:
    out = tmp_path / f"out-{'-'.join(map(str, tiles))}"
    out.mkdir(exist_ok=True)
    request = lease_request(
        JOB.to_json(), tiles, [bundle] * len(tiles), keys, out, expanded_dir=cache
    )
    answer = lease_child.run_lease(dict(request))
    return [Path(item["path"]).read_bytes() for item in answer["tiles"]]


def test_a_job_expands_its_volume_once_and_its_leases_reuse_it(
    tmp_path: Path, clients: dict[str, KernelClient], eval_bundles: dict[str, bytes]
) -> None:
    client = clients[KERNEL]
    volume = sample.sample_volume()
    bundle, keys, cache = tmp_path / "in", tmp_path / "ek", tmp_path / "expanded"
    bundle.write_bytes(client.encrypt(volume))
    keys.write_bytes(eval_bundles[KERNEL])

    first = _lease(tmp_path, bundle, keys, cache, [0, 3])
    stored = sorted(p.name for p in cache.iterdir())
    assert [Path(n).suffix for n in stored] == [".npy", ".template"]
    rows = next(cache.glob("*.npy"))
    stamp = rows.stat().st_mtime_ns
    again = _lease(tmp_path, bundle, keys, cache, [3])
    # Read back from disk, not recomputed: the same file, and bit-identical output bytes.
    assert sorted(p.name for p in cache.iterdir()) == stored
    assert again[0] == first[1]
    assert rows.stat().st_mtime_ns >= stamp
    for tile, data in zip([0, 3], first, strict=True):
        want = client.kernel.twin((volume,), task_clear_args(JOB, tile))
        np.testing.assert_array_equal(client.decrypt(data, tile_index=tile), want)


def test_only_the_last_inputs_stay_expanded(
    tmp_path: Path, clients: dict[str, KernelClient], eval_bundles: dict[str, bytes]
) -> None:
    client = clients[KERNEL]
    keys, cache = tmp_path / "ek", tmp_path / "expanded"
    keys.write_bytes(eval_bundles[KERNEL])
    for n in range(lease_child.EXPANDED_KEEP + 1):
        bundle = tmp_path / f"in-{n}"
        bundle.write_bytes(client.encrypt(np.zeros(4096, dtype=np.int64)))
        _lease(tmp_path, bundle, keys, cache, [0])
    assert len(list(cache.glob("*.npy"))) == lease_child.EXPANDED_KEEP
    assert len(list(cache.glob("*.template"))) == lease_child.EXPANDED_KEEP


def test_gathering_refuses_what_does_not_fit(
    clients: dict[str, KernelClient], eval_keys: dict[str, object]
) -> None:
    client = clients[KERNEL]
    expanded = expand_input(KERNEL, client.encrypt(sample.sample_volume()), eval_keys[KERNEL])
    clear = task_clear_args(JOB, 0)
    bad = clear.copy()
    bad[0, 0, 0] = 4096  # a sample outside the grid's 4096 voxels
    with pytest.raises(ParameterError, match="index"):
        run_gathered_tile(KERNEL, expanded, eval_keys[KERNEL], bad, tile_index=0)
    with pytest.raises(BundleMismatchError, match="does not gather"):
        expand_input("post@1", b"", eval_keys[KERNEL])
