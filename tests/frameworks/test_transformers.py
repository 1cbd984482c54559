"""The Hugging Face Trainer with TrackmuxCallback: a real ``train()`` with evaluation and
checkpoints on a tiny BERT built from a config (random weights, no hub), logged to the
offline tracker and a fake W&B, and checked row by row."""

from __future__ import annotations

import math

from _framework_runs import Scripts, by_step, offline_artifacts, offline_run, wandb_run
from trackmux import JobStatus

TRAIN = """
    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
    from trackmux.integrations.transformers import TrackmuxCallback

    torch.manual_seed(0)
    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, num_labels=2)
    model = BertForSequenceClassification(config)

    class Data(torch.utils.data.Dataset):
        def __init__(self, n):
            g = torch.Generator().manual_seed(n)
            self.ids = torch.randint(0, 64, (n, 8), generator=g)
            self.labels = (self.ids.sum(dim=1) % 2).long()
        def __len__(self):
            return len(self.ids)
        def __getitem__(self, i):
            return {"input_ids": self.ids[i], "labels": self.labels[i]}

    args = TrainingArguments(
        output_dir="out", run_name="tiny-bert", max_steps=6, per_device_train_batch_size=4,
        logging_steps=2, eval_strategy="steps", eval_steps=3, save_strategy="steps",
        save_steps=3, report_to="none", use_cpu=True, disable_tqdm=True, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=Data(32), eval_dataset=Data(8),
                      callbacks=[TrackmuxCallback(log_checkpoints="checkpoint")])
    trainer.train()
    print("metrics", trainer.evaluate()["eval_loss"])
"""


def test_trainer_logs_config_train_and_eval_at_the_global_step_and_checkpoints(
        scripts: Scripts) -> None:
    done = scripts.run(TRAIN)
    stored = offline_run(scripts.data_dir)
    assert stored["state"] == JobStatus.FINISHED

    config = stored["config"]
    assert config["max_steps"] == 6 and config["learning_rate"] == 5e-05
    assert config["hidden_size"] == 16 and config["model_type"] == "bert"
    assert config["run_name"] == "tiny-bert"
    assert config["model/num_parameters"] > 0

    rows = stored["rows"]
    steps = by_step(rows)
    # training logs every 2 steps, evaluation every 3, then the final train summary and the
    # evaluate() after train() at the last global step
    train_steps = sorted(s for s, values in steps.items() if "train/loss" in values)
    eval_steps = sorted(s for s, values in steps.items() if "eval/loss" in values)
    assert train_steps == [2, 4, 6] and eval_steps == [3, 6]
    assert {"train/learning_rate", "train/grad_norm", "train/epoch"} <= set(steps[2])
    assert {"train/train_runtime", "train/train_loss", "eval/loss", "train/loss"} <= set(steps[6])
    assert [r["_step"] for r in rows] == sorted(r["_step"] for r in rows)
    final_eval = float(done.stdout.split("metrics")[-1])
    assert math.isclose([r for r in rows if "eval/loss" in r][-1]["eval/loss"], final_eval)

    checkpoints = offline_artifacts(scripts.data_dir, stored["id"])
    assert sorted(m["metadata"]["global_step"] for m in checkpoints) == [3, 6]
    assert all(m["type"] == "model" for m in checkpoints)
    assert any(f["path"] == "model.safetensors" for f in checkpoints[0]["files"])

    remote = wandb_run(scripts.fake, stored["id"])
    assert remote["state"] == "finished" and remote["name"] == "tiny-bert"
    assert remote["config"] == config
    assert by_step(remote["rows"]) == steps
    assert len(remote["artifacts"]) == 2
