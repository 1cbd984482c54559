"""Tests for ``trackmux_wandb.testing``: the fake W&B server, in-process and on a socket."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import http.client
import json
import math
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from trackmux_wandb.testing import (
    DEFAULT_API_KEY,
    TAIL_LINES,
    AfterApply,
    Drop,
    FakeWandB,
    Status,
    Timeout,
    manifest_digest,
)

ENTITY = "test-entity"
AUTH = httpx.BasicAuth("api", DEFAULT_API_KEY)
TOP_LEVEL_FIELDS = {
    "Viewer": "viewer",
    "UpsertBucket": "upsertBucket",
    "RunResumeStatus": "model",
    "RunState": "project",
    "StopRun": "stopRun",
    "Runs": "project",
    "RunHistory": "project",
    "CreateArtifact": "createArtifact",
    "CreateArtifactManifest": "createArtifactManifest",
    "CreateArtifactFiles": "createArtifactFiles",
    "CommitArtifact": "commitArtifact",
    "ArtifactManifest": "artifact",
    "ArtifactFileURLsByManifestEntries": "artifact",
}
# The fake checks the operationName and the top-level field, not the selection set.
QUERIES = {op: f"query {op} {{ {field} {{ id }} }}" for op, field in TOP_LEVEL_FIELDS.items()}


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(params=["in_process", pytest.param("server", marks=pytest.mark.slow)])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fake() -> FakeWandB:
    return FakeWandB()


@contextlib.contextmanager
def client_for(fake: FakeWandB, mode: str, timeout: float = 5.0) -> Iterator[httpx.Client]:
    """An httpx client talking to ``fake`` in-process or through its real server."""
    if mode == "in_process":
        with httpx.Client(base_url=fake.base_url, transport=fake.transport(), timeout=timeout) as c:
            yield c
    else:
        with fake.serve() as url, httpx.Client(base_url=url, timeout=timeout) as c:
            yield c


@pytest.fixture
def client(fake: FakeWandB, mode: str) -> Iterator[httpx.Client]:
    with client_for(fake, mode) as c:
        yield c


def gql(
    client: httpx.Client,
    operation: str,
    variables: dict[str, Any] | None = None,
    *,
    auth: httpx.Auth | None = AUTH,
) -> httpx.Response:
    body = {"query": QUERIES[operation], "variables": variables or {}, "operationName": operation}
    return client.post("/graphql", json=body, auth=auth or httpx.USE_CLIENT_DEFAULT)


def data(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()["data"]
    return payload


def upsert(client: httpx.Client, name: str = "run1", project: str = "proj", **fields: Any) -> Any:
    return data(gql(client, "UpsertBucket", {"name": name, "project": project, **fields}))[
        "upsertBucket"
    ]


def stream(
    client: httpx.Client, body: dict[str, Any], run: str = "run1", project: str = "proj"
) -> httpx.Response:
    return client.post(f"/files/{ENTITY}/{project}/{run}/file_stream", json=body, auth=AUTH)


def history_chunk(offset: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "files": {
            "wandb-history.jsonl": {"offset": offset, "content": [json.dumps(r) for r in rows]}
        }
    }


def md5_b64(content: bytes) -> str:
    return base64.b64encode(hashlib.md5(content).digest()).decode()


def put(client: httpx.Client, url: str, headers: list[str], content: bytes) -> httpx.Response:
    parsed = dict(header.split(":", 1) for header in headers)
    return client.put(url, headers=parsed, content=content)


def create_artifact(
    client: httpx.Client, digest: str, collection: str = "dataset", **extra: Any
) -> dict[str, Any]:
    variables = {
        "entityName": ENTITY,
        "projectName": "proj",
        "artifactTypeName": "dataset",
        "artifactCollectionName": collection,
        "digest": digest,
        "digestAlgorithm": "MANIFEST_MD5",
        **extra,
    }
    artifact: dict[str, Any] = data(gql(client, "CreateArtifact", variables))["createArtifact"][
        "artifact"
    ]
    return artifact


def create_manifest(
    client: httpx.Client, artifact_id: str, digest: str = "", include_upload: bool = False
) -> dict[str, Any]:
    variables = {
        "artifactID": artifact_id,
        "name": "wandb_manifest.json",
        "digest": digest,
        "entityName": ENTITY,
        "projectName": "proj",
        "type": "FULL",
        "includeUpload": include_upload,
    }
    manifest: dict[str, Any] = data(gql(client, "CreateArtifactManifest", variables))[
        "createArtifactManifest"
    ]["artifactManifest"]
    return manifest


def create_files(
    client: httpx.Client, artifact_id: str, manifest_id: str, files: dict[str, bytes]
) -> list[dict[str, Any]]:
    entries = [
        {"artifactID": artifact_id, "artifactManifestID": manifest_id, "name": n, "md5": md5_b64(b)}
        for n, b in files.items()
    ]
    variables = {"artifactFiles": entries, "storageLayout": "V2"}
    edges = data(gql(client, "CreateArtifactFiles", variables))["createArtifactFiles"]["files"]
    return [edge["node"] for edge in edges["edges"]]


def manifest_for(files: dict[str, bytes]) -> dict[str, Any]:
    return {
        "version": 1,
        "storagePolicy": "wandb-storage-policy-v1",
        "storagePolicyConfig": {"storageLayout": "V2"},
        "contents": {n: {"digest": md5_b64(b), "size": len(b)} for n, b in files.items()},
    }


def log_artifact(
    client: httpx.Client, files: dict[str, bytes], *, commit: bool = True
) -> dict[str, Any]:
    """The SDK's upload sequence; returns the createArtifact answer."""
    manifest = manifest_for(files)
    created = create_artifact(client, manifest_digest(manifest))
    if created["state"] == "COMMITTED":
        return created
    manifest_id = create_manifest(client, created["id"])["id"]
    for node in create_files(client, created["id"], manifest_id, files):
        if node["uploadUrl"] is not None:
            assert (
                put(
                    client, node["uploadUrl"], node["uploadHeaders"], files[node["name"]]
                ).status_code
                == 200
            )
        manifest["contents"][node["name"]]["birthArtifactID"] = node["artifact"]["id"]
    manifest_bytes = json.dumps(manifest).encode()
    upload = create_manifest(client, created["id"], md5_b64(manifest_bytes), include_upload=True)
    file = upload["file"]
    assert put(client, file["uploadUrl"], file["uploadHeaders"], manifest_bytes).status_code == 200
    if not commit:
        return created
    committed = data(gql(client, "CommitArtifact", {"artifactID": created["id"]}))
    assert committed["commitArtifact"]["artifact"]["id"] == created["id"]
    return created


# --------------------------------------------------------------------------- operations


def test_viewer_reports_the_default_entity(client: httpx.Client) -> None:
    viewer = data(gql(client, "Viewer"))["viewer"]
    assert viewer["entity"] == ENTITY
    assert viewer["username"] == ENTITY
    assert viewer["teams"] == {"edges": []}


def test_upsert_bucket_creates_then_merges(client: httpx.Client, fake: FakeWandB) -> None:
    config = json.dumps({"lr": {"value": 0.01}})
    first = upsert(client, config=config, tags=["a"], groupName="g", jobType="train")
    assert first["inserted"] is True
    bucket = first["bucket"]
    assert bucket["name"] == "run1"
    assert bucket["project"]["name"] == "proj"
    assert bucket["project"]["entity"]["name"] == ENTITY
    assert bucket["historyLineCount"] == 0
    assert bucket["config"] == config

    second = upsert(client, notes="hello", displayName="nice-run")
    assert second["inserted"] is False
    assert second["bucket"]["id"] == bucket["id"]
    run = fake.run(ENTITY, "proj", "run1")
    assert (run.config, run.tags, run.group, run.job_type) == (config, ["a"], "g", "train")
    assert (run.notes, run.display_name, run.state) == ("hello", "nice-run", "running")
    assert fake.projects() == ["proj"]


def test_upsert_bucket_by_storage_id_and_history_line_count(
    client: httpx.Client, fake: FakeWandB
) -> None:
    storage_id = upsert(client)["bucket"]["id"]
    stream(client, history_chunk(0, [{"_step": 0}, {"_step": 1}]))
    again = upsert(client, name="run1", id=storage_id, description="d")
    assert again["inserted"] is False
    assert again["bucket"]["historyLineCount"] == 2
    assert fake.run(ENTITY, "proj", "run1").description == "d"


def test_file_stream_stores_lines_by_offset(client: httpx.Client, fake: FakeWandB) -> None:
    upsert(client)
    lines = ['{"loss": NaN, "_step": 0}', '{"loss": Infinity, "_step": 1}']
    body = {"files": {"wandb-history.jsonl": {"offset": 0, "content": lines}}}
    assert stream(client, body).json() == {}
    assert stream(client, body).status_code == 200  # a resend overwrites
    stream(client, history_chunk(2, [{"loss": -1.5, "_step": 2}]))
    rows = fake.history(ENTITY, "proj", "run1")
    assert len(rows) == 3
    assert math.isnan(rows[0]["loss"])
    assert rows[1]["loss"] == math.inf
    assert [row["_step"] for row in rows] == [0, 1, 2]


def test_file_stream_summary_events_output_and_uploaded(
    client: httpx.Client, fake: FakeWandB
) -> None:
    upsert(client)
    body = {
        "files": {
            "wandb-summary.json": {"offset": 0, "content": ['{"loss": 1}']},
            "wandb-events.jsonl": {"offset": 0, "content": ['{"system.cpu": 5, "_wandb": true}']},
            "output.log": {"offset": 0, "content": ["hello", "world"]},
        },
        "uploaded": ["config.yaml"],
    }
    stream(client, body)
    stream(client, {"files": {"wandb-summary.json": {"offset": 0, "content": ['{"loss": 0.5}']}}})
    assert fake.summary(ENTITY, "proj", "run1") == {"loss": 0.5}
    assert fake.events(ENTITY, "proj", "run1") == [{"system.cpu": 5, "_wandb": True}]
    run = fake.run(ENTITY, "proj", "run1")
    assert run.output == {0: "hello", 1: "world"}
    assert run.uploaded == ["config.yaml"]


def test_file_stream_accepts_gzip(client: httpx.Client, fake: FakeWandB) -> None:
    upsert(client)
    body = gzip.compress(json.dumps(history_chunk(0, [{"x": 1}])).encode())
    response = client.post(
        f"/files/{ENTITY}/proj/run1/file_stream",
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        auth=AUTH,
    )
    assert response.status_code == 200
    assert fake.history(ENTITY, "proj", "run1") == [{"x": 1}]


@pytest.mark.parametrize(
    ("exitcode", "stop", "state"),
    [(0, False, "finished"), (1, False, "failed"), (0, True, "killed")],
)
def test_complete_sets_the_final_state(
    client: httpx.Client, fake: FakeWandB, exitcode: int, stop: bool, state: str
) -> None:
    storage_id = upsert(client)["bucket"]["id"]
    if stop:
        assert data(gql(client, "StopRun", {"id": storage_id})) == {"stopRun": {"success": True}}
        assert stream(client, {}).json() == {"stopped": True}
    stream(client, {"complete": True, "exitcode": exitcode})
    run = fake.run(ENTITY, "proj", "run1")
    assert (run.state, run.exit_code, run.stopped) == (state, exitcode, stop)
    states = data(gql(client, "RunState", {"entity": ENTITY, "project": "proj", "name": "run1"}))
    assert states == {"project": {"run": {"state": state}}}


def test_only_logging_revives_a_finished_run(client: httpx.Client, fake: FakeWandB) -> None:
    upsert(client)
    stream(client, {"complete": True, "exitcode": 0})
    stream(client, {})  # a late heartbeat
    assert fake.run(ENTITY, "proj", "run1").state == "finished"
    stream(client, history_chunk(0, [{"_step": 0}]))  # a resumed run logs again
    assert fake.run(ENTITY, "proj", "run1").state == "running"


def test_clock_sets_timestamps() -> None:
    fixed = FakeWandB(clock=lambda: 86400.0)
    with client_for(fixed, "in_process") as client:
        upsert(client)
    run = fixed.run(ENTITY, "proj", "run1")
    assert (run.created_at, run.heartbeat_at) == ("1970-01-02T00:00:00", "1970-01-02T00:00:00")


def test_preempting_and_run_state_of_unknown_runs(client: httpx.Client) -> None:
    upsert(client)
    stream(client, {"preempting": True})
    ask = {"entity": ENTITY, "project": "proj"}
    assert (
        data(gql(client, "RunState", {**ask, "name": "run1"}))["project"]["run"]["state"]
        == "preempting"
    )
    assert data(gql(client, "RunState", {**ask, "name": "nope"})) == {"project": {"run": None}}
    assert data(gql(client, "RunState", {**ask, "project": "nope", "name": "x"})) == {
        "project": None
    }


def test_run_resume_status(client: httpx.Client) -> None:
    config = json.dumps({"_wandb": {"value": {"t": {"1": [1]}, "cli_version": "x"}}})
    upsert(client, config=config, tags=["t1"], notes="n")
    rows = [{"_step": step} for step in range(TAIL_LINES + 2)]
    stream(client, history_chunk(0, rows))
    stream(client, {"files": {"wandb-events.jsonl": {"offset": 0, "content": ['{"_runtime": 3}']}}})
    stream(client, {"files": {"output.log": {"offset": 0, "content": ["a", "b", "c"]}}})
    stream(client, {"files": {"wandb-summary.json": {"offset": 0, "content": ['{"_step": 11}']}}})
    ask = {"entity": ENTITY, "project": "proj", "name": "run1"}
    model = data(gql(client, "RunResumeStatus", ask))["model"]
    assert model["name"] == "proj"
    bucket = model["bucket"]
    assert (bucket["historyLineCount"], bucket["eventsLineCount"], bucket["logLineCount"]) == (
        12,
        1,
        3,
    )
    tail = json.loads(bucket["historyTail"])
    assert len(tail) == TAIL_LINES
    assert json.loads(tail[-1]) == {"_step": 11}
    assert json.loads(bucket["eventsTail"]) == ['{"_runtime": 3}']
    assert json.loads(bucket["wandbConfig"]) == {"t": {"1": [1]}}
    assert json.loads(bucket["summaryMetrics"]) == {"_step": 11}
    assert (bucket["config"], bucket["tags"], bucket["notes"]) == (config, ["t1"], "n")

    assert data(gql(client, "RunResumeStatus", {**ask, "name": "other"}))["model"]["bucket"] is None
    assert data(gql(client, "RunResumeStatus", {**ask, "project": "other"})) == {"model": None}


def test_runs_filters_and_pages(client: httpx.Client) -> None:
    for name in ("r1", "r2", "r3"):
        upsert(client, name=name, tags=[name], config=json.dumps({"seed": {"value": int(name[1])}}))
    stream(client, {"complete": True, "exitcode": 0}, run="r2")
    ask = {"entity": ENTITY, "project": "proj"}

    def names(**variables: Any) -> list[str]:
        project = data(gql(client, "Runs", {**ask, **variables}))["project"]
        return [edge["node"]["name"] for edge in project["runs"]["edges"]]

    assert names() == ["r1", "r2", "r3"]
    assert names(filters="{}", order="-created_at") == ["r3", "r2", "r1"]
    assert names(filters=json.dumps({"name": {"$in": ["r1", "r3"]}})) == ["r1", "r3"]
    assert names(filters=json.dumps({"state": "finished"})) == ["r2"]
    assert names(filters=json.dumps({"$or": [{"tags": "r1"}, {"config.seed": {"$gte": 3}}]})) == [
        "r1",
        "r3",
    ]

    first = data(gql(client, "Runs", {**ask, "perPage": 2}))["project"]
    assert first["runCount"] == 3
    assert first["runs"]["pageInfo"]["hasNextPage"] is True
    cursor = first["runs"]["pageInfo"]["endCursor"]
    assert names(perPage=2, cursor=cursor) == ["r3"]
    node = first["runs"]["edges"][0]["node"]
    assert json.loads(node["config"]) == {"seed": {"value": 1}}
    assert node["user"] == {"name": ENTITY, "username": ENTITY}
    assert data(gql(client, "Runs", {**ask, "project": "nope"})) == {"project": None}


def test_run_history_returns_lines_in_offset_order(client: httpx.Client) -> None:
    upsert(client)
    stream(client, history_chunk(1, [{"_step": 1}]))
    stream(client, history_chunk(0, [{"_step": 0}]))
    ask = {"entity": ENTITY, "project": "proj", "name": "run1", "samples": 10}
    history = data(gql(client, "RunHistory", ask))["project"]["run"]["history"]
    assert [json.loads(line) for line in history] == [{"_step": 0}, {"_step": 1}]


def test_artifact_round_trip_and_dedupe(client: httpx.Client, fake: FakeWandB) -> None:
    upsert(client)
    files = {"a.txt": b"alpha", "dir/b.bin": b"\x00\x01"}
    created = log_artifact(client, files)
    assert created["state"] == "PENDING"
    artifact = fake.artifact(created["id"])
    assert (artifact.state, artifact.version, artifact.aliases) == ("COMMITTED", 0, ["latest"])
    assert fake.blobs[md5_b64(b"alpha")] == b"alpha"

    again = create_artifact(client, artifact.digest)
    assert again["state"] == "COMMITTED"
    assert again["id"] == created["id"]
    assert again["artifactSequence"]["latestArtifact"] == {"id": created["id"]}

    manifest_answer = data(gql(client, "ArtifactManifest", {"id": created["id"]}))["artifact"]
    manifest = client.get(manifest_answer["currentManifest"]["file"]["directUrl"]).json()
    assert manifest_digest(manifest) == artifact.digest
    entries = [
        {
            "name": n,
            "birthArtifactID": e["birthArtifactID"],
            "size": e["size"],
            "digest": e["digest"],
        }
        for n, e in manifest["contents"].items()
    ]
    variables = {
        "id": created["id"],
        "storageLayout": "V2",
        "manifestVersion": "1",
        "entries": entries,
    }
    edges = data(gql(client, "ArtifactFileURLsByManifestEntries", variables))["artifact"][
        "filesByManifestEntries"
    ]["edges"]
    downloaded = {
        edge["node"]["name"]: client.get(edge["node"]["directUrl"]).content for edge in edges
    }
    assert downloaded == files
    assert data(gql(client, "ArtifactManifest", {"id": "bm9wZQ=="})) == {"artifact": None}


def test_new_version_skips_content_the_server_has(client: httpx.Client, fake: FakeWandB) -> None:
    log_artifact(client, {"a.txt": b"alpha"})
    second = create_artifact(client, manifest_digest(manifest_for({"a.txt": b"alpha", "c": b"c"})))
    manifest_id = create_manifest(client, second["id"])["id"]
    nodes = create_files(client, second["id"], manifest_id, {"a.txt": b"alpha", "c": b"c"})
    assert [node["uploadUrl"] is None for node in nodes] == [True, False]
    assert nodes[1]["uploadHeaders"][0].startswith("x-fake-signature:")
    assert second["artifactSequence"]["latestArtifact"] is not None


def test_urls_point_at_the_server_in_server_mode(
    client: httpx.Client, fake: FakeWandB, mode: str
) -> None:
    created = create_artifact(client, "d" * 32)
    upload_url = create_manifest(client, created["id"], md5_b64(b"{}"), include_upload=True)[
        "file"
    ]["uploadUrl"]
    expected = fake.base_url if mode == "in_process" else fake.url
    assert upload_url.startswith(expected + "/_storage/put/")
    assert fake.url.startswith("http://127.0.0.1:" if mode == "server" else "https://")


def test_requests_are_recorded_with_wire_sizes(client: httpx.Client, fake: FakeWandB) -> None:
    upsert(client)
    body = json.dumps(history_chunk(0, [{"x": i} for i in range(5)])).encode()
    client.post(f"/files/{ENTITY}/proj/run1/file_stream", content=body, auth=AUTH)
    records = fake.requests
    assert [r.operation for r in records] == ["UpsertBucket", "file_stream"]
    last = records[-1]
    assert (last.method, last.path, last.status, last.fault) == (
        "POST",
        f"/files/{ENTITY}/proj/run1/file_stream",
        200,
        None,
    )
    assert last.history_lines == 5
    assert last.body_bytes == len(body)
    assert last.response_bytes == 2
    fake.clear_requests()
    assert fake.requests == []


def test_async_client_works_with_both_modes(fake: FakeWandB, mode: str) -> None:
    async def scenario(**client_args: Any) -> None:
        async with httpx.AsyncClient(**client_args) as client:
            body = {"query": QUERIES["Viewer"], "variables": {}, "operationName": "Viewer"}
            response = await client.post("/graphql", json=body, auth=AUTH)
            assert response.json()["data"]["viewer"]["entity"] == ENTITY

    if mode == "in_process":
        asyncio.run(scenario(base_url=fake.base_url, transport=fake.transport()))
    else:
        with fake.serve() as url:
            asyncio.run(scenario(base_url=url))


def test_concurrent_file_stream_posts_are_all_stored(client: httpx.Client, fake: FakeWandB) -> None:
    upsert(client)

    def post(offset: int) -> None:
        assert stream(client, history_chunk(offset, [{"_step": offset}])).status_code == 200

    threads = [threading.Thread(target=post, args=(offset,)) for offset in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [row["_step"] for row in fake.history(ENTITY, "proj", "run1")] == list(range(20))


# --------------------------------------------------------------------------- faults


def test_status_fault_with_retry_after_and_match(client: httpx.Client, fake: FakeWandB) -> None:
    upsert(client)
    fake.inject(Status(429, retry_after=2), match="file_stream")
    fake.inject(
        Status(503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT", headers={"X-Why": "test"}),
        match="UpsertBucket",
    )
    assert data(gql(client, "Viewer"))["viewer"] is not None  # matches neither
    limited = stream(client, {})
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "2")
    assert "error" in limited.json()
    unavailable = gql(client, "UpsertBucket", {"name": "run1", "project": "proj"})
    assert unavailable.status_code == 503
    assert unavailable.headers["Retry-After"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert unavailable.headers["X-Why"] == "test"
    assert "errors" in unavailable.json()
    assert stream(client, {}).status_code == 200
    assert fake.pending_faults == 0
    assert [r.fault for r in fake.requests][-4:] == [None, "Status", "Status", None]


def test_storage_faults(client: httpx.Client, fake: FakeWandB) -> None:
    created = create_artifact(client, "c" * 32)
    manifest_id = create_manifest(client, created["id"])["id"]
    (node,) = create_files(client, created["id"], manifest_id, {"f": b"data"})
    fake.inject(Status(500), match="storage")
    fake.inject(AfterApply(Drop()), match="storage")
    assert put(client, node["uploadUrl"], node["uploadHeaders"], b"data").status_code == 500
    assert fake.blobs == {}
    with pytest.raises(httpx.RemoteProtocolError):
        put(client, node["uploadUrl"], node["uploadHeaders"], b"data")
    assert fake.blobs == {md5_b64(b"data"): b"data"}
    assert put(client, node["uploadUrl"], node["uploadHeaders"], b"data").status_code == 200


def test_faults_are_consumed_in_order(client: httpx.Client, fake: FakeWandB) -> None:
    fake.inject(Status(500), count=2)
    fake.inject(Status(502))
    codes = [gql(client, "Viewer").status_code for _ in range(4)]
    assert codes == [500, 500, 502, 200]


def test_fault_matches_path_substrings(client: httpx.Client, fake: FakeWandB) -> None:
    upsert(client)
    upsert(client, name="run2")
    fake.inject(Status(500), match="/run2/")
    assert stream(client, {}, run="run1").status_code == 200
    assert stream(client, {}, run="run2").status_code == 500


def test_clear_faults(client: httpx.Client, fake: FakeWandB) -> None:
    fake.inject(Status(500), count=3)
    assert fake.pending_faults == 3
    fake.clear_faults()
    assert gql(client, "Viewer").status_code == 200


def test_drop_fault(client: httpx.Client, fake: FakeWandB) -> None:
    fake.inject(Drop())
    with pytest.raises(httpx.RemoteProtocolError):
        gql(client, "Viewer")
    assert gql(client, "Viewer").status_code == 200
    assert [r.status for r in fake.requests] == [None, 200]


def test_timeout_fault(fake: FakeWandB, mode: str) -> None:
    fake.inject(Timeout(delay=0.5))
    with client_for(fake, mode, timeout=0.1) as client:
        with pytest.raises(httpx.ReadTimeout):
            gql(client, "Viewer")
        assert gql(client, "Viewer").status_code == 200
    assert [r.fault for r in fake.requests] == ["Timeout", None]


def test_after_apply_drop_does_not_duplicate_on_resend(
    client: httpx.Client, fake: FakeWandB
) -> None:
    upsert(client)
    body = history_chunk(0, [{"_step": 0}, {"_step": 1}])
    fake.inject(AfterApply(Drop()), match="file_stream")
    with pytest.raises(httpx.RemoteProtocolError):
        stream(client, body)
    assert len(fake.history(ENTITY, "proj", "run1")) == 2  # applied before the drop
    assert stream(client, body).status_code == 200
    assert len(fake.history(ENTITY, "proj", "run1")) == 2


def test_after_apply_status_on_upsert(client: httpx.Client, fake: FakeWandB) -> None:
    fake.inject(AfterApply(Status(500)), match="UpsertBucket")
    assert gql(client, "UpsertBucket", {"name": "run1", "project": "proj"}).status_code == 500
    assert upsert(client)["inserted"] is False
    assert len(fake.runs()) == 1


def test_after_apply_on_commit_is_idempotent(client: httpx.Client, fake: FakeWandB) -> None:
    artifact_id = log_artifact(client, {"f": b"x"}, commit=False)["id"]
    fake.inject(AfterApply(Status(502)), match="CommitArtifact")
    assert gql(client, "CommitArtifact", {"artifactID": artifact_id}).status_code == 502
    assert fake.artifact(artifact_id).state == "COMMITTED"
    resent = data(gql(client, "CommitArtifact", {"artifactID": artifact_id}))
    assert resent["commitArtifact"]["artifact"]["id"] == artifact_id
    assert [a.version for a in fake.artifacts()] == [0]


def test_outage(client: httpx.Client, fake: FakeWandB) -> None:
    fake.inject(Status(500))
    fake.outage(True)
    assert gql(client, "Viewer").status_code == 503
    assert client.get("/_storage/get/abc").status_code == 503
    fake.outage(False)
    assert gql(client, "Viewer").status_code == 500  # the injected fault waited
    assert gql(client, "Viewer").status_code == 200


def test_rate_limit_headers_on_file_stream_only(client: httpx.Client, fake: FakeWandB) -> None:
    upsert(client)
    fake.rate_limit(3, 1.5)
    response = stream(client, {})
    assert (response.headers["RateLimit-Remaining"], response.headers["RateLimit-Reset"]) == (
        "3",
        "1.5",
    )
    assert "RateLimit-Remaining" not in gql(client, "Viewer").headers
    fake.rate_limit(None)
    assert "RateLimit-Remaining" not in stream(client, {}).headers


def test_revoke_key(client: httpx.Client, fake: FakeWandB) -> None:
    upsert(client)
    fake.revoke_key()
    assert gql(client, "Viewer").status_code == 401
    assert stream(client, {}).status_code == 401
    fake.add_api_key("k" * 40, entity="team")
    viewer = data(gql(client, "Viewer", auth=httpx.BasicAuth("api", "k" * 40)))["viewer"]
    assert viewer["entity"] == "team"


# --------------------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    "auth", [None, httpx.BasicAuth("api", "wrong" * 8), httpx.BasicAuth("api", "")]
)
def test_graphql_and_file_stream_need_credentials(
    client: httpx.Client, auth: httpx.Auth | None
) -> None:
    upsert(client)
    body = {"query": QUERIES["Viewer"], "variables": {}, "operationName": "Viewer"}
    kwargs: dict[str, Any] = {"auth": auth} if auth is not None else {}
    response = client.post("/graphql", json=body, **kwargs)
    assert response.status_code == 401
    assert response.json()["errors"]
    assert (
        client.post(f"/files/{ENTITY}/proj/run1/file_stream", json={}, **kwargs).status_code == 401
    )


@pytest.mark.parametrize("name", [None, ""])
def test_the_documents_operation_names_it_when_operation_name_is_left_out(
    client: httpx.Client, name: str | None
) -> None:
    """GraphQL allows it, and the SDK's Python side sends ``"operationName": ""``."""
    body: dict[str, Any] = {"query": QUERIES["Viewer"], "variables": {}}
    if name is not None:
        body["operationName"] = name
    response = client.post("/graphql", json=body, auth=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["viewer"]["entity"] == ENTITY


def test_graphql_rejections(client: httpx.Client) -> None:
    def post(body: Any) -> httpx.Response:
        return client.post("/graphql", json=body, auth=AUTH)

    cases = [
        {"query": "query X { x }", "variables": {}, "operationName": "X"},
        {
            "query": "query UpsertBucket { somethingElse }",
            "variables": {"name": "r", "project": "p"},
            "operationName": "UpsertBucket",
        },
        {
            "query": QUERIES["UpsertBucket"],
            "variables": {"name": "r"},
            "operationName": "UpsertBucket",
        },
        {"query": "{ viewer { id } }", "variables": {}},  # anonymous: no operation name
        [1, 2],
    ]
    for body in cases:
        response = post(body)
        assert response.status_code == 400, body
        assert response.json()["errors"][0]["message"]
    malformed = client.post("/graphql", content=b"{nope", auth=AUTH)
    assert malformed.status_code == 400


@pytest.mark.parametrize(
    "variables",
    [
        {"config": {"lr": {"value": 1}}},
        {"config": "not json"},
        {"config": "[1]"},
        {"summaryMetrics": "nope"},
        {"tags": "a"},
        {"name": "bad/name"},
        {"name": " padded"},
        {"id": "unknown-id"},
    ],
)
def test_upsert_bucket_rejections(
    client: httpx.Client, fake: FakeWandB, variables: dict[str, Any]
) -> None:
    response = gql(client, "UpsertBucket", {"name": "run1", "project": "proj", **variables})
    assert response.status_code == 400
    assert fake.runs() == []


def test_file_stream_rejections(client: httpx.Client, fake: FakeWandB) -> None:
    assert stream(client, {}, run="ghost").status_code == 404
    upsert(client)
    url = f"/files/{ENTITY}/proj/run1/file_stream"
    assert client.post(url, content=b"{nope", auth=AUTH).status_code == 400
    bad_bodies = [
        {"files": []},
        {"files": {"wandb-history.jsonl": {"offset": -1, "content": []}}},
        {"files": {"wandb-history.jsonl": {"offset": 0, "content": [1]}}},
        {"files": {"wandb-history.jsonl": {"offset": 0, "content": ["not json"]}}},
        {"complete": True, "exitcode": "0"},
    ]
    for body in bad_bodies:
        assert stream(client, body).status_code == 400, body
    rejected = {**history_chunk(0, [{"_step": 0}]), "complete": True, "exitcode": None}
    assert stream(client, rejected).status_code == 400
    assert fake.run(ENTITY, "proj", "run1").history == {}  # nothing half-applied


def test_file_stream_size_limit(fake: FakeWandB, mode: str) -> None:
    fake.max_file_stream_bytes = 100
    with client_for(fake, mode) as client:
        upsert(client)
        assert stream(client, history_chunk(0, [{"x": "y" * 200}])).status_code == 413
        assert stream(client, history_chunk(0, [{"x": 1}])).status_code == 200


def test_storage_rejections(client: httpx.Client, fake: FakeWandB) -> None:
    created = create_artifact(client, "e" * 32)
    manifest_id = create_manifest(client, created["id"])["id"]
    (node,) = create_files(client, created["id"], manifest_id, {"f": b"content"})
    url, headers = node["uploadUrl"], node["uploadHeaders"]
    signed = dict(header.split(":", 1) for header in headers)
    assert client.put(url, content=b"content", headers=signed, auth=AUTH).status_code == 400
    assert client.put(url, content=b"content").status_code == 403
    assert (
        client.put(url, content=b"content", headers={"x-fake-signature": "forged"}).status_code
        == 403
    )
    assert put(client, url, headers, b"tampered").status_code == 400
    assert put(client, url.rsplit("/", 1)[0] + "/unknown", headers, b"content").status_code == 404
    assert fake.blobs == {}
    assert put(client, url, headers, b"content").status_code == 200
    assert put(client, url, headers, b"content").status_code == 200  # a resend is fine
    download = (
        url.replace("/put/", "/get/").rsplit("/", 1)[0]
        + "/"
        + md5_b64(b"content").replace("+", "-").replace("/", "_")
    )
    assert client.get(download, auth=AUTH).status_code == 400
    assert client.get(download).content == b"content"
    assert client.get(download.rsplit("/", 1)[0] + "/missing").status_code == 404


def test_commit_needs_every_upload(client: httpx.Client) -> None:
    files = {"a": b"1", "b": b"2"}
    manifest = manifest_for(files)
    created = create_artifact(client, manifest_digest(manifest))
    assert (
        gql(client, "CommitArtifact", {"artifactID": created["id"]}).status_code == 400
    )  # no manifest
    manifest_id = create_manifest(client, created["id"])["id"]
    nodes = create_files(client, created["id"], manifest_id, files)
    put(client, nodes[0]["uploadUrl"], nodes[0]["uploadHeaders"], b"1")
    manifest_bytes = json.dumps(manifest).encode()
    file = create_manifest(client, created["id"], md5_b64(manifest_bytes), include_upload=True)[
        "file"
    ]
    put(client, file["uploadUrl"], file["uploadHeaders"], manifest_bytes)
    refused = gql(client, "CommitArtifact", {"artifactID": created["id"]})
    assert refused.status_code == 400
    assert "not uploaded" in refused.json()["errors"][0]["message"]
    put(client, nodes[1]["uploadUrl"], nodes[1]["uploadHeaders"], b"2")
    assert data(gql(client, "CommitArtifact", {"artifactID": created["id"]}))


@pytest.mark.parametrize(
    ("operation", "variables"),
    [
        ("CreateArtifact", {"digestAlgorithm": "SHA1"}),
        ("CreateArtifact", {"runName": "ghost"}),
        ("CreateArtifact", {"artifactTypeName": "model"}),
        ("CreateArtifactManifest", {"artifactID": "unknown"}),
        ("CreateArtifactManifest", {"type": "WEIRD"}),
        ("CreateArtifactFiles", {"md5": "not-md5"}),
        ("CreateArtifactFiles", {"artifactManifestID": "other"}),
        ("CommitArtifact", {"artifactID": "unknown"}),
    ],
)
def test_artifact_rejections(
    client: httpx.Client, operation: str, variables: dict[str, Any]
) -> None:
    existing = create_artifact(client, "a" * 32)  # collection "dataset" of type "dataset"
    manifest_id = create_manifest(client, existing["id"])["id"]
    base: dict[str, Any] = {
        "CreateArtifact": {
            "entityName": ENTITY,
            "projectName": "proj",
            "artifactTypeName": "dataset",
            "artifactCollectionName": "dataset",
            "digest": "b" * 32,
            "digestAlgorithm": "MANIFEST_MD5",
        },
        "CreateArtifactManifest": {
            "artifactID": existing["id"],
            "name": "wandb_manifest.json",
            "digest": "",
            "entityName": ENTITY,
            "projectName": "proj",
            "type": "FULL",
            "includeUpload": False,
        },
        "CreateArtifactFiles": {
            "artifactID": existing["id"],
            "artifactManifestID": manifest_id,
            "name": "f",
            "md5": md5_b64(b""),
        },
        "CommitArtifact": {"artifactID": existing["id"]},
    }[operation]
    if operation == "CreateArtifactFiles":
        request = {"artifactFiles": [{**base, **variables}], "storageLayout": "V2"}
    else:
        request = {**base, **variables}
    response = gql(client, operation, request)
    assert response.status_code == 400, response.text


def test_unknown_paths_are_404(client: httpx.Client) -> None:
    assert client.get("/nope", auth=AUTH).status_code == 404
    assert client.get("/graphql", auth=AUTH).status_code == 405


# --------------------------------------------------------------------------- server mode specifics


@pytest.mark.slow
def test_server_keeps_connections_alive_and_reads_chunked_bodies(fake: FakeWandB) -> None:
    with fake.serve() as url:
        connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=5)
        auth = "Basic " + base64.b64encode(f"api:{DEFAULT_API_KEY}".encode()).decode()
        body = json.dumps({"query": QUERIES["Viewer"], "variables": {}, "operationName": "Viewer"})
        for _ in range(2):  # both over one socket
            connection.request(
                "POST",
                "/graphql",
                body=body,
                headers={"Authorization": auth, "Content-Type": "application/json"},
            )
            response = connection.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["data"]["viewer"]["entity"] == ENTITY
        connection.close()

        with httpx.Client(base_url=url) as client:
            chunks = (part.encode() for part in (body[:10], body[10:]))
            response = client.post("/graphql", content=chunks, auth=AUTH)
            assert response.status_code == 200
    assert fake.requests[-1].body_bytes == len(body)


@pytest.mark.slow
def test_start_stop_are_idempotent(fake: FakeWandB) -> None:
    url = fake.start()
    assert fake.start() == url
    assert fake.url == url
    fake.stop()
    fake.stop()
    assert fake.url == fake.base_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/graphql")


def test_base_url_must_be_an_origin() -> None:
    with pytest.raises(ValueError):
        FakeWandB(base_url="https://host/api")
