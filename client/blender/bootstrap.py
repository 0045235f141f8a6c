"""Entry point of the blindframe Blender extension (shipped as the zip's ``__init__.py``).

Blender runs its own Python (3.11 in Blender 4.2 to 5.x); blindframe and its dependencies
(Concrete, web3, ...) live in the Python environment ``pip install blindframe`` put them in. This
module adds that environment's ``site-packages`` to ``sys.path`` (with ``site.addsitedir``, so
editable installs and ``.pth`` files work), then imports :mod:`blindframe.client.blender.addon`
and registers it. Where the environment is, in order:

1. the add-on preference "Python environment" (a virtual environment folder, or its
   ``site-packages``), editable in Edit > Preferences > Add-ons > blindframe;
2. the ``BLINDFRAME_PYTHON_ENV`` environment variable;
3. ``blindframe_env.json`` beside this file, written by the command that built the zip
   (``python -m blindframe.client.blender.package``): the environment that built it.

Until blindframe imports, the Render properties show a small panel that says what is missing.
This file imports nothing of blindframe at module level: it must load without it.
"""

import importlib
import json
import os
import site
import sys
from pathlib import Path
from typing import Any

import bpy

__all__ = ["ENV_FILE", "register", "site_packages", "unregister"]

ENV_FILE = "blindframe_env.json"
_ADDON = "blindframe.client.blender.addon"
_API = 1
_state: dict[str, Any] = {"addon": None, "error": "", "path": ""}


def site_packages(path: str) -> Path:
    """The ``site-packages`` folder of ``path``: a virtual environment (``pyvenv.cfg`` inside),
    a Python prefix, or a ``site-packages`` folder itself. ValueError when none is found."""
    root = Path(bpy.path.abspath(path) if path.startswith("//") else path).expanduser()
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    if (root / "blindframe").exists() or root.name in ("site-packages", "dist-packages"):
        return root
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (
        root / "lib" / version / "site-packages",
        root / "Lib" / "site-packages",
        root / "lib64" / version / "site-packages",
    ):
        if candidate.is_dir():
            return candidate
    found = sorted(root.glob("lib/python3.*/site-packages"))
    if found:
        raise ValueError(
            f"{root} is a Python environment for {found[0].parent.name}, but this Blender runs "
            f"Python {sys.version_info.major}.{sys.version_info.minor}: install blindframe "
            f"into a {version} environment"
        )
    raise ValueError(f"no site-packages folder under {root}")


def _default_env() -> str:
    value = os.environ.get("BLINDFRAME_PYTHON_ENV", "").strip()
    if value:
        return value
    try:
        data = json.loads((Path(__file__).parent / ENV_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return str(data.get("pythonEnv", "")) if isinstance(data, dict) else ""


def _connect(path: str) -> None:
    """Import blindframe from ``path`` and register the add-on; remember why not on failure."""
    if _state["addon"] is not None:
        return
    try:
        if path:
            folder = str(site_packages(path))
            if folder not in sys.path:
                site.addsitedir(folder)
            _state["path"] = folder
        importlib.invalidate_caches()
        addon = importlib.import_module(_ADDON)
    except (ImportError, ValueError, OSError) as exc:
        where = f" from {path}" if path else ""
        _state["error"] = f"blindframe cannot be imported{where}: {exc}"
        return
    if getattr(addon, "ADDON_API", None) != _API:
        _state["error"] = (
            f"the blindframe installed{' in ' + path if path else ''} expects another add-on "
            "version: rebuild the add-on zip with that environment"
        )
        return
    _unregister_fallback()
    addon.register(__package__)
    _state["addon"] = addon
    _state["error"] = ""


def _env_changed(self: Any, context: Any) -> None:
    _connect(str(self.python_env).strip())


class BlindframePreferences(bpy.types.AddonPreferences):  # type: ignore[misc]
    """Where blindframe is installed, and which blindframe config to read."""

    bl_idname = __package__

    python_env: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Python environment",
        description="The virtual environment (or site-packages folder) blindframe is installed in",
        subtype="DIR_PATH",
        default="",
        update=_env_changed,
    )
    config_file: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Config file",
        description="blindframe config (TOML); empty: BLINDFRAME_CONFIG, ./blindframe.toml, "
        "then the user config",
        subtype="FILE_PATH",
        default="",
    )

    def draw(self, context: Any) -> None:
        layout = self.layout
        layout.prop(self, "python_env")
        layout.prop(self, "config_file")
        if _state["addon"] is not None:
            layout.label(
                text=f"blindframe loaded from {_state['path'] or 'sys.path'}", icon="CHECKMARK"
            )
        else:
            layout.label(text=_state["error"] or "blindframe is not loaded", icon="ERROR")


class RENDER_PT_blindframe_setup(bpy.types.Panel):  # type: ignore[misc]  # noqa: N801
    """Shown until blindframe imports: what to set."""

    bl_label = "blindframe"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "render"

    def draw(self, context: Any) -> None:
        col = self.layout.column()
        col.label(text="blindframe is not loaded", icon="ERROR")
        for line in _wrap(_state["error"] or "set its Python environment", 60):
            col.label(text=line)
        col.label(text="Edit > Preferences > Add-ons > blindframe > Python environment")


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


def _unregister_fallback() -> None:
    if getattr(bpy.types, "RENDER_PT_blindframe_setup", None) is not None:
        bpy.utils.unregister_class(RENDER_PT_blindframe_setup)


def register() -> None:
    """Blender calls this when the extension is enabled."""
    bpy.utils.register_class(BlindframePreferences)
    bpy.utils.register_class(RENDER_PT_blindframe_setup)
    prefs = bpy.context.preferences.addons[__package__].preferences
    if not str(prefs.python_env).strip():
        default = _default_env()
        if default:
            prefs.python_env = default  # its update callback connects
            return
    _connect(str(prefs.python_env).strip())


def unregister() -> None:
    """Blender calls this when the extension is disabled or removed."""
    addon = _state["addon"]
    if addon is not None:
        addon.unregister()
        _state["addon"] = None
    else:
        _unregister_fallback()
    bpy.utils.unregister_class(BlindframePreferences)
