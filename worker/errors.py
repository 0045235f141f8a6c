"""Errors of `blindframe.worker`."""

from __future__ import annotations

from blindframe.errors import BlindframeError

__all__ = ["WorkerError"]


class WorkerError(BlindframeError):
    """Root of every error raised by ``blindframe.worker``."""
