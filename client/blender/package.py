"""Build the Blender extension zip: ``python -m blindframe.client.blender.package OUT.zip``.

The zip holds the extension manifest (``blender_manifest.toml``, its version set to the installed
blindframe's), the entry point (:mod:`blindframe.client.blender.bootstrap` as ``__init__.py``)
and ``blindframe_env.json``, which names the Python environment that built the zip so that
Blender finds blindframe there without any setting. The add-on's code itself stays in that
environment (:mod:`blindframe.client.blender.addon`): the zip always matches what is installed.

Install it in Blender: Edit > Preferences > Get Extensions > (menu) Install from Disk..., or
``blender --command extension install-file -r user_default -e OUT.zip``.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
import zipfile
from pathlib import Path

import click

from blindframe.client.errors import ClientError

__all__ = ["ENV_FILE", "MANIFEST", "build_addon_zip", "main", "manifest_text"]

MANIFEST = "blender_manifest.toml"
ENV_FILE = "blindframe_env.json"  # what bootstrap.ENV_FILE reads (bootstrap needs bpy)
_HERE = Path(__file__).resolve().parent
_VERSION_LINE = re.compile(r'^version = "[^"]*"$', re.MULTILINE)


def _version() -> str:
    try:
        return importlib.metadata.version("blindframe")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


def manifest_text() -> str:
    """The extension manifest with the installed blindframe's version."""
    text = (_HERE / MANIFEST).read_text(encoding="utf-8")
    if len(_VERSION_LINE.findall(text)) != 1:
        raise ClientError(f'{_HERE / MANIFEST} must have exactly one `version = "..."` line')
    return _VERSION_LINE.sub(f'version = "{_version()}"', text)


def build_addon_zip(
    output: Path, *, python_env: Path | None = None, embed_env: bool = True
) -> Path:
    """Write the extension zip to ``output`` (a ``.zip`` path; its folder is created).

    ``python_env``: the environment Blender should import blindframe from (default: this
    interpreter's, ``sys.prefix``); ``embed_env=False`` leaves it out (set the add-on preference
    or ``BLINDFRAME_PYTHON_ENV`` then).
    """
    target = Path(output).expanduser()
    if target.suffix.lower() != ".zip":
        raise ClientError(f"the add-on is a .zip file (not {str(target)!r})")
    env = Path(python_env).expanduser().resolve() if python_env else Path(sys.prefix).resolve()
    if embed_env and not env.is_dir():
        raise ClientError(f"the Python environment {env} is not a folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MANIFEST, manifest_text())
            archive.writestr("__init__.py", (_HERE / "bootstrap.py").read_bytes())
            if embed_env:
                document = {
                    "pythonEnv": str(env),
                    "blindframe": _version(),
                    "python": f"{sys.version_info.major}.{sys.version_info.minor}",
                }
                archive.writestr(ENV_FILE, json.dumps(document, indent=2) + "\n")
        tmp.replace(target)
    except OSError as exc:
        raise ClientError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    return target


@click.command("addon")
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--python-env",
    type=click.Path(file_okay=False, path_type=Path),
    help="The environment Blender imports blindframe from (default: this one).",
)
@click.option("--no-env", is_flag=True, help="Do not name an environment in the zip.")
def main(output: Path, python_env: Path | None, no_env: bool) -> None:
    """Build the blindframe Blender extension zip OUTPUT (install it from Blender's
    Preferences > Get Extensions > Install from Disk)."""
    try:
        path = build_addon_zip(output, python_env=python_env, embed_env=not no_env)
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"built {path} (blindframe {_version()}, Blender 4.2+)")
    if not no_env:
        click.echo(f"Blender will import blindframe from {python_env or sys.prefix}")


if __name__ == "__main__":
    main()
