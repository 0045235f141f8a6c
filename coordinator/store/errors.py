"""Errors of the IPFS store: unreachable node, missing content, bytes that fail their CID."""

from __future__ import annotations

from blindframe.coordinator.errors import CoordinatorError

__all__ = [
    "ContentIntegrityError",
    "ContentNotFoundError",
    "ContentTooLargeError",
    "InvalidCidError",
    "StoreConnectionError",
    "StoreError",
    "StoreResponseError",
    "UnsupportedContentError",
]

_START_HINT = (
    "start the local node with `blindframe stack up`, or point ipfs_api "
    "(BLINDFRAME_IPFS_API) at a running Kubo RPC API"
)


class StoreError(CoordinatorError):
    """Root of the errors raised by ``blindframe.coordinator.store``."""


class InvalidCidError(StoreError, ValueError):
    """A CID that cannot be parsed, or uses a codec or hash the store does not verify."""


class StoreConnectionError(StoreError, ConnectionError):
    """The node's RPC API did not answer, even after retrying with backoff."""

    def __init__(self, api_url: str, attempts: int, waited: float, cause: str) -> None:
        self.api_url = api_url
        super().__init__(
            f"cannot reach the IPFS RPC API at {api_url} "
            f"({attempts} attempts over {waited:.1f} s; last error: {cause})",
            hint=_START_HINT,
        )


class ContentNotFoundError(StoreError, TimeoutError):
    """No node provided the content within the bounded wait."""

    def __init__(self, cid: str, api_url: str, waited: float) -> None:
        self.cid = cid
        super().__init__(
            f"content {cid} was not found within {waited:.0f} s by the IPFS node at {api_url}",
            hint="check that a node holding it is running and connected to this one "
            "(swarm connect), or wait longer (find_timeout)",
        )


class ContentIntegrityError(StoreError, ValueError):
    """Bytes that do not match their CID, or a DAG whose sizes contradict themselves: rejected."""


class ContentTooLargeError(StoreError, ValueError):
    """Content larger than the caller accepts (checked before and while downloading)."""


class UnsupportedContentError(StoreError, ValueError):
    """A valid DAG that is not a single UnixFS file (a directory, a symlink, another codec)."""


class StoreResponseError(StoreError, RuntimeError):
    """The node answered, with an error or with something that is not Kubo's RPC format."""
