"""Read glTF/GLB, OBJ, STL, PLY (and, through Blender, FBX) files into one triangle soup in the
grid's frame (+y up)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from blindframe.client.scene._errors import EmptySceneError, SceneFormatError, SceneTooLargeError
from blindframe.client.scene._images import check_file
from blindframe.client.scene._sniff import (
    check_mesh_bytes,
    parser_says_truncated,
    truncated_error,
)
from blindframe.client.scene._voxelize import MAX_TRIANGLES

__all__ = ["MESH_SUFFIXES", "Mesh", "UpAxis", "read_mesh", "to_y_up"]

UpAxis = Literal["y", "z"]
MESH_SUFFIXES = {
    ".gltf": "glTF",
    ".glb": "glTF",
    ".obj": "OBJ",
    ".stl": "STL",
    ".ply": "PLY",
    ".fbx": "FBX",  # through Blender's importer: blindframe.client.scene._fbx
}
_TRIMESH_TYPE = {".gltf": "gltf", ".glb": "glb", ".obj": "obj", ".stl": "stl", ".ply": "ply"}

# trimesh logs parser complaints; with no handler Python would print them on stderr beside the
# command's own one-line error. An application that configures logging still gets them.
logging.getLogger("trimesh").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class Mesh:
    """Every triangle of a file, world transforms applied: ``(N, 3)`` vertices, ``(M, 3)`` faces."""

    vertices: npt.NDArray[np.float64]
    faces: npt.NDArray[np.int64]
    objects: int


def to_y_up(vertices: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Z-up coordinates (Blender, most CAD and STL files) -> +y up: ``(x, y, z) -> (x, z, -y)``.

    The same rotation Blender's glTF and OBJ exporters apply, so a Blender scene voxelized in
    place and the same scene exported to glTF/OBJ give the same grid.
    """
    pts = np.asarray(vertices, dtype=np.float64)
    return np.stack([pts[:, 0], pts[:, 2], -pts[:, 1]], axis=1)


def read_mesh(path: Path, *, up: UpAxis = "y") -> Mesh:
    """Load a mesh file: every mesh instance of its scene graph, transformed and concatenated.

    Points, lines, cameras and lights are ignored. Faces with more than three corners are
    triangulated by the loader. ``up`` names the file's up axis: ``y`` for glTF (always) and
    most OBJ/PLY exports, ``z`` for Z-up STL/OBJ/PLY (CAD, Blender's STL exporter). FBX files
    carry their own axes, which Blender's importer applies: ``up`` is not used for them.
    """
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise SceneFormatError(f"{str(path)!r} is not a mesh file ({', '.join(MESH_SUFFIXES)})")
    if up not in ("y", "z"):
        raise SceneFormatError(f"up axis must be y or z (not {up!r})")
    if suffix == ".fbx":
        from blindframe.client.scene._fbx import read_fbx  # _fbx builds on this module

        return read_fbx(path).mesh
    kind = MESH_SUFFIXES[suffix]
    size = check_file(path, f"{kind} file")
    # Bytes first: a file of another format or cut short is named so, before any parsing.
    unterminated = check_mesh_bytes(path, suffix, kind, size)
    import trimesh

    try:
        loaded = trimesh.load(str(path), file_type=_TRIMESH_TYPE[suffix], force="scene")
    except MemoryError:
        raise SceneTooLargeError(f"{kind} file {str(path)!r} does not fit in memory") from None
    except Exception as exc:  # noqa: BLE001 -- trimesh's parsers raise anything on a bad file
        if parser_says_truncated(exc):
            raise truncated_error(path, f"{kind} file", "it ends before its content does") from None
        raise SceneFormatError(
            f"cannot read {str(path)!r} as {kind}: {type(exc).__name__}: {exc}",
            hint="check it opens in a 3D tool and export it again (glTF/GLB travels best)",
        ) from None
    if not isinstance(loaded, trimesh.Scene):
        raise SceneFormatError(f"{str(path)!r} did not load as a {kind} scene")
    parts_v: list[npt.NDArray[np.float64]] = []
    parts_f: list[npt.NDArray[np.int64]] = []
    offset = 0
    total = 0
    for node in loaded.graph.nodes_geometry:
        transform, geometry_name = loaded.graph[node]
        geometry = loaded.geometry.get(geometry_name)
        if not isinstance(geometry, trimesh.Trimesh) or len(geometry.faces) == 0:
            continue
        faces = np.asarray(geometry.faces, dtype=np.int64)
        total += len(faces)
        if total > MAX_TRIANGLES:
            raise SceneTooLargeError(
                f"{str(path)!r} has more than {MAX_TRIANGLES:,} triangles",
                hint="decimate it first (Blender: Decimate modifier); a 16^3 grid needs few",
            )
        vertices = np.asarray(geometry.vertices, dtype=np.float64)
        matrix = np.asarray(transform, dtype=np.float64)
        parts_v.append(vertices @ matrix[:3, :3].T + matrix[:3, 3])
        parts_f.append(faces + offset)
        offset += len(vertices)
    if not parts_f:
        if unterminated:
            # Exporters end files with a newline: no faces and no final newline is a cut file.
            raise truncated_error(path, f"{kind} file", "it stops mid-line before any face record")
        raise EmptySceneError(
            f"{kind} file {str(path)!r} holds no triangles",
            hint="export the mesh objects themselves (not only points, curves or empties)",
        )
    vertices = np.concatenate(parts_v)
    if not np.isfinite(vertices).all():
        raise SceneFormatError(f"{str(path)!r} has NaN or infinite vertex coordinates")
    if up == "z":
        vertices = to_y_up(vertices)
    return Mesh(vertices, np.concatenate(parts_f), len(parts_f))
