"""The trackmux conformance suite against the MLflow plugin, on a real MLflow server."""

from __future__ import annotations

import pytest
from _mlflow_support import BlockingTransport
from trackmux_spec.conformance import TrackerConformance


class TestMLflowConformance(TrackerConformance):
    """The standard suite, unchanged.

    Requests go through :class:`BlockingTransport`: real HTTP to the real server, done
    synchronously, because the suite's delivery properties run on a virtual clock that
    would otherwise time out every awaited socket read at once.
    """

    tracker_name = "mlflow"

    @pytest.fixture
    def tracker_credentials(self, mlflow_server):
        return {"tracking_uri": mlflow_server.url}

    @pytest.fixture
    def tracker_settings(self, experiment):
        return {
            "experiment": experiment,
            "artifact_retry_wait": 0,
            "transport": BlockingTransport(),
        }
