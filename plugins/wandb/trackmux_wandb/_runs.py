"""Runs on W&B: create or resume, stream history, finish, and read back.

One history row per step, as the SDK stores it: a record at the step of the run's last
row merges into that row (later values win) and is sent by rewriting that line at the
same file_stream offset; a record at any other step starts the next line. The session
keeps, per run, the line count, the last row, and ``next_seq``: records below it are
stored and are skipped, so a resend after a lost acknowledgement rewrites the same lines
with the same rows. The last line of every request carries ``_wandb.trackmux_seq`` (the
``seq`` of the last record in it; ``_wandb`` is the key W&B keeps for client
bookkeeping), so a new session reads ``next_seq``, the line count and the last row from
the resume-status query (``historyLineCount``, ``historyTail``) and goes on exactly.
Job ids are run paths, ``entity/project/run``; every hook that takes a job id accepts
any W&B run path (``run``, ``project/run``, ``entity/project/run``,
``entity/project/runs/run``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

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

from . import _queries as q
from ._failures import PayloadTooLargeError
from ._history import (
    HISTORY_FILE,
    SUMMARY_FILE,
    decode_line,
    encode_line,
    history_line,
    split_by_size,
    updated_summary,
)
from ._session import RunState, WandBSession, parse_run_path

__all__ = [
    "compare",
    "finish_job",
    "get_history",
    "get_job_status",
    "log_metrics",
    "resume_point",
    "submit_job",
    "update_config",
]

logger = logging.getLogger("trackmux.wandb")

_STATES = {
    "running": JobStatus.RUNNING,
    "pending": JobStatus.PENDING,
    "finished": JobStatus.FINISHED,
    "failed": JobStatus.FAILED,
    "crashed": JobStatus.CRASHED,
    "killed": JobStatus.KILLED,
    "preempted": JobStatus.PREEMPTED,
    "preempting": JobStatus.RUNNING,
}

#: file_stream exit codes: 0 finishes a run, non-zero fails it. KILLED stops the run
#: first (``stopRun``) and then completes it with 255, the code of a killed process.
#: PREEMPTED sends ``preempting`` first, then completes with 143 (128 + SIGTERM, what a
#: shell reports for a job stopped by SIGTERM): W&B turns a preempting run that exits
#: non-zero into ``preempted``.
_EXIT_CODES = {
    JobStatus.FINISHED: 0,
    JobStatus.FAILED: 1,
    JobStatus.KILLED: 255,
    JobStatus.PREEMPTED: 143,
}

#: The key, inside a history row's ``_wandb``, of the ``seq`` of the last record in it.
SEQ_MARKER = "trackmux_seq"

_INTERNAL_CONFIG_KEYS = frozenset({"_wandb", "wandb_version"})
_HISTORY_SAMPLES = 500
_RUNS_PAGE = 50


def map_state(state: object) -> JobStatus:
    """A W&B run state as a :class:`JobStatus` (unknown states read as running)."""
    status = _STATES.get(str(state).lower()) if state is not None else None
    if status is None:
        logger.warning("unknown W&B run state %r; reporting it as running", state)
        return JobStatus.RUNNING
    return status


def _json_field(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def unwrap_config(raw: Any) -> dict[str, Any]:
    """W&B's ``{"k": {"value": v}}`` config as ``{"k": v}``, without internal keys."""
    parsed = _json_field(raw)
    if not isinstance(parsed, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in parsed.items():
        if key in _INTERNAL_CONFIG_KEYS:
            continue
        out[key] = value["value"] if isinstance(value, dict) and "value" in value else value
    return out


def _run_start_from(bucket: Mapping[str, Any], summary: Mapping[str, Any]) -> float | None:
    candidates: list[Any] = [summary]
    tail = _json_field(bucket.get("historyTail"))
    if isinstance(tail, list) and tail:
        candidates.insert(0, _json_field(tail[-1]))
    for row in candidates:
        if isinstance(row, dict):
            stamp, runtime = row.get("_timestamp"), row.get("_runtime")
            if isinstance(stamp, int | float) and isinstance(runtime, int | float):
                return float(stamp) - float(runtime)
    return None


def _config_json(value: Any) -> Any:
    """A config value as the ``wandb`` SDK sends it: NaN becomes ``null``
    (``wandb/util.py`` ``json_friendly``); the infinities stay ``Infinity`` tokens."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _config_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_config_json(item) for item in value]
    return value


def _wrapped_config(config: TrainingConfig) -> str:
    wrapped = {
        key: {"value": _config_json(value)} for key, value in config.hyperparameters().items()
    }
    wrapped["_wandb"] = {"value": {"t": {}}}
    return json.dumps(wrapped)


async def _resume_status(
    session: WandBSession, entity: str, project: str, name: str
) -> dict[str, Any] | None:
    data = await session.client.graphql(
        "RunResumeStatus",
        q.RUN_RESUME_STATUS,
        {"project": project, "entity": entity, "name": name},
    )
    model = data.get("model") or {}
    bucket = model.get("bucket")
    return bucket if isinstance(bucket, dict) else None


def _adopt(run: RunState, bucket: Mapping[str, Any]) -> None:
    """Take the server's line count and last row (``historyTail``) as the run's state.

    The last line of every request carries ``_wandb.trackmux_seq``, the ``seq`` of the last
    record it holds, so ``next_seq`` is exact even after a lost acknowledgement. A run
    without the marker (made by the SDK or an older trackmux, one line per record) starts
    at its line count.
    """
    run.line_count = int(bucket.get("historyLineCount") or 0)
    run.last_row = None
    run.next_seq = run.line_count
    tail = _json_field(bucket.get("historyTail"))
    if run.line_count and isinstance(tail, list) and tail:
        last = _json_field(tail[-1])
        if isinstance(last, dict):
            internal = last.pop("_wandb", None)
            run.last_row = last
            marker = internal.get(SEQ_MARKER) if isinstance(internal, dict) else None
            if isinstance(marker, int) and not isinstance(marker, bool) and marker >= 0:
                run.next_seq = marker + 1


def _adopted(
    name: str, entity: str, project: str, bucket: Mapping[str, Any] | None
) -> RunState:
    summary: dict[str, Any] = {}
    run_start: float | None = None
    if bucket is not None:
        parsed = _json_field(bucket.get("summaryMetrics"))
        summary = parsed if isinstance(parsed, dict) else {}
        run_start = _run_start_from(bucket, summary)
    run = RunState(
        name=name,
        entity=entity,
        project=project,
        storage_id=(bucket or {}).get("id"),
        run_start=run_start if run_start is not None else time.time(),
        summary=summary,
    )
    if bucket is not None:
        _adopt(run, bucket)
    return run


async def submit_job(session: WandBSession, run_id: str, config: TrainingConfig) -> str:
    """Create run ``run_id`` (``UpsertBucket``), or resume it where the server is.

    The entity is ``config.entity``, else the session's; the project
    ``config.project_name``, else the setting (a run path as ``run_id`` names both).
    Returns the run's path,
    ``entity/project/run_id``: the job id every other hook takes.
    """
    path_entity, path_project, run_id = parse_run_path(run_id)
    entity = path_entity or config.entity or session.entity
    project = path_project or config.project_name or session.settings.project
    bucket = await _resume_status(session, entity, project, run_id)
    data = await session.client.graphql(
        "UpsertBucket",
        q.UPSERT_BUCKET,
        {
            "name": run_id,
            "project": project,
            "entity": entity,
            "config": _wrapped_config(config),
            "tags": list(config.tags) or None,
            "groupName": config.group,
            "jobType": config.job_type,
            "notes": config.notes,
            "displayName": config.name,
        },
    )
    upserted = ((data.get("upsertBucket") or {}).get("bucket")) or {}
    project_node = upserted.get("project") or {}
    state = _adopted(
        str(upserted.get("name") or run_id),
        str((project_node.get("entity") or {}).get("name") or entity),
        str(project_node.get("name") or project),
        bucket,
    )
    state.storage_id = upserted.get("id") or state.storage_id
    existing = session.runs.get(state.path)
    if existing is not None:
        existing.storage_id = state.storage_id or existing.storage_id
        existing.finished = None
        return existing.path
    if bucket is not None:
        logger.info(
            "resuming W&B run %s at history line %d (record %d)",
            state.path,
            state.line_count,
            state.next_seq,
        )
    session.runs[state.path] = state
    return state.path


async def update_config(session: WandBSession, job_id: str, config: TrainingConfig) -> None:
    """Upsert the run's whole config (and its name, tags, notes, group, job type).

    Like the SDK, it sends the whole config: W&B replaces the stored one with it.
    """
    run = await _run_state(session, job_id)
    await session.client.graphql(
        "UpsertBucket",
        q.UPSERT_BUCKET,
        {
            "name": run.name,
            "project": run.project,
            "entity": run.entity,
            "config": _wrapped_config(config),
            "tags": list(config.tags) or None,
            "groupName": config.group,
            "jobType": config.job_type,
            "notes": config.notes,
            "displayName": config.name,
        },
    )


async def _run_state(session: WandBSession, job_id: str) -> RunState:
    """The session's state of ``job_id``, adopting a run created by another process."""
    run = session.known(job_id)
    if run is not None:
        return run
    entity, project, name = session.resolve(job_id)
    bucket = await _resume_status(session, entity, project, name)
    if bucket is None:
        raise PermanentError(f"W&B run {entity}/{project}/{name} does not exist")
    run = _adopted(name, entity, project, bucket)
    session.runs[run.path] = run
    return run


async def resume_point(session: WandBSession, job_id: str) -> ResumePoint:
    """How many records the run holds (``next_seq``) and the step of its last row."""
    run = await _run_state(session, job_id)
    return ResumePoint(next_seq=run.next_seq, last_step=run.last_step)


async def _post_lines(
    session: WandBSession,
    run: RunState,
    lines: list[tuple[int, str]],
    summary_line: str | None,
) -> None:
    """POST consecutive history lines (and the summary); halve the request on HTTP 413."""
    files: dict[str, Any] = {}
    if lines:
        files[HISTORY_FILE] = {"offset": lines[0][0], "content": [line for _, line in lines]}
    if summary_line is not None:
        files[SUMMARY_FILE] = {"offset": 0, "content": [summary_line]}
    try:
        await session.client.file_stream(run.entity, run.project, run.name, {"files": files})
    except PayloadTooLargeError:
        if len(lines) > 1:
            middle = len(lines) // 2
            logger.info("W&B file_stream refused %d lines as too large; splitting", len(lines))
            await _post_lines(session, run, lines[:middle], None)
            await _post_lines(session, run, lines[middle:], summary_line)
        elif lines and summary_line is not None:
            await _post_lines(session, run, lines, None)
            await _post_lines(session, run, [], summary_line)
        else:
            raise


def _rows(
    run: RunState, records: Sequence[MetricRecord]
) -> tuple[dict[int, dict[str, Any]], dict[int, int], int]:
    """The history rows ``records`` make, by line offset, with the last ``seq`` of each line.

    A record at the step of the last row merges into that row (later values win), as the
    SDK keeps one row per step; any other step starts a new row. Returns the rows, each
    row's last ``seq``, and the line count after them.
    """
    rows: dict[int, dict[str, Any]] = {}
    seqs: dict[int, int] = {}
    count = run.line_count
    last = run.last_row
    for record in records:
        row = history_line(record, run.run_start)
        if last is not None and count and last.get("_step") == record.step:
            row = {**last, **row}
            offset = count - 1
        else:
            offset = count
            count += 1
        rows[offset] = last = row
        seqs[offset] = record.seq
    return rows, seqs, count


async def log_metrics(session: WandBSession, job_id: str, records: Sequence[MetricRecord]) -> None:
    """Send ``records`` as history rows, one row per step, plus the whole summary.

    Rows are written at their line offset: a record at the step of the run's last row
    rewrites that line with the merged row, any other starts the next line. Records with
    a ``seq`` the server holds are skipped; a resent batch rewrites the same lines with the
    same rows. The last line of every request carries ``_wandb.trackmux_seq``, read back on
    resume. An empty batch is the engine's heartbeat: an empty file_stream request (``{}``),
    which keeps W&B from marking a quiet run crashed.
    """
    run = await _run_state(session, job_id)
    if not records:
        await session.client.file_stream(run.entity, run.project, run.name, {})
        return
    fresh = [r for r in records if r.seq >= run.next_seq]
    if not fresh:
        return
    if run.line_count == 0:
        run.run_start = min(run.run_start, fresh[0].timestamp)
    rows, seqs, count = _rows(run, fresh)
    summary = updated_summary(run.summary, (rows[o] for o in sorted(rows)))
    chunks = list(split_by_size([(o, encode_line(rows[o])) for o in sorted(rows)]))
    summary_line = encode_line(summary)
    if not chunks:
        await _post_lines(session, run, [], summary_line)
    for index, chunk in enumerate(chunks):
        offset = chunk[-1][0]
        chunk[-1] = (offset, encode_line({**rows[offset], "_wandb": {SEQ_MARKER: seqs[offset]}}))
        last = index == len(chunks) - 1
        await _post_lines(session, run, chunk, summary_line if last else None)
    run.summary = summary
    run.line_count = count
    run.last_row = rows[count - 1]
    run.next_seq = fresh[-1].seq + 1


async def finish_job(session: WandBSession, job_id: str, status: JobStatus) -> None:
    """Mark the run ended through file_stream ``complete``; ``KILLED`` stops it first,
    ``PREEMPTED`` sends the ``preempting`` flag first.

    Idempotent within the session: once a final state was delivered, later calls for
    the run do nothing (the first final state wins).
    """
    status = JobStatus(status)
    if status not in _EXIT_CODES:
        raise ValueError(
            f"finish_job accepts FINISHED, FAILED, KILLED or PREEMPTED, not {status.name}"
        )
    run = await _run_state(session, job_id)
    if run.finished is not None:
        return
    if status is JobStatus.KILLED:
        if run.storage_id is None:
            bucket = await _resume_status(session, run.entity, run.project, run.name)
            run.storage_id = (bucket or {}).get("id")
        if run.storage_id is None:
            raise PermanentError(f"W&B run {run.name} has no storage id; cannot stop it")
        await session.client.graphql("StopRun", q.STOP_RUN, {"id": run.storage_id})
    if status is JobStatus.PREEMPTED:
        await session.client.file_stream(run.entity, run.project, run.name, {"preempting": True})
    await session.client.file_stream(
        run.entity,
        run.project,
        run.name,
        {"complete": True, "exitcode": _EXIT_CODES[status]},
    )
    run.finished = status


async def get_job_status(session: WandBSession, job_id: str) -> JobStatus:
    """The run's state (``RunState`` query); ``job_id`` may be any W&B run path."""
    entity, project, name = session.resolve(job_id)
    data = await session.client.graphql(
        "RunState", q.RUN_STATE, {"project": project, "entity": entity, "name": name}
    )
    run = (data.get("project") or {}).get("run")
    if run is None:
        raise UnknownJobError(job_id)
    return map_state(run.get("state"))


async def get_history(session: WandBSession, job_id: str) -> list[dict[str, Any]]:
    """Every stored history row, ``_runtime`` left out (the contract's shape).

    ``samples`` is set to the run's line count so that W&B returns every row rather
    than a sample (for a run this session did not create, ``RunResumeStatus`` tells).
    """
    entity, project, name = session.resolve(job_id)
    known = session.known(job_id)
    if known is not None:
        lines = known.line_count
    else:
        bucket = await _resume_status(session, entity, project, name)
        if bucket is None:
            raise UnknownJobError(job_id)
        lines = int(bucket.get("historyLineCount") or 0)
    samples = max(_HISTORY_SAMPLES, lines)
    data = await session.client.graphql(
        "RunHistory",
        q.RUN_HISTORY,
        {
            "project": project,
            "entity": entity,
            "name": name,
            "samples": samples,
        },
    )
    run = (data.get("project") or {}).get("run")
    if run is None:
        raise UnknownJobError(job_id)
    rows: list[dict[str, Any]] = []
    for line in run.get("history") or []:
        row = decode_line(line) if isinstance(line, str) else dict(line)
        row.pop("_runtime", None)
        row.pop("_wandb", None)
        rows.append(row)
    return rows


async def compare(session: WandBSession, job_ids: Sequence[str]) -> Comparison:
    """The runs side by side (``Runs`` query filtered by name), unknown ids left out.

    ``job_ids`` may be W&B run paths of any project; each run's ``id`` is the job id given.
    """
    given = {session.resolve(job_id): job_id for job_id in dict.fromkeys(job_ids)}
    paths = list(given)
    groups: dict[tuple[str, str], list[str]] = {}
    for entity, project, name in paths:
        groups.setdefault((entity, project), []).append(name)
    found: dict[tuple[str, str, str], RunSummary] = {}
    for (entity, project), names in groups.items():
        cursor: str | None = None
        while True:
            data = await session.client.graphql(
                "Runs",
                q.RUNS,
                {
                    "project": project,
                    "entity": entity,
                    "cursor": cursor,
                    "perPage": _RUNS_PAGE,
                    "filters": json.dumps({"name": {"$in": names}}),
                },
            )
            runs = ((data.get("project") or {}).get("runs")) or {}
            for edge in runs.get("edges") or []:
                node = edge.get("node") or {}
                name = node.get("name")
                if name not in names:
                    continue
                summary = _json_field(node.get("summaryMetrics"))
                found[(entity, project, name)] = RunSummary(
                    id=given[(entity, project, name)],
                    name=node.get("displayName"),
                    state=map_state(node.get("state")),
                    config=unwrap_config(node.get("config")),
                    summary={k: v for k, v in (summary or {}).items() if not k.startswith("_")},
                    url=session.settings.run_url(entity, project, name),
                )
            page = runs.get("pageInfo") or {}
            cursor = page.get("endCursor")
            if not page.get("hasNextPage") or not cursor:
                break
    entity, project = paths[0][:2] if paths else (session.entity, session.settings.project)
    return Comparison(
        runs=[found[path] for path in paths if path in found],
        url=f"{session.settings.project_url(entity, project)}/workspace",
    )
