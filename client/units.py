"""Amounts and durations as artists type them: ``0.001`` ETH, ``90s``, ``10m``, ``2h``, ``1d``."""

from __future__ import annotations

import re
from decimal import Decimal

from blindframe.client.errors import JobOptionsError
from blindframe.units import WEI_PER_ETH, format_eth
from blindframe.units import parse_eth as _parse_eth

__all__ = ["WEI_PER_ETH", "format_duration", "format_eth", "parse_duration", "parse_eth"]

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_eth(text: str | int | float | Decimal, what: str = "amount") -> int:
    """ETH (decimal, at most 18 places) -> wei; JobOptionsError for anything else."""
    return _parse_eth(text, what, error=JobOptionsError)


def parse_duration(text: str | int, what: str = "duration") -> int:
    """``90``, ``90s``, ``10m``, ``2h`` or ``1d`` -> seconds (> 0)."""
    if isinstance(text, int) and not isinstance(text, bool):
        seconds = text
    else:
        match = _DURATION.match(str(text))
        if match is None:
            raise JobOptionsError(
                f"{what} must be a duration such as 90s, 10m, 2h or 1d (not {text!r})"
            )
        seconds = int(match[1]) * _UNIT_SECONDS[match[2] or "s"]
    if seconds <= 0:
        raise JobOptionsError(f"{what} must be longer than 0 seconds (not {text!r})")
    return seconds


def format_duration(seconds: int) -> str:
    """Seconds as a short human duration (``1h 5m``, ``42s``)."""
    seconds = int(seconds)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    if seconds or not parts:
        parts.append(f"{seconds}s")
    return " ".join(parts[:2])
