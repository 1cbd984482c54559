"""``trackmux ui``: a read-only local viewer of the runs in the data directory, live.

The standard library's ``ThreadingHTTPServer`` serves the report's page and script
(:mod:`trackmux._report`) with the data fetched from a small JSON API instead of inlined::

    GET /                       the viewer page
    GET /static/NAME            one of trackmux/web's files (a fixed list, nothing else)
    GET /api/runs               the runs of the data directory, with record counts and state
    GET /api/report?runs=A,B    the chosen runs' facts, config and downsampled curves

The page polls ``/api/runs`` and fetches the report again when a shown run grew, so a run
still training in another process updates within a couple of seconds. Each run's curves are
kept in a :class:`~trackmux._series.SeriesBuilder` fed only the records appended since the
last request (read through the journal's reader from a cursor), so polling a long run costs
what it logged since, not its whole history.

Safety: only GET and HEAD; every run id from a request is checked as a run id and must be a
run of the journal; static names come from a fixed list; by default the server listens on
127.0.0.1 only and answers only requests whose Host header names a loopback address (no DNS
rebinding); pages carry a Content-Security-Policy allowing nothing but this server.
"""

from __future__ import annotations

import ipaddress
import json
import threading
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ._engine import check_run_id
from ._journal import Cursor, RunJournal, iter_run_ids
from ._report import WEB_ASSETS, page_html, report_payload, run_payload, web_asset
from ._runs import RunInfo, journal_root, list_runs, load_run
from ._series import DEFAULT_BUCKETS, SeriesBuilder

__all__ = ["DEFAULT_PORT", "ViewerServer", "is_loopback"]

#: The port ``trackmux ui`` listens on unless told otherwise.
DEFAULT_PORT = 8777

#: At most this many runs in one ``/api/report`` request.
MAX_RUNS = 50

#: Runs whose curves are kept between requests (least recently used dropped first).
CACHED_RUNS = 64

_READ_BATCH = 65536

_SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; connect-src 'self'; "
                                "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                                "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _LiveRun:
    """One run's curves, fed from a journal cursor as the run grows."""

    def __init__(self, buckets: int) -> None:
        self.builder = SeriesBuilder(buckets)
        self.cursor: Cursor = 0
        self.lock = threading.Lock()

    def update(self, run: RunInfo) -> None:
        """Read what was appended since the last update."""
        assert run.directory is not None
        journal = RunJournal.peek(run.directory.parent, run.run_id)
        reader = journal.reader(self.cursor)
        try:
            while True:
                records, cursor = reader.read(_READ_BATCH)
                if not records:
                    break
                self.builder.add(records)
                self.cursor = cursor
        finally:
            reader.close()


class ViewerServer(ThreadingHTTPServer):
    """The ``trackmux ui`` server: read-only views of the journal of ``data_dir``."""

    daemon_threads = True

    def __init__(self, data_dir: Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 buckets: int = DEFAULT_BUCKETS) -> None:
        self.data_dir = Path(data_dir)
        self.buckets = buckets
        self.loopback_only = is_loopback(host)
        self._runs: OrderedDict[str, _LiveRun] = OrderedDict()
        self._runs_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        """Where the viewer is (``http://127.0.0.1:PORT/``)."""
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}/"

    def live_run(self, run_id: str) -> _LiveRun:
        """The cached curves of ``run_id`` (created empty on first use)."""
        with self._runs_lock:
            live = self._runs.get(run_id)
            if live is None:
                live = self._runs[run_id] = _LiveRun(self.buckets)
                while len(self._runs) > CACHED_RUNS:
                    self._runs.popitem(last=False)
            else:
                self._runs.move_to_end(run_id)
            return live

    # -- the API ---------------------------------------------------------------------------

    def runs_listing(self) -> dict[str, Any]:
        """``/api/runs``."""
        found, problems = list_runs(self.data_dir)
        return {
            "data_dir": str(self.data_dir),
            "runs": [{"id": run.run_id, "name": run.name, "project": run.project,
                      "status": run.status, "created": run.created,
                      "records": run.record_count,
                      "trackers": [t.to_dict() for t in run.trackers]} for run in found],
            "unreadable": [{"id": run_id, "problem": problem} for run_id, problem in problems],
        }

    def report(self, run_ids: list[str]) -> dict[str, Any]:
        """``/api/report``: the named runs (already checked to exist)."""
        runs = [load_run(self.data_dir, run_id) for run_id in run_ids]
        payloads = []
        for run in runs:
            live = self.live_run(run.run_id)
            with live.lock:
                live.update(run)
                payloads.append(run_payload(run, live.builder))
        return report_payload(runs, title="trackmux ui", payloads=payloads)

    def check_run_ids(self, text: str) -> list[str]:
        """The run ids of a ``runs=`` parameter: each a valid id of a run in the journal.

        :raises ValueError: the message says which id and why.
        """
        ids = [part for part in text.split(",") if part]
        if len(ids) > MAX_RUNS:
            raise ValueError(f"runs: at most {MAX_RUNS} runs at once, got {len(ids)}")
        known = set(iter_run_ids(journal_root(self.data_dir)))
        out: list[str] = []
        for run_id in ids:
            check_run_id(run_id)
            if run_id not in known:
                raise LookupError(f"runs: no run {run_id!r} in this data directory")
            if run_id not in out:
                out.append(run_id)
        return out


class _Handler(BaseHTTPRequestHandler):
    server: ViewerServer
    server_version = "trackmux-ui"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the viewer is polled every second or two."""

    # -- dispatch ----------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._respond(head=False)

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def _refuse_method(self) -> None:
        self._send_text(HTTPStatus.METHOD_NOT_ALLOWED, "the viewer is read-only: GET or HEAD",
                        extra={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    def _respond(self, head: bool) -> None:
        self._head = head
        try:
            host = urlsplit("//" + (self.headers.get("Host") or "")).hostname or ""
        except ValueError:
            host = ""
        if self.server.loopback_only and not is_loopback(host):
            self._send_text(HTTPStatus.FORBIDDEN,
                            "this viewer answers only requests for 127.0.0.1 or localhost")
            return
        url = urlsplit(self.path)
        path = url.path
        try:
            if path == "/":
                self._send(HTTPStatus.OK, page_html(title="trackmux ui", data=None,
                                                    inline=False).encode(),
                           "text/html; charset=utf-8")
            elif path.startswith("/static/") and path[len("/static/"):] in WEB_ASSETS:
                name = path[len("/static/"):]
                self._send(HTTPStatus.OK, web_asset(name).encode(), WEB_ASSETS[name],
                           cache="no-cache")
            elif path == "/api/runs":
                self._send_json(self.server.runs_listing())
            elif path == "/api/report":
                query = parse_qs(url.query, max_num_fields=4)
                try:
                    ids = self.server.check_run_ids(",".join(query.get("runs", [])))
                except ValueError as exc:
                    self._send_text(HTTPStatus.BAD_REQUEST, str(exc))
                    return
                except LookupError as exc:
                    self._send_text(HTTPStatus.NOT_FOUND, str(exc.args[0]))
                    return
                self._send_json(self.server.report(ids))
            else:
                self._send_text(HTTPStatus.NOT_FOUND, "not found")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a run unreadable right now: say so, keep serving
            self._send_text(HTTPStatus.INTERNAL_SERVER_ERROR,
                            f"cannot read the journal: {type(exc).__name__}: {exc}")

    # -- responses ---------------------------------------------------------------------------

    def _send(self, status: HTTPStatus, body: bytes, content_type: str,
              cache: str = "no-store", extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        for name, value in {**_SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if not getattr(self, "_head", False):
            self.wfile.write(body)

    def _send_json(self, data: Any) -> None:
        body = json.dumps(data, ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode()
        self._send(HTTPStatus.OK, body, "application/json; charset=utf-8")

    def _send_text(self, status: HTTPStatus, text: str,
                   extra: dict[str, str] | None = None) -> None:
        self._send(status, (text + "\n").encode(), "text/plain; charset=utf-8", extra=extra)
