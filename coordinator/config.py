"""Settings shared by every command: defaults < config file < environment < command line.

The RPC and IPFS defaults follow the home: the RPC URL its deployment file records, the IPFS
node its local stack runs (`blindframe stack up` writes both), then the built-in loopback ports.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from blindframe.coordinator.errors import ConfigError

__all__ = [
    "DEFAULT_IPFS_API",
    "DEFAULT_RPC_URL",
    "ENV_PREFIX",
    "LOCAL_STACK_IPFS",
    "STACK_STATE",
    "Settings",
    "load_settings",
    "stack_ipfs_nodes",
]

ENV_PREFIX = "BLINDFRAME_"
DEFAULT_RPC_URL = "http://127.0.0.1:8545"
DEFAULT_IPFS_API = "http://127.0.0.1:5001"
# The local stack's state file under the home (written by `blindframe stack up`, removed by
# `stack down`) and the name of its artist-side IPFS node.
STACK_STATE = Path("stack") / "stack.json"
LOCAL_STACK_IPFS = "client"
_LOCAL_CONFIG = Path("blindframe.toml")
# Settings whose default follows the home (its deployment file, its local stack).
_FOLLOW_HOME = frozenset({"rpc_url", "ipfs_api"})


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("blindframe", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Every tunable the commands read. Paths are absolute once loaded.

    Environment overrides are ``BLINDFRAME_<FIELD>`` in upper case (``BLINDFRAME_RPC_URL``).
    """

    home: Path = field(default_factory=_default_home)
    rpc_url: str = DEFAULT_RPC_URL
    ipfs_api: str = DEFAULT_IPFS_API
    deployment: Path | None = None
    keystore_dir: Path | None = None
    account: str | None = None
    password_file: Path | None = None
    confirmations: int = 0
    source: tuple[str, ...] = ()
    # Tables of the config file for one command group (``[worker]``, ``[client]``), as read: each
    # group validates its own table (their env variables are ``BLINDFRAME_<GROUP>_<KEY>``).
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Settings no config file, variable or option gave (``rpc_url``, ``ipfs_api``): they follow
    # the home, and are looked up again when a command-line --home changes it.
    defaulted: frozenset[str] = frozenset()

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
        changed = dataclasses.replace(
            self, **_coerce(given, "command line"), defaulted=self.defaulted - set(given)
        )
        return changed.follow_home() if changed.defaulted else changed

    def follow_home(self) -> Settings:
        """The defaulted RPC URL and IPFS API looked up in this home: the RPC URL recorded in
        the deployment file, else the local stack's; the local stack's IPFS node; else the
        built-in loopback ports."""
        stack = _read_json(self.home / STACK_STATE)
        found: dict[str, Any] = {}
        if "rpc_url" in self.defaulted:
            recorded = _read_json(self.deployment_path).get("rpcUrl") or stack.get("rpc_url")
            found["rpc_url"] = recorded if isinstance(recorded, str) else DEFAULT_RPC_URL
        if "ipfs_api" in self.defaulted:
            nodes = stack.get("ipfs")
            api = nodes.get(LOCAL_STACK_IPFS) if isinstance(nodes, dict) else None
            found["ipfs_api"] = api if isinstance(api, str) else DEFAULT_IPFS_API
        return dataclasses.replace(self, **found)


def stack_ipfs_nodes(home: Path) -> dict[str, str]:
    """The IPFS nodes of ``home``'s local stack by name (``client``, one per render node) and
    their RPC API URLs, from the state `blindframe stack up` wrote; empty when none runs."""
    nodes = _read_json(home / STACK_STATE).get("ipfs")
    if not isinstance(nodes, dict):
        return {}
    return {str(name): url for name, url in nodes.items() if isinstance(url, str)}


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or {} when it is missing or unreadable (a broken deployment
    file gets its own error where it is used)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


_PATH_FIELDS = {"home", "deployment", "keystore_dir", "password_file"}
_INT_FIELDS = {"confirmations"}
_KNOWN = {f.name for f in fields(Settings)} - {"source", "sections", "defaulted"}
_SECTIONS = ("worker", "client")


def _shown(value: Any) -> str:
    """A configured value as a message quotes it: short, whatever the file holds."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _coerce(values: dict[str, Any], origin: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in _KNOWN:
            known = ", ".join(sorted(_KNOWN))
            raise ConfigError(f"unknown setting {_shown(key)} in {origin}", hint=f"known: {known}")
        if key in _PATH_FIELDS:
            text = os.fspath(value) if isinstance(value, str | os.PathLike) else None
            if not isinstance(text, str) or not text or "\0" in text:
                raise ConfigError(f"{key} must be a path in {origin} (not {_shown(value)})")
            out[key] = Path(text).expanduser().resolve()
        elif key in _INT_FIELDS:
            # A whole number or its digits (variables are text); not a bool, not 2.5 or inf.
            number = value if isinstance(value, int) and not isinstance(value, bool) else None
            if isinstance(value, str):
                try:
                    number = int(value)
                except ValueError:
                    number = None
            if number is None:
                raise ConfigError(f"{key} must be a whole number in {origin} (not {_shown(value)})")
            if number < 0:
                raise ConfigError(f"{key} must not be negative in {origin} (not {number})")
            out[key] = number
        else:
            if not isinstance(value, str):
                raise ConfigError(f"{key} must be a string in {origin} (not {_shown(value)})")
            out[key] = value
    return out


def load_settings(
    config_path: str | Path | None = None, env: dict[str, str] | None = None
) -> Settings:
    """Read defaults, then the config file, then ``BLINDFRAME_*`` variables.

    Without ``config_path``, ``./blindframe.toml`` is used if it exists, else
    ``<user config dir>/blindframe/config.toml`` if that exists. An RPC URL or IPFS API none of
    them gives follows the home (`Settings.follow_home`).
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
        except OSError as exc:  # a folder, no permission
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        except RecursionError:
            # tomllib recurses per nested array: "x = [[[[..." overflows the stack.
            raise ConfigError(f"config file {path} nests arrays too deeply") from None
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
    loaded = Settings(
        **values,
        source=tuple(sources),
        sections=sections,
        defaulted=frozenset(_FOLLOW_HOME - set(values)),
    )
    return loaded.follow_home()


def _config_file(config_path: str | Path | None, environ: dict[str, str]) -> Path | None:
    if config_path is not None:
        return Path(config_path).expanduser().resolve()
    if ENV_PREFIX + "CONFIG" in environ:
        return Path(environ[ENV_PREFIX + "CONFIG"]).expanduser().resolve()
    if _LOCAL_CONFIG.is_file():
        return _LOCAL_CONFIG.resolve()
    user = Path(platformdirs.user_config_dir("blindframe", appauthor=False)) / "config.toml"
    return user if user.is_file() else None
