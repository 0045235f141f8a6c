"""Child targets that misbehave on purpose, for the sandbox tests (run only in a child)."""

from __future__ import annotations

import ctypes
import time
from typing import Any


def segfault(payload: dict[str, Any]) -> dict[str, Any]:
    """Read address 0 from native code."""
    ctypes.string_at(0)
    return {}


def hog_memory(payload: dict[str, Any]) -> dict[str, Any]:
    """Allocate far more than the limit."""
    blocks = [bytearray(256 << 20) for _ in range(int(payload["blocks"]))]
    return {"blocks": len(blocks)}


def sleep(payload: dict[str, Any]) -> dict[str, Any]:
    """Take longer than the time limit."""
    time.sleep(float(payload["seconds"]))
    return {}


def fail(payload: dict[str, Any]) -> dict[str, Any]:
    """Raise a Python error."""
    raise ValueError(payload["message"])


def echo(payload: dict[str, Any]) -> dict[str, Any]:
    """Return the payload."""
    return payload
