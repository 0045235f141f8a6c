"""Decoding what a node sends: malformed or non-file DAGs are refused with a clear error."""

from __future__ import annotations

import pytest

from blindframe.coordinator.store import ContentIntegrityError, UnsupportedContentError
from blindframe.coordinator.store.cid import RAW, Cid
from blindframe.coordinator.store.unixfs import (
    PbLink,
    PbNode,
    decode_file_block,
    decode_pb_node,
    encode_pb_node,
    encode_unixfs_file,
)


def test_encode_decode_round_trip() -> None:
    child = Cid.of_block(b"leaf")
    node = PbNode((PbLink(child, "", 12),), encode_unixfs_file(None, 4, [4]))
    block = encode_pb_node(node)
    assert decode_pb_node(block) == node
    decoded = decode_file_block(Cid.of_block(block), block)
    assert decoded.children == node.links
    assert decoded.blocksizes == (4,)


def test_raw_leaf_is_its_own_data() -> None:
    cid = Cid.of_block(b"raw bytes", codec=RAW, version=1)
    assert decode_file_block(cid, b"raw bytes").data == b"raw bytes"


def test_directory_is_not_a_file() -> None:
    block = encode_pb_node(PbNode((), b"\x08\x01"))  # UnixFS type 1: directory
    with pytest.raises(UnsupportedContentError, match="directory, not a file"):
        decode_file_block(Cid.of_block(block), block)


def test_sizes_that_contradict_each_other_are_rejected() -> None:
    child = Cid.of_block(b"leaf")
    lying = PbNode((PbLink(child, "", 12),), encode_unixfs_file(None, 999, [4]))
    block = encode_pb_node(lying)
    with pytest.raises(ContentIntegrityError, match="declares 999 bytes"):
        decode_file_block(Cid.of_block(block), block)
    missing = PbNode((PbLink(child, "", 12),), encode_unixfs_file(None, 4))
    block = encode_pb_node(missing)
    with pytest.raises(ContentIntegrityError, match="1 links but 0 block sizes"):
        decode_file_block(Cid.of_block(block), block)


@pytest.mark.parametrize(
    "block",
    [
        b"\x0a\x05abc",  # a length that runs past the end
        b"\x1a\x00",  # field 3 does not exist in dag-pb
        b"\x0a\x00\x12\x00",  # a link after the data
        b"\x08",  # truncated varint
    ],
)
def test_malformed_dag_pb_is_rejected(block: bytes) -> None:
    with pytest.raises(ContentIntegrityError):
        decode_pb_node(block)


def test_encoding_is_kubos_byte_order() -> None:
    # Links (field 2) before Data (field 1), Name written even when empty, blocksizes unpacked:
    # protobuf alone would write Data first and change every CID.
    child = Cid.parse("QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN")
    block = encode_pb_node(PbNode((PbLink(child, "", 14),), encode_unixfs_file(None, 6, [6])))
    link = b"\x0a\x22" + child.to_bytes() + b"\x12\x00\x18\x0e"
    assert block == b"\x12\x28" + link + b"\x0a\x06\x08\x02\x18\x06\x20\x06"


def test_packed_blocksizes_are_read() -> None:
    child = Cid.of_block(b"leaf")
    data = b"\x08\x02\x18\x09\x22\x02\x04\x05"  # File, filesize 9, blocksizes [4, 5] packed
    links = (PbLink(child, "", 10), PbLink(child, "", 11))
    block = encode_pb_node(PbNode(links, data))
    assert decode_file_block(Cid.of_block(block), block).blocksizes == (4, 5)


def test_unknown_unixfs_type_is_unsupported() -> None:
    block = encode_pb_node(PbNode((), b"\x08\x07"))  # a DataType the schema does not list
    with pytest.raises(UnsupportedContentError, match="type 7, not a file"):
        decode_file_block(Cid.of_block(block), block)


def test_metadata_fields_are_ignored_and_unknown_ones_refused() -> None:
    with_mode = encode_pb_node(PbNode((), b"\x08\x02\x12\x01x\x18\x01\x38\xa4\x03"))  # mode 0o644
    assert decode_file_block(Cid.of_block(with_mode), with_mode).data == b"x"
    unknown = encode_pb_node(PbNode((), b"\x08\x02\x48\x01"))  # field 9
    with pytest.raises(ContentIntegrityError, match="field 9"):
        decode_file_block(Cid.of_block(unknown), unknown)


def test_link_name_that_is_not_utf8_is_replaced() -> None:
    child = Cid.of_block(b"leaf")
    block = b"\x12\x2a\x0a\x22" + child.to_bytes() + b"\x12\x02\xff\xfe\x18\x00"
    assert decode_pb_node(block).links == (PbLink(child, "\ufffd\ufffd", 0),)


@pytest.mark.parametrize(
    "block",
    [
        b"\x0a\x00\x0a\x00",  # Data twice
        b"\x12\x02\x18\x00",  # a link without a hash
        b"\x12\x02\x08\x00",  # a link with a varint where the hash belongs
        b"\x0a\x80\x00",  # a length that is not minimally encoded
        b"\x09" + bytes(8),  # a fixed64 field
    ],
)
def test_non_canonical_dag_pb_is_rejected(block: bytes) -> None:
    with pytest.raises(ContentIntegrityError):
        decode_pb_node(block)


def test_link_fields_out_of_order_are_rejected() -> None:
    child = Cid.of_block(b"leaf")
    link = b"\x12\x00\x0a\x22" + child.to_bytes() + b"\x18\x00"  # Name before Hash
    with pytest.raises(ContentIntegrityError, match="canonical"):
        decode_pb_node(b"\x12\x28" + link)


def test_link_to_unsupported_cid() -> None:
    block = b"\x12\x06\x0a\x04\x01\x71\x12\x00"  # dag-cbor, empty digest
    with pytest.raises(UnsupportedContentError, match="unsupported CID"):
        decode_pb_node(block)
