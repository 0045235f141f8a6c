"""Decrypted frames (integer pixels 0..out_max) written as 8-bit PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from blindframe.client.errors import ClientError

__all__ = ["frame_rgb", "write_frame_png"]


def frame_rgb(frame: npt.ArrayLike, top: int, scale: int = 1) -> npt.NDArray[np.uint8]:
    """``(H, W)`` grey or ``(3, H, W)`` RGB integers in [0, top] -> ``(H*scale, W*scale, 3)``."""
    arr = np.asarray(frame, dtype=np.float64)
    if arr.ndim == 3:
        arr = np.moveaxis(arr, 0, -1)
    elif arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    else:
        raise ClientError(f"a frame is (H, W) or (3, H, W), not shape {arr.shape}")
    out: npt.NDArray[np.uint8] = np.clip(np.rint(arr * (255.0 / max(top, 1))), 0, 255).astype(
        np.uint8
    )
    if scale > 1:
        out = out.repeat(scale, axis=0).repeat(scale, axis=1)
    return out


def write_frame_png(path: Path, frame: npt.ArrayLike, top: int, *, scale: int = 1) -> Path:
    """Write the frame as a PNG (nearest-neighbour upscaled by ``scale``); returns the path."""
    from PIL import Image

    if not 1 <= scale <= 64:
        raise ClientError(f"the PNG scale must be 1..64 (not {scale})")
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise ClientError(f"frames are written as PNG files (not {str(target)!r})")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp.png")
        Image.fromarray(frame_rgb(frame, top, scale)).save(tmp, format="PNG")
        tmp.replace(target)
    except OSError as exc:
        raise ClientError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    return target
