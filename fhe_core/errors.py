"""Errors of the render kernels, keys and wire formats."""

from __future__ import annotations

from blindframe.errors import BlindframeError

__all__ = ["FheCoreError"]


class FheCoreError(BlindframeError):
    """Root of every error raised by ``blindframe.fhe_core``."""
