"""A minimal, bounds-checked Cap'n Proto reader for Concrete's serialized values (no schema)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from blindframe.fhe_core.errors import BundleFormatError

__all__ = ["Message", "StructRef", "read_message"]

_WORD = 8
# A message of Concrete values for one tile stays far below this; deeper nesting means garbage.
_MAX_SEGMENTS = 512
_MAX_DEPTH = 16
# Bits per element of each list element size (void, bit, byte, 2, 4, 8 bytes, pointer; for a
# composite list, ``count`` is its length in words).
_ELEMENT_BITS = (0, 1, 8, 16, 32, 64, 64, 64)


@dataclass(frozen=True)
class StructRef:
    """Where a struct lives: its segment, data section (words) and pointer section."""

    segment: int
    data_offset: int
    data_words: int
    pointer_count: int


class Message:
    """Segments of one Cap'n Proto message, read without trusting any offset in it."""

    def __init__(self, segments: list[memoryview]) -> None:
        self._segments = segments

    def _word(self, segment: int, index: int) -> int:
        seg = self._segments[segment]
        if index < 0 or (index + 1) * _WORD > len(seg):
            raise BundleFormatError("a Concrete value points outside its own bytes")
        return int(struct.unpack_from("<Q", seg, index * _WORD)[0])

    def root(self) -> StructRef:
        """The root struct of the message."""
        ref = self._follow(0, 0, 0)
        if not isinstance(ref, StructRef):
            raise BundleFormatError("a Concrete value's root is not a struct")
        return ref

    def pointer(self, ref: StructRef, index: int) -> StructRef | tuple[int, int, int, int] | None:
        """Follow pointer ``index`` of a struct: a struct, a list ``(seg, start, elem, count)``."""
        if index >= ref.pointer_count:
            return None
        return self._follow(ref.segment, ref.data_offset + ref.data_words + index, 0)

    def list_pointers(self, lst: tuple[int, int, int, int]) -> list[int]:
        """Word positions of the pointers of a list of pointers."""
        _seg, start, elem, count = lst
        if elem != 6:
            raise BundleFormatError("a Concrete value's list is not a list of pointers")
        return [start + i for i in range(count)]

    def follow_at(self, segment: int, word: int) -> StructRef | tuple[int, int, int, int] | None:
        """Follow the pointer stored at ``word`` of ``segment``."""
        return self._follow(segment, word, 0)

    def bytes_of(self, lst: tuple[int, int, int, int]) -> memoryview:
        """The bytes of a ``Data`` (list of bytes) pointer target."""
        seg, start, elem, count = lst
        if elem != 2:
            raise BundleFormatError("a Concrete value's payload is not a byte list")
        begin = start * _WORD
        end = begin + count
        if end > len(self._segments[seg]):
            raise BundleFormatError("a Concrete value's payload runs past its segment")
        return self._segments[seg][begin:end]

    def _follow(
        self, segment: int, word: int, depth: int
    ) -> StructRef | tuple[int, int, int, int] | None:
        if depth > _MAX_DEPTH:
            raise BundleFormatError("a Concrete value nests pointers too deeply")
        ptr = self._word(segment, word)
        if ptr == 0:
            return None
        kind = ptr & 3
        if kind == 2:  # far pointer: landing pad in another segment
            if ptr & 4:
                raise BundleFormatError("double-far pointers are not used by Concrete values")
            pad = (ptr >> 3) & 0x1FFFFFFF
            target = ptr >> 32
            if target >= len(self._segments):
                raise BundleFormatError("a Concrete value points to a missing segment")
            return self._follow(target, pad, depth + 1)
        offset = (ptr >> 2) & 0x3FFFFFFF
        if offset & 0x20000000:
            offset -= 0x40000000
        start = word + 1 + offset
        if kind == 0:
            data_words = (ptr >> 32) & 0xFFFF
            pointers = (ptr >> 48) & 0xFFFF
            end = start + data_words + pointers
            if start < 0 or end * _WORD > len(self._segments[segment]):
                raise BundleFormatError("a Concrete value's struct runs past its segment")
            return StructRef(segment, start, data_words, pointers)
        if kind == 1:
            elem = (ptr >> 32) & 7
            count = ptr >> 35
            # The whole list must lie in the segment, not just its start: readers size their
            # work by ``count`` (up to 2**29), so a list of 8 bytes could otherwise make one
            # build half a billion pointers (seen: an 80-byte value took the process down).
            end_bits = start * _WORD * 8 + _ELEMENT_BITS[elem] * count
            if start < 0 or end_bits > len(self._segments[segment]) * 8:
                raise BundleFormatError("a Concrete value's list runs past its segment")
            return (segment, start, elem, count)
        raise BundleFormatError("a Concrete value holds a capability pointer")


def read_message(buf: bytes | memoryview) -> Message:
    """Split a serialized message into its segments, checking every size against the buffer."""
    view = memoryview(buf)
    if len(view) < 8:
        raise BundleFormatError("a Concrete value is shorter than its segment table")
    (count_minus_one,) = struct.unpack_from("<I", view, 0)
    count = count_minus_one + 1
    if count > _MAX_SEGMENTS:
        raise BundleFormatError(f"a Concrete value claims {count} segments")
    table_bytes = 4 + 4 * count
    table_bytes += (-table_bytes) % 8
    if len(view) < table_bytes:
        raise BundleFormatError("a Concrete value's segment table is truncated")
    sizes = struct.unpack_from(f"<{count}I", view, 4)
    segments: list[memoryview] = []
    pos = table_bytes
    for size in sizes:
        end = pos + size * _WORD
        if end > len(view):
            raise BundleFormatError("a Concrete value is truncated inside a segment")
        segments.append(view[pos:end])
        pos = end
    if pos != len(view):
        raise BundleFormatError("a Concrete value has trailing bytes after its last segment")
    return Message(segments)
