"""The camera a volume job gets when the artist gives none: the model framed.

The volume kernels' camera orbits the grid's centre (``yaw``, ``pitch`` in degrees; ``zoom = 1``
fits the grid's bounding sphere in the frame's smaller side). A mesh is voxelized into a cube
centred on its bounding box (:func:`~blindframe.client.scene.fit_bounds`), so the orbit's centre
is already the model's; what is left to choose is the zoom that makes the model fill the frame:
the largest that keeps the projection of every occupied voxel inside ``FILL`` of the frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from blindframe.client.scene._errors import SceneFormatError

__all__ = ["DEFAULT_PITCH", "DEFAULT_YAW", "FILL", "frame_model", "volume_camera"]

# A three-quarter view from a little above: the sample's angles, so both look alike.
DEFAULT_YAW = 20.0
DEFAULT_PITCH = 15.0
# Share of the frame's width and height the model's projection may take: a thin border of sky.
FILL = 0.9


def _axes(yaw: float, pitch: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The image plane's right and up unit vectors (+x right, +y up at yaw 0, pitch 0; yaw turns
    the camera about +y towards +x, pitch raises it)."""
    y, p = math.radians(yaw), math.radians(pitch)
    right = np.array([math.cos(y), 0.0, -math.sin(y)])
    up = np.array([-math.sin(p) * math.sin(y), math.cos(p), -math.sin(p) * math.cos(y)])
    return right, up


def frame_model(
    density: npt.ArrayLike,
    frame_hw: tuple[int, int],
    *,
    yaw: float = DEFAULT_YAW,
    pitch: float = DEFAULT_PITCH,
) -> dict[str, float]:
    """The camera at ``yaw``/``pitch`` whose zoom fits the model (``density`` ``(R, R, R)``,
    indexed ``[x, y, z]``) in ``FILL`` of a ``frame_hw`` (height, width) frame, within the
    zoom's limits (0.25..4). An empty grid gets zoom 1 (the whole grid in view)."""
    grid = np.asarray(density, dtype=np.float64)
    if grid.ndim != 3 or len(set(grid.shape)) != 1:
        raise SceneFormatError(f"density must be a cube (R, R, R), not shape {grid.shape}")
    height, width = frame_hw
    if height <= 0 or width <= 0:
        raise SceneFormatError(f"frame {width}x{height} has no pixels")
    side = grid.shape[0]
    # Every voxel the mesh reaches into: the kernel's coarser voxels, occupied from half full,
    # stay within about half of one of theirs of these.
    occupied = np.argwhere(grid > 0)
    camera = {"yaw": float(yaw), "pitch": float(pitch), "zoom": 1.0}
    if len(occupied) == 0:
        return camera
    # In units of the grid's side: voxel centres around the grid's centre, each voxel a cube of
    # side 1/R, whose projection on a unit vector d reaches |d|_1 / (2R) past its centre's.
    centres = (occupied + 0.5) / side - 0.5
    right, up = _axes(yaw, pitch)
    half_u = float(np.abs(centres @ right).max() + np.abs(right).sum() / (2 * side))
    half_v = float(np.abs(centres @ up).max() + np.abs(up).sum() / (2 * side))
    radius = math.sqrt(3) / 2  # the grid's bounding sphere
    shorter = min(height, width)
    # zoom * shorter / (2 * radius) pixels per unit; the model's half-extent must fit FILL of
    # each half-side.
    zoom = FILL * radius / shorter * min(width / half_u, height / half_v)
    from blindframe.fhe_core.artist_jobs import VIEW_ZOOM  # the zoom an artist may ask for

    lo, hi = VIEW_ZOOM
    camera["zoom"] = min(hi, max(lo, math.floor(zoom * 1000) / 1000))
    return camera


def volume_camera(
    density: npt.ArrayLike | None,
    frame_hw: tuple[int, int],
    given: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A volume job's camera: the artist's own values (``given``, any of ``yaw``, ``pitch``,
    ``zoom``) kept, the rest filled in. For a model (``density``): yaw and pitch default to
    DEFAULT_YAW/DEFAULT_PITCH and the zoom frames the model (:func:`frame_model`) at those
    angles. With no model (the sample scene): the sample's camera."""
    camera: dict[str, Any] = dict(given or {})
    if density is None:
        from blindframe.fhe_core.sample import SAMPLE_CAMERA

        return {**SAMPLE_CAMERA, **camera}
    yaw, pitch = camera.get("yaw", DEFAULT_YAW), camera.get("pitch", DEFAULT_PITCH)
    if "zoom" not in camera and _is_number(yaw) and _is_number(pitch):
        framed = frame_model(density, frame_hw, yaw=float(yaw), pitch=float(pitch))
        return {**framed, **camera}
    # A bad yaw or pitch is left for the kernel's own check to name.
    return {"yaw": yaw, "pitch": pitch, **camera}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
