"""Cheap checks of a scene file's bytes before parsing: what it really is, whether it is cut.

Parsers report a wrong or truncated file in their own words ("chunk was not expected length!",
"could not convert string to float") and some take seconds and gigabytes to get there. These
checks read a file's first and last few KiB (or a header's declared length) and name the problem
the way an artist can act on it: "this file is a PNG image, not glTF binary", "truncated".
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from blindframe.client.scene._errors import SceneFormatError

__all__ = [
    "SNIFF_BYTES",
    "check_mesh_bytes",
    "describe_content",
    "ends_mid_record",
    "parser_says_truncated",
    "truncated_error",
]

# How much of each end of a file the checks read: enough for a header, a few hundred text lines.
SNIFF_BYTES = 64 * 1024

# Magic numbers of the files an artist is likely to pick by mistake, in the words of the message.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\x76\x2f\x31\x01", "an OpenEXR image"),
    (b"glTF", "a glTF binary (GLB) model"),
    (b"Kaydara FBX Binary  \x00", "an FBX model"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"8BPS", "a Photoshop document"),
    (b"BLENDER", "a Blender file (.blend)"),
    (b"PK\x03\x04", "a ZIP archive (or a .npz scene)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"%PDF", "a PDF document"),
    (b"ply\n", "a PLY model"),
    (b"ply\r\n", "a PLY model"),
)

# Words of trimesh's parsers (and numpy under them) that mean the file ended early.
_TRUNCATION_WORDS = re.compile(
    r"not expected length|unexpected length|truncated|unexpected end|end of file|"
    r"cannot reshape array of size|buffer is smaller than requested|not enough data",
    re.IGNORECASE,
)

# An OBJ record's keyword and how many values make it whole (a file cut inside a record
# leaves fewer). Keywords not listed are not checked.
_OBJ_MIN_FIELDS = {"v": 3, "vn": 3, "vt": 1, "f": 3, "l": 2}
_OBJ_FACE_REF = re.compile(r"^-?\d+(/-?\d*){0,2}$")


def describe_content(head: bytes) -> str | None:
    """Name a file by its first bytes ("a PNG image"), or None when no known magic matches."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def truncated_error(path: Path, what: str, detail: str) -> SceneFormatError:
    """The one error every truncated file gets: the word "truncated", what was cut, what to do."""
    return SceneFormatError(
        f"{what} {str(path)!r} is truncated: {detail}",
        hint="copy or export the file again; an interrupted download or copy leaves it cut short",
    )


def parser_says_truncated(exc: BaseException) -> bool:
    """Whether a parser's exception text means the file ended before its content did."""
    return _TRUNCATION_WORDS.search(str(exc)) is not None


def _read_ends(path: Path, size: int) -> tuple[bytes, bytes]:
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
        if size <= SNIFF_BYTES:
            return head, head
        fh.seek(size - SNIFF_BYTES)
        return head, fh.read(SNIFF_BYTES)


def _not_text(sample: bytes) -> bool:
    """Binary bytes in a text format: NUL or control characters other than tab/CR/LF/FF."""
    return any(b < 0x20 and b not in (0x09, 0x0A, 0x0C, 0x0D) for b in sample) or b"\x7f" in sample


def ends_mid_record(tail: bytes) -> bool:
    """Whether an OBJ file's last bytes stop inside a record (no final newline, record incomplete).

    Exporters end every line with a newline; a last line without one that is also short of its
    values ("v 0.5 -", "f 1 2") is where a copy or download stopped.
    """
    if tail.endswith((b"\n", b"\r")):
        return False
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace").split()
    if not last or last[0].startswith("#"):
        return False
    needed = _OBJ_MIN_FIELDS.get(last[0])
    if needed is None:
        return False
    values = last[1:]
    if len(values) < needed:
        return True
    if last[0] in ("f", "l"):
        return not all(_OBJ_FACE_REF.match(value) for value in values)
    try:
        [float(value) for value in values]
    except ValueError:
        return True
    return False


def check_mesh_bytes(path: Path, suffix: str, kind: str, size: int) -> bool:
    """Refuse a mesh file whose bytes are another format's or stop early, before it is parsed.

    Reads at most 2 x SNIFF_BYTES, so a 200 MB file of random bytes is refused in milliseconds
    instead of being parsed. Returns whether the file ends without a final newline (meaningful
    for OBJ: with no faces read, such a file was cut rather than empty).
    """
    head, tail = _read_ends(path, size)
    found = describe_content(head)
    expected = {".glb": "glTF binary", ".gltf": "glTF (JSON)", ".obj": "OBJ", ".stl": "STL"}
    expected_name = expected.get(suffix, kind)
    if suffix == ".glb":
        if not head.startswith(b"glTF"):
            what = found or "not a glTF binary file (its first bytes are not 'glTF')"
            raise SceneFormatError(
                f"{str(path)!r}: this file is {what}, not glTF binary"
                if found
                else f"{str(path)!r} is {what}",
                hint="give the file its real extension, or export the model again as .glb",
            )
        if len(head) >= 12:
            (declared,) = struct.unpack_from("<I", head, 8)
            if declared > size:
                raise truncated_error(
                    path, "glTF binary", f"its header declares {declared:,} bytes, it has {size:,}"
                )
        return False
    if suffix == ".stl" and len(head) >= 84:
        # A binary STL's 80-byte header is free text: its size, not its first bytes, says STL.
        (count,) = struct.unpack_from("<I", head, 80)
        if 84 + 50 * count == size:
            return False
    if found is not None and not (suffix == ".ply" and found == "a PLY model"):
        raise SceneFormatError(
            f"{str(path)!r}: this file is {found}, not {expected_name}",
            hint="give the file its real extension, or export the model again",
        )
    if suffix == ".stl":
        _check_stl(path, head, tail, size)
        return False
    if suffix in (".obj", ".gltf"):
        if _not_text(head) or _not_text(tail):
            raise SceneFormatError(
                f"{str(path)!r} is not a text {expected_name} file (it holds binary bytes)",
                hint="check the file; export the model again as glTF/GLB",
            )
        if suffix == ".obj" and ends_mid_record(tail):
            raise truncated_error(path, "OBJ file", "its last line stops in the middle of a record")
        return not tail.endswith((b"\n", b"\r"))
    return False


def _check_stl(path: Path, head: bytes, tail: bytes, size: int) -> None:
    """Binary STL declares its triangle count (84 + 50 bytes each); ASCII STL ends in endsolid."""
    if len(head) >= 84:
        (count,) = struct.unpack_from("<I", head, 80)
        if 84 + 50 * count == size:
            return
    if head.lstrip().lower().startswith(b"solid") and not _not_text(head):
        if b"endsolid" not in tail.lower():
            raise truncated_error(path, "STL file", "the text ends before its closing 'endsolid'")
        return
    # Shorter than a binary header and not ASCII STL: the parser reads it as a mesh of nothing.
    if len(head) >= 84 and 84 + 50 * count > size:
        raise truncated_error(
            path,
            "STL file",
            f"its header declares {count:,} triangles ({84 + 50 * count:,} "
            f"bytes), it has {size:,} bytes",
        )
