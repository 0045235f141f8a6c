"""Errors of `blindframe.deploy`."""

from __future__ import annotations

from blindframe.errors import BlindframeError

__all__ = ["DeployError"]


class DeployError(BlindframeError):
    """Root of every error raised by ``blindframe.deploy``."""
