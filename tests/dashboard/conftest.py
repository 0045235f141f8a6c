"""Fixtures of the dashboard suite: a real render stack (Anvil, IPFS, two staked render nodes as
processes, the artist's keys) and headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright
from support.render_stack import KERNEL, RenderStack, start_render_stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def render_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RenderStack]:
    """Anvil + IPFS from `stack_up`, two render nodes of capacity 2 each, volume@1 keys."""
    stack = start_render_stack(tmp_path_factory.mktemp("dashboard-stack"), nodes=2, capacity=2)
    try:
        with stack.artist() as artist:
            artist.keygen(KERNEL, upload=True)
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Chromium from the system (never a downloaded one)."""
    instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield instance
    instance.close()
