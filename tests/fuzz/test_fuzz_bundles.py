"""Generated bad ciphertext bundles (fhe_core/wire.py, fhe_core/_capnp.py): flipped header
fields, wrong shapes, truncated and oversized bodies, valid Cap'n Proto framing around garbage,
evaluation keys of another kernel or key set. Every one is refused with an FheCoreError in one
line before a single byte reaches Concrete, or is structurally sound (then Concrete may see it,
in the sandbox child: tests/fhe_core/test_fhe_sandbox.py)."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from blindframe.fhe_core import wire
from blindframe.fhe_core.errors import FheCoreError
from blindframe.fhe_core.kernels import (
    KERNEL_IDS,
    client_spec_hash,
    expected_inputs,
    get_kernel,
)
from blindframe.fhe_core.keys import EVAL_VALUE, MAX_EVAL_BYTES, read_evaluation_keys
from blindframe.fhe_core.merkle import coefficient_stream
from blindframe.fhe_core.server import read_input

from .tally import FUZZ, tally

if TYPE_CHECKING:
    from tests.conftest import VolumeJob

KERNEL = "volume@1"
_U64 = 2**64 - 1


def input_checks(kernel_id: str, data: bytes, tile: int) -> None:
    """What a render node checks of a tile's INPUT bundle before Concrete deserializes it
    (``fhe_core.server.read_input``, which the sandbox child runs on every input)."""
    read_input(kernel_id, data, tile)


def _header_len(bundle: bytes) -> int:
    return int(struct.unpack_from("<I", bundle, 8)[0])


@st.composite
def mutated(draw: st.DrawFn, valid: bytes, *, header_only: bool = False) -> bytes:
    """``valid`` with bytes flipped or overwritten (in the header when ``header_only``), cut
    short, or with bytes added (an oversized body); at least one change."""
    data = bytearray(valid)
    header = _header_len(valid)
    for _ in range(draw(st.integers(1, 4))):
        limit = min(header, len(data)) if header_only else len(data)
        if limit < 8:
            break
        action = draw(st.sampled_from(["flip", "set", "set", "truncate", "extend", "word"]))
        if action == "flip":
            at = draw(st.integers(0, limit - 1))
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "set":
            at = draw(st.integers(0, limit - 1))
            data[at] = (data[at] + draw(st.integers(1, 255))) % 256  # another value
        elif action == "word":
            # A 32- or 64-bit field (lengths, dims, tile, segment sizes) set to an edge value.
            width = draw(st.sampled_from([4, 8]))
            at = draw(st.integers(0, limit - width))
            value = draw(st.sampled_from([0, 1, 2**31, 2**32 - 1, _U64, len(valid), 7]))
            data[at : at + width] = (value & (2 ** (8 * width) - 1)).to_bytes(width, "little")
        elif action == "truncate":
            del data[draw(st.integers(0, limit - 1)) :]
        else:
            data += draw(st.binary(min_size=1, max_size=64))
    changed = bytes(data)
    if changed == valid:
        changed = valid[:-1]
    return changed


def _pointer_words() -> st.SearchStrategy[int]:
    """Cap'n Proto words an attacker would choose: struct, list and far pointers with edge
    offsets, sizes and counts, beside random words and zeros."""
    offset = st.integers(-40, 40) | st.sampled_from([2**29 - 1, -(2**29)])
    struct_ptr = st.builds(
        lambda off, dw, pc: ((off & 0x3FFFFFFF) << 2) | (dw << 32) | (pc << 48),
        offset,
        st.integers(0, 3) | st.just(0xFFFF),
        st.integers(0, 3) | st.just(0xFFFF),
    )
    list_ptr = st.builds(
        lambda off, elem, count: ((off & 0x3FFFFFFF) << 2) | 1 | (elem << 32) | (count << 35),
        offset,
        st.integers(0, 7),
        st.integers(0, 16) | st.sampled_from([2**29 - 1, 2**20, 513]),
    )
    far_ptr = st.builds(
        lambda pad, double, seg: 2 | (double << 2) | ((pad & 0x1FFFFFFF) << 3) | (seg << 32),
        st.integers(0, 20) | st.just(2**29 - 1),
        st.integers(0, 1),
        st.integers(0, 4) | st.just(2**32 - 1),
    )
    capability = st.builds(lambda index: 3 | (index << 32), st.integers(0, 10))
    return st.integers(0, _U64) | st.just(0) | struct_ptr | list_ptr | far_ptr | capability


@st.composite
def capnp_messages(draw: st.DrawFn, real: bytes) -> bytes:
    """Cap'n Proto framing around garbage: the real value with some words replaced by chosen
    pointers, or a fresh message of a few segments of chosen words; segment tables mostly
    consistent (the checks behind them are the point), sometimes lying."""
    words = _pointer_words()
    if draw(st.booleans()):
        data = bytearray(real)
        count = (len(data) - 8) // 8
        for _ in range(draw(st.integers(1, 6))):
            # Most pointers live in the first words of Concrete's message (root, payload, shape).
            at = 8 + 8 * draw(st.integers(0, min(count, 12) - 1) | st.integers(0, count - 1))
            data[at : at + 8] = draw(words).to_bytes(8, "little")
        return bytes(data)
    segments = draw(st.lists(st.lists(words, max_size=12), min_size=1, max_size=3))
    sizes = [len(s) for s in segments]
    if draw(st.integers(0, 4)) == 0:
        sizes[draw(st.integers(0, len(sizes) - 1))] = draw(st.sampled_from([0, 1, 2**32 - 1]))
    table = struct.pack(f"<I{len(sizes)}I", len(sizes) - 1, *sizes)
    table += b"\0" * ((-len(table)) % 8)
    return table + b"".join(struct.pack(f"<{len(s)}Q", *s) for s in segments)


def test_mutated_input_bundles_are_refused(volume_job: VolumeJob) -> None:
    valid = volume_job.input_bundle
    input_checks(KERNEL, valid, 0)  # the unchanged bundle passes: the mutations are the cause
    with tally(
        "ciphertext bundles: input headers, shapes, truncated, oversized", FheCoreError
    ) as t:

        @FUZZ
        @given(mutated(valid), st.integers(0, 3))
        def case(data: bytes, tile: int) -> None:
            t.check(lambda: input_checks(KERNEL, data, tile))

        case()


def test_mutated_output_bundles_are_refused(volume_job: VolumeJob) -> None:
    valid = volume_job.outputs[0]
    assert len(coefficient_stream(KERNEL, valid)) > 0
    with tally(
        "ciphertext bundles: output headers, shapes, truncated, oversized", FheCoreError
    ) as t:

        @FUZZ
        @given(mutated(valid))
        def case(data: bytes) -> None:
            stream = t.check(lambda: coefficient_stream(KERNEL, data))
            if stream is not None:
                # Only a change inside the ciphertexts' words leaves a bundle readable.
                assert len(data) == len(valid)
                assert not np.array_equal(stream, coefficient_stream(KERNEL, valid))

        case()


def test_capnp_framing_around_garbage_is_refused(volume_job: VolumeJob) -> None:
    """Valid bundle headers whose value is a hand-made Cap'n Proto message: the reader follows
    no pointer outside the message, builds nothing sized by a hostile count, and never hangs."""
    kernel = get_kernel(KERNEL)
    (spec,) = kernel.enc
    real = bytes(wire.read_bundle(
        volume_job.input_bundle,
        kind=wire.BundleKind.INPUT,
        kernel_id=KERNEL,
        spec_hash=client_spec_hash(KERNEL),
        expected=expected_inputs(KERNEL),
    ).values[0].data)  # fmt: skip
    with tally("ciphertext bundles: Cap'n Proto framing around garbage", FheCoreError) as t:

        @FUZZ
        @given(capnp_messages(real))
        def case(value: bytes) -> None:
            bundle = wire.write_bundle(
                wire.BundleKind.INPUT,
                KERNEL,
                client_spec_hash(KERNEL),
                [wire.ValueEntry(spec.name, spec.shape, value)],
            )
            t.check(lambda: input_checks(KERNEL, bundle, 0))

        case()


@st.composite
def foreign_keys(draw: st.DrawFn, body: bytes) -> bytes:
    """EVAL_KEYS bundles that do not match the job: another kernel, another key set's client
    specs, another kind or value, or a cut or padded body; never the right header over the
    right bytes (those are the real keys, not bad input)."""
    kinds = list(wire.BundleKind)
    kind = draw(st.sampled_from(kinds))
    kernel_id = draw(st.sampled_from(KERNEL_IDS))
    other_spec = draw(st.binary(min_size=32, max_size=32)).hex()
    spec = draw(st.sampled_from([client_spec_hash(KERNEL), other_spec]))
    name = draw(st.sampled_from([EVAL_VALUE, "keys", "out"]))
    shape = draw(st.sampled_from([(), (1,), (2, 3)]))
    cut = draw(st.integers(-64, 64))
    value = body[:cut] if cut < 0 else body + bytes(cut)
    bundle = wire.write_bundle(kind, kernel_id, spec, [wire.ValueEntry(name, shape, value)])
    matching = (kind, kernel_id, spec, name, shape, cut) == (
        wire.BundleKind.EVAL_KEYS,
        KERNEL,
        client_spec_hash(KERNEL),
        EVAL_VALUE,
        (),
        0,
    )
    if matching:
        return bundle[:-1]
    if cut != 0 and draw(st.booleans()):
        # A body cut or padded behind the original header: the announced length disagrees.
        original = wire.write_bundle(
            wire.BundleKind.EVAL_KEYS,
            KERNEL,
            client_spec_hash(KERNEL),
            [wire.ValueEntry(EVAL_VALUE, (), body)],
        )
        return original[: _header_len(original)] + value
    return bundle


def test_evaluation_keys_that_do_not_match_are_refused(volume_job: VolumeJob) -> None:
    keys = volume_job.eval_keys
    # The first KiB of the real keys behind their header (the bundles below are refused by
    # their header; a copy of all 55 MB per case would only cost memory).
    body = keys[_header_len(keys) : _header_len(keys) + 1024]
    small = wire.write_bundle(
        wire.BundleKind.EVAL_KEYS,
        KERNEL,
        client_spec_hash(KERNEL),
        [wire.ValueEntry(EVAL_VALUE, (), body)],
    )
    # What read_evaluation_keys expects of the header (the limit is its own).
    expected = [(EVAL_VALUE, (), MAX_EVAL_BYTES)]
    with tally("evaluation keys not matching the job (kernel, key set, size)", FheCoreError) as t:

        @FUZZ
        @given(foreign_keys(body) | mutated(small, header_only=True))
        def case(data: bytes) -> None:
            try:
                wire.read_bundle(
                    data,
                    kind=wire.BundleKind.EVAL_KEYS,
                    kernel_id=KERNEL,
                    spec_hash=client_spec_hash(KERNEL),
                    expected=expected,
                )
            except FheCoreError:
                pass
            else:
                # A header that fits over a body that is not the keys: Concrete's to refuse
                # (RuntimeError), in the sandbox child where workers read keys
                # (tests/fhe_core/test_fhe_sandbox.py), not this test's business.
                assume(False)
            # Refused from the header alone: Concrete never deserializes such keys.
            assert t.check(lambda: read_evaluation_keys(KERNEL, data)) is None

        case()
