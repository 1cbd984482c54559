"""trackmux_wandb: the Weights & Biases tracker, speaking W&B's own wire protocol.

Registered as ``wandb`` in the ``trackmux`` entry-point group. It talks to W&B over
httpx exactly as the official SDK does (GraphQL at ``{base}/graphql``, metrics through
``{base}/files/{entity}/{project}/{run}/file_stream``, artifact bytes through
pre-signed storage URLs), without depending on the ``wandb`` package. See
``/work/shared/wandb/PROTOCOL.md`` for the protocol and its sources.

``WandBConnector`` (the reference document's class) is an ``AsyncTracker`` limited to
this tracker; it is imported lazily so that the hooks depend on ``trackmux_spec`` only.

Configuration read by :func:`connect`:

* ``credentials``: ``api_key``, ``entity``, ``base_url``.
* ``context.settings`` (the ``[wandb]`` table of the configuration): ``base_url``, ``project``,
  ``entity``, ``timeout`` (seconds per request), ``artifact_attempts``,
  ``artifact_retry_wait`` (seconds, doubled per retry), and ``transport``: an
  ``httpx.AsyncBaseTransport`` used for every request. ``transport`` is the testing
  hook (``FakeWandB().transport()``); leave it unset in real use.
* Environment: ``WANDB_API_KEY``, ``WANDB_ENTITY``, ``WANDB_BASE_URL``,
  ``WANDB_PROJECT``, ``WANDB_APP_URL``, ``WANDB_HTTP_TIMEOUT``; then ``~/.netrc``.
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
from . import _queries as q
from ._api import WandBClient
from ._session import WandBSession
from ._settings import SETTINGS_KEYS, resolve_settings

__all__ = [
    "WandBConnector",
    "WandBSession",
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

logger = logging.getLogger("trackmux.wandb")


def __getattr__(name: str) -> Any:
    # WandBConnector needs the core (trackmux); importing it lazily keeps the plugin's
    # hooks, which the core loads, dependent on trackmux_spec only.
    if name == "WandBConnector":
        from ._connector import WandBConnector

        return WandBConnector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _session(session: object) -> WandBSession:
    if not isinstance(session, WandBSession):
        raise TypeError(f"not a W&B session: {type(session).__name__}")
    return session


@hookimpl
def tracker_info() -> TrackerInfo:
    """Up to 10 000 records per request, one history request per run every 5 s at most.

    Every capability (artifacts, compare, history): the ``TrackerInfo`` default.
    """
    return TrackerInfo(max_batch_records=10_000, min_batch_interval=5.0, heartbeat_interval=30.0,
                       settings=SETTINGS_KEYS)


@hookimpl
async def connect(credentials: Mapping[str, Any], context: ConnectContext) -> WandBSession:
    """Resolve the settings, check the key's shape, and validate it with ``Viewer``.

    :raises ValueError: no key, a malformed key, or one W&B rejects.
    :raises ConnectionError: W&B cannot be reached (network, timeout, 5xx, not W&B).
    """
    settings = resolve_settings(credentials, context.settings)
    client = WandBClient(
        settings.base_url,
        settings.api_key,
        timeout=settings.timeout,
        transport=settings.transport,
    )
    try:
        data = await client.graphql("Viewer", q.VIEWER)
    except RetryableError as exc:
        await client.aclose()
        raise ConnectionError(f"cannot reach W&B at {settings.base_url}: {exc}") from None
    except PermanentError as exc:
        await client.aclose()
        if getattr(exc, "status_code", None) in (401, 403):
            raise ValueError(f"W&B rejected the API key ({exc})") from None
        raise ConnectionError(
            f"W&B at {settings.base_url} refused the login check: {exc}"
        ) from None
    viewer = data.get("viewer")
    if not viewer:
        await client.aclose()
        raise ValueError("W&B rejected the API key (the Viewer query returned no user)")
    entity = settings.entity or viewer.get("entity") or viewer.get("username")
    if not entity:
        await client.aclose()
        raise ValueError("W&B returned no default entity; pass credentials['entity']")
    logger.info("connected to W&B at %s as entity %s", settings.base_url, entity)
    return WandBSession(
        settings=settings, client=client, entity=str(entity), username=viewer.get("username")
    )


@hookimpl
async def disconnect(session: object) -> None:
    """Close the session's HTTP clients."""
    await _session(session).client.aclose()


@hookimpl
async def submit_job(session: object, run_id: str, config: TrainingConfig) -> str:
    """Create or resume the W&B run named ``run_id``; the job id is its path,
    ``entity/project/run_id``."""
    return await _runs.submit_job(_session(session), run_id, config)


@hookimpl
async def update_config(session: object, job_id: str, config: TrainingConfig) -> None:
    """``UpsertBucket`` the run's whole config (W&B replaces the stored one)."""
    await _runs.update_config(_session(session), job_id, config)


@hookimpl
async def resume_point(session: object, job_id: str) -> ResumePoint:
    """The ``seq`` after the last stored record (from the last row's marker) and its step."""
    return await _runs.resume_point(_session(session), job_id)


@hookimpl
async def log_metrics(session: object, job_id: str, records: Sequence[MetricRecord]) -> None:
    """Stream the records as ``wandb-history.jsonl`` rows, one row per step."""
    await _runs.log_metrics(_session(session), job_id, records)


@hookimpl
async def finish_job(session: object, job_id: str, status: JobStatus) -> None:
    """FINISHED → exit code 0, FAILED → 1, KILLED → ``stopRun`` then exit code 255."""
    await _runs.finish_job(_session(session), job_id, status)


@hookimpl
async def get_job_status(session: object, job_id: str) -> JobStatus:
    """The run's state; W&B's ``preempting`` reads as RUNNING."""
    return await _runs.get_job_status(_session(session), job_id)


@hookimpl
def get_run_url(session: object, job_id: str) -> str:
    """``{app}/{entity}/{project}/runs/{run}``, the app URL derived from the API URL."""
    wandb = _session(session)
    return wandb.settings.run_url(*wandb.resolve(job_id))


@hookimpl
async def get_history(session: object, job_id: str) -> list[dict[str, Any]]:
    """Every history row of the run (``NaN``/``Infinity`` parsed back to floats)."""
    return await _runs.get_history(_session(session), job_id)


@hookimpl
async def compare(session: object, job_ids: Sequence[str]) -> Comparison:
    """The runs' configs and summaries, and the project workspace URL."""
    return await _runs.compare(_session(session), job_ids)


@hookimpl
async def upload_artifact(session: object, job_id: str, path: Path, artifact: ArtifactSpec) -> str:
    """Log a file or directory as one W&B artifact; returns the artifact id."""
    return await _artifacts.upload_artifact(_session(session), job_id, path, artifact)


@hookimpl
async def download_artifact(session: object, artifact_id: str, target_dir: Path) -> Path:
    """Fetch an artifact by id, checking paths and MD5s; returns the file or directory."""
    return await _artifacts.download_artifact(_session(session), artifact_id, target_dir)
