"""The dashboard for real: `blindframe client dashboard` serves loopback only, behind its token,
with strict headers; in headless Chromium, during a real render (Anvil, IPFS, two render nodes as
processes, `blindframe client render` in its own process), the tiles go through their states with
the node holding each, payments and chain events appear, and the decrypted frame is shown."""

from __future__ import annotations

import hmac
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from playwright.sync_api import Browser
from support.render_stack import RenderStack

from blindframe.client.artist import Artist
from blindframe.client.dashboard.server import CSP, DashboardError, DashboardServer, check_loopback
from blindframe.client.jobdir import list_jobs
from blindframe.coordinator.config import Settings

ARTIFACT = Path(__file__).resolve().parents[2] / "artifacts" / "dashboard.png"
RENDER_ARGS = (
    *("--scene", "sample", "--size", "16x16", "--canaries", "0", "--reward", "0.001"),
    *("--lease-length", "5m", "--deadline", "20m", "--interval", "0.5", "--timeout", "4m"),
)
RANK = {
    s: i for i, s in enumerate(("open", "claimed", "committed", "revealed", "verified", "settled"))
}


# --------------------------------------------------------------------------------- the command


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    home: Path

    @property
    def origin(self) -> str:
        return self.url.split("/", 3)[0] + "//" + self.url.split("/", 3)[2]

    @property
    def token(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[1]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLINDFRAME_")}
    env["BLINDFRAME_HOME"] = str(home)
    # Nothing answers there: the page must still load and say there are no jobs.
    env["BLINDFRAME_RPC_URL"] = "http://127.0.0.1:9"
    env["PYTHONFAULTHANDLER"] = "1"  # a hung process dumps its threads on SIGABRT
    return env


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """`blindframe client dashboard --port 0` as a process, on an empty home."""
    home = tmp_path / "home"
    process = subprocess.Popen(
        [sys.executable, "-m", "blindframe", "client", "dashboard", "--port", "0"],
        env=_env(home),
        cwd=tmp_path,
        # Started with SIGINT ignored, as from Blender or nohup (and as a long pytest session
        # once left it): Ctrl-C must stop it all the same.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line.startswith("http://127.0.0.1:"), line + (
        process.stderr.read() if process.poll() else ""
    )
    try:
        yield Served(process, line, home)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_the_token_is_compared_in_constant_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong token of the right length (one character off, at the end or the start) is
    refused like any other, and every request's token goes through hmac.compare_digest against
    the server's: no early-exit ``==`` that a timing attack could walk one character at a time.
    (Timing itself is not measured: too noisy on a shared machine to prove anything.)"""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((bytes(a), bytes(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    token = "Kq3" * 11
    wrong_end = token[:-1] + "x"
    wrong_start = "x" + token[1:]
    artist = Artist(Settings(home=tmp_path / "home"))
    with DashboardServer(artist, token=token) as dashboard, httpx.Client(timeout=10) as http:
        assert http.get(f"{dashboard.origin}/{token}/static/app.css").status_code == 200
        for wrong in (wrong_end, wrong_start, token[:-1], token + "K"):
            assert http.get(f"{dashboard.origin}/{wrong}/static/app.css").status_code == 403
    assert compared == [
        (given.encode(), token.encode())
        for given in (token, wrong_end, wrong_start, token[:-1], token + "K")
    ]


def test_only_loopback_addresses() -> None:
    assert check_loopback("127.0.0.1") == "127.0.0.1"
    assert check_loopback("localhost") == "127.0.0.1"
    assert check_loopback("::1") == "::1"
    for host in ("0.0.0.0", "::", "", "192.168.1.10", "10.0.0.1", "example.com"):
        with pytest.raises(DashboardError, match="loopback"):
            check_loopback(host)
    done = subprocess.run(
        [sys.executable, "-m", "blindframe", "client", "dashboard", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        check=False,
        env=_env(Path("/nonexistent-home")),
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(
        "Error: the dashboard listens on a loopback address only (not '0.0.0.0')"
    )


def _outside_addresses() -> list[str]:
    """This machine's IPv4 addresses that are not loopback."""
    found = []
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                found.append(address.address)
    return found


def _raw_status(port: int, path: str) -> int:
    """The status of GET ``path`` sent verbatim (an HTTP client library would resolve '..')."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_command_serves_loopback_only_behind_its_token(served: Served) -> None:
    port = int(served.origin.rsplit(":", 1)[1])
    listening = [
        c for c in psutil.Process(served.process.pid).net_connections("inet")
        if c.status == psutil.CONN_LISTEN
    ]  # fmt: skip
    assert [(c.laddr.ip, c.laddr.port) for c in listening] == [("127.0.0.1", port)]
    for address in _outside_addresses():
        with pytest.raises(OSError), socket.create_connection((address, port), timeout=2):
            pass

    with httpx.Client(timeout=10) as http:
        page = http.get(served.url)
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == CSP
        assert "default-src 'none'" in CSP
        assert "connect-src 'self'" in CSP
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-store"
        assert "access-control-allow-origin" not in page.headers
        # Everything the page loads is served by the package, from this origin.
        assert "http" not in page.text.replace(served.url, "")
        for asset in ("static/app.js", "static/app.css", "static/favicon.svg"):
            response = http.get(served.url + asset)
            assert response.status_code == 200, asset
            assert response.headers["content-security-policy"] == CSP
            # (the SVG namespace is a name, never fetched)
            text = response.text.replace('xmlns="http://www.w3.org/2000/svg"', "")
            assert "https://" not in text
            assert "http://" not in text
        jobs = http.get(served.url + "api/jobs")
        assert jobs.status_code == 200
        assert jobs.json()["jobs"] == []

        # No token, a wrong token, or the token elsewhere in the URL: refused.
        wrong = served.token[:-1] + ("A" if served.token[-1] != "A" else "B")
        for url in (
            f"{served.origin}/",
            f"{served.origin}/api/jobs",
            f"{served.origin}/{wrong}/",
            f"{served.origin}/{wrong}/api/jobs",
            f"{served.origin}/static/app.js",
            f"{served.origin}/x/{served.token}/api/jobs",
            f"{served.origin}/api/jobs?token={served.token}",
        ):
            refused = http.get(url)
            assert refused.status_code == 403, url
            assert refused.headers["content-security-policy"] == CSP
            assert "jobs" not in refused.text
        # A page of another site that resolves to 127.0.0.1 (DNS rebinding) names its own host.
        rebound = http.get(served.url + "api/jobs", headers={"Host": f"attacker.example:{port}"})
        assert rebound.status_code == 421
        # Read-only: no method but GET and HEAD.
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            assert http.request(method, served.url + "api/jobs").status_code == 405
        assert http.head(served.url).status_code == 200
        # Only the known routes: no file of the home can be named (paths sent as they are).
        for path in (
            "static/../../etc/passwd",
            "static/%2e%2e/%2e%2e/etc/passwd",
            "jobs/31337-0x" + "ab" * 20 + "-1/secrets.npz",
            "jobs/31337-0x" + "ab" * 20 + "-1/frame.png",
            "jobs/..%2F..%2Fkeys/frame.png",
            "api/jobs/../../keys",
        ):
            assert _raw_status(port, f"/{served.token}/{path}") == 404, path
        assert http.get(served.url.rstrip("/"), follow_redirects=False).status_code == 301

    served.process.send_signal(signal.SIGINT)
    try:
        code = served.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        # Hung: make Python dump every thread's stack (PYTHONFAULTHANDLER) and show it.
        served.process.send_signal(signal.SIGABRT)
        _out, err = served.process.communicate(timeout=15)
        raise AssertionError(f"the dashboard did not stop on Ctrl-C:\n{err[-6000:]}") from None
    assert code == 0


# --------------------------------------------------------------------------------- in Chromium


def _tiles(page: Any) -> list[tuple[int, str, str]]:
    rows = page.eval_on_selector_all(
        "#grid .tile",
        "els => els.map(e => [Number(e.dataset.tile), e.dataset.state, e.dataset.holder || ''])",
    )
    return [(int(t), str(s), str(h)) for t, s, h in rows]


def test_a_live_render_in_the_browser(
    render_stack: RenderStack, browser: Browser, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = render_stack
    with Artist(stack.settings) as artist, DashboardServer(artist, interval=0.5) as server:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        requests: list[str] = []
        problems: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(server.url)
        page.wait_for_selector("#no-jobs:not([hidden])")

        render = subprocess.Popen(
            [sys.executable, "-m", "blindframe", "--json", "client", "render", *RENDER_ARGS],
            env=stack.env,
            cwd=stack.home.parent,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        history: dict[int, list[str]] = {}
        holders: dict[int, str] = {}
        paces: set[str] = set()  # the header's pace while the job renders
        deadline = time.monotonic() + 300
        try:
            while True:
                for tile, state, holder in _tiles(page):
                    seen = history.setdefault(tile, [])
                    if not seen or seen[-1] != state:
                        seen.append(state)
                    holders[tile] = holder
                # Both read in one script: the page cannot redraw between them (two reads could
                # see "rendering", then the empty pace of the job completed in between).
                phase, pace = page.evaluate(
                    "() => [document.querySelector('#phase').innerText,"
                    " document.querySelector('#eta').innerText]"
                )
                if phase == "rendering":
                    paces.add(pace)
                shown = page.evaluate(
                    "(() => { const i = document.getElementById('frame-img');"
                    " return !i.hidden && i.complete && i.naturalWidth > 0; })()"
                )
                if shown:
                    break
                if render.poll() is not None and render.returncode != 0:
                    raise AssertionError(
                        f"render failed: {render.stderr.read() if render.stderr else ''}"
                    )
                assert time.monotonic() < deadline, (history, stack.worker_logs())
                page.wait_for_timeout(200)
            out, err = render.communicate(timeout=60)
        finally:
            if render.poll() is None:
                render.kill()
                render.wait()
        assert render.returncode == 0, err
        result = json.loads(out)
        # Give the stream a moment to carry the last payments, then keep the picture.
        page.wait_for_selector("#payments tr[data-key=paidToWorkers] td:text('0.004 ETH')")
        # The frame may show a poll before the last tiles' settles: follow them to their end.
        deadline = time.monotonic() + 30
        while True:
            tiles = _tiles(page)
            for tile, state, holder in tiles:
                seen = history.setdefault(tile, [])
                if not seen or seen[-1] != state:
                    seen.append(state)
                holders[tile] = holder
            if all(s == "settled" for _, s, _ in tiles) or time.monotonic() > deadline:
                break
            page.wait_for_timeout(200)
        ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACT), full_page=True)
        with capsys.disabled():
            print(f"\ndashboard screenshot: {ARTIFACT}")

        # Tiles went through their states in order, each held by one of the two nodes.
        workers = {w.address for w in stack.workers}
        assert sorted(history) == [0, 1, 2, 3]
        for tile, states in history.items():
            ranks = [RANK[s] for s in states]
            assert ranks == sorted(ranks), (tile, states)
            assert states[-1] == "settled", (tile, states)
            # A claim lasts the tile's compute, so the page sees it. At replication 1 a lease is
            # verified at its reveal, and the client verifies and settles it in one step: the
            # page, sampled every 200 ms, may see a tile go from revealed straight to settled.
            assert "claimed" in states, (tile, states)
        assert set(holders.values()) == workers
        rows = page.eval_on_selector_all(
            "#holders tbody tr", "rs => rs.map(r => [r.dataset.worker, r.lastChild.textContent])"
        )
        assert sorted(rows) == sorted([w, "0.002 ETH"] for w in workers)
        assert page.inner_text("#phase") == "complete"
        # While it rendered, the header showed the time left (from the quote, then from the job's
        # own pace once a tile was verified); none once complete.
        assert all(" left" in pace or "past the quoted time" in pace for pace in paces), paces
        assert any("tiles/min, about " in pace for pace in paces), paces
        assert page.inner_text("#eta") == ""
        # The header names the artist's image and its tiles (a volume job's canary margin aside).
        assert " · 16×16 · 4 tiles × " in page.inner_text("#job-title")
        # Each claim is one lease and each lease settles once; how the four tiles split into
        # leases depends on which node reaches the job's plan first (two leases or three). The
        # events panel follows the chain's logs, which may reach the page a poll after the
        # balances it shows: wait (a while) for the last settle to show there too.
        deadline = time.monotonic() + 30
        while True:
            events = page.eval_on_selector_all(
                "#events tbody tr", "rs => rs.map(r => r.dataset.event)"
            )
            settled = events.count("LeaseSettled") >= events.count("TilesClaimed")
            if settled or time.monotonic() > deadline:
                break
            page.wait_for_timeout(200)
        assert {"JobPosted", "TilesClaimed", "Committed", "Revealed", "LeaseSettled"} <= set(events)
        claims = events.count("TilesClaimed")
        assert claims == events.count("LeaseSettled") >= 2, events

        # The frame on the page is the PNG decrypted into the job's directory.
        (job,) = [d for d in list_jobs(stack.home) if not d.pending]
        assert result["frame"]["png"] == str(job.path / "frame.png")
        posted = page.inner_text("#events tr[data-event=JobPosted]")
        assert f"manifestCid={job.state()['manifestCid']}" in posted
        assert "escrow=0.004 ETH" in posted
        assert page.evaluate("document.getElementById('frame-img').naturalWidth") == 16
        src = page.get_attribute("#frame-img", "src")
        assert src is not None
        assert src.startswith(f"jobs/{job.path.name}/frame.png")
        shown = page.evaluate(
            "async (u) => Array.from(new Uint8Array(await (await fetch(u)).arrayBuffer()))", src
        )
        assert bytes(shown) == (job.path / "frame.png").read_bytes()

        # The page talked to its own server only, under the token, and CSP refused nothing.
        assert requests
        assert all(url.startswith(server.url) for url in requests), requests
        assert problems == []
        context.close()
