"""Fixtures of the scene-import suite: meshes, passes and frames written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from .shapes import sphere_gbuffer


@pytest.fixture(scope="session")
def torus() -> trimesh.Trimesh:
    """A closed torus (major radius 1, tube 0.4) around +z, 4096 triangles."""
    return trimesh.creation.torus(
        major_radius=1.0, minor_radius=0.4, major_sections=64, minor_sections=32
    )


@pytest.fixture(scope="session")
def gbuffer() -> tuple[np.ndarray, np.ndarray]:
    """Analytic camera-space normals and albedo of a sphere, 40 rows x 48 columns."""
    return sphere_gbuffer(40, 48)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """A fresh folder for files a test writes."""
    path = tmp_path / "out"
    path.mkdir()
    return path
