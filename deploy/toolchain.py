"""Where the stack's programs live: the Foundry binaries installed from npm, or PATH."""

from __future__ import annotations

import shutil
from pathlib import Path

from blindframe.coordinator.artifacts import project_root
from blindframe.deploy.errors import DeployError

__all__ = ["foundry_binary"]


def foundry_binary(tool: str) -> Path:
    """``anvil``, ``forge`` or ``cast``: the pinned npm build first, then PATH."""
    try:
        root: Path | None = project_root()
    except Exception:  # noqa: BLE001 - an installed package has no checkout: fall back to PATH
        root = None
    if root is not None:
        pinned = root / "node_modules" / "@foundry-rs" / f"{tool}-linux-amd64" / "bin" / tool
        if pinned.is_file():
            return pinned
    found = shutil.which(tool)
    if found is None:
        raise DeployError(
            f"{tool} is not installed",
            hint="run `make bootstrap` (installs Foundry from npm) or put Foundry's bin on PATH",
        )
    return Path(found)
