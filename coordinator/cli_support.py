"""What every blindframe command group shares: settings from the context, output, passwords."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from blindframe.coordinator.config import Settings, load_settings
from blindframe.coordinator.errors import KeystoreError

__all__ = [
    "IPFS_API_HELP",
    "RPC_HELP",
    "console",
    "emit",
    "home_option",
    "ipfs_api_option",
    "is_json",
    "password",
    "settings",
]

_F = TypeVar("_F", bound=Callable[..., Any])

console = Console(stderr=True, highlight=False)

RPC_HELP = (
    "Ethereum JSON-RPC URL (BLINDFRAME_RPC_URL; default: the one the deployment file records, "
    "which `stack up` writes, else http://127.0.0.1:8545)."
)
IPFS_API_HELP = (
    "IPFS (Kubo RPC) API URL (BLINDFRAME_IPFS_API; default: the home's local stack node, else "
    "http://127.0.0.1:5001)."
)

# Where the shared options (--home, the old --ipfs) leave their values for settings().
_OPTIONS = "shared_options"


def settings(ctx: click.Context, **overrides: Any) -> Settings:
    """Settings for this invocation: the root group's --config, env, then command-line overrides
    (those given here, then the shared options --home and --ipfs)."""
    root = ctx.find_root()
    root.ensure_object(dict)
    obj = root.obj
    cached = obj.get("settings")
    if not isinstance(cached, Settings):
        cached = load_settings(obj.get("config_path"))
        obj["settings"] = cached
    shared = obj.get(_OPTIONS, {})
    given = {k: v for k, v in overrides.items() if v is not None}
    return cached.replace(**{**shared, **given})


def _keep(name: str, *, renamed_to: str | None = None) -> Callable[..., Any]:
    """A callback that keeps an option's value for settings() (and notes a renamed option)."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            if renamed_to is not None:
                click.echo(
                    f"note: {param.opts[0]} is now {renamed_to}; the old name goes after the "
                    "next release",
                    err=True,
                )
            root = ctx.find_root()
            root.ensure_object(dict)
            root.obj.setdefault(_OPTIONS, {})[name] = value
        return value

    return callback


def home_option(func: _F) -> _F:
    """``--home DIR``, the blindframe home, for every command that reads it (BLINDFRAME_HOME)."""
    option = click.option(
        "--home",
        type=click.Path(file_okay=False),
        expose_value=False,
        callback=_keep("home"),
        help="blindframe home (BLINDFRAME_HOME; default: the config's `home`, else the user data "
        "dir).",
    )
    return option(func)


def ipfs_api_option(help_text: str) -> Callable[[_F], _F]:
    """``--ipfs-api URL`` (the ``ipfs_api`` argument), and ``--ipfs``, its old name on the
    client's commands, hidden and kept for one more release."""

    def decorate(func: _F) -> _F:
        func = click.option(
            "--ipfs",
            hidden=True,
            expose_value=False,
            callback=_keep("ipfs_api", renamed_to="--ipfs-api"),
        )(func)
        return click.option("--ipfs-api", "ipfs_api", metavar="URL", help=help_text)(func)

    return decorate


def is_json(ctx: click.Context) -> bool:
    """Whether the root group got --json."""
    root = ctx.find_root()
    return bool(isinstance(root.obj, dict) and root.obj.get("json"))


def emit(ctx: click.Context, data: Any, human: Callable[[Any], None] | None = None) -> None:
    """Print ``data`` as JSON on stdout under --json, else through ``human`` (or as key: value)."""
    if is_json(ctx):
        click.echo(json.dumps(data, default=str, sort_keys=True))
        return
    if human is not None:
        human(data)
        return
    if isinstance(data, dict):
        for key, value in data.items():
            click.echo(f"{key}: {value}")
    else:
        click.echo(str(data))


def password(cfg: Settings, *, prompt: str, confirm: bool = False) -> str:
    """The keystore password: --password-file / BLINDFRAME_PASSWORD_FILE, else a prompt on a tty.

    Passwords never come from a command-line argument (it would show in `ps` and shell history).
    """
    if cfg.password_file is not None:
        # Imported here: eth_account takes a second or two to import, and most commands that
        # share this module never read a password.
        from blindframe.coordinator.accounts import read_password_file

        return read_password_file(Path(cfg.password_file))
    if not sys.stdin.isatty() or os.environ.get("CI"):
        raise KeystoreError(
            "no password file given and no terminal to ask for the keystore password",
            hint="pass --password-file FILE or set BLINDFRAME_PASSWORD_FILE",
        )
    value: str = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return value
