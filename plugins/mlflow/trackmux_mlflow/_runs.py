"""Runs on MLflow: create or resume, log metrics exactly once, finish, and read back.

Exactly once, with nothing in the run the user did not log: a record's metrics go out as
``runs/log-batch`` entries with MLflow step = the record's step and timestamp = the
record's time in milliseconds, and the run tag :data:`SEQ_TAG` (``trackmux.seq``) is set
to ``{"seq": N, "step": S}``, the last record of the batch, once every metric of the batch
is stored: in the same request when the batch fits one (1,000 entries), else alone after
the batch's parts of 1,000 metrics, which go :data:`PARALLEL_REQUESTS` at a time
(:func:`log_metrics`). The tag says how many records the server holds (``resume_point``;
a new session reads it with one ``runs/get``); the session keeps that count per job
(:attr:`JobState.stored`) and skips records below it, reading it again after any request
that failed or whose outcome it does not know.

Why that is exactly once although neither a batch nor one ``log-batch`` is one
transaction (MLflow 3.17's SQL store commits a request's params, its metrics and its
tags one after another, ``SqlAlchemyStore.log_batch``): the tag is sent only after every
part was answered, and within a request the tags commit after the metrics, so the tag
never counts a record whose metrics are not stored; and the metrics table's primary key
is (run, key, timestamp, step, value), with ``log_batch`` skipping entries it already
holds, so records resent because the tag lagged (a failed or unanswered part, a crash
between two commits, a lost answer) are stored once. A record's entries are a pure
function of the record (no per-session state), so a resend from another process is
identical too. ``tests/mlflow`` checks this against a real server.

Reading back: every key's history is grouped by ``(step, timestamp)``, one row per group,
in timestamp and step order. Two records at one step within one millisecond read back as
one row (as W&B's one row per step), and identical values at the same key, step and
millisecond are one entry in MLflow.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from trackmux_spec import (
    Comparison,
    JobStatus,
    MetricRecord,
    PermanentError,
    ResumePoint,
    RunSummary,
    TrainingConfig,
    UnknownJobError,
)

from ._failures import MLflowError
from ._session import JobState, MLflowSession
from ._values import (
    MAX_BATCH_BYTES,
    MAX_ENTRIES_PER_BATCH,
    MAX_PARAMS_TAGS_PER_BATCH,
    decode_metric,
    decode_param,
    encode_metric,
    metric_size,
    mlflow_name,
    param_entries,
    split_entries,
    tag_entries,
)

__all__ = [
    "PARALLEL_REQUESTS",
    "SEQ_TAG",
    "compare",
    "finish_job",
    "get_history",
    "get_job_status",
    "log_metrics",
    "metric_requests",
    "resume_point",
    "submit_job",
    "update_config",
]

logger = logging.getLogger("trackmux.mlflow")

#: The run tag holding the last stored record, ``{"seq": N, "step": S}`` (module docstring).
SEQ_TAG = "trackmux.seq"
#: The marker metric older trackmux versions logged with every record: read, never written.
LEGACY_SEQ_KEY = "_trackmux.seq"
#: The run tag that holds trackmux's run id; ``submit_job`` finds runs by it.
RUN_ID_TAG = "trackmux.run_id"

_STATES = {
    "RUNNING": JobStatus.RUNNING,
    "SCHEDULED": JobStatus.PENDING,
    "FINISHED": JobStatus.FINISHED,
    "FAILED": JobStatus.FAILED,
    "KILLED": JobStatus.KILLED,
}
#: MLflow has no preempted state: a preempted run is stored FAILED (the contract's rule).
_FINAL = {
    JobStatus.FINISHED: "FINISHED",
    JobStatus.FAILED: "FAILED",
    JobStatus.KILLED: "KILLED",
    JobStatus.PREEMPTED: "FAILED",
}
_HISTORY_PAGE = 25_000
#: log-batch requests of one ``log_metrics`` call in flight at once (:func:`_send_parts`).
PARALLEL_REQUESTS = 2
#: Bytes the :data:`SEQ_TAG` entry adds to a request, at most.
_TAG_ROOM = 200
_PARALLEL_READS = 8


def map_status(status: object) -> JobStatus:
    """An MLflow ``RunStatus`` as a :class:`JobStatus` (unknown ones read as running)."""
    mapped = _STATES.get(str(status))
    if mapped is None:
        logger.warning("unknown MLflow run status %r; reporting it as running", status)
        return JobStatus.RUNNING
    return mapped


def _now_ms() -> int:
    return int(time.time() * 1000)


def _is_missing(exc: MLflowError) -> bool:
    return exc.status_code == 404 or exc.error_code == "RESOURCE_DOES_NOT_EXIST"


# -- experiments and runs ------------------------------------------------------------------


async def experiment_id(session: MLflowSession, name: str) -> str:
    """The id of experiment ``name``, created if it does not exist."""
    known = session.experiments.get(name)
    if known is not None:
        return known
    client = session.client
    try:
        found = await client.call(
            "GET", "experiments/get-by-name", params={"experiment_name": name}
        )
        experiment = found.get("experiment") or {}
        if experiment.get("lifecycle_stage") == "deleted":
            raise PermanentError(
                f"MLflow experiment {name!r} is deleted; restore it or choose another name"
            )
        ident = str(experiment["experiment_id"])
    except MLflowError as exc:
        if not _is_missing(exc):
            raise
        try:
            created = await client.call("POST", "experiments/create", body={"name": name})
            ident = str(created["experiment_id"])
        except MLflowError as again:
            if again.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return await experiment_id(session, name)
        logger.info("created MLflow experiment %r (id %s)", name, ident)
    session.experiments[name] = ident
    return ident


async def get_run(session: MLflowSession, run_id: str) -> dict[str, Any] | None:
    """The run's ``{"info", "data"}``, or ``None`` if the server has no such run."""
    try:
        answer = await session.client.call("GET", "runs/get", params={"run_id": run_id})
    except MLflowError as exc:
        if _is_missing(exc) or exc.error_code == "INVALID_PARAMETER_VALUE":
            return None
        raise
    run = answer.get("run")
    return run if isinstance(run, dict) else None


def _filter_value(run_id: str) -> str:
    if "'" in run_id or "\\" in run_id:
        raise PermanentError(f"run id {run_id!r} cannot be searched in MLflow (quote or backslash)")
    return f"'{run_id}'"


async def _find_run(session: MLflowSession, exp_id: str, run_id: str) -> dict[str, Any] | None:
    answer = await session.client.call(
        "POST",
        "runs/search",
        body={
            "experiment_ids": [exp_id],
            "filter": f"tags.`{RUN_ID_TAG}` = {_filter_value(run_id)}",
            "run_view_type": "ACTIVE_ONLY",
            "max_results": 1,
            "order_by": ["attributes.start_time ASC"],
        },
    )
    runs = answer.get("runs") or []
    return runs[0] if runs else None


def _run_tags(run_id: str, config: TrainingConfig) -> dict[str, str]:
    tags = {RUN_ID_TAG: run_id, "mlflow.runName": config.name or run_id}
    if config.notes:
        tags["mlflow.note.content"] = config.notes
    if config.group:
        tags["trackmux.group"] = config.group
    if config.job_type:
        tags["trackmux.job_type"] = config.job_type
    if config.tags:
        tags["trackmux.tags"] = json.dumps(list(config.tags))
        for tag in config.tags:
            if not tag.startswith(("mlflow.", "trackmux.")):
                tags.setdefault(tag, "")
    return tags


async def _log_entries(
    session: MLflowSession, run_id: str, field: str, entries: list[dict[str, str]]
) -> None:
    for chunk in split_entries(entries, per_request=MAX_PARAMS_TAGS_PER_BATCH):
        await session.client.call("POST", "runs/log-batch", body={"run_id": run_id, field: chunk})


def _stored_from(run: Mapping[str, Any]) -> tuple[int, int | None]:
    """How many records the run holds, and the last one's step (from :data:`SEQ_TAG`)."""
    data = run.get("data") or {}
    for tag in data.get("tags") or []:
        if tag.get("key") == SEQ_TAG:
            try:
                held = json.loads(tag["value"])
                seq, step = held["seq"], held["step"]
                if isinstance(seq, int) and seq >= 0 and isinstance(step, int):
                    return seq + 1, step
            except (ValueError, KeyError, TypeError):
                pass
            logger.warning("MLflow tag %s=%r is not trackmux's; ignoring it", SEQ_TAG, tag)
    for metric in data.get("metrics") or []:
        if metric.get("key") == LEGACY_SEQ_KEY:
            return int(metric.get("step", 0)) + 1, int(float(metric["value"]))
    return 0, None


def _adopt(job: JobState, run: Mapping[str, Any]) -> None:
    job.stored, job.last_step = _stored_from(run)


async def _log_new_params(
    session: MLflowSession, mlflow_id: str, run: Mapping[str, Any], params: list[dict[str, str]]
) -> None:
    """Log the params ``run`` does not hold; warn about those whose value changed."""
    held = {p["key"]: p["value"] for p in (run.get("data") or {}).get("params") or []}
    for param in params:
        if param["key"] in held and held[param["key"]] != param["value"]:
            logger.warning(
                "MLflow params cannot change: keeping %s=%r of run %s (not %r)",
                param["key"],
                held[param["key"]],
                mlflow_id,
                param["value"],
            )
    await _log_entries(session, mlflow_id, "params", [p for p in params if p["key"] not in held])


async def update_config(session: MLflowSession, job_id: str, config: TrainingConfig) -> None:
    """Log the config's new keys as params and refresh the run's tags.

    An MLflow param cannot change once logged: a changed value keeps the first one, with a
    warning (the journal and the other trackers hold the new value).
    """
    run = await get_run(session, job_id)
    if run is None:
        raise PermanentError(f"MLflow run {job_id} does not exist")
    run_id = next(
        (t["value"] for t in (run.get("data") or {}).get("tags") or [] if t["key"] == RUN_ID_TAG),
        job_id,
    )
    await _log_new_params(session, job_id, run, param_entries(config.hyperparameters()))
    await _log_entries(session, job_id, "tags", tag_entries(_run_tags(run_id, config)))


async def submit_job(session: MLflowSession, run_id: str, config: TrainingConfig) -> str:
    """Create the MLflow run tagged ``trackmux.run_id = run_id``, or resume it."""
    exp_id = await experiment_id(session, config.project_name or session.settings.experiment)
    existing = await _find_run(session, exp_id, run_id)
    tags = tag_entries(_run_tags(run_id, config))
    params = param_entries(config.hyperparameters())
    client = session.client
    if existing is None:
        essential = [t for t in tags if t["key"] in (RUN_ID_TAG, "mlflow.runName")]
        created = await client.call(
            "POST",
            "runs/create",
            body={
                "experiment_id": exp_id,
                "run_name": config.name or run_id,
                "start_time": _now_ms(),
                "tags": essential,
            },
        )
        mlflow_id = str(created["run"]["info"]["run_id"])
        await _log_entries(session, mlflow_id, "params", params)
        await _log_entries(session, mlflow_id, "tags", [t for t in tags if t not in essential])
        session.jobs[mlflow_id] = JobState(run_id=mlflow_id, experiment_id=exp_id, stored=0)
        logger.info("created MLflow run %s for trackmux run %s", mlflow_id, run_id)
        return mlflow_id

    info = existing["info"]
    mlflow_id = str(info["run_id"])
    await _log_new_params(session, mlflow_id, existing, params)
    await _log_entries(session, mlflow_id, "tags", tags)
    job = session.jobs.get(mlflow_id)
    if job is None:
        job = JobState(run_id=mlflow_id, experiment_id=str(info["experiment_id"]))
        _adopt(job, existing)
        session.jobs[mlflow_id] = job
    if info.get("status") != "RUNNING":
        await client.call("POST", "runs/update", body={"run_id": mlflow_id, "status": "RUNNING"})
        job.finished = None
    logger.info(
        "resuming MLflow run %s of trackmux run %s at record %s", mlflow_id, run_id, job.stored
    )
    return mlflow_id


async def _job(session: MLflowSession, job_id: str) -> JobState:
    """The session's state of ``job_id``, adopting a run created by another process."""
    job = session.jobs.get(job_id)
    if job is not None:
        return job
    run = await get_run(session, job_id)
    if run is None:
        raise PermanentError(f"MLflow run {job_id} does not exist")
    job = JobState(run_id=job_id, experiment_id=str(run["info"]["experiment_id"]))
    _adopt(job, run)
    session.jobs[job_id] = job
    return job


async def resume_point(session: MLflowSession, job_id: str) -> ResumePoint:
    """How many records the run holds, and the step of the last one (read from the server)."""
    job = await _job(session, job_id)
    run = await get_run(session, job.run_id)
    if run is None:
        raise PermanentError(f"MLflow run {job_id} does not exist")
    _adopt(job, run)
    return ResumePoint(next_seq=job.stored or 0, last_step=job.last_step)


# -- metrics ---------------------------------------------------------------------------------


def record_entries(record: MetricRecord) -> list[dict[str, Any]]:
    """The log-batch metrics of one record: a pure function of the record (resends match)."""
    stamp = max(0, round(record.timestamp * 1000))
    values: dict[str, Any] = {}
    for key, value in record.values.items():
        values[mlflow_name(key)] = encode_metric(value)
    return [
        {"key": key, "value": value, "timestamp": stamp, "step": record.step}
        for key, value in values.items()
    ]


def seq_tag(record: MetricRecord) -> dict[str, str]:
    """The :data:`SEQ_TAG` entry saying that ``record`` and every record before it are stored."""
    held = json.dumps({"seq": record.seq, "step": record.step}, separators=(",", ":"))
    return {"key": SEQ_TAG, "value": held}


def metric_requests(
    records: Sequence[MetricRecord], *, max_bytes: int = MAX_BATCH_BYTES
) -> tuple[Iterator[list[dict[str, Any]]], list[dict[str, Any]]]:
    """The records' metrics as log-batch requests: ``(parts, final)``.

    ``final`` goes with the :data:`SEQ_TAG` tag, after every part is stored. Records that
    fit one request with the tag (1,000 entries, ``max_bytes``) are one request: no parts,
    ``final`` all of it. More are parts of at most 1,000 metrics and ``max_bytes``, built
    as they are taken (so the next part is encoded while one is on the wire), and
    ``final`` is empty: the tag goes alone.
    """
    if sum(len(r.values) for r in records) < MAX_ENTRIES_PER_BATCH:
        final = [e for r in records for e in record_entries(r)]
        if sum(map(metric_size, final)) + _TAG_ROOM <= max_bytes:
            return iter(()), final
    entries = (e for r in records for e in record_entries(r))
    parts = split_entries(
        entries, per_request=MAX_ENTRIES_PER_BATCH, max_bytes=max_bytes, size=metric_size
    )
    return parts, []


async def _send_parts(
    session: MLflowSession, run_id: str, parts: Iterator[list[dict[str, Any]]]
) -> None:
    """``log-batch`` every part, :data:`PARALLEL_REQUESTS` at a time.

    After a failure no further part is started; the ones in flight are awaited, then the
    first failure is raised (so nothing of this call is still on the wire when it returns).
    """
    failures: list[Exception] = []

    async def sender() -> None:
        while not failures:
            try:
                part = next(parts, None)  # parts are built here, as they are taken
                if part is None:
                    return
                await session.client.call(
                    "POST", "runs/log-batch", body={"run_id": run_id, "metrics": part}
                )
            except Exception as exc:
                failures.append(exc)
                return

    await asyncio.gather(*(sender() for _ in range(PARALLEL_REQUESTS)))
    if failures:
        raise failures[0]


async def log_metrics(session: MLflowSession, job_id: str, records: Sequence[MetricRecord]) -> None:
    """Send the records the server does not hold yet, then set :data:`SEQ_TAG` to the last.

    One request when the batch fits in one (its metrics and the tag). A larger batch goes as
    parts of 1,000 metrics, :data:`PARALLEL_REQUESTS` in flight at once, and the tag goes
    alone once every part is stored: the tag never counts a record the server does not
    hold. After any failure the session forgets what the run holds (``stored = None``)
    and the retry resends from the tag; what the parts already stored is absorbed by the
    metrics table's primary key (module docstring).
    """
    if not records:
        return
    job = await _job(session, job_id)
    if job.stored is None:
        run = await get_run(session, job.run_id)
        if run is None:
            raise PermanentError(f"MLflow run {job_id} does not exist")
        _adopt(job, run)
        logger.info("MLflow run %s holds %d records", job_id, job.stored)
    stored = job.stored or 0
    fresh = [r for r in records if r.seq >= stored]
    if not fresh:
        return
    last = fresh[-1]
    parts, final = metric_requests(fresh)
    try:
        await _send_parts(session, job.run_id, parts)
        await session.client.call(
            "POST",
            "runs/log-batch",
            body={"run_id": job.run_id, "metrics": final, "tags": [seq_tag(last)]},
        )
    except BaseException:
        job.stored = None
        raise
    job.stored = last.seq + 1
    job.last_step = last.step


# -- state -------------------------------------------------------------------------------------


async def finish_job(session: MLflowSession, job_id: str, status: JobStatus) -> None:
    """``runs/update`` to FINISHED, FAILED or KILLED (PREEMPTED: FAILED); the first final
    state wins."""
    status = JobStatus(status)
    if status not in _FINAL:
        raise ValueError(
            f"finish_job accepts FINISHED, FAILED, KILLED or PREEMPTED, not {status.name}"
        )
    job = await _job(session, job_id)
    if job.finished is not None:
        return
    run = await get_run(session, job.run_id)
    if run is None:
        raise PermanentError(f"MLflow run {job_id} does not exist")
    current = map_status(run["info"].get("status"))
    if current.is_terminal:
        job.finished = current
        return
    await session.client.call(
        "POST",
        "runs/update",
        body={"run_id": job.run_id, "status": _FINAL[status], "end_time": _now_ms()},
    )
    job.finished = status


async def get_job_status(session: MLflowSession, job_id: str) -> JobStatus:
    """The run's status (``runs/get``)."""
    run = await get_run(session, job_id)
    if run is None:
        raise UnknownJobError(job_id)
    return map_status(run["info"].get("status"))


# -- reading back ----------------------------------------------------------------------------


async def metric_history(session: MLflowSession, run_id: str, key: str) -> list[dict[str, Any]]:
    """Every stored entry of metric ``key`` (all pages)."""
    entries: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        answer = await session.client.call(
            "GET",
            "metrics/get-history",
            params={
                "run_id": run_id,
                "metric_key": key,
                "max_results": _HISTORY_PAGE,
                "page_token": token,
            },
        )
        entries.extend(answer.get("metrics") or [])
        token = answer.get("next_page_token") or None
        if token is None:
            return entries


async def get_history(session: MLflowSession, job_id: str) -> list[dict[str, Any]]:
    """Every stored row of the run: each key's history grouped by ``(step, timestamp)``, in
    timestamp and step order (see the module docstring)."""
    run = await get_run(session, job_id)
    if run is None:
        raise UnknownJobError(job_id)
    keys = [
        m["key"] for m in (run.get("data") or {}).get("metrics") or [] if m["key"] != LEGACY_SEQ_KEY
    ]
    limit = asyncio.Semaphore(_PARALLEL_READS)

    async def read(key: str) -> tuple[str, list[dict[str, Any]]]:
        async with limit:
            return key, await metric_history(session, job_id, key)

    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for key, entries in await asyncio.gather(*(read(k) for k in keys)):
        seen: dict[tuple[int, int], int] = {}
        for entry in entries:
            stamp, step = int(entry["timestamp"]), int(entry.get("step", 0))
            rows = groups.setdefault((stamp, step), [])
            index = seen.get((stamp, step), 0)  # the same key twice: a row of its own
            seen[(stamp, step)] = index + 1
            if index == len(rows):
                rows.append({"_step": step, "_timestamp": stamp / 1000})
            rows[index][key] = decode_metric(entry["value"])
    return [row for pair in sorted(groups) for row in groups[pair]]


def _summary(run: Mapping[str, Any], session: MLflowSession) -> RunSummary:
    info, data = run["info"], run.get("data") or {}
    return RunSummary(
        id=str(info["run_id"]),
        name=info.get("run_name"),
        state=map_status(info.get("status")),
        config={p["key"]: decode_param(p["value"]) for p in data.get("params") or []},
        summary={
            m["key"]: decode_metric(m["value"])
            for m in data.get("metrics") or []
            if m["key"] != LEGACY_SEQ_KEY
        },
        url=session.run_url(str(info["run_id"])),
    )


async def compare(session: MLflowSession, job_ids: Sequence[str]) -> Comparison:
    """The known runs' params and latest metrics, and MLflow's compare-runs page."""
    unique = list(dict.fromkeys(job_ids))
    runs = [r for r in await asyncio.gather(*(get_run(session, j) for j in unique)) if r]
    summaries = [_summary(run, session) for run in runs]
    url = None
    if runs:
        ids = json.dumps([s.id for s in summaries])
        experiments = json.dumps(sorted({str(r["info"]["experiment_id"]) for r in runs}))
        url = (
            f"{session.settings.tracking_uri}/#/compare-runs?runs={quote(ids)}"
            f"&experiments={quote(experiments)}"
        )
    return Comparison(runs=summaries, url=url)
