"""Settings shared by every command: defaults < config file < environment < command line."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from blindframe.coordinator.errors import ConfigError

__all__ = ["ENV_PREFIX", "Settings", "load_settings"]

ENV_PREFIX = "BLINDFRAME_"
_LOCAL_CONFIG = Path("blindframe.toml")


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("blindframe", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Every tunable the commands read. Paths are absolute once loaded.

    Environment overrides are ``BLINDFRAME_<FIELD>`` in upper case (``BLINDFRAME_RPC_URL``).
    """

    home: Path = field(default_factory=_default_home)
    rpc_url: str = "http://127.0.0.1:8545"
    ipfs_api: str = "http://127.0.0.1:5001"
    deployment: Path | None = None
    keystore_dir: Path | None = None
    account: str | None = None
    password_file: Path | None = None
    confirmations: int = 0
    source: tuple[str, ...] = ()
    # Tables of the config file for one command group (``[worker]``, ``[client]``), as read: each
    # group validates its own table (their env variables are ``BLINDFRAME_<GROUP>_<KEY>``).
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def deployment_path(self) -> Path:
        """Where the deployment file is read from (and written by ``stack up``)."""
        return self.deployment or self.home / "deployment.json"

    @property
    def keystores(self) -> Path:
        """The folder holding encrypted account keystores."""
        return self.keystore_dir or self.home / "keystores"

    def replace(self, **changes: Any) -> Settings:
        """A copy with the given fields changed (command-line options, for example)."""
        given = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **_coerce(given, "command line"))


_PATH_FIELDS = {"home", "deployment", "keystore_dir", "password_file"}
_INT_FIELDS = {"confirmations"}
_KNOWN = {f.name for f in fields(Settings)} - {"source", "sections"}
_SECTIONS = ("worker", "client")


def _coerce(values: dict[str, Any], origin: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in _KNOWN:
            known = ", ".join(sorted(_KNOWN))
            raise ConfigError(f"unknown setting {key!r} in {origin}", hint=f"known: {known}")
        if key in _PATH_FIELDS:
            out[key] = Path(str(value)).expanduser().resolve()
        elif key in _INT_FIELDS:
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"{key} must be a whole number in {origin} (not {value!r})"
                ) from None
            if number < 0:
                raise ConfigError(f"{key} must not be negative in {origin} (not {number})")
            out[key] = number
        else:
            if not isinstance(value, str):
                raise ConfigError(f"{key} must be a string in {origin} (not {value!r})")
            out[key] = value
    return out


def load_settings(
    config_path: str | Path | None = None, env: dict[str, str] | None = None
) -> Settings:
    """Read defaults, then the config file, then ``BLINDFRAME_*`` variables.

    Without ``config_path``, ``./blindframe.toml`` is used if it exists, else
    ``<user config dir>/blindframe/config.toml`` if that exists.
    """
    environ = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    sources: list[str] = []
    path = _config_file(config_path, environ)
    if path is not None:
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"config file {path} does not exist", hint="check --config or BLINDFRAME_CONFIG"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        for name in _SECTIONS:
            table = document.pop(name, None)
            if table is not None and not isinstance(table, dict):
                raise ConfigError(f"[{name}] in config file {path} must be a table")
            if table is not None:
                sections[name] = table
        values.update(_coerce(document, str(path)))
        sources.append(str(path))
    from_env = {
        name: environ[ENV_PREFIX + name.upper()]
        for name in _KNOWN
        if ENV_PREFIX + name.upper() in environ
    }
    if from_env:
        values.update(_coerce(from_env, "environment"))
        sources.append("environment")
    return Settings(**values, source=tuple(sources), sections=sections)


def _config_file(config_path: str | Path | None, environ: dict[str, str]) -> Path | None:
    if config_path is not None:
        return Path(config_path).expanduser().resolve()
    if ENV_PREFIX + "CONFIG" in environ:
        return Path(environ[ENV_PREFIX + "CONFIG"]).expanduser().resolve()
    if _LOCAL_CONFIG.is_file():
        return _LOCAL_CONFIG.resolve()
    user = Path(platformdirs.user_config_dir("blindframe", appauthor=False)) / "config.toml"
    return user if user.is_file() else None
