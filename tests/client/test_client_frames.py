"""Decrypted frames written as 16-bit PNG and OpenEXR, read back by other code than the writer
(Pillow, Blender's image loader, OpenEXR, the project's own importer): every kernel's integers
come back exactly. A bad --format or file name is a one-line error before the chain is asked.
(The same files from a real job's `client fetch`: test_client_lifecycle.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenEXR  # type: ignore[import-not-found]
import pytest
from PIL import Image

from blindframe.client._frames import FrameFormat, frame_format, write_frame
from blindframe.client.errors import FrameFormatError
from blindframe.client.scene import load_scene
from blindframe.client.scene._images import srgb_encode
from blindframe.fhe_core.kernels import get_kernel

from .conftest import one_line_error, run_cli

# (kernel, channels): volume@1 and post@1 frames are grey, shade@1 frames RGB.
KERNELS = [("volume@1", 1), ("post@1", 1), ("shade@1", 3)]


def _frame(kernel: str, channels: int) -> tuple[np.ndarray, int]:
    """Every integer 0..out_max of the kernel, then random ones: (H, W) or (3, H, W), 16x16."""
    top = get_kernel(kernel).out_max
    rng = np.random.default_rng(11)
    values = rng.integers(0, top + 1, size=channels * 16 * 16)
    values[: top + 1] = np.arange(top + 1)
    frame = values.reshape((16, 16) if channels == 1 else (3, 16, 16))
    return frame, top


@pytest.mark.parametrize("kernel", ["volume@1", "post@1"])
def test_grey_png16_reads_back_exactly_with_pillow(kernel: str, tmp_path: Path) -> None:
    frame, top = _frame(kernel, 1)
    path = write_frame(tmp_path / "frame.png", frame, top, fmt="png16")
    with Image.open(path) as png:
        assert png.mode == "I;16"
        assert png.info["blindframe"] == f"out_max={top}"
        stored = np.asarray(png).astype(np.int64)
    # The documented scaling, and its inverse.
    np.testing.assert_array_equal(stored, np.rint(frame * 65535 / top))
    np.testing.assert_array_equal(np.rint(stored * top / 65535), frame)


def test_rgb_png16_reads_back_exactly_with_blender(tmp_path: Path) -> None:
    import bpy

    frame, top = _frame("shade@1", 3)
    path = write_frame(tmp_path / "frame.png", frame, top, fmt=FrameFormat.PNG16, scale=2)
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        assert tuple(image.size) == (32, 32)
        assert image.is_float  # Blender keeps 16-bit PNGs at full depth
        image.colorspace_settings.name = "Non-Color"  # the stored values, not sRGB-decoded
        pixels = np.empty(32 * 32 * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    stored = np.rint(pixels.reshape(32, 32, 4)[::-1, :, :3] * 65535)  # rows bottom-up
    back = np.moveaxis(np.rint(stored * top / 65535), -1, 0)
    np.testing.assert_array_equal(back[:, ::2, ::2], frame)
    np.testing.assert_array_equal(back[:, 1::2, 1::2], frame)


@pytest.mark.parametrize(("kernel", "channels"), KERNELS)
def test_exr_reads_back_exactly_with_openexr(kernel: str, channels: int, tmp_path: Path) -> None:
    frame, top = _frame(kernel, channels)
    path = write_frame(tmp_path / "frame.exr", frame, top)
    with OpenEXR.File(str(path), separate_channels=True) as exr:
        stored_top = exr.header()["blindframeOutMax"]  # the header lives while the file is open
        planes = {name: np.array(channel.pixels) for name, channel in exr.channels().items()}
    assert stored_top == top
    assert set(planes) == {"R", "G", "B"}
    assert {plane.dtype for plane in planes.values()} == {np.dtype(np.float32)}
    linear = np.stack([planes[c] for c in "RGB"])
    expected = np.broadcast_to(frame, (3, 16, 16))
    # Scene-linear: sRGB-encoded again (as Blender's Standard view shows it), the integers.
    np.testing.assert_array_equal(np.rint(srgb_encode(linear) * top), expected)
    assert float(linear.max()) == 1.0
    # `client import` of the EXR gives the values the PNG shows: v / out_max.
    scene = load_scene(path)
    assert scene.frame is not None
    np.testing.assert_allclose(scene.frame, expected / top, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "requested", "chosen"),
    [
        ("frame.png", None, FrameFormat.PNG8),
        ("frame.PNG", "PNG16", FrameFormat.PNG16),
        ("frame.exr", None, FrameFormat.EXR),
        ("frame.exr", "exr", FrameFormat.EXR),
    ],
)
def test_format_from_flag_or_extension(name: str, requested: str | None, chosen: str) -> None:
    assert frame_format(Path(name), requested) == chosen


@pytest.mark.parametrize(
    ("name", "requested", "words"),
    [
        ("frame.tif", None, "cannot tell the frame format of 'frame.tif'"),
        ("frame.png", "exr", "--format exr writes a .exr file, not 'frame.png'"),
        ("frame.exr", "png16", "--format png16 writes a .png file, not 'frame.exr'"),
        ("frame.png", "tiff", "--format must be one of png8|png16|exr (not 'tiff')"),
    ],
)
def test_bad_format_is_refused(name: str, requested: str | None, words: str) -> None:
    with pytest.raises(FrameFormatError) as info:
        frame_format(Path(name), requested)
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["fetch", "--format", "tiff"], "--format must be one of png8|png16|exr (not 'tiff')"),
        (["fetch", "-o", "frame.tif"], "cannot tell the frame format of 'frame.tif'"),
        (
            ["render", "--scene", "sample", "--format", "exr", "-o", "frame.png"],
            "--format exr writes a .exr file, not 'frame.png'",
        ),
    ],
)
def test_bad_format_is_one_line_on_the_cli(
    argv: list[str], words: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No stack: the check comes before the chain, the home or anything paid for.
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["client", *argv], {"BLINDFRAME_HOME": str(tmp_path / "home")})
    assert words in one_line_error(code, err)
    assert list(tmp_path.iterdir()) == []
