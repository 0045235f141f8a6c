"""The dashboard's web server: the artist's jobs, live, on a loopback-only page.

What it shows comes from :meth:`blindframe.client.artist.Artist.snapshot` (tiles, holders,
leases, contests, escrow, payments, chain events) and the job directories (the decrypted
``frame.png``). It is read-only: GET and HEAD only, nothing it serves changes a job.

Who may read it: the artist's own browser, nothing else.

- It listens on a loopback address only (127.0.0.1 or ::1; anything else is refused).
- Every URL starts with a random per-session token (``http://127.0.0.1:PORT/<token>/``):
  other local users and other web pages cannot guess it, so they cannot read job state or
  frames. The token is compared in constant time.
- The Host header must name the loopback address and port (defeats DNS rebinding).
- Strict headers on every response: a Content-Security-Policy that allows only this origin's
  own script, style, images and connections (so the page can send nothing anywhere else),
  ``frame-ancestors 'none'``, no referrer, no caching, ``nosniff``; no CORS headers at all.
- Every asset is served from the package: no CDN, no external request from the page.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import secrets
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from blindframe.client.artist import Artist
from blindframe.client.errors import ClientError, JobNotFoundError
from blindframe.client.jobdir import JobRef
from blindframe.client.snapshot import CLOCK_FIELDS
from blindframe.errors import BlindframeError

__all__ = [
    "CSP",
    "SECURITY_HEADERS",
    "DashboardError",
    "DashboardServer",
    "check_loopback",
]

STATIC = Path(__file__).resolve().parent / "static"
_ASSETS = {
    "": ("index.html", "text/html; charset=utf-8"),
    "index.html": ("index.html", "text/html; charset=utf-8"),
    "static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "static/app.css": ("app.css", "text/css; charset=utf-8"),
    "static/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), clipboard-write=()",
}
_KEY = re.compile(r"^[0-9]{1,12}-0x[0-9a-fA-F]{40}-[0-9]{1,20}$")
_KEEPALIVE = 15.0  # seconds between SSE comments on a quiet stream


class DashboardError(ClientError, ValueError):
    """The dashboard cannot run as asked (an address that is not loopback, a busy port)."""


def check_loopback(host: str) -> str:
    """``host`` as a loopback IP address (``localhost`` -> 127.0.0.1); DashboardError for any
    other address: the dashboard shows decrypted frames and is only for this machine."""
    text = host.strip().strip("[]")
    if text.lower() == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise DashboardError(
            f"the dashboard listens on a loopback address only: 127.0.0.1 or ::1 (not {host!r})",
        ) from None
    if not address.is_loopback:
        raise DashboardError(
            f"the dashboard listens on a loopback address only (not {host!r}): it serves "
            "your decrypted frames and job state to this machine's browser, nobody else",
            hint="use --host 127.0.0.1 (the default); to watch from elsewhere, tunnel over SSH",
        )
    return str(address)


class _Snapshots:
    """Snapshot documents per job, computed at most once per interval whatever the number of
    open pages (each computation reads the chain and the event index)."""

    def __init__(self, artist: Artist, interval: float) -> None:
        self._artist = artist
        self._interval = interval
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._jobs: tuple[float, list[dict[str, Any]]] | None = None
        self._jobs_lock = threading.Lock()

    def _key_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def job(self, key: str) -> dict[str, Any]:
        with self._key_lock(key):
            cached = self._cache.get(key)
            if cached is not None and time.monotonic() - cached[0] < self._interval * 0.9:
                return cached[1]
            document = self._document(key)
            self._cache[key] = (time.monotonic(), document)
            return document

    def _document(self, key: str) -> dict[str, Any]:
        ref = JobRef.parse(key)
        directory = self._artist.job_dir(ref)  # JobNotFoundError: not a job of this home
        try:
            snap = self._artist.snapshot(ref)
        except JobNotFoundError:
            raise
        except BlindframeError as exc:  # the chain or the index unreachable: say so, keep serving
            return {"job": {"key": key}, "error": exc.message, "hint": exc.hint, "frame": None}
        document = snap.to_json()
        document["frame"] = _frame_info(directory.path, key)
        document["error"] = None
        return document

    def jobs(self) -> list[dict[str, Any]]:
        with self._jobs_lock:
            if self._jobs is not None and time.monotonic() - self._jobs[0] < 2 * self._interval:
                return self._jobs[1]
            rows = []
            for job in self._artist.jobs(with_status=True):
                row = job.to_json()
                frame = _frame_info(job.directory, job.key)
                row["frameUrl"] = frame["url"] if frame is not None else None
                row.pop("directory", None)
                rows.append(row)
            self._jobs = (time.monotonic(), rows)
            return rows


def _frame_info(directory: Path, key: str) -> dict[str, Any] | None:
    png = directory / "frame.png"
    try:
        stamp = png.stat().st_mtime_ns
    except OSError:
        return None
    return {"url": f"jobs/{key}/frame.png?v={stamp}", "updated": stamp // 1_000_000}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    dashboard: DashboardServer


class _Server6(_Server):
    address_family = socket.AF_INET6


class DashboardServer:
    """The dashboard of ``artist``'s jobs on ``http://HOST:PORT/<token>/``.

    ``host`` must be a loopback address; ``port`` 0 picks a free one; ``token`` (default: 32
    random bytes, URL-safe) is the secret first path segment of every URL; ``interval``: seconds
    between snapshots of a watched job.
    """

    def __init__(
        self,
        artist: Artist,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        interval: float = 1.0,
    ) -> None:
        self.host = check_loopback(host)
        if not 0 <= int(port) <= 65535:
            raise DashboardError(f"the port must be 0..65535 (not {port})")
        if token is not None and not re.fullmatch(r"[A-Za-z0-9_-]{16,128}", token):
            raise DashboardError("the token must be 16..128 URL-safe characters")
        if not 0.1 <= interval <= 60:
            raise DashboardError(f"the interval must be 0.1..60 seconds (not {interval})")
        self.artist = artist
        self.token = token or secrets.token_urlsafe(32)
        self.interval = float(interval)
        self.snapshots = _Snapshots(artist, self.interval)
        self.stopping = threading.Event()
        server_class = _Server6 if ":" in self.host else _Server
        try:
            self._httpd = server_class((self.host, int(port)), _Handler)
        except OSError as exc:
            raise DashboardError(
                f"cannot listen on {self.host}:{port}: {exc.strerror or exc}",
                hint="pick another --port (0 takes a free one)",
            ) from None
        self._httpd.dashboard = self
        self.port = int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.origin = f"http://{shown}:{self.port}"
        self.url = f"{self.origin}/{self.token}/"
        self.allowed_hosts = {f"{shown}:{self.port}", f"localhost:{self.port}"}

    def start(self) -> None:
        """Serve in a daemon thread (returns at once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, name="blindframe dashboard", daemon=True
            )
            self._thread.start()

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`close` (or KeyboardInterrupt)."""
        try:
            self._httpd.serve_forever()
        finally:
            self.stopping.set()

    def close(self) -> None:
        """Stop serving: open event streams end, the port is released."""
        self.stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> DashboardServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "blindframe-dashboard"
    sys_version = ""

    # -- plumbing --------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the terminal shows the URL, not every request."""

    def _headers(self, status: int, content_type: str, length: int | None = None) -> None:
        self.send_response(status)
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self._headers(status, content_type, len(body))
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, status: int = HTTPStatus.OK) -> None:
        body = json.dumps(data, separators=(",", ":"), default=str).encode()
        self._send(status, body, "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    def _refuse(self) -> None:
        """Method not allowed: the dashboard changes nothing."""
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse  # noqa: N815

    def do_HEAD(self) -> None:
        self.do_GET()

    # -- routing ---------------------------------------------------------------------------------

    def do_GET(self) -> None:
        dashboard = self.server.dashboard
        if self.headers.get("Host", "") not in dashboard.allowed_hosts:
            self._error(HTTPStatus.MISDIRECTED_REQUEST, "unexpected Host header")
            return
        path = urlsplit(self.path).path
        token, _, rest = path.lstrip("/").partition("/")
        if not hmac.compare_digest(token.encode(), dashboard.token.encode()):
            self._error(HTTPStatus.FORBIDDEN, "forbidden")
            return
        if path == f"/{token}":
            self.send_response(HTTPStatus.MOVED_PERMANENTLY)
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.send_header("Location", f"/{token}/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        try:
            self._route(rest)
        except (BrokenPipeError, ConnectionResetError):
            return
        except JobNotFoundError as exc:
            self._error(HTTPStatus.NOT_FOUND, exc.message)
        except BlindframeError as exc:
            self._error(HTTPStatus.BAD_GATEWAY, exc.message)

    def _route(self, rest: str) -> None:
        dashboard = self.server.dashboard
        asset = _ASSETS.get(rest)
        if asset is not None:
            name, content_type = asset
            self._send(HTTPStatus.OK, (STATIC / name).read_bytes(), content_type)
            return
        parts = rest.split("/")
        if parts == ["api", "jobs"]:
            self._json({"jobs": dashboard.snapshots.jobs(), "interval": dashboard.interval})
            return
        if len(parts) >= 3 and parts[:2] == ["api", "jobs"] and _KEY.match(parts[2]):
            key = parts[2]
            if len(parts) == 3:
                self._json(dashboard.snapshots.job(key))
                return
            if parts[3:] == ["stream"]:
                self._stream(key)
                return
        if (
            len(parts) == 3
            and parts[0] == "jobs"
            and _KEY.match(parts[1])
            and parts[2] == "frame.png"
        ):
            self._frame(parts[1])
            return
        self._error(HTTPStatus.NOT_FOUND, "not found")

    def _frame(self, key: str) -> None:
        directory = self.server.dashboard.artist.job_dir(JobRef.parse(key))
        png = directory.path / "frame.png"
        try:
            body = png.read_bytes()
        except OSError:
            self._error(HTTPStatus.NOT_FOUND, "this job's frame is not decrypted yet")
            return
        self._send(HTTPStatus.OK, body, "image/png")

    def _stream(self, key: str) -> None:
        """Server-sent events: ``snapshot`` whenever the job's state changed (what changes with
        the clock alone aside: chain time, block, pace), a comment now and then to keep the
        connection alive."""
        dashboard = self.server.dashboard
        first = dashboard.snapshots.job(key)  # JobNotFoundError -> 404 before the stream opens
        self._headers(HTTPStatus.OK, "text/event-stream; charset=utf-8")
        if self.command == "HEAD":
            return
        last = ""
        quiet_since = time.monotonic()
        document: dict[str, Any] | None = first
        while not dashboard.stopping.is_set():
            if document is None:
                try:
                    document = dashboard.snapshots.job(key)
                except BlindframeError as exc:
                    document = {"job": {"key": key}, "error": exc.message, "frame": None}
            fingerprint = json.dumps(
                {k: v for k, v in document.items() if k not in CLOCK_FIELDS},
                sort_keys=True,
                default=str,
            )
            if fingerprint != last:
                data = json.dumps(document, separators=(",", ":"), default=str)
                self.wfile.write(f"event: snapshot\ndata: {data}\n\n".encode())
                self.wfile.flush()
                last = fingerprint
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > _KEEPALIVE:
                self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
                quiet_since = time.monotonic()
            document = None
            if dashboard.stopping.wait(dashboard.interval):
                break
