"""`client render --retries` and `client retry`: bad input refused in one line before anything
is read from the chain (the retries themselves run end to end in tests/e2e/test_render_e2e.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from blindframe.client.options import DEFAULT_RETRIES, MAX_RETRIES

from .conftest import one_line_error, run_cli

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("retries", ["11", "-1"])
def test_retries_out_of_range_is_a_one_line_error(tmp_path: Path, retries: str) -> None:
    # An RPC URL nothing listens on: the check must come before any connection.
    env = {"BLINDFRAME_HOME": str(tmp_path), "BLINDFRAME_RPC_URL": "http://127.0.0.1:9"}
    code, _out, err = run_cli(
        ["client", "render", "--scene", "sample", f"--retries={retries}"], env
    )
    line = one_line_error(code, err)
    assert f"--retries must be 0..10 (not {retries})" in line
    assert not (tmp_path / "jobs").exists()


def test_render_help_states_the_retry_limits() -> None:
    code, out, err = run_cli(["client", "render", "--help"], {})
    assert code == 0, err
    text = " ".join(out.split())
    assert f"(0..{MAX_RETRIES}, default {DEFAULT_RETRIES})" in text


def test_retry_of_an_unknown_job_says_which_jobs_there_are(tmp_path: Path) -> None:
    env = {"BLINDFRAME_HOME": str(tmp_path)}
    code, _out, err = run_cli(["client", "retry", "1-0x" + "ab" * 20 + "-3"], env)
    line = one_line_error(code, err)
    assert "job 3 (market 0x" in line
    assert "has no directory" in line
