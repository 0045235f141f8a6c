"""UnixFS files as dag-pb blocks: decode them to verify downloads, build Kubo's `ipfs add` DAG.

`KuboDagBuilder` computes, in one streaming pass and without a node, the CID that Kubo's
`ipfs add` gives a file with its defaults: CIDv0, fixed 256 KiB chunks (`size-262144`), balanced
layout with at most 174 links per node (go-unixfs `DefaultLinksPerBlock`), leaves that are dag-pb
nodes of UnixFS type File (raw-leaves false), a single-chunk file being its own root. The layout
follows go-unixfs `importer/balanced`: the tree grows one level at a time, every subtree but the
last is full, and a node is made only when data reaches it. The store uses it to check the CID a
node returns for an upload (a node with other defaults, or one that altered the bytes, is caught).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from blindframe.coordinator.store.cid import RAW, Cid, decode_varint, encode_varint
from blindframe.coordinator.store.errors import (
    ContentIntegrityError,
    InvalidCidError,
    UnsupportedContentError,
)

__all__ = [
    "KUBO_CHUNK_SIZE",
    "KUBO_MAX_LINKS",
    "MAX_BLOCK_SIZE",
    "FileNode",
    "KuboDagBuilder",
    "PbLink",
    "PbNode",
    "decode_file_block",
    "decode_pb_node",
    "encode_pb_node",
    "encode_unixfs_file",
    "kubo_cid_of_bytes",
    "kubo_cid_of_file",
]

KUBO_CHUNK_SIZE = 262_144
KUBO_MAX_LINKS = 174
# Bitswap refuses blocks over 2 MiB: anything larger did not come from an honest node.
MAX_BLOCK_SIZE = 2 * 1024 * 1024

# UnixFS Data.DataType values (unixfs.proto).
_RAW_TYPE, _DIRECTORY, _FILE, _METADATA, _SYMLINK, _HAMT = 0, 1, 2, 3, 4, 5
_TYPE_NAMES = {
    _RAW_TYPE: "raw",
    _DIRECTORY: "directory",
    _FILE: "file",
    _METADATA: "metadata",
    _SYMLINK: "symlink",
    _HAMT: "HAMT-sharded directory",
}
_VARINT, _LEN = 0, 2


# ------------------------------------------------------------------------------ protobuf basics


def _key(field_number: int, wire_type: int) -> bytes:
    return encode_varint(field_number << 3 | wire_type)


def _bytes_field(field_number: int, value: bytes) -> bytes:
    return _key(field_number, _LEN) + encode_varint(len(value)) + value


def _varint_field(field_number: int, value: int) -> bytes:
    return _key(field_number, _VARINT) + encode_varint(value)


def _fields(data: bytes | memoryview, what: str) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield (field number, wire type, value) of a protobuf message; varint or bytes only."""
    view = memoryview(data)
    offset = 0
    try:
        while offset < len(view):
            key, offset = decode_varint(view, offset)
            number, wire = key >> 3, key & 7
            if wire == _VARINT:
                value, offset = decode_varint(view, offset)
                yield number, wire, value
            elif wire == _LEN:
                length, offset = decode_varint(view, offset)
                if offset + length > len(view):
                    raise ValueError("field runs past the end")
                yield number, wire, view[offset : offset + length]
                offset += length
            else:
                raise ValueError(f"wire type {wire} is not used by {what}")
    except ValueError as exc:
        raise ContentIntegrityError(f"malformed {what}: {exc}") from None


# ------------------------------------------------------------------------------ dag-pb


@dataclass(frozen=True)
class PbLink:
    """One link of a dag-pb node: the child's CID, name, and cumulative size."""

    cid: Cid
    name: str = ""
    tsize: int = 0


@dataclass(frozen=True)
class PbNode:
    """A dag-pb node: links, then the opaque data (UnixFS metadata for files)."""

    links: tuple[PbLink, ...]
    data: bytes | None


def encode_pb_node(node: PbNode) -> bytes:
    """dag-pb's canonical bytes: links first (field 2), then data (field 1), as Kubo writes."""
    out = bytearray()
    for link in node.links:
        body = (
            _bytes_field(1, link.cid.to_bytes())
            + _bytes_field(2, link.name.encode("utf-8"))
            + _varint_field(3, link.tsize)
        )
        out += _bytes_field(2, body)
    if node.data is not None:
        out += _bytes_field(1, node.data)
    return bytes(out)


def decode_pb_node(block: bytes) -> PbNode:
    """Parse a dag-pb block; unknown fields and out-of-order parts are rejected (strict spec)."""
    links: list[PbLink] = []
    data: bytes | None = None
    for number, wire, value in _fields(block, "dag-pb node"):
        if number == 2 and wire == _LEN and data is None:
            assert isinstance(value, memoryview)
            links.append(_decode_link(value))
        elif number == 1 and wire == _LEN and data is None:
            assert isinstance(value, memoryview)
            data = bytes(value)
        else:
            raise ContentIntegrityError(f"malformed dag-pb node: unexpected field {number}")
    return PbNode(tuple(links), data)


def _decode_link(raw: memoryview) -> PbLink:
    cid: Cid | None = None
    name = ""
    tsize = 0
    for number, wire, value in _fields(raw, "dag-pb link"):
        if number == 1 and wire == _LEN:
            assert isinstance(value, memoryview)
            try:
                cid = Cid.from_bytes(bytes(value))
            except InvalidCidError as exc:
                raise UnsupportedContentError(f"dag-pb link to an unsupported CID: {exc}") from None
        elif number == 2 and wire == _LEN:
            assert isinstance(value, memoryview)
            name = bytes(value).decode("utf-8", errors="replace")
        elif number == 3 and wire == _VARINT:
            assert isinstance(value, int)
            tsize = value
        else:
            raise ContentIntegrityError(f"malformed dag-pb link: unexpected field {number}")
    if cid is None:
        raise ContentIntegrityError("malformed dag-pb link: no hash")
    return PbLink(cid, name, tsize)


# ------------------------------------------------------------------------------ UnixFS


@dataclass(frozen=True)
class FileNode:
    """One verified block of a UnixFS file: its own bytes, then the children to read in order."""

    data: bytes
    children: tuple[PbLink, ...]
    blocksizes: tuple[int, ...]
    filesize: int | None


def encode_unixfs_file(data: bytes | None, filesize: int, blocksizes: Iterable[int] = ()) -> bytes:
    """UnixFS ``Data`` of a file node (proto2: blocksizes unpacked, one field each)."""
    out = bytearray(_varint_field(1, _FILE))
    if data is not None:
        out += _bytes_field(2, data)
    out += _varint_field(3, filesize)
    for size in blocksizes:
        out += _varint_field(4, size)
    return bytes(out)


def decode_file_block(cid: Cid, block: bytes) -> FileNode:
    """Read a block already checked against ``cid`` as part of a UnixFS file."""
    if cid.codec == RAW:
        return FileNode(block, (), (), len(block))
    node = decode_pb_node(block)
    if node.data is None:
        raise UnsupportedContentError(f"{cid} is a dag-pb node without UnixFS data: not a file")
    kind: int | None = None
    payload = b""
    filesize: int | None = None
    blocksizes: list[int] = []
    for number, wire, value in _fields(node.data, "UnixFS data"):
        if number == 1 and wire == _VARINT:
            assert isinstance(value, int)
            kind = value
        elif number == 2 and wire == _LEN:
            assert isinstance(value, memoryview)
            payload = bytes(value)
        elif number == 3 and wire == _VARINT:
            assert isinstance(value, int)
            filesize = value
        elif number == 4 and wire == _VARINT:
            assert isinstance(value, int)
            blocksizes.append(value)
        elif number == 4 and wire == _LEN:
            # Packed repeated field: legal protobuf even if Kubo writes them unpacked.
            assert isinstance(value, memoryview)
            offset = 0
            while offset < len(value):
                size, offset = decode_varint(value, offset)
                blocksizes.append(size)
        elif number in (5, 6, 7, 8):
            continue  # hashType, fanout, mode, mtime: metadata that does not change the bytes
        else:
            raise ContentIntegrityError(f"malformed UnixFS data in {cid}: field {number}")
    if kind not in (_FILE, _RAW_TYPE):
        name = _TYPE_NAMES.get(kind if kind is not None else -1, f"type {kind}")
        raise UnsupportedContentError(
            f"{cid} is a UnixFS {name}, not a file", hint="the store fetches single files only"
        )
    if len(blocksizes) != len(node.links):
        raise ContentIntegrityError(
            f"{cid} has {len(node.links)} links but {len(blocksizes)} block sizes"
        )
    if filesize is not None and filesize != len(payload) + sum(blocksizes):
        raise ContentIntegrityError(
            f"{cid} declares {filesize} bytes but holds {len(payload) + sum(blocksizes)}"
        )
    return FileNode(payload, node.links, tuple(blocksizes), filesize)


# ------------------------------------------------------------------------------ Kubo's DAG


@dataclass
class _Entry:
    cid: Cid
    filesize: int  # file bytes below it
    tsize: int  # block bytes below it, itself included (the link's Tsize)


@dataclass
class KuboDagBuilder:
    """Feed bytes in order; `finish()` gives the CID and cumulative size of Kubo's DAG for them.

    ``on_block`` (optional) receives each block with its CID, leaves first, root last.
    """

    chunk_size: int = KUBO_CHUNK_SIZE
    max_links: int = KUBO_MAX_LINKS
    _pending: bytearray = field(default_factory=bytearray)
    _levels: list[list[_Entry]] = field(default_factory=lambda: [[]])
    _total: int = 0
    _finished: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.chunk_size <= 1024 * 1024:
            raise ValueError(f"chunk_size must be 1..1048576 (not {self.chunk_size})")
        if self.max_links < 2:
            raise ValueError(f"max_links must be at least 2 (not {self.max_links})")

    @property
    def size(self) -> int:
        """File bytes fed so far."""
        return self._total

    def update(self, data: bytes | memoryview) -> None:
        """Feed the next bytes of the file."""
        if self._finished:
            raise RuntimeError("KuboDagBuilder.update() after finish()")
        self._total += len(data)
        view = memoryview(data)
        if self._pending:
            need = self.chunk_size - len(self._pending)
            self._pending += view[:need]
            view = view[need:]
            if len(self._pending) < self.chunk_size:
                return
            self._leaf(bytes(self._pending))
            self._pending.clear()
        while len(view) >= self.chunk_size:
            self._leaf(bytes(view[: self.chunk_size]))
            view = view[self.chunk_size :]
        self._pending += view

    def finish(self) -> tuple[Cid, int]:
        """The root CID (v0) and the DAG's cumulative size (what `ipfs add` prints as Size)."""
        if self._finished:
            raise RuntimeError("KuboDagBuilder.finish() called twice")
        self._finished = True
        if self._pending or self._total == 0:
            # The empty file is one leaf without data, as go-unixfs writes it.
            self._leaf(bytes(self._pending) if self._pending else None)
            self._pending.clear()
        level = 0
        # Every level below the top becomes one node; the top is the root once it holds one entry.
        while level < len(self._levels) - 1 or len(self._levels[level]) > 1:
            entries = self._levels[level]
            self._levels[level] = []
            self._add(level + 1, self._node(entries))
            level += 1
        root = self._levels[-1][0]
        return root.cid, root.tsize

    def _leaf(self, chunk: bytes | None) -> None:
        size = 0 if chunk is None else len(chunk)
        block = encode_pb_node(PbNode((), encode_unixfs_file(chunk, size)))
        self._add(0, _Entry(Cid.of_block(block), size, len(block)))

    def _node(self, entries: list[_Entry]) -> _Entry:
        filesize = sum(entry.filesize for entry in entries)
        data = encode_unixfs_file(None, filesize, (entry.filesize for entry in entries))
        links = tuple(PbLink(entry.cid, "", entry.tsize) for entry in entries)
        block = encode_pb_node(PbNode(links, data))
        return _Entry(Cid.of_block(block), filesize, len(block) + sum(e.tsize for e in entries))

    def _add(self, level: int, entry: _Entry) -> None:
        if level == len(self._levels):
            self._levels.append([])
        if len(self._levels[level]) == self.max_links:
            # This level's node is full and more data follows: close it one level up.
            full = self._levels[level]
            self._levels[level] = []
            self._add(level + 1, self._node(full))
        self._levels[level].append(entry)


def kubo_cid_of_bytes(data: bytes) -> Cid:
    """The CID `ipfs add` (Kubo defaults) gives these bytes."""
    builder = KuboDagBuilder()
    builder.update(data)
    return builder.finish()[0]


def kubo_cid_of_file(path: Path, *, read_size: int = 1024 * 1024) -> Cid:
    """The CID `ipfs add` (Kubo defaults) gives this file, read in pieces."""
    builder = KuboDagBuilder()
    with path.open("rb") as handle:
        _feed(builder, handle, read_size)
    return builder.finish()[0]


def _feed(builder: KuboDagBuilder, handle: BinaryIO, read_size: int) -> None:
    while piece := handle.read(read_size):
        builder.update(piece)
