"""An animation job on the client's side, without a chain: --frames/--orbit refused in one line
before anything is touched, the numbered sequence and its animated preview, the turntable's
angles, the quote's and the snapshot's frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blindframe.client._frames import write_preview, write_sequence
from blindframe.client._posting import _frame_angles, _prepare
from blindframe.client.artist import Artist
from blindframe.client.errors import FrameFormatError, JobOptionsError
from blindframe.client.options import JobOptions
from blindframe.client.quote import build_quote
from blindframe.client.snapshot import (
    SlotState,
    SlotStatus,
    TileLayout,
    TileState,
    TileStatus,
    frame_progress,
)
from blindframe.coordinator.config import load_settings

from .conftest import one_line_error, run_cli


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--frames", "0"], "Error: --frames must be 1..256 (not 0)"),
        (["--frames", "257"], "Error: --frames must be 1..256 (not 257)"),
        (["--orbit", "360"], "Error: --orbit needs --frames"),
        (["--frames", "4", "--orbit", "nan"], "Error: --orbit must be a finite number"),
        (["--frames", "4", "--orbit", "inf"], "Error: --orbit must be a finite number"),
    ],
)
def test_bad_frame_flags_are_one_line_errors(flags: list[str], message: str) -> None:
    code, _out, err = run_cli(["client", "render", "--scene", "sample", *flags], {})
    assert one_line_error(code, err).startswith(message), err


def test_a_turntable_turns_the_cameras_yaw_over_the_frames() -> None:
    options = JobOptions(frames=4, orbit=360.0)
    angles = _frame_angles("volume@1", {"yaw": 300.0, "pitch": 15.0}, options)
    # 90 degrees a frame from yaw 300, wrapped into [-180, 180) (the camera takes -360..360).
    assert angles == ({"yaw": -60.0}, {"yaw": 30.0}, {"yaw": 120.0}, {"yaw": -150.0})
    assert _frame_angles("volume@1", {"yaw": 20.0}, JobOptions()) is None
    # --frames without --orbit: the same view N times (orbit 0).
    assert _frame_angles("volume@1", {"yaw": 20.0}, JobOptions(frames=2)) == ({"yaw": 20.0},) * 2
    given = JobOptions(frame_angles=({"yaw": 1.0, "pitch": -5.0},))
    assert _frame_angles("volume@1", {}, given) == ({"yaw": 1.0, "pitch": -5.0},)
    with pytest.raises(JobOptionsError, match="post@1 jobs render the one frame"):
        _frame_angles("post@1", {"filter": "blur"}, JobOptions(frames=2))


def test_the_sequence_is_numbered_and_the_preview_animated(tmp_path: Path) -> None:
    frames = np.zeros((3, 8, 8), dtype=np.int64)
    frames[1, 2:4] = 31
    frames[2, :, 5] = 16
    paths = write_sequence(tmp_path / "seq", frames, 31, scale=2)
    assert [p.name for p in paths] == ["frame-0001.png", "frame-0002.png", "frame-0003.png"]
    for path, frame in zip(paths, frames, strict=True):
        with Image.open(path) as image:
            pixels = np.asarray(image)
        assert pixels.shape == (16, 16, 3)
        assert np.array_equal(pixels[::2, ::2, 0], np.rint(frame * 255 / 31))
    preview = write_preview(tmp_path / "turn.png", frames, 31)
    with Image.open(preview) as image:
        assert image.format == "PNG"
        assert getattr(image, "n_frames", 1) == 3
        for index, frame in enumerate(frames):
            image.seek(index)
            assert np.array_equal(
                np.asarray(image.convert("RGB"))[..., 0], np.rint(frame * 255 / 31)
            )
    with pytest.raises(FrameFormatError, match=r"the animated preview is a \.png file"):
        write_preview(tmp_path / "turn.gif", frames, 31)


def test_the_snapshot_counts_tiles_done_per_frame() -> None:
    def tile(index: int, frame: int | None, state: TileStatus) -> TileState:
        slot = SlotState(0, SlotStatus.OPEN, None, None, False, None)
        return TileState(index, state, (slot,), TileLayout(0, index % 2, False, frame), None)

    tiles = (
        tile(0, 0, TileStatus.SETTLED),
        tile(1, 0, TileStatus.VERIFIED),
        tile(2, 1, TileStatus.CLAIMED),
        tile(3, 1, TileStatus.SETTLED),
    )
    assert frame_progress(tiles) == [
        {"frame": 0, "tiles": 2, "done": 2},
        {"frame": 1, "tiles": 2, "done": 1},
    ]
    assert tiles[2].to_json()["frame"] == 1
    one = tile(0, None, TileStatus.OPEN)  # a one-frame job's tile: no frame
    assert "frame" not in one.to_json()
    assert frame_progress((one,)) == []


def test_a_turntables_tiles_escrow_and_quote_count_every_frame(tmp_path: Path) -> None:
    artist = Artist(load_settings(env={"BLINDFRAME_HOME": str(tmp_path)}))  # no chain needed
    options = JobOptions(frame=(16, 16), canaries=1, frames=3, orbit=90.0)
    prepared = _prepare(artist, "sample", options)
    # 16 tiles a frame (2x2 real inside a ring of 12 canaries), every frame: 48 tasks.
    assert (prepared.tile_count, prepared.real_tiles, prepared.frame_count) == (48, 12, 3)
    assert prepared.frames == ({"yaw": 20.0}, {"yaw": 50.0}, {"yaw": 80.0})
    quote = build_quote(
        kernel=prepared.kernel,
        frame=prepared.frame,
        tile_count=prepared.tile_count,
        canary_tiles=prepared.tile_count - (prepared.real_tiles or 0),
        replication=2,
        reward_wei=10**15,
        lease_length=600,
        post_gas=250_000,
        upload={"inputs": 100, "evaluationKeys": 0, "manifest": 10},
        profiles=[],
        max_fee=lambda gas: gas,
        frames=prepared.frame_count,
    )
    assert quote.escrow_wei == 48 * 2 * 10**15
    assert quote.to_json()["frames"] == 3
    assert quote.to_json()["canaryTiles"] == 36
    assert quote.lines()[0].startswith("render    volume@1 16x16 x 3 frames: 48 tiles (36 canary)")
    # The job's tile limit counts every frame.
    with pytest.raises(JobOptionsError, match=r"4160 tiles \(65 frames of 64\) is more than"):
        _prepare(artist, "sample", JobOptions(frame=(64, 64), frames=65))
