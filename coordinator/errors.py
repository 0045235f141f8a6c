"""Errors of the coordinator: chain, transactions, events, IPFS store, configuration."""

from __future__ import annotations

from blindframe.errors import BlindframeError

__all__ = ["ConfigError", "CoordinatorError"]


class CoordinatorError(BlindframeError):
    """Root of every error raised by ``blindframe.coordinator``."""


class ConfigError(CoordinatorError, ValueError):
    """A config file, environment variable or option has a value that cannot be used."""
