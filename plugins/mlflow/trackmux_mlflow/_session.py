"""The session object ``connect`` returns, and what it remembers about each run."""

from __future__ import annotations

import attrs
from trackmux_spec import JobStatus

from ._client import MLflowClient
from ._settings import Settings

__all__ = ["JobState", "MLflowSession"]


@attrs.define(kw_only=True)
class JobState:
    """What the session knows about one MLflow run.

    :param run_id: MLflow's run id, also trackmux's ``job_id``.
    :param experiment_id: the run's experiment.
    :param stored: how many records (``seq`` 0 to ``stored - 1``) the server holds, or
        ``None`` when unknown (a run this session did not create, or after a request whose
        outcome is unknown): the next ``log_metrics`` reads it from the server first.
    :param last_step: the step of the last stored record, when ``stored`` is known.
    :param finished: the status ``finish_job`` delivered, once it did.
    """

    run_id: str
    experiment_id: str
    stored: int | None = None
    last_step: int | None = None
    finished: JobStatus | None = None


@attrs.define(kw_only=True)
class MLflowSession:
    """One tracking-server connection: settings (secrets hidden), HTTP client, runs."""

    settings: Settings
    client: MLflowClient
    experiments: dict[str, str] = attrs.field(factory=dict, repr=False)
    jobs: dict[str, JobState] = attrs.field(factory=dict, repr=False)

    def run_url(self, run_id: str) -> str:
        """The run's page in the MLflow UI (the experiment-less route if it is not known)."""
        job = self.jobs.get(run_id)
        if job is not None:
            return f"{self.settings.tracking_uri}/#/experiments/{job.experiment_id}/runs/{run_id}"
        return f"{self.settings.tracking_uri}/#/runs/{run_id}"
