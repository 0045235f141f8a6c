"""UnixFS files as dag-pb blocks: decode them to verify downloads, build Kubo's `ipfs add` DAG.

`KuboDagBuilder` computes, in one streaming pass and without a node, the CID that Kubo's
`ipfs add` gives a file with its defaults: CIDv0, fixed 256 KiB chunks (`size-262144`), balanced
layout with at most 174 links per node (go-unixfs `DefaultLinksPerBlock`), leaves that are dag-pb
nodes of UnixFS type File (raw-leaves false), a single-chunk file being its own root. The layout
follows go-unixfs `importer/balanced`: the tree grows one level at a time, every subtree but the
last is full, and a node is made only when data reaches it. The store uses it to check the CID a
node returns for an upload (a node with other defaults, or one that altered the bytes, is caught).

The wire formats are the specs' own schemas, proto/merkledag.proto (dag-pb) and proto/unixfs.proto,
compiled by protoc (proto/*_pb2.py). What protobuf does not do is kept here: dag-pb's canonical
order (links before data) for encoding, and the strict spec's checks for decoding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet
from multiformats import varint

from blindframe.coordinator.store.cid import RAW, Cid
from blindframe.coordinator.store.errors import (
    ContentIntegrityError,
    InvalidCidError,
    UnsupportedContentError,
)
from blindframe.coordinator.store.proto import merkledag_pb2, unixfs_pb2

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

_DataType = unixfs_pb2.Data.DataType
_TYPE_NAMES: dict[int, str] = {
    _DataType.Raw: "raw",
    _DataType.Directory: "directory",
    _DataType.File: "file",
    _DataType.Metadata: "metadata",
    _DataType.Symlink: "symlink",
    _DataType.HAMTShard: "HAMT-sharded directory",
}
# UnixFS fields that describe metadata, not the bytes: hashType, fanout, mode, mtime.
_METADATA_FIELDS = (5, 6, 7, 8)
_VARINT, _LEN = 0, 2  # the protobuf wire types UnixFS and dag-pb use
# Bytes of PBNode.Data's key: an empty Data field is the key and a zero length.
_DATA_KEY_SIZE = len(merkledag_pb2.PBNode(Data=b"").SerializeToString()) - 1


def _unknown_fields(message: Message) -> list[tuple[int, int, object]]:
    """(field number, wire type, value) of what the schema does not declare, as protobuf kept it."""
    unknown = UnknownFieldSet(message)
    return [
        (unknown[index].field_number, unknown[index].wire_type, unknown[index].data)
        for index in range(len(unknown))
    ]


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


def _canonical(links: Iterable[merkledag_pb2.PBLink], data: bytes | None) -> bytes:
    # protobuf writes fields by number (Data, then Links); dag-pb's canonical form, the one Kubo
    # hashes, is Links then Data. Concatenated protobuf messages merge, so two messages, links
    # first, are one PBNode in Kubo's order.
    head = merkledag_pb2.PBNode(Links=links).SerializeToString()
    if data is None:
        return head
    return head + merkledag_pb2.PBNode(Data=data).SerializeToString()


def encode_pb_node(node: PbNode) -> bytes:
    """dag-pb's canonical bytes: links first (field 2), then data (field 1), as Kubo writes."""
    links = (
        merkledag_pb2.PBLink(Hash=link.cid.to_bytes(), Name=link.name, Tsize=link.tsize)
        for link in node.links
    )
    return _canonical(links, node.data)


def decode_pb_node(block: bytes) -> PbNode:
    """Parse a dag-pb block; unknown fields and out-of-order parts are rejected (strict spec)."""
    try:
        message = merkledag_pb2.PBNode.FromString(block)
    except DecodeError as exc:
        raise ContentIntegrityError(f"malformed dag-pb node: {exc}") from None
    for number, _wire, _value in _unknown_fields(message):
        raise ContentIntegrityError(f"malformed dag-pb node: unexpected field {number}")
    for link in message.Links:
        for number, _wire, _value in _unknown_fields(link):
            raise ContentIntegrityError(f"malformed dag-pb link: unexpected field {number}")
    data = message.Data if message.HasField("Data") else None
    # The strict spec also wants links before data, each field once, link fields in order and
    # minimal varints; protobuf accepts all of those. So the block must start with the links'
    # canonical bytes, and what follows (only Data fields can follow: every link is in that
    # prefix) must be exactly as long as one canonical Data field, the last one parsed. Sizes,
    # not bytes, for the data: copying a 256 KiB payload into a message costs more than the parse.
    links = _canonical(message.Links, None)
    data_size = 0 if data is None else _DATA_KEY_SIZE + len(varint.encode(len(data))) + len(data)
    if not block.startswith(links) or len(block) != len(links) + data_size:
        raise ContentIntegrityError(
            "malformed dag-pb node: not in canonical form (links, then data; each field once)"
        )
    return PbNode(tuple(_decode_link(link) for link in message.Links), data)


def _decode_link(link: merkledag_pb2.PBLink) -> PbLink:
    if not link.HasField("Hash"):
        raise ContentIntegrityError("malformed dag-pb link: no hash")
    try:
        cid = Cid.from_bytes(link.Hash)
    except InvalidCidError as exc:
        raise UnsupportedContentError(f"dag-pb link to an unsupported CID: {exc}") from None
    # upb hands a proto2 string that is not UTF-8 back as bytes instead of failing.
    name: str | bytes = link.Name
    if isinstance(name, bytes):
        name = name.decode("utf-8", errors="replace")
    return PbLink(cid, name, link.Tsize)


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
    message = unixfs_pb2.Data(Type=_DataType.File, filesize=filesize, blocksizes=blocksizes)
    if data is not None:
        message.Data = data
    return message.SerializeToString()


def decode_file_block(cid: Cid, block: bytes) -> FileNode:
    """Read a block already checked against ``cid`` as part of a UnixFS file."""
    if cid.codec == RAW:
        return FileNode(block, (), (), len(block))
    node = decode_pb_node(block)
    if node.data is None:
        raise UnsupportedContentError(f"{cid} is a dag-pb node without UnixFS data: not a file")
    try:
        unixfs = unixfs_pb2.Data.FromString(node.data)
    except DecodeError as exc:
        raise ContentIntegrityError(f"malformed UnixFS data in {cid}: {exc}") from None
    kind: int | None = unixfs.Type if unixfs.HasField("Type") else None
    for number, wire, value in _unknown_fields(unixfs):
        if number == 1 and wire == _VARINT and isinstance(value, int):
            kind = value  # a DataType this schema does not know: reported below by number
        elif number in _METADATA_FIELDS and wire in (_VARINT, _LEN):
            continue  # metadata that does not change the bytes
        else:
            raise ContentIntegrityError(f"malformed UnixFS data in {cid}: field {number}")
    if kind not in (_DataType.File, _DataType.Raw):
        name = _TYPE_NAMES.get(kind if kind is not None else -1, f"type {kind}")
        raise UnsupportedContentError(
            f"{cid} is a UnixFS {name}, not a file", hint="the store fetches single files only"
        )
    payload = unixfs.Data
    filesize = unixfs.filesize if unixfs.HasField("filesize") else None
    blocksizes = tuple(unixfs.blocksizes)
    if len(blocksizes) != len(node.links):
        raise ContentIntegrityError(
            f"{cid} has {len(node.links)} links but {len(blocksizes)} block sizes"
        )
    if filesize is not None and filesize != len(payload) + sum(blocksizes):
        raise ContentIntegrityError(
            f"{cid} declares {filesize} bytes but holds {len(payload) + sum(blocksizes)}"
        )
    return FileNode(payload, node.links, blocksizes, filesize)


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
