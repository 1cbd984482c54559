"""What tracking costs a real training loop: the same tiny HF ``Trainer`` and Lightning
``fit`` run three ways, side by side.

* ``none``: no tracker (``report_to="none"``; ``logger=False``);
* ``trackmux``: trackmux's integration (``TrackmuxCallback`` / ``TrackmuxLogger``) with the
  offline tracker (``TRACKMUX_TRACKERS=null``);
* ``wandb``: the framework's own W&B integration, offline (``report_to="wandb"`` with
  ``WANDB_MODE=offline``; ``WandbLogger(offline=True)``).

Every step logs (``logging_steps=1``; ``log_every_n_steps=1``): the worst case for the
tracker. Each configuration runs ``--repeat`` times (default 3), each in a fresh process;
the tables give the median of: the process's wall time (imports, setup, training, the
tracker's finish at exit), the training loop's time per step (step-end timestamps: the
median step, and the mean over the steps after the first), and peak RSS (the training
process; wandb's separate ``wandb-core`` process is not counted, so wandb's real memory is
higher than shown).

The frameworks come from the integration tests' cached venv
(``tests/frameworks/_frameworks_venv.py``); ``wandb`` is added to it on first use (the
tests never select it). Run::

    python bench/frameworks_overhead.py [--steps 300] [--repeat 3]

The figures are in bench/RESULTS.md ("Framework integrations").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WANDB_VERSION = "0.31.0"

HF = """
import json, os, resource, sys, time
import torch
from transformers import (BertConfig, BertForSequenceClassification, Trainer,
                          TrainerCallback, TrainingArguments)

mode, steps = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
torch.set_num_threads(1)
config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, num_labels=2)
model = BertForSequenceClassification(config)

class Data(torch.utils.data.Dataset):
    def __init__(self, n):
        self.ids = torch.randint(0, 64, (n, 8), generator=torch.Generator().manual_seed(n))
    def __len__(self):
        return len(self.ids)
    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": int(self.ids[i].sum()) % 2}

class Clock(TrainerCallback):
    def __init__(self):
        self.ends = []
    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())

clock = Clock()
callbacks = [clock]
if mode == "trackmux":
    from trackmux.integrations.transformers import TrackmuxCallback
    callbacks.append(TrackmuxCallback())
args = TrainingArguments(output_dir="out", max_steps=steps, per_device_train_batch_size=8,
                         logging_steps=1, save_strategy="no", use_cpu=True, disable_tqdm=True,
                         report_to="wandb" if mode == "wandb" else "none", seed=0)
trainer = Trainer(model=model, args=args, train_dataset=Data(steps * 8), callbacks=callbacks)
started = time.perf_counter()
trainer.train()
fit = time.perf_counter() - started
print("RESULT " + json.dumps({"fit": fit, "ends": clock.ends,
      "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), flush=True)
"""

LIGHTNING = """
import json, os, resource, sys, time
import torch
from torch import nn
import lightning as L

mode, steps = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
torch.set_num_threads(1)

class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

class Clock(L.Callback):
    def __init__(self):
        self.ends = []
    def on_train_batch_end(self, *args, **kwargs):
        self.ends.append(time.perf_counter())

x = torch.randn(steps * 8, 16)
data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)),
                                   batch_size=8)
if mode == "trackmux":
    from trackmux.integrations.lightning import TrackmuxLogger
    logger = TrackmuxLogger()
elif mode == "wandb":
    from lightning.pytorch.loggers import WandbLogger
    logger = WandbLogger(offline=True, save_dir=os.getcwd())
else:
    logger = False
clock = Clock()
trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=logger, log_every_n_steps=1,
                    callbacks=[clock], enable_progress_bar=False, enable_model_summary=False,
                    enable_checkpointing=False)
started = time.perf_counter()
trainer.fit(Tiny(), data)
fit = time.perf_counter() - started
print("RESULT " + json.dumps({"fit": fit, "ends": clock.ends,
      "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), flush=True)
"""

SCRIPTS = {"HF Trainer (tiny BERT)": HF, "Lightning fit (MLP)": LIGHTNING}
MODES = ("none", "trackmux", "wandb")


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def frameworks_python() -> Path:
    sys.path.insert(0, str(ROOT / "tests" / "frameworks"))
    import _frameworks_venv  # the integration tests' helper: creates the venv, installs pins

    python = _frameworks_venv.ensure_venv(log=say)
    check = subprocess.run([str(python), "-c", "import importlib.metadata as m; "
                            "print(m.version('wandb'))"], capture_output=True, text=True,
                           check=False)
    if check.stdout.strip() != WANDB_VERSION:
        say(f"installing wandb=={WANDB_VERSION} into {python.parent.parent} (once)")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                        f"wandb=={WANDB_VERSION}"], check=True)
    return python


def run_once(python: Path, script: str, mode: str, steps: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests" / "frameworks"))
    from _frameworks_venv import script_env

    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "train.py"
        path.write_text(script)
        env = script_env(Path(work), TRACKMUX_TRACKERS="null", WANDB_MODE="offline",
                         WANDB_SILENT="true", WANDB_DIR=work, WANDB_PROJECT="bench")
        started = time.perf_counter()
        done = subprocess.run([str(python), str(path), mode, str(steps)], cwd=work, env=env,
                              capture_output=True, text=True, timeout=900, check=False)
        wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{done.stderr[-4000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    ends = result.pop("ends")
    gaps = [b - a for a, b in zip(ends, ends[1:], strict=False)]
    return {"wall": wall, "fit": result["fit"], "steps": len(ends),
            "step_median": statistics.median(gaps), "step_mean": statistics.fmean(gaps),
            "rss_mb": result["rss_kb"] / 1024}


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the raw measurements here")
    options = parser.parse_args()
    python = frameworks_python()
    load = os.getloadavg()
    started = time.perf_counter()
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for title, script in SCRIPTS.items():
        raw[title] = {mode: [] for mode in MODES}
        for attempt in range(options.repeat):
            for mode in MODES:  # interleaved, so load drifts hit every mode alike
                say(f"{title}: {mode}, run {attempt + 1}/{options.repeat}")
                raw[title][mode].append(run_once(python, script, mode, options.steps))
    end_load = os.getloadavg()
    print(f"Command: `python bench/frameworks_overhead.py --steps {options.steps} "
          f"--repeat {options.repeat}`; load average at start {load[0]:.2f}/{load[1]:.2f}/"
          f"{load[2]:.2f}, at end {end_load[0]:.2f}/{end_load[1]:.2f}/{end_load[2]:.2f}; "
          f"took {time.perf_counter() - started:.0f} s.\n")
    for title, modes in raw.items():
        base = statistics.median(r["step_mean"] for r in modes["none"])
        print(f"### {title}, {options.steps} steps, a log call every step\n")
        print("| tracking | wall (process) | training loop | time per step, median | "
              "time per step, mean | added per step (mean) | peak RSS |")
        print("|---|---|---|---|---|---|---|")
        for mode in MODES:
            runs = modes[mode]
            mean = statistics.median(r["step_mean"] for r in runs)
            added = "-" if mode == "none" else f"{(mean - base) * 1e6:+.0f} µs"
            print(f"| {mode} | {statistics.median(r['wall'] for r in runs):.2f} s "
                  f"| {statistics.median(r['fit'] for r in runs):.2f} s "
                  f"| {fmt_ms(statistics.median(r['step_median'] for r in runs))} "
                  f"| {fmt_ms(mean)} | {added} "
                  f"| {statistics.median(r['rss_mb'] for r in runs):.0f} MB |")
        print()
    if options.json:
        options.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
