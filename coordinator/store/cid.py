"""Content identifiers: parse, print (CIDv0 base58btc, CIDv1 base32) and check a block's hash."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from blindframe.coordinator.store.errors import InvalidCidError

__all__ = ["DAG_PB", "RAW", "SHA2_256", "Cid", "decode_varint", "encode_varint"]

DAG_PB = 0x70
RAW = 0x55
SHA2_256 = 0x12
_SHA2_256_LENGTH = 32
_CODECS = {DAG_PB: "dag-pb", RAW: "raw"}
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {char: index for index, char in enumerate(_B58)}
_MAX_TEXT = 200  # a sha2-256 CID is 46 (v0) or 59 (v1, base32) characters


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128, as multiformats and protobuf use it."""
    if value < 0:
        raise ValueError(f"varint must not be negative (not {value})")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes | memoryview, offset: int) -> tuple[int, int]:
    """Read an unsigned varint at ``offset``; returns (value, offset after it)."""
    value = 0
    shift = 0
    while True:
        if offset >= len(data):
            raise ValueError("truncated varint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        if char not in _B58_INDEX:
            raise ValueError(f"{char!r} is not a base58btc character")
        number = number * 58 + _B58_INDEX[char]
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    leading = len(text) - len(text.lstrip("1"))
    return b"\x00" * leading + body


def _b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    chars: list[str] = []
    while number:
        number, remainder = divmod(number, 58)
        chars.append(_B58[remainder])
    leading = len(data) - len(data.lstrip(b"\x00"))
    return "1" * leading + "".join(reversed(chars))


@dataclass(frozen=True)
class Cid:
    """A CID whose hash the store can check: sha2-256 over a dag-pb or raw block.

    Two CIDs of the same block compare equal whatever their version (``QmX`` and its ``bafy``
    form name one block): equality and hashing use codec and multihash only.
    """

    version: int
    codec: int
    digest: bytes

    def __post_init__(self) -> None:
        if self.version not in (0, 1):
            raise InvalidCidError(f"CID version must be 0 or 1 (not {self.version})")
        if self.codec not in _CODECS:
            raise InvalidCidError(
                f"CID codec 0x{self.codec:x} is not supported",
                hint="expected dag-pb (0x70) or raw (0x55): UnixFS files as `ipfs add` makes them",
            )
        if self.version == 0 and self.codec != DAG_PB:
            raise InvalidCidError("a CIDv0 is always dag-pb")
        if len(self.digest) != _SHA2_256_LENGTH:
            raise InvalidCidError(f"a sha2-256 digest has 32 bytes (not {len(self.digest)})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cid):
            return NotImplemented
        return (self.codec, self.digest) == (other.codec, other.digest)

    def __hash__(self) -> int:
        return hash((self.codec, self.digest))

    @classmethod
    def parse(cls, text: str) -> Cid:
        """Read ``Qm...`` (v0), ``b...`` (v1 base32) or ``z...`` (v1 base58btc); ``/ipfs/`` ok."""
        if not isinstance(text, str):
            raise InvalidCidError(f"a CID is text (not {type(text).__name__})")
        value = text.strip().removeprefix("/ipfs/")
        if not value or len(value) > _MAX_TEXT:
            raise InvalidCidError(f"not a CID: {text[:80]!r}")
        try:
            if len(value) == 46 and value.startswith("Qm"):
                raw = _b58decode(value)
            elif value[0] == "b":
                body = value[1:].upper()
                raw = base64.b32decode(body + "=" * (-len(body) % 8))
            elif value[0] == "z":
                raw = _b58decode(value[1:])
            else:
                raise InvalidCidError(
                    f"not a CID: {value[:80]!r}",
                    hint="expected a CIDv0 (Qm..., 46 characters) or a CIDv1 in base32 (b...)",
                )
        except ValueError as exc:
            if isinstance(exc, InvalidCidError):
                raise
            raise InvalidCidError(f"not a CID: {value[:80]!r} ({exc})") from None
        return cls.from_bytes(raw)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Cid:
        """Read a binary CID: a bare sha2-256 multihash (v0) or 0x01 codec multihash (v1)."""
        try:
            if len(raw) == 34 and raw[0] == SHA2_256 and raw[1] == _SHA2_256_LENGTH:
                return cls(0, DAG_PB, bytes(raw[2:]))
            version, offset = decode_varint(raw, 0)
            if version != 1:
                raise InvalidCidError(f"binary CID with version {version}: expected 1")
            codec, offset = decode_varint(raw, offset)
            hash_code, offset = decode_varint(raw, offset)
            length, offset = decode_varint(raw, offset)
        except ValueError as exc:
            if isinstance(exc, InvalidCidError):
                raise
            raise InvalidCidError(f"malformed binary CID ({exc})") from None
        if hash_code != SHA2_256:
            raise InvalidCidError(
                f"CID hash function 0x{hash_code:x} is not supported",
                hint="only sha2-256 (the `ipfs add` default) is verified by this store",
            )
        if length != len(raw) - offset:
            raise InvalidCidError(
                f"binary CID declares a {length}-byte digest but carries {len(raw) - offset}"
            )
        return cls(1, codec, bytes(raw[offset:]))

    @classmethod
    def of_block(cls, block: bytes, *, codec: int = DAG_PB, version: int = 0) -> Cid:
        """The CID naming ``block`` (sha2-256)."""
        return cls(version, codec, hashlib.sha256(block).digest())

    @property
    def multihash(self) -> bytes:
        """The sha2-256 multihash: code, length, digest."""
        return bytes((SHA2_256, _SHA2_256_LENGTH)) + self.digest

    @property
    def codec_name(self) -> str:
        """``dag-pb`` or ``raw``."""
        return _CODECS[self.codec]

    def to_bytes(self) -> bytes:
        """The binary form links carry inside a dag-pb block."""
        if self.version == 0:
            return self.multihash
        return b"\x01" + encode_varint(self.codec) + self.multihash

    def v0(self) -> Cid:
        """The same dag-pb block named as CIDv0."""
        if self.codec != DAG_PB:
            raise InvalidCidError(f"{self} is a raw block: it has no CIDv0")
        return Cid(0, DAG_PB, self.digest)

    def v1(self) -> Cid:
        """The same block named as CIDv1."""
        return Cid(1, self.codec, self.digest)

    def matches(self, block: bytes) -> bool:
        """Whether ``block`` hashes to this CID."""
        return hmac.compare_digest(hashlib.sha256(block).digest(), self.digest)

    def __str__(self) -> str:
        if self.version == 0:
            return _b58encode(self.multihash)
        return "b" + base64.b32encode(self.to_bytes()).decode("ascii").lower().rstrip("=")

    def __repr__(self) -> str:
        return f"Cid({str(self)!r})"
