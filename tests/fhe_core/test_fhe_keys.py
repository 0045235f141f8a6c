"""Key sets: permissions, completeness, and compilation that is the same in every process."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from blindframe.fhe_core.errors import KeyStoreError
from blindframe.fhe_core.kernels import KERNEL_IDS, client_spec_hash
from blindframe.fhe_core.keys import evaluation_keys_path, generate_keys, key_info


def test_key_files_are_private(key_dir: Path) -> None:
    for kernel_id in KERNEL_IDS:
        info = key_info(kernel_id, key_dir)
        assert stat.S_IMODE((info.directory / "keyset.bin").stat().st_mode) == 0o600
        assert stat.S_IMODE(info.directory.stat().st_mode) == 0o700
        assert info.spec_hash == client_spec_hash(kernel_id)
        assert evaluation_keys_path(kernel_id, key_dir).stat().st_size == info.evaluation_keys_bytes
        assert not evaluation_keys_path(kernel_id, key_dir).read_bytes().count(b"keyset")
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700


def test_unsafe_or_missing_keys_are_refused(tmp_path: Path, key_dir: Path) -> None:
    with pytest.raises(KeyStoreError, match="keygen"):
        key_info("post@1", tmp_path)
    with pytest.raises(KeyStoreError, match="already exists"):
        generate_keys("post@1", key_dir)
    keyset = key_dir / "post@1" / "keyset.bin"
    keyset.chmod(0o644)
    try:
        with pytest.raises(KeyStoreError, match="chmod 600"):
            key_info("post@1", key_dir)
    finally:
        keyset.chmod(0o600)


def test_compilation_is_the_same_in_another_process() -> None:
    """A worker's compilation gives the client's spec hash: checked in a fresh interpreter."""
    code = (
        "import json; from blindframe.fhe_core.kernels import KERNEL_IDS, client_spec_hash;"
        "print(json.dumps({k: client_spec_hash(k) for k in KERNEL_IDS}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    other = json.loads(out.stdout.strip().splitlines()[-1])
    assert other == {k: client_spec_hash(k) for k in KERNEL_IDS}


def test_keys_that_do_not_parse_are_refused_in_the_packages_own_terms() -> None:
    from blindframe.fhe_core import wire
    from blindframe.fhe_core.errors import BundleFormatError
    from blindframe.fhe_core.keys import EVAL_VALUE, read_evaluation_keys

    junk = wire.write_bundle(
        wire.BundleKind.EVAL_KEYS,
        "volume@1",
        client_spec_hash("volume@1"),
        [wire.ValueEntry(EVAL_VALUE, (), b"\x00" * 4096)],
    )
    with pytest.raises(BundleFormatError, match="do not parse as volume@1's"):
        read_evaluation_keys("volume@1", junk)
