"""The ciphertext wire format: versioned bundles of Concrete values, validated before parsing.

A bundle is ``header || values``. The header (little-endian) says what the bytes are before any
of them reaches Concrete::

    magic "BFWB" | format u16 | kind u8 | reserved u8 | header_len u32
    kernel id (u8 length + ASCII, e.g. "volume@1") | kernel version u16
    client-spec hash (32 bytes) | tile index u32 (0xFFFFFFFF: not tied to a tile)
    value count u8 | per value: name (u8 length + ASCII) | ndim u8 | dims u32 * ndim | bytes u64

Kinds: ``INPUT`` (encrypted inputs of one tile or of a whole volume), ``OUTPUT`` (a tile's
result), ``EVAL_KEYS`` (a key set's evaluation keys). :func:`read_bundle` checks magic, format,
kind, kernel id and version, spec hash, value names and shapes, and that the byte lengths add up
to exactly the buffer's length, all before a single value is deserialized; values are then parsed
as Cap'n Proto structurally (:func:`value_payload`) before Concrete sees them.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from blindframe.fhe_core._capnp import StructRef, read_message
from blindframe.fhe_core.errors import BundleFormatError, BundleMismatchError

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "NO_TILE",
    "Bundle",
    "BundleKind",
    "ValueEntry",
    "bundle_hash",
    "read_bundle",
    "value_payload",
    "write_bundle",
]

MAGIC = b"BFWB"
FORMAT_VERSION = 1
NO_TILE = 0xFFFFFFFF
_MAX_HEADER = 4096
_MAX_VALUES = 8
_MAX_NDIM = 6
_FIXED = struct.Struct("<4sHBBI")


class BundleKind(enum.IntEnum):
    """What a bundle carries."""

    INPUT = 1
    OUTPUT = 2
    EVAL_KEYS = 3


@dataclass(frozen=True)
class ValueEntry:
    """One value of a bundle: its name, logical shape and serialized bytes."""

    name: str
    shape: tuple[int, ...]
    data: bytes | memoryview


@dataclass(frozen=True)
class Bundle:
    """A bundle whose header has been validated; ``values`` are still opaque bytes."""

    kind: BundleKind
    kernel_id: str
    spec_hash: str
    tile_index: int
    values: tuple[ValueEntry, ...]

    def value(self, name: str) -> ValueEntry:
        """The value called ``name``."""
        for entry in self.values:
            if entry.name == name:
                return entry
        raise BundleMismatchError(f"bundle has no value {name!r}")


def _short_str(text: str, what: str) -> bytes:
    raw = text.encode("ascii")
    if not 0 < len(raw) < 256:
        raise BundleFormatError(f"{what} {text!r} must be 1..255 ASCII characters")
    return bytes([len(raw)]) + raw


def write_bundle(
    kind: BundleKind,
    kernel_id: str,
    spec_hash: str,
    values: Sequence[ValueEntry],
    tile_index: int = NO_TILE,
) -> bytes:
    """Serialize a bundle (header then values)."""
    if not 0 < len(values) <= _MAX_VALUES:
        raise BundleFormatError(f"a bundle holds 1..{_MAX_VALUES} values, not {len(values)}")
    spec = bytes.fromhex(spec_hash)
    if len(spec) != 32:
        raise BundleFormatError("the client-spec hash must be 32 bytes (64 hex digits)")
    version = int(kernel_id.rsplit("@", 1)[1])
    body = bytearray()
    body += _short_str(kernel_id, "kernel id")
    body += struct.pack("<H", version) + spec + struct.pack("<IB", tile_index, len(values))
    for entry in values:
        body += _short_str(entry.name, "value name")
        if len(entry.shape) > _MAX_NDIM:
            raise BundleFormatError(f"value {entry.name!r} has more than {_MAX_NDIM} dimensions")
        body += struct.pack(f"<B{len(entry.shape)}I", len(entry.shape), *entry.shape)
        body += struct.pack("<Q", len(entry.data))
    header_len = _FIXED.size + len(body)
    if header_len > _MAX_HEADER:
        raise BundleFormatError(f"bundle header of {header_len} bytes is too long")
    out = bytearray(_FIXED.pack(MAGIC, FORMAT_VERSION, int(kind), 0, header_len))
    out += body
    for entry in values:
        out += entry.data
    return bytes(out)


def bundle_hash(data: bytes | memoryview) -> str:
    """The content hash of a bundle: sha256, hex."""
    return hashlib.sha256(data).hexdigest()


class _Reader:
    def __init__(self, view: memoryview, end: int) -> None:
        self.view, self.pos, self.end = view, _FIXED.size, end

    def take(self, fmt: str) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        if self.pos + size > self.end:
            raise BundleFormatError("bundle header is truncated")
        out = struct.unpack_from(fmt, self.view, self.pos)
        self.pos += size
        return tuple(int(x) for x in out)

    def raw(self, size: int) -> bytes:
        if self.pos + size > self.end:
            raise BundleFormatError("bundle header is truncated")
        out = bytes(self.view[self.pos : self.pos + size])
        self.pos += size
        return out

    def text(self, what: str) -> str:
        (length,) = self.take("<B")
        raw = self.raw(length)
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise BundleFormatError(f"bundle {what} is not ASCII") from exc
        if not text.isprintable():
            raise BundleFormatError(f"bundle {what} holds unprintable characters")
        return text


def read_bundle(
    data: bytes | memoryview,
    *,
    kind: BundleKind,
    kernel_id: str,
    spec_hash: str,
    expected: Sequence[tuple[str, tuple[int, ...], int]],
    tile_index: int | None = None,
) -> Bundle:
    """Validate a bundle's header against what the caller expects, without parsing values.

    ``expected`` lists ``(name, shape, max_bytes)`` per value, in order. Every mismatch raises
    BundleFormatError (malformed, truncated, oversized) or BundleMismatchError (well formed, but
    for another kind, kernel, version, key set or tile) with a message that says which.
    """
    view = memoryview(data)
    got_kind, header_len = _read_fixed_header(view, kind)
    reader = _Reader(view, header_len)
    got_id, got_spec, got_tile = _read_identity(
        reader, kernel_id, spec_hash, tile_index, len(expected)
    )
    entries = _read_value_entries(reader, expected)
    if reader.pos != header_len:
        raise BundleFormatError("bundle header length does not match its fields")
    values = _slice_values(view, header_len, entries)
    return Bundle(BundleKind(got_kind), got_id, got_spec, got_tile, values)


def _read_fixed_header(view: memoryview, kind: BundleKind) -> tuple[int, int]:
    """Check the fixed-size prefix (magic, format, kind, header length) and return the bundle's
    kind and header length; the length is bounded here so that no later read can pass it."""
    if len(view) < _FIXED.size:
        raise BundleFormatError(
            f"bundle of {len(view)} bytes is truncated: even the fixed header needs {_FIXED.size}"
        )
    magic, fmt, got_kind, _reserved, header_len = _FIXED.unpack_from(view, 0)
    if magic != MAGIC:
        raise BundleFormatError(
            "not a blindframe bundle (bad magic bytes)", hint="is this the right file or CID?"
        )
    if fmt != FORMAT_VERSION:
        raise BundleMismatchError(
            f"bundle format version {fmt} is not supported (this node reads {FORMAT_VERSION})",
            hint="upgrade blindframe on the older side",
        )
    if got_kind not in {k.value for k in BundleKind}:
        raise BundleFormatError(f"unknown bundle kind {got_kind}")
    if got_kind != kind:
        raise BundleMismatchError(f"expected a {kind.name} bundle, got {BundleKind(got_kind).name}")
    if not _FIXED.size < header_len <= min(_MAX_HEADER, len(view)):
        raise BundleFormatError(
            f"bundle header length {header_len} is impossible for {len(view)} bytes"
        )
    return int(got_kind), int(header_len)


def _read_identity(
    reader: _Reader,
    kernel_id: str,
    spec_hash: str,
    tile_index: int | None,
    value_count: int,
) -> tuple[str, str, int]:
    """Read what the bundle is for (kernel id and version, client-spec hash, tile, value count)
    and check it against the caller's expectations; returns the kernel id, spec hash and tile.

    All fields are read before any is compared, so a truncated header is reported as such
    rather than as a mismatch of whichever field happened to be read first."""
    got_id = reader.text("kernel id")
    (version,) = reader.take("<H")
    got_spec = reader.raw(32).hex()
    got_tile, count = reader.take("<IB")
    if got_id != kernel_id:
        raise BundleMismatchError(f"bundle is for kernel {got_id!r}, expected {kernel_id!r}")
    if version != int(kernel_id.rsplit("@", 1)[1]):
        raise BundleMismatchError(f"bundle says kernel version {version} but its id is {got_id!r}")
    if got_spec != spec_hash:
        raise BundleMismatchError(
            f"bundle was made for client specs {got_spec[:16]}…, this node compiled "
            f"{spec_hash[:16]}…",
            hint="client and worker run different blindframe/Concrete versions or key sets",
        )
    if tile_index is not None and got_tile != tile_index:
        raise BundleMismatchError(f"bundle is for tile {got_tile}, expected tile {tile_index}")
    if count != value_count:
        raise BundleMismatchError(f"bundle holds {count} values, expected {value_count}")
    return got_id, got_spec, got_tile


def _read_value_entries(
    reader: _Reader, expected: Sequence[tuple[str, tuple[int, ...], int]]
) -> list[tuple[str, tuple[int, ...], int]]:
    """Read each value's header entry (name, shape, byte length) and check it against
    ``expected``; the length is capped by what the expected shape can need, so a header cannot
    make the caller trust an arbitrarily large value."""
    entries: list[tuple[str, tuple[int, ...], int]] = []
    for name, shape, max_bytes in expected:
        got_name = reader.text("value name")
        (ndim,) = reader.take("<B")
        if ndim > _MAX_NDIM:
            raise BundleFormatError(f"value {got_name!r} claims {ndim} dimensions")
        dims = reader.take(f"<{ndim}I")
        (length,) = reader.take("<Q")
        if got_name != name:
            raise BundleMismatchError(f"bundle value {got_name!r} found where {name!r} belongs")
        if dims != shape:
            raise BundleMismatchError(f"bundle value {name!r} has shape {dims}, expected {shape}")
        if length > max_bytes:
            raise BundleFormatError(
                f"bundle value {name!r} claims {length} bytes, more than the {max_bytes} "
                "its shape can need"
            )
        entries.append((name, dims, length))
    return entries


def _slice_values(
    view: memoryview, header_len: int, entries: Sequence[tuple[str, tuple[int, ...], int]]
) -> tuple[ValueEntry, ...]:
    """Check that the announced value lengths add up to exactly the rest of the buffer, then cut
    it into the values (views, not copies: Concrete values can be large)."""
    total = header_len + sum(e[2] for e in entries)
    if len(view) < total:
        raise BundleFormatError(
            f"bundle is truncated: {len(view)} bytes, its header announces {total}"
        )
    if len(view) > total:
        raise BundleFormatError(
            f"bundle is oversized: {len(view)} bytes, its header announces {total}"
        )
    values = []
    pos = header_len
    for name, dims, length in entries:
        values.append(ValueEntry(name, dims, view[pos : pos + length]))
        pos += length
    return tuple(values)


def _dims(msg: object, ref: StructRef | None) -> tuple[int, ...]:
    from blindframe.fhe_core._capnp import Message

    assert isinstance(msg, Message)
    if ref is None:
        raise BundleFormatError("a Concrete value has no shape")
    lst = msg.pointer(ref, 0)
    if not isinstance(lst, tuple) or lst[2] != 4:
        raise BundleFormatError("a Concrete value's shape is not a list of uint32")
    seg, start, _elem, count = lst
    if count > _MAX_NDIM + 1:
        raise BundleFormatError("a Concrete value's shape has too many dimensions")
    raw = msg.bytes_of((seg, start, 2, 4 * count))
    return tuple(int(x) for x in np.frombuffer(raw, dtype="<u4"))


def value_payload(data: bytes | memoryview, shape: tuple[int, ...], per_value: int) -> memoryview:
    """Check a serialized Concrete value structurally; return its raw payload bytes.

    The value must be a tensor of ``shape`` whose every element is ``per_value`` uint64 words
    (an LWE ciphertext: mask then body; 3 words for a seeded, compressed input). Raises
    BundleFormatError otherwise, without handing the bytes to Concrete.
    """
    msg = read_message(data)
    root = msg.root()
    payload = msg.pointer(root, 0)
    raw_info = msg.pointer(root, 1)
    if not isinstance(payload, StructRef) or not isinstance(raw_info, StructRef):
        raise BundleFormatError("a Concrete value lacks its payload or its shape")
    shape_ref = msg.pointer(raw_info, 0)
    dims = _dims(msg, shape_ref if isinstance(shape_ref, StructRef) else None)
    if dims != (*shape, per_value):
        raise BundleFormatError(
            f"a Concrete value has shape {dims}, expected {(*shape, per_value)}"
        )
    blobs = msg.pointer(payload, 0)
    if not isinstance(blobs, tuple):
        raise BundleFormatError("a Concrete value's payload is not a list")
    parts = [msg.follow_at(blobs[0], word) for word in msg.list_pointers(blobs)]
    chunks = []
    for part in parts:
        if not isinstance(part, tuple):
            raise BundleFormatError("a Concrete value's payload holds a non-byte item")
        chunks.append(msg.bytes_of(part))
    want = int(np.prod(dims)) * 8
    got = sum(len(c) for c in chunks)
    if got != want:
        raise BundleFormatError(f"a Concrete value carries {got} payload bytes, expected {want}")
    if len(chunks) == 1:
        return chunks[0]
    return memoryview(b"".join(bytes(c) for c in chunks))
