"""Output ciphertexts on the wire: every mask word rounded to its top :data:`MASK_BITS` bits.

A tile's output is LWE ciphertexts of ``words`` uint64 words (mask, then body): 16 KiB a pixel
at dimension 2048. Decryption computes ``body - <mask, s>`` and reads the message in the top
bits, so the low bits of the mask words only add noise the decoder ignores: rounding each mask
word to its top 14 bits adds an error of standard deviation ``sqrt(n / 24) * 2**50`` (binary
secret of dimension ``n``), 13.9 standard deviations below the half-step of a 5-bit message with
its padding bit at ``n = 2048`` (9.8 at 4096): about 1e-43 per value, far below Concrete's own
bootstrap failure rate. The body stays whole. Rounding is integer arithmetic, so pinned replicas
stay byte-identical, and a rounded word is within ``2**50`` of the exact one, far inside the
agreement tolerance (``2**58``, :mod:`blindframe.fhe_core.agreement`). 3,592 bytes a pixel at
dimension 2048.

A packed value is ``prefix_len u16 | suffix_len u16 | prefix | suffix | bodies | masks``: the
Cap'n Proto framing of the Concrete value around its payload (a few hundred bytes), the bodies
as little-endian words, then every mask word's top bits, most significant first, packed.
:func:`unpack_output` rebuilds the Concrete value and checks it structurally
(:func:`blindframe.fhe_core.wire.value_payload`) before anything parses it.
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

from blindframe.fhe_core import wire
from blindframe.fhe_core.errors import BundleFormatError

__all__ = ["MASK_BITS", "pack_output", "packed_size", "unpack_output"]

MASK_BITS = 14
_LENGTHS = struct.Struct("<HH")
# The framing of a Concrete value around its payload is a few hundred bytes.
_MAX_FRAMING = 4096


def packed_size(count: int, words: int, bits: int = MASK_BITS) -> int:
    """Bytes of ``count`` ciphertexts of ``words`` words once packed (framing not included)."""
    return count * 8 + (count * (words - 1) * bits + 7) // 8


def pack_output(value: bytes, shape: tuple[int, ...], words: int) -> bytes:
    """Pack a serialized Concrete value of ``shape`` ciphertexts of ``words`` words."""
    payload = wire.value_payload(value, shape, words)
    base = np.frombuffer(value, dtype=np.uint8)
    view = np.frombuffer(payload, dtype=np.uint8)
    offset = int(view.ctypes.data - base.ctypes.data)
    if not 0 <= offset <= len(value) - len(view) or not np.may_share_memory(base, view):
        raise BundleFormatError("an output value's payload is not one block of its bytes")
    prefix, suffix = value[:offset], value[offset + len(view) :]
    if len(prefix) + len(suffix) > _MAX_FRAMING:
        raise BundleFormatError(f"an output value's framing exceeds {_MAX_FRAMING} bytes")
    cts = np.frombuffer(payload, dtype="<u8").astype(np.uint64).reshape(-1, words)
    shift = np.uint64(64 - MASK_BITS)
    half = np.uint64(1) << np.uint64(63 - MASK_BITS)
    top = (cts[:, :-1] + half) >> shift  # wraps modulo 2**64, like the torus it encodes
    bits = (top[..., None] >> np.arange(MASK_BITS - 1, -1, -1, dtype=np.uint64)) & np.uint64(1)
    masks = np.packbits(bits.astype(np.uint8).ravel())
    bodies = cts[:, -1].astype("<u8")
    return (
        _LENGTHS.pack(len(prefix), len(suffix))
        + prefix
        + suffix
        + bodies.tobytes()
        + masks.tobytes()
    )


def unpack_output(data: bytes | memoryview, shape: tuple[int, ...], words: int) -> bytes:
    """Rebuild the Concrete value :func:`pack_output` packed (mask words rounded); raise
    BundleFormatError, naming what is wrong, for bytes that are not such a value."""
    data = bytes(data)
    count = int(np.prod(shape))
    if len(data) < _LENGTHS.size:
        raise BundleFormatError("a packed output value is shorter than its header")
    head, tail = _LENGTHS.unpack_from(data)
    if head + tail > _MAX_FRAMING:
        raise BundleFormatError(
            f"a packed output value announces {head + tail} bytes of framing "
            f"(at most {_MAX_FRAMING})"
        )
    want = _LENGTHS.size + head + tail + packed_size(count, words)
    if len(data) != want:
        raise BundleFormatError(
            f"a packed output value has {len(data)} bytes, {want} expected for {count} "
            f"ciphertexts of {words} words"
        )
    at = _LENGTHS.size
    prefix, suffix = data[at : at + head], data[at + head : at + head + tail]
    at += head + tail
    bodies = np.frombuffer(data, dtype="<u8", count=count, offset=at).astype(np.uint64)
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8, offset=at + 8 * count))
    bits = bits[: count * (words - 1) * MASK_BITS].reshape(count, words - 1, MASK_BITS)
    weights = np.uint64(1) << np.arange(MASK_BITS - 1, -1, -1, dtype=np.uint64)
    top = (bits.astype(np.uint64) * weights).sum(axis=2, dtype=np.uint64)
    cts: npt.NDArray[np.uint64] = np.empty((count, words), dtype=np.uint64)
    cts[:, :-1] = top << np.uint64(64 - MASK_BITS)
    cts[:, -1] = bodies
    value = prefix + cts.astype("<u8").tobytes() + suffix
    wire.value_payload(value, shape, words)
    return value
