"""`blindframe client import`, in process (CliRunner) and as a real process (one-line errors)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
import trimesh
from click.testing import CliRunner
from PIL import Image

from blindframe.client.scene import (
    EmptySceneError,
    SceneFileError,
    SceneFormatError,
    SceneKindError,
    load_scene,
)
from blindframe.client.scene.importer import KERNEL_CHOICES, import_scene
from blindframe.fhe_core.kernels import KERNEL_IDS

from .shapes import write_png

# The root group's part the command relies on: --json in ctx.obj, as blindframe._cli sets it.
ROOT = """
import sys, types, click
from blindframe.client.scene.importer import import_scene
group = types.ModuleType("blindframe.client._cli")
group.client = click.Group("client", commands={"import": import_scene})
sys.modules["blindframe.client._cli"] = group
from blindframe._cli import main
main()
"""


@click.group()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def root(ctx: click.Context, as_json: bool) -> None:
    ctx.obj = {"json": as_json}


root.add_command(click.Group("client", commands={"import": import_scene}))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    trimesh.creation.torus(major_radius=1.0, minor_radius=0.4).export(folder / "torus.glb")
    rng = np.random.default_rng(3)
    write_png(folder / "frame.png", rng.random((3, 16, 24)))
    normals = np.zeros((3, 16, 24))
    normals[2] = 1.0
    write_png(folder / "n.png", (normals + 1) / 2)
    write_png(folder / "a.png", rng.random((3, 16, 24)))
    (folder / "broken.glb").write_bytes(b"glTF" + bytes(40))
    return folder


def test_kernel_choices_are_the_registry() -> None:
    assert KERNEL_CHOICES == KERNEL_IDS


def test_mesh_to_scene_with_preview(files: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        root,
        ["client", "import", str(files / "torus.glb"), "--resolution", "32",
         "-o", str(tmp_path / "s.npz"), "--preview", str(tmp_path / "p.png")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "volume 32^3" in result.output
    assert "of 4096 voxels occupied" in result.output
    assert "(front, side and top views of the imported density" in result.output
    scene = load_scene(tmp_path / "s.npz")
    assert scene.kind == "volume"
    assert scene.resolution == 32
    with Image.open(tmp_path / "p.png") as preview:
        assert preview.mode == "RGB"
        assert min(preview.size) >= 256


def test_json_output(files: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        root,
        ["--json", "client", "import", "--normal", str(files / "n.png"),
         "--albedo", str(files / "a.png"), "--kernel", "shade@1", "-o", str(tmp_path / "g.npz")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["kind"] == "gbuffer"
    assert data["kernel"] == "shade@1"
    assert (data["width"], data["height"]) == (24, 16)
    assert data["kernel_input"][0] == {"shape": [3, 16, 24], "min": 0, "max": 4}
    assert data["output"] == str(tmp_path / "g.npz")
    frame = CliRunner().invoke(
        root,
        ["--json", "client", "import", str(files / "frame.png"), "-o", str(tmp_path / "f.npz")],
    )
    assert json.loads(frame.output)["kernel"] == "post@1"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["nowhere.glb"], SceneFileError),
        (["broken.glb", "--kernel", "volume@1"], SceneFormatError),
        (["torus.glb", "--kernel", "post@1"], SceneKindError),
        (["frame.png", "--kernel", "shade@1"], SceneKindError),
        ([], SceneKindError),
    ],
)
def test_bad_input_raises_the_client_error(
    files: Path, tmp_path: Path, args: list[str], error: type[Exception]
) -> None:
    argv = [str(files / a) if a.endswith((".glb", ".png")) else a for a in args]
    result = CliRunner().invoke(root, ["client", "import", *argv, "-o", str(tmp_path / "x.npz")])
    assert result.exit_code == 1
    assert isinstance(result.exception, error)
    assert not (tmp_path / "x.npz").exists()


def test_usage_errors(files: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    no_output = runner.invoke(root, ["client", "import", str(files / "torus.glb")])
    assert no_output.exit_code == 2
    assert "Missing option '-o'" in no_output.output
    resolution = runner.invoke(
        root, ["client", "import", str(files / "torus.glb"), "--resolution", "8", "-o", "x.npz"]
    )
    assert resolution.exit_code == 2
    assert "16<=x<=256" in resolution.output
    kernel = runner.invoke(
        root, ["client", "import", "a.glb", "--kernel", "volum@1", "-o", "x.npz"]
    )
    assert kernel.exit_code == 2
    assert "volume@1" in kernel.output


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", ROOT, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def test_real_process(files: Path, tmp_path: Path) -> None:
    good = run("--json", "client", "import", str(files / "torus.glb"), "-o", "s.npz", cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["occupied"] > 0
    assert (tmp_path / "s.npz").is_file()
    for args, expected in [
        (["nowhere.glb"], "does not exist"),
        (["broken.glb"], "cannot read"),
        (["torus.glb", "--kernel", "post@1"], "post@1 renders a frame scene"),
        (["frame.png", "--normal", "n.png"], "not both"),
        (["n.png", "--kernel", "volume@1"], "volume@1 renders a volume scene"),
    ]:
        argv = [str(files / a) if a.endswith((".glb", ".png")) else a for a in args]
        bad = run("client", "import", *argv, "-o", "x.npz", cwd=tmp_path)
        assert bad.returncode == 1, bad.stderr
        assert "Traceback" not in bad.stderr
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1, bad.stderr
        assert lines[0].startswith("Error: ")
        assert expected in lines[0]
    as_json = run(
        "--json", "client", "import", str(files / "nowhere.glb"), "-o", "x.npz", cwd=tmp_path
    )
    assert json.loads(as_json.stdout)["error"] == "SceneFileError"
    assert not (tmp_path / "x.npz").exists()


def test_empty_scene_error_is_also_a_value_error() -> None:
    assert issubclass(EmptySceneError, ValueError)
