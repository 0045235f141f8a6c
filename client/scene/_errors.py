"""Errors of scene import and extraction (meshes, G-buffer passes, frames, scene files)."""

from __future__ import annotations

from blindframe.client.errors import ClientError

__all__ = [
    "BlenderSceneError",
    "EmptySceneError",
    "SceneError",
    "SceneFileError",
    "SceneFormatError",
    "SceneKindError",
    "SceneTooLargeError",
]


class SceneError(ClientError):
    """Root of every error about an artist's scene: reading it, or turning it into kernel input."""


class SceneFileError(SceneError, FileNotFoundError):
    """A scene file that does not exist or cannot be opened."""


class SceneFormatError(SceneError, ValueError):
    """A file whose type is not supported, or whose content is not what its type promises."""


class EmptySceneError(SceneError, ValueError):
    """A file that reads fine but holds nothing to render: no triangles, no volume, no pixels."""


class SceneTooLargeError(SceneError, ValueError):
    """A file or scene past the stated limits (bytes, triangles, pixels, grid side)."""


class SceneKindError(SceneError, ValueError):
    """A scene of one kind (volume, gbuffer, frame) where another is needed."""


class BlenderSceneError(SceneError, ValueError):
    """A Blender scene that cannot be extracted as asked (no camera, no mesh selected...)."""
