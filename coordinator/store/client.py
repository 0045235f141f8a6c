"""One client for every IPFS node blindframe uses: a Kubo daemon, a pinning service, the local node.

All of them serve Kubo's RPC API (``POST /api/v0/<command>``), so one class covers them. It uses
httpx rather than ``ipfshttpclient``: ipfshttpclient 0.7 is unmaintained since 2021, its
``connect()`` refuses every Kubo newer than 0.7, it is untyped, and it gives no control over
streaming bodies, per-request timeouts or retries. httpx is maintained, typed, already a
dependency, streams request and response bodies, and is thread-safe, which lets downloads fetch
several blocks at once.

Trust: the node is not trusted with the content. Downloads walk the file's DAG block by block
(``block/get``) and check each block against the CID that names it before its bytes are written,
so a wrong byte from a faulty disk, a man in the middle or a lying node is rejected, never handed
on; a download is written to a temporary file that is renamed only once complete. Uploads compute
Kubo's CID for the bytes while streaming them and reject a node that answers another one. A node
that drops the connection is retried with backoff; a download then resumes at the block it was
fetching.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import httpx

from blindframe.coordinator.store.cid import Cid
from blindframe.coordinator.store.errors import (
    ContentIntegrityError,
    ContentNotFoundError,
    ContentTooLargeError,
    InvalidCidError,
    StoreConnectionError,
    StoreError,
    StoreResponseError,
)
from blindframe.coordinator.store.unixfs import (
    KUBO_CHUNK_SIZE,
    MAX_BLOCK_SIZE,
    KuboDagBuilder,
    decode_file_block,
)

__all__ = [
    "AddResult",
    "ContentStat",
    "IpfsStore",
    "NodeIdentity",
    "Progress",
    "normalize_api_url",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]
"""Called as ``progress(bytes_done, bytes_total)`` while content moves (total None if unknown)."""

_READ_SIZE = 1024 * 1024
_MAX_DEPTH = 32  # 174**32 blocks: no honest file is deeper
_DEADLINE_WORDS = ("context deadline exceeded", "timed out", "deadline")
_NOT_PINNED_WORDS = ("not pinned",)
_MULTIADDR_API = re.compile(r"^/(ip4|ip6|dns|dns4|dns6)/([^/]+)/tcp/(\d+)(/http)?/?$")


@dataclass(frozen=True)
class AddResult:
    """What an upload produced: the CID (as the node prints it), file bytes, DAG bytes."""

    cid: str
    size: int
    dag_size: int


@dataclass(frozen=True)
class ContentStat:
    """A file's size read from its verified root block, without downloading the rest."""

    cid: str
    size: int
    dag_size: int
    links: int


@dataclass(frozen=True)
class NodeIdentity:
    """Who a node is on libp2p: its peer id and the multiaddrs it listens on."""

    peer_id: str
    addresses: tuple[str, ...]
    agent: str


@dataclass
class _Want:
    cid: Cid
    size: int | None
    depth: int
    future: Future[bytes] | None = None


def normalize_api_url(api: str) -> str:
    """``http://host:port`` from a URL or from Kubo's own ``/ip4/127.0.0.1/tcp/5001`` form."""
    text = api.strip()
    match = _MULTIADDR_API.match(text)
    if match:
        host = f"[{match[2]}]" if match[1] == "ip6" else match[2]
        return f"http://{host}:{match[3]}"
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise StoreError(
            f"IPFS API address must be an http(s) URL or a multiaddr (not {api!r})",
            hint="for example http://127.0.0.1:5001 or /ip4/127.0.0.1/tcp/5001",
        )
    return str(url).rstrip("/")


class IpfsStore:
    """Kubo RPC client: add, get (verified), cat, stat, pin, unpin, and the swarm commands.

    ``retry_for``: how long to retry an unreachable node (exponential backoff) before
    `StoreConnectionError`. ``find_timeout``: how long a node may look for content it does not
    hold before `ContentNotFoundError`. ``parallel``: blocks fetched at once while downloading
    (8 by default: against Helia's bitswap, 16 and more concurrent wants were measured to stall
    for seconds, the node re-asking after 6 s).
    """

    def __init__(
        self,
        api_url: str,
        *,
        retry_for: float = 15.0,
        find_timeout: float = 60.0,
        request_timeout: float = 600.0,
        parallel: int = 8,
    ) -> None:
        if retry_for < 0 or find_timeout <= 0 or request_timeout <= 0:
            raise ValueError("retry_for must be >= 0; find_timeout and request_timeout > 0")
        if not 1 <= parallel <= 64:
            raise ValueError(f"parallel must be 1..64 (not {parallel})")
        self.api_url = normalize_api_url(api_url)
        self.retry_for = retry_for
        self.find_timeout = find_timeout
        self.request_timeout = request_timeout
        self.parallel = parallel
        self._http = httpx.Client(
            base_url=f"{self.api_url}/api/v0/",
            timeout=httpx.Timeout(request_timeout, connect=5.0),
            limits=httpx.Limits(max_connections=parallel + 4, max_keepalive_connections=parallel),
        )

    # -------------------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> IpfsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"IpfsStore({self.api_url!r})"

    # -------------------------------------------------------------------------- upload

    def add_bytes(self, data: bytes, *, pin: bool = True, name: str = "blob") -> AddResult:
        """Upload ``data``; the node's CID must be Kubo's `ipfs add` CID for these bytes."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"add_bytes takes bytes (not {type(data).__name__})")
        payload = bytes(data)

        def chunks() -> Iterator[bytes]:
            view = memoryview(payload)
            for start in range(0, len(view), _READ_SIZE):
                yield bytes(view[start : start + _READ_SIZE])

        return self._add(chunks, len(payload), name, pin, None)

    def add_file(
        self, path: Path | str, *, pin: bool = True, progress: Progress | None = None
    ) -> AddResult:
        """Upload a file, streamed (never read whole): evaluation keys are hundreds of MB."""
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"cannot add {source}: not a file")
        size = source.stat().st_size

        def chunks() -> Iterator[bytes]:
            with source.open("rb") as handle:
                while piece := handle.read(_READ_SIZE):
                    yield piece

        return self._add(chunks, size, source.name, pin, progress)

    def _add(
        self,
        chunks: Callable[[], Iterator[bytes]],
        size: int,
        name: str,
        pin: bool,
        progress: Progress | None,
    ) -> AddResult:
        boundary = secrets.token_hex(16)
        safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "blob"
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{safe_name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        builders: list[KuboDagBuilder] = []

        def body() -> Iterator[bytes]:
            # A fresh pass per attempt: a retried upload rehashes what it sends.
            builder = KuboDagBuilder()
            builders.append(builder)
            yield head
            for piece in chunks():
                builder.update(piece)
                if progress is not None:
                    progress(builder.size, size)
                yield piece
            yield tail

        # Kubo's defaults spelled out: a daemon configured otherwise (Import.*) still matches.
        params = {
            "cid-version": "0",
            "raw-leaves": "false",
            "chunker": f"size-{KUBO_CHUNK_SIZE}",
            "hash": "sha2-256",
            "pin": "true" if pin else "false",
            "quieter": "true",
            "progress": "false",
        }
        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
        }
        response = self._request("add", params, body=body, headers=headers)
        line = _last_json_line(response, self.api_url, "add")
        try:
            cid_text, dag_size = str(line["Hash"]), int(line["Size"])
            answered = Cid.parse(cid_text)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreResponseError(
                f"the IPFS node at {self.api_url} answered add with {line!r}: {exc}"
            ) from None
        builder = builders[-1]
        if builder.size != size:
            raise StoreError(
                f"the file changed size while it was uploaded ({size} -> {builder.size})"
            )
        expected, expected_dag_size = builder.finish()
        if answered != expected or dag_size != expected_dag_size:
            raise ContentIntegrityError(
                f"the IPFS node at {self.api_url} named the upload {cid_text} (DAG {dag_size} B), "
                f"but Kubo's `ipfs add` defaults give {expected} (DAG {expected_dag_size} B)",
                hint="the node does not chunk like Kubo (size-262144, balanced, CIDv0) or "
                "altered the bytes; use a Kubo-compatible node",
            )
        return AddResult(cid=str(expected), size=size, dag_size=dag_size)

    # -------------------------------------------------------------------------- download

    def get(
        self,
        cid: str | Cid,
        dest: Path | str,
        *,
        max_size: int | None = None,
        progress: Progress | None = None,
    ) -> Path:
        """Download a file to ``dest``, every block verified; ``dest`` appears only when complete.

        The bytes go to a temporary file beside ``dest``, renamed over it once all blocks have
        arrived and matched their CIDs; on any error the temporary file is removed.
        """
        root = _as_cid(cid)
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        try:
            with partial.open("wb") as out:
                for piece in self._file_pieces(root, max_size, progress):
                    out.write(piece)
                out.flush()
                os.fsync(out.fileno())
            partial.replace(target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return target

    def cat(self, cid: str | Cid, *, max_size: int = 64 * 1024 * 1024) -> bytes:
        """A small file's bytes in memory (manifests, results), every block verified."""
        return b"".join(self._file_pieces(_as_cid(cid), max_size, None))

    def stat(self, cid: str | Cid) -> ContentStat:
        """Size of a file from its root block (verified), without fetching the rest."""
        root = _as_cid(cid)
        block = self._block(root)
        node = decode_file_block(root, block)
        size = node.filesize if node.filesize is not None else len(node.data) + sum(node.blocksizes)
        dag_size = len(block) + sum(link.tsize for link in node.children)
        return ContentStat(cid=str(root), size=size, dag_size=dag_size, links=len(node.children))

    def _file_pieces(
        self, root: Cid, max_size: int | None, progress: Progress | None
    ) -> Iterator[bytes]:
        """The file's bytes in order, each block checked against its CID before it is used.

        Blocks are fetched ``parallel`` at a time ahead of the one being written, in file order.
        """
        pending: deque[_Want] = deque([_Want(root, None, 0)])
        total: int | None = None
        done = 0
        pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="ipfs-get")
        try:
            while pending:
                for want in islice(pending, self.parallel * 2):
                    if want.future is None:
                        want.future = pool.submit(self._block, want.cid)
                want = pending.popleft()
                assert want.future is not None
                node = decode_file_block(want.cid, want.future.result())
                node_size = len(node.data) + sum(node.blocksizes)
                if want.size is not None and node_size != want.size:
                    raise ContentIntegrityError(
                        f"block {want.cid} holds {node_size} bytes but its parent says {want.size}"
                    )
                if total is None:
                    total = node_size
                    if max_size is not None and total > max_size:
                        raise ContentTooLargeError(
                            f"{root} is {total} bytes, more than the {max_size} accepted"
                        )
                if node.children and want.depth >= _MAX_DEPTH:
                    raise ContentIntegrityError(f"{root} is deeper than {_MAX_DEPTH} levels")
                if node.data:
                    done += len(node.data)
                    if done > total:
                        raise ContentIntegrityError(f"{root} holds more bytes than it declares")
                    if progress is not None:
                        progress(done, total)
                    yield node.data
                pending.extendleft(
                    reversed(
                        [
                            _Want(link.cid, size, want.depth + 1)
                            for link, size in zip(node.children, node.blocksizes, strict=True)
                        ]
                    )
                )
            if total is not None and done != total:
                raise ContentIntegrityError(f"{root} declares {total} bytes but holds {done}")
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _block(self, cid: Cid) -> bytes:
        """One block, checked against its CID (sha2-256)."""
        response = self._request(
            "block/get",
            {"arg": str(cid), "timeout": _duration(self.find_timeout)},
            timeout=self.find_timeout + 30.0,
            cid=cid,
        )
        block = response.content
        if len(block) > MAX_BLOCK_SIZE:
            raise ContentIntegrityError(f"block {cid} from {self.api_url} is over 2 MiB: rejected")
        if not cid.matches(block):
            raise ContentIntegrityError(
                f"block {cid} from the IPFS node at {self.api_url} does not match its CID: "
                "content rejected",
                hint="the node's storage or the connection altered it; fetch from another node",
            )
        return block

    # -------------------------------------------------------------------------- pins

    def pin(self, cid: str | Cid) -> None:
        """Pin recursively: the node fetches every block it lacks and keeps them from GC."""
        root = _as_cid(cid)
        self._request(
            "pin/add",
            {"arg": str(root), "recursive": "true", "timeout": _duration(self.find_timeout)},
            timeout=self.find_timeout + 30.0,
            cid=root,
        )

    def unpin(self, cid: str | Cid) -> None:
        """Remove a recursive pin; unpinning content that is not pinned is not an error."""
        root = _as_cid(cid)
        try:
            self._request("pin/rm", {"arg": str(root)})
        except StoreResponseError as exc:
            if not any(word in exc.message for word in _NOT_PINNED_WORDS):
                raise

    def is_pinned(self, cid: str | Cid) -> bool:
        """Whether the node holds a recursive pin on ``cid``."""
        root = _as_cid(cid)
        try:
            response = self._request("pin/ls", {"arg": str(root), "type": "recursive"})
        except StoreResponseError as exc:
            if any(word in exc.message for word in _NOT_PINNED_WORDS):
                return False
            raise
        keys = _json(response, self.api_url, "pin/ls").get("Keys") or {}
        return any(_same_cid(key, root) for key in keys)

    def pins(self) -> list[str]:
        """CIDs the node pins recursively."""
        response = self._request("pin/ls", {"type": "recursive"})
        keys = _json(response, self.api_url, "pin/ls").get("Keys") or {}
        return sorted(str(key) for key in keys)

    def collect_garbage(self) -> int:
        """Ask the node to delete unpinned blocks (``repo/gc``); returns how many it removed."""
        response = self._request("repo/gc", {})
        return sum(1 for line in response.text.splitlines() if line.strip())

    # -------------------------------------------------------------------------- node and swarm

    def node_id(self) -> NodeIdentity:
        """The node's peer id and listen addresses (``id``)."""
        data = _json(self._request("id", {}), self.api_url, "id")
        try:
            return NodeIdentity(
                peer_id=str(data["ID"]),
                addresses=tuple(str(a) for a in data.get("Addresses") or ()),
                agent=str(data.get("AgentVersion", "")),
            )
        except KeyError:
            raise StoreResponseError(
                f"the IPFS node at {self.api_url} answered id without ID"
            ) from None

    def connect(self, multiaddr: str) -> None:
        """Dial a peer (``swarm connect``): there is no discovery offline, so peers are joined."""
        if (
            not isinstance(multiaddr, str)
            or not multiaddr.startswith("/")
            or "/p2p/" not in multiaddr
        ):
            raise StoreError(
                f"expected a multiaddr ending in /p2p/<peer id> (not {multiaddr!r})",
                hint="take one from the other node's `id` Addresses",
            )
        self._request("swarm/connect", {"arg": multiaddr, "timeout": _duration(30.0)}, timeout=60.0)

    def peers(self) -> list[str]:
        """Peer ids the node is connected to (``swarm peers``)."""
        data = _json(self._request("swarm/peers", {}), self.api_url, "swarm/peers")
        return sorted({str(peer["Peer"]) for peer in data.get("Peers") or () if "Peer" in peer})

    def version(self) -> str:
        """The node's version string (``version``)."""
        return str(_json(self._request("version", {}), self.api_url, "version").get("Version", ""))

    # -------------------------------------------------------------------------- transport

    def _request(
        self,
        command: str,
        params: dict[str, str],
        *,
        body: Callable[[], Iterator[bytes]] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        cid: Cid | None = None,
    ) -> httpx.Response:
        """POST a command; retry connection failures and a node that is still starting (HTTP
        503) with backoff until ``retry_for`` is spent."""
        attempts = 0
        first_failure: float | None = None
        delay = 0.2
        while True:
            attempts += 1
            failure: str
            try:
                response = self._http.post(
                    command,
                    params=params,
                    content=None if body is None else body(),
                    headers=headers,
                    timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
                )
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return response
                if response.status_code != 503:
                    raise self._error(command, response, cid)
                failure = "HTTP 503: the node is starting"
            now = time.monotonic()
            first_failure = now if first_failure is None else first_failure
            waited = now - first_failure
            if waited + delay > self.retry_for:
                raise StoreConnectionError(self.api_url, attempts, waited, failure)
            log.warning(
                "IPFS node at %s: %s on %s; retrying in %.1f s",
                self.api_url,
                failure.split(":", 1)[0],
                command,
                delay,
            )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _error(self, command: str, response: httpx.Response, cid: Cid | None) -> StoreError:
        status = response.status_code
        if status == 404:
            return StoreResponseError(
                f"{self.api_url} does not serve /api/v0/{command} (HTTP 404)",
                hint="ipfs_api must be a Kubo RPC API (port 5001 by default), not a gateway",
            )
        if status in (401, 403):
            return StoreResponseError(
                f"the IPFS node at {self.api_url} refused {command} (HTTP {status})",
                hint="check the API's credentials or its allowed origins",
            )
        message = response.text.strip()[:500]
        with contextlib.suppress(ValueError, AttributeError):
            message = str(response.json().get("Message", message))
        if cid is not None and any(word in message for word in _DEADLINE_WORDS):
            return ContentNotFoundError(str(cid), self.api_url, self.find_timeout)
        return StoreResponseError(
            f"the IPFS node at {self.api_url} failed {command} (HTTP {status}): {message}"
        )


def _as_cid(cid: str | Cid) -> Cid:
    return cid if isinstance(cid, Cid) else Cid.parse(cid)


def _same_cid(text: str, cid: Cid) -> bool:
    try:
        return Cid.parse(text) == cid
    except InvalidCidError:
        return False


def _duration(seconds: float) -> str:
    """A Go duration for Kubo's ``timeout`` option."""
    return f"{max(1, math.ceil(seconds * 1000))}ms"


def _json(response: httpx.Response, api_url: str, command: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise StoreResponseError(
            f"the IPFS node at {api_url} answered {command} with something that is not JSON"
        ) from None
    if not isinstance(data, dict):
        raise StoreResponseError(f"the IPFS node at {api_url} answered {command} with {data!r}")
    return data


def _last_json_line(response: httpx.Response, api_url: str, command: str) -> dict[str, Any]:
    """Kubo streams newline-delimited JSON for ``add``: the file's line comes last."""
    lines = [line for line in response.text.splitlines() if line.strip()]
    if not lines:
        raise StoreResponseError(f"the IPFS node at {api_url} answered {command} with nothing")
    try:
        data = json.loads(lines[-1])
    except ValueError:
        raise StoreResponseError(
            f"the IPFS node at {api_url} answered {command} with {lines[-1][:200]!r}"
        ) from None
    if not isinstance(data, dict):
        raise StoreResponseError(f"the IPFS node at {api_url} answered {command} with {data!r}")
    if "Message" in data and "Hash" not in data:
        raise StoreResponseError(f"the IPFS node at {api_url} failed {command}: {data['Message']}")
    return data
