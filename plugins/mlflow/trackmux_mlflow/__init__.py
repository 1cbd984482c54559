"""trackmux_mlflow: the MLflow tracker, speaking the tracking server's REST API.

Registered as ``mlflow`` in the ``trackmux`` entry-point group. It talks to an MLflow
tracking server (``mlflow server``, 2.x or 3.x) over httpx: ``/api/2.0/mlflow/...`` for
experiments, runs and metrics, and the server's artifact proxy
(``/api/2.0/mlflow-artifacts/artifacts/...``) for files. It does not need the ``mlflow``
package.

Configuration read by :func:`connect` (see :mod:`._settings`):

* ``credentials``: ``tracking_uri``, ``token`` (sent as ``Bearer``), or ``username`` and
  ``password`` (HTTP Basic, as for ``mlflow server --app-name basic-auth``).
* ``context.settings`` (the ``[mlflow]`` table): ``tracking_uri``, ``experiment``,
  ``timeout``, ``artifact_attempts``, ``artifact_retry_wait``, and ``transport`` (an
  ``httpx.AsyncBaseTransport``, the testing hook).
* Environment: ``MLFLOW_TRACKING_URI``, ``MLFLOW_TRACKING_TOKEN``,
  ``MLFLOW_TRACKING_USERNAME``, ``MLFLOW_TRACKING_PASSWORD``, ``MLFLOW_EXPERIMENT_NAME``,
  ``MLFLOW_HTTP_REQUEST_TIMEOUT``, ``MLFLOW_TRACKING_INSECURE_TLS``.

Secrets never appear in reprs, log lines or exception messages.

How trackmux maps onto MLflow:

* A run goes to the experiment ``TrainingConfig.project_name``, else
  ``settings["experiment"]`` / ``MLFLOW_EXPERIMENT_NAME``, else ``Default`` (created if
  missing). The job id is MLflow's run id. The run is tagged ``trackmux.run_id``;
  ``submit_job`` searches for that tag first and resumes the run it finds (status back to
  RUNNING), which makes it idempotent. ``config.name`` (else the trackmux run id) is the
  run name; ``hyperparameters()`` are params; notes go to ``mlflow.note.content``; group,
  job type and tags to ``trackmux.group``, ``trackmux.job_type``, ``trackmux.tags`` (and
  one empty-valued tag per trackmux tag). MLflow params are immutable: on resume a
  changed value is kept as it was, with a warning.
* Metrics: every record is logged with ``step`` = the record's step and ``timestamp`` =
  its time in milliseconds, and nothing else: no marker metric. Once a batch's metrics
  are stored, the run tag ``trackmux.seq`` (``{"seq": N, "step": S}``, the batch's last
  record) is set, in the same ``log-batch`` when the batch fits one, else alone after the
  batch's parts (sent two at a time); it makes delivery exactly-once and answers
  ``resume_point``; see :mod:`._runs`. Requests respect MLflow's limits (1,000 entries,
  100 params, 100 tags, 1 MB per ``log-batch``).
* Statuses: FINISHED, FAILED and KILLED through ``runs/update``; MLflow's SCHEDULED reads
  as PENDING.
* Artifacts: files under ``<name>/`` in the run's artifact root, and nothing beside
  them: the run tag ``trackmux.artifact.<name>`` holds the SHA-256 manifest; see
  :mod:`._artifacts`.

MLflow's quirks and what the plugin does about them (see :mod:`._values`):

* NaN is sent as the JSON string ``"NaN"`` and stored as NaN. ±Infinity is sent as
  ``"Infinity"`` / ``"-Infinity"``; the server stores ``±1.7976931348623157e308`` (as
  MLflow's own client does), which ``get_history`` and ``compare`` read back as ±inf.
  Bare ``NaN``/``Infinity`` JSON tokens are never sent: the server silently turns such a
  metric into value 0 at step 0.
* Names MLflow refuses (characters other than word characters, ``/ . - : space``; paths
  that ``normpath`` changes) are sanitised (others become ``_``) with a warning once per
  name, rather than failing the run: get_history returns the sanitised names.
* Param values over 6,000 characters and tag values over 8,000 are truncated, with a
  warning (the server would truncate params silently).
* Steps are MLflow's int64 steps; timestamps are whole milliseconds (``get_history`` reads
  records logged at one step within one millisecond back as one row).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trackmux_spec import (
    ArtifactSpec,
    Comparison,
    ConnectContext,
    JobStatus,
    MetricRecord,
    PermanentError,
    ResumePoint,
    RetryableError,
    TrackerInfo,
    TrainingConfig,
    hookimpl,
)

from . import _artifacts, _runs
from ._client import MLflowClient
from ._session import MLflowSession
from ._settings import SETTINGS_KEYS, resolve_settings

__all__ = [
    "MLflowSession",
    "compare",
    "connect",
    "disconnect",
    "download_artifact",
    "finish_job",
    "get_history",
    "get_job_status",
    "get_run_url",
    "log_metrics",
    "resume_point",
    "submit_job",
    "tracker_info",
    "update_config",
    "upload_artifact",
]

logger = logging.getLogger("trackmux.mlflow")


def _session(session: object) -> MLflowSession:
    if not isinstance(session, MLflowSession):
        raise TypeError(f"not an MLflow session: {type(session).__name__}")
    return session


#: Most records one ``log_metrics`` call takes: 5,000 rows of 5 metrics are 25 requests
#: of 1,000 and one for the ``trackmux.seq`` tag, which then costs the server under 1% of
#: the batch (3% with batches of 1,000: ``bench/mlflow_throughput.py``).
MAX_BATCH_RECORDS = 5000


@hookimpl
def tracker_info() -> TrackerInfo:
    """Up to :data:`MAX_BATCH_RECORDS` records per call; no rate limit, no heartbeat, every
    capability (artifacts, compare, history)."""
    return TrackerInfo(
        max_batch_records=MAX_BATCH_RECORDS, min_batch_interval=0.0, settings=SETTINGS_KEYS
    )


@hookimpl
async def connect(credentials: Mapping[str, Any], context: ConnectContext) -> MLflowSession:
    """Resolve the settings and check the server with an authenticated experiments search.

    :raises ValueError: no or a malformed tracking URI, or credentials the server rejects
        (401/403).
    :raises ConnectionError: the server cannot be reached or is not an MLflow server.
    """
    settings = resolve_settings(credentials, context.settings)
    client = MLflowClient(settings)
    try:
        await client.call("GET", "experiments/search", params={"max_results": 1})
    except RetryableError as exc:
        await client.aclose()
        raise ConnectionError(f"cannot reach MLflow at {settings.tracking_uri}: {exc}") from None
    except PermanentError as exc:
        await client.aclose()
        if getattr(exc, "status_code", None) in (401, 403):
            raise ValueError(f"MLflow rejected the credentials ({exc})") from None
        raise ConnectionError(
            f"{settings.tracking_uri} does not answer as an MLflow tracking server: {exc}"
        ) from None
    logger.info("connected to MLflow at %s", settings.tracking_uri)
    return MLflowSession(settings=settings, client=client)


@hookimpl
async def disconnect(session: object) -> None:
    """Close the session's HTTP client."""
    await _session(session).client.aclose()


@hookimpl
async def submit_job(session: object, run_id: str, config: TrainingConfig) -> str:
    """Create or resume the MLflow run tagged ``trackmux.run_id = run_id``."""
    return await _runs.submit_job(_session(session), run_id, config)


@hookimpl
async def update_config(session: object, job_id: str, config: TrainingConfig) -> None:
    """Log the config's new keys as params (an MLflow param keeps its first value)."""
    await _runs.update_config(_session(session), job_id, config)


@hookimpl
async def resume_point(session: object, job_id: str) -> ResumePoint:
    """How many records the run holds and the step of the last one."""
    return await _runs.resume_point(_session(session), job_id)


@hookimpl
async def log_metrics(session: object, job_id: str, records: Sequence[MetricRecord]) -> None:
    """``runs/log-batch`` the records the server does not hold yet, setting ``trackmux.seq``."""
    await _runs.log_metrics(_session(session), job_id, records)


@hookimpl
async def finish_job(session: object, job_id: str, status: JobStatus) -> None:
    """``runs/update`` to FINISHED, FAILED or KILLED, unless the run already ended."""
    await _runs.finish_job(_session(session), job_id, status)


@hookimpl
async def get_job_status(session: object, job_id: str) -> JobStatus:
    """The run's status; SCHEDULED reads as PENDING."""
    return await _runs.get_job_status(_session(session), job_id)


@hookimpl
def get_run_url(session: object, job_id: str) -> str:
    """``{uri}/#/experiments/{experiment}/runs/{run}`` (``{uri}/#/runs/{run}`` if unknown)."""
    return _session(session).run_url(job_id)


@hookimpl
async def get_history(session: object, job_id: str) -> list[dict[str, Any]]:
    """Every record of the run: values plus ``_step`` and ``_timestamp``."""
    return await _runs.get_history(_session(session), job_id)


@hookimpl
async def compare(session: object, job_ids: Sequence[str]) -> Comparison:
    """Params and latest metrics of the known runs, and MLflow's compare-runs URL."""
    return await _runs.compare(_session(session), job_ids)


@hookimpl
async def upload_artifact(session: object, job_id: str, path: Path, artifact: ArtifactSpec) -> str:
    """Upload a file or directory as one artifact; returns ``<run id>/<name>``."""
    return await _artifacts.upload_artifact(_session(session), job_id, path, artifact)


@hookimpl
async def download_artifact(session: object, artifact_id: str, target_dir: Path) -> Path:
    """Fetch an artifact, checking paths, sizes and SHA-256s; returns the file or directory."""
    return await _artifacts.download_artifact(_session(session), artifact_id, target_dir)
