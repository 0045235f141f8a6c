"""Keygen and post: keys stay private, a posted job matches its manifest and uploads, and bad
input leaves nothing on chain (no JobPosted) with a one-line error."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from blindframe.client.artist import JobOptions
from blindframe.client.errors import InsufficientFundsError
from blindframe.coordinator.market import Market
from blindframe.coordinator.store import IpfsStore
from blindframe.deploy.processes import free_port
from blindframe.fhe_core.artist_jobs import JobSecrets
from blindframe.fhe_core.jobs import PublicJob
from blindframe.fhe_core.kernels import client_spec_hash
from blindframe.fhe_core.merkle import leaf_depth

from .conftest import KERNEL, Home, one_line_error, run_cli

if TYPE_CHECKING:
    from tests.conftest import Chain

SMALL = ["--scene", "sample", "--size", "16x16", "--canaries", "0", "--reward", "0.001"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keygen_keeps_secret_keys_private_and_remembers_the_upload(keys_home: Path) -> None:
    keys = keys_home / "keys"
    assert _mode(keys) == 0o700
    assert _mode(keys / KERNEL) == 0o700
    assert _mode(keys / KERNEL / "keyset.bin") == 0o600
    memo = json.loads((keys / KERNEL / "uploads.json").read_text())
    assert memo["cid"].startswith("Qm")
    # Again: the key set is kept, not regenerated, and its evaluation-key CID is reported.
    before = (keys / KERNEL / "keyset.bin").read_bytes()
    code, out, err = run_cli(["--json", "client", "keygen"], {"BLINDFRAME_HOME": str(keys_home)})
    assert code == 0, err
    (again,) = json.loads(out)
    assert again["created"] is False
    assert again["evaluationKeysCid"] == memo["cid"]
    assert (keys / KERNEL / "keyset.bin").read_bytes() == before


def test_post_uploads_and_posts_a_job_matching_its_manifest(
    chain: Chain, make_home: Callable[..., Home]
) -> None:
    home = make_home(chain)
    # Defaults from the config's [client] table, the environment over it, the command line
    # over both.
    config = home.path / "blindframe.toml"
    config.write_text('[client]\nreplication = 2\npriority = 3\nlease-length = "5m"\n')
    env = {**home.env, "BLINDFRAME_CONFIG": str(config), "BLINDFRAME_CLIENT_PRIORITY": "7"}
    code, out, err = run_cli(["--json", "client", "post", *SMALL, "--lease-length", "4m"], env)
    assert code == 0, err
    posted = json.loads(out)
    market = Market(chain.w3, chain.deployment)
    job = market.job(posted["jobId"])

    directory = Path(posted["directory"])
    assert directory.name == f"31337-{market.address.lower()}-{posted['jobId']}"
    assert _mode(directory) == 0o700
    assert _mode(directory / "secrets.npz") == 0o600
    manifest_bytes = (directory / "manifest.json").read_bytes()

    with IpfsStore(home.settings.ipfs_api) as store:
        # What is on IPFS is exactly the manifest kept, and the manifest names real uploads.
        assert store.cat(posted["manifestCid"]) == manifest_bytes
        from blindframe.coordinator.manifest import Manifest

        manifest = Manifest.parse(manifest_bytes)
        assert store.stat(manifest.inputs[0].cid).size == manifest.inputs[0].size
        assert store.stat(manifest.evaluation_keys.cid).size == manifest.evaluation_keys.size
        assert manifest.evaluation_keys.cid == posted["evaluationKeysCid"]
    manifest.check_against_chain(
        kernel=job.kernel, tile_count=job.tileCount, leaf_depth=job.leafDepth
    )
    assert manifest.client_spec_hash == client_spec_hash(KERNEL)
    assert job.client == home.account.address
    assert (job.tileCount, job.replication, job.priority, job.leaseLength) == (4, 2, 7, 240)
    assert job.leafDepth == leaf_depth(KERNEL)
    assert job.rewardPerTileReplica == 10**15
    assert job.escrow == 4 * 2 * 10**15 == int(posted["escrow"])
    assert job.deadline == posted["deadline"]
    from eth_utils.crypto import keccak

    assert job.manifestHash == keccak(posted["manifestCid"].encode())

    # Nothing secret went up: the public job says which tasks there are, not which are canaries.
    public = PublicJob.from_json(manifest.job)
    secrets = JobSecrets.load(directory / "secrets.npz")
    assert public.tasks == len(secrets.tasks) == 4
    assert set(manifest.job) == {"kernel", "params", "frame", "tasks", "shared_input"}
    assert set(manifest.job["params"]) == {"yaw", "pitch", "zoom"}
    assert secrets.volume is not None

    # A directory left pending (a crash after postJob, before the rename) is adopted from the
    # JobPosted event; the job is listed with its state read from the chain.
    directory.rename(directory.with_name(f"pending-{posted['manifestCid']}"))
    code, out, err = run_cli(["--json", "client", "jobs"], home.env)
    assert code == 0, err
    (listed,) = json.loads(out)
    assert listed["jobId"] == posted["jobId"]
    assert listed["phase"] == "rendering"
    assert listed["tileStates"]["open"] == 4
    assert listed["pending"] is False
    assert directory.is_dir()
    code, out, err = run_cli(["client", "status"], home.env)
    assert code == 0, err
    assert out.startswith(f"job {posted['jobId']}: claimed 0/8")

    config.write_text("[client]\ncolour = 3\n")
    code, _out, err = run_cli(["client", "post", *SMALL], env)
    assert "unknown setting 'colour' in [client]" in one_line_error(code, err)


@pytest.mark.parametrize(
    ("args", "env_change", "message"),
    [
        (["--kernel", "teapot@1"], {}, "unknown kernel 'teapot@1'"),
        (["--scene", "missing.glb"], {}, "missing.glb"),
        (["--scene", "broken.npz"], {}, "not a scene file"),
        (["--size", "12x12"], {}, "volume frames are whole 8x8 tiles"),
        (["--deadline", "5m", "--lease-length", "10m"], {}, "leaves no room for one lease"),
        (["--lease-length", "2h", "--deadline", "3h"], {}, "at most 1h"),
        ([], {"BLINDFRAME_RPC_URL": "http://127.0.0.1:{port}"}, "cannot reach the Ethereum RPC"),
        ([], {"BLINDFRAME_IPFS_API": "http://127.0.0.1:{port}"}, "cannot reach the IPFS RPC API"),
    ],
)
def test_bad_input_posts_nothing(
    chain: Chain,
    make_home: Callable[..., Home],
    tmp_path: Path,
    args: list[str],
    env_change: dict[str, str],
    message: str,
) -> None:
    home = make_home(chain)
    (tmp_path / "broken.npz").write_bytes(b"not a zip archive")
    env = {**home.env, **{k: v.format(port=free_port()) for k, v in env_change.items()}}
    before = Market(chain.w3, chain.deployment).counts()
    code, _out, err = run_cli(["client", "post", *SMALL, *args], env)
    line = one_line_error(code, err)
    assert message in line
    assert Market(chain.w3, chain.deployment).counts() == before
    jobs = home.path / "jobs"
    assert not jobs.exists() or not any(jobs.iterdir())


def test_too_little_balance_is_refused_before_encrypting(
    chain: Chain, make_home: Callable[..., Home]
) -> None:
    # Enough for the gas, not for 4 tiles x 0.001 ETH of escrow.
    home = make_home(chain, wei=3 * 10**15)
    before = Market(chain.w3, chain.deployment).counts()
    code, _out, err = run_cli(["client", "post", *SMALL], home.env)
    line = one_line_error(code, err)
    assert "holds 0.003 ETH" in line
    assert "needs 0.004 ETH" in line
    assert Market(chain.w3, chain.deployment).counts() == before
    # The library says the same with a typed error, and never reached the encryption step.
    steps: list[str] = []
    with pytest.raises(InsufficientFundsError):
        home.artist().post(
            "sample",
            JobOptions(frame=(16, 16), canaries=0, reward_wei=10**15),
            progress=lambda step, done, total: steps.append(step),
        )
    assert steps == []
    assert Market(chain.w3, chain.deployment).counts() == before


def test_the_client_group_holds_every_command() -> None:
    code, out, err = run_cli(["client", "--help"], {})
    assert code == 0, err
    commands = ["keygen", "quote", "post", "status", "watch", "verify", "settle", "fetch"]
    commands += ["decrypt"]
    commands += ["dispute", "cancel", "refund", "withdraw", "render", "jobs", "import"]
    for command in commands:
        assert f"  {command} " in out, command
    code, out, err = run_cli(["client", "import", "--help"], {})
    assert code == 0, err
    assert "glTF" in out


def test_errors_are_one_line_in_a_real_process(tmp_path: Path) -> None:
    env = {**os.environ, "BLINDFRAME_HOME": str(tmp_path / "home")}
    env.pop("BLINDFRAME_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "blindframe", "client", "post", "--scene", "sample", "--size", "7"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    line = one_line_error(result.returncode, result.stderr)
    assert "no account" in line or "name the account" in line
