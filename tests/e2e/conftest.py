"""The render stack the end-to-end modules share: starting one (Anvil, the IPFS nodes, the
market, the artist's volume@1 keys) costs the suite time, so jobs that do not get in each other's
way run on this one, one after the other. Tests that need a market of their own (other
parameters, nodes that must not be drawn as jurors) start their own stack."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from support.render_stack import RenderStack, start_render_stack

if TYPE_CHECKING:
    from collections.abc import Iterator

# Replicas are compared by the nodes inside the challenge window: long enough to fetch a
# replica's result and rebuild its trees on a loaded 2-core machine.
SHARED_WINDOWS = {"challengeWindow": 30, "acceptanceWindow": 60}
# IPFS nodes for the render nodes tests add later (named like them); node-0 and node-1 get
# theirs from start_render_stack.
SHARED_IPFS = ("honest", "lazy", "breaker")


@pytest.fixture(scope="package")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RenderStack]:
    """Two honest volume@1 nodes (node-0, node-1: capacity 32) on a market with short windows.
    A test that adds nodes, or retires these, leaves the stack as the next test expects it: it
    withdraws what it earned, and it retires (:meth:`RenderStack.retire`) the nodes it is done
    with when a later test could otherwise draw them as jurors."""
    stack = start_render_stack(
        tmp_path_factory.mktemp("e2e-shared"),
        nodes=2,
        capacity=32,
        ipfs_nodes=SHARED_IPFS,
        windows=SHARED_WINDOWS,
    )
    try:
        yield stack
    finally:
        stack.close()
