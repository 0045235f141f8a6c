"""The root of every blindframe exception: the CLI turns these into a one-line message."""

from __future__ import annotations

__all__ = ["BlindframeError"]


class BlindframeError(Exception):
    """A problem the user can act on: what is wrong, then what to do about it.

    Each package (``fhe_core``, ``coordinator``, ``worker``, ``client``, ``deploy``) has one root
    exception that subclasses this one; its subclasses also inherit the matching builtin
    (``ValueError``, ``FileNotFoundError``, ``ConnectionError``...) so callers can catch either.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")

    def as_dict(self) -> dict[str, str]:
        """The error as ``--json`` output shows it."""
        out = {"error": type(self).__name__, "message": self.message}
        if self.hint is not None:
            out["hint"] = self.hint
        return out
