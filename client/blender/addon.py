"""The blindframe add-on inside Blender: a Render-properties panel to encrypt and submit the scene,
and to fetch, verify, pay for and decrypt the frame, without freezing Blender.

Loaded by the extension's entry point (:mod:`blindframe.client.blender.bootstrap`, shipped as the
zip's ``__init__.py``) once ``blindframe`` imports from the Python environment it is installed in.

- **Encrypt & Submit** (``blindframe.submit``): on the main thread, turns the scene into the
  kernel's input with :mod:`blindframe.client.blender.extract` (voxelize the selected objects for
  ``volume``, render normal and albedo passes for ``shade``, the frame for ``post``), then posts it
  with :meth:`blindframe.client.artist.Artist.post` in a background thread (keygen, encryption,
  upload, ``postJob``).
- **Fetch & Decrypt** (``blindframe.fetch``): in the background, repeats the client's duties
  (verify what render nodes revealed, dispute wrong tiles, settle what is verified) until every
  tile is settled, then decrypts the frame into the job directory's ``frame.exr`` (scene-linear
  float, :mod:`blindframe.client._frames`) and, on the main thread, loads it as a float Image
  datablock and shows it in every open Image Editor.
- **Cancel** (``blindframe.cancel``) stops waiting (a job on chain goes on; fetch again later);
  **Dashboard** (``blindframe.dashboard``) opens the live dashboard in the browser.

Background work never touches ``bpy``: it reports through :class:`~.tasks.Runner`, whose
``pump`` runs on the main thread from ``bpy.app.timers`` (status bar, panel progress bar,
results). Blender as a Python module (``bpy`` from PyPI) runs no event loop, so there timers
never fire and the caller pumps with :func:`pump`, as the tests do.

Settings: the blindframe config (``--config`` file from the add-on preferences, else
``BLINDFRAME_CONFIG``, ``./blindframe.toml`` or the user config; then ``BLINDFRAME_*``) gives the
home, RPC, IPFS node and deployment; the panel adds the account (a keystore name) and the
password file. Passwords are never stored in the .blend file.
"""

import contextlib
import math
import time
import traceback
import webbrowser
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import bpy
import numpy as np

from blindframe.client.artist import Artist, JobOptions
from blindframe.client.blender.tasks import Cancelled, Runner, Status, Task, TaskContext
from blindframe.client.errors import ClientError, JobExpiredError, JobOptionsError, JobStateError
from blindframe.client.pace import format_pace
from blindframe.client.progress import Progress
from blindframe.client.quote import Quote
from blindframe.client.scene import DEFAULT_RESOLUTION, Scene
from blindframe.client.snapshot import (
    ChallengeStatus,
    JobPhase,
    JobSnapshot,
    LeaseStatusName,
    TileStatus,
)
from blindframe.client.units import format_eth, parse_duration, parse_eth
from blindframe.coordinator.config import Settings, load_settings
from blindframe.errors import BlindframeError

__all__ = [
    "ADDON_API",
    "CLASSES",
    "BlindframeSettings",
    "artist_for",
    "base_settings",
    "config_path",
    "draw_status_bar",
    "extract_scene",
    "frame_size",
    "job_options",
    "pump",
    "register",
    "runner",
    "scene_settings",
    "settings_for",
    "show_image",
    "snapshot_line",
    "tile_summary",
    "unregister",
]

ADDON_API = 1  # the contract with bootstrap.py: register(package), unregister()

_KERNELS = (
    ("volume@1", "Volume", "Voxelize the selected objects and ray-march them (volume@1)"),
    ("shade@1", "Shade", "Render normal and albedo passes, shade them under a light (shade@1)"),
    ("post@1", "Post", "Render the frame, filter and tone-map it (post@1)"),
)
_FILTERS = ("identity", "blur", "soften", "sharpen", "edge", "emboss")
_STEP_LABELS = {
    "keygen": "Generating FHE keys",
    "plan": "Choosing the FFT plan",
    "encrypt": "Encrypting",
    "upload": "Uploading",
    "download": "Downloading results",
    "verify": "Verifying tiles",
    "decrypt": "Decrypting",
}
_IMAGE_TAG = "blindframe_job"

runner = Runner()
_package: str | None = None
_artists: dict[tuple[Any, ...], Artist] = {}
_config_cache: dict[str, tuple[float, Settings | BlindframeError]] = {}
_dashboard: Any = None  # the DashboardServer the panel started, if any


# --------------------------------------------------------------------------------- properties


def _filter_items() -> list[tuple[str, str, str]]:
    """post@1's filters (its registry is fhe_core's; not exported, hence the fallback)."""
    try:
        from blindframe.fhe_core._post import FILTERS

        names: tuple[str, ...] = tuple(FILTERS)
    except ImportError:
        names = _FILTERS
    return [(name, name.capitalize(), f"The {name} filter") for name in names]


# Static items: Blender keeps pointers into them (a callback's fresh strings could be freed).
_FILTER_ITEMS = _filter_items()
_DEFAULT_FILTER = (
    "sharpen" if any(i[0] == "sharpen" for i in _FILTER_ITEMS) else _FILTER_ITEMS[0][0]
)


# Blender reads a property group's properties from its class annotations (bpy.props calls, not
# types: hence no `from __future__ import annotations` here, and the ignores below).
class BlindframeSettings(bpy.types.PropertyGroup):  # type: ignore[misc]
    """The job settings of one scene (saved in the .blend; no secret among them)."""

    kernel: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Kernel", items=_KERNELS, default="volume@1"
    )
    voxel_resolution: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Voxels",
        description="Voxel grid side the selected objects are sampled at (volume@1 keeps 16^3)",
        default=DEFAULT_RESOLUTION,
        min=8,
        max=256,
    )
    yaw: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Yaw", description="Orbit camera yaw in degrees", default=20.0, min=-360, max=360
    )
    pitch: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Pitch", description="Orbit camera pitch in degrees", default=15.0, min=-89, max=89
    )
    zoom: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Zoom", description="Orbit camera zoom", default=1.15, min=0.25, max=4.0
    )
    frame_range: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Frame range",
        description="Render the scene's frame range (Start..End) as one job: one encrypted "
        "upload and one key set for every frame",
        default=False,
    )
    motion: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Motion",
        items=[
            ("ORBIT", "Turntable", "The orbit camera's yaw turns Orbit degrees over the range"),
            (
                "CAMERA",
                "Scene camera",
                "Each frame's yaw and pitch from the scene camera's position around the "
                "selected objects (the orbit camera keeps looking at their centre, at Zoom)",
            ),
        ],
        default="ORBIT",
    )
    orbit: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Orbit",
        description="Degrees the yaw turns over the frame range (360: one turn)",
        default=360.0,
        min=-360,
        max=360,
    )
    light: bpy.props.FloatVectorProperty(  # type: ignore[valid-type]
        name="Light",
        description="Light direction in camera space (shade@1)",
        size=3,
        default=(-0.4, 0.6, 0.7),
        subtype="DIRECTION",
    )
    filter: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Filter", description="post@1 filter", items=_FILTER_ITEMS, default=_DEFAULT_FILTER
    )
    replication: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Replication",
        description="Render nodes computing each tile independently",
        default=1,
        min=1,
        max=8,
    )
    reward: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Reward",
        description="ETH paid per tile and replica (escrow = tiles x replication x reward)",
        default="0.0001",
    )
    lease_length: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Lease",
        description="Time a render node has to compute and commit its tiles (90s, 10m, 2h)",
        default="10m",
    )
    deadline: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Deadline",
        description="Time from submission until the job closes (unfinished tiles are refundable)",
        default="1h",
    )
    priority: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Priority", description="Scheduling hint for render nodes", default=0, min=0, max=255
    )
    custom_canaries: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Set canaries",
        description="Choose the number of canary tiles (else the kernel's default)",
        default=False,
    )
    canaries: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Canaries",
        description="volume: tiles of margin around the frame; shade/post: extra canary tasks",
        default=1,
        min=0,
        max=16,
    )
    account: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Account",
        description="Keystore that pays and signs (`blindframe account list`)",
        default="",
    )
    password_file: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Password file",
        description="File whose first line is the keystore's password (never stored here)",
        default="",
        subtype="FILE_PATH",
    )
    wait_minutes: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Wait",
        description="How long Fetch & Decrypt waits for the render nodes, in minutes",
        default=30.0,
        min=0.1,
        max=24 * 60,
    )
    job_key: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Job",
        description="The job to fetch (the last one submitted from this scene)",
        default="",
    )
    status: bpy.props.StringProperty(name="Status", default="")  # type: ignore[valid-type]
    progress: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR"
    )
    image: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Image", description="The last decrypted frame's Image datablock", default=""
    )


def scene_settings(scene: Any) -> Any:
    """The :class:`BlindframeSettings` of ``scene``."""
    return scene.blindframe


# --------------------------------------------------------------------------------- settings


def _preferences() -> Any | None:
    if _package is None:
        return None
    addon = bpy.context.preferences.addons.get(_package)
    return addon.preferences if addon is not None else None


def config_path() -> str | None:
    """The config file named in the add-on preferences (None: blindframe's default lookup)."""
    prefs = _preferences()
    value = str(getattr(prefs, "config_file", "") or "").strip()
    return bpy.path.abspath(value) if value else None


def base_settings() -> Settings:
    """The blindframe config as the CLI would read it (cached while the file is unchanged)."""
    path = config_path()
    key = path or ""
    try:
        stamp = Path(path).stat().st_mtime if path else 0.0
    except OSError:
        stamp = -1.0
    cached = _config_cache.get(key)
    if cached is not None and cached[0] == stamp:
        value = cached[1]
    else:
        try:
            value = load_settings(path)
        except BlindframeError as exc:
            value = exc
        _config_cache[key] = (stamp, value)
    if isinstance(value, BlindframeError):
        raise value
    return value


def settings_for(props: Any) -> Settings:
    """The config with this scene's account and password file."""
    password = str(props.password_file).strip()
    return base_settings().replace(
        account=str(props.account).strip() or None,
        password_file=bpy.path.abspath(password) if password else None,
    )


def artist_for(props: Any) -> Artist:
    """One :class:`Artist` per distinct settings, kept across operators (its connections, key
    sets and compiled clients are reused)."""
    cfg = settings_for(props)
    key = (
        cfg.home,
        cfg.rpc_url,
        cfg.ipfs_api,
        cfg.deployment_path,
        cfg.keystores,
        cfg.account,
        cfg.password_file,
    )
    artist = _artists.get(key)
    if artist is None:
        artist = Artist(cfg)
        _artists[key] = artist
    return artist


def _check_signer(cfg: Settings) -> None:
    """Fail now (in the panel) rather than in the thread when no account can sign."""
    if not cfg.account:
        raise ClientError(
            "name the account that pays for the render",
            hint="set Account in the blindframe panel (`blindframe account list`)",
        )
    if cfg.password_file is None:
        raise ClientError(
            f"account {cfg.account!r} needs its keystore password",
            hint="set Password file in the blindframe panel (a file whose first line is it)",
        )
    if not Path(cfg.password_file).is_file():
        raise ClientError(f"the password file {cfg.password_file} does not exist")


# --------------------------------------------------------------------------------- jobs


def frame_size(scene: Any) -> tuple[int, int]:
    """The scene's output size (width, height) in pixels, percentage applied."""
    render = scene.render
    scale = render.resolution_percentage / 100
    return round(render.resolution_x * scale), round(render.resolution_y * scale)


def job_options(scene: Any) -> JobOptions:
    """The panel's settings as checked job options (JobOptionsError names a bad one)."""
    props = scene_settings(scene)
    kernel = str(props.kernel)
    family = kernel.partition("@")[0]
    width, height = frame_size(scene)
    params: dict[str, Any]
    if family == "volume":
        from blindframe.fhe_core.kernels import get_kernel

        params = {"yaw": float(props.yaw), "pitch": float(props.pitch), "zoom": float(props.zoom)}
        th, tw = get_kernel(kernel).tile_hw
        if width % tw or height % th:
            raise JobOptionsError(
                f"volume frames are whole {tw}x{th} tiles: the output size {width}x{height} is not",
                hint=f"set Output Properties > Resolution to multiples of {tw} (e.g. 64x64)",
            )
    elif family == "shade":
        params = {"light": [float(v) for v in props.light]}
    else:
        params = {"filter": str(props.filter)}
    motion: dict[str, Any] = {}
    if family == "volume" and props.frame_range:
        count = int(scene.frame_end) - int(scene.frame_start) + 1
        if props.motion == "CAMERA":
            motion["frame_angles"] = camera_path_angles(scene)
        else:
            # A range of 0 frames (End before Start) reaches options.check's error.
            motion.update(frames=count, orbit=float(props.orbit))
    options = JobOptions(
        kernel=kernel,
        frame=(height, width) if family == "volume" else None,
        replication=int(props.replication),
        reward_wei=parse_eth(str(props.reward), "Reward"),
        lease_length=parse_duration(str(props.lease_length), "Lease"),
        deadline=parse_duration(str(props.deadline), "Deadline"),
        priority=int(props.priority),
        canaries=int(props.canaries) if props.custom_canaries else None,
        params=params,
        resolution=int(props.voxel_resolution),
        **motion,
    )
    options.check()
    return options


def camera_path_angles(scene: Any) -> tuple[dict[str, float], ...]:
    """The scene camera's path over the frame range as the orbit camera's angles: each frame's
    yaw and pitch are the direction from the selected objects' centre (the voxel grid's, which
    the orbit camera looks at) to the camera. The orbit camera is orthographic and keeps its
    zoom: the camera's distance, lens and aim are not mapped, and a pitch past +-89 degrees is
    held there."""
    from blindframe.client.blender import extract
    from blindframe.client.scene._meshes import to_y_up
    from blindframe.client.scene._voxelize import mesh_bounds

    if scene.camera is None:
        raise JobOptionsError(
            "the scene has no camera to follow",
            hint="add a camera (or pick Motion: Turntable)",
        )
    from blindframe.fhe_core.jobs import MAX_FRAMES

    start, end = int(scene.frame_start), int(scene.frame_end)
    if not 1 <= end - start + 1 <= MAX_FRAMES:
        # Said before stepping the scene through every frame of a long range.
        raise JobOptionsError(
            f"--frames must be 1..{MAX_FRAMES} (not {end - start + 1}): the frame range "
            f"{start}..{end}",
            hint="render a shorter range per job",
        )
    meshes = [o for o in bpy.context.selected_objects if o.type in extract.GEOMETRY_TYPES]
    if not meshes:
        raise JobOptionsError("no mesh object is selected: the camera path circles the selection")
    vertices, faces = extract.mesh_arrays(meshes)
    centre = mesh_bounds(to_y_up(vertices), faces).mean(axis=0)
    current = int(scene.frame_current)
    angles = []
    try:
        for frame in range(start, end + 1):
            scene.frame_set(frame)
            where = to_y_up(np.array([scene.camera.matrix_world.translation]))[0] - centre
            x, y, z = (float(v) for v in where)
            pitch = math.degrees(math.atan2(y, math.hypot(x, z)))
            angles.append(
                {
                    "yaw": round(math.degrees(math.atan2(x, z)), 6),
                    "pitch": round(max(-89.0, min(89.0, pitch)), 6),
                }
            )
    finally:
        scene.frame_set(current)
    return tuple(angles)


def extract_scene(scene: Any, kernel: str, *, resolution: int) -> Scene:
    """The kernel's scene from Blender (main thread: it reads and renders with bpy)."""
    from blindframe.client.blender import extract

    family = kernel.partition("@")[0]
    if family == "volume":
        return extract.extract_volume(scene, resolution=resolution)
    if family == "shade":
        return extract.extract_gbuffer(scene, size=frame_size(scene))
    return extract.extract_frame(scene, size=frame_size(scene))


def tile_summary(scene: Any) -> str:
    """'4 tiles of 8x8 (+ canaries)' for the panel: what the output size makes."""
    from blindframe.client.options import default_canaries
    from blindframe.fhe_core.kernels import get_kernel

    props = scene_settings(scene)
    kernel = get_kernel(str(props.kernel))
    th, tw = kernel.tile_hw
    width, height = frame_size(scene)
    rows, cols = -(-height // th), -(-width // tw)
    if kernel.name == "volume":
        margin = int(props.canaries) if props.custom_canaries else default_canaries("volume", 0)
        total = (rows + 2 * margin) * (cols + 2 * margin)
        return f"{rows * cols} tiles of {tw}x{th}, {total - rows * cols} canary tiles around"
    extra = (
        int(props.canaries) if props.custom_canaries else default_canaries(kernel.name, rows * cols)
    )
    return f"{rows * cols} tiles of {tw}x{th}, {extra} canary tasks"


def _progress_reporter(
    context: TaskContext, prefix: str = "", *, cancellable: bool = True
) -> Progress:
    """The library's progress callback, as status lines. ``cancellable``: Cancel interrupts the
    step from inside (posting: nothing is on chain before postJob, uploads are unpinned);
    otherwise Cancel waits for the step's end (verification saves its verdicts per lease)."""

    def report(step: str, done: int, total: int | None) -> None:
        if cancellable:
            context.check()
        label = _STEP_LABELS.get(step, step.capitalize())
        if step in ("upload", "download"):
            amount = f"{done / 2**20:.1f}" + (f" of {total / 2**20:.1f} MiB" if total else " MiB")
        else:
            amount = f"{done}/{total}" if total else ""
        fraction = done / total if total else None
        context.status(f"{prefix}{label} {amount}".strip(), fraction)

    return report


def snapshot_line(snap: JobSnapshot) -> tuple[str, float]:
    """A status line and a 0..1 fraction of the way to 'every tile settled'."""
    total = max(1, snap.tile_count * snap.replication)
    progress = snap.progress()  # claimed .. settled
    parts = [f"{state} {count}/{total}" for state, count in progress.items()]
    failed = snap.tile_counts.get(TileStatus.FAILED, 0)
    line = f"Job {snap.ref.job_id}: " + ", ".join(parts)
    if failed:
        line += f" ({failed} failed)"
    frames = snap.frame_progress()
    if frames:
        # An animation: frames whose every tile has a verified result.
        done = sum(1 for f in frames if f["done"] == f["tiles"])
        line += f"; frames done {done}/{len(frames)}"
    if snap.phase == JobPhase.RENDERING:
        line += f"; {format_pace(snap.pace)}"
    fraction = sum(progress.values()) / (len(progress) * total)
    return line, fraction


# --------------------------------------------------------------------------------- main thread


def _scene_named(name: str) -> Any | None:
    return bpy.data.scenes.get(name)


def _set_status(scene_name: str, text: str, fraction: float | None = None) -> None:
    scene = _scene_named(scene_name)
    if scene is None:
        return
    props = scene_settings(scene)
    props.status = text[:1000]
    if fraction is not None:
        props.progress = fraction
    _redraw()


def _redraw() -> None:
    wm = bpy.context.window_manager
    if wm is None:
        return
    for window in wm.windows:
        screen = window.screen
        if screen is None:
            continue
        for area in screen.areas:
            if area.type in ("PROPERTIES", "STATUSBAR", "IMAGE_EDITOR"):
                area.tag_redraw()


def _describe(exc: BaseException) -> str:
    """One line for the panel; an unexpected error's traceback also goes to Blender's console."""
    if isinstance(exc, Cancelled):
        return "cancelled"
    if isinstance(exc, BlindframeError):
        return f"{exc.message} ({exc.hint})" if exc.hint else exc.message
    traceback.print_exception(exc)
    return f"{type(exc).__name__}: {exc} (see the system console)"


def pump() -> float | None:
    """Deliver the background task's reports and outcome (main thread): what ``bpy.app.timers``
    calls while a task runs. Returns the seconds until the next call, None when idle."""
    return runner.pump()


def _start(task: Task) -> None:
    runner.start(task)
    if not bpy.app.timers.is_registered(pump):
        bpy.app.timers.register(pump, first_interval=0.1, persistent=True)
    _redraw()


def show_image(frame: Path, key: str, job_id: int) -> Any:
    """Load (or reload) the decrypted frame file (EXR: a float image) as an Image datablock;
    show it in open Image Editors. Returns the image."""
    image = next((im for im in bpy.data.images if im.get(_IMAGE_TAG) == key), None)
    if image is None:
        image = bpy.data.images.load(str(frame), check_existing=False)
        image.name = f"blindframe job {job_id}"
        image[_IMAGE_TAG] = key
    else:
        image.filepath = str(frame)
        image.reload()
    wm = bpy.context.window_manager
    for window in wm.windows if wm is not None else ():
        screen = window.screen
        for area in screen.areas if screen is not None else ():
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = image
                area.tag_redraw()
    return image


# --------------------------------------------------------------------------------- operators


class BLINDFRAME_OT_submit(bpy.types.Operator):  # type: ignore[misc]  # noqa: N801
    """Encrypt the scene (selected objects for Volume) and post it as a render job"""

    bl_idname = "blindframe.submit"
    bl_label = "Encrypt & Submit"
    bl_options: ClassVar[set[str]] = {"REGISTER"}

    @classmethod
    def poll(cls, context: Any) -> bool:
        return context.scene is not None and not runner.busy

    def execute(self, context: Any) -> set[str]:
        scene = context.scene
        props = scene_settings(scene)
        try:
            options = job_options(scene)
            artist = artist_for(props)
            _check_signer(artist.settings)
            assert options.kernel is not None
            blend = extract_scene(scene, options.kernel, resolution=options.resolution)
        except BlindframeError as exc:
            self.report({"ERROR"}, _describe(exc))
            return {"CANCELLED"}
        name = scene.name
        kernel = options.kernel

        def work(task: TaskContext) -> Any:
            task.status(f"Submitting {kernel}…", 0.0)

            def show_quote(quote: Quote) -> bool:
                # Encrypt & Submit is the artist's go-ahead: the quote is shown, not asked.
                task.status(quote.summary(), None)
                return True

            return artist.post(
                blend, options, progress=_progress_reporter(task), confirm=show_quote
            )

        def done(posted: Any) -> None:
            target = _scene_named(name)
            if target is not None:
                scene_settings(target).job_key = posted.ref.key
            h, w = posted.frame
            count = posted.quote.frames if posted.quote is not None else 1
            frames = f" x {count} frames" if count > 1 else ""
            _set_status(
                name,
                f"Posted job {posted.ref.job_id}: {posted.kernel} {w}x{h}{frames}, "
                f"{posted.tile_count} "
                f"tiles x {posted.replication}, escrow {format_eth(posted.escrow_wei)}"
                + (f". {posted.quote.summary()}" if posted.quote is not None else ""),
                1.0,
            )

        def failed(exc: BaseException) -> None:
            _set_status(name, f"Submit failed: {_describe(exc)}", 0.0)

        _start(
            Task(
                "Encrypt & Submit",
                work,
                done,
                failed,
                on_status=lambda s: _set_status(name, s.text, s.fraction),
            )
        )
        props.status = f"Encrypting {blend.kind} for {kernel}…"
        props.progress = 0.0
        self.report({"INFO"}, f"blindframe: submitting {kernel} in the background")
        return {"FINISHED"}


class BLINDFRAME_OT_fetch(bpy.types.Operator):  # type: ignore[misc]  # noqa: N801
    """Wait for the render nodes, verify and pay for their tiles, decrypt the frame, show it"""

    bl_idname = "blindframe.fetch"
    bl_label = "Fetch & Decrypt"
    bl_options: ClassVar[set[str]] = {"REGISTER"}

    interval: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Interval", description="Seconds between checks", default=1.0, min=0.1, max=60
    )

    @classmethod
    def poll(cls, context: Any) -> bool:
        return context.scene is not None and not runner.busy

    def execute(self, context: Any) -> set[str]:
        scene = context.scene
        props = scene_settings(scene)
        try:
            artist = artist_for(props)
            _check_signer(artist.settings)
            key = str(props.job_key).strip() or None
            directory = artist.job_dir(key)
            ref = directory.ref
        except BlindframeError as exc:
            self.report({"ERROR"}, _describe(exc))
            return {"CANCELLED"}
        name = scene.name
        limit = float(props.wait_minutes) * 60
        interval = float(self.interval)

        def work(task: TaskContext) -> Any:
            started = time.monotonic()
            progress = _progress_reporter(task, f"Job {ref.job_id}: ", cancellable=False)
            while True:
                task.check()
                artist.step(ref, progress=progress)
                snap = artist.snapshot(ref)
                line, fraction = snapshot_line(snap)
                task.status(line, fraction)
                if snap.complete:
                    break
                if _stalled(snap):
                    unfinished = sum(1 for t in snap.tiles if t.state != "settled")
                    raise JobExpiredError(
                        f"job {ref.job_id} passed its deadline with {unfinished} of "
                        f"{snap.tile_count} tiles unfinished",
                        hint=f"take the escrow back: `blindframe client refund {ref.job_id}`",
                    )
                if time.monotonic() - started > limit:
                    raise JobStateError(
                        f"job {ref.job_id} is not finished after {limit / 60:.1f} minutes; {line}",
                        hint="it goes on: press Fetch & Decrypt again later",
                    )
                task.sleep(interval)
            task.status(f"Job {ref.job_id}: decrypting", 1.0)
            # EXR: Blender reads it as a float image in scene-linear light, which it then
            # shows (and composites) like its own renders; the 8-bit PNG is written too.
            return artist.decrypt(ref, verify=False, progress=progress, frame_format="exr")

        def done(result: Any) -> None:
            image = show_image(Path(result.image), ref.key, ref.job_id)
            target = _scene_named(name)
            if target is not None:
                scene_settings(target).image = image.name
            h, w = result.frame.shape[-2:]
            _set_status(name, f"Job {ref.job_id}: decrypted {w}x{h} into image {image.name!r}", 1)

        def failed(exc: BaseException) -> None:
            _set_status(name, f"Fetch stopped: {_describe(exc)}")

        _start(
            Task(
                "Fetch & Decrypt",
                work,
                done,
                failed,
                on_status=lambda s: _set_status(name, s.text, s.fraction),
            )
        )
        props.job_key = ref.key
        props.status = f"Job {ref.job_id}: waiting for the render nodes…"
        return {"FINISHED"}


def _stalled(snap: JobSnapshot) -> bool:
    """Past the deadline with no lease or contest that could still deliver."""
    in_flight = any(
        lease.status in (LeaseStatusName.CLAIMED, LeaseStatusName.COMMITTED)
        for lease in snap.leases
        if not lease.juror
    )
    return (
        snap.expired
        and not in_flight
        and not any(c.open for c in snap.contests)
        and not any(c.status == ChallengeStatus.OPEN for c in snap.challenges)
    )


class BLINDFRAME_OT_cancel(bpy.types.Operator):  # type: ignore[misc]  # noqa: N801
    """Stop the background task (a posted job goes on; fetch it again later)"""

    bl_idname = "blindframe.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: Any) -> bool:
        return runner.busy

    def execute(self, context: Any) -> set[str]:
        runner.cancel()
        return {"FINISHED"}


class BLINDFRAME_OT_dashboard(bpy.types.Operator):  # type: ignore[misc]  # noqa: N801
    """Open the live dashboard of your jobs in the web browser (served on 127.0.0.1 only)"""

    bl_idname = "blindframe.dashboard"
    bl_label = "Dashboard"

    def execute(self, context: Any) -> set[str]:
        global _dashboard
        from blindframe.client.dashboard.server import DashboardServer

        try:
            artist = Artist(settings_for(scene_settings(context.scene)))
            if _dashboard is None:
                _dashboard = DashboardServer(artist)
                _dashboard.start()
        except BlindframeError as exc:
            self.report({"ERROR"}, _describe(exc))
            return {"CANCELLED"}
        webbrowser.open(_dashboard.url)
        self.report({"INFO"}, f"blindframe dashboard: {_dashboard.url}")
        return {"FINISHED"}


# --------------------------------------------------------------------------------- UI


class RENDER_PT_blindframe(bpy.types.Panel):  # type: ignore[misc]  # noqa: N801
    """blindframe: render this scene encrypted on the render market"""

    bl_label = "blindframe"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "render"

    def draw(self, context: Any) -> None:
        layout = self.layout
        scene = context.scene
        props = scene_settings(scene)
        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.prop(props, "kernel")
        width, height = frame_size(scene)
        info = layout.column(align=True)
        info.label(text=f"Frame {width} x {height} px (Output Properties)", icon="IMAGE_DATA")
        with _guard(info):
            info.label(text=tile_summary(scene), icon="MESH_GRID")
        family = str(props.kernel).partition("@")[0]
        col = layout.column(align=True)
        if family == "volume":
            col.prop(props, "voxel_resolution")
            col.prop(props, "yaw")
            col.prop(props, "pitch")
            col.prop(props, "zoom")
            col.prop(props, "frame_range")
            if props.frame_range:
                col.label(
                    text=f"Frames {scene.frame_start}..{scene.frame_end} (Output Properties)",
                    icon="RENDER_ANIMATION",
                )
                col.prop(props, "motion")
                if props.motion == "ORBIT":
                    col.prop(props, "orbit")
        elif family == "shade":
            col.prop(props, "light")
        else:
            col.prop(props, "filter")
        col = layout.column(align=True)
        col.prop(props, "replication")
        col.prop(props, "reward")
        col.prop(props, "lease_length")
        col.prop(props, "deadline")
        col.prop(props, "priority")
        row = col.row(heading="Canaries")
        row.prop(props, "custom_canaries", text="")
        sub = row.row()
        sub.active = bool(props.custom_canaries)
        sub.prop(props, "canaries", text="")
        col = layout.column(align=True)
        col.prop(props, "account")
        col.prop(props, "password_file")
        net = layout.column(align=True)
        with _guard(net):
            cfg = base_settings()
            net.label(text=f"RPC {cfg.rpc_url}", icon="WORLD")
            net.label(text=f"IPFS {cfg.ipfs_api}", icon="FILE_BLANK")
            net.label(text=f"Deployment {cfg.deployment_path}", icon="FILE_TEXT")
        layout.use_property_split = False
        row = layout.row(align=True)
        row.scale_y = 1.4
        row.operator(BLINDFRAME_OT_submit.bl_idname, icon="LOCKED")
        row.operator(BLINDFRAME_OT_fetch.bl_idname, icon="IMAGE")
        layout.prop(props, "job_key")
        layout.prop(props, "wait_minutes")
        if runner.busy:
            row = layout.row(align=True)
            row.progress(factor=float(props.progress), type="BAR", text=props.status or "…")
            row.operator(BLINDFRAME_OT_cancel.bl_idname, text="", icon="CANCEL")
        elif props.status:
            layout.label(text=props.status)
        layout.operator(BLINDFRAME_OT_dashboard.bl_idname, icon="URL")


@contextlib.contextmanager
def _guard(layout: Any) -> Iterator[None]:
    """Show a settings problem in the panel instead of failing its draw."""
    try:
        yield
    except BlindframeError as exc:
        layout.label(text=_describe(exc), icon="ERROR")


def draw_status_bar(self: Any, context: Any) -> None:
    """Blender's status bar (appended to ``STATUSBAR_HT_header``): the running task's progress."""
    status: Status | None = runner.last_status
    if not runner.busy:
        return
    text = status.text if status is not None else f"{runner.label}…"
    fraction = status.fraction if status is not None and status.fraction is not None else 0.0
    self.layout.progress(factor=fraction, type="RING", text=f"blindframe: {text}")


CLASSES: tuple[type, ...] = (
    BlindframeSettings,
    BLINDFRAME_OT_submit,
    BLINDFRAME_OT_fetch,
    BLINDFRAME_OT_cancel,
    BLINDFRAME_OT_dashboard,
    RENDER_PT_blindframe,
)


def register(package: str | None = None) -> None:
    """Register the panel, operators and scene settings (``package``: the extension's module
    name, whose preferences hold the config file)."""
    global _package
    _package = package
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.blindframe = bpy.props.PointerProperty(type=BlindframeSettings)
    bpy.types.STATUSBAR_HT_header.append(draw_status_bar)


def unregister() -> None:
    """Undo :func:`register`: stop background work, the dashboard, and close connections."""
    global _dashboard, _package
    runner.cancel()
    runner.join(timeout=10)
    runner.discard()
    if bpy.app.timers.is_registered(pump):
        bpy.app.timers.unregister(pump)
    if _dashboard is not None:
        _dashboard.close()
        _dashboard = None
    for artist in _artists.values():
        artist.close()
    _artists.clear()
    _config_cache.clear()
    with contextlib.suppress(RuntimeError, ValueError):
        bpy.types.STATUSBAR_HT_header.remove(draw_status_bar)
    del bpy.types.Scene.blindframe
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    _package = None
