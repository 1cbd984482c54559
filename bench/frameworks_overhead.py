"""What tracking costs a real training loop: the same tiny HF ``Trainer`` and Lightning
``fit`` run three ways, side by side.

* ``none``: no tracker (``report_to="none"``; ``logger=False``);
* ``trackmux``: trackmux's integration (``TrackmuxCallback`` / ``TrackmuxLogger``) with the
  offline tracker (``TRACKMUX_TRACKERS=null``);
* ``wandb``: the framework's own W&B integration, offline (``report_to="wandb"`` with
  ``WANDB_MODE=offline``; ``WandbLogger(offline=True)``).

First, the integration's own call is timed alone, call by call, in the training process
(``TrackmuxCallback.on_log`` against ``WandbCallback.on_log``; ``TrackmuxLogger.log_metrics``
against ``WandbLogger.log_metrics``): what tracking adds to a logged step on the thread that
trains, measured where a loaded machine disturbs it least.

Then whole runs. Every step logs (``logging_steps=1``; ``log_every_n_steps=1``): the
worst case for the tracker. Each configuration runs ``--repeat`` times (default 3), each in
a fresh process,
the modes interleaved; the tables give the median of: the process's wall time (imports,
setup, training, the tracker's finish at exit); the training loop's wall time and its
median step; the CPU time the training thread spends per step (``time.thread_time`` at
every step end: what tracking adds on the thread that trains, the figure that survives a
loaded machine); the CPU time of the whole process tree (every thread, and wandb's
``wandb-core`` child: what tracking costs the machine); and peak RSS of the training
process (``wandb-core``'s memory is not in it).

The frameworks come from the integration tests' cached venv
(``tests/frameworks/_frameworks_venv.py``); ``wandb`` is added to it on first use (the
tests never select it). Run::

    python bench/frameworks_overhead.py [--steps 300] [--repeat 3] [--calls 2000]

The figures are in bench/RESULTS.md ("Framework integrations").
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
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
        self.ends.append((time.perf_counter(), time.thread_time()))

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
        self.ends.append((time.perf_counter(), time.thread_time()))

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

CALLS = """
import json, statistics, sys, time
mode, calls = sys.argv[1], int(sys.argv[2])
times = []
if sys.argv[3] == "hf":
    from transformers import (BertConfig, BertForSequenceClassification, TrainerControl,
                              TrainerState, TrainingArguments)
    args = TrainingArguments(output_dir="out", report_to="none", use_cpu=True)
    state, control = TrainerState(), TrainerControl()
    model = BertForSequenceClassification(BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32))
    if mode == "trackmux":
        from trackmux.integrations.transformers import TrackmuxCallback
        callback = TrackmuxCallback()
    else:
        from transformers.integrations import WandbCallback
        callback = WandbCallback()
    callback.on_train_begin(args, state, control, model=model)
    for step in range(1, calls + 1):
        state.global_step = step
        logs = {"loss": 0.5, "grad_norm": 1.25, "learning_rate": 5e-5, "epoch": step / calls}
        started = time.perf_counter()
        callback.on_log(args, state, control, logs=logs)
        times.append(time.perf_counter() - started)
else:
    if mode == "trackmux":
        from trackmux.integrations.lightning import TrackmuxLogger
        logger = TrackmuxLogger()
    else:
        import os
        from lightning.pytorch.loggers import WandbLogger
        logger = WandbLogger(offline=True, save_dir=os.getcwd())
    logger.log_hyperparams({"lr": 0.01})
    for step in range(calls):
        metrics = {"train_loss": 0.5, "epoch": 0.0}
        started = time.perf_counter()
        logger.log_metrics(metrics, step=step)
        times.append(time.perf_counter() - started)
times.sort()
print("RESULT " + json.dumps({"median": statistics.median(times),
                              "p99": times[int(len(times) * 0.99)]}), flush=True)
"""

SCRIPTS = {"HF Trainer (tiny BERT)": HF, "Lightning fit (MLP)": LIGHTNING}
CALL_SITES = {"hf": "HF `Trainer` callback `on_log` (4 values)",
              "lightning": "Lightning logger `log_metrics` (2 values)"}
MODES = ("none", "trackmux", "wandb")


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def frameworks_python() -> Path:
    sys.path[:0] = [str(ROOT / "tests" / "frameworks"), str(ROOT / "tests")]
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


def time_calls(python: Path, mode: str, site: str, calls: int) -> dict[str, float]:
    """Median and p99 of one integration call, timed in the training process."""
    sys.path[:0] = [str(ROOT / "tests" / "frameworks"), str(ROOT / "tests")]
    from _frameworks_venv import script_env

    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "calls.py"
        path.write_text(CALLS)
        env = script_env(Path(work), TRACKMUX_TRACKERS="null", WANDB_MODE="offline",
                         WANDB_SILENT="true", WANDB_DIR=work, WANDB_PROJECT="bench")
        done = subprocess.run([str(python), str(path), mode, str(calls), site], cwd=work,
                              env=env, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} {site} calls failed:\n{done.stderr[-4000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])  # type: ignore[no-any-return]


def run_once(python: Path, script: str, mode: str, steps: int) -> dict[str, Any]:
    sys.path[:0] = [str(ROOT / "tests" / "frameworks"), str(ROOT / "tests")]
    from _frameworks_venv import script_env

    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "train.py"
        path.write_text(script)
        env = script_env(Path(work), TRACKMUX_TRACKERS="null", WANDB_MODE="offline",
                         WANDB_SILENT="true", WANDB_DIR=work, WANDB_PROJECT="bench")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([str(python), str(path), mode, str(steps)], cwd=work, env=env,
                              capture_output=True, text=True, timeout=900, check=False)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{done.stderr[-4000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    ends = result.pop("ends")
    walls = [b[0] - a[0] for a, b in itertools.pairwise(ends)]
    cpus = [b[1] - a[1] for a, b in itertools.pairwise(ends)]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "fit": result["fit"], "steps": len(ends),
            "step_median": statistics.median(walls), "step_mean": statistics.fmean(walls),
            "thread_cpu": statistics.fmean(cpus), "cpu": cpu,
            "rss_mb": result["rss_kb"] / 1024}


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2000,
                        help="integration calls timed one by one")
    parser.add_argument("--json", type=Path, help="write the raw measurements here")
    options = parser.parse_args()
    python = frameworks_python()
    load = os.getloadavg()
    started = time.perf_counter()
    calls: dict[str, dict[str, dict[str, float]]] = {}
    for site in CALL_SITES:
        for mode in ("trackmux", "wandb"):
            say(f"{site}: timing {options.calls} calls, {mode}")
            calls.setdefault(site, {})[mode] = time_calls(python, mode, site, options.calls)
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
    print(f"### What the integration adds to each logged step, {options.calls} calls\n")
    print("| call | trackmux median | trackmux p99 | wandb (offline) median | wandb p99 | "
          "trackmux cheaper by |")
    print("|---|---|---|---|---|---|")
    for site, title in CALL_SITES.items():
        ours, theirs = calls[site]["trackmux"], calls[site]["wandb"]
        print(f"| {title} | {ours['median'] * 1e6:.1f} µs | {ours['p99'] * 1e6:.1f} µs "
              f"| {theirs['median'] * 1e6:.1f} µs | {theirs['p99'] * 1e6:.1f} µs "
              f"| {theirs['median'] / ours['median']:.0f}x |")
    print()
    for title, modes in raw.items():
        base = statistics.median(r["thread_cpu"] for r in modes["none"])
        base_cpu = statistics.median(r["cpu"] for r in modes["none"])
        print(f"### {title}, {options.steps} steps, a log call every step\n")
        print("| tracking | wall (process) | training loop (wall) | time per step (wall, median) "
              "| training thread CPU per step | added per step (CPU) | process CPU, all threads "
              "and children | added CPU | peak RSS |")
        print("|---|---|---|---|---|---|---|---|---|")
        for mode in MODES:
            runs = modes[mode]
            thread_cpu = statistics.median(r["thread_cpu"] for r in runs)
            cpu = statistics.median(r["cpu"] for r in runs)
            added = "-" if mode == "none" else f"{(thread_cpu - base) * 1e6:+.0f} µs"
            added_cpu = "-" if mode == "none" else f"{cpu - base_cpu:+.2f} s"
            print(f"| {mode} | {statistics.median(r['wall'] for r in runs):.2f} s "
                  f"| {statistics.median(r['fit'] for r in runs):.2f} s "
                  f"| {fmt_ms(statistics.median(r['step_median'] for r in runs))} "
                  f"| {fmt_ms(thread_cpu)} | {added} | {cpu:.2f} s | {added_cpu} "
                  f"| {statistics.median(r['rss_mb'] for r in runs):.0f} MB |")
        print()
    if options.json:
        options.json.write_text(json.dumps({"calls": calls, "runs": raw}, indent=1))


if __name__ == "__main__":
    main()
