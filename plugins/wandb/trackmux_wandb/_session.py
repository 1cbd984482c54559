"""The session object ``connect`` returns, and what it remembers about each run."""

from __future__ import annotations

from typing import Any

import attrs
from trackmux_spec import JobStatus

from ._api import WandBClient
from ._settings import Settings

__all__ = ["RunState", "WandBSession", "parse_run_path"]

_RUN_PATH_FORMS = "run_id, project/run_id, entity/project/run_id or entity/project/runs/run_id"


def parse_run_path(path: str) -> tuple[str | None, str | None, str]:
    """``(entity, project, run)`` of a W&B run path, as ``wandb.Api().run()`` reads them.

    Accepted forms: ``run_id``, ``project/run_id``, ``entity/project/run_id`` and
    ``entity/project/runs/run_id`` (the path of a run's URL); parts not given are ``None``.

    :raises ValueError: an empty part, or another number of parts.
    """
    if not isinstance(path, str):
        raise TypeError(f"a W&B run path must be a string, got {path!r}")
    parts = path.strip("/").split("/")
    if len(parts) == 4 and parts[2] == "runs":
        parts = [parts[0], parts[1], parts[3]]
    if len(parts) > 3 or not all(parts):
        raise ValueError(f"not a W&B run path: {path!r} (expected {_RUN_PATH_FORMS})")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return None, parts[0], parts[1]
    return None, None, parts[0]


@attrs.define(kw_only=True)
class RunState:
    """What the session knows about one run.

    :param name: the run id (W&B's run "name"); the job id is :attr:`path`.
    :param storage_id: the server's opaque node id (needed by ``stopRun``).
    :param run_start: Unix time the run started, for ``_runtime``.
    :param summary: the last value of every key, sent whole at offset 0.
    :param next_seq: records with a ``seq`` below this are stored; they are skipped.
    :param line_count: history lines the server holds: the offset of the next new row.
    :param last_row: the last history row (without ``_wandb``), which a record at the same
        step merges into; ``None`` before the first row.
    :param finished: the status ``finish_job`` delivered, once it did.
    """

    name: str
    entity: str
    project: str
    storage_id: str | None = None
    run_start: float
    summary: dict[str, Any] = attrs.field(factory=dict, repr=False)
    next_seq: int = 0
    line_count: int = 0
    last_row: dict[str, Any] | None = attrs.field(default=None, repr=False)
    finished: JobStatus | None = None

    @property
    def last_step(self) -> int | None:
        """``_step`` of the last history row, ``None`` before the first."""
        step = None if self.last_row is None else self.last_row.get("_step")
        return step if isinstance(step, int) and not isinstance(step, bool) else None

    @property
    def path(self) -> str:
        """``entity/project/name``: the job id ``submit_job`` returns."""
        return f"{self.entity}/{self.project}/{self.name}"


@attrs.define(kw_only=True)
class WandBSession:
    """One W&B connection: settings (the key hidden from ``repr``), HTTP clients, runs."""

    settings: Settings
    client: WandBClient
    entity: str
    username: str | None = None
    runs: dict[str, RunState] = attrs.field(factory=dict, repr=False)

    def resolve(self, job_id: str) -> tuple[str, str, str]:
        """``(entity, project, name)`` of a job id or W&B run path (:func:`parse_run_path`).

        Parts a path leaves out come from a run this session knows by that name, else
        from the session's defaults (the entity and project settings).
        """
        entity, project, name = parse_run_path(job_id)
        if project is None:
            known = next((r for r in self.runs.values() if r.name == name), None)
            if known is not None:
                return known.entity, known.project, name
        return entity or self.entity, project or self.settings.project, name

    def known(self, job_id: str) -> RunState | None:
        """The session's state of the run ``job_id`` names, if it has one."""
        entity, project, name = self.resolve(job_id)
        return self.runs.get(f"{entity}/{project}/{name}")

    def location(self, job_id: str) -> tuple[str, str]:
        """``(entity, project)`` of a job id or run path (see :meth:`resolve`)."""
        entity, project, _ = self.resolve(job_id)
        return entity, project
