"""The tables of ``bench/compare.py``, rendered from its measurements (``bench/results.json``).

``bench/compare.py --save`` stores each run's raw measurements under ``"idle"`` (no
``--load``) or ``"loaded"`` (``--load N``) in ``bench/results.json`` and then rewrites two
generated blocks from that file (``--load 0,2 --save`` makes both runs in one command):

* README.md's Performance table, between ``<!-- compare:begin -->`` and
  ``<!-- compare:end -->``;
* bench/RESULTS.md's targets and full tables, between the same markers (the hand-written
  sections of RESULTS.md are outside them and left alone).

Nothing between the markers is written by hand: ``python bench/compare_report.py`` re-renders
both blocks from ``bench/results.json`` without measuring anything, and
``tests/test_bench_report.py`` checks that what the files hold is what this module renders.
The verdicts are computed here from the raw figures, so the JSON holds measurements only.

Standard library only: the test suite and the benchmark's workers import it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_JSON = HERE / "results.json"
README = ROOT / "README.md"
RESULTS_MD = HERE / "RESULTS.md"
BEGIN = "<!-- compare:begin -->"
END = "<!-- compare:end -->"
#: The runs results.json holds, in the order they are shown.
MODES = ("idle", "loaded")

LABELS = {
    "trackmux": "trackmux `Tracker.log_metrics` (offline tracker)",
    "wandb": "wandb `run.log` (offline)",
    "mlflow-sqlite-sync": "mlflow `log_metrics` sync, sqlite store",
    "mlflow-file-sync": "mlflow `log_metrics` sync, file store",
    "mlflow-sqlite-async": "mlflow `log_metrics(synchronous=False)`, sqlite store",
    "mlflow-file-async": "mlflow `log_metrics(synchronous=False)`, file store",
}
NAMES = {
    "trackmux": "trackmux (offline tracker)",
    "wandb": "wandb (offline)",
    "mlflow-sqlite-sync": "mlflow sync, sqlite",
    "mlflow-file-sync": "mlflow sync, file",
    "mlflow-sqlite-async": "mlflow async, sqlite",
    "mlflow-file-async": "mlflow async, file",
}


def in_order(figures: dict[str, Any]) -> list[tuple[str, Any]]:
    """``figures`` by library, trackmux first, in the order of LABELS (not the JSON's)."""
    return [(lib, figures[lib]) for lib in LABELS if lib in figures]


# ------------------------------------------------------------------------------------------
# formatting
# ------------------------------------------------------------------------------------------


def fmt_us(seconds: float) -> str:
    """``3.1 µs`` below a millisecond, ``1.11 ms`` above."""
    us = seconds * 1e6
    return f"{us:,.1f} µs" if us < 1000 else f"{us / 1000:,.2f} ms"


def fmt_ratio(theirs: float, ours: float) -> str:
    """``theirs / ours`` as ``63x`` (``4.9x`` below 10); ``-`` when ours is 0."""
    if not ours:
        return "-"
    ratio = theirs / ours
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


def fmt_mb(kb: int) -> str:
    """Kibibytes as ``52 MB``."""
    return f"{kb / 1024:,.0f} MB"


def fmt_ms(seconds: float) -> str:
    """Seconds as ``181 ms``."""
    return f"{seconds * 1e3:,.0f} ms"


def fmt_load(load: list[float]) -> str:
    """A load average triple as ``0.82/1.05/1.71``."""
    return "/".join(f"{value:.2f}" for value in load)


def median(values: list[float]) -> float:
    """The median of ``values`` (the mean of the middle two for an even count)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def verdict(ok: bool) -> str:
    """The verdict cell of a targets table."""
    return "**holds**" if ok else "**missed**"


# ------------------------------------------------------------------------------------------
# derived figures: one place computes each, the tables and the verdicts read them
# ------------------------------------------------------------------------------------------


def total_cpu(raw: dict[str, Any]) -> dict[str, float]:
    """Process CPU per record (s): trackmux's median, wandb's user process and wandb-core."""
    ours = raw["total_cpu"]
    runs = raw["runs"]
    wandb = runs["wandb"]
    return {
        "trackmux": median(ours["cpu"]) / ours["records"],
        "trackmux_caller": median(ours["own"]) / ours["records"],
        "wandb": wandb["cpu"] / wandb["steps"],
        "wandb_core": wandb["core_cpu"] / wandb["steps"],
    }


def startup(raw: dict[str, Any]) -> dict[str, float]:
    """Medians (s) of ``import trackmux`` (wall, CPU), ``trackmux --help``, ``python -c pass``."""
    figures = raw["startup"]
    return {key: median(values) for key, values in figures.items() if key != "runs"}


def targets(raw: dict[str, Any]) -> list[tuple[str, str, str, str, bool]]:
    """(issue, kind, target, measured, met) for every target, from one run's figures."""
    hot, imports, runs, journal = raw["hot"], raw["imports"], raw["runs"], raw["journal"]
    ours = hot["trackmux"]["median"]
    cpu = total_cpu(raw)
    start = startup(raw)
    tail = raw["tail"]["trackmux_gc"]
    floor = raw["tail"]["floor"]
    nogc = raw["tail"]["trackmux_nogc"]
    cpu_ratio = cpu["wandb"] / cpu["trackmux"]
    with_core = (cpu["wandb"] + cpu["wandb_core"]) / cpu["trackmux"]
    wandb_log = hot["wandb"]["median"] / ours
    sync = [hot[k]["median"] for k in ("mlflow-sqlite-sync", "mlflow-file-sync") if k in hot]
    mlflow_log = min(sync) / ours if sync else 0.0
    import_ratio = imports["wandb"] / start["import_wall"]
    rss_ours, rss_wandb = runs["trackmux"]["peak_rss_kb"], runs["wandb"]["peak_rss_kb"]
    rows_s = journal["journal_rows_per_s"]
    return [
        (
            "15.1",
            "absolute",
            "total CPU per record ≤ 3 µs (N calls + `flush()`, every thread)",
            fmt_us(cpu["trackmux"]),
            cpu["trackmux"] <= 3e-6,
        ),
        (
            "15.1",
            "ratio",
            "total CPU per record ≥ 60x cheaper than wandb offline (its user process)",
            f"{cpu_ratio:,.0f}x ({with_core:,.0f}x counting wandb-core)",
            cpu_ratio >= 60,
        ),
        (
            "15.2",
            "absolute",
            "`import trackmux` ≤ 60 ms (median of fresh processes)",
            fmt_ms(start["import_wall"]),
            start["import_wall"] <= 0.060,
        ),
        (
            "15.2",
            "absolute",
            "`trackmux --help` ≤ 150 ms (interpreter start included)",
            fmt_ms(start["help"]),
            start["help"] <= 0.150,
        ),
        *mlflow_server_targets(raw.get("mlflow_server")),
        *latency_targets(raw.get("latency")),
        (
            "15.5",
            "absolute",
            f"hot path: no call over 5 ms ({tail['calls']:,} calls each timed)",
            f"{tail['over_5ms']} calls > 5 ms, max {tail['max'] / 1e3:,.1f} ms (GC off: "
            f"{nogc['over_5ms']}; the same loop without trackmux: {floor['over_5ms']})",
            tail["over_5ms"] == 0,
        ),
        (
            "6",
            "ratio",
            "`log_metrics` ≥ 50x cheaper than wandb `run.log` (offline), median",
            f"{wandb_log:,.0f}x",
            wandb_log >= 50,
        ),
        (
            "6",
            "ratio",
            "`log_metrics` ≥ 100x cheaper than MLflow's synchronous call (faster store), median",
            f"{mlflow_log:,.0f}x" if sync else "not measured (`--skip-mlflow`)",
            mlflow_log >= 100,
        ),
        (
            "6",
            "ratio",
            "`import trackmux` ≥ 3x faster than `import wandb`",
            f"{import_ratio:.1f}x",
            import_ratio >= 3,
        ),
        (
            "6",
            "ratio",
            f"peak RSS for {raw['steps']:,} steps ≤ the wandb user process's",
            f"{fmt_mb(rss_ours)} vs {fmt_mb(rss_wandb)} ({(rss_ours / rss_wandb - 1) * 100:+.0f}%)",
            rss_ours <= rss_wandb,
        ),
        (
            "6",
            "absolute",
            "the engine moves ≥ 200,000 rows/s into the journal on one core",
            f"{rows_s:,.0f} rows/s",
            rows_s >= 200_000,
        ),
    ]


MLFLOW_CLIENT_LABELS = {
    "trackmux": 'trackmux (`Tracker(["mlflow"])`, defaults), first log → `flush()`',
    "mlflow-client": "`MlflowClient.log_batch`, 200 rows a request",
    "raw-1": "raw httpx, prebuilt 1,000-metric bodies, 1 in flight",
    "raw-2": "raw httpx, prebuilt 1,000-metric bodies, 2 in flight",
}


def mlflow_server_targets(
    server: dict[str, Any] | None,
) -> list[tuple[str, str, str, str, bool]]:
    """Issue 15 items 3 and 4 on MLflow: the native client's rows/s, latency p99 ≤ 6 s."""
    rate = "MLflow: trackmux's rows/s ≥ `MlflowClient.log_batch`'s, same real server (median)"
    delay = "MLflow delivery, healthy server: p99 from log to stored ≤ 6 s"
    if server is None:
        missing = "not measured (`--skip-mlflow-server`)"
        return [
            ("15.3", "ratio", rate, missing, False),
            ("15.4", "absolute", delay, missing, False),
        ]
    ours = median(server["rows_per_s"]["trackmux"])
    theirs = median(server["rows_per_s"]["mlflow-client"])
    latency = server["latency"]
    return [
        (
            "15.3",
            "ratio",
            rate,
            f"{ours:,.0f} vs {theirs:,.0f} rows/s ({ours / theirs:.2f}x)",
            ours >= theirs,
        ),
        (
            "15.4",
            "absolute",
            delay,
            f"p99 {latency['p99']:.2f} s (max {latency['max']:.2f} s)",
            latency["p99"] <= 6.0,
        ),
    ]


def latency_targets(delivery: dict[str, Any] | None) -> list[tuple[str, str, str, str, bool]]:
    """Issue 15 item 4: healthy p99 ≤ 6 s, every row within 30 s under the fault burst."""
    healthy = "W&B delivery, healthy backend: p99 from log to stored ≤ 6 s"
    burst = "W&B delivery under the fault burst: every row stored within 30 s"
    if delivery is None:
        missing = "not measured (`--skip-latency`)"
        return [
            ("15.4", "absolute", healthy, missing, False),
            ("15.4", "absolute", burst, missing, False),
        ]
    ok, bad = delivery["healthy"], delivery["burst"]
    return [
        (
            "15.4",
            "absolute",
            healthy,
            _failed(ok) or f"p99 {ok['p99']:.2f} s (max {ok['max']:.2f} s)",
            "error" not in ok and ok["p99"] <= 6.0,
        ),
        (
            "15.4",
            "absolute",
            burst,
            _failed(bad) or f"max {bad['max']:.2f} s (p99 {bad['p99']:.2f} s)",
            "error" not in bad and bad["max"] <= 30.0,
        ),
    ]


def _failed(case: dict[str, Any]) -> str:
    """``failed: <why>`` for a latency case that did not complete, else ``""``."""
    return f"failed: {case['error']}" if "error" in case else ""


# ------------------------------------------------------------------------------------------
# one run's full report
# ------------------------------------------------------------------------------------------


def header(raw: dict[str, Any]) -> str:
    """The line saying what ran, where, and how loaded the machine was."""
    env = raw["platform"]
    versions = raw["versions"]
    load = raw["loadavg"]
    burners = raw["burners"]
    if burners["count"]:
        loaded = (
            f"**Loaded machine: {burners['count']} CPU-burning processes "
            f"(`while True: pass`) ran for the whole run** ({burners['cpu_s']:,.0f} CPU-seconds "
            f"between them). "
        )
    else:
        loaded = "No added load (`--load 0`). "
    return (
        f"Command: `{raw['command']}` — {raw['date']}; {env['python']}, {env['cores']} cores, "
        f"{env['machine']}; trackmux {versions['trackmux']}, wandb {versions['wandb']}, "
        f"mlflow {versions['mlflow']}. {loaded}Load average (1/5/15 min) at start "
        f"{fmt_load(load['start'])}, at end {fmt_load(load['end'])}, highest 1-min "
        f"{load['max1']:.2f}; took {raw['total']:.0f} s."
    )


def render_run(raw: dict[str, Any], level: str = "###") -> str:
    """Every table of one run, headings at ``level``."""
    lines: list[str] = []
    add = lines.append
    hot = raw["hot"]
    ours = hot["trackmux"]
    add(header(raw))
    add("")

    cpu = total_cpu(raw)
    ours_cpu = raw["total_cpu"]
    add(f"{level} Total CPU per record, 5 floats, background threads included")
    add("")
    add(
        f"trackmux: `bench/total_cost.py`'s measure — {ours_cpu['records']:,} "
        "`Tracker.log_metrics` calls to the offline tracker, then `flush()` (every record "
        "journaled and stored), the process's CPU time (every thread) divided by the calls; "
        f"median of {len(ours_cpu['cpu'])} runs. wandb: {raw['runs']['wandb']['steps']:,} "
        "`run.log` calls offline, then `run.finish()`, the user process's CPU time likewise; "
        "`wandb-core` (a separate process doing wandb's background work) over the same span, "
        "read from `/proc`. MLflow: its runs of the table further down, CPU of the logging "
        "process until flushed and ended, per step."
    )
    add("")
    add("| library | CPU per record | of which the caller's thread | trackmux cheaper by |")
    add("|---|---|---|---|")
    add(
        f"| trackmux (offline tracker) | {fmt_us(cpu['trackmux'])} "
        f"| {fmt_us(cpu['trackmux_caller'])} | - |"
    )
    add(
        f"| wandb (offline), user process | {fmt_us(cpu['wandb'])} | | "
        f"{fmt_ratio(cpu['wandb'], cpu['trackmux'])} |"
    )
    add(
        f"| wandb-core, the same span (separate process) | {fmt_us(cpu['wandb_core'])} | | "
        f"{fmt_ratio(cpu['wandb'] + cpu['wandb_core'], cpu['trackmux'])} (user process "
        "+ wandb-core) |"
    )
    for lib, run in in_order(raw["runs"]):
        if lib.startswith("mlflow"):
            per = run["cpu"] / run["steps"]
            add(f"| {NAMES[lib]} | {fmt_us(per)} | | {fmt_ratio(per, cpu['trackmux'])} |")
    add("")

    add(f"{level} Cost of one `log_metrics` call, 5 floats")
    add("")
    add(
        f"Mean per call over batches of {raw['batch']} calls (of 5 for MLflow's, whose calls "
        "take up to milliseconds), in a fresh process per library; "
        '"trackmux is Nx cheaper" = their median / trackmux\'s median (p99 likewise).'
    )
    add("")
    add("| library / call | median | p99 | trackmux cheaper by (median) | (p99) | calls timed |")
    add("|---|---|---|---|---|---|")
    for lib, r in in_order(hot):
        ratio = "-" if lib == "trackmux" else fmt_ratio(r["median"], ours["median"])
        ratio99 = "-" if lib == "trackmux" else fmt_ratio(r["p99"], ours["p99"])
        add(
            f"| {LABELS[lib]} | {fmt_us(r['median'])} | {fmt_us(r['p99'])} | {ratio} "
            f"| {ratio99} | {r['calls']:,} |"
        )
    add("")

    tail = raw["tail"]
    add(f"{level} Tail of the hot path: every call timed on its own")
    add("")
    add(
        "trackmux: `bench/hot_path.py`'s tail measure (`Tracker.log_metrics` to the offline "
        "tracker, `perf_counter_ns` around each call, the timer's own cost subtracted), with "
        "the cyclic GC on and, as a control, off; the same loop calling a function that "
        "appends to a list, without trackmux, shows the pauses the machine causes by itself. "
        "wandb: `run.log` offline, timed the same way, fewer calls (each costs ~100x more)."
    )
    add("")
    add("| calls | count | p50 | p99 | p99.9 | max | calls > 1 ms | calls > 5 ms |")
    add("|---|---|---|---|---|---|---|---|")
    tail_labels = {
        "trackmux_gc": "trackmux, GC on",
        "trackmux_nogc": "trackmux, GC off (control)",
        "floor": "no tracker: append to a list (the machine's own pauses)",
        "wandb": "wandb `run.log` (offline)",
    }
    for key, label in tail_labels.items():
        t = tail[key]
        add(
            f"| {label} | {t['calls']:,} | {fmt_us(t['p50'] / 1e6)} | {fmt_us(t['p99'] / 1e6)} "
            f"| {fmt_us(t['p99.9'] / 1e6)} | {fmt_us(t['max'] / 1e6)} | {t['over_1ms']:,} "
            f"| {t['over_5ms']:,} |"
        )
    add("")

    imports = raw["imports"]
    start = startup(raw)
    add(f"{level} Import time and `trackmux --help` (fresh processes, median)")
    add("")
    add(
        f"`import trackmux`, `trackmux --help` and `python -c pass`: `bench/import_time.py`'s "
        f"measures, median of {raw['startup']['runs']} fresh processes each; `import wandb` "
        f"and `import mlflow`: median of {raw['import_repeats']}."
    )
    add("")
    add("| command | wall | trackmux faster by |")
    add("|---|---|---|")
    add(
        f"| `import trackmux` | {fmt_ms(start['import_wall'])} "
        f"(CPU {fmt_ms(start['import_cpu'])}) | - |"
    )
    for module in [m for m in ("wandb", "mlflow") if m in imports]:
        add(
            f"| `import {module}` | {fmt_ms(imports[module])} "
            f"| {fmt_ratio(imports[module], start['import_wall'])} |"
        )
    add(f"| `trackmux --help` (interpreter start included) | {fmt_ms(start['help'])} | |")
    add(f"| `python -c pass` (the interpreter alone) | {fmt_ms(start['bare'])} | |")
    add("")

    runs = raw["runs"]
    add(f"{level} A run of {raw['steps']:,} steps: peak RSS, and time until flushed and finished")
    add("")
    add(
        "Peak RSS is `ru_maxrss` of the logging process (imports and run setup included). "
        "The wall time runs from the first log call until the run is finished and everything "
        "is written (trackmux: `Tracker.disconnect()`, which finishes the run and waits until "
        "the offline tracker stored every row; wandb: `run.finish()`; MLflow: "
        "`flush_async_logging()` + `end_run()`). CPU is the logging process's user+system "
        "time over the same span. **wandb's RSS and CPU are the user process only: the "
        "`wandb-core` service is a separate process**, shown in its own column (its peak RSS "
        "through `RUSAGE_CHILDREN` after `wandb.teardown()`, its CPU over the span from "
        "`/proc`). MLflow modes whose calls take milliseconds log fewer steps "
        "(`--slow-steps`); their ratios compare per-step times."
    )
    add("")
    add(
        "| library | steps | peak RSS | RSS before logging | separate process "
        "| log loop | first log → finished | CPU | steps/s | trackmux faster by |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|")
    base = runs["trackmux"]
    for lib, r in in_order(runs):
        other = (
            f"wandb-core: {fmt_mb(r['children_peak_rss_kb'])}, {r['core_cpu']:.1f} s CPU"
            if lib == "wandb"
            else "-"
        )
        per_step_ours = base["wall"] / base["steps"]
        per_step = r["wall"] / r["steps"]
        ratio = "-" if lib == "trackmux" else fmt_ratio(per_step, per_step_ours)
        add(
            f"| {NAMES[lib]} | {r['steps']:,} | {fmt_mb(r['peak_rss_kb'])} "
            f"| {fmt_mb(r['rss_before_kb'])} | {other} | {r['log_loop']:.2f} s "
            f"| {r['wall']:.2f} s | {r['cpu']:.2f} s | {r['steps'] / r['wall']:,.0f} | {ratio} |"
        )
    add("")

    journal = raw["journal"]
    add(f"{level} The journal: rows per second")
    add("")
    add(
        f"Median of {journal['repeats']} runs in one process (journal rows/s of each run: "
        + ", ".join(f"{v:,.0f}" for v in journal["journal_rows_per_s_all"])
        + ")."
    )
    add("")
    add(
        f"| measurement ({journal['rows']:,} rows x 5 floats) | rows/s (wall) "
        "| rows per CPU-second (all threads) |"
    )
    add("|---|---|---|")
    add(
        f"| engine: first `log_metrics` → the journal holds every row (log loop "
        f"{journal['engine_log_loop_s']:.2f} s, then the last commit "
        f"{journal['engine_commit_s']:.2f} s) | {journal['journal_rows_per_s']:,.0f} "
        f"| {journal['journal_rows_per_cpu_s']:,.0f} |"
    )
    add(
        f"| engine: first `log_metrics` → `flush()` returned, a no-op tracker acknowledging "
        f"at once (then {journal['engine_drain_s']:.2f} s until acknowledged) "
        f"| {journal['engine_rows_per_s']:,.0f} | {journal['engine_rows_per_cpu_s']:,.0f} |"
    )
    add(
        f"| committer alone: `RunJournal.append` (marshal + SQLite), 10,000-record commits "
        f"| {journal['committer_rows_per_s']:,.0f} | {journal['committer_rows_per_cpu_s']:,.0f} |"
    )
    add("")

    wire, sdk_wire = raw["wire"], raw["sdk_wire"]
    add(f"{level} W&B on the wire ({wire['rows']:,} rows x 5 floats, logged as fast as possible)")
    add("")
    add(
        "Both clients online against `FakeWandB` served on 127.0.0.1 (the same fake: W&B's "
        "GraphQL + file_stream protocol), counted from the first log until the run is "
        "finished; body bytes as sent. The SDK runs with system metrics off."
    )
    add("")
    add(
        "| client | file_stream requests with rows / 1k rows | their bytes / 1k rows "
        "| all requests / 1k rows | all bytes / 1k rows | first log → finished |"
    )
    add("|---|---|---|---|---|---|")
    clients = [("trackmux W&B plugin", wire)]
    if sdk_wire is not None and "error" not in sdk_wire:
        clients.append((f"official wandb SDK {raw['versions']['wandb']}", sdk_wire))
    for label, w in clients:
        add(
            f"| {label} | {w['requests_per_1k']:.2f} | {w['bytes_per_1k']:,.0f} "
            f"| {w['all_requests_per_1k']:.2f} | {w['all_bytes_per_1k']:,.0f} "
            f"| {w['wall']:.2f} s |"
        )
    if sdk_wire is None:
        add("| official wandb SDK | not attempted (`--skip-sdk-online`) | | | | |")
    elif "error" in sdk_wire:
        rejected = "; ".join(sdk_wire.get("rejected") or []) or "none recorded"
        add(
            f"| official wandb SDK → FakeWandB | not measurable: {sdk_wire['error']} "
            f"(requests the fake rejected: {rejected}) | | | | |"
        )
    else:
        add("")
        add(
            f"Requests seen: trackmux {', '.join(wire['operations'])}; "
            f"SDK {', '.join(sdk_wire['operations'])}. Rows stored by the fake: trackmux "
            f"{wire['stored']:,}, SDK {sdk_wire['stored']:,}."
        )
    add("")
    delivery = raw.get("latency")
    add(f"{level} Delivery latency to W&B: from `log_metrics` to stored on the server")
    add("")
    if delivery is None:
        add("Not measured in this run (`--skip-latency`).")
    else:
        add(
            f"`bench/latency.py`'s measure: `FakeWandB` over loopback HTTP, "
            f'`Tracker(["wandb"])` with its defaults (5 s batch interval, W&B\'s 5 s minimum '
            f"between requests), rows of 5 floats at {delivery['rate']:g}/s for "
            f"{delivery['seconds']:g} s, no `flush()`; the burst (3 x 503, 2 x 429 with "
            f"Retry-After 1, 2 answers lost after the server stored the rows, 1 dropped "
            f"connection) starts {delivery['burst_at']:g} s in. Wall time: the intervals and "
            "backoffs are real waits."
        )
        add("")
        add("| backend | rows | p50 | p99 | max |")
        add("|---|---|---|---|---|")
        for case, label in (("healthy", "healthy"), ("burst", "fault burst")):
            d = delivery[case]
            if "error" in d:
                add(f"| {label} | {_failed(d)} | | | |")
                continue
            add(
                f"| {label} | {d['rows']:,} | {d['p50']:.2f} s | {d['p99']:.2f} s "
                f"| {d['max']:.2f} s |"
            )
    add("")
    server = raw.get("mlflow_server")
    add(f"{level} A real MLflow server: rows per second and delivery latency")
    add("")
    if server is None:
        add("Not measured in this run (`--skip-mlflow-server`).")
    else:
        add(
            f"`bench/mlflow_throughput.py`'s measures against one `mlflow server` (SQLite store, "
            f"one worker, MLflow {raw['versions']['mlflow']}): {server['rows']:,} rows of 5 "
            f"metrics into a fresh run per client, the clients interleaved for "
            f"{server['rounds']} round(s) (wall time, median and range); the server's CPU per "
            f"1,000 rows from `/proc`. Then trackmux's delivery latency to it: "
            f"{server['latency']['rate']:g} rows/s for {server['latency']['seconds']:g} s, "
            "default settings (5 s interval), no `flush()`."
        )
        add("")
        add("| client | rows/s, median | range | server CPU per 1,000 rows | vs MlflowClient |")
        add("|---|---|---|---|---|")
        client = median(server["rows_per_s"]["mlflow-client"])
        for name, label in MLFLOW_CLIENT_LABELS.items():
            rates = server["rows_per_s"][name]
            cpu_ms = median(server["server_cpu_per_row"][name]) * 1e6
            add(
                f"| {label} | {median(rates):,.0f} | {min(rates):,.0f}-{max(rates):,.0f} "
                f"| {cpu_ms:,.0f} ms | {median(rates) / client:.2f}x |"
            )
        lat = server["latency"]
        add("")
        add(
            f"Delivery latency to MLflow ({lat['rows']:,} rows): p50 {lat['p50']:.2f} s, "
            f"p99 {lat['p99']:.2f} s, max {lat['max']:.2f} s."
        )
    add("")
    add(f"{level} Targets of this run")
    add("")
    add("| issue | kind | target | measured | verdict |")
    add("|---|---|---|---|---|")
    for issue, kind, target, measured, met in targets(raw):
        add(f"| {issue} | {kind} | {target} | {measured} | {verdict(met)} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------
# the generated blocks of RESULTS.md and README.md
# ------------------------------------------------------------------------------------------

_GENERATED = (
    "<!-- Generated from bench/results.json: do not edit by hand. "
    "`python bench/compare.py --load 0,2 --save` measures both runs (idle, then with 2 "
    "CPU-burning processes) and rewrites it; `python bench/compare_report.py` re-renders it. -->"
)


def _load_note(raw: dict[str, Any]) -> str:
    burners = raw["burners"]["count"]
    what = f"`--load {burners}`" if burners else "no added load"
    load = raw["loadavg"]
    return (
        f"{what}; load average {fmt_load(load['start'])} at start, 1-min up to {load['max1']:.2f}"
    )


def render_results(results: dict[str, Any]) -> str:
    """RESULTS.md's generated block: the targets of every run side by side, then each run."""
    runs = [(mode, results[mode]) for mode in MODES if mode in results]
    lines = [_GENERATED, ""]
    add = lines.append
    add("### Targets: idle and loaded machine")
    add("")
    add(
        "Ratio targets compare trackmux with wandb or MLflow measured in the same run; the "
        "issue asks them to hold on a loaded machine too. Absolute targets are figures of this "
        "2-core machine (wall or CPU time)."
    )
    add("")
    if not runs:
        add("No run stored yet: `python bench/compare.py --save`.")
        return "\n".join(lines) + "\n"
    heads = " | ".join(f"{mode} ({_load_note(raw)}) | verdict" for mode, raw in runs)
    add(f"| issue | kind | target | {heads} |")
    add("|---|---|---|" + "---|---|" * len(runs))
    per_run = [targets(raw) for _, raw in runs]
    for row in zip(*per_run, strict=True):
        issue, kind, target = row[0][:3]
        cells = " | ".join(f"{measured} | {verdict(met)}" for *_, measured, met in row)
        add(f"| {issue} | {kind} | {target} | {cells} |")
    for mode in MODES:
        if mode not in results:
            add("")
            add(f"No {mode} run stored yet.")
    for mode, raw in runs:
        add("")
        title = "Idle machine" if mode == "idle" else "Loaded machine"
        add(f"### {title}: `{raw['command']}`")
        add("")
        lines.append(render_run(raw, level="####").rstrip("\n"))
    return "\n".join(lines) + "\n"


def mlflow_cells(raw: dict[str, Any], cpu: float, imported: float) -> dict[str, str]:
    """README's MLflow column: its synchronous call on its faster store, or "not measured"."""
    hot, runs = raw["hot"], raw["runs"]
    sync = [k for k in ("mlflow-sqlite-sync", "mlflow-file-sync") if k in hot]
    if not sync:
        return dict.fromkeys(("cpu", "log", "import", "rss", "wall"), "not measured")
    lib = min(sync, key=lambda k: hot[k]["median"])
    where = f"sync, {lib.split('-')[1]} store"
    run, call = runs[lib], hot[lib]["median"]
    per_record = run["cpu"] / run["steps"]
    ours = hot["trackmux"]["median"]
    seconds = raw["imports"]["mlflow"]
    return {
        "cpu": f"{fmt_us(per_record)} {where} ({fmt_ratio(per_record, cpu)})",
        "log": f"{fmt_us(call)} {where} ({fmt_ratio(call, ours)})",
        "import": f"{fmt_ms(seconds)} ({fmt_ratio(seconds, imported)})",
        "rss": f"{fmt_mb(run['peak_rss_kb'])}+ ({run['steps']:,} steps)",
        "wall": f"~{fmt_us(run['wall'] / run['steps'])} per step",
    }


def render_readme(results: dict[str, Any]) -> str:
    """README.md's generated block: the Performance table of the idle run, loaded ratios."""
    lines = [_GENERATED, ""]
    add = lines.append
    raw = results.get("idle") or results.get("loaded")
    if raw is None:
        add("No run stored yet: `python bench/compare.py --save`.")
        return "\n".join(lines) + "\n"
    versions = raw["versions"]
    hot, imports, runs = raw["hot"], raw["imports"], raw["runs"]
    cpu, start, tail = total_cpu(raw), startup(raw), raw["tail"]
    ours = hot["trackmux"]["median"]
    wandb_run, base = runs["wandb"], runs["trackmux"]
    wire, sdk_wire = raw["wire"], raw["sdk_wire"]
    major = {lib: ".".join(versions[lib].split(".")[:2]) for lib in ("wandb", "mlflow")}
    mlflow = mlflow_cells(raw, cpu["trackmux"], start["import_wall"])
    add(
        f"One run of `{raw['command']}` on a {raw['platform']['cores']}-core machine "
        f"({_load_note(raw)}):"
    )
    add("")
    add(f"| measurement | trackmux | wandb {major['wandb']} | MLflow {major['mlflow']} |")
    add("|---|---|---|---|")
    add(
        f"| total CPU per record, 5 floats (N calls + flush, every thread) "
        f"| {fmt_us(cpu['trackmux'])} "
        f"| {fmt_us(cpu['wandb'])} `run.log` offline ({fmt_ratio(cpu['wandb'], cpu['trackmux'])})"
        f" + {fmt_us(cpu['wandb_core'])} in wandb-core | {mlflow['cpu']} |"
    )
    add(
        f"| `log_metrics`, 5 floats, median (batches of {raw['batch']} calls) "
        f"| {fmt_us(ours)} "
        f"| {fmt_us(hot['wandb']['median'])} ({fmt_ratio(hot['wandb']['median'], ours)}) "
        f"| {mlflow['log']} |"
    )
    spread = {
        key: f"{fmt_us(t['p99.9'] / 1e6)} / {fmt_us(t['max'] / 1e6)} ({t['calls']:,} calls)"
        for key, t in tail.items()
    }
    add(f"| one call, each timed: p99.9 / max | {spread['trackmux_gc']} | {spread['wandb']} | |")
    add(
        f"| import in a fresh process | {fmt_ms(start['import_wall'])} "
        f"| {fmt_ms(imports['wandb'])} ({fmt_ratio(imports['wandb'], start['import_wall'])}) "
        f"| {mlflow['import']} |"
    )
    add(f"| `trackmux --help` | {fmt_ms(start['help'])} | | |")
    add(
        f"| peak RSS, {base['steps']:,} steps | {fmt_mb(base['peak_rss_kb'])} "
        f"| {fmt_mb(wandb_run['peak_rss_kb'])} user process + "
        f"{fmt_mb(wandb_run['children_peak_rss_kb'])} wandb-core | {mlflow['rss']} |"
    )
    add(
        f"| first log until flushed and finished, {base['steps']:,} steps "
        f"| {base['wall']:.1f} s | {wandb_run['wall']:.1f} s | {mlflow['wall']} |"
    )

    def per_1k(w: dict[str, Any] | None) -> str:
        if not w or "error" in w:
            return "not measured"
        return f"{w['all_requests_per_1k']:.1f} requests, {w['all_bytes_per_1k'] / 1e3:,.0f} KB"

    add(f"| W&B wire, per 1,000 rows | {per_1k(wire)} | {per_1k(sdk_wire)} | |")
    server = raw.get("mlflow_server")
    if server is not None:
        ours_rate = median(server["rows_per_s"]["trackmux"])
        client = median(server["rows_per_s"]["mlflow-client"])
        add(
            f"| rows/s into a real MLflow server (SQLite, 1 worker) | {ours_rate:,.0f} | "
            f"| {client:,.0f} `MlflowClient.log_batch` (trackmux {ours_rate / client:.2f}x) |"
        )
    delivery = raw.get("latency")
    complete = delivery is not None and not any(
        "error" in delivery[c] for c in ("healthy", "burst")
    )
    if server is not None and complete:
        add(
            f"| log → stored, p99, default 5 s interval | W&B {delivery['healthy']['p99']:.1f} s "
            f"(fault burst: max {delivery['burst']['max']:.1f} s), MLflow "
            f"{server['latency']['p99']:.1f} s | | |"
        )
    add("")
    add(
        f"The engine moves {raw['journal']['journal_rows_per_s']:,.0f} rows/s into the journal "
        "(median of 5 runs)."
    )
    loaded = results.get("loaded")
    if loaded is not None and raw is not loaded:
        lcpu, lstart = total_cpu(loaded), startup(loaded)
        lhot = loaded["hot"]
        add(
            f"On a loaded machine (`{loaded['command']}`: {loaded['burners']['count']} "
            f"CPU-burning processes beside it; 1-min load average up to "
            f"{loaded['loadavg']['max1']:.2f}) trackmux's total CPU per record "
            f"was {fmt_us(lcpu['trackmux'])}, "
            f"{fmt_ratio(lcpu['wandb'], lcpu['trackmux'])} less than wandb's, its call "
            f"{fmt_ratio(lhot['wandb']['median'], lhot['trackmux']['median'])} cheaper, its "
            f"import {fmt_ratio(loaded['imports']['wandb'], lstart['import_wall'])} faster."
        )
    met = [all(t[4] for t in targets(r)) for r in (results.get(m) for m in MODES) if r]
    counts = []
    for mode in MODES:
        if mode in results:
            rows = targets(results[mode])
            counts.append(f"{sum(t[4] for t in rows)} of {len(rows)} ({mode})")
    add(
        "Targets met: "
        + ", ".join(counts)
        + ("" if all(met) else "; the misses are listed in bench/RESULTS.md")
        + "."
    )
    return "\n".join(lines) + "\n"


def replace_block(text: str, block: str, where: str) -> str:
    """``text`` with what lies between BEGIN and END replaced by ``block``.

    :raises ValueError: naming ``where`` if the markers are missing, repeated or out of order.
    """
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(
            f"{where}: expected one {BEGIN!r} and one {END!r} line, found "
            f"{text.count(BEGIN)} and {text.count(END)}"
        )
    if text.index(END) < text.index(BEGIN):
        raise ValueError(f"{where}: {END!r} comes before {BEGIN!r}")
    head, rest = text.split(BEGIN)
    tail = rest.split(END)[1]
    return f"{head}{BEGIN}\n{block}{END}{tail}"


def block_of(text: str, where: str) -> str:
    """What lies between the markers of ``text`` (as :func:`replace_block` writes it)."""
    replace_block(text, "", where)  # validates the markers
    return text.split(BEGIN)[1].split(END)[0].removeprefix("\n")


#: Each generated file, and the function rendering its block.
TARGETS: dict[Path, Callable[[dict[str, Any]], str]] = {
    README: render_readme,
    RESULTS_MD: render_results,
}


def load_results(path: Path = RESULTS_JSON) -> dict[str, Any]:
    """The stored runs (``{"idle": ..., "loaded": ...}``), or none."""
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def store(mode: str, raw: dict[str, Any], path: Path = RESULTS_JSON) -> None:
    """Keep ``raw`` as the ``mode`` run in ``path``, the other run untouched."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    results = load_results(path)
    results[mode] = raw
    path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


def write_all(results: dict[str, Any]) -> list[Path]:
    """Rewrite the generated blocks of README.md and RESULTS.md; the files changed."""
    changed = []
    for path, render in TARGETS.items():
        text = path.read_text(encoding="utf-8")
        new = replace_block(text, render(results), str(path.relative_to(ROOT)))
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def main() -> None:
    """Re-render README.md's and RESULTS.md's generated blocks from bench/results.json."""
    changed = write_all(load_results())
    names = ", ".join(str(p.relative_to(ROOT)) for p in changed) or "nothing (up to date)"
    print(f"rewrote {names}", file=sys.stderr)


if __name__ == "__main__":
    main()
