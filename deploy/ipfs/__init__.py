"""The local stack's IPFS node (Helia on Node 22, Kubo RPC subset): start, find, stop."""

from __future__ import annotations

from blindframe.deploy.ipfs.node import (
    IpfsNodeError,
    NodeAlreadyRunningError,
    NodeHandle,
    NodePortInUseError,
    NodeRuntimeMissingError,
    NodeStartTimeoutError,
    node_runtime,
    running_node,
    start_node,
    stop_node,
)

__all__ = [
    "IpfsNodeError",
    "NodeAlreadyRunningError",
    "NodeHandle",
    "NodePortInUseError",
    "NodeRuntimeMissingError",
    "NodeStartTimeoutError",
    "node_runtime",
    "running_node",
    "start_node",
    "stop_node",
]
