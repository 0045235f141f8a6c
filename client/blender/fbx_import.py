"""Read an FBX file with Blender's own FBX importer, in a process of its own (``bpy`` as a module).

``blindframe client import model.fbx`` runs ``python -m blindframe.client.blender.fbx_import
SRC OUT``: :func:`blindframe.client.scene._fbx.read_fbx` starts it, so the importer's global
Blender state, its console output and any crash on a malformed file stay out of the CLI's
process. This process imports SRC into an empty Blender scene with
``bpy.ops.import_scene.fbx`` (the file's own axes and units applied, as Blender does for 3ds
Max, Maya and Cinema 4D exports), then takes every mesh object's evaluated triangles in world
space with :func:`blindframe.client.blender.extract.mesh_arrays` (the add-on's own path, still
Z-up), each triangle's colour (:func:`blindframe.client.blender.extract.mesh_parts`) and each
material's base colour, and writes:

- ``OUT.npz``: ``vertices`` ``(N, 3)`` float64, ``faces`` ``(M, 3)`` int64, ``base`` ``(M, 3)``
  linear colours and, where a material's colour is an image texture, ``uv`` ``(M, 3, 2)``,
  ``texture`` ``(M,)`` and the images ``texture_0``, ``texture_1``... (8-bit sRGB);
- ``OUT.json``: ``{"objects": n, "materials": {name: [r, g, b, a]}, "textures": k}`` (linear
  base colours as Blender holds them), or ``{"error": kind, "message": text}`` where ``kind``
  is ``empty`` (no mesh), ``large`` (over ``max_triangles``), ``texture`` (an image texture
  that cannot be read) or ``format`` (the importer refused the file).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["base_colour", "import_fbx", "main"]


def base_colour(material: Any) -> tuple[float, float, float, float]:
    """A material's base colour: its Principled BSDF's unlinked Base Color, else the viewport
    colour (Blender's FBX importer sets both from the file's DiffuseColor)."""
    tree = getattr(material, "node_tree", None)
    for node in tree.nodes if tree is not None else ():
        if node.type == "BSDF_PRINCIPLED":
            socket = node.inputs["Base Color"]
            if not socket.is_linked:
                r, g, b, a = (float(c) for c in socket.default_value)
                return r, g, b, a
    r, g, b, a = (float(c) for c in material.diffuse_color)
    return r, g, b, a


def import_fbx(source: Path, out: Path, max_triangles: int) -> dict[str, Any]:
    """Import ``source`` into an empty scene; write ``out.npz``; return what ``out.json`` holds."""
    import bpy

    from blindframe.client.blender.extract import mesh_parts
    from blindframe.client.scene import SceneError

    bpy.ops.wm.read_factory_settings(use_empty=True)
    try:
        # No texture search: textures are found where the file says (or embedded), and the
        # search walks every folder below the file's own (slow beside a large project tree).
        done = bpy.ops.import_scene.fbx(filepath=str(source), use_image_search=False)
    except RuntimeError as exc:
        # The operator wraps the importer's exception: its last line says what went wrong.
        lines = [line for line in str(exc).splitlines() if line.strip()]
        return {"error": "format", "message": lines[-1] if lines else "the import failed"}
    if "FINISHED" not in done:
        return {"error": "format", "message": "Blender's FBX importer refused the file"}
    meshes = [obj for obj in bpy.context.scene.objects if obj.type == "MESH"]
    kinds = sorted({obj.type.lower() for obj in bpy.context.scene.objects})
    if not meshes:
        found = f"only {', '.join(kinds)} objects" if kinds else "no objects at all"
        return {"error": "empty", "message": found}
    for obj in meshes:
        obj.data.calc_loop_triangles()
    triangles = sum(len(obj.data.loop_triangles) for obj in meshes)
    if triangles > max_triangles:
        return {"error": "large", "message": f"it has {triangles:,} triangles"}
    try:
        vertices, faces, colours = mesh_parts(meshes)
    except SceneError as exc:
        return {"error": "texture", "message": exc.message}
    if len(faces) == 0 or colours is None:
        return {"error": "empty", "message": "its meshes hold no faces"}
    arrays: dict[str, npt.NDArray[Any]] = {"vertices": vertices, "faces": faces}
    arrays["base"] = colours.base
    if colours.uv is not None and colours.texture is not None:
        arrays.update(uv=colours.uv, texture=colours.texture)
        arrays.update({f"texture_{i}": image for i, image in enumerate(colours.textures)})
    np.savez(out.with_suffix(".npz"), **arrays)
    materials: dict[str, list[float]] = {}
    for obj in meshes:
        for slot in obj.material_slots:
            if slot.material is not None and slot.material.name not in materials:
                materials[slot.material.name] = [round(c, 6) for c in base_colour(slot.material)]
    return {"objects": len(meshes), "materials": materials, "textures": len(colours.textures)}


def main(argv: list[str] | None = None) -> int:
    """``fbx_import SRC OUT MAX_TRIANGLES``: exit 0 once ``OUT.json`` is written."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m blindframe.client.blender.fbx_import SRC OUT MAX_TRIANGLES")
        return 2
    source, out, limit = Path(args[0]), Path(args[1]), int(args[2])
    # The importer prints its progress on stdout, which the parent keeps for a crash report;
    # the answer is OUT.json.
    result = import_fbx(source, out, limit)
    out.with_suffix(".json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
