"""How long ``import trackmux`` and ``trackmux --help`` take, in fresh processes.

    python bench/import_time.py [--runs 20] [--profile]

Prints the median (and the range) of:

* ``import trackmux``: ``time.perf_counter()`` (and ``process_time()``, steadier on a busy
  machine) around the import statement, in a fresh interpreter each time (what a training
  script pays at its first line; the goal is 60 ms);
* ``trackmux --help``: the wall time of the whole command, interpreter start included (the
  goal is 150 ms);
* ``python -c pass``: the interpreter alone, for reference.

``--profile`` adds the modules ``python -X importtime -c "import trackmux"`` spends most on
(self time, summed per top-level package), and what ``import trackmux`` leaves unimported.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import statistics
import subprocess
import sys
import time

_IMPORT = ("import time; t = time.perf_counter(); c = time.process_time(); import trackmux; "
           "print(time.perf_counter() - t, time.process_time() - c)")

#: Modules a training script should not pay for at ``import trackmux``.
HEAVY = ("asyncio", "ssl", "httpx", "importlib.metadata", "cattrs", "rich", "click", "sqlite3",
         "trackmux._engine", "trackmux._journal", "trackmux_wandb", "trackmux_mlflow",
         "trackmux_null", "concurrent.futures")


def _median_ms(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    return f"median {statistics.median(ms):6.1f} ms  (min {ms[0]:.1f}, max {ms[-1]:.1f})"


def import_times(runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds ``import trackmux`` takes, once per fresh interpreter (the CPU
    time varies less on a loaded machine)."""
    wall, cpu = [], []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", _IMPORT], capture_output=True, text=True,
                              check=True)
        seconds = done.stdout.split()
        wall.append(float(seconds[0]))
        cpu.append(float(seconds[1]))
    return wall, cpu


def wall_times(command: list[str], runs: int) -> list[float]:
    """Wall seconds of ``command``, start to exit."""
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        out.append(time.perf_counter() - started)
    return out


def profile() -> None:
    """Self time per top-level package under ``-X importtime``, and the heavy modules left out."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import trackmux"],
                          capture_output=True, text=True, check=True)
    per_package: collections.Counter[str] = collections.Counter()
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[0].strip().split(":")[-1].strip().isdigit():
            continue
        per_package[parts[2].strip().split(".")[0]] += int(parts[0].split(":")[1])
    print("\n-X importtime, self time per top-level package (one run):")
    for name, micros in per_package.most_common(15):
        print(f"  {name:<22} {micros / 1000:6.1f} ms")
    print(f"  {'(all)':<22} {sum(per_package.values()) / 1000:6.1f} ms")
    check = ("import sys, trackmux; "
             f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            check=True).stdout.split()
    print("\nheavy modules imported by `import trackmux`:", ", ".join(loaded) or "none")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="fresh processes per figure")
    parser.add_argument("--profile", action="store_true", help="add an -X importtime profile")
    args = parser.parse_args(argv)
    script = shutil.which("trackmux")
    help_command = [script, "--help"] if script else [sys.executable, "-m", "trackmux._cli",
                                                      "--help"]
    print(f"{args.runs} fresh processes each, {sys.executable}")
    wall, cpu = import_times(args.runs)
    print(f"import trackmux     {_median_ms(wall)}   (goal: 60 ms)")
    print(f"  its CPU time      {_median_ms(cpu)}")
    print(f"trackmux --help     {_median_ms(wall_times(help_command, args.runs))}   "
          f"(goal: 150 ms, interpreter start included)")
    bare = wall_times([sys.executable, "-c", "pass"], args.runs)
    print(f"python -c pass      {_median_ms(bare)}")
    if args.profile:
        profile()


if __name__ == "__main__":
    main()
