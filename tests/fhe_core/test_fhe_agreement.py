"""Replica agreement on parsed coefficients: what honest replicas do, and that lazy results and
a one-pixel change are caught (see fhe_core/AGREEMENT.md for the measurement)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from blindframe.fhe_core import wire
from blindframe.fhe_core.agreement import (
    AGREEMENT_FAR_COUNT,
    AGREEMENT_TOLERANCE,
    disagree,
    leaves_to_prove,
)
from blindframe.fhe_core.client import KernelClient, check_against_twin
from blindframe.fhe_core.errors import TwinMismatchError
from blindframe.fhe_core.kernels import client_spec_hash, output_words
from blindframe.fhe_core.keys import evaluation_keys_path, generate_keys
from blindframe.fhe_core.merkle import (
    TileTree,
    coefficient_stream,
    far_count,
    leaf_depth,
    tile_tree,
    verify_proof,
)
from blindframe.fhe_core.sandbox import run_tile_sandboxed
from blindframe.fhe_core.server import run_tile, tile_clear_args

KID = "post@1"
PLAIN = np.random.default_rng(21).integers(0, 8, (10, 10))


@pytest.fixture(scope="module")
def honest(
    tmp_path_factory: pytest.TempPathFactory, key_dir: Path, clients: dict[str, KernelClient]
) -> dict[str, object]:
    """The same input bundle run in three separate processes with 1, 2 and 1 threads."""
    tmp = tmp_path_factory.mktemp("agreement")
    bundle = clients[KID].encrypt(PLAIN, tile_index=4)
    (tmp / "in").write_bytes(bundle)
    clear = tile_clear_args(KID, {"filter": "sharpen"}, (8, 8), 0)
    outs = []
    for run, threads in enumerate((1, 2, 1)):
        out = tmp / f"out{run}"
        run_tile_sandboxed(
            KID,
            tmp / "in",
            evaluation_keys_path(KID, key_dir),
            clear,
            4,
            out,
            threads=threads,
            timeout_s=300,
        )
        outs.append(out.read_bytes())
    return {"bundle": bundle, "clear": clear, "outs": outs}


def test_honest_replicas_decrypt_to_the_twin(
    honest: dict[str, object], clients: dict[str, KernelClient]
) -> None:
    client = clients[KID]
    for out in honest["outs"]:  # type: ignore[attr-defined]
        got = client.decrypt(out, tile_index=4)
        check_against_twin(client.kernel, got, (PLAIN,), honest["clear"], "honest replica")  # type: ignore[arg-type]


def test_honest_replicas_are_identical_or_uncorrelated(honest: dict[str, object]) -> None:
    """What AGREEMENT.md measured: a replica is bit-identical to another that picked the same FFT
    plan at start-up, and otherwise its coefficients are uncorrelated (far almost everywhere)."""
    streams = [coefficient_stream(KID, o) for o in honest["outs"]]  # type: ignore[attr-defined]
    for i in range(len(streams)):
        for j in range(i + 1, len(streams)):
            same = np.array_equal(streams[i], streams[j])
            far = far_count(streams[i], streams[j], AGREEMENT_TOLERANCE) / len(streams[i])
            assert same or far > 0.9
            assert disagree(streams[i], streams[j]) == (not same)


def test_tile_tree_of_an_output(honest: dict[str, object]) -> None:
    out = honest["outs"][0]  # type: ignore[index]
    tree = tile_tree(KID, out)
    assert tree.depth == leaf_depth(KID) == 17  # 64 x 4097 words -> 65 552 leaves
    assert tree.root == TileTree.build(coefficient_stream(KID, out), tree.depth).root
    index = 1234
    assert verify_proof(tree.leaf(index), index, 0, tree.proof(index), tree.root, tree.depth)


def test_runs_in_one_process_are_bit_identical(
    honest: dict[str, object], eval_keys: dict[str, object]
) -> None:
    a = run_tile(KID, honest["bundle"], eval_keys[KID], honest["clear"], tile_index=4)  # type: ignore[arg-type]
    b = run_tile(KID, honest["bundle"], eval_keys[KID], honest["clear"], tile_index=4)  # type: ignore[arg-type]
    assert a == b
    assert not disagree(coefficient_stream(KID, a), coefficient_stream(KID, b))


def _splice(out: bytes, new_stream: np.ndarray) -> bytes:
    """Replace an output bundle's coefficients in place (same length, same framing)."""
    data = bytearray(out)
    old = coefficient_stream(KID, out).astype("<u8").tobytes()
    at = bytes(data).find(old)
    assert at > 0
    data[at : at + len(old)] = new_stream.astype("<u8").tobytes()
    return bytes(data)


def test_lazy_results_never_agree(
    tmp_path: Path,
    honest: dict[str, object],
    clients: dict[str, KernelClient],
    eval_keys: dict[str, object],
    rng: np.random.Generator,
) -> None:
    out = honest["outs"][0]  # type: ignore[index]
    ref = coefficient_stream(KID, out)
    inp = wire.read_bundle(
        honest["bundle"],
        kind=wire.BundleKind.INPUT,
        kernel_id=KID,  # type: ignore[arg-type]
        spec_hash=client_spec_hash(KID),
        expected=[("img", (10, 10), 1 << 20)],
    )
    copied = np.resize(
        np.frombuffer(wire.value_payload(inp.values[0].data, (10, 10), 3), dtype="<u8"), len(ref)
    )
    other_tile_in = clients[KID].encrypt(np.roll(PLAIN, 3), tile_index=4)
    other_tile = run_tile(KID, other_tile_in, eval_keys[KID], honest["clear"], tile_index=4)  # type: ignore[arg-type]
    generate_keys(KID, tmp_path)
    other_client = KernelClient(KID, tmp_path)
    other_keys_out = run_tile(
        KID,
        other_client.encrypt(PLAIN, tile_index=4),
        Path(evaluation_keys_path(KID, tmp_path)).read_bytes(),
        honest["clear"],
        tile_index=4,  # type: ignore[arg-type]
    )
    lazy = {
        "random bytes": rng.integers(0, 1 << 64, len(ref), dtype=np.uint64),
        "input copied": copied.astype(np.uint64),
        "another tile's output": coefficient_stream(KID, other_tile),
        "another key set's output": coefficient_stream(KID, other_keys_out),
        "zeros": np.zeros(len(ref), dtype=np.uint64),
    }
    for name, stream in lazy.items():
        assert disagree(ref, stream), name
        needed = leaves_to_prove(ref, stream)
        assert needed is not None, name
        assert needed <= 3, (name, needed)
        forged = _splice(out, stream)
        assert coefficient_stream(KID, forged).tolist() == stream.tolist()
    assert AGREEMENT_FAR_COUNT >= 1
    assert AGREEMENT_TOLERANCE < 1 << 63


def test_one_changed_pixel_is_caught_by_the_client(
    honest: dict[str, object], clients: dict[str, KernelClient], eval_keys: dict[str, object]
) -> None:
    """A valid ciphertext of another value in one pixel (computed with other taps: a different
    lookup result) decrypts fine but fails the client's twin check, at that pixel."""
    client = clients[KID]
    out = honest["outs"][0]  # type: ignore[index]
    blur = tile_clear_args(KID, {"filter": "blur"}, (8, 8), 0)
    other = run_tile(KID, honest["bundle"], eval_keys[KID], blur, tile_index=4)  # type: ignore[arg-type]
    want = client.kernel.twin((PLAIN,), honest["clear"])  # type: ignore[arg-type]
    alt = client.kernel.twin((PLAIN,), blur)
    pixel = int(np.argmax((want != alt).reshape(-1)))
    assert want.reshape(-1)[pixel] != alt.reshape(-1)[pixel]
    words = output_words(KID)
    a = coefficient_stream(KID, out).copy()
    b = coefficient_stream(KID, other)
    a[pixel * words : (pixel + 1) * words] = b[pixel * words : (pixel + 1) * words]
    tampered = _splice(out, a)
    got = client.decrypt(tampered, tile_index=4)
    assert int((got != want).sum()) == 1
    with pytest.raises(TwinMismatchError, match="1 of 64 pixels"):
        check_against_twin(client.kernel, got, (PLAIN,), honest["clear"], "task 4")  # type: ignore[arg-type]
