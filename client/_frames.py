"""Decrypted frames (integer pixels 0..out_max) written as 8-bit PNG, 16-bit PNG or OpenEXR.

The formats, and how each maps a kernel's integers ``v`` in ``0..top`` (``top`` is the kernel's
``out_max``: 31 for volume@1 and shade@1, 7 for post@1):

- ``png8``: RGB, 8 bits, ``round(v * 255 / top)`` (grey frames repeated in R, G and B);
- ``png16``: 16 bits, grey (volume@1, post@1) or RGB (shade@1), ``round(v * 65535 / top)``;
  ``v = round(p * top / 65535)`` recovers the integers exactly (``top`` < 65536). A ``tEXt``
  chunk ``blindframe`` says ``out_max=<top>``;
- ``exr``: OpenEXR, 32-bit float R, G, B channels (ZIP), scene-linear: the kernels' outputs are
  display values (shown as the PNGs show them), so ``v / top`` is sRGB-decoded to linear light,
  as Blender's "Standard" view transform expects; ``v = round(top * srgb_encode(x))``
  recovers the integers, and ``client import`` of the EXR gives the PNG's values back. The
  header attribute ``blindframeOutMax`` holds ``top``.

The format is ``--format`` when given, else the file's extension (``.png``: png8; ``.exr``).

An animation job's frames are a numbered sequence, ``frame-0001.png`` ... (or ``.exr``), in one
directory (:func:`write_sequence`), and an animated PNG of them, 8-bit, looping
(:func:`write_preview`): browsers, the dashboard and most image viewers play it.
"""

from __future__ import annotations

import struct
import zlib
from enum import StrEnum
from pathlib import Path

import numpy as np
import numpy.typing as npt

from blindframe.client.errors import ClientError, FrameFormatError

__all__ = [
    "FORMAT_SUFFIX",
    "FrameFormat",
    "frame_format",
    "frame_linear",
    "frame_rgb",
    "frame_uint16",
    "parse_frame_format",
    "sequence_name",
    "write_frame",
    "write_frame_png",
    "write_preview",
    "write_sequence",
]

# The preview's pace: a turntable of 48 frames turns in 2 s.
PREVIEW_FPS = 24


class FrameFormat(StrEnum):
    """The file formats a decrypted frame is written in."""

    PNG8 = "png8"
    PNG16 = "png16"
    EXR = "exr"


FORMAT_SUFFIX = {FrameFormat.PNG8: ".png", FrameFormat.PNG16: ".png", FrameFormat.EXR: ".exr"}
_BY_SUFFIX = {".png": FrameFormat.PNG8, ".exr": FrameFormat.EXR}
_CHOICES = "|".join(FrameFormat)
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def parse_frame_format(text: str | FrameFormat | None) -> FrameFormat | None:
    """``--format``'s value (``png8|png16|exr``, any case) -> the format; None stays None."""
    if text is None or isinstance(text, FrameFormat):
        return text
    try:
        return FrameFormat(text.strip().lower())
    except ValueError:
        raise FrameFormatError(
            f"--format must be one of {_CHOICES} (not {text!r})",
            hint="png8 and png16 write .png files, exr writes .exr; or leave --format out and "
            "name the file .png or .exr",
        ) from None


def frame_format(path: Path | None, requested: str | FrameFormat | None = None) -> FrameFormat:
    """The format ``path`` is written in: ``requested`` when given (the extension must agree),
    else from the extension (``.png``: png8, ``.exr``: exr). ``path`` None: ``requested`` or
    png8."""
    chosen = parse_frame_format(requested)
    if path is None:
        return chosen or FrameFormat.PNG8
    suffix = Path(path).suffix.lower()
    if chosen is None:
        by_suffix = _BY_SUFFIX.get(suffix)
        if by_suffix is None:
            raise FrameFormatError(
                f"cannot tell the frame format of {str(path)!r} from its extension "
                f"{suffix or '(none)'!r}",
                hint="name it .png (8-bit) or .exr (OpenEXR), or give --format png8|png16|exr",
            )
        return by_suffix
    if suffix != FORMAT_SUFFIX[chosen]:
        raise FrameFormatError(
            f"--format {chosen} writes a {FORMAT_SUFFIX[chosen]} file, not {str(path)!r}",
            hint=f"name the output {Path(path).with_suffix(FORMAT_SUFFIX[chosen]).name}",
        )
    return chosen


def _channels_last(frame: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``(H, W)`` grey stays ``(H, W)``; ``(3, H, W)`` RGB -> ``(H, W, 3)``."""
    arr = np.asarray(frame, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[0] == 3:
        return np.moveaxis(arr, 0, -1)
    if arr.ndim == 2:
        return arr
    raise ClientError(f"a frame is (H, W) or (3, H, W), not shape {arr.shape}")


def _upscale(arr: npt.NDArray[np.generic], scale: int) -> npt.NDArray[np.generic]:
    if scale > 1:
        return arr.repeat(scale, axis=0).repeat(scale, axis=1)
    return arr


def frame_rgb(frame: npt.ArrayLike, top: int, scale: int = 1) -> npt.NDArray[np.uint8]:
    """``(H, W)`` grey or ``(3, H, W)`` RGB integers in [0, top] -> ``(H*scale, W*scale, 3)``."""
    arr = _channels_last(frame)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    out: npt.NDArray[np.uint8] = np.clip(np.rint(arr * (255.0 / max(top, 1))), 0, 255).astype(
        np.uint8
    )
    return _upscale(out, scale)  # type: ignore[return-value]


def frame_uint16(frame: npt.ArrayLike, top: int, scale: int = 1) -> npt.NDArray[np.uint16]:
    """Integers in [0, top] -> ``round(v * 65535 / top)``: ``(H, W)`` grey or ``(H, W, 3)``."""
    if not 1 <= top <= 65535:
        raise ClientError(f"a 16-bit frame needs out_max in 1..65535 (not {top})")
    arr = _channels_last(frame)
    out = np.clip(np.rint(arr * (65535.0 / top)), 0, 65535).astype(np.uint16)
    return _upscale(out, scale)  # type: ignore[return-value]


def frame_linear(frame: npt.ArrayLike, top: int, scale: int = 1) -> npt.NDArray[np.float32]:
    """Integers in [0, top] -> ``(H, W, 3)`` scene-linear floats: ``v / top`` sRGB-decoded."""
    arr = _channels_last(frame)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    display = np.clip(arr / max(top, 1), 0.0, 1.0)
    linear = np.where(display <= 0.04045, display / 12.92, np.power((display + 0.055) / 1.055, 2.4))
    return _upscale(linear.astype(np.float32), scale)  # type: ignore[return-value]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png16_bytes(pixels: npt.NDArray[np.uint16], top: int) -> bytes:
    """A 16-bit grey (``(H, W)``) or RGB (``(H, W, 3)``) PNG. Written here because Pillow
    writes 16-bit grey only."""
    height, width = pixels.shape[:2]
    colour_type = 0 if pixels.ndim == 2 else 2
    rows = pixels.astype(">u2").reshape(height, -1).view(np.uint8)
    # Filter type 0 (None) on every row: each scanline is a zero byte and its samples.
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rows], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    text = b"blindframe\x00" + f"out_max={top}".encode()
    return b"".join(
        [
            _PNG_MAGIC,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"tEXt", text),
            _png_chunk(b"IDAT", zlib.compress(raw, 6)),
            _png_chunk(b"IEND", b""),
        ]
    )


def _write_exr(path: Path, rgb: npt.NDArray[np.float32], top: int) -> None:
    import OpenEXR  # type: ignore[import-not-found]

    header = {
        "compression": OpenEXR.ZIP_COMPRESSION,
        "type": OpenEXR.scanlineimage,
        "blindframeOutMax": int(top),
    }
    channels = {name: np.ascontiguousarray(rgb[:, :, i]) for i, name in enumerate("RGB")}
    with OpenEXR.File(header, channels) as exr:
        exr.write(str(path))


def write_frame(
    path: Path,
    frame: npt.ArrayLike,
    top: int,
    *,
    scale: int = 1,
    fmt: str | FrameFormat | None = None,
) -> Path:
    """Write the frame (nearest-neighbour upscaled by ``scale``) in ``fmt``, or the format its
    extension names (see the module docstring); returns the path."""
    from PIL import Image

    if not 1 <= scale <= 64:
        raise ClientError(f"the frame scale must be 1..64 (not {scale})")
    target = Path(path)
    chosen = frame_format(target, fmt)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp{FORMAT_SUFFIX[chosen]}")
        if chosen == FrameFormat.PNG8:
            Image.fromarray(frame_rgb(frame, top, scale)).save(tmp, format="PNG")
        elif chosen == FrameFormat.PNG16:
            tmp.write_bytes(_png16_bytes(frame_uint16(frame, top, scale), top))
        else:
            _write_exr(tmp, frame_linear(frame, top, scale), top)
        tmp.replace(target)
    except (OSError, RuntimeError) as exc:  # OpenEXR reports write failures as RuntimeError
        reason = getattr(exc, "strerror", None) or exc
        raise ClientError(f"cannot write {str(target)!r}: {reason}") from None
    return target


def write_frame_png(path: Path, frame: npt.ArrayLike, top: int, *, scale: int = 1) -> Path:
    """Write the frame as an 8-bit PNG (nearest-neighbour upscaled by ``scale``)."""
    if Path(path).suffix.lower() != ".png":
        raise FrameFormatError(f"frames are written as PNG files here (not {str(path)!r})")
    return write_frame(path, frame, top, scale=scale, fmt=FrameFormat.PNG8)


def sequence_name(index: int, fmt: FrameFormat = FrameFormat.PNG8) -> str:
    """Frame ``index``'s (0-based) file in a sequence: ``frame-0001.png`` for the first."""
    return f"frame-{index + 1:04d}{FORMAT_SUFFIX[fmt]}"


def write_sequence(
    directory: Path,
    frames: npt.ArrayLike,
    top: int,
    *,
    scale: int = 1,
    fmt: str | FrameFormat | None = None,
) -> tuple[Path, ...]:
    """Write each frame of ``frames`` (the first axis) as ``directory/frame-0001.png``... in
    ``fmt`` (png8 by default); returns the paths, in order."""
    chosen = parse_frame_format(fmt) or FrameFormat.PNG8
    return tuple(
        write_frame(Path(directory) / sequence_name(i, chosen), frame, top, scale=scale, fmt=chosen)
        for i, frame in enumerate(np.asarray(frames))
    )


def write_preview(
    path: Path, frames: npt.ArrayLike, top: int, *, scale: int = 1, fps: int = PREVIEW_FPS
) -> Path:
    """The frames as one looping animated PNG (8-bit RGB, ``fps`` frames a second); one frame
    is a plain PNG. Pillow merges a frame equal to the one before into it (its time added): the
    preview plays the same, in fewer APNG frames; the sequence keeps every frame."""
    from PIL import Image

    if not 1 <= scale <= 64:
        raise ClientError(f"the frame scale must be 1..64 (not {scale})")
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise FrameFormatError(f"the animated preview is a .png file (not {str(target)!r})")
    images = [Image.fromarray(frame_rgb(frame, top, scale)) for frame in np.asarray(frames)]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp.png")
        images[0].save(
            tmp,
            format="PNG",
            save_all=len(images) > 1,
            append_images=images[1:],
            duration=round(1000 / fps),
            loop=0,
        )
        tmp.replace(target)
    except OSError as exc:
        raise ClientError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    return target
