"""The hooks a tracker plugin implements.

A tracker is a plugin registered under its entry-point name in the ``trackmux``
entry-point group, and it implements :func:`connect`. Wrapper plugins
(``@trackmux.hookimpl(wrapper=True)``, registered in ``trackmux.wrappers``) may wrap any
hook of every tracker to filter, redact or inject faults. The core calls one tracker's hooks
at a time (pluggy's subset hook callers), so several trackers can be active in one process.
A plugin is imported only when its tracker is selected; one that fails to import or to
register is reported by name and the other trackers keep working.

Every hook may be a plain function or a coroutine function: the core awaits what is
awaitable. Blocking hooks run in a worker thread, never on the caller's thread. The
exceptions are :func:`get_run_url` and :func:`tracker_info`, which must be plain,
non-blocking functions.

Errors, by hook: the delivery hooks (:func:`log_metrics`, :func:`update_config`,
:func:`finish_job`) raise
:class:`~trackmux_spec.RetryableError` or :class:`~trackmux_spec.PermanentError` (a job the
backend does not hold is permanent); the read hooks (:func:`get_job_status`,
:func:`get_history`, :func:`download_artifact`) raise
:class:`~trackmux_spec.UnknownJobError` for an id the backend does not hold.

Hooks other than ``tracker_info`` receive the ``session`` object their tracker's
:func:`connect` returned; trackmux never looks inside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ._types import (
        ArtifactSpec,
        Comparison,
        ConnectContext,
        JobStatus,
        MetricRecord,
        ResumePoint,
        TrackerInfo,
        TrainingConfig,
    )

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "trackmux"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# -------------------------------------------------------------------------
# Declaration
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def tracker_info() -> TrackerInfo:
    """Describe the tracker to the engine: batch limits and capabilities.

    Must be a plain function (the core calls it without ``await``).

    :returns: a :class:`~trackmux_spec.TrackerInfo`; a tracker that does not implement
        this hook gets the defaults (100 records per batch, every capability).

    Stops at first non-None result.
    """


# -------------------------------------------------------------------------
# Session lifecycle
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def connect(credentials: Mapping[str, Any], context: ConnectContext) -> object:
    """Open a session with the backend and check the credentials.

    :param credentials: what the user passed to ``connect()`` (for example ``api_key`` and
        ``entity``); a tracker falls back to its own environment variables and files.
    :param context: the tracker's data directory and its configuration section.
    :returns: the session object handed back to every other hook.
    :raises ValueError: the credentials are malformed or the backend rejected them.
    :raises ConnectionError: the backend cannot be reached.

    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def disconnect(session: object) -> None:
    """Release the session's resources (HTTP clients, open files).

    Called once, after the engine delivered or gave up on everything for this session.

    :param session: the object :func:`connect` returned.

    Stops at first non-None result.
    """


# -------------------------------------------------------------------------
# Runs
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def submit_job(session: object, run_id: str, config: TrainingConfig) -> str:
    """Create the run ``run_id`` with its configuration, or resume it if it exists.

    Must be idempotent: the engine calls it again for a run that a crashed process
    created, before replaying what the backend never acknowledged. Resuming keeps the
    job's history and returns the same job id. A finished run can be resumed too
    (``trackmux sync`` does): it then takes new records, and the next :func:`finish_job`
    sets its final state again. What :func:`get_job_status` reports in between is the
    backend's (the offline tracker and MLflow: running; W&B keeps the old state until the
    resumed run sends data).

    :param session: the object :func:`connect` returned.
    :param run_id: trackmux's id for the run (8 characters ``[a-z0-9]``, or the user's).
    :param config: the run's configuration and metadata.
    :returns: the backend's id for the job, passed as ``job_id`` to the other hooks.

    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def update_config(session: object, job_id: str, config: TrainingConfig) -> None:
    """Replace the job's configuration with ``config``: the run's whole configuration as it
    stands now, after a change made once the run had started (``run.config.update(...)``,
    Lightning's ``log_hyperparams``, a model config known only when training begins).

    ``config`` is the merged result, never just the change, so a repeated call is harmless
    and the last call wins. The engine calls it after :func:`submit_job`, as often as the
    configuration changed (possibly once for several changes), unordered with respect to
    :func:`log_metrics`. Store ``config.hyperparameters()`` as the run's config, as
    :func:`submit_job` does; a backend whose config values cannot change once written
    (MLflow's params) keeps the first value of such a key, adds the new keys and logs a
    warning. Raise :class:`~trackmux_spec.RetryableError` or
    :class:`~trackmux_spec.PermanentError` as for :func:`log_metrics`.

    :param session: the object :func:`connect` returned.
    :param job_id: the id :func:`submit_job` returned.
    :param config: the run's configuration and metadata, as :func:`submit_job` receives it.

    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def resume_point(session: object, job_id: str) -> ResumePoint:
    """Report where the job ends on the backend: how many of its records it holds.

    The engine asks after :func:`submit_job`, before it sends anything. For a journal
    that never delivered to this job (the run resumed on a fresh node, or by another
    process's journal), records are renumbered after ``next_seq``, so nothing already
    stored is overwritten or skipped; for a journal that did, what the backend holds
    beyond the journal's cursor (an acknowledgement lost in a crash) is not sent again,
    and ``trackmux sync`` counts only what it really sent. ``last_step`` lets a run
    resumed without a step continue after the backend's last step.

    A tracker that does not implement it is sent every record from ``seq`` 0 of each
    journal and must skip what it holds itself.

    :param session: the object :func:`connect` returned.
    :param job_id: the id :func:`submit_job` returned.
    :returns: a :class:`~trackmux_spec.ResumePoint`.

    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def log_metrics(session: object, job_id: str, records: Sequence[MetricRecord]) -> None:
    """Store a batch of metric records of one job, in order.

    ``records`` are consecutive by ``seq``, which goes on across journals (see
    :func:`resume_point`). A record whose ``seq`` the backend already holds for this job
    must not be stored twice, and :func:`resume_point` must count it: the engine resends
    a batch whose acknowledgement was lost. Raise :class:`~trackmux_spec.RetryableError`
    for a failure worth retrying and :class:`~trackmux_spec.PermanentError` for one that is
    not.
    Returning normally acknowledges the whole batch. An empty ``records`` is a heartbeat
    (sent only to trackers that declare ``TrackerInfo.heartbeat_interval``): it stores
    nothing (a wrapper plugin may also empty a batch: the records are acknowledged).
    A job the backend does not hold raises :class:`~trackmux_spec.PermanentError`.
    Metric names never start with ``_``
    (the core rejects them), so ``_step``, ``_timestamp`` and ``_runtime`` are free for
    the tracker's own columns.

    :param session: the object :func:`connect` returned.
    :param job_id: the id :func:`submit_job` returned.
    :param records: at most ``TrackerInfo.max_batch_records`` records.

    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def finish_job(session: object, job_id: str, status: JobStatus) -> None:
    """Mark the job ended: ``FINISHED``, ``FAILED``, ``KILLED`` or ``PREEMPTED``.

    ``PREEMPTED`` ends a run whose process was stopped from outside (SIGTERM from SLURM or
    Kubernetes). A backend with such a state stores it (W&B: ``preempting``, then a
    non-zero exit code); one without it stores ``FAILED``, and :func:`get_job_status`
    then reports ``FAILED``.

    Called after every record of the job has been acknowledged, and only then. Must be
    idempotent: the first final state wins (a second call with another state changes
    nothing) until the job is resumed by :func:`submit_job`. A job the backend does not
    hold raises :class:`~trackmux_spec.PermanentError`. Raise
    :class:`~trackmux_spec.RetryableError` or :class:`~trackmux_spec.PermanentError` as for
    :func:`log_metrics`.

    :param session: the object :func:`connect` returned.
    :param job_id: the id :func:`submit_job` returned.
    :param status: the final state.

    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def get_job_status(session: object, job_id: str) -> JobStatus:
    """Read the job's state from the backend.

    :param session: the object :func:`connect` returned.
    :param job_id: the id :func:`submit_job` returned.
    :returns: a :class:`~trackmux_spec.JobStatus` (not its string value).
    :raises trackmux_spec.UnknownJobError: the backend has no such job.

    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def get_run_url(session: object, job_id: str) -> str:
    """Where a person looks at the job: a web URL, or a ``file://`` URL for local trackers.

    Must be a plain function that does no I/O (the reference API calls it without
    ``await``).

    :param session: the object :func:`connect` returned.
    :param job_id: the id :func:`submit_job` returned.
    :returns: the URL.

    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def get_history(session: object, job_id: str) -> list[dict[str, Any]]:
    """Read back every stored row of the job, in order.

    :param session: the object :func:`connect` returned.
    :param job_id: the id :func:`submit_job` returned.
    :returns: one dict per row: the metric values plus ``_step`` (the record's step, an
        int) and ``_timestamp`` (the record's timestamp, Unix seconds; a backend may round
        it to the millisecond).
    :raises trackmux_spec.UnknownJobError: the backend has no such job (an empty list
        means a job that holds no rows yet).

    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def compare(session: object, job_ids: Sequence[str]) -> Comparison:
    """Describe several jobs side by side.

    :param session: the object :func:`connect` returned.
    :param job_ids: ids :func:`submit_job` returned; unknown ones are left out.
    :returns: a :class:`~trackmux_spec.Comparison`: one
        :class:`~trackmux_spec.RunSummary` per known job (config and summary, the last
        value of every metric) and a URL where the backend compares them, if it has one.

    Stops at first non-None result.
    """


# -------------------------------------------------------------------------
# Artifacts
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def upload_artifact(session: object, job_id: str, path: Path, artifact: ArtifactSpec) -> str:
    """Store a file, or a directory as one artifact, logged by the job.

    :param session: the object :func:`connect` returned.
    :param job_id: the id :func:`submit_job` returned.
    :param path: an existing file or directory (the core checked it exists).
    :param artifact: its name, type, description, metadata and ``key``.
    :returns: an artifact id that :func:`download_artifact` accepts.
    :raises trackmux_spec.RetryableError: a transient failure (timeout, 429, 5xx); the
        engine calls again later with the same ``artifact.key``.
    :raises trackmux_spec.PermanentError: the backend refused the artifact; the message
        names the failed step. The engine gives up on this artifact only (the tracker goes
        on with its records) and ``trackmux sync`` tries it again.

    Like records with their ``seq``, an artifact is identified by ``artifact.key``: called
    again with a key the tracker already stored (an acknowledgement was lost, or ``trackmux
    sync`` resends it), the hook must store nothing new and return the same id. The engine
    calls it from the tracker's worker, in the background, once the tracker holds every
    record logged before the artifact; ``path`` is trackmux's stored copy: read it, never write it.

    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def download_artifact(session: object, artifact_id: str, target_dir: Path) -> Path:
    """Fetch an artifact into ``target_dir``, verifying every file's checksum.

    The layout: a file artifact is written as ``target_dir / <its file name>``. A directory
    artifact's files go directly into ``target_dir`` at their paths relative to the uploaded
    directory, without the directory's own name: uploading ``ckpt/`` holding ``a.txt`` and
    ``sub/b.bin`` downloads ``target_dir/a.txt`` and ``target_dir/sub/b.bin``.

    Must refuse (``ValueError``) any entry whose path would land outside ``target_dir``,
    before writing anything: pass every entry's path through
    :func:`trackmux_spec.artifact_paths.safe_destination`, as the built-in trackers do.

    :param session: the object :func:`connect` returned.
    :param artifact_id: an id :func:`upload_artifact` returned.
    :param target_dir: an existing directory.
    :returns: the path of the downloaded file for a file artifact, ``target_dir`` for a
        directory artifact.
    :raises trackmux_spec.UnknownJobError: no such artifact (its ``job_id`` is the artifact
        id); nothing is written.

    Stops at first non-None result.
    """
