"""Errors of `blindframe.client`: what went wrong on the artist's side, and what to do about it."""

from __future__ import annotations

from blindframe.errors import BlindframeError

__all__ = [
    "ClientError",
    "ConfirmationError",
    "CostLimitError",
    "FrameFormatError",
    "InsufficientFundsError",
    "JobExpiredError",
    "JobNotFoundError",
    "JobOptionsError",
    "JobStateError",
    "RenderTimeoutError",
    "ResultUnavailableError",
]


class ClientError(BlindframeError):
    """Root of every error raised by ``blindframe.client``."""


class FrameFormatError(ClientError, ValueError):
    """A frame format (``--format``, an output file's extension) that cannot be written."""


class JobOptionsError(ClientError, ValueError):
    """A job option (kernel, frame size, reward, durations, canaries...) that cannot be used."""


class InsufficientFundsError(ClientError, ValueError):
    """The account cannot pay the escrow (and the gas, or a bond) it is asked to."""


class CostLimitError(ClientError, ValueError):
    """The job's quote is above the limit the artist set (``--max-cost``); nothing was posted."""


class ConfirmationError(ClientError, RuntimeError):
    """The post was not confirmed (declined, or no terminal to ask on); nothing was posted."""


class JobNotFoundError(ClientError, FileNotFoundError):
    """No job directory for the job asked for (this home did not post it, or it was deleted)."""


class JobStateError(ClientError, RuntimeError):
    """The job is not in a state that allows the action yet (or any more)."""


class ResultUnavailableError(ClientError, RuntimeError):
    """A tile has no verified result to decrypt yet."""


class JobExpiredError(ClientError, TimeoutError):
    """The job's deadline passed before every tile was rendered and verified."""


class RenderTimeoutError(ClientError, TimeoutError):
    """``render`` waited longer than it was allowed to."""
