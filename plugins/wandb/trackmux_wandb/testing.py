# ruff: noqa: E501, RUF002
"""A fake W&B server for your tests.

:class:`FakeWandB` is a small, stateful, in-memory imitation of the parts of the
W&B backend that trackmux's W&B plugin speaks: GraphQL at ``POST /graphql``, the
FileStream endpoint ``POST /files/{entity}/{project}/{run}/file_stream``, and
pre-signed storage URLs for artifact bytes. It depends on the standard library
and httpx only, so any project can use it.

Use it in-process, like :class:`httpx.MockTransport`::

    fake = FakeWandB()
    client = httpx.Client(base_url=fake.base_url, transport=fake.transport())

or as a real HTTP/1.1 server on ``127.0.0.1`` (for code that opens its own
connections, or to measure real wire behaviour)::

    with fake.serve() as url:
        client = httpx.Client(base_url=url)

Both modes run the same handler, share the same state and record every request
in :attr:`FakeWandB.requests`. Faults (HTTP errors, timeouts, dropped
connections, errors after the request was applied, outages, rate-limit headers,
revoked keys) are injected on demand with :meth:`FakeWandB.inject` and friends.

Choices this fake makes where the real server is not public
-----------------------------------------------------------
* Every rejection of a request is HTTP 400 with ``{"errors": [{"message"}]}``
  for GraphQL and ``{"error": ...}`` elsewhere; bad or missing credentials are
  HTTP 401 on ``/graphql`` (``Viewer`` included) and on file_stream.
* ``historyLineCount`` / ``eventsLineCount`` / ``logLineCount`` count stored
  lines. ``historyTail`` / ``eventsTail`` are JSON strings holding a list of the
  last :data:`TAIL_LINES` stored lines, each line itself a JSON string (what the
  Go SDK's ``processHistory`` decodes), e.g. ``'["{\\"_step\\": 9}"]'``.
  ``wandbConfig`` is a JSON string of ``{"t": ...}`` taken from the run config's
  ``_wandb`` value (``"{}"`` when absent).
* ``Runs`` filters support ``$and $or $eq $ne $in $nin $exists $gt $gte $lt
  $lte`` over ``name displayName state group jobType tags createdAt
  config.<key> summary_metrics.<key>`` (config values unwrapped from
  ``{"value": ...}``); ``order`` is ``[+-]created_at`` (default ascending),
  ``[+-]heartbeat_at`` or ``[+-]name``. ``RunHistory`` ignores ``samples`` and
  returns every stored line.
* ``createArtifact`` returns an existing artifact with the same digest in the
  same collection: COMMITTED ones (dedupe) and PENDING ones (so a resent
  request does not create a second version). ``commitArtifact`` is idempotent
  and fails unless the manifest and every file (from ``createArtifactFiles``
  and from the manifest entries) are stored.
* Storage: upload URLs are ``{origin}/_storage/put/<token>``; download URLs
  are ``{origin}/_storage/get/<urlsafe b64 md5>``, where ``origin`` is the
  scheme and host of the request that obtained the URL (so in server mode they
  point at the server). Every ``uploadHeaders`` list (files and manifest) is
  ``["x-fake-signature:<sig>"]``; a PUT without that exact header gets 403, a
  storage request with an ``Authorization`` header gets 400, a PUT body whose
  MD5 differs from the announced one gets 400. Stored blobs are keyed by b64
  MD5, so identical content uploaded twice is stored once.
* A file_stream request moves a ``pending`` run to ``running``, and so does
  one carrying lines for a run in a final state (a resumed run logging again);
  bare heartbeats (``{}``) never revive a finished run.
* A file_stream body larger than ``max_file_stream_bytes`` (10 MiB) gets 413.

Agreed GraphQL operations (client and fake MUST both follow this table)
------------------------------------------------------------------------
All GraphQL goes to `POST {base}/graphql` with JSON body `{"query": "...", "variables": {...}, "operationName": "<Name>"}` and
`Authorization: Basic base64("api:" + key)`. The query text is the SDK's (see /work/shared/wandb/PROTOCOL.md); the fake
identifies the operation by `operationName` AND checks that the query text contains the expected top-level field
(e.g. `upsertBucket`), rejecting (HTTP 400, `{"errors":[{"message": ...}]}`) unknown operations and missing required variables.
Run ids: the run "name" (8 chars [a-z0-9] or user's), storage id = opaque base64 string the fake generates.
As the official SDK sends them (checked by tests/wandb/test_differential_sdk.py): an empty or missing
`operationName` names the document's one operation; a mutation taking one `$input` object has the object's fields
read as the variables; CreateArtifactManifest's input field `type` may come as `$type` or `$manifestType`.

| operationName | top-level field | required vars | optional vars | response data |
|---|---|---|---|---|
| Viewer | viewer | – | – | `{"viewer": {"id","entity","username","email","flags","teams":{"edges":[]}}}` or `{"viewer": null}` for a bad key (HTTP 200; the fake may also answer 401 for a bad key) |
| UpsertBucket | upsertBucket | name, project | id, entity, groupName, description, displayName, notes, config (JSON string `{"k":{"value":v}}`), jobType, state, tags, summaryMetrics (JSON string) | `{"upsertBucket":{"bucket":{"id","name","displayName","description","config","sweepName","project":{"id","name","entity":{"id","name"}},"historyLineCount"},"inserted":bool}}` |
| RunResumeStatus | model | project, entity, name | – | `{"model":{"id","name","entity":{"id","name"},"bucket": null or {"id","name","summaryMetrics","displayName","logLineCount","historyLineCount","eventsLineCount","historyTail","eventsTail","config","tags","notes","wandbConfig"}}}` |
| RunState | project | project, entity, name | – | `{"project":{"run": {"state": "running"} or null}}` |
| StopRun | stopRun | id (storage id) | – | `{"stopRun":{"success":true}}` (sets run.stopped; on the final file_stream complete the state becomes "killed") |
| Runs | project | project, entity | filters (JSON string, Mongo style; support `{"name":{"$in":[...]}}` and `{}`), cursor, perPage, order | `{"project":{"internalId","runCount","readOnly","runs":{"edges":[{"node":{id,tags,name,displayName,sweepName,state,config(JSON str),group,jobType,commit,readOnly,createdAt,heartbeatAt,description,notes,systemMetrics,summaryMetrics(JSON str),historyLineCount,user,historyKeys},"cursor"}],"pageInfo":{"endCursor","hasNextPage"}}}}` |
| RunHistory | project | project, entity, name | samples | `{"project":{"run":{"history":["<json line>", ...]}}}` (all stored lines in offset order) |
| CreateArtifact | createArtifact | entityName, projectName, artifactTypeName, artifactCollectionName, digest, digestAlgorithm | runName, description, metadata (JSON string), aliases, clientID, sequenceClientID, enableDigestDeduplication | `{"createArtifact":{"artifact":{"id","state":"PENDING"|"COMMITTED","artifactSequence":{"latestArtifact":{"id"} or null}}}}` (COMMITTED when an artifact with the same digest already exists in that collection) |
| CreateArtifactManifest | createArtifactManifest | artifactID, name, digest, entityName, projectName, type, includeUpload | baseArtifactID, runName | `{"createArtifactManifest":{"artifactManifest":{"id","file":{"id","name","displayName","uploadUrl" (null unless includeUpload),"uploadHeaders":[]}}}}` |
| CreateArtifactFiles | createArtifactFiles | artifactFiles (list of {artifactID, artifactManifestID, name, md5 (b64)}), storageLayout | – | `{"createArtifactFiles":{"files":{"edges":[{"node":{"id","name","displayName","uploadUrl" (null when the server already has that md5),"uploadHeaders":["Key:Value",...],"storagePath","uploadMultipartUrls":null,"artifact":{"id"}}}]}}}` |
| CommitArtifact | commitArtifact | artifactID | – | `{"commitArtifact":{"artifact":{"id","digest"}}}` |
| ArtifactManifest | artifact | id | – | `{"artifact":{"currentManifest":{"id","file":{"directUrl"}}}}` or `{"artifact": null}` |
| ArtifactType | project | name (`collection:alias`) | entity, project | `{"project":{"artifact": {"artifactType":{"name"}} or null}}` |
| ServerFeaturesQuery | serverInfo | – | – | `{"serverInfo":{"features":[]}}` |
| CreateRunFiles | createRunFiles | entity, project, run, files | – | `{"createRunFiles":{"runID","uploadHeaders":["Key:Value"],"files":[{"name","uploadUrl"}]}}` (run files such as config.yaml: stored as blobs) |
| ArtifactFileURLsByManifestEntries | artifact | id, storageLayout, manifestVersion, entries (list of {name, digest, birthArtifactID, size}) | – | `{"artifact":{"filesByManifestEntries":{"edges":[{"node":{"name","directUrl"}}]}}}` |

file_stream: `POST {base}/files/{entity}/{project}/{run_name}/file_stream`, body as PROTOCOL.md §4; lines stored
by offset (a resend overwrites, never duplicates); `wandb-summary.json` keeps the last line; `complete: true` with
`exitcode` 0 → state "finished", non-zero → "failed" ("preempted" after `preempting`), and if the run
was stopped (StopRun) → "killed"; `preempting: true` → "preempting". Response `{}` (or `{"stopped": true}` when stopped). 404 for an unknown run.
History lines are extended JSON (bare NaN, Infinity, -Infinity allowed).

Storage: upload URLs the fake hands out are `{base}/_storage/put/<token>` and directUrls `{base}/_storage/get/<b64md5-urlsafe>`
(or similar). Storage requests carry NO Authorization header (the fake answers 400 "credentials sent to storage URL" if
one is present) and must carry the uploadHeaders the fake returned (it checks one of them, e.g. `x-fake-signature`).
The PUT body's MD5 must match the md5 given in createArtifactFiles (else 400).

The SDK's own telemetry (`POST {base}/sdk/otel/...`) is answered 200 and dropped.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import gzip
import hashlib
import itertools
import json
import re
import secrets
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = [
    "DEFAULT_API_KEY",
    "TAIL_LINES",
    "AfterApply",
    "Drop",
    "FakeArtifact",
    "FakeRun",
    "FakeWandB",
    "RecordedRequest",
    "Status",
    "Timeout",
    "manifest_digest",
]

DEFAULT_API_KEY = "fake_wandb_api_key_" + "0" * 21
"""The API key a :class:`FakeWandB` accepts unless told otherwise (40 chars, clearly fake)."""

TAIL_LINES = 10
"""How many trailing lines ``historyTail`` / ``eventsTail`` hold."""

HISTORY_FILE = "wandb-history.jsonl"
EVENTS_FILE = "wandb-events.jsonl"
SUMMARY_FILE = "wandb-summary.json"
OUTPUT_FILE = "output.log"

SIGNATURE_HEADER = "x-fake-signature"
_RUN_NAME_FORBIDDEN = set(":;,#?/'")
_FILE_STREAM_PATH = re.compile(r"^/files/([^/]+)/([^/]+)/([^/]+)/file_stream$")
_TERMINAL_STATES = frozenset({"finished", "failed", "crashed", "killed", "preempted"})
_MALFORMED = object()


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class Status:
    """Fault: answer with HTTP ``code`` instead of handling the request.

    ``retry_after`` becomes a ``Retry-After`` header: seconds (int or float) or
    an HTTP-date string, sent verbatim. ``headers`` are added as given.
    """

    code: int
    retry_after: float | str | None = None
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Timeout:
    """Fault: never answer.

    In-process the transport raises :class:`httpx.ReadTimeout` at once; the real
    server holds the request for ``delay`` seconds (make it longer than the
    client's read timeout) and then closes the connection without a response.
    """

    delay: float = 2.0


@dataclass(frozen=True)
class Drop:
    """Fault: close the connection without a response.

    In-process the transport raises :class:`httpx.RemoteProtocolError`.
    """


@dataclass(frozen=True)
class AfterApply:
    """Fault: handle the request (state changes), then fail with ``fault``.

    Models "the server applied it but the answer was lost", to check that a
    client's resend does not duplicate anything.
    """

    fault: Status | Timeout | Drop


Fault = Status | Timeout | Drop | AfterApply


@dataclass
class _Injection:
    fault: Fault
    remaining: int
    match: str | None


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, as seen on the wire.

    ``operation`` is the GraphQL ``operationName`` (``"graphql"`` if the body
    had none), ``"file_stream"``, ``"storage"``, or ``None`` for unknown paths.
    ``body_bytes`` is the request body length as sent (compressed if it was).
    ``history_lines`` counts ``wandb-history.jsonl`` lines in a file_stream body, and
    ``history_offset`` is their offset (``None`` without history lines).
    ``status`` is ``None`` when the fake answered with a timeout or a drop.
    ``fault`` names the injected fault class that shaped the answer, if any.
    """

    method: str
    path: str
    operation: str | None
    body_bytes: int
    history_lines: int
    status: int | None
    response_bytes: int
    fault: str | None
    history_offset: int | None = None


@dataclass
class FakeRun:
    """A run ("bucket") as the fake stores it. Snapshots are returned to tests."""

    entity: str
    project: str
    name: str
    id: str
    username: str
    created_at: str
    heartbeat_at: str
    seq: int
    display_name: str | None = None
    description: str | None = None
    notes: str | None = None
    group: str | None = None
    job_type: str | None = None
    tags: list[str] = field(default_factory=list)
    config: str = "{}"
    """The config exactly as the JSON string last sent to UpsertBucket."""
    sweep_name: str | None = None
    commit: str | None = None
    host: str | None = None
    program: str | None = None
    repo: str | None = None
    state: str = "running"
    stopped: bool = False
    exit_code: int | None = None
    history: dict[int, str] = field(default_factory=dict)
    events: dict[int, str] = field(default_factory=dict)
    output: dict[int, str] = field(default_factory=dict)
    summary: str = "{}"
    """The last ``wandb-summary.json`` line (or ``summaryMetrics``) received."""
    other_files: dict[str, dict[int, str]] = field(default_factory=dict)
    uploaded: list[str] = field(default_factory=list)


@dataclass
class FakeArtifact:
    """An artifact version as the fake stores it."""

    id: str
    entity: str
    project: str
    collection: str
    type: str
    digest: str
    seq: int
    state: str = "PENDING"
    version: int | None = None
    description: str | None = None
    metadata: str | None = None
    aliases: list[str] = field(default_factory=list)
    run_name: str | None = None
    manifest_id: str | None = None
    manifest_md5: str | None = None
    manifest: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)
    """File name -> b64 MD5, as announced through createArtifactFiles."""


@dataclass(frozen=True)
class _Viewer:
    entity: str
    username: str


@dataclass(frozen=True)
class _UploadSlot:
    md5: str
    signature: str
    artifact_id: str
    is_manifest: bool


@dataclass(frozen=True)
class _Route:
    kind: str
    operation: str | None
    payload: Any


@dataclass(frozen=True)
class _Call:
    viewer: _Viewer
    variables: dict[str, Any]
    origin: str


class _Rejected(Exception):
    """A request the fake refuses; becomes an HTTP error response."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class _Operation:
    field: str
    required: tuple[str, ...]
    method: str


_OPERATIONS: dict[str, _Operation] = {
    "Viewer": _Operation("viewer", (), "_op_viewer"),
    "UpsertBucket": _Operation("upsertBucket", ("name", "project"), "_op_upsert_bucket"),
    "RunResumeStatus": _Operation("model", ("project", "entity", "name"), "_op_run_resume_status"),
    "RunState": _Operation("project", ("project", "entity", "name"), "_op_run_state"),
    "StopRun": _Operation("stopRun", ("id",), "_op_stop_run"),
    "Runs": _Operation("project", ("project", "entity"), "_op_runs"),
    "RunHistory": _Operation("project", ("project", "entity", "name"), "_op_run_history"),
    "CreateArtifact": _Operation(
        "createArtifact",
        (
            "entityName",
            "projectName",
            "artifactTypeName",
            "artifactCollectionName",
            "digest",
            "digestAlgorithm",
        ),
        "_op_create_artifact",
    ),
    "CreateArtifactManifest": _Operation(
        "createArtifactManifest",
        ("artifactID", "name", "digest", "entityName", "projectName", "includeUpload"),
        "_op_create_artifact_manifest",
    ),
    "CreateArtifactFiles": _Operation(
        "createArtifactFiles", ("artifactFiles", "storageLayout"), "_op_create_artifact_files"
    ),
    "CommitArtifact": _Operation("commitArtifact", ("artifactID",), "_op_commit_artifact"),
    "ArtifactManifest": _Operation("artifact", ("id",), "_op_artifact_manifest"),
    "ArtifactType": _Operation("project", ("name",), "_op_artifact_type"),
    "ServerFeaturesQuery": _Operation("serverInfo", (), "_op_server_features"),
    "CreateRunFiles": _Operation(
        "createRunFiles", ("entity", "project", "run", "files"), "_op_create_run_files"
    ),
    "ArtifactFileURLsByManifestEntries": _Operation(
        "artifact",
        ("id", "storageLayout", "manifestVersion", "entries"),
        "_op_artifact_file_urls",
    ),
}

# UpsertBucket variable -> FakeRun attribute, for plain optional string fields.
_UPSERT_STRING_FIELDS = {
    "displayName": "display_name",
    "description": "description",
    "notes": "notes",
    "groupName": "group",
    "jobType": "job_type",
    "state": "state",
    "sweep": "sweep_name",
    "commit": "commit",
    "host": "host",
    "program": "program",
    "repo": "repo",
}


# --------------------------------------------------------------------------- the fake


class FakeWandB:
    """A fake W&B server for your tests, in-process or on a real socket.

    State is kept in memory behind a lock; every public method is thread-safe.
    Read methods return copies, so assertions see a stable snapshot.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        entity: str = "test-entity",
        username: str | None = None,
        base_url: str = "https://api.wandb.test",
        max_file_stream_bytes: int = 10 << 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.path not in ("", "/") or not parts.scheme or not parts.netloc:
            raise ValueError(f"base_url must be an origin like https://host, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        """The URL clients use in-process (see :meth:`transport`)."""
        self.api_key = api_key
        """The key created with the fake; :meth:`revoke_key` revokes it by default."""
        self.entity = entity
        """The default entity of :attr:`api_key`'s viewer."""
        self.max_file_stream_bytes = max_file_stream_bytes
        self._clock = clock
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._viewers: dict[str, _Viewer] = {}
        self._projects: dict[tuple[str, str], str] = {}
        self._runs: dict[tuple[str, str, str], FakeRun] = {}
        self._collections: dict[tuple[str, str, str], str] = {}
        self._artifacts: dict[str, FakeArtifact] = {}
        self._blobs: dict[str, bytes] = {}
        self._uploads: dict[str, _UploadSlot] = {}
        self._injections: list[_Injection] = []
        self._outage = False
        self._rate_limit: tuple[int, float] | None = None
        self._requests: list[RecordedRequest] = []
        self._server: _Server | None = None
        self._server_thread: threading.Thread | None = None
        self.add_api_key(api_key, entity=entity, username=username or entity)

    # ------------------------------------------------------------ configuration

    def add_api_key(self, key: str, *, entity: str, username: str | None = None) -> None:
        """Accept ``key`` as the credentials of a viewer whose default entity is ``entity``."""
        with self._lock:
            self._viewers[key] = _Viewer(entity=entity, username=username or entity)

    def revoke_key(self, key: str | None = None) -> None:
        """Make ``key`` (default: :attr:`api_key`) invalid: later requests get 401."""
        with self._lock:
            self._viewers.pop(self.api_key if key is None else key, None)

    def inject(self, fault: Fault, *, count: int = 1, match: str | None = None) -> None:
        """Queue ``fault`` for the next ``count`` requests that ``match``.

        ``match`` selects requests by GraphQL operationName (``"UpsertBucket"``),
        kind (``"graphql"``, ``"file_stream"``, ``"storage"``) or a substring of
        the URL path; ``None`` matches every request. Injections are consumed in
        the order they were queued: each request takes the first matching one.
        """
        if count < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            self._injections.append(_Injection(fault, count, match))

    @property
    def pending_faults(self) -> int:
        """How many injected faults have not fired yet."""
        with self._lock:
            return sum(injection.remaining for injection in self._injections)

    def clear_faults(self) -> None:
        """Forget every injected fault that has not fired yet."""
        with self._lock:
            self._injections.clear()

    def outage(self, on: bool = True) -> None:
        """While on, answer every request with 503 (injected faults wait)."""
        with self._lock:
            self._outage = on

    def rate_limit(self, remaining: int | None, reset: float = 0.0) -> None:
        """Add ``RateLimit-Remaining``/``RateLimit-Reset`` to file_stream answers.

        ``rate_limit(None)`` stops sending the headers.
        """
        with self._lock:
            self._rate_limit = None if remaining is None else (remaining, reset)

    # ------------------------------------------------------------ transports

    def handler(self, request: httpx.Request) -> httpx.Response:
        """Answer ``request`` synchronously; the function behind :meth:`transport`.

        Raises :class:`httpx.ReadTimeout` for a :class:`Timeout` fault and
        :class:`httpx.RemoteProtocolError` for a :class:`Drop` fault.
        """
        outcome = self._process(request)
        if isinstance(outcome, httpx.Response):
            return outcome
        if isinstance(outcome, Timeout):
            raise httpx.ReadTimeout("Timed out reading from the fake W&B server.", request=request)
        raise httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=request
        )

    def transport(self) -> httpx.MockTransport:
        """An in-process transport for both :class:`httpx.Client` and :class:`httpx.AsyncClient`."""
        return httpx.MockTransport(self.handler)

    def start(self) -> str:
        """Serve on ``127.0.0.1`` (ephemeral port, HTTP/1.1) and return the base URL.

        Calling it again while serving returns the same URL.
        """
        with self._lock:
            if self._server is None:
                server = _Server(self)
                thread = threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": 0.01},
                    name="FakeWandB-server",
                    daemon=True,
                )
                thread.start()
                self._server, self._server_thread = server, thread
            return self._server.url

    def stop(self) -> None:
        """Stop the server started by :meth:`start`, closing open connections."""
        with self._lock:
            server, thread = self._server, self._server_thread
            self._server = self._server_thread = None
        if server is None or thread is None:
            return
        server.close()
        thread.join()

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Context manager around :meth:`start`/:meth:`stop`; yields the base URL."""
        url = self.start()
        try:
            yield url
        finally:
            self.stop()

    @property
    def url(self) -> str:
        """The real server's URL while serving, else :attr:`base_url`."""
        with self._lock:
            return self._server.url if self._server is not None else self.base_url

    # ------------------------------------------------------------ state for assertions

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    def projects(self, entity: str | None = None) -> list[str]:
        """Names of the projects of ``entity`` (default: the viewer's entity)."""
        entity = entity or self.entity
        with self._lock:
            return sorted(project for (owner, project) in self._projects if owner == entity)

    def run(self, entity: str, project: str, name: str) -> FakeRun:
        """A snapshot of one run; :class:`KeyError` if it does not exist."""
        with self._lock:
            return copy.deepcopy(self._runs[(entity, project, name)])

    def runs(self, entity: str | None = None, project: str | None = None) -> list[FakeRun]:
        """Snapshots of all runs, optionally of one entity and project, oldest first."""
        with self._lock:
            found = [
                run
                for run in self._runs.values()
                if entity in (None, run.entity) and project in (None, run.project)
            ]
            return copy.deepcopy(sorted(found, key=lambda run: run.seq))

    def history(self, entity: str, project: str, name: str) -> list[dict[str, Any]]:
        """The run's history rows in offset order, parsed (NaN/Infinity allowed)."""
        return [json.loads(line) for line in _in_order(self.run(entity, project, name).history)]

    def events(self, entity: str, project: str, name: str) -> list[dict[str, Any]]:
        """The run's system-metric rows in offset order, parsed."""
        return [json.loads(line) for line in _in_order(self.run(entity, project, name).events)]

    def summary(self, entity: str, project: str, name: str) -> dict[str, Any]:
        """The run's summary (the last summary line received), parsed."""
        parsed: dict[str, Any] = json.loads(self.run(entity, project, name).summary)
        return parsed

    def config(self, entity: str, project: str, name: str) -> dict[str, Any]:
        """The run's config as sent (values still wrapped as ``{"value": v}``), parsed."""
        parsed: dict[str, Any] = json.loads(self.run(entity, project, name).config)
        return parsed

    def artifact(self, artifact_id: str) -> FakeArtifact:
        """A snapshot of one artifact version; :class:`KeyError` if unknown."""
        with self._lock:
            return copy.deepcopy(self._artifacts[artifact_id])

    def artifacts(
        self,
        entity: str | None = None,
        project: str | None = None,
        collection: str | None = None,
    ) -> list[FakeArtifact]:
        """Snapshots of artifact versions, optionally filtered, oldest first."""
        with self._lock:
            found = [
                artifact
                for artifact in self._artifacts.values()
                if entity in (None, artifact.entity)
                and project in (None, artifact.project)
                and collection in (None, artifact.collection)
            ]
            return copy.deepcopy(sorted(found, key=lambda artifact: artifact.seq))

    @property
    def blobs(self) -> dict[str, bytes]:
        """Stored content keyed by base64 MD5 (artifact files and manifests)."""
        with self._lock:
            return dict(self._blobs)

    # ------------------------------------------------------------ request processing

    def _process(self, request: httpx.Request) -> httpx.Response | Timeout | Drop:
        """Handle one request; return the answer, or the Timeout/Drop to act out."""
        body = request.read()
        route = _route(request, body)
        with self._lock:
            fault = None if self._outage else self._take_fault(route, request.url.path)
            outcome: httpx.Response | Timeout | Drop
            if self._outage:
                outcome = _error(route, 503, "service unavailable")
            elif isinstance(fault, Status | Timeout | Drop):
                outcome = _fault_outcome(fault, route)
            else:
                outcome = self._apply(request, route)
                if isinstance(fault, AfterApply):
                    outcome = _fault_outcome(fault.fault, route)
            if isinstance(outcome, httpx.Response) and route.kind == "file_stream":
                self._add_rate_limit_headers(outcome)
            self._record(request, route, body, outcome, fault)
        return outcome

    def _take_fault(self, route: _Route, path: str) -> Fault | None:
        for injection in self._injections:
            match = injection.match
            if match is None or match in (route.kind, route.operation) or match in path:
                injection.remaining -= 1
                if injection.remaining == 0:
                    self._injections.remove(injection)
                return injection.fault
        return None

    def _add_rate_limit_headers(self, response: httpx.Response) -> None:
        if self._rate_limit is not None:
            remaining, reset = self._rate_limit
            response.headers["RateLimit-Remaining"] = str(remaining)
            response.headers["RateLimit-Reset"] = _number(reset)

    def _record(
        self,
        request: httpx.Request,
        route: _Route,
        body: bytes,
        outcome: httpx.Response | Timeout | Drop,
        fault: Fault | None,
    ) -> None:
        response = outcome if isinstance(outcome, httpx.Response) else None
        self._requests.append(
            RecordedRequest(
                method=request.method,
                path=request.url.path,
                operation=route.operation,
                body_bytes=len(body),
                history_lines=_history_line_count(route),
                status=None if response is None else response.status_code,
                response_bytes=0 if response is None else len(response.content),
                fault=None if fault is None else type(fault).__name__,
                history_offset=_history_offset(route),
            )
        )

    def _apply(self, request: httpx.Request, route: _Route) -> httpx.Response:
        try:
            if route.kind == "graphql":
                return self._graphql(request, route)
            if route.kind == "file_stream":
                return self._file_stream(request, route)
            if route.kind == "storage":
                return self._storage(request)
            if route.kind == "telemetry":
                return httpx.Response(200, json={})  # the SDK's own metrics: accepted, dropped
            raise _Rejected(f"no such endpoint: {request.method} {request.url.path}", 404)
        except _Rejected as rejected:
            return _error(route, rejected.status, str(rejected))

    def _authenticate(self, request: httpx.Request) -> _Viewer:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            raise _Rejected("missing Basic credentials", 401)
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise _Rejected("malformed Basic credentials", 401) from None
        viewer = self._viewers.get(decoded.partition(":")[2])
        if viewer is None:
            raise _Rejected("invalid API key", 401)
        return viewer

    # ------------------------------------------------------------ GraphQL

    def _graphql(self, request: httpx.Request, route: _Route) -> httpx.Response:
        if request.method != "POST":
            raise _Rejected("use POST for /graphql", 405)
        viewer = self._authenticate(request)
        payload = route.payload
        if payload is _MALFORMED or not isinstance(payload, dict):
            raise _Rejected("request body is not a JSON object")
        name, query = _operation_name(payload), payload.get("query")
        variables = payload.get("variables") or {}
        if isinstance(variables, dict) and isinstance(variables.get("input"), dict):
            # the SDK's mutations take one input object: `mutation X($input: XInput!)`
            variables = {**variables["input"], **{k: v for k, v in variables.items()
                                                  if k != "input"}}
        operation = _OPERATIONS.get(name) if isinstance(name, str) else None
        if operation is None:
            raise _Rejected(f"unknown operationName {name!r}")
        if not isinstance(query, str) or not re.search(rf"\b{operation.field}\b", query):
            raise _Rejected(f"query for {name} must select the field {operation.field!r}")
        if not isinstance(variables, dict):
            raise _Rejected("variables must be a JSON object")
        for required in operation.required:
            if variables.get(required) is None:
                raise _Rejected(f'Variable "${required}" of required type was not provided.')
        call = _Call(viewer, variables, _origin(request))
        data = getattr(self, operation.method)(call)
        return _json_response(200, {"data": data})

    def _op_viewer(self, call: _Call) -> dict[str, Any]:
        viewer = call.viewer
        return {
            "viewer": {
                "id": _node_id("User", viewer.username),
                "entity": viewer.entity,
                "username": viewer.username,
                "email": f"{viewer.username}@example.test",
                "flags": "{}",
                "teams": {"edges": []},
            }
        }

    def _op_upsert_bucket(self, call: _Call) -> dict[str, Any]:
        v = call.variables
        name, project = _string(v, "name"), _string(v, "project")
        entity = _optional_string(v, "entity") or call.viewer.entity
        _check_run_name(name)
        config = _optional_json_object_string(v, "config")
        summary = _optional_json_object_string(v, "summaryMetrics")
        tags = _optional_string_list(v, "tags")
        fields = {attr: _optional_string(v, var) for var, attr in _UPSERT_STRING_FIELDS.items()}
        storage_id = _optional_string(v, "id")
        run = (
            self._runs.get((entity, project, name))
            if storage_id is None
            else self._run_by_id(storage_id)
        )
        inserted = run is None
        if run is None:
            run = self._create_run(entity, project, name, call.viewer)
        for attr, value in fields.items():
            if value is not None:
                setattr(run, attr, value)
        if config is not None:
            run.config = config
        if summary is not None:
            run.summary = summary
        if tags is not None:
            run.tags = tags
        return {"upsertBucket": {"bucket": self._bucket(run), "inserted": inserted}}

    def _create_run(self, entity: str, project: str, name: str, viewer: _Viewer) -> FakeRun:
        self._ensure_project(entity, project)
        now = self._now()
        run = FakeRun(
            entity=entity,
            project=project,
            name=name,
            id=_node_id("Run", "v1", name, project, entity),
            username=viewer.username,
            created_at=now,
            heartbeat_at=now,
            seq=next(self._ids),
            display_name=name,
        )
        self._runs[(entity, project, name)] = run
        return run

    def _bucket(self, run: FakeRun) -> dict[str, Any]:
        return {
            "id": run.id,
            "name": run.name,
            "displayName": run.display_name,
            "description": run.description,
            "config": run.config,
            "sweepName": run.sweep_name,
            "project": {
                "id": self._projects[(run.entity, run.project)],
                "name": run.project,
                "entity": {"id": _node_id("Entity", run.entity), "name": run.entity},
            },
            "historyLineCount": len(run.history),
        }

    def _op_run_resume_status(self, call: _Call) -> dict[str, Any]:
        entity, project, name = (_string(call.variables, k) for k in ("entity", "project", "name"))
        project_id = self._projects.get((entity, project))
        if project_id is None:
            return {"model": None}
        run = self._runs.get((entity, project, name))
        bucket = None
        if run is not None:
            bucket = {
                "id": run.id,
                "name": run.name,
                "summaryMetrics": run.summary,
                "displayName": run.display_name,
                "logLineCount": len(run.output),
                "historyLineCount": len(run.history),
                "eventsLineCount": len(run.events),
                "historyTail": json.dumps(_in_order(run.history)[-TAIL_LINES:]),
                "eventsTail": json.dumps(_in_order(run.events)[-TAIL_LINES:]),
                "config": run.config,
                "tags": list(run.tags),
                "notes": run.notes,
                "wandbConfig": _wandb_config(run.config),
            }
        return {
            "model": {
                "id": project_id,
                "name": project,
                "entity": {"id": _node_id("Entity", entity), "name": entity},
                "bucket": bucket,
            }
        }

    def _op_run_state(self, call: _Call) -> dict[str, Any]:
        entity, project, name = (_string(call.variables, k) for k in ("entity", "project", "name"))
        if (entity, project) not in self._projects:
            return {"project": None}
        run = self._runs.get((entity, project, name))
        return {"project": {"run": None if run is None else {"state": run.state}}}

    def _op_stop_run(self, call: _Call) -> dict[str, Any]:
        run = self._run_by_id(_string(call.variables, "id"))
        run.stopped = True
        return {"stopRun": {"success": True}}

    def _op_runs(self, call: _Call) -> dict[str, Any]:
        v = call.variables
        entity, project = _string(v, "entity"), _string(v, "project")
        project_id = self._projects.get((entity, project))
        if project_id is None:
            return {"project": None}
        filters = json.loads(_optional_json_object_string(v, "filters") or "{}")
        order = _optional_string(v, "order") or "+created_at"
        per_page = 50 if v.get("perPage") is None else v["perPage"]
        if not isinstance(per_page, int) or isinstance(per_page, bool) or per_page < 1:
            raise _Rejected("perPage must be a positive Int")
        start = _decode_cursor(_optional_string(v, "cursor"))
        runs = [
            run
            for run in self._runs.values()
            if (run.entity, run.project) == (entity, project)
            and _matches(_filter_doc(run), filters)
        ]
        runs.sort(key=_order_key(order), reverse=order.startswith("-"))
        page = runs[start : start + per_page]
        edges = [
            {"node": self._run_node(run), "cursor": _encode_cursor(start + i + 1)}
            for i, run in enumerate(page)
        ]
        return {
            "project": {
                "internalId": project_id,
                "runCount": len(runs),
                "readOnly": False,
                "runs": {
                    "edges": edges,
                    "pageInfo": {
                        "endCursor": edges[-1]["cursor"] if edges else None,
                        "hasNextPage": start + per_page < len(runs),
                    },
                },
            }
        }

    def _run_node(self, run: FakeRun) -> dict[str, Any]:
        events = _in_order(run.events)
        return {
            "id": run.id,
            "projectId": self._projects[(run.entity, run.project)],
            "tags": list(run.tags),
            "name": run.name,
            "displayName": run.display_name,
            "sweepName": run.sweep_name,
            "state": run.state,
            "config": run.config,
            "group": run.group,
            "jobType": run.job_type,
            "commit": run.commit,
            "readOnly": False,
            "createdAt": run.created_at,
            "heartbeatAt": run.heartbeat_at,
            "description": run.description,
            "notes": run.notes,
            "systemMetrics": events[-1] if events else "{}",
            "summaryMetrics": run.summary,
            "historyLineCount": len(run.history),
            "user": {"name": run.username, "username": run.username},
            "historyKeys": json.dumps(_history_keys(run.history)),
        }

    def _op_run_history(self, call: _Call) -> dict[str, Any]:
        entity, project, name = (_string(call.variables, k) for k in ("entity", "project", "name"))
        if (entity, project) not in self._projects:
            return {"project": None}
        run = self._runs.get((entity, project, name))
        return {"project": {"run": None if run is None else {"history": _in_order(run.history)}}}

    def _op_create_artifact(self, call: _Call) -> dict[str, Any]:
        v = call.variables
        entity, project = _string(v, "entityName"), _string(v, "projectName")
        type_name, collection = _string(v, "artifactTypeName"), _string(v, "artifactCollectionName")
        digest = _string(v, "digest")
        if _string(v, "digestAlgorithm") != "MANIFEST_MD5":
            raise _Rejected("digestAlgorithm must be MANIFEST_MD5")
        run_name = _optional_string(v, "runName")
        description = _optional_string(v, "description")
        metadata = _optional_json_object_string(v, "metadata")
        aliases = _aliases(v.get("aliases"))
        if run_name is not None and (entity, project, run_name) not in self._runs:
            raise _Rejected(f"run {entity}/{project}/{run_name} not found")
        key = (entity, project, collection)
        known_type = self._collections.get(key)
        if known_type not in (None, type_name):
            raise _Rejected(f"collection {collection!r} holds artifacts of type {known_type!r}")
        self._ensure_project(entity, project)
        self._collections[key] = type_name
        members = [
            a for a in self._artifacts.values() if (a.entity, a.project, a.collection) == key
        ]
        dedupe = v.get("enableDigestDeduplication") is not False
        for existing in members:
            if existing.digest == digest and (dedupe or existing.state == "PENDING"):
                return self._created_artifact(existing, members)
        artifact = FakeArtifact(
            id=_node_id("Artifact", str(next(self._ids))),
            entity=entity,
            project=project,
            collection=collection,
            type=type_name,
            digest=digest,
            seq=next(self._ids),
            description=description,
            metadata=metadata,
            aliases=aliases,
            run_name=run_name,
        )
        self._artifacts[artifact.id] = artifact
        return self._created_artifact(artifact, members)

    def _created_artifact(
        self, artifact: FakeArtifact, members: list[FakeArtifact]
    ) -> dict[str, Any]:
        committed = [a for a in members if a.state == "COMMITTED"]
        latest = max(committed, key=lambda a: a.seq) if committed else None
        return {
            "createArtifact": {
                "artifact": {
                    "id": artifact.id,
                    "state": artifact.state,
                    "artifactSequence": {
                        "latestArtifact": None if latest is None else {"id": latest.id}
                    },
                }
            }
        }

    def _op_create_artifact_manifest(self, call: _Call) -> dict[str, Any]:
        v = call.variables
        artifact = self._pending_artifact(_string(v, "artifactID"))
        name, digest = _string(v, "name"), _string(v, "digest")
        # the input field `type`: trackmux names its variable $type, the SDK $manifestType
        v = {**v, "type": v.get("type", v.get("manifestType"))}
        if _string(v, "type") not in ("FULL", "INCREMENTAL", "PATCH"):
            raise _Rejected("type must be FULL, INCREMENTAL or PATCH")
        include_upload = v.get("includeUpload")
        if not isinstance(include_upload, bool):
            raise _Rejected("includeUpload must be a Boolean")
        if digest:
            _check_b64_md5(digest)
        if artifact.manifest_id is None:
            artifact.manifest_id = _node_id("ArtifactManifest", str(next(self._ids)))
        upload_url: str | None = None
        upload_headers: list[str] = []
        if include_upload:
            upload_url, upload_headers = self._upload_slot(call.origin, digest, artifact, True)
        return {
            "createArtifactManifest": {
                "artifactManifest": {
                    "id": artifact.manifest_id,
                    "file": {
                        "id": _node_id("File", artifact.manifest_id),
                        "name": name,
                        "displayName": name,
                        "uploadUrl": upload_url,
                        "uploadHeaders": upload_headers,
                    },
                }
            }
        }

    def _op_create_artifact_files(self, call: _Call) -> dict[str, Any]:
        v = call.variables
        if _string(v, "storageLayout") not in ("V1", "V2"):
            raise _Rejected("storageLayout must be V1 or V2")
        entries = v["artifactFiles"]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise _Rejected("artifactFiles must be a list of objects")
        checked = []
        for entry in entries:
            artifact = self._pending_artifact(_string(entry, "artifactID"))
            if _string(entry, "artifactManifestID") != artifact.manifest_id:
                raise _Rejected("artifactManifestID does not belong to the artifact")
            name, md5 = _string(entry, "name"), _string(entry, "md5")
            checked.append((artifact, name, _check_b64_md5(md5)))
        edges = []
        for artifact, name, md5 in checked:
            artifact.files[name] = md5
            upload_url: str | None = None
            upload_headers: list[str] = []
            if md5 not in self._blobs:
                upload_url, upload_headers = self._upload_slot(call.origin, md5, artifact, False)
            node = {
                "id": _node_id("File", artifact.id, name),
                "name": name,
                "displayName": name.rsplit("/", 1)[-1],
                "uploadUrl": upload_url,
                "uploadHeaders": upload_headers,
                "storagePath": f"wandb_artifacts/{_md5_hex(md5)}",
                "uploadMultipartUrls": None,
                "artifact": {"id": artifact.id},
            }
            edges.append({"node": node})
        return {"createArtifactFiles": {"files": {"edges": edges}}}

    def _op_artifact_type(self, call: _Call) -> dict[str, Any]:
        """The type of ``name`` (``collection:alias``), which the SDK checks before logging."""
        v = call.variables
        entity = _optional_string(v, "entity") or call.viewer.entity
        project = _optional_string(v, "project") or "uncategorized"
        collection = _string(v, "name").split(":", 1)[0]
        found = [a for a in self._artifacts.values()
                 if (a.entity, a.project, a.collection) == (entity, project, collection)]
        artifact = {"artifactType": {"name": found[-1].type}} if found else None
        return {"project": {"artifact": artifact}}

    def _op_server_features(self, call: _Call) -> dict[str, Any]:
        """No optional server features (the SDK then uses the baseline protocol)."""
        return {"serverInfo": {"features": []}}

    def _op_create_run_files(self, call: _Call) -> dict[str, Any]:
        """Upload URLs for run files (``config.yaml``, ``requirements.txt``...); stored as
        blobs, not otherwise kept."""
        v = call.variables
        files = v["files"]
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise _Rejected("files must be a list of strings")
        run = self._runs.get((_string(v, "entity"), _string(v, "project"), _string(v, "run")))
        if run is None:
            raise _Rejected("no such run", 404)
        signature = secrets.token_hex(8)  # one set of upload headers for every file
        slots = []
        for name in files:
            token = secrets.token_hex(12)
            self._uploads[token] = _UploadSlot("", signature, "", False)
            slots.append({"name": name, "uploadUrl": f"{call.origin}/_storage/put/{token}"})
        return {
            "createRunFiles": {
                "runID": run.id,
                "uploadHeaders": [f"{SIGNATURE_HEADER}:{signature}"],
                "files": slots,
            }
        }

    def _op_commit_artifact(self, call: _Call) -> dict[str, Any]:
        artifact = self._artifact_by_id(_string(call.variables, "artifactID"))
        if artifact.state != "COMMITTED":
            if artifact.manifest is None:
                raise _Rejected("cannot commit: the manifest was not uploaded")
            needed = set(artifact.files.values())
            for entry in artifact.manifest.get("contents", {}).values():
                if isinstance(entry, dict) and "ref" not in entry and "digest" in entry:
                    needed.add(entry["digest"])
            missing = sorted(needed - self._blobs.keys())
            if missing:
                raise _Rejected(f"cannot commit: {len(missing)} file(s) not uploaded: {missing}")
            collection = (artifact.entity, artifact.project, artifact.collection)
            versions = [
                a
                for a in self._artifacts.values()
                if (a.entity, a.project, a.collection) == collection and a.state == "COMMITTED"
            ]
            for other in versions:
                other.aliases = [alias for alias in other.aliases if alias != "latest"]
            artifact.state = "COMMITTED"
            artifact.version = len(versions)
            artifact.aliases = [*artifact.aliases, "latest"]
        return {"commitArtifact": {"artifact": {"id": artifact.id, "digest": artifact.digest}}}

    def _op_artifact_manifest(self, call: _Call) -> dict[str, Any]:
        artifact = self._artifacts.get(_string(call.variables, "id"))
        if artifact is None:
            return {"artifact": None}
        if artifact.manifest_md5 is None:
            return {"artifact": {"currentManifest": None}}
        direct_url = _download_url(call.origin, artifact.manifest_md5)
        return {
            "artifact": {
                "currentManifest": {"id": artifact.manifest_id, "file": {"directUrl": direct_url}}
            }
        }

    def _op_artifact_file_urls(self, call: _Call) -> dict[str, Any]:
        v = call.variables
        artifact = self._artifacts.get(_string(v, "id"))
        if artifact is None:
            return {"artifact": None}
        entries = v["entries"]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise _Rejected("entries must be a list of objects")
        edges = [
            {
                "node": {
                    "name": _string(entry, "name"),
                    "directUrl": _download_url(
                        call.origin, _check_b64_md5(_string(entry, "digest"))
                    ),
                }
            }
            for entry in entries
        ]
        return {"artifact": {"filesByManifestEntries": {"edges": edges}}}

    # ------------------------------------------------------------ file_stream

    def _file_stream(self, request: httpx.Request, route: _Route) -> httpx.Response:
        if request.method != "POST":
            raise _Rejected("use POST for file_stream", 405)
        self._authenticate(request)
        if len(request.content) > self.max_file_stream_bytes:
            raise _Rejected("request body too large", 413)
        match = _FILE_STREAM_PATH.match(request.url.path)
        assert match is not None
        run = self._runs.get((match[1], match[2], match[3]))
        if run is None:
            raise _Rejected(f"run {match[1]}/{match[2]}/{match[3]} not found", 404)
        payload = route.payload
        if payload is _MALFORMED or not isinstance(payload, dict):
            raise _Rejected("request body is not a JSON object")
        chunks = _file_stream_chunks(payload)
        uploaded = payload.get("uploaded", [])
        if not isinstance(uploaded, list) or not all(isinstance(u, str) for u in uploaded):
            raise _Rejected("uploaded must be a list of strings")
        complete = payload.get("complete") is True
        exit_code = payload.get("exitcode", 0)
        if complete and (not isinstance(exit_code, int) or isinstance(exit_code, bool)):
            raise _Rejected("exitcode must be an integer")
        for name, (offset, lines) in chunks.items():
            if name == SUMMARY_FILE:
                if lines:
                    run.summary = lines[-1]
                continue
            stored = {HISTORY_FILE: run.history, EVENTS_FILE: run.events, OUTPUT_FILE: run.output}
            target = stored[name] if name in stored else run.other_files.setdefault(name, {})
            for i, line in enumerate(lines):
                target[offset + i] = line
        run.uploaded.extend(u for u in uploaded if u not in run.uploaded)
        run.heartbeat_at = self._now()
        if complete:
            run.exit_code = exit_code
            if run.stopped:
                run.state = "killed"
            elif exit_code == 0:
                run.state = "finished"
            else:
                run.state = "preempted" if run.state == "preempting" else "failed"
        elif payload.get("preempting") is True:
            run.state = "preempting"
        elif run.state == "pending" or (run.state in _TERMINAL_STATES and chunks):
            run.state = "running"
        return _json_response(200, {"stopped": True} if run.stopped else {})

    # ------------------------------------------------------------ storage

    def _storage(self, request: httpx.Request) -> httpx.Response:
        if "authorization" in request.headers:
            raise _Rejected("credentials sent to storage URL")
        _, _, action, token = request.url.path.split("/", 3)
        if action == "put" and request.method == "PUT":
            return self._storage_put(request, token)
        if action == "get" and request.method in ("GET", "HEAD"):
            blob = self._blobs.get(token.replace("-", "+").replace("_", "/"))
            if blob is None:
                raise _Rejected("no such object", 404)
            return httpx.Response(
                200, content=blob, headers={"Content-Type": "application/octet-stream"}
            )
        raise _Rejected(f"{request.method} not allowed on {request.url.path}", 405)

    def _storage_put(self, request: httpx.Request, token: str) -> httpx.Response:
        slot = self._uploads.get(token)
        if slot is None:
            raise _Rejected("no such upload URL", 404)
        if request.headers.get(SIGNATURE_HEADER) != slot.signature:
            raise _Rejected("signature header missing or wrong", 403)
        body = request.content
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        if slot.md5 and md5 != slot.md5:
            raise _Rejected(f"body MD5 {md5} does not match the announced {slot.md5}")
        self._blobs[md5] = body
        if slot.is_manifest:
            artifact = self._artifacts[slot.artifact_id]
            artifact.manifest_md5 = md5
            try:
                manifest = json.loads(body)
            except ValueError:
                manifest = None
            artifact.manifest = manifest if isinstance(manifest, dict) else None
        return httpx.Response(200)

    # ------------------------------------------------------------ helpers needing state

    def _now(self) -> str:
        moment = datetime.fromtimestamp(self._clock(), UTC)
        return moment.replace(tzinfo=None).isoformat(timespec="seconds")

    def _ensure_project(self, entity: str, project: str) -> None:
        self._projects.setdefault((entity, project), _node_id("Project", "v1", project, entity))

    def _run_by_id(self, storage_id: str) -> FakeRun:
        for run in self._runs.values():
            if run.id == storage_id:
                return run
        raise _Rejected(f"run with id {storage_id!r} not found")

    def _artifact_by_id(self, artifact_id: str) -> FakeArtifact:
        artifact = self._artifacts.get(artifact_id)
        if artifact is None:
            raise _Rejected(f"artifact {artifact_id!r} not found")
        return artifact

    def _pending_artifact(self, artifact_id: str) -> FakeArtifact:
        artifact = self._artifact_by_id(artifact_id)
        if artifact.state != "PENDING":
            raise _Rejected(f"artifact {artifact_id!r} is {artifact.state}, not PENDING")
        return artifact

    def _upload_slot(
        self, origin: str, md5: str, artifact: FakeArtifact, is_manifest: bool
    ) -> tuple[str, list[str]]:
        token, signature = secrets.token_hex(12), secrets.token_hex(8)
        self._uploads[token] = _UploadSlot(md5, signature, artifact.id, is_manifest)
        return f"{origin}/_storage/put/{token}", [f"{SIGNATURE_HEADER}:{signature}"]


# --------------------------------------------------------------------------- real server


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeWandB) -> None:
        super().__init__(("127.0.0.1", 0), _RequestHandler)
        self.fake = fake
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.closing = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup (``getfqdn``), which can be slow."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def close(self) -> None:
        self.closing.set()
        self.shutdown()
        with self.connections_lock:
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connections closed by clients or by :meth:`close` are not errors worth printing."""


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; requests are recorded in FakeWandB.requests."""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = do_GET

    def _serve(self) -> None:
        body = self._read_body()
        request = httpx.Request(
            self.command,
            self.server.url + self.path,
            headers=[(k, v) for k, v in self.headers.items() if k.lower() != "transfer-encoding"],
            content=body,
        )
        try:
            outcome = self.server.fake._process(request)
        except Exception as error:
            outcome = _json_response(500, {"error": f"FakeWandB bug: {error!r}"})
        if isinstance(outcome, httpx.Response):
            self._write(outcome)
            return
        if isinstance(outcome, Timeout):
            self.server.closing.wait(outcome.delay)
        self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _write(self, response: httpx.Response) -> None:
        content = response.content
        self.send_response(response.status_code)
        for key, value in response.headers.multi_items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)


# --------------------------------------------------------------------------- pure helpers


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """The artifact digest (hex, ``MANIFEST_MD5``) of a manifest JSON object.

    MD5 of ``"wandb-artifact-manifest-v1\\n"`` plus ``"<path>:<b64 md5>\\n"`` per
    entry sorted by path, as the SDK computes it; handy in assertions.
    """
    text = "wandb-artifact-manifest-v1\n" + "".join(
        f"{path}:{entry['digest']}\n" for path, entry in sorted(manifest["contents"].items())
    )
    return hashlib.md5(text.encode()).hexdigest()


_OPERATION_NAME = re.compile(r"^\s*(?:query|mutation)\s+(\w+)")


def _operation_name(payload: Any) -> str | None:
    """``operationName``, else the name of the document's one operation (GraphQL allows
    leaving it out, or empty, then: the SDK's Python side does)."""
    if not isinstance(payload, dict):
        return None
    name = payload.get("operationName")
    if isinstance(name, str) and name:
        return name
    query = payload.get("query")
    found = _OPERATION_NAME.match(query) if isinstance(query, str) else None
    return found.group(1) if found else name if isinstance(name, str) else None


def _route(request: httpx.Request, body: bytes) -> _Route:
    path = request.url.path
    if path == "/graphql":
        payload = _parse_json(body)
        name = _operation_name(payload)
        return _Route("graphql", name if isinstance(name, str) else "graphql", payload)
    if _FILE_STREAM_PATH.match(path):
        if request.headers.get("content-encoding", "").lower() == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError):
                return _Route("file_stream", "file_stream", _MALFORMED)
        return _Route("file_stream", "file_stream", _parse_json(body))
    if path.startswith("/_storage/") and path.count("/") == 3:
        return _Route("storage", "storage", None)
    if path.startswith("/sdk/otel/"):
        return _Route("telemetry", "telemetry", None)
    return _Route("unknown", None, None)


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return _MALFORMED


def _history_offset(route: _Route) -> int | None:
    if not _history_line_count(route):
        return None
    offset = route.payload["files"][HISTORY_FILE].get("offset", 0)
    return offset if isinstance(offset, int) else None


def _history_line_count(route: _Route) -> int:
    payload = route.payload
    if route.kind != "file_stream" or not isinstance(payload, dict):
        return 0
    files = payload.get("files")
    chunk = files.get(HISTORY_FILE) if isinstance(files, dict) else None
    content = chunk.get("content") if isinstance(chunk, dict) else None
    return len(content) if isinstance(content, list) else 0


def _file_stream_chunks(payload: dict[str, Any]) -> dict[str, tuple[int, list[str]]]:
    """Validate a file_stream ``files`` object fully before anything is stored."""
    files = payload.get("files", {})
    if not isinstance(files, dict):
        raise _Rejected("files must be an object")
    chunks = {}
    for name, chunk in files.items():
        offset = chunk.get("offset", 0) if isinstance(chunk, dict) else None
        content = chunk.get("content") if isinstance(chunk, dict) else None
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise _Rejected(f"{name}: offset must be a non-negative integer")
        if not isinstance(content, list) or not all(isinstance(c, str) for c in content):
            raise _Rejected(f"{name}: content must be a list of strings")
        if name in (HISTORY_FILE, EVENTS_FILE, SUMMARY_FILE):
            for line in content:
                if not isinstance(_parse_json(line.encode()), dict):
                    raise _Rejected(f"{name}: line is not a JSON object: {line[:80]!r}")
        chunks[name] = (offset, content)
    return chunks


def _fault_outcome(
    fault: Status | Timeout | Drop, route: _Route
) -> httpx.Response | Timeout | Drop:
    if not isinstance(fault, Status):
        return fault
    response = _error(route, fault.code, f"injected HTTP {fault.code}")
    if fault.retry_after is not None:
        retry_after = fault.retry_after
        response.headers["Retry-After"] = (
            retry_after if isinstance(retry_after, str) else _number(retry_after)
        )
    for key, value in (fault.headers or {}).items():
        response.headers[key] = value
    return response


def _error(route: _Route, status: int, message: str) -> httpx.Response:
    if route.kind == "graphql":
        return _json_response(status, {"errors": [{"message": message}]})
    return _json_response(status, {"error": message})


def _json_response(status: int, body: Any) -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _origin(request: httpx.Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"


def _download_url(origin: str, md5: str) -> str:
    return f"{origin}/_storage/get/{md5.replace('+', '-').replace('/', '_')}"


def _node_id(kind: str, *parts: str) -> str:
    return base64.b64encode(":".join((kind, *parts)).encode()).decode()


def _in_order(lines: dict[int, str]) -> list[str]:
    return [lines[offset] for offset in sorted(lines)]


def _string(variables: Mapping[str, Any], name: str) -> str:
    value = variables.get(name)
    if not isinstance(value, str):
        raise _Rejected(f'Variable "${name}" must be a String')
    return value


def _optional_string(variables: Mapping[str, Any], name: str) -> str | None:
    return None if variables.get(name) is None else _string(variables, name)


def _optional_string_list(variables: Mapping[str, Any], name: str) -> list[str] | None:
    value = variables.get(name)
    if value is not None and (
        not isinstance(value, list) or not all(isinstance(item, str) for item in value)
    ):
        raise _Rejected(f'Variable "${name}" must be a list of Strings')
    return value


def _optional_json_object_string(variables: Mapping[str, Any], name: str) -> str | None:
    """A JSONString variable that must hold a JSON object; returned verbatim."""
    if isinstance(variables.get(name), dict | list):
        raise _Rejected(f'Variable "${name}" must be a JSON string, not a JSON value')
    value = _optional_string(variables, name)
    if value is not None and not isinstance(_parse_json(value.encode()), dict):
        raise _Rejected(f'Variable "${name}" must be a JSON string holding an object')
    return value


def _check_run_name(name: str) -> None:
    if not name or name != name.strip() or _RUN_NAME_FORBIDDEN & set(name):
        raise _Rejected(f"invalid run name {name!r}")


def _check_b64_md5(value: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 16:
        raise _Rejected(f"{value!r} is not a base64 MD5 digest")
    return value


def _md5_hex(b64_md5: str) -> str:
    return base64.b64decode(b64_md5).hex()


def _aliases(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(alias, dict) and isinstance(alias.get("alias"), str) for alias in value
    ):
        raise _Rejected("aliases must be a list of {artifactCollectionName, alias}")
    return [alias["alias"] for alias in value]


def _wandb_config(config: str) -> str:
    internal = json.loads(config).get("_wandb")
    value = internal.get("value") if isinstance(internal, dict) else None
    if isinstance(value, dict) and "t" in value:
        return json.dumps({"t": value["t"]})
    return "{}"


def _history_keys(history: dict[int, str]) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = {}
    last_step = None
    for line in _in_order(history):
        row = json.loads(line)
        if isinstance(row.get("_step"), int):
            last_step = row["_step"]
        for key, value in row.items():
            kind = _json_type(value)
            counts.setdefault(key, {}).setdefault(kind, 0)
            counts[key][kind] += 1
    keys = {
        key: {"typeCounts": [{"type": kind, "count": n} for kind, n in types.items()]}
        for key, types in counts.items()
    }
    return {"keys": keys, "lastStep": last_step}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    return "nil"


def _filter_doc(run: FakeRun) -> dict[str, Any]:
    config = json.loads(run.config)
    return {
        "name": run.name,
        "displayName": run.display_name,
        "state": run.state,
        "group": run.group,
        "jobType": run.job_type,
        "tags": run.tags,
        "createdAt": run.created_at,
        "config": {
            key: value["value"] if isinstance(value, dict) and "value" in value else value
            for key, value in config.items()
        },
        "summary_metrics": json.loads(run.summary),
    }


def _matches(doc: dict[str, Any], query: Any) -> bool:
    if not isinstance(query, dict):
        raise _Rejected("filters must be a JSON object")
    for key, condition in query.items():
        if key in ("$and", "$or"):
            if not isinstance(condition, list):
                raise _Rejected(f"{key} takes a list")
            results = [_matches(doc, sub) for sub in condition]
            if not (all(results) if key == "$and" else any(results)):
                return False
        elif key.startswith("$"):
            raise _Rejected(f"unsupported filter operator {key}")
        elif not _field_matches(_lookup(doc, key), condition):
            return False
    return True


def _lookup(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _field_matches(value: Any, condition: Any) -> bool:
    if not (
        isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition)
    ):
        return _equals(value, condition)
    return all(_operator(value, op, arg) for op, arg in condition.items())


def _equals(value: Any, expected: Any) -> bool:
    if isinstance(value, list) and not isinstance(expected, list):
        return expected in value
    return bool(value == expected)


def _operator(value: Any, op: str, arg: Any) -> bool:
    if op in ("$in", "$nin"):
        if not isinstance(arg, list):
            raise _Rejected(f"{op} takes a list")
        found = any(_equals(value, item) for item in arg)
        return found if op == "$in" else not found
    comparisons: dict[str, Callable[[Any, Any], bool]] = {
        "$eq": _equals,
        "$ne": lambda a, b: not _equals(a, b),
        "$exists": lambda a, b: (a is not None) == bool(b),
        "$gt": lambda a, b: a > b,
        "$gte": lambda a, b: a >= b,
        "$lt": lambda a, b: a < b,
        "$lte": lambda a, b: a <= b,
    }
    if op not in comparisons:
        raise _Rejected(f"unsupported filter operator {op}")
    try:
        return comparisons[op](value, arg)
    except TypeError:
        return False


def _order_key(order: str) -> Callable[[FakeRun], Any]:
    keys: dict[str, Callable[[FakeRun], Any]] = {
        "created_at": lambda run: run.seq,
        "heartbeat_at": lambda run: (run.heartbeat_at, run.seq),
        "name": lambda run: run.name,
    }
    key = keys.get(order.lstrip("+-"))
    if key is None:
        raise _Rejected(f"unsupported order {order!r} (FakeWandB knows {sorted(keys)})")
    return key


def _encode_cursor(position: int) -> str:
    return base64.b64encode(f"cursor:{position}".encode()).decode()


def _decode_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        return int(base64.b64decode(cursor).decode().removeprefix("cursor:"))
    except (ValueError, binascii.Error):
        raise _Rejected(f"invalid cursor {cursor!r}") from None
