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
