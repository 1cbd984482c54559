"""``trackmux ui``: read-only, loopback only, every path and run id from a request checked,
and a run training in another process shows up live in a real browser."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _browser import Page
from _viewer_support import make_run
from trackmux._report import run_payload
from trackmux._runs import load_run
from trackmux._ui import ViewerServer, is_loopback

pytestmark = pytest.mark.usefixtures("isolated_env")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def server(data_dir: Path) -> Iterator[ViewerServer]:
    viewer = ViewerServer(data_dir, port=0)
    thread = threading.Thread(target=viewer.serve_forever, daemon=True)
    thread.start()
    try:
        yield viewer
    finally:
        viewer.shutdown()
        viewer.server_close()
        thread.join(10)


def request(server: ViewerServer, method: str, path: str,
            host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """One raw request (the path is sent as is: no client-side normalisation)."""
    port = server.server_address[1]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True)
        connection.putheader("Host", f"127.0.0.1:{port}" if host is None else host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        stat = path.stat()
        digest.update(f"{path}:{stat.st_mtime_ns}:{stat.st_mode}".encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_it_listens_on_loopback_only_by_default(data_dir: Path) -> None:
    viewer = ViewerServer(data_dir, port=0)
    try:
        assert viewer.server_address[0] == "127.0.0.1"
        assert viewer.loopback_only
    finally:
        viewer.server_close()


@pytest.mark.parametrize("path", [
    "/static/../_report.py", "/static/%2e%2e/_report.py", "/static/..%2f_report.py",
    "/static/viewer.js/../../_ui.py", "/static//etc/passwd", "/static/", "/../../etc/passwd",
    "/api/runs/../../journal", "/static/viewer.js%00.py", "/static/VIEWER.JS",
])
def test_paths_outside_the_fixed_list_are_not_found(server: ViewerServer, path: str) -> None:
    status, _, body = request(server, "GET", path)
    assert (status, body) == (404, b"not found\n")


@pytest.mark.parametrize(("query", "status", "message"), [
    ("runs=../../etc", 400, "run_id must be 1-128 characters"),
    ("runs=a%2Fb", 400, "got 'a/b'"),
    ("runs=nosuchrun", 404, "runs: no run 'nosuchrun' in this data directory"),
    ("runs=" + ",".join(f"r{i}" for i in range(51)), 400, "at most 50 runs at once, got 51"),
])
def test_run_ids_from_a_request_are_checked(server: ViewerServer, data_dir: Path, query: str,
                                            status: int, message: str) -> None:
    make_run(data_dir, [{"loss": 1.0}])
    code, _, body = request(server, "GET", "/api/report?" + query)
    assert code == status
    assert message in body.decode()


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8777", "10.0.0.1",
                                  "127.0.0.1.evil.example", ""])
def test_requests_for_another_host_name_are_refused(server: ViewerServer,
                                                    host: str) -> None:
    status, _, body = request(server, "GET", "/api/runs", host=host)
    assert status == 403
    assert b"only requests for 127.0.0.1 or localhost" in body


def test_it_is_read_only(server: ViewerServer, data_dir: Path) -> None:
    run = make_run(data_dir, [{"loss": 1.0}, {"loss": 0.5}])
    before = tree_digest(data_dir)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, headers, _ = request(server, method, "/api/runs")
        assert (status, headers["Allow"]) == (405, "GET, HEAD")
    for path in ("/", "/api/runs", f"/api/report?runs={run}", "/static/viewer.js"):
        status, headers, _ = request(server, "GET", path)
        assert status == 200
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
    assert request(server, "HEAD", "/api/runs")[2] == b""
    assert tree_digest(data_dir) == before


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("192.168.1.2", False), ("example.com", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.slow
def test_the_command_serves_until_interrupted(data_dir: Path) -> None:
    run = make_run(data_dir, [{"loss": 1.0}], name="cli")
    process = subprocess.Popen(
        [sys.executable, "-m", "trackmux._cli", "--data-dir", str(data_dir), "ui",
         "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("trackmux ui: http://127.0.0.1:"), line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/api/runs")
        listing = json.loads(connection.getresponse().read())
        connection.close()
        assert [r["id"] for r in listing["runs"]] == [run]
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    assert "Traceback" not in process.stderr.read()  # type: ignore[union-attr]


@pytest.mark.slow
def test_listening_beyond_loopback_takes_asking_and_warns(data_dir: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "trackmux._cli", "--data-dir", str(data_dir), "ui",
         "--port", "0", "--host", "0.0.0.0"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        assert line.startswith("trackmux ui: http://0.0.0.0:"), line
        port = int(line.split("http://0.0.0.0:")[1].split("/")[0])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/api/runs", headers={"Host": "example.com"})
        assert connection.getresponse().status == 200  # asked for: no Host check
        connection.close()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    assert ("warning: listening on 0.0.0.0: anyone who can reach this machine can read your "
            "runs") in process.stderr.read()


_WRITER = textwrap.dedent("""
    import sys, trackmux
    with trackmux.Tracker(["null"], data_dir=sys.argv[1]) as tracker:
        run = tracker.submit_job(name="live", project_name="p")
        for step in range(50):
            tracker.log_metrics(run, {"loss": 1 / (step + 1)}, step=step)
        tracker.flush()
        print(run, flush=True)
        for line in sys.stdin:  # one step per line, logged when it arrives
            step = int(line)
            tracker.log_metrics(run, {"loss": 10.0 + step}, step=step)
            tracker.flush()
            print("logged", flush=True)
""")


def last_step_drawn(page: Page) -> Any:
    return page.evaluate("(() => { const c = window.trackmux.charts.get('loss');"
                         " return c ? c.u.data[0][c.u.data[0].length - 1] : null; })()")


@pytest.mark.slow
def test_a_run_training_in_another_process_updates_live(
        server: ViewerServer, data_dir: Path, page: Page, screenshots: Path) -> None:
    other = make_run(data_dir, [{"loss": 2.0 - s / 100} for s in range(80)], name="done")
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(data_dir)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "TRACKMUX_TRACKERS": "null"})
    assert writer.stdin is not None and writer.stdout is not None
    try:
        run = writer.stdout.readline().strip()
        page.open(f"{server.url}#runs={other},{run}")
        assert page.wait_for("window.trackmux.charts.has('loss')")
        assert last_step_drawn(page) == 79  # the longer, finished run
        assert page.evaluate(f"document.querySelector('table.runs tr[data-run=\"{run}\"]"
                             f" .state').textContent") == "open"

        for step in (120, 500):
            writer.stdin.write(f"{step}\n")
            writer.stdin.flush()
            assert writer.stdout.readline().strip() == "logged"
            logged = time.monotonic()
            page.wait_for(f"window.trackmux.charts.get('loss').u.data[0].includes({step})",
                          timeout=10)
            print(f"step {step} drawn {time.monotonic() - logged:.2f} s after it was logged")
        assert last_step_drawn(page) == 500
        page.screenshot(screenshots / "ui-live.png")

        writer.stdin.close()
        assert writer.wait(60) == 0
        page.wait_for(f"document.querySelector('table.runs tr[data-run=\"{run}\"] .state')"
                      f".textContent === 'finished'", timeout=10)
        assert page.errors() == []
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    # what the viewer built from the records as they came equals a fresh read
    status, _, body = request(server, "GET", f"/api/report?runs={run}")
    live = json.loads(body)["runs"][0]
    fresh = run_payload(load_run(data_dir, run))
    assert status == 200 and live["metrics"] == fresh["metrics"]
    assert live["metrics"]["loss"]["step"][-2:] == [120, 500]
