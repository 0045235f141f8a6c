"""The local node answers Python's ``ipfshttpclient`` (the client the design names) like Kubo."""

from __future__ import annotations

import gzip
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import ipfshttpclient
import pytest

from blindframe.coordinator.store import kubo_cid_of_bytes
from blindframe.deploy.ipfs import NodeHandle


@pytest.fixture
def client(node_a: NodeHandle) -> Iterator[ipfshttpclient.Client]:
    # `ipfshttpclient.connect()` refuses every Kubo since 0.8 by its version check: build the
    # client directly, as its README says for newer daemons.
    with ipfshttpclient.Client(f"/ip4/127.0.0.1/tcp/{node_a.api_port}/http") as api:
        yield api


def test_add_cat_get_ls(client: ipfshttpclient.Client, tmp_path: Path) -> None:
    # Three chunks (256 KiB each): `ls` lists them, `get` reassembles them from the tar stream.
    data = bytes(range(256)) * 3000
    source = tmp_path / "scene.bin"
    source.write_bytes(data)
    added = client.add(str(source))  # sends raw-leaves=False, pin=True as Python spells them
    assert added["Name"] == "scene.bin"
    assert added["Hash"] == str(kubo_cid_of_bytes(data))
    assert client.cat(added["Hash"]) == data
    assert client.cat(added["Hash"], offset=10, length=5) == data[10:15]

    client.get(added["Hash"], target=str(tmp_path / "got"))
    assert (tmp_path / "got" / added["Hash"]).read_bytes() == data
    client.get(added["Hash"], target=str(tmp_path / "gz"), compress=True)
    assert (tmp_path / "gz" / added["Hash"]).read_bytes() == data

    (listed,) = client.ls(added["Hash"])["Objects"]
    assert listed["Hash"] == added["Hash"]
    assert [(link["Size"], link["Type"], link["Name"]) for link in listed["Links"]] == [
        (262144, 2, ""),
        (262144, 2, ""),
        (len(data) - 2 * 262144, 2, ""),
    ]
    stat = client.object.stat(added["Hash"])
    assert (stat["NumLinks"], stat["CumulativeSize"]) == (3, int(added["Size"]))


def test_get_is_a_tar_stream_like_kubo(
    node_a: NodeHandle, client: ipfshttpclient.Client, tmp_path: Path
) -> None:
    # Read the raw body too: one ustar entry named after the CID, then the end-of-archive blocks.
    cid = client.add_bytes(b"tile 7\n")
    url = f"{node_a.api_url}/api/v0/get?arg={cid}&archive=true&compress=true"
    body = httpx.post(url, timeout=30).content
    archive = tmp_path / "tile.tar"
    archive.write_bytes(gzip.decompress(body))
    with tarfile.open(archive) as tar:
        (member,) = tar.getmembers()
        assert (member.name, member.size, member.isfile()) == (cid, 7, True)


def test_pins(client: ipfshttpclient.Client) -> None:
    cid = client.add_bytes(b"pin me\n", opts={"pin": False})  # sent as pin=False
    assert cid not in client.pin.ls(type="recursive")["Keys"]
    assert client.pin.add(cid)["Pins"] == [cid]
    assert client.pin.ls(cid)["Keys"] == {cid: {"Type": "recursive"}}
    assert cid in client.pin.ls()["Keys"]
    assert client.pin.rm(cid)["Pins"] == [cid]
    assert cid not in client.pin.ls()["Keys"]


def test_id_and_version(node_a: NodeHandle, client: ipfshttpclient.Client) -> None:
    assert client.id()["ID"] == node_a.peer_id
    version = client.version()
    # ipfshttpclient's version check splits "Version" on dots into integers: it must parse.
    assert all(part.isdigit() for part in version["Version"].split("."))
    assert version["Agent"].startswith("blindframe-node/helia-")


def test_kubo_spellings_of_booleans(node_a: NodeHandle, client: ipfshttpclient.Client) -> None:
    cid = client.add_bytes(b"spelled\n")
    pin_add = f"{node_a.api_url}/api/v0/pin/add?arg={cid}&recursive="
    for spelling in ("True", "true", "1", "t", "TRUE"):
        assert httpx.post(pin_add + spelling, timeout=30).status_code == 200, spelling
    for spelling in ("False", "false", "0", "f"):
        refused = httpx.post(pin_add + spelling, timeout=30)
        assert refused.json()["Message"] == "only recursive pins are supported here", spelling
    bad = httpx.post(pin_add + "yes", timeout=30)
    assert bad.status_code == 400
    assert bad.json()["Message"] == 'option "recursive" must be true or false (not "yes")'
