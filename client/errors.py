"""Errors of `blindframe.client`."""

from __future__ import annotations

from blindframe.errors import BlindframeError

__all__ = ["ClientError"]


class ClientError(BlindframeError):
    """Root of every error raised by ``blindframe.client``."""
