"""Errors of `blindframe.worker`."""

from __future__ import annotations

from blindframe.errors import BlindframeError

__all__ = [
    "NodeOptionError",
    "NodeStateError",
    "NotStakedError",
    "WorkerError",
]


class WorkerError(BlindframeError):
    """Root of every error raised by ``blindframe.worker``."""


class NodeOptionError(WorkerError, ValueError):
    """A render-node option (command line, ``[worker]`` table, ``BLINDFRAME_WORKER_*``) is bad."""


class NotStakedError(WorkerError, RuntimeError):
    """The node's account has no (or too little) stake for what was asked."""


class NodeStateError(WorkerError, RuntimeError):
    """The node's state database belongs to another account or market, or cannot be used."""
