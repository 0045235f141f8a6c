"""Unreadable, empty, oversized and wrong-kind inputs: a clear client error, never a crash."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from blindframe.client.errors import ClientError
from blindframe.client.scene import (
    MAX_FILE_BYTES,
    MAX_IMAGE_SIDE,
    EmptySceneError,
    Scene,
    SceneError,
    SceneFileError,
    SceneFormatError,
    SceneKindError,
    SceneTooLargeError,
    _meshes,
    load_scene,
    save_preview,
    save_scene,
    to_kernel_input,
)
from blindframe.fhe_core.errors import UnknownKernelError

from .shapes import write_exr, write_png

MESHES = ["x.glb", "x.gltf", "x.obj", "x.stl", "x.ply"]


def refused(error: type[SceneError], builtin: type[Exception], match: str, **kwargs: object) -> str:
    """Load and expect ``error`` (also a ClientError and ``builtin``); return its text."""
    with pytest.raises(error, match=match) as info:
        load_scene(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ClientError)
    assert isinstance(info.value, builtin)
    return str(info.value)


@pytest.mark.parametrize("name", [*MESHES, "x.png", "x.exr", "x.npz"])
def test_missing_file(name: str, out: Path) -> None:
    message = refused(SceneFileError, FileNotFoundError, "does not exist", path=out / name)
    assert name in message


def test_folder_instead_of_file(out: Path) -> None:
    (out / "model.glb").mkdir()
    refused(SceneFileError, FileNotFoundError, "not a file", path=out / "model.glb")


@pytest.mark.parametrize("name", [*MESHES, "x.png", "x.exr", "x.npz"])
def test_zero_byte_file(name: str, out: Path) -> None:
    (out / name).write_bytes(b"")
    refused(EmptySceneError, ValueError, "empty", path=out / name)


@pytest.mark.parametrize("name", ["x.glb", "x.gltf", "x.ply", "x.png", "x.exr", "x.npz"])
def test_garbage(name: str, out: Path) -> None:
    (out / name).write_bytes(bytes(range(256)) * 4)
    refused(SceneFormatError, ValueError, "cannot|neither|not a", path=out / name)


@pytest.mark.parametrize("name", ["x.obj", "x.stl"])
def test_text_without_triangles(name: str, out: Path) -> None:
    """Loose OBJ/STL parsers read junk as a mesh of nothing: reported as empty."""
    (out / name).write_text("this is not a mesh\nv 1 2\n")
    refused(EmptySceneError, ValueError, "no triangles", path=out / name)


def _cut(path: Path, keep: float = 0.5) -> Path:
    """Write the first ``keep`` of ``path`` beside it (an interrupted copy) and return it."""
    data = path.read_bytes()
    cut = path.with_name(f"cut-{path.name}")
    cut.write_bytes(data[: int(len(data) * keep)])
    return cut


@pytest.mark.parametrize("suffix", ["glb", "obj", "stl", "ply"])
def test_truncated_mesh_says_truncated(suffix: str, out: Path) -> None:
    trimesh.creation.icosphere(subdivisions=2).export(out / f"ball.{suffix}")
    message = refused(
        SceneFormatError, ValueError, "is truncated", path=_cut(out / f"ball.{suffix}")
    )
    # In the artist's words, not the parser's ("ValueError: chunk was not expected length!").
    assert "ValueError" not in message
    assert "length!" not in message


def test_truncated_images_say_truncated(out: Path) -> None:
    rng = np.random.default_rng(0)
    write_png(out / "full.png", rng.random((3, 64, 64)))
    refused(SceneFormatError, ValueError, "is truncated.*IEND", path=_cut(out / "full.png"))
    write_exr(out / "full.exr", {c: rng.random((64, 64)) for c in "RGB"})
    refused(SceneFormatError, ValueError, "is truncated", path=_cut(out / "full.exr"))


def test_obj_with_vertices_only_is_empty_or_cut(out: Path) -> None:
    """No faces: "no triangles" if the file ends cleanly, "truncated" if it stops mid-record."""
    vertices = "".join(f"v {i} {i + 1}.5 {-i}.25\n" for i in range(20))
    (out / "points.obj").write_text(vertices)
    refused(EmptySceneError, ValueError, "no triangles", path=out / "points.obj")
    (out / "cut.obj").write_text(vertices + "v 3.5 -")
    refused(SceneFormatError, ValueError, "truncated", path=out / "cut.obj")
    (out / "cut_line.obj").write_text(vertices + "v 3.5 2.0 1")  # whole values, no newline
    refused(SceneFormatError, ValueError, "truncated.*before any face", path=out / "cut_line.obj")


def test_random_bytes_obj_is_refused_without_parsing(out: Path) -> None:
    # Sparse file past 200 MB with random bytes at both ends: only the ends are ever read.
    path = out / "noise.obj"
    noise = np.random.default_rng(1).bytes(1 << 16)
    with path.open("wb") as fh:
        fh.write(noise)
        fh.seek(200 * 2**20)
        fh.write(noise)
    started = time.monotonic()
    refused(SceneFormatError, ValueError, "not a text OBJ file", path=path)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("name", "named"),
    [("png.glb", "a PNG image, not glTF binary"), ("png.obj", "a PNG image, not OBJ")],
)
def test_other_formats_are_named(name: str, named: str, out: Path) -> None:
    write_png(out / "picture.png", np.zeros((3, 4, 4))).rename(out / name)
    refused(SceneFormatError, ValueError, f"this file is {named}", path=out / name)
    trimesh.creation.box().export(out / "box.png", file_type="glb")
    refused(SceneFormatError, ValueError, "this file is a glTF binary", path=out / "box.png")


def test_gltf_without_its_buffer(out: Path) -> None:
    files = trimesh.creation.box().export(file_type="gltf")
    (out / "box.gltf").write_bytes(files["model.gltf"])  # its .bin buffer left behind
    refused(SceneFormatError, ValueError, "cannot read", path=out / "box.gltf")


def test_points_only_ply_is_empty(out: Path) -> None:
    trimesh.PointCloud(np.random.default_rng(0).random((50, 3))).export(out / "cloud.ply")
    refused(EmptySceneError, ValueError, "no triangles", path=out / "cloud.ply")


def test_flat_mesh_has_no_volume(out: Path) -> None:
    plane = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], [[0, 1, 2], [0, 2, 3]])
    plane.export(out / "plane.obj")
    message = refused(EmptySceneError, ValueError, "encloses no volume", path=out / "plane.obj")
    assert "open" in message or "flat" in message


def test_oversized_file_is_refused_before_reading(out: Path) -> None:
    big = out / "huge.glb"
    with big.open("wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk used
    message = refused(SceneTooLargeError, ValueError, "MiB", path=big)
    assert f"{MAX_FILE_BYTES + 1:,} bytes" in message


def test_too_many_triangles(monkeypatch: pytest.MonkeyPatch, out: Path) -> None:
    # A real file over a lowered limit (a file over the real 4M limit would be ~200 MB).
    monkeypatch.setattr(_meshes, "MAX_TRIANGLES", 100)
    trimesh.creation.icosphere(subdivisions=2).export(out / "ball.glb")
    refused(SceneTooLargeError, ValueError, "more than 100 triangles", path=out / "ball.glb")


def test_oversized_images(out: Path) -> None:
    Image.new("RGB", (MAX_IMAGE_SIDE + 1, 2)).save(out / "wide.png")
    refused(SceneTooLargeError, ValueError, "at most 4096 a side", path=out / "wide.png")
    write_exr(out / "tall.exr", {c: np.zeros((MAX_IMAGE_SIDE + 1, 1)) for c in "RGB"})
    refused(SceneTooLargeError, ValueError, "at most 4096 a side", path=out / "tall.exr")


def test_unknown_suffix(out: Path) -> None:
    (out / "model.3ds").write_bytes(b"MM\x00\x00")
    message = refused(
        SceneFormatError, ValueError, "unknown file type '.3ds'", path=out / "model.3ds"
    )
    assert ".fbx" in message  # the supported types are listed


def test_wrong_bytes_for_the_suffix(out: Path) -> None:
    write_exr(out / "really_exr.png", {c: np.zeros((4, 4)) for c in "RGB"})
    assert load_scene(out / "really_exr.png").kind == "frame"  # images go by content
    trimesh.creation.box().export(out / "mesh.png", file_type="glb")
    refused(SceneFormatError, ValueError, "neither a PNG nor an OpenEXR", path=out / "mesh.png")


def test_pass_arguments(out: Path) -> None:
    write_png(out / "n.png", np.full((3, 8, 8), 0.5))
    refused(SceneKindError, ValueError, "nothing to import")
    refused(SceneKindError, ValueError, "nothing to import", normal=out / "n.png")
    refused(SceneKindError, ValueError, "not both", path=out / "n.png", normal=out / "n.png")


def test_pass_contents(out: Path) -> None:
    rng = np.random.default_rng(2)
    write_png(out / "grey.png", np.full((1, 8, 8), 0.7), mode="L")
    write_png(out / "a.png", rng.random((3, 8, 8)))
    write_png(out / "a_small.png", rng.random((3, 4, 8)))
    write_png(out / "flat.png", np.full((3, 8, 8), 0.5))  # every normal decodes to length 0
    up = np.zeros((3, 8, 8))
    up[2] = 1.0
    write_png(out / "n.png", (up + 1) / 2)
    refused(
        SceneFormatError,
        ValueError,
        "no X/Y/Z or R/G/B",
        normal=out / "grey.png",
        albedo=out / "a.png",
    )
    refused(
        SceneFormatError,
        ValueError,
        "same resolution|8x8 but",
        normal=out / "n.png",
        albedo=out / "a_small.png",
    )
    refused(
        EmptySceneError,
        ValueError,
        "shows no surface",
        normal=out / "flat.png",
        albedo=out / "a.png",
    )
    # An EXR whose normals were stored as (n + 1) / 2: not unit vectors.
    encoded = (np.stack([rng.random((8, 8)), rng.random((8, 8)), np.zeros((8, 8))]) + 1) / 2
    write_exr(out / "n01.exr", {c: encoded[i] for i, c in enumerate("RGB")})
    message = refused(
        SceneFormatError, ValueError, "unit vectors", normal=out / "n01.exr", albedo=out / "a.png"
    )
    assert "PNG" in message


def test_world_space_normals_are_refused(out: Path) -> None:
    """Seen surfaces face the camera in camera space: a pass mostly facing away is not one."""
    down = np.zeros((3, 8, 8))
    down[1], down[2] = 0.6, -0.8
    write_exr(out / "world.exr", {c: down[i] for i, c in enumerate("XYZ")})
    write_png(out / "a.png", np.full((3, 8, 8), 0.5))
    message = refused(
        SceneFormatError, ValueError, "camera space", normal=out / "world.exr", albedo=out / "a.png"
    )
    assert "world-space" in message


def test_exr_without_a_frame_layer(out: Path) -> None:
    write_exr(out / "two.exr", {f"{layer}.{c}": np.zeros((4, 4)) for layer in "ab" for c in "RGB"})
    refused(SceneFormatError, ValueError, "which layer", path=out / "two.exr")


def test_npz_that_is_not_a_scene(out: Path) -> None:
    np.savez(out / "other.npz", weights=np.zeros(3))
    refused(SceneFormatError, ValueError, "not a blindframe scene", path=out / "other.npz")
    np.savez(out / "pickled.npz", kind=np.array([{"a": 1}], dtype=object))
    refused(SceneFormatError, ValueError, "scene", path=out / "pickled.npz")
    scene = Scene("frame", "f", frame=np.zeros((1, 4, 4)))
    path = save_scene(scene, out / "ok.npz")
    with np.load(path) as data:
        entries = dict(data)
    np.savez(out / "extra.npz", **entries, secret=np.zeros(2))
    refused(SceneFormatError, ValueError, "unexpected entries", path=out / "extra.npz")
    entries["frame"] = np.full((1, 4, 4), 2.0)
    np.savez(out / "range.npz", **entries)
    refused(SceneFormatError, ValueError, r"range.npz.*\[0, 1\]", path=out / "range.npz")
    entries["format"] = np.array("blindframe-scene/99")
    np.savez(out / "future.npz", **entries)
    refused(SceneFormatError, ValueError, "not a blindframe-scene/1", path=out / "future.npz")


def test_npz_bomb_is_refused(out: Path) -> None:
    path = out / "bomb.npz"
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("density.npy", "w", force_zip64=True) as fh,
    ):
        chunk = bytes(1 << 24)
        for _ in range(33):  # 528 MiB of zeros, compressed to well under 1 MiB
            fh.write(chunk)
    assert path.stat().st_size < 4 << 20
    refused(SceneTooLargeError, ValueError, "unpacks to", path=path)


def test_wrong_kind_for_the_kernel() -> None:
    frame = Scene("frame", "shot.png", frame=np.zeros((3, 8, 8)))
    with pytest.raises(SceneKindError, match="shade@1 renders a gbuffer scene") as info:
        to_kernel_input(frame, "shade@1")
    assert isinstance(info.value, ValueError)
    assert info.value.hint is not None
    with pytest.raises(SceneKindError, match="volume@1"):
        to_kernel_input(frame, "volume@1")
    with pytest.raises(UnknownKernelError):
        to_kernel_input(frame, "volum@1")


def test_scene_validation() -> None:
    with pytest.raises(SceneKindError):
        Scene("mesh", "x", frame=np.zeros((1, 4, 4)))  # type: ignore[arg-type]
    with pytest.raises(SceneKindError, match="has no density"):
        Scene("frame", "x", frame=np.zeros((1, 4, 4)), density=np.zeros((16, 16, 16)))
    with pytest.raises(SceneFormatError, match="needs density"):
        Scene("volume", "x")
    with pytest.raises(SceneFormatError, match="cube"):
        Scene("volume", "x", density=np.zeros((16, 16, 8)))
    with pytest.raises(SceneTooLargeError):
        Scene("volume", "x", density=np.zeros((8, 8, 8)))
    with pytest.raises(SceneFormatError, match="NaN"):
        Scene("frame", "x", frame=np.full((1, 2, 2), np.nan))
    with pytest.raises(SceneFormatError, match="length"):
        Scene("gbuffer", "x", normals=np.full((3, 2, 2), 0.5), albedo=np.zeros((3, 2, 2)))
    with pytest.raises(SceneFormatError, match="meta"):
        Scene("frame", "x", frame=np.zeros((1, 2, 2)), meta={"k": [1, 2]})  # type: ignore[dict-item]
    scene = Scene("frame", "x", frame=np.zeros((1, 2, 2)))
    assert scene.frame is not None
    with pytest.raises(ValueError, match="read-only"):
        scene.frame[0, 0, 0] = 1.0


def test_output_paths(out: Path) -> None:
    scene = Scene("frame", "x", frame=np.zeros((1, 2, 2)))
    with pytest.raises(SceneFormatError, match=r"end in \.npz"):
        save_scene(scene, out / "scene.bin")
    with pytest.raises(SceneFormatError, match="PNG"):
        save_preview(scene, out / "p.jpg")
    (out / "file").write_text("x")
    with pytest.raises(SceneFileError, match="cannot write"):
        save_scene(scene, out / "file" / "scene.npz")
    # Nothing half-written is left behind by a failed save.
    assert sorted(p.name for p in out.iterdir()) == ["file"]
