"""The render node's own options: command line, else ``BLINDFRAME_WORKER_*``, else ``[worker]``.

Click reads the command line and the environment (each option names its variable); what neither
gave comes from the ``[worker]`` table of the config file, then from the defaults here. Every
value is validated with a message that echoes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from blindframe.fhe_core.errors import UnknownKernelError
from blindframe.fhe_core.kernels import KERNEL_IDS, parse_kernel_id
from blindframe.worker.errors import NodeOptionError

__all__ = ["ENV_PREFIX", "FAULTS", "NodeOptions", "resolve_options"]

ENV_PREFIX = "BLINDFRAME_WORKER_"
FAULTS = ("lazy", "wrong-root", "withhold", "copy")


@dataclass(frozen=True)
class NodeOptions:
    """How one render node behaves (``blindframe worker run --help`` explains each)."""

    kernels: tuple[str, ...] = KERNEL_IDS
    capacity: int | None = None  # local cap on tiles in work; None: what the chain allows
    min_price: int = 0  # wei per expected compute second
    tile_seconds: dict[str, float] = field(default_factory=dict)  # configured priors
    data_dir: Path | None = None
    poll: float = 1.0
    parallel: int = 1  # leases computed at once (one sandboxed child each)
    memory_limit_mb: int = 8192
    reclaim: bool = True  # reclaim other workers' expired leases for the bounty
    safety: float = 0.6  # share of a lease's window the plan may fill
    once: bool = False
    max_idle: float | None = None
    json_log: bool = False
    fault: str | None = None  # test-only misbehaviour, local chains only


def _int(name: str, low: int, high: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        try:
            number = int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError:
            raise NodeOptionError(f"{name} must be a whole number (not {value!r})") from None
        if isinstance(number, bool) or number < low or (high is not None and number > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise NodeOptionError(f"{name} must be {bound} (not {value!r})")
        return number

    return parse


def _float(name: str, low: float, high: float | None = None) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise NodeOptionError(f"{name} must be a number (not {value!r})") from None
        if not math.isfinite(number) or number < low or (high is not None and number > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise NodeOptionError(f"{name} must be {bound} (not {value!r})")
        return number

    return parse


def _bool(name: str) -> Callable[[Any], bool]:
    def parse(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise NodeOptionError(f"{name} must be true or false (not {value!r})")

    return parse


def _items(value: Any) -> list[str]:
    """A list from "a,b", "a b", ["a", "b,c"] or ("a",)."""
    raw = [value] if isinstance(value, str) else [str(v) for v in value]
    return [part for item in raw for part in item.replace(",", " ").split()]


def _kernels(value: Any) -> tuple[str, ...]:
    items = _items(value)
    kernels = []
    for item in items:
        kernel = str(item).strip()
        if not kernel:
            continue
        try:
            parse_kernel_id(kernel)
        except UnknownKernelError as exc:
            raise NodeOptionError(f"kernels: {exc.message}") from None
        if kernel not in kernels:
            kernels.append(kernel)
    if not kernels:
        raise NodeOptionError(
            f"kernels names no kernel (not {value!r})", hint=f"e.g. {','.join(KERNEL_IDS)}"
        )
    return tuple(kernels)


def _tile_seconds(value: Any) -> dict[str, float]:
    if isinstance(value, Mapping):
        pairs = [(str(k), v) for k, v in value.items()]
    else:
        pairs = []
        for item in _items(value):
            kernel, sep, seconds = item.partition("=")
            if not sep:
                raise NodeOptionError(
                    f"tile-seconds takes KERNEL=SECONDS (not {item!r})", hint="e.g. volume@1=2.5"
                )
            pairs.append((kernel.strip(), seconds))
    out = {}
    for kernel, seconds in pairs:
        try:
            parse_kernel_id(kernel)
        except UnknownKernelError as exc:
            raise NodeOptionError(f"tile-seconds: {exc.message}") from None
        out[kernel] = _float(f"tile-seconds for {kernel}", 0.001, 86_400)(seconds)
    return out


def _fault(value: Any) -> str:
    text = str(value).strip()
    if text not in FAULTS:
        raise NodeOptionError(f"fault must be one of {'|'.join(FAULTS)} (not {value!r})")
    return text


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "kernels": _kernels,
    "capacity": _int("capacity", 1, 65_535),
    "min_price": _int("min-price", 0),
    "tile_seconds": _tile_seconds,
    "data_dir": lambda v: Path(str(v)).expanduser().resolve(),
    "poll": _float("poll", 0.05, 3600),
    "parallel": _int("parallel", 1, 64),
    "memory_limit_mb": _int("memory-limit", 256, 1 << 22),
    "reclaim": _bool("reclaim"),
    "safety": _float("safety", 0.05, 1.0),
    "once": _bool("once"),
    "max_idle": _float("max-idle", 0.0),
    "json_log": _bool("json-log"),
    "fault": _fault,
}
# Names in the [worker] table: the option names with dashes or underscores.
_TABLE_NAMES = (
    {name.replace("_", "-"): name for name in _PARSERS}
    | {n: n for n in _PARSERS}
    | {"memory-limit": "memory_limit_mb", "memory_limit": "memory_limit_mb"}
)


def resolve_options(
    given: Mapping[str, Any], table: Mapping[str, Any] | None = None, *, origin: str = "[worker]"
) -> NodeOptions:
    """Options from ``given`` (command line or env; None means not given), else ``table``."""
    values: dict[str, Any] = {}
    for key, raw in (table or {}).items():
        name = _TABLE_NAMES.get(str(key))
        if name is None:
            known = ", ".join(sorted(n.replace("_", "-") for n in _PARSERS))
            raise NodeOptionError(f"unknown setting {key!r} in {origin}", hint=f"known: {known}")
        values[name] = _PARSERS[name](raw)
    for name, raw in given.items():
        if name not in _PARSERS:
            raise NodeOptionError(f"unknown node option {name!r}")
        if raw is not None and raw != ():
            values[name] = _PARSERS[name](raw)
    known_fields = {f.name for f in fields(NodeOptions)}
    options = NodeOptions(**{k: v for k, v in values.items() if k in known_fields})
    if options.once and options.max_idle is not None:
        raise NodeOptionError("--once and --max-idle exclude each other: choose one")
    return options
