"""What every blindframe command group shares: settings from the context, output, passwords."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from blindframe.coordinator.accounts import read_password_file
from blindframe.coordinator.config import Settings, load_settings
from blindframe.coordinator.errors import KeystoreError

__all__ = ["console", "emit", "is_json", "password", "settings"]

console = Console(stderr=True, highlight=False)


def settings(ctx: click.Context, **overrides: Any) -> Settings:
    """Settings for this invocation: the root group's --config, env, then command-line overrides."""
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, dict) else {}
    cached = obj.get("settings")
    if not isinstance(cached, Settings):
        cached = load_settings(obj.get("config_path"))
        obj["settings"] = cached
    return cached.replace(**overrides)


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
        return read_password_file(Path(cfg.password_file))
    if not sys.stdin.isatty() or os.environ.get("CI"):
        raise KeystoreError(
            "no password file given and no terminal to ask for the keystore password",
            hint="pass --password-file FILE or set BLINDFRAME_PASSWORD_FILE",
        )
    value: str = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return value
