"""Replica agreement: pinned honest replicas are bit-identical, the FFT plan predicts an
unpinned output, the root binds every byte, and lazy results and a one-pixel change are caught
(see fhe_core/AGREEMENT.md for the many-process measurement)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from blindframe.fhe_core import packing, wire
from blindframe.fhe_core.agreement import (
    AGREEMENT_FAR_COUNT,
    AGREEMENT_TOLERANCE,
    disagree,
    leaves_to_prove,
)
from blindframe.fhe_core.client import KernelClient, check_against_twin
from blindframe.fhe_core.errors import FheCoreError, TwinMismatchError
from blindframe.fhe_core.jobs import PublicJob
from blindframe.fhe_core.kernels import client_spec_hash, expected_outputs, output_words
from blindframe.fhe_core.keys import evaluation_keys_path, generate_keys
from blindframe.fhe_core.lease_child import tile_path
from blindframe.fhe_core.merkle import (
    TileTree,
    ciphertext_coefficients,
    coefficient_stream,
    digest_leaf,
    far_count,
    leaf_depth,
    tile_tree,
    verify_proof,
)
from blindframe.fhe_core.plans import choose_plan
from blindframe.fhe_core.sandbox import LEASE, PinnedChild, lease_request, run_in_child
from blindframe.fhe_core.server import run_tile, tile_clear_args

KID = "post@1"
# Task 4 of a post@1 job (every task's clear argument is the job's filter).
JOB = PublicJob(KID, {"filter": "sharpen"}, (8, 8), 5, False).to_json()
PLAIN = np.random.default_rng(21).integers(0, 8, (10, 10))


@pytest.fixture(scope="module")
def honest(
    tmp_path_factory: pytest.TempPathFactory, key_dir: Path, clients: dict[str, KernelClient]
) -> dict[str, object]:
    """The same input bundle computed (a lease of one tile) in separate processes pinned to the
    FFT plan a client here chooses: two fresh sandbox children (1 and 2 threads) and a long-lived
    pinned child; then once unpinned, reporting the plan that process happened to measure."""
    tmp = tmp_path_factory.mktemp("agreement")
    bundle = clients[KID].encrypt(PLAIN, tile_index=4)
    (tmp / "in").write_bytes(bundle)
    clear = tile_clear_args(KID, {"filter": "sharpen"}, (8, 8), 0)
    keys = evaluation_keys_path(KID, key_dir)
    target = choose_plan(KID, samples=8)
    dirs = [tmp / name for name in ("out0", "out1", "out2", "free")]
    for out in dirs:
        out.mkdir()
    results = [
        run_in_child(
            LEASE,
            lease_request(JOB, [4], [tmp / "in"], keys, out),
            threads=threads,
            timeout_s=300,
            fft_plan=target,
        )
        for out, threads in zip(dirs[:2], (1, 2), strict=True)
    ]
    with PinnedChild(target, kernel_id=KID, threads=1) as child:
        results.append(
            child.run(LEASE, lease_request(JOB, [4], [tmp / "in"], keys, dirs[2]), timeout_s=300)
        )
    free = run_in_child(
        LEASE,
        lease_request(JOB, [4], [tmp / "in"], keys, dirs[3], report_plan=True),
        timeout_s=300,
    )
    return {
        "bundle": bundle,
        "clear": clear,
        "target": target,
        "outs": [tile_path(out, 4).read_bytes() for out in dirs[:3]],
        "results": results,
        "free_plan": free.answer["fft_plan"],
        "free_out": tile_path(dirs[3], 4).read_bytes(),
    }


def test_honest_replicas_decrypt_to_the_twin(
    honest: dict[str, object], clients: dict[str, KernelClient]
) -> None:
    client = clients[KID]
    for out in [*honest["outs"], honest["free_out"]]:  # type: ignore[misc]
        got = client.decrypt(out, tile_index=4)
        check_against_twin(client.kernel, got, (PLAIN,), honest["clear"], "honest replica")  # type: ignore[arg-type]


def test_pinned_replicas_are_bit_identical(honest: dict[str, object]) -> None:
    """Separate processes (fresh children with 1 and 2 threads, a long-lived pinned child) pinned
    to one FFT plan give the same bytes: the same roots, and the rule sees no disagreement."""
    outs: list[bytes] = honest["outs"]  # type: ignore[assignment]
    assert outs[0] == outs[1] == outs[2]
    for res in honest["results"]:  # type: ignore[attr-defined]
        assert res.fft_plan == honest["target"]
    assert honest["results"][0].plan_attempts >= 1  # type: ignore[index]
    assert len({tile_tree(KID, o).root for o in outs}) == 1
    streams = [coefficient_stream(KID, o) for o in outs]
    assert not disagree(streams[0], streams[1])


def test_the_plan_predicts_the_output(honest: dict[str, object]) -> None:
    """An unpinned process's output equals the pinned ones exactly when the plan it happened to
    measure is the target; otherwise it is unrelated (far almost everywhere), as AGREEMENT.md
    measured over many processes."""
    free: bytes = honest["free_out"]  # type: ignore[assignment]
    pinned: bytes = honest["outs"][0]  # type: ignore[index]
    same_plan = honest["free_plan"] == honest["target"]
    assert (free == pinned) == same_plan
    if not same_plan:
        a, b = ciphertext_coefficients(KID, free), ciphertext_coefficients(KID, pinned)
        assert far_count(a, b, AGREEMENT_TOLERANCE) / len(a) > 0.9
        assert disagree(a, b)


def test_tile_tree_of_an_output(honest: dict[str, object]) -> None:
    out = honest["outs"][0]  # type: ignore[index]
    tree = tile_tree(KID, out)
    assert tree.depth == leaf_depth(KID) == 17  # 64 x 4097 words -> 65 552 leaves
    assert tree.root == TileTree.build(coefficient_stream(KID, out), tree.depth).root
    index = 1234
    assert verify_proof(tree.leaf(index), index, 0, tree.proof(index), tree.root, tree.depth)
    # the digest leaf is the bundle's content hash, the last leaf of the tree; the leaves between
    # the coefficients and it are zero
    digest = digest_leaf(KID)
    stream = coefficient_stream(KID, out)
    assert digest == (1 << 17) - 1 == len(stream) // 4 - 1
    assert tree.leaf(digest) == bytes.fromhex(wire.bundle_hash(out))
    coefficients = ciphertext_coefficients(KID, out)
    assert np.array_equal(stream[: len(coefficients)], coefficients)
    assert not stream[len(coefficients) : 4 * digest].any()
    assert tree.leaf(digest - 1) == bytes(32)
    assert verify_proof(tree.leaf(digest), digest, 0, tree.proof(digest), tree.root, tree.depth)


def test_the_root_binds_every_byte_of_the_output(honest: dict[str, object]) -> None:
    """Flipping any byte of the header or the Cap'n Proto framing, or a sampled payload byte,
    either makes the bundle invalid or changes the committed stream (hence the root)."""
    out = honest["outs"][0]  # type: ignore[index]
    ref = coefficient_stream(KID, out)
    start, length = _packed_payload(out)
    framing = [*range(start), *range(start + length, len(out))]
    sampled = np.random.default_rng(3).integers(start, start + length, 64).tolist()
    bound = refused = 0
    for position in framing + sampled:
        flipped = bytearray(out)
        flipped[position] ^= 0x01
        try:
            stream = coefficient_stream(KID, bytes(flipped))
        except FheCoreError:
            refused += 1
            continue
        assert not np.array_equal(stream, ref), position
        bound += 1
    assert bound > 64  # framing bytes that still parse are bound too, not only refused
    assert refused > 0
    tampered = bytearray(out)
    tampered[-1] ^= 0x80  # the last mask's top kept bit
    assert tile_tree(KID, bytes(tampered)).root != tile_tree(KID, out).root


def test_runs_in_one_process_are_bit_identical(
    honest: dict[str, object], eval_keys: dict[str, object]
) -> None:
    a = run_tile(KID, honest["bundle"], eval_keys[KID], honest["clear"], tile_index=4)  # type: ignore[arg-type]
    b = run_tile(KID, honest["bundle"], eval_keys[KID], honest["clear"], tile_index=4)  # type: ignore[arg-type]
    assert a == b
    assert not disagree(coefficient_stream(KID, a), coefficient_stream(KID, b))


def _output_value(out: bytes) -> wire.Bundle:
    return wire.read_bundle(
        out,
        kind=wire.BundleKind.OUTPUT,
        kernel_id=KID,
        spec_hash=client_spec_hash(KID),
        expected=expected_outputs(KID),
    )


def _packed_payload(out: bytes) -> tuple[int, int]:
    """Where the packed coefficients (bodies, then rounded masks) sit in an OUTPUT bundle."""
    packed = bytes(_output_value(out).values[0].data)
    head, tail = struct.unpack_from("<HH", packed)
    at = out.find(packed)
    assert at > 0
    skip = 4 + head + tail
    return at + skip, len(packed) - skip


def _rounded(stream: np.ndarray) -> np.ndarray:
    """What packing keeps of coefficients: mask words rounded to their top bits, bodies whole."""
    cts = stream.astype(np.uint64).reshape(-1, output_words(KID)).copy()
    shift = np.uint64(64 - packing.MASK_BITS)
    half = np.uint64(1) << np.uint64(63 - packing.MASK_BITS)
    cts[:, :-1] = ((cts[:, :-1] + half) >> shift) << shift
    return cts.reshape(-1)


def _splice(out: bytes, new_stream: np.ndarray) -> bytes:
    """Replace an output bundle's coefficients (same framing), packed as a worker packs them."""
    bundle = _output_value(out)
    entry = bundle.values[0]
    words = output_words(KID)
    value = packing.unpack_output(entry.data, entry.shape, words)
    old = bytes(wire.value_payload(value, entry.shape, words))
    at = value.find(old)
    assert at > 0
    new = value[:at] + new_stream.astype("<u8").tobytes() + value[at + len(old) :]
    packed = packing.pack_output(new, entry.shape, words)
    return wire.write_bundle(
        wire.BundleKind.OUTPUT,
        KID,
        client_spec_hash(KID),
        [wire.ValueEntry(entry.name, entry.shape, packed)],
        bundle.tile_index,
    )


def test_lazy_results_never_agree(
    tmp_path: Path,
    honest: dict[str, object],
    clients: dict[str, KernelClient],
    eval_keys: dict[str, object],
    rng: np.random.Generator,
) -> None:
    out = honest["outs"][0]  # type: ignore[index]
    ref = ciphertext_coefficients(KID, out)
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
        "another tile's output": ciphertext_coefficients(KID, other_tile),
        "another key set's output": ciphertext_coefficients(KID, other_keys_out),
        "zeros": np.zeros(len(ref), dtype=np.uint64),
    }
    for name, stream in lazy.items():
        assert disagree(ref, stream), name
        needed = leaves_to_prove(ref, stream)
        assert needed is not None, name
        assert needed <= 3, (name, needed)
        forged = _splice(out, stream)
        assert ciphertext_coefficients(KID, forged).tolist() == _rounded(stream).tolist()
        # the committed stream (digest leaf included) disagrees too
        assert disagree(coefficient_stream(KID, out), coefficient_stream(KID, forged)), name
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
    a = ciphertext_coefficients(KID, out).copy()
    b = ciphertext_coefficients(KID, other)
    a[pixel * words : (pixel + 1) * words] = b[pixel * words : (pixel + 1) * words]
    tampered = _splice(out, a)
    got = client.decrypt(tampered, tile_index=4)
    assert int((got != want).sum()) == 1
    with pytest.raises(TwinMismatchError, match="1 of 64 pixels"):
        check_against_twin(client.kernel, got, (PLAIN,), honest["clear"], "task 4")  # type: ignore[arg-type]
