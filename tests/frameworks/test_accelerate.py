"""Accelerate with TrackmuxTracker: a real ``Accelerator`` training loop on the CPU,
``init_trackers`` with a config, ``accelerator.log`` at each step, ``end_training``; first
with a W&B that fails now and then (a dropped connection, answers lost after the
change was applied): nothing lost, nothing stored twice."""

from __future__ import annotations

from _framework_runs import Scripts, by_step, offline_run, wandb_run
from trackmux import JobStatus
from trackmux_wandb.testing import AfterApply, Drop, Status

LOOP = """
    import torch
    from accelerate import Accelerator
    from trackmux.integrations.accelerate import TrackmuxTracker

    torch.manual_seed(0)
    accelerator = Accelerator(cpu=True, log_with=[TrackmuxTracker(name="tiny-loop")])
    accelerator.init_trackers("frameworks", config={"lr": 0.05, "steps": 6})
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(24, 4), torch.randn(24, 1)), batch_size=4)
    model, optimizer, data = accelerator.prepare(model, optimizer, data)
    for step, (x, y) in enumerate(data):
        loss = torch.nn.functional.mse_loss(model(x), y)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        accelerator.log({"train_loss": loss.item(), "lr": 0.05}, step=step)
        if step % 3 == 2:
            accelerator.log({"eval": {"loss": loss.item() / 2}}, step=step)
    run = accelerator.get_tracker("trackmux").tracker
    accelerator.end_training()
    print("state", run.tracker.get_job_status(run.id).value, flush=True)
"""


def test_a_flaky_wandb_during_training_loses_and_duplicates_nothing(scripts: Scripts) -> None:
    fake = scripts.fake
    for fault in (Drop(), AfterApply(Status(500))):
        fake.inject(fault, match="file_stream")
    fake.inject(AfterApply(Status(502)), match="UpsertBucket")
    scripts.run(LOOP)
    assert fake.pending_faults == 0
    stored = offline_run(scripts.data_dir)
    remote = wandb_run(fake, stored["id"])
    assert remote["state"] == "finished"
    assert len(remote["rows"]) <= len(stored["rows"])  # each record at most once
    assert by_step(remote["rows"]) == by_step(stored["rows"])
    assert remote["config"] == stored["config"] == {"lr": 0.05, "steps": 6}


def test_accelerator_logs_config_and_steps_and_end_training_finishes(scripts: Scripts) -> None:
    done = scripts.run(LOOP)
    assert done.stdout.split("state")[-1].strip() == "finished"  # before the process ended
    stored = offline_run(scripts.data_dir)
    assert stored["state"] == JobStatus.FINISHED
    assert stored["config"] == {"lr": 0.05, "steps": 6}
    steps = by_step(stored["rows"])
    assert sorted(steps) == list(range(6))
    assert all(set(steps[s]) >= {"train_loss", "lr"} for s in steps)
    assert sorted(s for s in steps if "eval/loss" in steps[s]) == [2, 5]
    assert len(stored["rows"]) == 8

    remote = wandb_run(scripts.fake, stored["id"])
    assert remote["state"] == "finished" and remote["name"] == "tiny-loop"
    assert remote["config"] == stored["config"]
    assert by_step(remote["rows"]) == steps
