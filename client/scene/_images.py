"""Read PNG and OpenEXR images into named float layers; sRGB encoding; PNG writing for previews.

Layers: an image is a mapping ``layer -> component -> (H, W) float32``. A plain PNG or EXR has
one layer named ``""`` with components ``R, G, B`` (``A`` when present; ``Y`` for grey). A
multilayer EXR (Blender's "OpenEXR MultiLayer", one part or several) keeps its layer names:
channel ``ViewLayer.Normal.X`` is component ``X`` of layer ``ViewLayer.Normal``. PNG values are
scaled to [0, 1] from 8 bits (16 bits for grey; Pillow reads 16-bit colour PNGs at 8 bits);
non-finite EXR values read as 0.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from blindframe.client.scene._errors import (
    EmptySceneError,
    SceneFileError,
    SceneFormatError,
    SceneTooLargeError,
)
from blindframe.client.scene._sniff import (
    SNIFF_BYTES,
    describe_content,
    parser_says_truncated,
    truncated_error,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_FILE_BYTES",
    "MAX_IMAGE_SIDE",
    "Image",
    "check_file",
    "read_image",
    "srgb_decode",
    "srgb_encode",
]

F32 = npt.NDArray[np.float32]
IMAGE_SUFFIXES = {".png": "PNG", ".exr": "OpenEXR"}
# The largest file any importer reads (meshes, images, scene files).
MAX_FILE_BYTES = 256 * 1024 * 1024
# fhe_core tiles frames up to 4096 pixels a side.
MAX_IMAGE_SIDE = 4096
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_EXR_MAGIC = b"\x76\x2f\x31\x01"
_PNG_END = b"IEND\xae\x42\x60\x82"  # the IEND chunk's type and CRC


@dataclass(frozen=True)
class Image:
    """An image file's layers; ``linear`` is True for EXR (scene-referred), False for PNG."""

    path: Path
    layers: dict[str, dict[str, F32]]
    linear: bool


def check_file(path: Path, what: str) -> int:
    """Fail clearly unless ``path`` is a readable file within MAX_FILE_BYTES; return its size."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SceneFileError(
            f"{what} {str(path)!r} does not exist", hint="check the path and its spelling"
        ) from None
    except OSError as exc:
        raise SceneFileError(f"cannot open {what} {str(path)!r}: {exc.strerror}") from None
    if not path.is_file():
        raise SceneFileError(
            f"{what} {str(path)!r} is not a file", hint="give a file, not a folder"
        )
    if size > MAX_FILE_BYTES:
        raise SceneTooLargeError(
            f"{what} {str(path)!r} is {size:,} bytes; at most {MAX_FILE_BYTES // 2**20} MiB "
            f"({MAX_FILE_BYTES:,} bytes) are allowed",
            hint="decimate the mesh or lower the image's resolution",
        )
    if size == 0:
        raise EmptySceneError(f"{what} {str(path)!r} is empty (0 bytes)")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise SceneFileError(f"cannot open {what} {str(path)!r}: {exc.strerror}") from None
    return size


def read_image(path: Path, what: str = "image") -> Image:
    """Read a PNG or OpenEXR file (chosen by its first bytes, not its name) into layers."""
    size = check_file(path, what)
    with path.open("rb") as fh:
        magic = fh.read(32)
        fh.seek(max(0, size - SNIFF_BYTES))
        tail = fh.read()
    if magic.startswith(_PNG_MAGIC):
        # Every PNG ends with its IEND chunk: without it the file was cut short.
        if _PNG_END not in tail:
            raise truncated_error(path, what, "the PNG ends before its closing IEND chunk")
        return _read_png(path, what)
    if magic.startswith(_EXR_MAGIC):
        return _read_exr(path, what)
    found = describe_content(magic)
    raise SceneFormatError(
        f"{what} {str(path)!r} is neither a PNG nor an OpenEXR file"
        + (f": this file is {found}" if found else ""),
        hint="export the pass as PNG or EXR",
    )


def _check_side(path: Path, what: str, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise EmptySceneError(f"{what} {str(path)!r} has no pixels ({width}x{height})")
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
        raise SceneTooLargeError(
            f"{what} {str(path)!r} is {width}x{height} pixels; at most "
            f"{MAX_IMAGE_SIDE} a side is allowed",
            hint="render or scale it smaller (every pixel is encrypted and rendered under FHE)",
        )


def _read_png(path: Path, what: str) -> Image:
    from PIL import Image as PilImage
    from PIL import UnidentifiedImageError

    try:
        # Pillow's own bomb limit is higher than ours: silence its warning, map its error.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PilImage.DecompressionBombWarning)
            im: PilImage.Image = PilImage.open(path, formats=["PNG"])
    except PilImage.DecompressionBombError:
        raise SceneTooLargeError(
            f"{what} {str(path)!r} has far more pixels than the {MAX_IMAGE_SIDE} a side allowed"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SceneFormatError(
            f"cannot read {what} {str(path)!r} as PNG: {exc}", hint="re-export the image"
        ) from None
    _check_side(path, what, im.width, im.height)
    try:
        im.load()
    except (OSError, SyntaxError, ValueError) as exc:
        if parser_says_truncated(exc):
            raise truncated_error(path, what, "its pixel data ends early") from None
        raise SceneFormatError(
            f"cannot read {what} {str(path)!r} as PNG: {exc}", hint="re-export the image"
        ) from None
    mode = im.mode
    layer: dict[str, F32]
    if mode in ("I", "I;16", "I;16B", "I;16L"):
        grey = np.asarray(im, dtype=np.float64) / 65535.0
        layer = {"Y": np.clip(grey, 0.0, 1.0).astype(np.float32)}
    else:
        if mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif mode == "1":
            im = im.convert("L")
        elif mode not in ("L", "LA", "RGB", "RGBA"):
            im = im.convert("RGBA")
        arr = np.asarray(im, dtype=np.float32) / 255.0
        if arr.ndim == 2:
            arr = arr[:, :, None]
        names = {"L": "Y", "LA": "YA", "RGB": "RGB", "RGBA": "RGBA"}[im.mode]
        layer = {c: np.ascontiguousarray(arr[:, :, i]) for i, c in enumerate(names)}
    return Image(path, {"": layer}, linear=False)


def _read_exr(path: Path, what: str) -> Image:
    import OpenEXR  # type: ignore[import-not-found]

    try:
        with OpenEXR.File(str(path), header_only=True) as head:
            windows = [part.header["dataWindow"] for part in head.parts]
            declared = sum(len(part.header.get("channels", ())) for part in head.parts)
    except (RuntimeError, OSError, ValueError, TypeError, KeyError) as exc:
        raise SceneFormatError(
            f"cannot read {what} {str(path)!r} as OpenEXR: {exc}", hint="re-export the image"
        ) from None
    for (x0, y0), (x1, y1) in windows:
        _check_side(path, what, int(x1) - int(x0) + 1, int(y1) - int(y0) + 1)
    try:
        # OpenEXR reports a cut file on the process's stdout and returns parts without
        # channels: keep its words off the terminal and say "truncated" below.
        with _native_output_silenced(), OpenEXR.File(str(path), separate_channels=True) as exr:
            channels = {
                name: np.asarray(ch.pixels, dtype=np.float32)
                for part in exr.parts
                for name, ch in part.channels.items()
            }
    except (RuntimeError, OSError, ValueError, TypeError, KeyError) as exc:
        raise SceneFormatError(
            f"cannot read {what} {str(path)!r} as OpenEXR: {exc}", hint="re-export the image"
        ) from None
    layers: dict[str, dict[str, F32]] = {}
    shapes = {arr.shape for arr in channels.values()}
    if len(channels) < declared:
        raise truncated_error(
            path,
            what,
            f"its header lists {declared} channels; the pixels of "
            f"{declared - len(channels)} could not be read",
        )
    if not channels:
        raise EmptySceneError(f"{what} {str(path)!r} has no channels")
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise SceneFormatError(
            f"{what} {str(path)!r} has channels of different sizes {sorted(shapes)}",
            hint="export every pass at the same resolution",
        )
    for name, arr in channels.items():
        layer, _, comp = name.rpartition(".")
        if not np.isfinite(arr).all():
            arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        layers.setdefault(layer, {})[comp] = arr
    return Image(path, layers, linear=True)


@contextlib.contextmanager
def _native_output_silenced() -> Iterator[None]:
    """Point file descriptors 1 and 2 at /dev/null while a C++ library may print to them."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved: list[tuple[int, int]] = []
    try:
        with Path(os.devnull).open("wb") as null:
            for fd in (1, 2):
                with contextlib.suppress(OSError):  # a closed descriptor: nothing to silence
                    saved.append((fd, os.dup(fd)))
                    os.dup2(null.fileno(), fd)
        yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def srgb_decode(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """sRGB-encoded values in [0, 1] -> linear (the inverse of :func:`srgb_encode`)."""
    x = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    out: npt.NDArray[np.float64] = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    return out


def srgb_encode(linear: npt.ArrayLike) -> F32:
    """Linear values (clipped to [0, 1]) -> sRGB-encoded display values in [0, 1]."""
    x = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    out = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
