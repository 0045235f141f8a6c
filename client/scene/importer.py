"""`blindframe client import`: a mesh, G-buffer passes or a frame -> a scene file for a kernel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from blindframe.client.scene import (
    DEFAULT_RESOLUTION,
    MAX_RESOLUTION,
    MESH_SUFFIXES,
    MIN_RESOLUTION,
    SceneKindError,
    UpAxis,
    default_kernel,
    load_scene,
    preview_caption,
    save_preview,
    save_scene,
    to_kernel_input,
)
from blindframe.client.scene._framing import volume_camera
from blindframe.coordinator.cli_support import emit

__all__ = ["import_scene"]

# The kernel registry's ids, written out so `--help` needs no fhe_core import; a test keeps
# them equal to blindframe.fhe_core.kernels.KERNEL_IDS.
KERNEL_CHOICES = ("volume@1", "shade@1", "post@1", "surface@1")
_KIND_OF = {"volume": "volume", "shade": "gbuffer", "post": "frame", "surface": "volume"}
# Kernels whose input is made when the job is posted, from the scene and the job's parameters
# (surface@1 bakes the albedo grid under the job's light): import only checks the scene's kind.
_BAKED_WHEN_POSTED = ("surface@1",)


@click.command("import")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.option(
    "--normal",
    type=click.Path(path_type=Path),
    help="Normal pass (PNG: (n+1)/2, EXR: raw), camera space. Needs --albedo, no FILE.",
)
@click.option(
    "--albedo",
    type=click.Path(path_type=Path),
    help="Albedo (diffuse colour) pass, PNG or EXR. Needs --normal, no FILE.",
)
@click.option(
    "--resolution",
    type=click.IntRange(MIN_RESOLUTION, MAX_RESOLUTION),
    default=DEFAULT_RESOLUTION,
    show_default=True,
    help="Voxel grid side for meshes (multiples of 16 resample exactly to volume@1's 16^3).",
)
@click.option(
    "--up",
    type=click.Choice(["y", "z"]),
    default="y",
    show_default=True,
    help="The mesh file's up axis (glTF is always y; CAD and many STL files use z; FBX files "
    "carry their own).",
)
@click.option(
    "--kernel",
    "kernel_id",
    type=click.Choice(KERNEL_CHOICES),
    help="Check the scene converts for this kernel (default: the one its kind needs).",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Scene file to write (.npz).",
)
@click.option(
    "--preview",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a PNG of what was imported (voxel views, or the passes, or the frame).",
)
@click.pass_context
def import_scene(
    ctx: click.Context,
    file: Path | None,
    normal: Path | None,
    albedo: Path | None,
    resolution: int,
    up: str,
    kernel_id: str | None,
    output: Path,
    preview: Path | None,
) -> None:
    """Turn FILE into a scene file that `blindframe client post` encrypts.

    FILE is a mesh (glTF/GLB, OBJ, STL, PLY, or binary FBX from 3ds Max, Maya or Cinema 4D,
    read by Blender's FBX importer: voxelized for volume@1; its material and texture colours,
    or vertex colours, are kept as a colour per voxel), a PNG/EXR frame (for post@1), a
    multilayer EXR with Normal and diffuse-colour passes, or a scene file (.npz). For shade@1
    give the two G-buffer passes instead: --normal N --albedo A.
    """
    if kernel_id is not None:
        _check_kind_early(kernel_id, file, normal, albedo)
    up_axis: UpAxis = "z" if up == "z" else "y"  # click.Choice already limited it to y|z
    scene = load_scene(file, normal=normal, albedo=albedo, resolution=resolution, up=up_axis)
    kernel = kernel_id or default_kernel(scene.kind)
    inputs = () if kernel in _BAKED_WHEN_POSTED else to_kernel_input(scene, kernel)
    written = save_scene(scene, output)
    data: dict[str, Any] = {"output": str(written), **scene.summary(), "kernel": kernel}
    data["kernel_input"] = [
        {"shape": list(arr.shape), "min": int(arr.min()), "max": int(arr.max())} for arr in inputs
    ]
    if "materials" in scene.meta:
        # FBX materials' base colours: the scene file keeps them as JSON text in its meta.
        data["materials"] = json.loads(str(scene.meta["materials"]))
    if scene.kind == "volume":
        if inputs:
            data["occupied"] = int((inputs[0] > 0).sum())
            data["voxels"] = int(inputs[0].size)
        # What post and render use when given no camera: the model framed in their default
        # frame (client.options.DEFAULT_FRAME, 64x64).
        data["camera"] = volume_camera(scene.density, (64, 64))
    if preview is not None:
        data["preview"] = str(save_preview(scene, preview))
        data["previewShows"] = preview_caption(scene)
    emit(ctx, data, _human)


def _check_kind_early(
    kernel_id: str, file: Path | None, normal: Path | None, albedo: Path | None
) -> None:
    """Refuse an obvious mismatch before reading (and voxelizing) anything."""
    needed = _KIND_OF[kernel_id.partition("@")[0]]
    given = None
    if normal is not None or albedo is not None:
        given = "gbuffer"
    elif file is not None and file.suffix.lower() in MESH_SUFFIXES:
        given = "volume"
    if given is not None and given != needed:
        raise SceneKindError(
            f"{kernel_id} renders a {needed} scene, but these inputs give a {given} scene",
            hint={
                "volume": "give a mesh file (glTF, OBJ, STL, PLY, FBX)",
                "gbuffer": "give --normal and --albedo passes",
                "frame": "give a rendered PNG/EXR frame",
            }[needed],
        )


def _human(data: dict[str, Any]) -> None:
    if data["kind"] == "volume":
        what = f"volume {data['resolution']}^3, {data['filled']:.1%} filled"
        if data["coloured"]:
            what += ", with colours"
        kernel = (
            f"{data['kernel']}: {data['occupied']} of {data['voxels']} voxels occupied"
            if "occupied" in data
            else f"{data['kernel']}: its input is baked when the job is posted"
        )
    else:
        what = f"{data['kind']} {data['width']}x{data['height']}"
        shapes = ", ".join("x".join(map(str, k["shape"])) for k in data["kernel_input"])
        kernel = f"{data['kernel']}: input {shapes}"
    click.echo(f"imported  {data['source']} ({what})")
    for name, rgba in data.get("materials", {}).items():
        colour = ", ".join(f"{c:.3f}" for c in rgba[:3])
        click.echo(f"material  {name}: base colour {colour} (linear; kept in the scene file)")
    click.echo(f"kernel    {kernel}")
    if "camera" in data:
        view = ", ".join(f"{key} {value:g}" for key, value in data["camera"].items())
        click.echo(f"camera    {view} (the model framed; --yaw, --pitch, --zoom to change)")
    click.echo(f"scene     {data['output']}")
    if "preview" in data:
        click.echo(f"preview   {data['preview']} ({data['previewShows']})")
