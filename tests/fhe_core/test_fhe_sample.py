"""The sample scene and the voxel quantizer (plaintext path; the FHE path runs in test_jobs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from blindframe.fhe_core.errors import ParameterError
from blindframe.fhe_core.sample import main, sample_density, sample_volume
from blindframe.fhe_core.voxels import quantize_density


def test_quantize_density() -> None:
    grid = np.zeros((32, 32, 32))
    grid[8:24, 8:24, 8:24] = 1.0
    vol = quantize_density(grid)
    assert vol.shape == (4096,)
    assert set(np.unique(vol)) == {0, 1}
    assert vol.reshape(16, 16, 16)[4:12, 4:12, 4:12].all()
    assert vol.sum() == 512
    odd = quantize_density(np.ones((20, 20, 20)))
    assert odd.sum() == 4096
    for bad in (np.ones((4, 4, 5)), np.full((16, 16, 16), 1.5), np.full((16, 16, 16), np.nan)):
        with pytest.raises(ParameterError):
            quantize_density(bad)
    with pytest.raises(ParameterError, match="density only"):
        quantize_density(np.ones((16, 16, 16)), colour=np.ones((16, 16, 16, 3)))


def test_sample_scene_is_a_knot_not_a_blob() -> None:
    density = sample_density(32)
    assert 0.02 < density.mean() < 0.3
    vol = sample_volume().reshape(16, 16, 16)
    assert vol[8, 8, :].sum() == 0  # a knot has a hole in the middle
    assert 150 < vol.sum() < 1500


def test_sample_cli_writes_pngs(tmp_path: Path) -> None:
    from PIL import Image

    assert main([str(tmp_path), "--size", "16", "--plain-only"]) == 0
    for name in ("volume", "shade", "post"):
        image = Image.open(tmp_path / f"{name}.png")
        assert image.size == (4 * (16 + 2 + 16), 4 * 16)
