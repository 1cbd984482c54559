"""The MLflow plugin's own behaviour, mostly against the real server."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket

import httpx
import pytest
import trackmux_mlflow as plugin
from _mlflow_support import connect, context, records, run
from trackmux_mlflow import _runs, _values
from trackmux_spec import (
    ArtifactSpec,
    JobStatus,
    MetricRecord,
    PermanentError,
    RetryableError,
    TrainingConfig,
    UnknownJobError,
)

# -- settings and connect ----------------------------------------------------------------------


def test_settings_follow_mlflow_environment(monkeypatch, tmp_path):
    from trackmux_mlflow._settings import resolve_settings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000/")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ann")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret-pw")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "exp")
    settings = resolve_settings({}, {})
    assert settings.tracking_uri == "http://mlflow.example:5000"
    assert settings.experiment == "exp"
    assert isinstance(settings.auth(), httpx.BasicAuth)
    assert "s3cret-pw" not in repr(settings)
    explicit = resolve_settings({"tracking_uri": "https://other", "token": "tok-123"}, {})
    assert explicit.tracking_uri == "https://other"
    assert "tok-123" not in repr(explicit) and "tok-123" not in repr(explicit.auth())


@pytest.mark.parametrize("uri", [None, "file:///tmp/mlruns", "databricks", "http://u:p@host"])
def test_unusable_tracking_uri_is_a_value_error(tmp_path, uri):
    settings = {} if uri is None else {"tracking_uri": uri}
    with pytest.raises(ValueError):
        run(plugin.connect({}, context(tmp_path, **settings)))


def test_closed_port_is_a_connection_error(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionError):
        run(plugin.connect({"tracking_uri": f"http://127.0.0.1:{port}"}, context(tmp_path)))


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_are_a_value_error_without_the_secret(tmp_path, caplog, status):
    caplog.set_level(logging.DEBUG)
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            status, json={"error_code": "UNAUTHENTICATED", "message": "bad token tok-SECRET-1"}
        )

    transport = httpx.MockTransport(answer)
    with pytest.raises(ValueError, match="rejected the credentials") as info:
        run(
            plugin.connect(
                {"tracking_uri": "http://mlflow.test", "token": "tok-SECRET-1"},
                context(tmp_path, transport=transport),
            )
        )
    assert seen[0].headers["Authorization"] == "Bearer tok-SECRET-1"
    assert "tok-SECRET-1" not in str(info.value)
    assert "tok-SECRET-1" not in caplog.text


def test_basic_auth_header_from_username_and_password(tmp_path):
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"experiments": []})

    session = run(
        plugin.connect(
            {"tracking_uri": "http://mlflow.test", "username": "ann", "password": "pw"},
            context(tmp_path, transport=httpx.MockTransport(answer)),
        )
    )
    assert seen[0].headers["Authorization"] == "Basic YW5uOnB3"
    assert "pw" not in repr(session).replace("http", "")
    run(plugin.disconnect(session))


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_at_connect_are_connection_errors(tmp_path, status):
    transport = httpx.MockTransport(lambda request: httpx.Response(status, text="down"))
    with pytest.raises(ConnectionError):
        run(
            plugin.connect(
                {"tracking_uri": "http://mlflow.test"}, context(tmp_path, transport=transport)
            )
        )


def test_not_an_mlflow_server_is_a_connection_error(tmp_path):
    transport = httpx.MockTransport(lambda request: httpx.Response(404, text="nope"))
    with pytest.raises(ConnectionError):
        run(
            plugin.connect(
                {"tracking_uri": "http://mlflow.test"}, context(tmp_path, transport=transport)
            )
        )


def test_tracker_info():
    info = plugin.tracker_info()
    assert info.max_batch_records == plugin.MAX_BATCH_RECORDS == 5000
    assert info.capabilities == {"artifacts", "compare", "history"}


# -- names, values, limits (no server) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("eval/loss", "eval/loss"),
        ("acc@1", "acc_1"),
        ("a:b c-d.e", "a:b c-d.e"),
        ("/abs//x/./y/", "abs/x/y"),
        ("../up", "__/up"),
        ("x" * 300, "x" * 250),
    ],
)
def test_names_mlflow_refuses_are_sanitised(name, expected):
    assert _values.mlflow_name(name) == expected


def test_special_floats_are_protobuf_json_strings_and_read_back():
    assert _values.encode_metric(math.nan) == "NaN"
    assert _values.encode_metric(math.inf) == "Infinity"
    assert _values.encode_metric(-math.inf) == "-Infinity"
    assert _values.encode_metric(2) == 2
    assert math.isnan(_values.decode_metric("NaN"))
    assert _values.decode_metric(1.7976931348623157e308) == math.inf
    assert _values.decode_metric(-1.7976931348623157e308) == -math.inf


def test_long_params_are_truncated_with_a_warning(caplog):
    entries = _values.param_entries({"prompt": "p" * 7000, "lr": 0.1, "mods": ["q", "v"]})
    by_key = {e["key"]: e["value"] for e in entries}
    assert len(by_key["prompt"]) == 6000
    assert by_key["lr"] == "0.1" and json.loads(by_key["mods"]) == ["q", "v"]
    assert "truncated to 6000" in caplog.text


def test_requests_stay_within_mlflow_limits():
    """Records that fit one request with the trackmux.seq tag (1,000 entries in all) are one
    request; more are parts of 1,000 metrics and the tag alone; long names split requests
    by size (1 MB)."""

    def requests(records, **limits):
        parts, final = _runs.metric_requests(records, **limits)
        return [len(p) for p in parts], len(final)

    small = [MetricRecord(i, i, 1.0 + i, {f"m{k}": float(k) for k in range(333)}) for i in range(3)]
    assert requests(small) == ([], 999)
    assert requests([MetricRecord(0, 0, 1.0, {f"m{k}": 1.0 for k in range(1000)})]) == ([1000], 0)
    wide = [MetricRecord(i, i, 1.0 + i, {f"m{k}": float(k) for k in range(300)}) for i in range(10)]
    assert requests(wide) == ([1000, 1000, 1000], 0)
    long = [MetricRecord(0, 0, 1.0, {"k" * 240 + str(k): 1.0 for k in range(900)})]
    parts, final = _runs.metric_requests(long, max_bytes=100_000)
    parts = list(parts)
    assert final == [] and len(parts) == 3 and sum(map(len, parts)) == 900
    assert all(len(json.dumps(p, separators=(",", ":"))) <= 100_000 for p in parts)
    assert requests([]) == ([], 0)


def test_metric_size_is_the_json_size():
    for value in (1.0, 1 / 3, -1.7976931348623157e308, 5, -(10**20), "NaN", "-Infinity", 3e-4):
        for key in ("loss", "ünï/ß", 'a"b', "x" * 250, "😀"):
            entry = {"key": key, "value": value, "timestamp": 1_700_000_000_123, "step": -5}
            assert _values.metric_size(entry) == len(json.dumps(entry, separators=(",", ":"))) + 1


def test_a_records_entries_depend_on_the_record_only():
    """A resend, from this session or another process, is byte for byte the same request."""
    record = MetricRecord(7, 5, 1.0004, {"x": 1.0, "bad name!": math.nan})
    assert _runs.record_entries(record) == [
        {"key": "x", "value": 1.0, "timestamp": 1000, "step": 5},
        {"key": "bad name_", "value": "NaN", "timestamp": 1000, "step": 5},
    ]
    again = MetricRecord(7, 5, 1.0004, {"x": 1.0, "bad name!": math.nan})
    assert _runs.record_entries(again) == _runs.record_entries(record)
    assert _runs.seq_tag(record) == {"key": "trackmux.seq", "value": '{"seq":7,"step":5}'}


@pytest.mark.parametrize(
    ("mlflow", "status"),
    [
        ("RUNNING", JobStatus.RUNNING),
        ("SCHEDULED", JobStatus.PENDING),
        ("FINISHED", JobStatus.FINISHED),
        ("FAILED", JobStatus.FAILED),
        ("KILLED", JobStatus.KILLED),
        ("WEIRD", JobStatus.RUNNING),
    ],
)
def test_status_mapping(mlflow, status):
    assert _runs.map_status(mlflow) is status


# -- against the real server ---------------------------------------------------------------------


def test_run_carries_params_tags_and_notes(mlflow_settings, tmp_path):
    async def body():
        session = await connect(mlflow_settings, tmp_path)
        config = TrainingConfig(
            name="my run",
            notes="why",
            group="g",
            job_type="train",
            tags=["baseline", "v2"],
            learning_rate=0.001,
            target_modules=["q", "v"],
            extra={f"p{i}": i for i in range(150)} | {"long": "y" * 7000, "bad key!": 1},
        )
        job = await plugin.submit_job(session, "params01", config)
        run_info = await _runs.get_run(session, job)
        await plugin.disconnect(session)
        return run_info

    info = run(body())
    tags = {t["key"]: t["value"] for t in info["data"]["tags"]}
    params = {p["key"]: p["value"] for p in info["data"]["params"]}
    assert info["info"]["run_name"] == "my run"
    assert tags["trackmux.run_id"] == "params01"
    assert tags["mlflow.runName"] == "my run"
    assert tags["mlflow.note.content"] == "why"
    assert tags["trackmux.group"] == "g" and tags["trackmux.job_type"] == "train"
    assert json.loads(tags["trackmux.tags"]) == ["baseline", "v2"]
    assert "baseline" in tags
    assert len(params) == 154
    assert params["learning_rate"] == "0.001"
    assert json.loads(params["target_modules"]) == ["q", "v"]
    assert len(params["long"]) == 6000
    assert params["bad key_"] == "1"


def test_special_values_and_names_round_trip(mlflow_settings, tmp_path):
    async def body():
        session = await connect(mlflow_settings, tmp_path)
        job = await plugin.submit_job(session, "values01", TrainingConfig())
        values = [math.nan, math.inf, -math.inf, 0.0, -1e-300, 2**53, 1.7976931348623157e307]
        recs = [
            MetricRecord(i, i * 1000, 1_700_000_000.0 + i, {"v": v, "top@1": 1.0})
            for i, v in enumerate(values)
        ]
        await plugin.log_metrics(session, job, recs)
        rows = await plugin.get_history(session, job)
        await plugin.disconnect(session)
        return values, rows

    values, rows = run(body())
    assert len(rows) == len(values)
    for value, row in zip(values, rows, strict=True):
        assert math.isnan(row["v"]) if math.isnan(value) else row["v"] == value
        assert row["top_1"] == 1.0
    assert [row["_step"] for row in rows] == [i * 1000 for i in range(len(values))]


def test_resume_in_a_new_session_stores_nothing_twice(mlflow_settings, tmp_path):
    """A crashed process stored 0..59; the new one resubmits and replays 40..99."""

    async def body():
        first = await connect(mlflow_settings, tmp_path)
        job = await plugin.submit_job(first, "resume01", TrainingConfig(learning_rate=0.1))
        await plugin.log_metrics(first, job, records(0, 60))
        await plugin.disconnect(first)

        second = await connect(mlflow_settings, tmp_path)
        again = await plugin.submit_job(second, "resume01", TrainingConfig(learning_rate=0.2))
        await plugin.log_metrics(second, again, records(40, 100))
        third = await connect(mlflow_settings, tmp_path)
        await plugin.log_metrics(third, again, records(90, 100))
        rows = await plugin.get_history(third, again)
        compared = await plugin.compare(third, [again])
        for session in (second, third):
            await plugin.disconnect(session)
        return job, again, rows, compared

    job, again, rows, compared = run(body())
    assert again == job
    assert [row["_step"] for row in rows] == list(range(100))
    assert [row["loss"] for row in rows] == [1.0 / (i + 1) for i in range(100)]
    assert compared.runs[0].config["learning_rate"] == 0.1  # params are immutable in MLflow


def test_lost_acknowledgement_is_recovered_from_the_server(mlflow_settings, tmp_path):
    """The server stores a batch but the answer is lost: the resend adds nothing."""
    state = {"drop": 0}

    class LoseAnswers(httpx.AsyncBaseTransport):
        def __init__(self):
            self.inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request):
            response = await self.inner.handle_async_request(request)
            if state["drop"] and request.url.path.endswith("runs/log-batch"):
                state["drop"] -= 1
                await response.aread()
                raise httpx.ReadTimeout("answer lost", request=request)
            return response

    async def body():
        session = await connect(mlflow_settings, tmp_path, transport=LoseAnswers())
        job = await plugin.submit_job(session, "lostack1", TrainingConfig())
        await plugin.log_metrics(session, job, records(0, 10))
        state["drop"] = 1
        with pytest.raises(Exception, match="timed out"):
            await plugin.log_metrics(session, job, records(10, 20))
        assert session.jobs[job].stored is None
        await plugin.log_metrics(session, job, records(10, 25))
        rows = await plugin.get_history(session, job)
        await plugin.disconnect(session)
        return rows

    rows = run(body())
    assert [row["_step"] for row in rows] == list(range(25))


class PartFaults(httpx.AsyncBaseTransport):
    """Real HTTP to the real server, noting every log-batch body. With ``fault`` set, the
    first log-batch is held until the second one is in flight too (a plugin sending its
    parts one at a time times out here), then refused with a 503 before reaching the
    server (``"refused"``) or stored with its answer lost (``"answer lost"``)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.bodies: list[dict] = []
        self.answered = 0
        self.answered_before_tag: int | None = None
        self.fault: str | None = None
        self.second: asyncio.Event | None = None

    async def handle_async_request(self, request):
        if not request.url.path.endswith("runs/log-batch"):
            return await self.inner.handle_async_request(request)
        body = json.loads(await request.aread())
        index = len(self.bodies)
        self.bodies.append(body)
        if body.get("tags"):
            self.answered_before_tag = self.answered
        if self.fault is not None:
            self.second = self.second or asyncio.Event()
            if index == 1:
                self.second.set()
            elif index == 0:
                await asyncio.wait_for(self.second.wait(), timeout=10)
                if self.fault == "refused":
                    return httpx.Response(503, json={"error_code": "TEMPORARILY_UNAVAILABLE"})
                response = await self.inner.handle_async_request(request)
                await response.aread()
                raise httpx.ReadTimeout("answer lost", request=request)
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.answered += 1
        return response


@pytest.mark.parametrize("fault", ["refused", "answer lost"])
def test_a_failed_part_of_a_batch_leaves_the_seq_tag_behind(mlflow_settings, tmp_path, fault):
    """A batch larger than one request goes as parts in flight together, then the tag alone.
    One part fails while the other is stored: no part starts after the failure is known, the
    tag stays where it was, and the engine's resend stores every record once (what the parts
    stored is absorbed by the metrics table's primary key)."""
    faults = PartFaults()
    batch = records(10, 1510)  # 3,000 metrics: three parts of 1,000 and the tag

    async def body():
        session = await connect(mlflow_settings, tmp_path, transport=faults)
        job = await plugin.submit_job(session, f"parts-{fault[:4]}", TrainingConfig())
        await plugin.log_metrics(session, job, records(0, 10))
        faults.bodies.clear()
        faults.fault = fault
        with pytest.raises(RetryableError):
            await plugin.log_metrics(session, job, batch)
        failed = list(faults.bodies)
        point = await plugin.resume_point(session, job)
        faults.fault, faults.bodies, faults.answered = None, [], 0
        await plugin.log_metrics(session, job, batch)
        resent = list(faults.bodies)
        after = await plugin.resume_point(session, job)
        rows = await plugin.get_history(session, job)
        history = await _runs.metric_history(session, job, "loss")
        await plugin.disconnect(session)
        return failed, point, resent, after, rows, history

    failed, point, resent, after, rows, history = run(body())
    assert not any("tags" in b for b in failed), "no tag after a failed part"
    if fault == "refused":  # known before the part beside it was answered: no third part
        assert len(failed) == 2
    assert point.next_seq == 10, "the tag did not advance past the failed part"
    assert [len(b["metrics"]) for b in resent] == [1000, 1000, 1000, 0]
    assert [b.get("tags") for b in resent[:3]] == [None] * 3
    assert resent[3]["tags"] == [_runs.seq_tag(batch[-1])]
    assert faults.answered_before_tag == 3, "the tag left after every part was stored"
    assert (after.next_seq, after.last_step) == (1510, 1509)
    assert [row["_step"] for row in rows] == list(range(1510))
    assert len(history) == 1510, "each record stored once"


def test_a_run_holds_only_what_the_user_logged(mlflow_settings, tmp_path):
    """No marker metric: the metrics are the user's; tags are MLflow's and trackmux.*."""

    async def body():
        session = await connect(mlflow_settings, tmp_path)
        job = await plugin.submit_job(session, "clean001", TrainingConfig(tags=["a"]))
        await plugin.log_metrics(session, job, records(0, 30))
        point = await plugin.resume_point(session, job)
        info = await _runs.get_run(session, job)
        await plugin.disconnect(session)
        return point, info

    point, info = run(body())
    assert sorted(m["key"] for m in info["data"]["metrics"]) == ["acc", "loss"]
    tags = {t["key"]: t["value"] for t in info["data"]["tags"]}
    assert json.loads(tags["trackmux.seq"]) == {"seq": 29, "step": 29}
    assert {k for k in tags if not k.startswith(("mlflow.", "trackmux."))} == {"a"}
    assert (point.next_seq, point.last_step) == (30, 29)


def test_records_behind_a_lagging_seq_tag_are_stored_once(mlflow_settings, tmp_path):
    """MLflow's SQL store commits a log-batch's metrics, then its tags, in two transactions
    (checked in mlflow 3.17's SqlAlchemyStore.log_batch). A crash between them leaves
    metrics stored that the tag does not count: here, records 10-14 sent without the tag.
    The next process resends them; the metrics table's primary key keeps them once."""

    async def body():
        first = await connect(mlflow_settings, tmp_path)
        job = await plugin.submit_job(first, "lagtag01", TrainingConfig())
        await plugin.log_metrics(first, job, records(0, 10))
        entries = [e for r in records(10, 15) for e in _runs.record_entries(r)]
        await first.client.call(
            "POST", "runs/log-batch", body={"run_id": job, "metrics": entries}
        )
        await plugin.disconnect(first)
        second = await connect(mlflow_settings, tmp_path)
        await plugin.submit_job(second, "lagtag01", TrainingConfig())
        point = await plugin.resume_point(second, job)
        await plugin.log_metrics(second, job, records(10, 20))
        rows = await plugin.get_history(second, job)
        history = await _runs.metric_history(second, job, "loss")
        await plugin.disconnect(second)
        return point, rows, history

    point, rows, history = run(body())
    assert point.next_seq == 10
    assert [row["_step"] for row in rows] == list(range(20))
    assert [row["loss"] for row in rows] == [1.0 / (i + 1) for i in range(20)]
    assert len(history) == 20, "each record's metric stored once"


def test_a_refused_log_batch_sets_no_seq_tag(mlflow_settings, tmp_path):
    """Validation comes first: a request MLflow refuses stores neither metrics nor tag."""

    async def body():
        session = await connect(mlflow_settings, tmp_path)
        job = await plugin.submit_job(session, "refuse01", TrainingConfig())
        await plugin.log_metrics(session, job, records(0, 3))
        bad = [{"key": "x", "value": 1.0, "timestamp": 1, "step": 0}] * 2 + [
            {"key": "", "value": 1.0, "timestamp": 1, "step": 0}
        ]
        with pytest.raises(PermanentError):
            await session.client.call(
                "POST",
                "runs/log-batch",
                body={"run_id": job, "metrics": bad, "tags": [_runs.seq_tag(records(7, 8)[0])]},
            )
        point = await plugin.resume_point(session, job)
        keys = sorted(m["key"] for m in (await _runs.get_run(session, job))["data"]["metrics"])
        await plugin.disconnect(session)
        return point, keys

    point, keys = run(body())
    assert point.next_seq == 3
    assert keys == ["acc", "loss"]


def test_large_batch_is_split_and_read_back_in_order(mlflow_settings, tmp_path):
    async def body():
        session = await connect(mlflow_settings, tmp_path)
        job = await plugin.submit_job(session, "split001", TrainingConfig())
        recs = [
            MetricRecord(i, i // 3, 1_700_000_000.0, {f"m{k}": i + k / 10 for k in range(8)})
            for i in range(1000)
        ]
        await plugin.log_metrics(session, job, recs)
        rows = await plugin.get_history(session, job)
        await plugin.disconnect(session)
        return recs, rows

    recs, rows = run(body())
    assert len(rows) == 1000
    assert [r["_step"] for r in rows] == [rec.step for rec in recs]
    assert all(
        {k: v for k, v in row.items() if not k.startswith("_")} == dict(rec.values)
        for rec, row in zip(recs, rows, strict=True)
    )


def test_status_unknown_run_and_first_final_state(mlflow_settings, tmp_path):
    async def body():
        session = await connect(mlflow_settings, tmp_path)
        with pytest.raises(UnknownJobError):
            await plugin.get_job_status(session, "0" * 32)
        with pytest.raises(UnknownJobError):
            await plugin.get_history(session, "0" * 32)
        with pytest.raises(PermanentError):
            await plugin.log_metrics(session, "0" * 32, records(0, 1))
        job = await plugin.submit_job(session, "status01", TrainingConfig())
        await plugin.finish_job(session, job, JobStatus.FAILED)
        other = await connect(mlflow_settings, tmp_path)
        await plugin.finish_job(other, job, JobStatus.FINISHED)
        status = await plugin.get_job_status(other, job)
        url = plugin.get_run_url(other, job)
        fresh = await connect(mlflow_settings, tmp_path)
        bare_url = plugin.get_run_url(fresh, job)
        with pytest.raises(ValueError):
            await plugin.finish_job(session, job, JobStatus.RUNNING)
        for s in (session, other, fresh):
            await plugin.disconnect(s)
        return job, status, url, bare_url

    job, status, url, bare_url = run(body())
    assert status is JobStatus.FAILED
    assert "/#/experiments/" in url and url.endswith(f"/runs/{job}")
    assert bare_url.endswith(f"/#/runs/{job}")


def test_artifacts_round_trip_verify_and_refuse_escapes(mlflow_settings, tmp_path):
    src = tmp_path / "src"
    (src / "deep" / "er").mkdir(parents=True)
    (src / "deep" / "er" / "w.bin").write_bytes(bytes(range(256)) * 50)
    (src / "cfg.json").write_text("{}")

    async def body():
        session = await connect(mlflow_settings, tmp_path)
        job = await plugin.submit_job(session, "artif001", TrainingConfig())
        artifact_id = await plugin.upload_artifact(
            session, job, src, ArtifactSpec(name="my ckpt/v1", metadata={"epoch": 3})
        )
        out = tmp_path / "out"
        out.mkdir()
        got = await plugin.download_artifact(session, artifact_id, out)
        files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())

        root = (await _runs.get_run(session, job))["info"]["artifact_uri"].split(":/", 1)[1]
        name = artifact_id.split("/", 1)[1]
        client = session.client
        listed = await client.call("GET", "artifacts/list", params={"run_id": job})
        evil = json.dumps({"kind": "directory", "files": [["../escape.txt", 1, "0"]]})
        await client.call(
            "POST",
            "runs/set-tag",
            body={"run_id": job, "key": "trackmux.artifact.evil", "value": evil},
        )
        with pytest.raises(ValueError, match="leaves the target"):
            await plugin.download_artifact(session, f"{job}/evil", tmp_path / "out")
        legacy = json.dumps(
            {"kind": "directory", "files": [{"path": "../escape.txt", "size": 1, "sha256": "0"}]}
        ).encode()
        await client.put_artifact(f"{root}/old.trackmux.json", legacy, len(legacy))
        with pytest.raises(ValueError, match="leaves the target"):
            await plugin.download_artifact(session, f"{job}/old", tmp_path / "out")

        await client.put_artifact(f"{root}/{name}/cfg.json", b"{tampered}", 10)
        with pytest.raises(RuntimeError, match="mismatch"):
            await plugin.download_artifact(session, artifact_id, tmp_path / "out")
        with pytest.raises(UnknownJobError):
            await plugin.download_artifact(session, f"{job}/missing", tmp_path / "out")
        await plugin.disconnect(session)
        return artifact_id, got, files, listed

    artifact_id, got, files, listed = run(body())
    assert artifact_id.endswith("/my-ckpt-v1")
    assert [f["path"] for f in listed["files"]] == ["my-ckpt-v1"], "no sidecar file"
    assert got == tmp_path / "out"
    assert files == ["cfg.json", "deep/er/w.bin"]
    assert (tmp_path / "out" / "deep" / "er" / "w.bin").read_bytes() == bytes(range(256)) * 50
    assert not (tmp_path / "escape.txt").exists()
    assert (tmp_path / "out" / "cfg.json").read_text() == "{}"


def test_an_artifact_of_many_files_is_checked_by_one_digest(mlflow_settings, tmp_path):
    """Too many files for the manifest tag's 8,000 characters: the tag keeps one SHA-256
    over them all; the download lists, fetches and checks them."""
    src = tmp_path / "shards"
    src.mkdir()
    for index in range(70):
        (src / f"shard-{index:03d}-{'x' * 60}.bin").write_bytes(bytes([index]) * 10)

    async def body():
        session = await connect(mlflow_settings, tmp_path)
        job = await plugin.submit_job(session, "manyfile", TrainingConfig())
        artifact_id = await plugin.upload_artifact(session, job, src, ArtifactSpec(name="shards"))
        info = await _runs.get_run(session, job)
        await plugin.download_artifact(session, artifact_id, tmp_path / "out")
        root = info["info"]["artifact_uri"].split(":/", 1)[1]
        victim = f"shard-007-{'x' * 60}.bin"
        await session.client.put_artifact(f"{root}/shards/{victim}", b"y" * 10, 10)
        with pytest.raises(RuntimeError, match="checksum mismatch"):
            await plugin.download_artifact(session, artifact_id, tmp_path / "again")
        await plugin.disconnect(session)
        return info

    info = run(body())
    tag = {t["key"]: t["value"] for t in info["data"]["tags"]}["trackmux.artifact.shards"]
    assert len(tag) <= 8000 and json.loads(tag)["files"]["count"] == 70
    got = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert got == sorted(p.name for p in src.iterdir())
    assert all((tmp_path / "out" / p.name).read_bytes() == p.read_bytes() for p in src.iterdir())
