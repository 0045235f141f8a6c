"""``surface`` as a job: the client encrypts the grid brick by brick, a node expands only the
bricks a tile reads, keeps them on disk for the job's next tiles (least recently used evicted
beyond a budget), and decrypted tiles equal the twin.

A small instance of the kernel (an 8^3 grid in 4^3 bricks, 3 samples per ray: the same code as
``surface@1``, seconds under FHE) is registered under a test-only id for this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from blindframe.fhe_core import kernels, lease_child, wire
from blindframe.fhe_core._kernel import IntArray
from blindframe.fhe_core._surface import (
    COLOURS,
    Geometry,
    bake,
    grid_index,
    grid_values,
    make_surface_kernel,
    paint,
    tile_bricks,
)
from blindframe.fhe_core.artist_jobs import JobSecrets, decrypt_job, encrypt_volume_job, plain_frame
from blindframe.fhe_core.client import KernelClient
from blindframe.fhe_core.errors import BundleMismatchError, ParameterError
from blindframe.fhe_core.jobs import PublicJob, task_clear_args
from blindframe.fhe_core.keys import export_evaluation_keys, generate_keys, read_evaluation_keys
from blindframe.fhe_core.sandbox import lease_request
from blindframe.fhe_core.server import BrickedInput, expand_input, run_gathered_tiles

SMALL = Geometry(grid=8, brick=4, samples=3)
KERNEL = "surface@90"
PIXELS = 64


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KernelClient, bytes]]:
    """The small kernel registered, a key set for it: (client, EVAL_KEYS bundle)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(kernels._FACTORIES, KERNEL, lambda: make_surface_kernel(SMALL, version=90))
        key_dir = tmp_path_factory.mktemp("surface-keys")
        generate_keys(KERNEL, key_dir)
        yield KernelClient(KERNEL, key_dir), export_evaluation_keys(KERNEL, key_dir)


def _grid(rng: np.random.Generator) -> IntArray:
    """Random voxels, but the grid's four edges along z are empty except their corners, which
    hold every colour (bricks at the grid's border)."""
    g = SMALL.grid
    occ = rng.integers(0, 2, (g, g, g)).astype(bool)
    colour = rng.integers(1, COLOURS + 1, (g, g, g))
    for x in (0, g - 1):
        for y in (0, g - 1):
            occ[x, y, :] = False
    for n, (x, y, z) in enumerate(
        (x, y, z) for x in (0, g - 1) for y in (0, g - 1) for z in (0, g - 1)
    ):
        occ[x, y, z], colour[x, y, z] = True, n % COLOURS + 1
    return grid_values(occ, colour, SMALL)


def _rays(voxels: list[list[tuple[int, int, int]]]) -> IntArray:
    """A clear argument whose ray ``p`` reads the voxels ``voxels[p]`` (``[x, y, z]``), front
    first; rays beyond the list read voxel [0, 0, 0] masked out (a ray that misses the grid)."""
    index = np.zeros((PIXELS, SMALL.samples), dtype=np.int64)
    mask = np.zeros_like(index)
    for p, ray in enumerate(voxels):
        x, y, z = np.array(ray).T
        index[p] = grid_index(x, y, z, 0, SMALL)
        mask[p] = 1
    lanes = np.stack([index, index + 1], axis=2).reshape(PIXELS, -1)
    out: IntArray = np.stack([lanes, np.repeat(mask, 2, axis=1)]).astype(np.int64)
    return out


def _edge_rays() -> IntArray:
    """Rays along the grid's edges (every brick at its border): each corner's colour on the
    first sample and on the last, behind empty samples; then an empty ray."""
    g, n = SMALL.grid, SMALL.samples
    rays = []
    for x in (0, g - 1):
        for y in (0, g - 1):
            near = [(x, y, z) for z in range(n)]
            far = [(x, y, g - 1 - z) for z in range(n)]
            rays += [near, near[::-1], far, far[::-1]]
    rays.append([(0, 0, z + 1) for z in range(n)])
    return _rays(rays)


def _decrypted(client: KernelClient, outputs: list[tuple[int, bytes]]) -> list[IntArray]:
    return [client.decrypt(data, tile_index=tile) for tile, data in outputs]


def test_tiles_expand_only_their_bricks_and_reuse_them(
    tmp_path: Path, small: tuple[KernelClient, bytes]
) -> None:
    client, eval_bundle = small
    keys = read_evaluation_keys(KERNEL, eval_bundle)
    values = _grid(np.random.default_rng(5))
    bundle = client.encrypt(values)
    single = _rays([[(0, 0, z) for z in range(SMALL.samples)]])  # inside brick 0
    edge = _edge_rays()
    cache = tmp_path / "bricks"

    first = expand_input(KERNEL, bundle, keys, cache=cache)
    assert isinstance(first, BrickedInput)
    outputs = list(run_gathered_tiles(KERNEL, first, keys, [(0, single)]))
    assert first.expanded == [0]
    # A later lease (a fresh process) over the same folder reads brick 0 back from disk and
    # expands only the other bricks the edge tile reads: all of the grid's border bricks.
    again = expand_input(KERNEL, bundle, keys, cache=cache)
    assert isinstance(again, BrickedInput)
    outputs += run_gathered_tiles(KERNEL, again, keys, [(1, edge)])
    assert tile_bricks(edge, SMALL).tolist() == list(range(SMALL.bricks))
    assert again.expanded == list(range(1, SMALL.bricks))
    got = _decrypted(client, outputs)
    for tile, clear in zip(got, [single, edge], strict=True):
        np.testing.assert_array_equal(tile, client.kernel.twin((values,), clear))
    corners = [n % COLOURS + 1 for n in range(8)]
    # Per edge: near corner first, near corner last, far corner first, far corner last.
    pairs = zip(corners[0::2], corners[1::2], strict=True)
    assert got[1].ravel()[:16].tolist() == [c for a, b in pairs for c in (a, a, b, b)]
    assert got[1].ravel()[16] == 0  # the empty ray
    assert got[0].ravel()[0] == corners[0]


def test_the_brick_cache_evicts_the_least_recently_used(
    tmp_path: Path, small: tuple[KernelClient, bytes]
) -> None:
    client, eval_bundle = small
    keys = read_evaluation_keys(KERNEL, eval_bundle)
    values = _grid(np.random.default_rng(6))
    bundle = client.encrypt(values)
    g, n = SMALL.grid, SMALL.samples
    brick0 = [(0, 0, z) for z in range(n)]
    brick6 = [(g - 1, g - 1, z) for z in range(n)]
    brick7 = [(g - 1, g - 1, g - 1 - z) for z in range(n)]
    tiles = [(0, _rays([brick0, brick6])), (1, _rays([brick0, brick7]))]
    assert [tile_bricks(c, SMALL).tolist() for _, c in tiles] == [[0, 6], [0, 7]]
    cache = tmp_path / "bricks"
    brick_bytes = SMALL.brick_values * 2049 * 8
    expanded = expand_input(KERNEL, bundle, keys, cache=cache, budget_bytes=2 * brick_bytes)
    assert isinstance(expanded, BrickedInput)
    assert expanded.budget == 2
    outputs = list(run_gathered_tiles(KERNEL, expanded, keys, tiles))
    # Tile 1 read brick 0 again (from disk), so brick 6 was the least recently used when brick 7
    # came: it went, although brick 0 was expanded first.
    assert expanded.expanded == [0, 6, 7]
    assert sorted(int(p.stem.split("-")[1]) for p in cache.glob("brick-*.npy")) == [0, 7]
    for got, (_, clear) in zip(_decrypted(client, outputs), tiles, strict=True):
        np.testing.assert_array_equal(got, client.kernel.twin((values,), clear))


def test_a_job_renders_through_a_lease_and_is_painted(
    tmp_path: Path, small: tuple[KernelClient, bytes]
) -> None:
    """The artist's path: bake a coloured ball, encrypt it as a job, a node's lease computes
    the tile (its bricks kept in the node's cache), the client decrypts and paints it."""
    client, eval_bundle = small
    g = SMALL.grid
    x, y, z = np.indices((g, g, g)) + 0.5
    occupancy = (x - g / 2) ** 2 + (y - g / 2) ** 2 + (z - g / 2) ** 2 <= 3.2**2
    albedo = np.stack([x / g, y / g, np.full_like(x, 0.5)], axis=-1)
    baked = bake(occupancy, albedo, [0.3, 0.8, 0.5], geo=SMALL)
    # No canary margin: one tile is the whole job.
    camera = {"yaw": 30.0, "pitch": 20.0}
    job = encrypt_volume_job(client, baked.values, camera, (8, 8), margin_tiles=0)
    job.secrets.palette = baked.palette
    job.secrets.save(tmp_path / "secrets.npz")
    secrets = JobSecrets.load(tmp_path / "secrets.npz")
    assert secrets.palette is not None
    np.testing.assert_array_equal(secrets.palette, baked.palette)
    public = PublicJob.from_json(job.public.to_json())
    (task,) = [t.task_index for t in secrets.tasks]
    bundle, keys, cache = tmp_path / "in", tmp_path / "ek", tmp_path / "expanded"
    bundle.write_bytes(job.inputs[0])
    keys.write_bytes(eval_bundle)
    out = tmp_path / "out"
    out.mkdir()
    request = lease_request(public.to_json(), [task], [bundle], keys, out, expanded_dir=cache)
    ((item,),) = [lease_child.run_lease(dict(request))["tiles"]]
    (folder,) = cache.iterdir()
    assert (folder / "tile.template").is_file()
    bricks = tile_bricks(task_clear_args(public, task), SMALL).tolist()
    assert sorted(int(p.stem.split("-")[1]) for p in folder.glob("brick-*.npy")) == bricks
    frame = decrypt_job(client, public, secrets, {task: Path(item["path"]).read_bytes()})
    np.testing.assert_array_equal(frame, plain_frame(public, secrets))
    assert frame.any()
    assert (frame == 0).any()  # the frame's corners miss the ball
    rgb = paint(frame, secrets.palette)
    assert rgb.shape == (8, 8, 3)
    np.testing.assert_array_equal(rgb[frame == 0], 0.0)


def test_bad_bricked_inputs_are_refused(small: tuple[KernelClient, bytes]) -> None:
    client, eval_bundle = small
    keys = read_evaluation_keys(KERNEL, eval_bundle)
    bundle = wire.read_bundle(
        client.encrypt(_grid(np.random.default_rng(8))),
        kind=wire.BundleKind.INPUT,
        kernel_id=KERNEL,
        spec_hash=client.spec_hash,
        expected=kernels.expected_inputs(KERNEL),
    )
    rows, frame = bundle.values
    short = wire.write_bundle(
        wire.BundleKind.INPUT,
        KERNEL,
        client.spec_hash,
        [wire.ValueEntry(rows.name, rows.shape, bytes(rows.data)[:-8]), frame],
    )
    with pytest.raises(BundleMismatchError, match="bricks hold"):
        expand_input(KERNEL, short, keys)
    # A grid of another size than the kernel's, and a model with no volume: one-line errors.
    with pytest.raises(ParameterError, match=r"grid has shape \(2048,\), expected \(1024,\)"):
        client.encrypt(np.zeros(2048, dtype=np.int64))
    with pytest.raises(ParameterError, match="surface grid must be 8\\^3 voxels"):
        grid_values(np.ones((16, 16, 16), bool), np.ones((16, 16, 16), np.int64), SMALL)
    with pytest.raises(ParameterError, match="the model has no volume"):
        grid_values(np.zeros((8, 8, 8), bool), np.zeros((8, 8, 8), np.int64), SMALL)
