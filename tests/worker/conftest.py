"""Fixtures of the render-node suite: real IPFS nodes, a client that uploads real encrypted jobs,
worker accounts in real keystores, and render nodes run as real processes with JSON logs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.node_process import NodeProcess
from worker_helpers import (
    KERNEL,
    Assets,
    Client,
    Home,
    Ipfs,
    make_home,
)

from blindframe.coordinator.manifest import ContentRef
from blindframe.coordinator.market import Market
from blindframe.coordinator.store import IpfsStore
from blindframe.deploy.ipfs import start_node

if TYPE_CHECKING:
    from tests.conftest import Chain, VolumeJob


@pytest.fixture(scope="session")
def ipfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ipfs]:
    handles = [start_node(tmp_path_factory.mktemp(f"ipfs-{n}")) for n in range(4)]
    try:
        for i, handle in enumerate(handles):
            with IpfsStore(handle.api_url) as store:
                for other in handles[i + 1 :]:
                    store.connect(other.multiaddrs[0])
        yield Ipfs(client=handles[0], workers=handles[1:])
    finally:
        for handle in handles:
            handle.stop()
        for handle in handles:
            shutil.rmtree(handle.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def fft_plan() -> str:
    """The FFT plan of the suite's jobs, chosen like a client does (the most common plan of 16
    fresh processes here)."""
    from blindframe.fhe_core.plans import choose_plan

    return choose_plan(KERNEL)


@pytest.fixture(scope="session")
def assets(volume_job: VolumeJob, ipfs: Ipfs, fft_plan: str) -> Assets:
    from blindframe.fhe_core.artist_jobs import encrypt_volume_job
    from blindframe.fhe_core.client import KernelClient
    from blindframe.fhe_core.sample import SAMPLE_CAMERA, sample_volume

    small = encrypt_volume_job(
        KernelClient(KERNEL, volume_job.key_dir),
        sample_volume(),
        SAMPLE_CAMERA,
        (8, 8),
        margin_tiles=0,
    )
    with IpfsStore(ipfs.client.api_url) as store:
        keys = ContentRef(store.add_bytes(volume_job.eval_keys).cid, len(volume_job.eval_keys))
        input4 = ContentRef(
            store.add_bytes(volume_job.input_bundle).cid, len(volume_job.input_bundle)
        )
        input1 = ContentRef(store.add_bytes(small.inputs[0]).cid, len(small.inputs[0]))
    out = Assets(
        key_dir=volume_job.key_dir,
        public4=volume_job.public,
        secrets4=volume_job.secrets,
        manifest4="",
        public1=small.public,
        secrets1=small.secrets,
        manifest1="",
        eval_keys=keys,
        input1=input1,
        client_api=ipfs.client.api_url,
        fft_plan=fft_plan,
    )
    out.manifest4 = out.manifest(volume_job.public, [input4])
    out.manifest1 = out.manifest(small.public, [input1])
    return out


@pytest.fixture
def home(tmp_path: Path, fresh_chain: Chain) -> Home:
    return make_home(tmp_path / "home", fresh_chain)


@pytest.fixture
def client(fresh_chain: Chain) -> Client:
    account = fresh_chain.account(100)
    return Client(
        account, Market(fresh_chain.w3, fresh_chain.deployment, sender=fresh_chain.sender(account))
    )


@pytest.fixture
def run_node(home: Home, ipfs: Ipfs, tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    """Start render nodes (one IPFS node each); every one still running is killed after."""
    started: list[NodeProcess] = []

    def start(
        name: str, *extra: str, ipfs_index: int = 0, data_dir: Path | None = None
    ) -> NodeProcess:
        log_path = tmp_path / f"{name}-{len(started)}.log"
        argv = [
            sys.executable,
            "-m",
            "blindframe",
            "worker",
            "run",
            "--account",
            name,
            "--password-file",
            str(home.password_file),
            "--keystore-dir",
            str(home.keystores),
            "--rpc",
            home.rpc_url,
            "--deployment",
            str(home.deployment),
            "--ipfs-api",
            ipfs.workers[ipfs_index].api_url,
            "--kernels",
            KERNEL,
            "--data-dir",
            str(data_dir or tmp_path / f"data-{name}"),
            "--poll",
            "0.3",
            "--json-log",
            *extra,
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv,
                env=home.env(),
                cwd=tmp_path,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        node = NodeProcess(name, process, log_path)
        started.append(node)
        return node

    yield start
    for node in started:
        node.kill()
