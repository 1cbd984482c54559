"""Lightning with TrackmuxLogger: a real ``Trainer.fit()`` with validation and a
``ModelCheckpoint``, then ``log_hyperparams`` after the run exists; and the same fit on two
processes (``ddp`` with gloo on the CPU), where only rank 0 logs."""

from __future__ import annotations

from _framework_runs import Scripts, by_step, offline_artifacts, offline_run, wandb_run
from trackmux import JobStatus

FIT = """
    import sys
    import torch
    from torch import nn
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from trackmux.integrations.lightning import TrackmuxLogger

    class Tiny(L.LightningModule):
        def __init__(self, lr=0.1, hidden=4):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 1))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", nn.functional.mse_loss(self.net(x), y), sync_dist=True)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def loader(n, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, 4, generator=g)
        data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
        return torch.utils.data.DataLoader(data, batch_size=4)

    if __name__ == "__main__":
        devices = int(sys.argv[1])
        torch.manual_seed(0)
        logger = TrackmuxLogger(name="tiny-fit", log_model=True)
        trainer = L.Trainer(
            max_epochs=2, accelerator="cpu", devices=devices,
            strategy="ddp" if devices > 1 else "auto", logger=logger, log_every_n_steps=1,
            callbacks=[ModelCheckpoint(monitor="val_loss", save_top_k=1, dirpath="ckpt")],
            enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(Tiny(), loader(32, 0), loader(8, 1))
        logger.log_hyperparams({"after_fit": "yes"})
        if trainer.global_rank == 0:
            print("steps", trainer.global_step, flush=True)
"""


def test_fit_logs_hyperparams_metrics_and_the_best_checkpoint(scripts: Scripts) -> None:
    done = scripts.run(FIT, "1")
    global_steps = int(done.stdout.split("steps")[-1])
    stored = offline_run(scripts.data_dir)
    assert stored["state"] == JobStatus.FINISHED
    assert stored["config"] == {"lr": 0.1, "hidden": 4, "after_fit": "yes"}

    steps = by_step(stored["rows"])
    train = [r for r in stored["rows"] if "train_loss" in r]
    assert len(train) == global_steps == 16
    assert [r["_step"] for r in train] == list(range(16))
    validation = sorted(s for s, values in steps.items() if "val_loss" in values)
    assert validation == [7, 15]
    assert steps[7]["epoch"] == 0 and steps[15]["epoch"] == 1

    checkpoints = offline_artifacts(scripts.data_dir, stored["id"])
    assert len(checkpoints) == 1 and checkpoints[0]["type"] == "model"
    meta = checkpoints[0]["metadata"]
    assert meta["monitor"] == "val_loss" and meta["best"] is True
    assert meta["score"] == min(stored["rows"][i]["val_loss"] for i in range(len(stored["rows"]))
                                if "val_loss" in stored["rows"][i])

    remote = wandb_run(scripts.fake, stored["id"])
    assert remote["state"] == "finished" and remote["name"] == "tiny-fit"
    assert remote["config"] == stored["config"]
    assert by_step(remote["rows"]) == steps
    assert len(remote["artifacts"]) == 1


def test_ddp_on_two_processes_logs_once_from_rank_zero(scripts: Scripts) -> None:
    done = scripts.run(FIT, "2")
    global_steps = int(done.stdout.split("steps")[-1])
    assert global_steps == 8  # each rank took half the batches
    stored = offline_run(scripts.data_dir)  # exactly one run in the journal
    assert stored["state"] == JobStatus.FINISHED
    train = [r for r in stored["rows"] if "train_loss" in r]
    assert [r["_step"] for r in train] == list(range(8))
    assert sum("val_loss" in r for r in stored["rows"]) == 2
    assert stored["config"] == {"lr": 0.1, "hidden": 4, "after_fit": "yes"}
    assert len(scripts.fake.runs()) == 1
    assert by_step(wandb_run(scripts.fake, stored["id"])["rows"]) == by_step(stored["rows"])
