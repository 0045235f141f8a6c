"""Content identifiers: parse, print (CIDv0 base58btc, CIDv1 base32) and check a block's hash.

The multiformats codecs (multibase, varint, multicodec, multihash, the binary CID) come from the
`multiformats` package; this module narrows them to what the store can verify and compare.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import cached_property

from multiformats import CID, multicodec, multihash, varint

from blindframe.coordinator.store.errors import InvalidCidError

__all__ = ["DAG_PB", "RAW", "SHA2_256", "Cid"]

DAG_PB = multicodec.get("dag-pb").code  # 0x70
RAW = multicodec.get("raw").code  # 0x55
SHA2_256 = multicodec.get("sha2-256").code  # 0x12
_SHA2_256_LENGTH = 32
_CODECS = {DAG_PB: "dag-pb", RAW: "raw"}
_MAX_TEXT = 200  # a sha2-256 CID is 46 (v0) or 59 (v1, base32) characters
# multiformats reports bad input as ValueError (bad base, varint, multihash, version) or
# KeyError (unknown multibase prefix or multicodec).
_DECODE_ERRORS = (ValueError, KeyError)


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
        if len(value) == 46 and value.startswith("Qm"):
            encoded = value
        elif value[0] == "b":
            encoded = "b" + value[1:].lower()  # base32 is case-insensitive; multibase 'b' is lower
        elif value[0] == "z":
            encoded = value
        else:
            raise InvalidCidError(
                f"not a CID: {value[:80]!r}",
                hint="expected a CIDv0 (Qm..., 46 characters) or a CIDv1 in base32 (b...)",
            )
        try:
            decoded = CID.decode(encoded)
        except _DECODE_ERRORS as exc:
            raise InvalidCidError(f"not a CID: {value[:80]!r} ({exc})") from None
        return cls._from_multiformats(decoded)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Cid:
        """Read a binary CID: a bare sha2-256 multihash (v0) or 0x01 codec multihash (v1)."""
        raw = bytes(raw)
        form = _BINARY_FORMS.get(raw[:-_SHA2_256_LENGTH])
        if form is not None and len(raw) > _SHA2_256_LENGTH:
            return cls(*form, raw[-_SHA2_256_LENGTH:])
        try:
            decoded = CID.decode(bytes(raw))
        except _DECODE_ERRORS as exc:
            raise InvalidCidError(f"malformed binary CID ({exc})") from None
        return cls._from_multiformats(decoded)

    @classmethod
    def _from_multiformats(cls, decoded: CID) -> Cid:
        if decoded.hashfun.code != SHA2_256:
            raise InvalidCidError(
                f"CID hash function 0x{decoded.hashfun.code:x} is not supported",
                hint="only sha2-256 (the `ipfs add` default) is verified by this store",
            )
        return cls(decoded.version, decoded.codec.code, decoded.raw_digest)

    @classmethod
    def of_block(cls, block: bytes, *, codec: int = DAG_PB, version: int = 0) -> Cid:
        """The CID naming ``block`` (sha2-256)."""
        return cls(version, codec, hashlib.sha256(block).digest())

    @property
    def multihash(self) -> bytes:
        """The sha2-256 multihash: code, length, digest."""
        return multihash.wrap(self.digest, SHA2_256)

    def to_bytes(self) -> bytes:
        """The binary form links carry inside a dag-pb block."""
        if self.version == 0:
            return self.multihash
        return varint.encode(1) + varint.encode(self.codec) + self.multihash

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

    @cached_property
    def _text(self) -> str:
        # multiformats checks its arguments' types at run time: ~0.5 ms a CID, so once per Cid.
        base = "base58btc" if self.version == 0 else "base32"
        return str(CID(base, self.version, self.codec, self.multihash))

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Cid({str(self)!r})"


# The binary prefixes (everything before the digest) of the forms a Cid can take, as multiformats
# encodes them. Links are read through this table: multiformats checks its arguments' types at run
# time (~0.3 ms a CID, 50 ms for a 174-link node); other bytes go to its decoder, which says what
# is wrong with them.
_BINARY_FORMS = {
    Cid(version, codec, bytes(_SHA2_256_LENGTH)).to_bytes()[:-_SHA2_256_LENGTH]: (version, codec)
    for version, codec in ((0, DAG_PB), (1, DAG_PB), (1, RAW))
}
