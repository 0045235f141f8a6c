"""Progress of the client's long steps, as one callback the CLI, the add-on and the dashboard share.

A step reports ``progress(step, done, total)`` any number of times: ``done`` grows from 0 to
``total`` (``total`` is None when unknown). Units depend on the step: bytes for uploads and
downloads, tiles for encryption, verification and decryption, 0/1 for one-shot steps (keygen,
choosing the job's FFT plan).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = [
    "DECRYPT",
    "DOWNLOAD",
    "ENCRYPT",
    "KEYGEN",
    "PLAN",
    "STEPS",
    "UPLOAD",
    "VERIFY",
    "Progress",
    "no_progress",
]

Progress = Callable[[str, int, "int | None"], None]
"""``progress(step, done, total)``."""

KEYGEN = "keygen"
PLAN = "plan"
ENCRYPT = "encrypt"
UPLOAD = "upload"
DOWNLOAD = "download"
VERIFY = "verify"
DECRYPT = "decrypt"
STEPS: tuple[str, ...] = (KEYGEN, PLAN, ENCRYPT, UPLOAD, DOWNLOAD, VERIFY, DECRYPT)


def no_progress(step: str, done: int, total: int | None) -> None:
    """The default callback: report nothing."""
