"""The trackmux conformance suite against the W&B plugin, served by a FakeWandB."""

from __future__ import annotations

import pytest
from trackmux_spec.conformance import TrackerConformance
from trackmux_wandb.testing import FakeWandB


class TestWandBConformance(TrackerConformance):
    tracker_name = "wandb"

    @pytest.fixture
    def wandb_server(self) -> FakeWandB:
        return FakeWandB()

    @pytest.fixture
    def tracker_credentials(self, wandb_server):
        return {"api_key": wandb_server.api_key}

    @pytest.fixture
    def tracker_settings(self, wandb_server):
        return {
            "transport": wandb_server.transport(),
            "base_url": wandb_server.base_url,
            "artifact_retry_wait": 0,
        }
