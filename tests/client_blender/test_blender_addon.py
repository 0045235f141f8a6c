"""The Blender add-on for real, headless (bpy 5.0): the extension zip its command builds passes
Blender's own validator and installs; the panel's operators voxelize the selected mesh, encrypt,
post the job and, with a real render node, fetch, verify, settle and decrypt the frame into an
Image datablock shown in the Image Editor. Bad settings fail in the panel, posting nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib
import webbrowser
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import httpx
import numpy as np
import pytest
from PIL import Image
from support.render_stack import KERNEL, RenderStack

from blindframe.client._frames import frame_rgb
from blindframe.client.blender import bootstrap
from blindframe.client.blender.extract import extract_volume
from blindframe.client.errors import JobOptionsError
from blindframe.client.jobdir import JobDir, list_jobs
from blindframe.client.scene import to_kernel_input
from blindframe.client.scene._images import srgb_encode
from blindframe.coordinator.market import LeaseStatus
from blindframe.fhe_core.artist_jobs import plain_frame
from blindframe.fhe_core.kernels import get_kernel

REPO = "bf_test_repo"
MODULE = f"bl_ext.{REPO}.blindframe"
REWARD_ETH = "0.001"
VOXELS = 24
PAINT = (0.8, 0.2, 0.1, 1.0)


def _validator() -> Path:
    scripts = Path(bpy.utils.system_resource("SCRIPTS"))
    return scripts / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"


def test_the_zip_is_a_valid_extension(addon_zip: Path) -> None:
    with zipfile.ZipFile(addon_zip) as archive:
        names = set(archive.namelist())
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
        env = json.loads(archive.read("blindframe_env.json"))
        entry = archive.read("__init__.py")
    assert names == {"blender_manifest.toml", "__init__.py", "blindframe_env.json"}
    assert entry == Path(bootstrap.__file__).read_bytes()
    assert manifest["id"] == "blindframe"
    assert manifest["type"] == "add-on"
    assert manifest["blender_version_min"] == "4.2.0"
    assert set(manifest["permissions"]) == {"network", "files"}
    assert env["pythonEnv"] == str(Path(sys.prefix).resolve())
    # Blender's own extension tool accepts it.
    done = subprocess.run(
        [sys.executable, str(_validator()), "validate", str(addon_zip)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout


def test_site_packages_of_an_environment(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    site = (
        venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    )
    site.mkdir(parents=True)
    assert bootstrap.site_packages(str(venv)) == site
    assert bootstrap.site_packages(str(site)) == site
    other = tmp_path / "old" / "lib" / "python3.9" / "site-packages"
    other.mkdir(parents=True)
    with pytest.raises(ValueError, match=r"Blender runs Python 3\.11"):
        bootstrap.site_packages(str(tmp_path / "old"))
    with pytest.raises(ValueError, match="is not a folder"):
        bootstrap.site_packages(str(tmp_path / "nowhere"))


def test_without_blindframe_the_panel_says_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zip naming an environment without blindframe: the Render properties show the setup
    panel; pointing the preference at the right environment loads the add-on at once."""
    import addon_utils

    monkeypatch.delenv("BLINDFRAME_PYTHON_ENV", raising=False)
    empty = tmp_path / "empty-env"
    empty.mkdir()
    built = tmp_path / "elsewhere.zip"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "blindframe.client.blender.package"),
            *(str(built), "--python-env", str(empty)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    repos = bpy.context.preferences.extensions.repos
    repo = repos.new(
        name="bf_fallback", module="bf_fallback", custom_directory=str(tmp_path / "repo"),
        source="USER",
    )  # fmt: skip
    module = "bl_ext.bf_fallback.blindframe"
    try:
        result = bpy.ops.extensions.package_install_files(
            filepath=str(built), repo="bf_fallback", enable_on_install=True
        )
        assert result == {"FINISHED"}
        assert addon_utils.check(module) == (True, True)
        assert hasattr(bpy.types, "RENDER_PT_blindframe_setup")
        assert not hasattr(bpy.types, "RENDER_PT_blindframe")
        entry = sys.modules[module]
        assert entry._state["error"] == (
            f"blindframe cannot be imported from {empty}: no site-packages folder under {empty}"
        )
        prefs = bpy.context.preferences.addons[module].preferences
        prefs.python_env = sys.prefix  # the preference's update loads it
        assert entry._state["error"] == ""
        assert hasattr(bpy.types, "RENDER_PT_blindframe")
        assert not hasattr(bpy.types, "RENDER_PT_blindframe_setup")
    finally:
        addon_utils.disable(module)
        repos.remove(repo)
    assert not hasattr(bpy.types, "RENDER_PT_blindframe")
    assert not hasattr(bpy.types, "RENDER_PT_blindframe_setup")


@pytest.fixture(scope="module")
def addon(
    addon_zip: Path, render_stack: RenderStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleType]:
    """The extension installed from its zip into a repository of its own and enabled, reading
    the stack's config file; a factory scene with a torus selected and an Image Editor open."""
    import addon_utils

    bpy.ops.wm.read_factory_settings(use_empty=False)
    folder = tmp_path_factory.mktemp("extensions")
    repos = bpy.context.preferences.extensions.repos
    repo = repos.new(name=REPO, module=REPO, custom_directory=str(folder), source="USER")
    result = bpy.ops.extensions.package_install_files(
        filepath=str(addon_zip), repo=REPO, enable_on_install=True
    )
    assert result == {"FINISHED"}
    assert (folder / "blindframe" / "blender_manifest.toml").is_file()
    loaded, enabled = addon_utils.check(MODULE)
    assert loaded
    assert enabled
    from blindframe.client.blender import addon as module

    prefs = bpy.context.preferences.addons[MODULE].preferences
    # The zip named the environment that built it: blindframe imported from there.
    assert prefs.python_env == str(Path(sys.prefix).resolve())
    assert hasattr(bpy.types, "RENDER_PT_blindframe")
    assert not hasattr(bpy.types, "RENDER_PT_blindframe_setup")
    config = folder / "blindframe.toml"
    stack = render_stack
    config.write_text(
        f'home = "{stack.home}"\nrpc_url = "{stack.info.rpc_url}"\n'
        f'ipfs_api = "{stack.info.ipfs["client"]}"\ndeployment = "{stack.info.deployment}"\n'
    )
    prefs.config_file = str(config)

    scene = bpy.context.scene
    for obj in list(scene.objects):
        if obj.type == "MESH":
            bpy.data.objects.remove(obj)
    bpy.ops.mesh.primitive_torus_add(
        major_radius=1.0, minor_radius=0.45, location=(0.2, 0.1, 0.0), rotation=(0.9, 0.2, 0.0)
    )
    scene.render.resolution_x = scene.render.resolution_y = 16
    scene.render.resolution_percentage = 100
    props = scene.blindframe
    props.kernel = KERNEL
    props.voxel_resolution = VOXELS
    props.custom_canaries = True
    props.canaries = 0
    props.replication = 1
    props.reward = REWARD_ETH
    props.lease_length = "5m"
    props.deadline = "20m"
    props.account = "artist"
    props.password_file = str(stack.password_file)
    timeline = next(a for a in bpy.context.window.screen.areas if a.type == "DOPESHEET_EDITOR")
    timeline.type = "IMAGE_EDITOR"
    try:
        yield module
    finally:
        addon_utils.disable(MODULE)
        repos.remove(repo)
        bpy.ops.wm.read_factory_settings(use_empty=True)


def _pump_until_idle(module: ModuleType, timeout: float, stack: RenderStack) -> list[str]:
    """Do what Blender's timers do in the UI (bpy as a module runs no event loop): call the
    add-on's registered pump on the main thread until its task is over. Returns the statuses
    the task reported, then the final one the panel shows."""
    deadline = time.monotonic() + timeout
    while module.runner.busy:
        assert bpy.app.timers.is_registered(module.pump)
        module.pump()
        if time.monotonic() > deadline:
            module.runner.cancel()
            shown = [s.text for s in module.runner.history[-5:]]
            raise AssertionError(
                f"still {module.runner.label!r} after {timeout} s: {shown}\n" + stack.worker_logs()
            )
        time.sleep(0.05)
    return [s.text for s in module.runner.history] + [bpy.context.scene.blindframe.status]


def _job_dirs(stack: RenderStack) -> list[JobDir]:
    return [d for d in list_jobs(stack.home) if not d.pending]


def test_bad_settings_fail_in_the_panel_and_post_nothing(
    addon: ModuleType, render_stack: RenderStack
) -> None:
    scene = bpy.context.scene
    props = scene.blindframe
    torus = bpy.context.active_object
    before = len(_job_dirs(render_stack))

    def submit_error() -> str:
        with pytest.raises(RuntimeError) as info:
            bpy.ops.blindframe.submit()
        assert not addon.runner.busy
        return str(info.value)

    torus.select_set(False)
    try:
        assert "no mesh object is selected" in submit_error()
    finally:
        torus.select_set(True)
    scene.render.resolution_x = 20
    try:
        assert "multiples of 8" in submit_error()
    finally:
        scene.render.resolution_x = 16
    props.reward = "lots"
    try:
        assert "Reward" in submit_error()
    finally:
        props.reward = REWARD_ETH
    props.password_file = str(render_stack.home / "no-such-file")
    try:
        assert "does not exist" in submit_error()
    finally:
        props.password_file = str(render_stack.password_file)
    props.job_key = "not-a-job"
    try:
        with pytest.raises(RuntimeError, match="not a job key"):
            bpy.ops.blindframe.fetch()
    finally:
        props.job_key = ""
    assert len(_job_dirs(render_stack)) == before


class _Layout:
    """Records what a panel draws (bpy as a module has no window to draw into): every property
    it shows must exist on its owner, every operator must be registered."""

    def __init__(self, log: list[tuple[str, str]]) -> None:
        self.log = log
        self.use_property_split = self.use_property_decorate = False
        self.active = True
        self.scale_y = 1.0

    def _child(self, *args: Any, **kwargs: Any) -> _Layout:
        return _Layout(self.log)

    column = row = box = _child

    def prop(self, owner: Any, name: str, **kwargs: Any) -> None:
        assert name in owner.bl_rna.properties, name
        self.log.append(("prop", name))

    def label(self, *, text: str = "", icon: str = "NONE") -> None:
        self.log.append(("label", text))

    def operator(self, idname: str, **kwargs: Any) -> None:
        category, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, category), name), idname
        self.log.append(("operator", idname))

    def progress(self, **kwargs: Any) -> None:
        self.log.append(("progress", str(kwargs.get("text"))))


def test_the_panel_shows_the_settings(addon: ModuleType, render_stack: RenderStack) -> None:
    log: list[tuple[str, str]] = []
    panel = type("Drawn", (), {"layout": _Layout(log)})()
    bpy.types.RENDER_PT_blindframe.draw(panel, bpy.context)
    props = [name for kind, name in log if kind == "prop"]
    labels = [text for kind, text in log if kind == "label"]
    operators = [name for kind, name in log if kind == "operator"]
    assert {"kernel", "voxel_resolution", "replication", "reward", "account"} <= set(props)
    assert "Frame 16 x 16 px (Output Properties)" in labels
    assert "4 tiles of 8x8, 0 canary tiles around" in labels
    assert f"RPC {render_stack.info.rpc_url}" in labels
    assert {"blindframe.submit", "blindframe.fetch", "blindframe.dashboard"} <= set(operators)


def test_options_and_scenes_of_every_kernel(addon: ModuleType) -> None:
    scene = bpy.context.scene
    props = scene.blindframe
    try:
        props.kernel = "shade@1"
        props.light = (0.0, 0.0, 1.0)
        options = addon.job_options(scene)
        assert options.kernel == "shade@1"
        assert options.frame is None  # the passes bring their size
        assert options.params == {"light": [0.0, 0.0, 1.0]}
        gbuffer = addon.extract_scene(scene, "shade@1", resolution=VOXELS)
        assert gbuffer.kind == "gbuffer"
        assert gbuffer.frame_hw == (16, 16)
        props.kernel = "post@1"
        props.filter = "blur"
        assert addon.job_options(scene).params == {"filter": "blur"}
        frame = addon.extract_scene(scene, "post@1", resolution=VOXELS)
        assert frame.kind == "frame"
        assert frame.frame_hw == (16, 16)
    finally:
        props.kernel = KERNEL
    # A volume carries the selected objects' material colours (sRGB) for kernels that use them.
    torus = next(obj for obj in scene.objects if obj.type == "MESH")
    material = bpy.data.materials.new("paint")
    if material.node_tree is None:
        material.use_nodes = True
    material.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = PAINT
    torus.data.materials.append(material)
    try:
        volume = addon.extract_scene(scene, KERNEL, resolution=VOXELS)
    finally:
        torus.data.materials.clear()
        bpy.data.materials.remove(material)
    assert volume.albedo is not None
    occupied = volume.density > 0
    painted = np.tile(srgb_encode(np.array(PAINT[:3])), (int(occupied.sum()), 1))
    np.testing.assert_allclose(volume.albedo[occupied], painted, atol=1e-6)
    options = addon.job_options(scene)
    assert options.frame == (16, 16)
    assert options.reward_wei == 10**15
    assert options.canaries == 0
    assert options.params == {"yaw": 20.0, "pitch": 15.0, "zoom": pytest.approx(1.15)}


def test_a_frame_range_is_one_job_of_the_turntable_or_the_camera_path(
    addon: ModuleType,
) -> None:
    scene = bpy.context.scene
    props = scene.blindframe
    start, end, camera = scene.frame_start, scene.frame_end, scene.camera
    props.frame_range = True
    try:
        scene.frame_start, scene.frame_end = 1, 4
        props.motion, props.orbit = "ORBIT", 180.0
        options = addon.job_options(scene)
        assert (options.frames, options.orbit, options.frame_angles) == (4, 180.0, None)
        log: list[tuple[str, str]] = []
        panel = type("Drawn", (), {"layout": _Layout(log)})()
        bpy.types.RENDER_PT_blindframe.draw(panel, bpy.context)
        assert {("prop", "frame_range"), ("prop", "motion"), ("prop", "orbit")} <= set(log)
        assert ("label", "Frames 1..4 (Output Properties)") in log

        # The scene camera's path: far from the torus, its direction is the orbit's angles
        # (Blender's -Y is the orbit camera's yaw 0, +X its yaw 90, +Z up its pitch).
        data = bpy.data.cameras.new("path")
        follower = bpy.data.objects.new("path", data)
        scene.collection.objects.link(follower)
        scene.camera = follower
        far = 1e4
        for frame, where in (
            (1, (0, -far, 0)),
            (2, (far, 0, 0)),
            (3, (0, far, far)),
            (4, (0, 0, far)),
        ):
            follower.location = where
            follower.keyframe_insert("location", frame=frame)
        scene.frame_set(2)
        props.motion = "CAMERA"
        options = addon.job_options(scene)
        assert options.frames is None
        assert options.frame_angles is not None
        got = [(a["yaw"], a["pitch"]) for a in options.frame_angles]
        want = [(0.0, 0.0), (90.0, 0.0), (180.0, 45.0), (0.0, 89.0)]  # straight up: held at 89
        for (yaw, pitch), (yaw_want, pitch_want) in zip(got, want, strict=True):
            assert pitch == pytest.approx(pitch_want, abs=0.05)
            if pitch_want < 89:
                assert (yaw - yaw_want + 180) % 360 - 180 == pytest.approx(0, abs=0.05)
        assert scene.frame_current == 2  # the scene is left on its frame

        # (Blender keeps End >= Start: a range has a frame; a long one is refused.)
        scene.frame_end = 300
        for motion in ("ORBIT", "CAMERA"):
            props.motion = motion
            with pytest.raises(JobOptionsError, match=r"--frames must be 1\.\.256 \(not 300\)"):
                addon.job_options(scene)
    finally:
        props.frame_range = False
        props.motion = "ORBIT"
        scene.frame_start, scene.frame_end, scene.camera = start, end, camera
        if "path" in bpy.data.objects:
            bpy.data.objects.remove(bpy.data.objects["path"])


def test_submit_then_fetch_renders_the_selected_mesh(
    addon: ModuleType, render_stack: RenderStack
) -> None:
    scene = bpy.context.scene
    props = scene.blindframe
    stack = render_stack
    torus = bpy.context.active_object
    expected_voxels = to_kernel_input(extract_volume(scene, [torus], resolution=VOXELS), KERNEL)

    # Encrypt & Submit returns at once; keygen, encryption, upload and postJob run in the
    # background while the main thread keeps pumping (and would keep drawing).
    assert bpy.ops.blindframe.submit() == {"FINISHED"}
    assert addon.runner.busy
    assert bpy.app.timers.is_registered(addon.pump)
    # While it runs, the status bar shows its progress.
    log: list[tuple[str, str]] = []
    addon.draw_status_bar(type("Bar", (), {"layout": _Layout(log)})(), bpy.context)
    ((kind, text),) = log
    assert kind == "progress"
    assert text.startswith("blindframe: ")
    statuses = _pump_until_idle(addon, 180, stack)
    assert any(s.startswith("Encrypting") for s in statuses[:-1]), statuses
    assert any(s.startswith("Uploading") for s in statuses[:-1]), statuses
    assert statuses[-1].startswith("Posted job 1: volume@1 16x16, 4 tiles x 1"), statuses
    # The quote was shown before the upload, and stays in the confirmation.
    assert any(s.startswith("Quote: ") for s in statuses[:-1]), statuses
    assert ". Quote: " in statuses[-1], statuses
    (job,) = _job_dirs(stack)
    assert props.job_key == job.path.name
    ref = job.ref
    state = job.state()
    assert state["kernel"] == KERNEL
    assert state["rewardPerTileReplica"] == str(10**15)
    # What was encrypted is the selected torus, voxelized by the same code as `client import`.
    secrets = job.secrets()
    assert secrets.volume is not None
    np.testing.assert_array_equal(secrets.volume, expected_voxels[0])
    artist = stack.artist()
    market = artist.market()
    view = market.job(ref.job_id)
    assert (view.tileCount, view.replication, view.rewardPerTileReplica) == (4, 1, 10**15)

    # Fetch & Decrypt: the render node claims, computes, commits and reveals; the add-on
    # verifies against the plaintext twin, settles, decrypts and loads the image.
    assert bpy.ops.blindframe.fetch(interval=0.5) == {"FINISHED"}
    statuses = _pump_until_idle(addon, 240, stack)
    assert any("settled 0/4" in s for s in statuses), statuses
    # While it renders, the pace: tiles per minute and time left (or "time left unknown").
    assert any(" left" in s for s in statuses if s.startswith("Job 1: claimed")), statuses
    assert statuses[-1] == "Job 1: decrypted 16x16 into image 'blindframe job 1'", statuses
    image = bpy.data.images[props.image]
    assert image.name == "blindframe job 1"
    assert image["blindframe_job"] == ref.key
    assert tuple(image.size) == (16, 16)
    shown = next(a for a in bpy.context.window.screen.areas if a.type == "IMAGE_EDITOR")
    assert shown.spaces.active.image == image

    # The frame is the plaintext twin's, pixel for pixel, in Blender as in the PNG. Blender
    # holds it as a float image read from the EXR, in scene-linear light.
    frame = np.load(job.path / "frame.npy")
    np.testing.assert_array_equal(frame, plain_frame(job.public(), secrets))
    top = get_kernel(KERNEL).out_max
    rgb = frame_rgb(frame, top)
    with Image.open(job.path / "frame.png") as png:
        np.testing.assert_array_equal(np.asarray(png.convert("RGB")), rgb)
    assert Path(bpy.path.abspath(image.filepath)) == job.path / "frame.exr"
    assert image.is_float
    assert image.file_format == "OPEN_EXR"
    assert image.colorspace_settings.name == "Linear Rec.709"
    pixels = np.empty(16 * 16 * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    # Blender keeps rows bottom-up; sRGB-encoded again (as the Standard view shows them), the
    # linear floats give back the decrypted integers.
    linear = pixels.reshape(16, 16, 4)[::-1, :, :3]
    np.testing.assert_array_equal(np.rint(srgb_encode(linear) * top), np.dstack([frame] * 3))
    assert 0.0 < float(linear.max()) <= 1.0
    assert len(np.unique(frame)) > 2  # the torus is in the frame, shaded

    # Paid on chain: every lease settled, the node's earnings exact.
    snap = artist.snapshot(ref)
    assert snap.complete
    assert {market.lease(lease.lease_id).state for lease in snap.leases} == {LeaseStatus.SETTLED}
    assert snap.payments["paidToWorkers"] == str(4 * 10**15)
    assert snap.payments["earnings"] == {stack.workers[0].address: str(4 * 10**15)}
    artist.close()

    # The Dashboard button serves this home's jobs on loopback and opens the browser on it.
    opened = stack.home.parent / "opened-url"
    opener = f"import sys, pathlib; pathlib.Path({str(opened)!r}).write_text(sys.argv[1])"
    webbrowser.register(
        "blindframe-test",
        None,
        webbrowser.GenericBrowser([sys.executable, "-c", opener, "%s"]),
        preferred=True,
    )
    assert bpy.ops.blindframe.dashboard() == {"FINISHED"}
    deadline = time.monotonic() + 30
    while not opened.exists():
        assert time.monotonic() < deadline, "the browser was not opened"
        time.sleep(0.1)
    url = opened.read_text()
    assert url.startswith("http://127.0.0.1:")
    jobs = httpx.get(url + "api/jobs", timeout=30).json()["jobs"]
    assert [(j["jobId"], j["phase"], j["decrypted"]) for j in jobs] == [(1, "complete", True)]
    png = httpx.get(url + jobs[0]["frameUrl"], timeout=30)
    assert png.content == (job.path / "frame.png").read_bytes()


def test_cancel_stops_a_submit_before_anything_is_posted(
    addon: ModuleType, render_stack: RenderStack
) -> None:
    before = [d.path.name for d in list_jobs(render_stack.home)]
    assert bpy.ops.blindframe.submit() == {"FINISHED"}
    assert bpy.ops.blindframe.cancel() == {"FINISHED"}
    statuses = _pump_until_idle(addon, 120, render_stack)
    assert statuses[-1] == "Submit failed: cancelled", statuses
    assert [d.path.name for d in list_jobs(render_stack.home)] == before
    with pytest.raises(RuntimeError, match="poll"):
        bpy.ops.blindframe.cancel()  # nothing runs any more
