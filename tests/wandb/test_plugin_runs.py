"""Runs against the fake W&B server: create, resume, stream history, finish, read back."""

from __future__ import annotations

import datetime as dt
import email.utils
import math

import pytest
import trackmux_wandb as plugin
from _support import connect, records, run
from trackmux_spec import (
    JobStatus,
    MetricRecord,
    PermanentError,
    RetryableError,
    TrainingConfig,
    UnknownJobError,
)
from trackmux_wandb.testing import AfterApply, Drop, FakeWandB, Status, Timeout

CONFIG = TrainingConfig(
    base_model="llama",
    rank=16,
    learning_rate=2e-4,
    project_name="peft",
    name="first try",
    tags=("lora", "small"),
    notes="n",
    group="g",
    job_type="train",
    extra={"layers": [64, 64]},
)


#: The W&B run name of ``submitted``'s run (its job id is the path ``entity/peft/NAME``).
NAME = "abc12345"


def submitted(fake, tmp_path, config=CONFIG, run_id=NAME):
    async def go():
        session = await connect(fake, tmp_path)
        return session, await plugin.submit_job(session, run_id, config)

    return run(go())


def history_requests(fake):
    return [r for r in fake.requests if r.operation == "file_stream"]


def test_submit_creates_the_run_with_wrapped_config_and_metadata(fake, tmp_path):
    _, job_id = submitted(fake, tmp_path)
    assert job_id == f"{fake.entity}/peft/abc12345"
    stored = fake.run(fake.entity, "peft", NAME)
    assert stored.display_name == "first try"
    assert stored.tags == ["lora", "small"]
    assert (stored.notes, stored.group, stored.job_type) == ("n", "g", "train")
    config = fake.config(fake.entity, "peft", NAME)
    assert config["rank"] == {"value": 16}
    assert config["layers"] == {"value": [64, 64]}
    assert config["_wandb"] == {"value": {"t": {}}}
    assert [r.operation for r in fake.requests] == ["Viewer", "RunResumeStatus", "UpsertBucket"]


def test_project_defaults_to_the_setting_then_uncategorized(fake, tmp_path):
    async def go():
        session = await connect(fake, tmp_path, project="configured")
        await plugin.submit_job(session, "r1", TrainingConfig())
        other = await connect(fake, tmp_path)
        await plugin.submit_job(other, "r2", TrainingConfig())

    run(go())
    assert fake.run(fake.entity, "configured", "r1")
    assert fake.run(fake.entity, "uncategorized", "r2")


def test_log_metrics_writes_lines_at_seq_and_the_whole_summary(fake, tmp_path):
    session, job_id = submitted(fake, tmp_path)
    batch = records(0, 5)
    run(plugin.log_metrics(session, job_id, batch))
    rows = fake.history(fake.entity, "peft", NAME)
    assert [r["_step"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[2]["_timestamp"] == batch[2].timestamp
    assert rows[0]["_runtime"] == 0 and rows[4]["_runtime"] == pytest.approx(4)
    summary = fake.summary(fake.entity, "peft", NAME)
    assert summary["loss"] == batch[-1].values["loss"] and summary["_step"] == 4
    assert len(history_requests(fake)) == 1
    run(
        plugin.log_metrics(
            session, job_id, [MetricRecord(5, 9, batch[-1].timestamp + 1, {"lr": 0.1})]
        )
    )
    summary = fake.summary(fake.entity, "peft", NAME)
    assert summary["lr"] == 0.1 and summary["loss"] == batch[-1].values["loss"]
    assert summary["_step"] == 9


def test_resend_after_a_lost_ack_does_not_duplicate(fake, tmp_path):
    session, job_id = submitted(fake, tmp_path)
    fake.inject(AfterApply(Drop()), match="file_stream")
    with pytest.raises(RetryableError):
        run(plugin.log_metrics(session, job_id, records(0, 3)))
    assert len(fake.history(fake.entity, "peft", NAME)) == 3
    run(plugin.log_metrics(session, job_id, records(0, 3)))
    run(plugin.log_metrics(session, job_id, records(3, 5)))
    assert [r["_step"] for r in fake.history(fake.entity, "peft", NAME)] == [0, 1, 2, 3, 4]


def test_resume_in_a_new_process_skips_what_the_server_holds(fake, tmp_path):
    session, job_id = submitted(fake, tmp_path)
    run(plugin.log_metrics(session, job_id, records(0, 4)))

    async def restarted():
        again = await connect(fake, tmp_path)
        assert await plugin.submit_job(again, job_id, CONFIG) == job_id
        await plugin.log_metrics(again, job_id, records(2, 6))
        return again

    again = run(restarted())
    rows = fake.history(fake.entity, "peft", NAME)
    assert [r["_step"] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert rows[5]["_runtime"] == pytest.approx(5)
    sent = history_requests(fake)[-1]
    assert sent.history_lines == 2
    assert again.runs[job_id].next_seq == 6
    assert fake.summary(fake.entity, "peft", NAME)["_step"] == 5


def test_a_batch_entirely_below_the_resume_point_sends_nothing(fake, tmp_path):
    session, job_id = submitted(fake, tmp_path)
    run(plugin.log_metrics(session, job_id, records(0, 3)))
    fake.clear_requests()

    async def restarted():
        again = await connect(fake, tmp_path)
        await plugin.submit_job(again, job_id, CONFIG)
        await plugin.log_metrics(again, job_id, records(0, 3))

    run(restarted())
    assert history_requests(fake) == []


@pytest.mark.parametrize(
    "fault", [Status(500), Status(502), Status(503), Status(408), Timeout(), Drop()]
)
def test_transient_failures_are_retryable_and_leave_no_trace(fake, tmp_path, fault):
    session, job_id = submitted(fake, tmp_path)
    fake.inject(fault, match="file_stream")
    with pytest.raises(RetryableError):
        run(plugin.log_metrics(session, job_id, records(0, 2)))
    assert session.runs[job_id].summary == {}
    run(plugin.log_metrics(session, job_id, records(0, 2)))
    assert len(fake.history(fake.entity, "peft", NAME)) == 2


def test_429_retry_after_in_seconds(fake, tmp_path):
    session, job_id = submitted(fake, tmp_path)
    fake.inject(Status(429, retry_after=7), match="file_stream")
    with pytest.raises(RetryableError) as info:
        run(plugin.log_metrics(session, job_id, records(0, 1)))
    assert info.value.retry_after == 7


def test_429_retry_after_as_http_date(fake, tmp_path):
    session, job_id = submitted(fake, tmp_path)
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    fake.inject(
        Status(429, retry_after=email.utils.format_datetime(when, usegmt=True)), match="file_stream"
    )
    with pytest.raises(RetryableError) as info:
        run(plugin.log_metrics(session, job_id, records(0, 1)))
    assert 100 < info.value.retry_after <= 120


@pytest.mark.parametrize("code", [400, 403, 404, 409, 410, 422, 501])
def test_refusals_are_permanent_and_name_status_and_operation(fake, tmp_path, code):
    session, job_id = submitted(fake, tmp_path)
    fake.inject(Status(code), match="file_stream")
    with pytest.raises(PermanentError) as info:
        run(plugin.log_metrics(session, job_id, records(0, 1)))
    assert str(code) in str(info.value) and "file_stream" in str(info.value)


def test_revoked_key_is_permanent_and_the_message_hides_the_key(fake, tmp_path):
    session, job_id = submitted(fake, tmp_path)
    fake.revoke_key()
    with pytest.raises(PermanentError) as info:
        run(plugin.log_metrics(session, job_id, records(0, 1)))
    assert "401" in str(info.value)
    assert fake.api_key not in str(info.value)


def test_413_splits_the_batch_until_it_fits(tmp_path):
    fake = FakeWandB(max_file_stream_bytes=4000)
    session, job_id = submitted(fake, tmp_path)
    batch = [MetricRecord(i, i, 1e9 + i, {f"m{k}": float(k) for k in range(20)}) for i in range(20)]
    run(plugin.log_metrics(session, job_id, batch))
    assert [r["_step"] for r in fake.history(fake.entity, "peft", NAME)] == list(range(20))
    statuses = [r.status for r in history_requests(fake)]
    assert 413 in statuses and statuses[-1] == 200
    assert fake.summary(fake.entity, "peft", NAME)["_step"] == 19


def test_a_single_line_too_large_is_permanent(tmp_path):
    fake = FakeWandB(max_file_stream_bytes=300)
    session, job_id = submitted(fake, tmp_path)
    big = MetricRecord(0, 0, 1e9, {f"metric_{k}": float(k) for k in range(50)})
    with pytest.raises(PermanentError, match="413"):
        run(plugin.log_metrics(session, job_id, [big]))


def test_rate_limit_headers_hold_back_the_next_request(fake, tmp_path):
    session, job_id = submitted(fake, tmp_path)
    fake.rate_limit(0, reset=30)
    run(plugin.log_metrics(session, job_id, records(0, 1)))
    before = len(fake.requests)
    with pytest.raises(RetryableError) as info:
        run(plugin.log_metrics(session, job_id, records(1, 2)))
    assert 25 < info.value.retry_after <= 30
    assert len(fake.requests) == before


def test_nan_and_infinity_round_trip(fake, tmp_path):
    session, job_id = submitted(fake, tmp_path)
    values = {"nan": math.nan, "pos": math.inf, "neg": -math.inf, "ok": 1.5, "n": 3}
    run(plugin.log_metrics(session, job_id, [MetricRecord(0, 0, 1e9, values)]))
    line = fake.run(fake.entity, "peft", NAME).history[0]
    assert "NaN" in line and "-Infinity" in line
    rows = run(plugin.get_history(session, job_id))
    assert len(rows) == 1
    row = rows[0]
    assert math.isnan(row["nan"]) and row["pos"] == math.inf and row["neg"] == -math.inf
    assert (row["ok"], row["n"], row["_step"], row["_timestamp"]) == (1.5, 3, 0, 1e9)
    assert "_runtime" not in row


def test_get_history_of_an_unknown_run(fake, tmp_path):
    session, _ = submitted(fake, tmp_path)
    with pytest.raises(UnknownJobError):
        run(plugin.get_history(session, "nope"))


@pytest.mark.parametrize(
    ("status", "state", "exit_code"),
    [
        (JobStatus.FINISHED, JobStatus.FINISHED, 0),
        (JobStatus.FAILED, JobStatus.FAILED, 1),
        (JobStatus.KILLED, JobStatus.KILLED, 255),
    ],
)
def test_finish_job_sets_the_final_state(fake, tmp_path, status, state, exit_code):
    session, job_id = submitted(fake, tmp_path)
    assert run(plugin.get_job_status(session, job_id)) is JobStatus.RUNNING
    run(plugin.finish_job(session, job_id, status))
    run(plugin.finish_job(session, job_id, status))
    assert run(plugin.get_job_status(session, job_id)) is state
    assert fake.run(fake.entity, "peft", NAME).exit_code == exit_code
    assert len(history_requests(fake)) == 1


def test_finish_first_final_state_wins(fake, tmp_path):
    session, job_id = submitted(fake, tmp_path)
    run(plugin.finish_job(session, job_id, JobStatus.FINISHED))
    run(plugin.finish_job(session, job_id, JobStatus.KILLED))
    assert run(plugin.get_job_status(session, job_id)) is JobStatus.FINISHED


def test_finish_retryable_then_delivered(fake, tmp_path):
    session, job_id = submitted(fake, tmp_path)
    fake.inject(Status(503), match="file_stream")
    with pytest.raises(RetryableError):
        run(plugin.finish_job(session, job_id, JobStatus.FINISHED))
    run(plugin.finish_job(session, job_id, JobStatus.FINISHED))
    assert run(plugin.get_job_status(session, job_id)) is JobStatus.FINISHED


def test_job_status_of_an_unknown_run(fake, tmp_path):
    session, _ = submitted(fake, tmp_path)
    with pytest.raises(UnknownJobError):
        run(plugin.get_job_status(session, "missing1"))


def test_preempting_reads_as_running(fake, tmp_path):
    from trackmux_wandb._runs import map_state

    assert map_state("preempting") is JobStatus.RUNNING
    assert map_state("preempted") is JobStatus.PREEMPTED
    assert map_state("crashed") is JobStatus.CRASHED


def test_run_url(tmp_path):
    fake = FakeWandB(base_url="https://api.wandb.ai")
    session, job_id = submitted(fake, tmp_path)
    assert (
        plugin.get_run_url(session, job_id) == f"https://wandb.ai/{fake.entity}/peft/runs/{NAME}"
    )


def test_compare_reports_known_runs_with_config_and_summary(fake, tmp_path):
    async def go():
        session = await connect(fake, tmp_path)
        for run_id, lr in (("run1", 0.1), ("run2", 0.2)):
            config = TrainingConfig(project_name="peft", learning_rate=lr, name=f"name-{run_id}")
            await plugin.submit_job(session, run_id, config)
            await plugin.log_metrics(session, run_id, records(0, 3))
        await plugin.finish_job(session, "run1", JobStatus.FINISHED)
        return session, await plugin.compare(session, ["run2", "ghost", "run1"])

    session, comparison = run(go())
    assert [r.id for r in comparison.runs] == ["run2", "run1"]
    first = comparison.runs[1]
    assert first.name == "name-run1"
    assert first.state is JobStatus.FINISHED
    assert first.config == {"learning_rate": 0.1}
    assert set(first.summary) == {"loss", "acc"}
    assert comparison.url == f"{fake.base_url.replace('api.', '')}/{fake.entity}/peft/workspace"
    assert first.url == plugin.get_run_url(session, "run1")


def test_key_never_reaches_logs_or_errors_during_faults(fake, tmp_path, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    session, job_id = submitted(fake, tmp_path)
    errors = []
    for fault in (Status(500), Status(429, retry_after=1), Timeout(), Drop(), Status(400)):
        fake.inject(fault, match="file_stream")
        with pytest.raises((RetryableError, PermanentError)) as info:
            run(plugin.log_metrics(session, job_id, records(0, 1)))
        errors.append(str(info.value))
    import base64

    token = base64.b64encode(f"api:{fake.api_key}".encode()).decode()
    for text in (caplog.text, *errors, repr(session)):
        assert fake.api_key not in text and token not in text


# -- one history row per step ------------------------------------------------------------------


def rec(seq, step, **values):
    return MetricRecord(seq, step, 1_700_000_000.0 + seq, values)


def file_stream_offsets(fake):
    return [r.history_offset for r in history_requests(fake) if r.history_lines]


def test_records_at_one_step_make_one_row_later_values_winning(fake, tmp_path):
    session, job_id = submitted(fake, tmp_path)
    run(plugin.log_metrics(session, job_id, [rec(0, 0, loss=1.0), rec(1, 0, acc=0.5)]))
    run(plugin.log_metrics(session, job_id, [rec(2, 0, loss=0.9), rec(3, 1, loss=0.8)]))
    run(plugin.log_metrics(session, job_id, [rec(4, 1, eval_loss=0.7)]))
    rows = fake.history(fake.entity, "peft", NAME)
    assert [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows] == [
        {"loss": 0.9, "acc": 0.5},
        {"loss": 0.8, "eval_loss": 0.7},
    ]
    assert [r["_step"] for r in rows] == [0, 1]
    assert rows[1]["_timestamp"] == 1_700_000_004.0, "the later record's time"
    # the second request rewrote line 0 and added line 1; the third rewrote line 1
    assert file_stream_offsets(fake) == [0, 0, 1]
    assert [r["_step"] for r in run(plugin.get_history(session, job_id))] == [0, 1]
    assert all("_wandb" not in r for r in run(plugin.get_history(session, job_id)))
    summary = fake.summary(fake.entity, "peft", NAME)
    assert (summary["loss"], summary["eval_loss"], summary["acc"]) == (0.8, 0.7, 0.5)


def test_a_decreasing_step_starts_a_row_of_its_own(fake, tmp_path):
    session, job_id = submitted(fake, tmp_path)
    batch = [rec(0, 5, x=1), rec(1, 6, x=2), rec(2, 5, x=3), rec(3, 5, y=4)]
    run(plugin.log_metrics(session, job_id, batch))
    rows = fake.history(fake.entity, "peft", NAME)
    assert [(r["_step"], r["x"], r.get("y")) for r in rows] == [(5, 1, None), (6, 2, None),
                                                                 (5, 3, 4)]


def test_a_merge_resent_after_a_lost_ack_rewrites_the_same_row(fake, tmp_path):
    session, job_id = submitted(fake, tmp_path)
    run(plugin.log_metrics(session, job_id, [rec(0, 0, loss=1.0)]))
    fake.inject(AfterApply(Drop()), match="file_stream")
    batch = [rec(1, 0, acc=0.5), rec(2, 1, loss=0.5)]
    with pytest.raises(RetryableError):
        run(plugin.log_metrics(session, job_id, batch))
    run(plugin.log_metrics(session, job_id, batch))
    run(plugin.log_metrics(session, job_id, [rec(3, 1, acc=0.7)]))
    rows = fake.history(fake.entity, "peft", NAME)
    assert [(r["_step"], r["loss"], r["acc"]) for r in rows] == [(0, 1.0, 0.5), (1, 0.5, 0.7)]


def test_a_new_session_resumes_from_the_last_rows_marker(fake, tmp_path):
    """The acknowledgement of the last request was lost and the process restarted: the
    new session reads the last row and its seq marker, skips what is stored, and merges
    the next record at the same step into the stored row."""
    session, job_id = submitted(fake, tmp_path)
    run(plugin.log_metrics(session, job_id, [rec(0, 0, a=1), rec(1, 0, b=2), rec(2, 1, a=3)]))
    fake.inject(AfterApply(Drop()), match="file_stream")
    with pytest.raises(RetryableError):
        run(plugin.log_metrics(session, job_id, [rec(3, 1, b=4), rec(4, 2, a=5), rec(5, 2, b=6)]))
    assert len(fake.history(fake.entity, "peft", NAME)) == 3

    async def restarted():
        again = await connect(fake, tmp_path)
        await plugin.submit_job(again, NAME, CONFIG)
        point = await plugin.resume_point(again, job_id)
        await plugin.log_metrics(again, job_id, [rec(s, 1 + s // 4, b=s) for s in range(3, 8)])
        return point

    point = run(restarted())
    assert (point.next_seq, point.last_step) == (6, 2)
    rows = fake.history(fake.entity, "peft", NAME)
    assert [(r["_step"], r.get("a"), r.get("b")) for r in rows] == [
        (0, 1, 2), (1, 3, 4), (2, 5, 7),
    ], "seq 3-5 stored once; seq 6 (step 2) merged into the stored row, seq 7 likewise"


def test_a_run_without_markers_resumes_at_its_line_count(fake, tmp_path):
    """A run an older trackmux (or another client) wrote, one line per record."""
    session, job_id = submitted(fake, tmp_path)
    lines = [f'{{"_step": {i}, "x": {i}}}' for i in range(4)]
    body = {"files": {"wandb-history.jsonl": {"offset": 0, "content": lines}}}
    run(session.client.file_stream(fake.entity, "peft", NAME, body))

    async def resumed():
        again = await connect(fake, tmp_path)
        await plugin.submit_job(again, NAME, CONFIG)
        return await plugin.resume_point(again, job_id)

    point = run(resumed())
    assert (point.next_seq, point.last_step) == (4, 3)


# -- run paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "default_project"),
    [
        ("{entity}/peft/{name}", "elsewhere"),
        ("{entity}/peft/runs/{name}", "elsewhere"),
        ("peft/{name}", "elsewhere"),
        ("{name}", "peft"),
    ],
)
def test_every_hook_taking_a_job_id_accepts_a_wandb_run_path(
    fake, tmp_path, form, default_project
):
    """A session that never saw the run (another process, another default project)."""
    session, job_id = submitted(fake, tmp_path)
    run(plugin.log_metrics(session, job_id, [rec(0, 3, x=1.0)]))
    path = form.format(entity=fake.entity, name=NAME)

    async def fresh_session():
        other = await connect(fake, tmp_path, project=default_project)
        return (
            await plugin.get_job_status(other, path),
            await plugin.get_history(other, path),
            await plugin.compare(other, [path]),
            plugin.get_run_url(other, path),
        )

    status, history, comparison, url = run(fresh_session())
    assert status is JobStatus.RUNNING
    assert [(r["_step"], r["x"]) for r in history] == [(3, 1.0)]
    assert [r.id for r in comparison.runs] == [path]
    assert url == plugin.get_run_url(session, job_id)
    assert url.endswith(f"/{fake.entity}/peft/runs/{NAME}")


def test_a_bare_run_id_means_the_sessions_project(fake, tmp_path):
    submitted(fake, tmp_path)

    async def elsewhere():
        other = await connect(fake, tmp_path, project="elsewhere")
        return await plugin.get_job_status(other, NAME)

    with pytest.raises(UnknownJobError):
        run(elsewhere())


@pytest.mark.parametrize("path", ["a/b/c/d", "a//c", "/", "a/b/run/c"])
def test_a_malformed_run_path_is_refused_naming_it(fake, tmp_path, path):
    session, _ = submitted(fake, tmp_path)
    with pytest.raises(ValueError, match="not a W&B run path"):
        run(plugin.get_job_status(session, path))


def test_submit_job_with_a_run_path_resumes_the_run_in_its_project(fake, tmp_path):
    _, job_id = submitted(fake, tmp_path)

    async def elsewhere():
        other = await connect(fake, tmp_path, project="elsewhere")
        return await plugin.submit_job(other, job_id, TrainingConfig())

    assert run(elsewhere()) == job_id
    assert fake.projects(fake.entity) == ["peft"]
