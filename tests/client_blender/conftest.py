"""Fixtures of the Blender add-on suite: a real render stack (Anvil, IPFS, a staked render node as a
process, the artist's keys) and the add-on installed into bpy from the zip its command builds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.render_stack import KERNEL, RenderStack, start_render_stack


@pytest.fixture(scope="module")
def render_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RenderStack]:
    """Anvil + IPFS from `stack_up`, one render node process (capacity 4), volume@1 keys."""
    stack = start_render_stack(tmp_path_factory.mktemp("blender-stack"), nodes=1, capacity=4)
    try:
        with stack.artist() as artist:
            artist.keygen(KERNEL, upload=True)
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def addon_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The extension zip, built by its command in a separate process."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("addon") / "blindframe-addon.zip"
    done = subprocess.run(
        [sys.executable, "-m", "blindframe.client.blender.package", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"built {out}" in done.stdout
    return out
