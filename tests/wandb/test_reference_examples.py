"""Every code example of the reference document (reference/wandb-connector.md), run as
written against a FakeWandB served on 127.0.0.1.

Only the import lines change (``connectors.base`` becomes ``trackmux``), and placeholders
become real values: the API key placeholder is the fake server's key, ``/path/to/...``
a file in a temporary directory, ``TrainingConfig(...)`` the config of the earlier example,
and the training loop's ``train_step``/``save_checkpoint``/``dataloader`` small stand-ins.
``WANDB_BASE_URL`` points the connector at the fake, the way a self-hosted W&B is used.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from trackmux_wandb import WandBConnector
from trackmux_wandb.testing import FakeWandB

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake = FakeWandB()
    fake.add_api_key("b" * 40, entity="your_username_or_team")
    with fake.serve() as url:
        monkeypatch.setenv("WANDB_BASE_URL", url)
        monkeypatch.setenv("TRACKMUX_DIR", str(tmp_path / "trackmux"))
        monkeypatch.chdir(tmp_path)
        yield fake


def test_every_reference_example_runs_as_written(served: FakeWandB, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    your_wandb_api_key_here = "b" * 40
    adapter = tmp_path / "adapter_model.safetensors"
    adapter.write_bytes(b"lora weights")

    async def example() -> str:
        # -- Example Configuration
        credentials = {
            "api_key": your_wandb_api_key_here,
            "entity": "your_username_or_team"  # Optional
        }

        connector = WandBConnector()
        await connector.connect(credentials)

        # -- Creating a Run
        from trackmux import TrainingConfig

        config = TrainingConfig(
            base_model="meta-llama/Llama-2-7b-hf",
            model_source="huggingface",
            algorithm="lora",
            rank=16,
            alpha=32,
            dropout=0.1,
            target_modules=["q_proj", "v_proj"],
            dataset_path="/path/to/dataset.json",
            experiment_tracker="wandb",
            project_name="my-peft-project",
        )

        # Create a run
        job_id = await connector.submit_job(config)
        print(f"Created run: {job_id}")

        # -- Logging Metrics
        # Log metrics during training
        await connector.log_metrics(
            job_id=job_id,
            metrics={
                "loss": 1.5,
                "accuracy": 0.85,
                "learning_rate": 2e-4
            },
            step=100
        )

        # Metrics are automatically batched and sent efficiently

        # -- Getting Run Status
        from trackmux import JobStatus

        status = await connector.get_job_status(job_id)

        if status == JobStatus.RUNNING:
            print("Run is still in progress")
        elif status == JobStatus.COMPLETED:
            print("Run completed successfully")

        # -- Uploading Artifacts
        # Upload a trained adapter
        artifact_id = await connector.upload_artifact(
            path=str(adapter),
            metadata={
                "job_id": job_id,
                "name": "llama2-lora-adapter",
                "type": "model",
                "description": "LoRA adapter for Llama 2 7B"
            }
        )

        # -- Comparing Experiments
        # Compare multiple runs
        comparison_data = await connector.compare_experiments(
            job_ids=["job_1", "job_2", "job_3"]
        )

        # Get comparison URL
        for run in comparison_data["runs"]:
            print(f"Run: {run['name']}, Status: {run['state']}")

        # -- Getting Run URL
        # Get the W&B dashboard URL for a run
        url = connector.get_run_url(job_id)
        print(f"View run at: {url}")

        # -- Best practices: flush before critical operations
        await connector._flush_metrics()

        # -- Error Handling: Connection Errors
        try:
            await connector.connect(credentials)
        except ValueError as e:
            print(f"Invalid credentials: {e}")
        except ConnectionError as e:
            print(f"Failed to connect: {e}")

        # -- Artifact Upload Errors
        path, metadata = "missing.safetensors", {"job_id": job_id}
        try:
            artifact_id = await connector.upload_artifact(path, metadata)
        except FileNotFoundError:
            print("Artifact file not found")
        except RuntimeError as e:
            print(f"Upload failed: {e}")

        await connector.disconnect()
        return job_id

    job_id = asyncio.run(example())
    out = capsys.readouterr().out
    assert f"Created run: {job_id}" in out
    assert "Run is still in progress" in out
    assert "View run at: http://127.0.0.1:" in out and f"/runs/{job_id}" in out
    assert "Artifact file not found" in out
    run = served.run("your_username_or_team", "my-peft-project", job_id)
    assert run.state == "finished"
    (row,) = served.history("your_username_or_team", "my-peft-project", job_id)
    assert row["_step"] == 100 and row["loss"] == 1.5 and row["learning_rate"] == 2e-4
    config = served.config("your_username_or_team", "my-peft-project", job_id)
    assert config["rank"] == {"value": 16}
    assert config["target_modules"] == {"value": ["q_proj", "v_proj"]}
    assert [a.collection for a in served.artifacts()] == ["llama2-lora-adapter"]


def test_the_reference_training_loop_runs_as_written(served: FakeWandB) -> None:
    from trackmux import TrainingConfig

    num_epochs = 2
    dataloader = [[0.1, 0.2]] * 30

    def train_step(batch: list[float]) -> float:
        return sum(batch)

    def save_checkpoint(path: str) -> None:
        Path(path).write_bytes(path.encode())

    async def example() -> str:
        # Connect to W&B
        connector = WandBConnector()
        await connector.connect({"api_key": "b" * 40})

        # Create run
        config = TrainingConfig(project_name="my-peft-project", algorithm="lora")
        job_id = await connector.submit_job(config)

        # Training loop
        for epoch in range(num_epochs):
            for step, batch in enumerate(dataloader):
                # Train step
                loss = train_step(batch)

                # Log metrics
                await connector.log_metrics(
                    job_id=job_id,
                    metrics={"loss": loss, "epoch": epoch},
                    step=step
                )

            # Checkpoint
            save_checkpoint(f"checkpoint_epoch_{epoch}.pt")
            await connector.upload_artifact(
                path=f"checkpoint_epoch_{epoch}.pt",
                metadata={"job_id": job_id, "epoch": epoch}
            )

        # Complete run
        await connector.cancel_job(job_id)  # Mark as finished
        await connector.disconnect()
        return job_id

    job_id = asyncio.run(example())
    entity = "your_username_or_team"
    rows = served.history(entity, "my-peft-project", job_id)
    assert [row["_step"] for row in rows] == list(range(30)) * 2
    assert {row["epoch"] for row in rows} == {0, 1}
    assert served.run(entity, "my-peft-project", job_id).state == "finished"
    assert len(served.artifacts()) == 2
