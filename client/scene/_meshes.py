"""Read glTF/GLB, OBJ, STL, PLY (and, through Blender, FBX) files into one triangle soup in the
grid's frame (+y up), with the triangles' colours where the file has any (see
:mod:`blindframe.client.scene._colours` for the colour model)."""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import re
import struct
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from blindframe.client.scene._colours import (
    MeshColours,
    concat_colours,
    texture_array,
)
from blindframe.client.scene._errors import EmptySceneError, SceneFormatError, SceneTooLargeError
from blindframe.client.scene._images import check_file, srgb_decode
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
    """Every triangle of a file, world transforms applied: ``(N, 3)`` vertices, ``(M, 3)`` faces,
    and their colours (None when the file has none)."""

    vertices: npt.NDArray[np.float64]
    faces: npt.NDArray[np.int64]
    objects: int
    colours: MeshColours | None = None


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
    if suffix == ".obj":
        _check_obj_textures(path)
    elif suffix in (".gltf", ".glb"):
        _check_gltf_textures(path)
    import trimesh

    try:
        # No processing: merging vertices by position would give a vertex shared by two
        # differently coloured faces one colour (a hard colour edge would blur); the voxelizer
        # needs positions only.
        loaded = trimesh.load(
            str(path), file_type=_TRIMESH_TYPE[suffix], force="scene", process=False
        )
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
    parts_c: list[MeshColours | None] = []
    textures: dict[int, npt.NDArray[np.uint8]] = {}
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
        parts_c.append(_geometry_colours(geometry, faces, path, suffix, textures))
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
    colours = None
    if any(part is not None for part in parts_c):
        colours = concat_colours(
            [
                MeshColours.uniform(len(faces)) if part is None else part
                for part, faces in zip(parts_c, parts_f, strict=True)
            ]
        )
    return Mesh(vertices, np.concatenate(parts_f), len(parts_f), colours)


def _geometry_colours(
    geometry: Any,
    faces: npt.NDArray[np.int64],
    path: Path,
    suffix: str,
    textures: dict[int, npt.NDArray[np.uint8]],
) -> MeshColours | None:
    """One trimesh geometry's triangle colours, or None where it has none.

    ``textures`` caches decoded images by identity: parts that share a material decode its
    texture once.
    """
    import trimesh

    visual = geometry.visual
    count = len(faces)
    if isinstance(visual, trimesh.visual.ColorVisuals):
        # glTF vertex colours (COLOR_0) are linear; PLY/OBJ colours are display bytes.
        decode = _linear_bytes if suffix in _GLTF else srgb_decode
        if visual.kind == "vertex":
            rgb = decode(np.asarray(visual.vertex_colors)[:, :3] / 255.0)
            if len(rgb) != len(geometry.vertices):
                raise SceneFormatError(
                    f"{str(path)!r} has {len(rgb):,} vertex colours for "
                    f"{len(geometry.vertices):,} vertices"
                )
            return MeshColours(np.ones((count, 3)), corner=rgb[faces])
        if visual.kind == "face":
            rgb = decode(np.asarray(visual.face_colors)[:, :3] / 255.0)
            if len(rgb) != count:
                raise SceneFormatError(
                    f"{str(path)!r} has {len(rgb):,} face colours for {count:,} faces"
                )
            return MeshColours(rgb)
        return None
    if not isinstance(visual, trimesh.visual.TextureVisuals) or visual.material is None:
        return None
    # Any: trimesh's annotations name fewer material classes than it builds.
    material: Any = visual.material
    factor: npt.ArrayLike
    image: Any
    if isinstance(material, trimesh.visual.material.PBRMaterial):
        stored = material.baseColorFactor
        factor = np.ones(3) if stored is None else _linear_bytes(np.asarray(stored)[:3] / 255.0)
        image = material.baseColorTexture
    elif isinstance(material, trimesh.visual.material.SimpleMaterial):
        image = material.image
        # A texture replaces Kd (see the module docstring of _colours).
        factor = np.ones(3) if image is not None else np.asarray(material.diffuse)[:3] / 255.0
    else:
        return None
    base = np.tile(np.asarray(factor, dtype=np.float64), (count, 1))
    corner = _gltf_vertex_colours(visual, geometry, path)[faces] if suffix in _GLTF else None
    uv = None if visual.uv is None else np.asarray(visual.uv, dtype=np.float64)
    if image is None or uv is None or len(uv) != len(geometry.vertices):
        # A texture with no (or mismatched) texture coordinates cannot be placed: the factor
        # alone colours the part.
        return MeshColours(base, corner=corner)
    key = id(image)
    if key not in textures:
        textures[key] = _decode_texture(image, path, getattr(material, "name", None))
    return MeshColours(
        base,
        corner=corner,
        uv=uv[faces].astype(np.float32),
        texture=np.zeros(count, dtype=np.int32),
        textures=(textures[key],),
    )


_GLTF = (".gltf", ".glb")
# glTF's COLOR_0 component types: normalized unsigned integers or floats.
_COLOUR_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def _gltf_vertex_colours(visual: Any, geometry: Any, path: Path) -> npt.NDArray[np.float64]:
    """A glTF primitive's COLOR_0 (linear; it multiplies the base colour), which trimesh keeps
    beside a material as a raw vertex attribute; ones where there is none."""
    count = len(geometry.vertices)
    raw = getattr(visual, "vertex_attributes", {}).get("color")
    if raw is None:
        return np.ones((count, 3))
    arr = np.asarray(raw)
    if arr.ndim != 2 or arr.shape[1] not in (3, 4) or len(arr) != count:
        raise SceneFormatError(
            f"{str(path)!r} has vertex colours of shape {arr.shape} for {count:,} vertices"
        )
    scale = _COLOUR_SCALE.get(arr.dtype, 1.0)
    return np.clip(arr[:, :3].astype(np.float64) / scale, 0.0, 1.0)


def _linear_bytes(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Values that are linear already (glTF factors and vertex colours), as floats."""
    return np.asarray(values, dtype=np.float64)


def _decode_texture(image: Any, path: Path, material: str | None) -> npt.NDArray[np.uint8]:
    """A PIL image (as trimesh loads textures: decoded lazily) -> 8-bit RGB, or a clear error."""
    what = f"the texture of material {material!r} in {str(path)!r}"
    try:
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:
        raise SceneFormatError(
            f"cannot read {what}: {exc}",
            hint="save the texture again as PNG or JPEG and re-export the model",
        ) from None
    return texture_array(rgb, what)


_MTLLIB = re.compile(rb"^[ \t]*mtllib[ \t]+(.+?)[ \t]*$", re.MULTILINE)
_MAP_KD = re.compile(r"^[ \t]*map_Kd[ \t]+(.+?)[ \t]*$", re.MULTILINE | re.IGNORECASE)


def _check_gltf_textures(path: Path) -> None:
    """Refuse a glTF/GLB whose base-colour texture cannot be decoded: trimesh would drop it
    without a word. A file whose structure is broken is left to trimesh, which names it."""
    raw = path.read_bytes()
    chunk = b""
    try:
        if raw[:4] == b"glTF":
            (json_len,) = struct.unpack_from("<I", raw, 12)
            text = raw[20 : 20 + json_len]
            rest = 20 + json_len
            if len(raw) >= rest + 8:
                (bin_len,) = struct.unpack_from("<I", raw, rest)
                chunk = raw[rest + 8 : rest + 8 + bin_len]
        else:
            text = raw
        doc = json.loads(text)
        used = {
            int(m["pbrMetallicRoughness"]["baseColorTexture"]["index"])
            for m in doc.get("materials", [])
            if "baseColorTexture" in m.get("pbrMetallicRoughness", {})
        }
        images = [doc["images"][int(doc["textures"][t]["source"])] for t in sorted(used)]
    except (struct.error, ValueError, KeyError, IndexError, TypeError, AttributeError):
        return
    for number, image in enumerate(images):
        try:
            data = _gltf_image_bytes(path, doc, image, chunk)
        except (ValueError, KeyError, IndexError, TypeError, binascii.Error):
            continue  # an image trimesh cannot locate either: its own error names it
        except OSError as exc:
            raise SceneFormatError(
                f"cannot read base-colour texture {image.get('uri', number)!r} of "
                f"{str(path)!r}: {exc.strerror or exc}",
                hint="put the texture files beside the .gltf file, or export a .glb",
            ) from None
        _check_image_bytes(data, f"base-colour texture {number} of {str(path)!r}")


def _gltf_image_bytes(
    path: Path, doc: dict[str, Any], image: dict[str, Any], chunk: bytes
) -> bytes:
    """An image's encoded bytes: from a buffer view (the GLB chunk, a data URI or a .bin file),
    a data URI, or a file beside the .gltf."""
    if "bufferView" in image:
        view = doc["bufferViews"][int(image["bufferView"])]
        buffer = doc["buffers"][int(view["buffer"])]
        data = chunk if "uri" not in buffer else _uri_bytes(path, str(buffer["uri"]))
        start = int(view.get("byteOffset", 0))
        return data[start : start + int(view["byteLength"])]
    return _uri_bytes(path, str(image["uri"]))


def _uri_bytes(path: Path, uri: str) -> bytes:
    if uri.startswith("data:"):
        return base64.b64decode(uri.partition(",")[2])
    return (path.parent / urllib.parse.unquote(uri)).read_bytes()


def _check_image_bytes(data: bytes, what: str) -> None:
    from PIL import Image as PilImage
    from PIL import UnidentifiedImageError

    try:
        with PilImage.open(io.BytesIO(data)) as img:
            img.verify()
    except UnidentifiedImageError:
        raise SceneFormatError(
            f"cannot read {what}: its bytes are not an image format Pillow decodes",
            hint="save the texture again as PNG or JPEG and re-export the model",
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise SceneFormatError(
            f"cannot read {what}: {exc}",
            hint="save the texture again as PNG or JPEG and re-export the model",
        ) from None


def _check_obj_textures(path: Path) -> None:
    """Refuse an OBJ whose material library names a colour texture (``map_Kd``) that cannot be
    read: trimesh would drop it without a word and the model would lose its colours."""
    from PIL import Image as PilImage

    for match in _MTLLIB.finditer(path.read_bytes()):
        library = path.parent / match.group(1).decode("utf-8", "replace")
        if not library.is_file():
            continue  # trimesh reads such an OBJ without materials, as other tools do
        text = library.read_text("utf-8", "replace")
        for name in _MAP_KD.findall(text):
            # Options (-s 1 1 1, -bm 0.5...) come first; the file name is the rest's last word.
            texture = library.parent / name.split()[-1]
            try:
                with PilImage.open(texture) as img:
                    img.verify()
            except (OSError, ValueError, SyntaxError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise SceneFormatError(
                    f"cannot read texture {str(texture)!r} named by {library.name!r} "
                    f"(map_Kd): {reason}",
                    hint="put the texture beside the .mtl file or fix its name in the .mtl",
                ) from None
