"""Errors of the coordinator: configuration, accounts, chain access, transactions."""

from __future__ import annotations

from blindframe.errors import BlindframeError

__all__ = [
    "ChainMismatchError",
    "ConfigError",
    "ContractRevertError",
    "CoordinatorError",
    "DeploymentError",
    "KeystoreError",
    "KeystorePasswordError",
    "LeaseResultError",
    "ManifestError",
    "RpcUnreachableError",
    "TransactionError",
]


class CoordinatorError(BlindframeError):
    """Root of every error raised by ``blindframe.coordinator``."""


class ConfigError(CoordinatorError, ValueError):
    """A config file, environment variable or option has a value that cannot be used."""


class KeystoreError(CoordinatorError, ValueError):
    """An account keystore is missing, unreadable or ambiguous."""


class KeystorePasswordError(KeystoreError, PermissionError):
    """The password does not decrypt the keystore."""


class RpcUnreachableError(CoordinatorError, ConnectionError):
    """The Ethereum JSON-RPC endpoint does not answer."""


class ChainMismatchError(CoordinatorError, ValueError):
    """The endpoint serves another chain than the one expected."""


class DeploymentError(CoordinatorError, ValueError):
    """The deployment file is missing, malformed, or does not match the chain."""


class TransactionError(CoordinatorError, RuntimeError):
    """A transaction could not be sent or was not mined."""


class ContractRevertError(TransactionError):
    """The contract rejected a call; ``name`` and ``args`` are its custom error, decoded."""

    def __init__(
        self,
        message: str,
        *,
        name: str | None = None,
        args: dict[str, object] | None = None,
        hint: str | None = None,
    ) -> None:
        self.name = name
        self.error_args = dict(args or {})
        super().__init__(message, hint=hint)


class ManifestError(CoordinatorError, ValueError):
    """A job manifest is malformed or does not match its job on chain."""


class LeaseResultError(CoordinatorError, ValueError):
    """A lease result is malformed or does not give the root its worker revealed."""
