"""``WandBConnector``: the reference document's W&B connector, on trackmux's async API."""

from __future__ import annotations

from typing import Any

import trackmux

__all__ = ["WandBConnector"]


class WandBConnector(trackmux.AsyncTracker):
    """An :class:`trackmux.AsyncTracker` that delivers to W&B only.

    It is the connector described in ``reference/wandb-connector.md`` (whose REST
    endpoint list is wrong: the plugin speaks W&B's GraphQL and file_stream protocol)::

        connector = WandBConnector()
        await connector.connect({"api_key": "...", "entity": "my-team"})
        job_id = await connector.submit_job(TrainingConfig(project_name="my-peft-project"))
        await connector.log_metrics(job_id, {"loss": 1.5}, step=100)
        print(connector.get_run_url(job_id))
        await connector.disconnect()

    Every keyword argument of :class:`trackmux.AsyncTracker` except ``trackers`` passes
    through (``data_dir``, ``settings={"wandb": {...}}``, ``batch_size``, ...).

    Unlike ``AsyncTracker``, ``connect()`` raises ``ConnectionError`` when W&B cannot be
    reached, as the reference document says.
    """

    _retry_unreachable = False

    def __init__(self, **kwargs: Any) -> None:
        if "trackers" in kwargs:
            raise TypeError("WandBConnector always delivers to 'wandb'; use AsyncTracker instead")
        super().__init__(trackers=["wandb"], **kwargs)

    async def _flush_metrics(self) -> None:
        """The reference document's name for :meth:`flush` ("call ``_flush_metrics()``
        before important operations")."""
        await self.flush()
