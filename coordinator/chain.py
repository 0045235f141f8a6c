"""Connecting to an Ethereum JSON-RPC endpoint, with retries and errors that say what to do."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import requests
from web3 import Web3
from web3.exceptions import Web3RPCError

from blindframe.coordinator.errors import ChainMismatchError, RpcUnreachableError

__all__ = ["TRANSIENT_ERRORS", "block_gone", "connect", "with_retries"]

T = TypeVar("T")

# Errors worth another try: the node restarted, the network hiccuped, the provider throttled.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    ConnectionError,
    TimeoutError,
)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        return exc.response.status_code in (429, 502, 503, 504)
    if isinstance(exc, Web3RPCError):
        message = str(exc).lower()
        return "rate limit" in message or "too many requests" in message
    return False


# How nodes say a read named a block they no longer have: a reorganisation (or Anvil's revert)
# happened between reading the head and the read.
_BLOCK_GONE = ("blockoutofrange", "header not found", "unknown block", "block not found")


def block_gone(exc: BaseException) -> bool:
    """Whether ``exc`` is the RPC refusing a read at a block the chain no longer has."""
    return isinstance(exc, Web3RPCError) and any(words in str(exc).lower() for words in _BLOCK_GONE)


def with_retries(
    call: Callable[[], T],
    *,
    what: str,
    endpoint: str,
    attempts: int = 5,
    first_delay: float = 0.25,
) -> T:
    """Run ``call``; on a transient error wait (doubling each time) and try again.

    After ``attempts`` failures, raise RpcUnreachableError naming ``endpoint``.
    """
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            if not _is_transient(exc):
                raise
            if attempt == attempts:
                raise RpcUnreachableError(
                    f"cannot reach the Ethereum RPC at {endpoint} while trying to {what} "
                    f"({attempts} attempts: {type(exc).__name__})",
                    hint="is the node running? `blindframe stack up` starts a local one; "
                    "otherwise check --rpc / BLINDFRAME_RPC_URL",
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")


def connect(
    rpc_url: str,
    *,
    expected_chain_id: int | None = None,
    timeout: float = 30.0,
    attempts: int = 5,
) -> Web3:
    """A Web3 on ``rpc_url`` whose chain id was read (and checked when ``expected_chain_id``)."""
    if not rpc_url.startswith(("http://", "https://")):
        raise RpcUnreachableError(
            f"unsupported RPC URL {rpc_url!r}", hint="use an http:// or https:// JSON-RPC endpoint"
        )
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    chain_id = with_retries(
        lambda: int(w3.eth.chain_id), what="read the chain id", endpoint=rpc_url, attempts=attempts
    )
    if expected_chain_id is not None and chain_id != expected_chain_id:
        raise ChainMismatchError(
            f"the RPC at {rpc_url} serves chain {chain_id}, expected chain {expected_chain_id}",
            hint="point --rpc at the right network or pass the chain id it really has",
        )
    return w3
