"""Read FBX files (3ds Max, Maya, Cinema 4D) through Blender's own FBX importer, in a child process.

Blender's importer reads binary FBX 7.1 (2011) and later, the default of every current
exporter; ASCII FBX and older versions are refused here, before Blender starts, with the export
setting that fixes them. The importer runs in ``python -m
blindframe.client.blender.fbx_import`` (``bpy`` as a module): Blender's global state, its
console output and a crash on a malformed file stay out of this process. It applies the
file's own axes and units and hands back world-space triangles in Blender's Z-up frame, turned
+y up here like every other mesh, each triangle's colour (its material's base colour or image
texture, read as the Blender add-on reads them) and each material's base colour.
"""

from __future__ import annotations

import importlib.util
import json
import re
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blindframe.client.scene._colours import MeshColours
from blindframe.client.scene._errors import (
    EmptySceneError,
    SceneError,
    SceneFormatError,
    SceneTooLargeError,
)
from blindframe.client.scene._images import check_file
from blindframe.client.scene._meshes import Mesh, to_y_up
from blindframe.client.scene._sniff import (
    describe_content,
    parser_says_truncated,
    truncated_error,
)
from blindframe.client.scene._voxelize import MAX_TRIANGLES

__all__ = ["FBX_MAGIC", "FbxMesh", "read_fbx"]

FBX_MAGIC = b"Kaydara FBX Binary  \x00"
# Blender's importer reads FBX 7.1 (7100) and later.
_MIN_VERSION = 7100
# Starting Blender and importing a file of MAX_FILE_BYTES takes well under this.
_TIMEOUT_S = 600
_REASON = re.compile(r"Couldn't open file .*? \((.+)\)$")
# The importer's words for a file that ends inside a block.
_CUT = re.compile(r"failed to read complete|but only got", re.IGNORECASE)
_EXPORT_HINT = "export it again as binary FBX, version 2011 or later"


@dataclass(frozen=True)
class FbxMesh:
    """An FBX file's triangles (+y up) and its materials' linear base colours (RGBA)."""

    mesh: Mesh
    materials: dict[str, tuple[float, float, float, float]]


def read_fbx(path: Path) -> FbxMesh:
    """Import ``path`` with Blender's FBX importer: every mesh object, transforms applied."""
    check_file(path, "FBX file")
    _check_header(path)
    if importlib.util.find_spec("bpy") is None:
        raise SceneFormatError(
            f"cannot import FBX file {str(path)!r}: Blender's Python module (bpy) is not "
            "installed in this environment",
            hint="pip install 'bpy==5.0.1' (Python 3.11; blindframe's dev extra has it), or "
            "export glTF/GLB from the 3D tool instead",
        )
    with tempfile.TemporaryDirectory(prefix="blindframe-fbx-") as tmp:
        out = Path(tmp) / "mesh"
        command = [
            sys.executable,
            "-m",
            "blindframe.client.blender.fbx_import",
            str(path.resolve()),
            str(out),
            str(MAX_TRIANGLES),
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise SceneTooLargeError(
                f"Blender's FBX importer did not finish {str(path)!r} in {_TIMEOUT_S} s",
                hint="export only the objects to render, or decimate them first",
            ) from None
        answer = out.with_suffix(".json")
        if done.returncode != 0 or not answer.exists():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise SceneFormatError(
                f"Blender's FBX importer failed on {str(path)!r} (exit code {done.returncode}: "
                f"{last})",
                hint=_EXPORT_HINT,
            )
        result = json.loads(answer.read_text())
        if "error" in result:
            raise _child_error(path, str(result["error"]), str(result["message"]))
        with np.load(out.with_suffix(".npz")) as arrays:
            vertices = np.asarray(arrays["vertices"], dtype=np.float64)
            faces = np.asarray(arrays["faces"], dtype=np.int64)
            colours = MeshColours(
                arrays["base"],
                uv=arrays.get("uv"),
                texture=arrays.get("texture"),
                textures=tuple(arrays[f"texture_{i}"] for i in range(int(result["textures"]))),
            )
    if not np.isfinite(vertices).all():
        raise SceneFormatError(f"{str(path)!r} has NaN or infinite vertex coordinates")
    materials = {
        str(name): (float(r), float(g), float(b), float(a))
        for name, (r, g, b, a) in result["materials"].items()
    }
    mesh = Mesh(to_y_up(vertices), faces, int(result["objects"]), colours)
    return FbxMesh(mesh, materials)


def _check_header(path: Path) -> None:
    """Refuse what Blender's importer cannot read, naming what the file is instead."""
    with path.open("rb") as fh:
        head = fh.read(64)
    if head.startswith(FBX_MAGIC[:18]):
        if len(head) < 27:
            raise SceneFormatError(
                f"FBX file {str(path)!r} is truncated: it ends inside its header",
                hint="copy or export the file again",
            )
        (version,) = struct.unpack("<I", head[23:27])
        if version < _MIN_VERSION:
            raise SceneFormatError(
                f"FBX file {str(path)!r} is FBX {version // 1000}.{version % 1000 // 100}; "
                "Blender reads FBX 7.1 (2011) and later",
                hint=_EXPORT_HINT,
            )
        return
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"; FBX") or b"FBXHeaderExtension" in head:
        raise SceneFormatError(
            f"FBX file {str(path)!r} is ASCII FBX; Blender's importer reads binary FBX only",
            hint="export it again with the FBX format set to Binary",
        )
    found = describe_content(head)
    raise SceneFormatError(
        f"{str(path)!r} is not an FBX file"
        + (f": this file is {found}" if found else " (it lacks the binary FBX header)"),
        hint="export the model from its 3D tool as binary FBX, or give its own file type",
    )


def _child_error(path: Path, kind: str, message: str) -> SceneError:
    if kind == "empty":
        return EmptySceneError(
            f"FBX file {str(path)!r} holds no mesh to render ({message})",
            hint="export the mesh objects themselves (in 3ds Max/Maya/Cinema 4D: select the "
            "geometry, not only cameras, lights or nulls)",
        )
    if kind == "texture":
        return SceneFormatError(
            f"FBX file {str(path)!r}: {message}",
            hint="put the textures where the FBX file names them, or embed them in the FBX",
        )
    if kind == "large":
        return SceneTooLargeError(
            f"FBX file {str(path)!r} has more than {MAX_TRIANGLES:,} triangles ({message})",
            hint="decimate it first (3ds Max: ProOptimizer; Maya: Reduce; Blender: Decimate)",
        )
    # The importer says "Error: Couldn't open file '<path>' (<reason>)": keep the reason.
    reason = _REASON.search(message)
    detail = reason.group(1) if reason else message.removeprefix("Error: ")
    if parser_says_truncated(Exception(detail)) or _CUT.search(detail):
        return truncated_error(path, "FBX file", f"Blender's importer says {detail!r}")
    return SceneFormatError(
        f"Blender's FBX importer cannot read {str(path)!r}: {detail}", hint=_EXPORT_HINT
    )
