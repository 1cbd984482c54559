"""The plugin over real sockets (FakeWandB.serve) and through WandBConnector."""

from __future__ import annotations

import math

import pytest
import trackmux_wandb as plugin
from _support import records, run
from trackmux_spec import ArtifactSpec, ConnectContext, JobStatus, RetryableError, TrainingConfig
from trackmux_wandb.testing import FakeWandB, Timeout

pytestmark = pytest.mark.slow


def test_full_run_over_http(tmp_path):
    fake = FakeWandB()
    source = tmp_path / "ckpt"
    (source / "a").mkdir(parents=True)
    (source / "a" / "w.bin").write_bytes(b"x" * 300_000)
    (source / "readme.txt").write_text("hi")
    target = tmp_path / "out"
    target.mkdir()

    async def go(url):
        ctx = ConnectContext(data_dir=tmp_path, settings={"base_url": url})
        session = await plugin.connect({"api_key": fake.api_key}, ctx)
        job = await plugin.submit_job(session, "real0001", TrainingConfig(project_name="p"))
        await plugin.log_metrics(session, job, records(0, 50))
        artifact_id = await plugin.upload_artifact(
            session, job, source, ArtifactSpec(name="ckpt", type="model")
        )
        await plugin.finish_job(session, job, JobStatus.FINISHED)
        status = await plugin.get_job_status(session, job)
        fetched = await plugin.download_artifact(session, artifact_id, target)
        await plugin.disconnect(session)
        return status, fetched

    with fake.serve() as url:
        status, fetched = run(go(url))
    assert status is JobStatus.FINISHED
    assert fetched == target
    assert (target / "a" / "w.bin").read_bytes() == b"x" * 300_000
    assert len(fake.history(fake.entity, "p", "real0001")) == 50


def test_timeout_over_http_is_retryable(tmp_path):
    fake = FakeWandB()

    async def go(url):
        ctx = ConnectContext(data_dir=tmp_path, settings={"base_url": url, "timeout": 0.3})
        session = await plugin.connect({"api_key": fake.api_key}, ctx)
        job = await plugin.submit_job(session, "slow0001", TrainingConfig())
        fake.inject(Timeout(delay=1.0), match="file_stream")
        try:
            await plugin.log_metrics(session, job, records(0, 1))
        finally:
            await plugin.disconnect(session)

    with fake.serve() as url, pytest.raises(RetryableError, match="timed out"):
        run(go(url))


def test_wandb_connector_as_the_reference_shows(tmp_path):
    from trackmux_wandb import WandBConnector

    fake = FakeWandB()
    settings = {"wandb": {"transport": fake.transport(), "base_url": fake.base_url}}

    async def go():
        connector = WandBConnector(data_dir=tmp_path / "tm", settings=settings)
        await connector.connect({"api_key": fake.api_key})
        job_id = await connector.submit_job(TrainingConfig(project_name="my-peft-project"))
        await connector.log_metrics(job_id, {"loss": 1.5, "nan": math.nan}, step=100)
        await connector.flush()
        comparison = await connector.compare_experiments([job_id])
        url = connector.get_run_url(job_id)
        await connector.disconnect()
        return job_id, comparison, url

    job_id, comparison, url = run(go())
    assert url == f"https://wandb.test/{fake.entity}/my-peft-project/runs/{job_id}"
    rows = fake.history(fake.entity, "my-peft-project", job_id)
    assert rows[0]["_step"] == 100 and rows[0]["loss"] == 1.5 and math.isnan(rows[0]["nan"])
    assert comparison["runs"][0]["id"] == job_id
    assert fake.run(fake.entity, "my-peft-project", job_id).state == "finished"


def test_wandb_connector_refuses_other_trackers():
    from trackmux_wandb import WandBConnector

    with pytest.raises(TypeError):
        WandBConnector(trackers=["null"])
