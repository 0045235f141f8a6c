"""Errors of the render kernels, keys and wire formats."""

from __future__ import annotations

from blindframe.errors import BlindframeError

__all__ = [
    "BundleFormatError",
    "BundleMismatchError",
    "FheCoreError",
    "KeyStoreError",
    "ParameterError",
    "SandboxError",
    "TwinMismatchError",
    "UnknownKernelError",
]


class FheCoreError(BlindframeError):
    """Root of every error raised by ``blindframe.fhe_core``."""


class UnknownKernelError(FheCoreError, ValueError):
    """A kernel id that the registry does not know."""


class ParameterError(FheCoreError, ValueError):
    """Public parameters (camera, lights, filter taps, shapes) out of the kernel's bounds."""


class BundleFormatError(FheCoreError, ValueError):
    """Bytes that claim to be a bundle or a Concrete value but are not well formed."""


class BundleMismatchError(FheCoreError, ValueError):
    """A well-formed bundle meant for another kernel, version, key set or bundle kind."""


class KeyStoreError(FheCoreError, FileNotFoundError):
    """A key directory that is missing, incomplete or unsafe (permissions)."""


class SandboxError(FheCoreError, RuntimeError):
    """The isolated child that runs a kernel crashed, ran out of memory or of time."""


class TwinMismatchError(FheCoreError, ValueError):
    """A decrypted result that differs from what the plaintext twin computes."""
