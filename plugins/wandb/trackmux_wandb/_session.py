"""The session object ``connect`` returns, and what it remembers about each run."""

from __future__ import annotations

from typing import Any

import attrs
from trackmux_spec import JobStatus

from ._api import WandBClient
from ._settings import Settings

__all__ = ["RunState", "WandBSession"]


@attrs.define(kw_only=True)
class RunState:
    """What the session knows about one run.

    :param name: the run id (W&B's run "name"), also trackmux's ``job_id``.
    :param storage_id: the server's opaque node id (needed by ``stopRun``).
    :param history_start: records with ``seq`` below this were stored by an earlier
        process (``historyLineCount`` at resume) and are skipped.
    :param run_start: Unix time the run started, for ``_runtime``.
    :param summary: the last value of every key, sent whole at offset 0.
    :param lines_sent: one past the highest history line acknowledged in this session.
    :param finished: the status ``finish_job`` delivered, once it did.
    """

    name: str
    entity: str
    project: str
    storage_id: str | None = None
    history_start: int = 0
    run_start: float
    summary: dict[str, Any] = attrs.field(factory=dict, repr=False)
    lines_sent: int = 0
    finished: JobStatus | None = None


@attrs.define(kw_only=True)
class WandBSession:
    """One W&B connection: settings (the key hidden from ``repr``), HTTP clients, runs."""

    settings: Settings
    client: WandBClient
    entity: str
    username: str | None = None
    runs: dict[str, RunState] = attrs.field(factory=dict, repr=False)

    def location(self, job_id: str) -> tuple[str, str]:
        """``(entity, project)`` of a run: what this session knows, else the defaults."""
        run = self.runs.get(job_id)
        if run is not None:
            return run.entity, run.project
        return self.entity, self.settings.project
