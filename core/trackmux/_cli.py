"""The ``trackmux`` command: plugins, a demo run, and views of the local journal.

::

    trackmux plugins                 installed trackers and wrapper plugins
    trackmux plugins --check NAME    run the conformance suite against tracker NAME
    trackmux demo                    a simulated training run (offline by default)
    trackmux runs                    every run in the local journal
    trackmux show RUN                one run: config, delivery, per-metric statistics
    trackmux compare RUN RUN...      differing config and metrics side by side
    trackmux report [RUN...]         one self-contained HTML file comparing runs
    trackmux ui                      a local, read-only viewer of the runs, live

``runs``, ``show`` and ``compare`` read the journal (``<data dir>/journal``), so they work
offline whatever trackers the runs went to. Every listing takes ``--json``.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import attrs
import click
from rich import box
from rich.table import Table
from trackmux_spec import TrackmuxError, TrainingConfig

if TYPE_CHECKING:
    from rich.console import Console

from . import __version__
from ._config import load_settings
from ._output import command, terminal_width
from ._output import console as _console
from ._output import echo_json as _echo_json
from ._output import json_option as _json_option
from ._runs import (
    ArtifactInfo,
    MetricStats,
    RunInfo,
    config_values,
    differing_keys,
    journal_root,
    json_safe,
    list_artifacts,
    list_runs,
    load_run,
    metric_stats,
    run_series,
)
from ._series import Series, sparkline

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])

#: The demo sleeps at most this long in total, so that it finishes in a couple of seconds.
_DEMO_SLEEP_BUDGET = 1.0


class _State:
    """What the group's options decided, resolved lazily."""

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir_option = data_dir
        self._data_dir: Path | None = None

    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            try:
                self._data_dir = load_settings(data_dir=self.data_dir_option).data_dir
            except ValueError as exc:  # an invalid trackmux.toml / pyproject.toml
                raise click.ClickException(str(exc)) from None
        return self._data_dir

    def command_prefix(self) -> str:
        """``trackmux`` plus ``--data-dir`` if it was given, for the hints we print."""
        return command()


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def _fmt(value: Any) -> str:
    """A metric or config value for a table cell."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.6g}"
    if isinstance(value, int | str):
        return str(value)
    return json.dumps(json_safe(value), ensure_ascii=False)


# -- the group --------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the journal and local trackers live. Default: TRACKMUX_DIR, then "
                   "data_dir in trackmux.toml / [tool.trackmux], then the per-user data "
                   "directory.")
@click.version_option(__version__, prog_name="trackmux")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None) -> None:
    """trackmux: one API for ML experiment tracking over many backends."""
    ctx.obj = _State(data_dir)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``trackmux`` script."""
    cli.main(args=None if argv is None else list(argv), prog_name="trackmux")


# -- plugins ------------------------------------------------------------------------------


@cli.command(short_help="List installed trackers and plugins.")
@_json_option
@click.option("--check", "check", metavar="NAME", default=None,
              help="Run the conformance suite against tracker NAME (needs trackmux[spec]); "
                   "exit status 1 if a test fails.")
@click.option("--setting", "settings", metavar="KEY=VALUE", multiple=True,
              help="With --check: a setting of the tracker, over its table in trackmux.toml "
                   "(repeatable; VALUE is read as TOML when it is one, else as text).")
@click.option("--credential", "credentials", metavar="KEY=VALUE", multiple=True,
              help="With --check: a credential connect() receives (repeatable; never "
                   "printed).")
def plugins(as_json: bool, check: str | None, settings: tuple[str, ...],
            credentials: tuple[str, ...]) -> None:
    """List the installed plugins: trackers and wrapper plugins, with their hooks.

    A plugin that fails to import or to register is listed as broken, with the reason; the
    others keep working.
    """
    from ._plugins import describe_plugins, get_plugin_manager

    if check is not None:
        from ._check import check_command

        check_command(check, as_json, settings, credentials)
        return
    if settings or credentials:
        _fail("--setting and --credential go with --check NAME")
    described = describe_plugins(get_plugin_manager())
    if as_json:
        _echo_json([p.to_dict() for p in described])
        return
    if not described:
        click.echo("No trackmux plugins are installed.")
        return
    click.echo(_plugins_text(described, _width()))


def _width() -> int | None:
    """The terminal's width; ``None`` (no wrapping) when the output is not a terminal."""
    return terminal_width()


def _plugins_text(described: Sequence[Any], width: int | None) -> str:
    """One line per plugin (name, kind, distribution), its hooks or the reason it is broken
    wrapped beneath: readable at any width, and piped."""
    import textwrap

    name_width = max(len(p.name) for p in described) + 2
    indent = " " * (name_width + 2)
    lines = []
    for p in described:
        kind = "broken" if p.broken else "tracker" if p.is_tracker else "wrapper"
        origin = " ".join(part for part in (p.distribution, p.version) if part) or "-"
        styled = click.style(f"{kind:<8}", fg="red" if p.broken else None, bold=bool(p.broken))
        lines.append(f"  {click.style(p.name.ljust(name_width), bold=True)}{styled} {origin}")
        detail = p.broken if p.broken else "hooks: " + ", ".join(p.hooks)
        if width is None:
            lines.append(indent + detail)
        else:
            lines.extend(textwrap.wrap(detail, width=width, initial_indent=indent,
                                       subsequent_indent=indent, break_on_hyphens=False))
    return "\n".join(lines)


# -- demo ---------------------------------------------------------------------------------


def _demo_metrics(step: int, steps: int, rng: random.Random) -> dict[str, float]:
    """A plausible training step: warmup + cosine LR, a decaying noisy loss, accuracy."""
    warmup = max(1, steps // 10)
    peak = 3e-4
    if step < warmup:
        lr = peak * (step + 1) / warmup
    else:
        progress = (step - warmup) / max(1, steps - warmup)
        lr = peak * 0.5 * (1 + math.cos(math.pi * progress))
    frac = step / max(1, steps - 1)
    loss = 0.25 + 2.2 * math.exp(-4.0 * frac) + rng.gauss(0, 0.04)
    accuracy = min(1.0, max(0.0, 0.97 - 0.85 * math.exp(-5.0 * frac) + rng.gauss(0, 0.01)))
    metrics = {"train/loss": round(loss, 5), "train/accuracy": round(accuracy, 5),
               "lr": lr}
    if (step + 1) % max(1, steps // 5) == 0 or step == steps - 1:
        metrics["eval/loss"] = round(loss + 0.05 + abs(rng.gauss(0, 0.02)), 5)
    return metrics


@cli.command(short_help="Simulate a training run (offline by default).")
@click.option("--steps", type=click.IntRange(min=1), default=200, show_default=True,
              help="Training steps to simulate (one record each).")
@click.option("--trackers", default=None,
              help="Comma list of trackers (default: TRACKMUX_TRACKERS, the config file, "
                   "then the offline tracker 'null').")
@click.option("--project", default="trackmux-demo", show_default=True, help="Project name.")
@click.pass_obj
def demo(state: _State, steps: int, trackers: str | None, project: str) -> None:
    """Simulate a training run: metrics every step, a model artifact at the end."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from ._api import Tracker

    console = _console()
    data_dir = state.data_dir
    rng = random.Random(0)
    pause = min(0.005, _DEMO_SLEEP_BUDGET / steps)
    config = TrainingConfig(
        project_name=project, name="demo", base_model="tiny-mlp", algorithm="lora", rank=8,
        alpha=16.0, dropout=0.05, learning_rate=3e-4, batch_size=32, num_epochs=1,
        tags=("demo",), extra={"steps": steps, "scheduler": "cosine", "seed": 0},
    )
    try:
        tracker = Tracker(trackers, data_dir=data_dir)
        with tracker:
            run = tracker.submit_job(config)
            with Progress(TextColumn("[bold]training[/] {task.fields[run]}"), BarColumn(),
                          MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                          TimeElapsedColumn(), console=console, transient=False) as progress:
                task = progress.add_task("train", total=steps, run=run, loss="-")
                for step in range(steps):
                    metrics = _demo_metrics(step, steps, rng)
                    tracker.log_metrics(run, metrics, step=step)
                    progress.update(task, advance=1, loss=f"{metrics['train/loss']:.4f}")
                    if pause:
                        time.sleep(pause)
            with tempfile.TemporaryDirectory(prefix="trackmux-demo-") as tmp:
                model = Path(tmp) / "model.json"
                weights = [round(rng.gauss(0, 0.1), 6) for _ in range(64)]
                model.write_text(json.dumps({"architecture": "tiny-mlp", "steps": steps,
                                             "weights": weights}))
                artifact = tracker.upload_artifact(
                    model, {"name": "demo-model", "type": "model", "steps": steps}, job_id=run)
            url = tracker.get_run_url(run)
            report = tracker.finish(run)
    except (TrackmuxError, ValueError, ConnectionError, RuntimeError, OSError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        raise click.Abort() from None

    cmd = state.command_prefix()
    console.print()
    console.print(f"[bold green]Run finished:[/] {run}", soft_wrap=True)
    console.print(f"  trackers:  {', '.join(tracker.trackers)} ({report})", soft_wrap=True)
    console.print(f"  run URL:   {url}", soft_wrap=True)
    console.print(f"  artifact:  {artifact}", soft_wrap=True)
    console.print(f"  data dir:  {tracker.settings.data_dir}", soft_wrap=True)
    console.print()
    console.print("Look at it with:", soft_wrap=True)
    console.print(f"  {cmd} show {run}", soft_wrap=True, markup=False)
    console.print(f"  {cmd} runs", soft_wrap=True, markup=False)
    console.print(f"  {cmd} compare {run} OTHER_RUN", soft_wrap=True, markup=False)
    console.print(f"  {cmd} report {run} -o report.html   (charts in one HTML file)",
                  soft_wrap=True, markup=False)
    console.print(f"  {cmd} ui   (a local viewer, live)", soft_wrap=True, markup=False)


# -- runs ---------------------------------------------------------------------------------


def _progress_text(run: RunInfo) -> str:
    if not run.trackers:
        return "-"
    parts = []
    for t in run.trackers:
        text = f"{t.name} {t.acknowledged}/{t.total}"
        if t.offline and t.pending:
            text += " pending (offline)"
        parts.append(text)
    return ", ".join(parts)


@cli.command(short_help="List the runs in the local journal.")
@_json_option
@click.pass_obj
def runs(state: _State, as_json: bool) -> None:
    """List the runs in the local journal (every run made here), newest last."""
    found, problems = list_runs(state.data_dir)
    for run_id, problem in problems:
        click.echo(f"warning: run {run_id} cannot be read: {problem}", err=True)
    if as_json:
        _echo_json([run.to_dict() for run in found])
        return
    console = _console()
    if not found:
        console.print(f"No runs in {journal_root(state.data_dir)} yet; "
                      f"`{state.command_prefix()} demo` makes one.", soft_wrap=True,
                      markup=False)
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
                  caption=f"journal: {journal_root(state.data_dir)}", caption_justify="left")
    table.add_column("Run", style="bold", no_wrap=True)
    table.add_column("Created", no_wrap=True)
    table.add_column("Name", overflow="fold")
    table.add_column("Project", overflow="fold")
    table.add_column("Records", justify="right")
    table.add_column("Status", no_wrap=True)
    table.add_column("Acked/total", overflow="fold")
    for run in found:
        table.add_row(run.run_id, run.created_local.strftime("%Y-%m-%d %H:%M"),
                      run.name or "-", run.project or "-", str(run.record_count), run.status,
                      _progress_text(run))
    console.print(table)


# -- show ---------------------------------------------------------------------------------


def _load(state: _State, ref: str) -> RunInfo:
    try:
        return load_run(state.data_dir, ref)
    except LookupError as exc:
        _fail(str(exc.args[0]) if exc.args else str(exc))


@cli.command(short_help="Show one run's config, delivery and metrics.")
@click.argument("run_ref", metavar="RUN")
@click.option("--metric", "metric_names", metavar="NAME", multiple=True,
              help="Only this metric (repeatable). A name without '/' also matches the "
                   "metrics it ends (loss: train/loss, eval/loss).")
@click.option("--plot", is_flag=True,
              help="Draw a line chart of each shown metric in the terminal.")
@_json_option
@click.pass_obj
def show(state: _State, run_ref: str, metric_names: tuple[str, ...], plot: bool,
         as_json: bool) -> None:
    """Show one run: config, trackers and delivery, per-metric count/last/min/max and a
    sparkline of each metric (--plot: a line chart).

    RUN is a run id or an unambiguous prefix of one.
    """
    run = _load(state, run_ref)
    series = run_series(run).series()
    if metric_names:
        series = {name: series[name] for name in _select_metrics(series, metric_names)}
    stats = {name: MetricStats(name, s.count, s.last, s.last_step, s.min, s.max)
             for name, s in series.items()}
    if as_json:
        data = run.to_dict()
        data["config"] = run.set_config()
        data["metrics"] = {name: s.to_dict() for name, s in stats.items()}
        data["artifacts"] = [a.to_dict() for a in list_artifacts(run)]
        _echo_json(data)
        return
    console = _console()
    if plot:
        _plot_metrics(console, run, series)
        return
    console.print(f"[bold]Run {run.run_id}[/]  {run.name or ''}", soft_wrap=True)
    console.print(f"  project:  {run.project or '-'}", soft_wrap=True)
    console.print(f"  created:  {run.created_local.strftime('%Y-%m-%d %H:%M:%S %Z')}"
                  f"{f' on {run.host}' if run.host else ''}", soft_wrap=True)
    console.print(f"  status:   {run.status}", soft_wrap=True)
    console.print(f"  records:  {run.record_count}", soft_wrap=True)

    config = config_values(run.config)
    if config:
        table = Table(title="Config", title_justify="left")
        table.add_column("Key", style="bold")
        table.add_column("Value")
        for key, value in config.items():
            table.add_row(key, _fmt(value))
        console.print(table)

    table = Table(title="Trackers", title_justify="left")
    table.add_column("Tracker", style="bold")
    table.add_column("Job id")
    table.add_column("Delivered", justify="right")
    table.add_column("Told final status")
    for t in run.trackers:
        table.add_row(t.name, t.job_id or "-", f"{t.acknowledged}/{t.total}",
                      "yes" if t.finished else "no")
    if not run.trackers:
        table.add_row("-", "-", "-", "-")
    console.print(table)

    artifacts = list_artifacts(run)
    if artifacts:
        console.print(_artifacts_table(artifacts))

    if stats:
        console.print(_metrics_table(stats, series))
    else:
        console.print("No metrics logged.")


def _size(size: int) -> str:
    """``1.2 GB``-style byte counts (powers of 1,000)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _artifacts_table(artifacts: Sequence[ArtifactInfo]) -> Table:
    table = Table(title="Artifacts", title_justify="left")
    table.add_column("Name", style="bold")
    table.add_column("Type")
    table.add_column("Size", justify="right")
    table.add_column("Files", justify="right")
    table.add_column("SHA-256")
    trackers = list(dict.fromkeys(name for a in artifacts for name in a.delivery))
    for name in trackers:
        table.add_column(name)
    for a in artifacts:
        states = [a.delivery.get(name, {}).get("state", "-") for name in trackers]
        table.add_row(a.id.split(":", 1)[1], a.type, _size(a.size), str(len(a.files)),
                      a.digest[:12], *states)
    return table


def _select_metrics(series: dict[str, Series], wanted: Sequence[str]) -> list[str]:
    """The metric names ``wanted`` picks: exact names, or a last path component."""
    chosen: list[str] = []
    for name in wanted:
        matches = [name] if name in series else [
            metric for metric in series if "/" not in name and metric.rsplit("/", 1)[-1] == name]
        if not matches:
            known = ", ".join(series) or "none"
            _fail(f"--metric: no metric {name!r} in this run (its metrics: {known})")
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def _plot_metrics(console: Console, run: RunInfo, series: dict[str, Series]) -> None:
    """One terminal line chart per metric (plotext, braille dots), x = step."""
    import plotext as plt

    drawn = {name: s for name, s in series.items() if s.points}
    if not drawn:
        console.print("No finite values to plot.")
        return
    width = min(160, terminal_width() or 100)  # piped: a fixed, readable width
    for name, s in drawn.items():
        plt.clear_figure()
        plt.theme("clear")
        plt.plotsize(width, max(12, min(24, width // 4)))
        plt.plot([p[0] for p in s.points], [p[2] for p in s.points], marker="braille")
        plt.title(f"{name}  ({run.run_id}{f', {run.name}' if run.name else ''})")
        plt.xlabel("step")
        chart = plt.build()
        if not console.is_terminal:
            chart = plt.uncolorize(chart)
        click.echo(chart)
        click.echo(f"  last {_fmt(s.last)} at step {_fmt(s.last_step)}   "
                   f"min {_fmt(s.min)} at step {_fmt(s.min_step)}   "
                   f"max {_fmt(s.max)} at step {_fmt(s.max_step)}   {s.count} values")


#: Characters per sparkline in ``trackmux show``.
_SPARK_WIDTH = 14


def _metrics_table(stats: dict[str, MetricStats],
                   series: dict[str, Series] | None = None) -> Table:
    table = Table(title="Metrics", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    table.add_column("Metric", style="bold", overflow="fold", min_width=14)
    for column in ("Count", "Last", "Min", "Max", "Step"):
        table.add_column(column, justify="right", no_wrap=True)
    if series is not None:
        table.add_column("Trend", no_wrap=True, min_width=_SPARK_WIDTH)
    for name, s in stats.items():
        cells = [name, str(s.count), _fmt(s.last), _fmt(s.min), _fmt(s.max),
                 _fmt(s.last_step)]
        if series is not None:
            cells.append(sparkline([p[2] for p in series[name].points], _SPARK_WIDTH))
        table.add_row(*cells)
    return table


# -- compare ------------------------------------------------------------------------------


@cli.command(short_help="Compare runs' config and metrics.")
@click.argument("run_refs", metavar="RUN RUN...", nargs=-1, required=True)
@_json_option
@click.pass_obj
def compare(state: _State, run_refs: tuple[str, ...], as_json: bool) -> None:
    """Compare runs: the config values that differ, and every metric's last/min/max."""
    found: list[RunInfo] = []
    for ref in run_refs:
        run = _load(state, ref)
        if all(run.run_id != other.run_id for other in found):
            found.append(run)
    if len(found) < 2:
        _fail("compare needs at least two different runs")
    configs = [config_values(run.config) for run in found]
    differing = differing_keys(configs)
    stats = [metric_stats(run) for run in found]
    metrics: list[str] = []
    for per_run in stats:
        metrics.extend(name for name in per_run if name not in metrics)
    ids = [run.run_id for run in found]

    if as_json:
        _echo_json({
            "runs": [run.to_dict() for run in found],
            "config": {key: {run_id: config.get(key) for run_id, config in zip(ids, configs,
                                                                            strict=True)}
                       for key in differing},
            "metrics": {name: {run_id: (s[name].to_dict() if name in s else None)
                               for run_id, s in zip(ids, stats, strict=True)}
                        for name in metrics},
        })
        return

    console = _console()
    table = Table(title="Config (differing values only)", title_justify="left")
    table.add_column("Key", style="bold")
    for run in found:
        table.add_column(run.run_id + (f"\n{run.name}" if run.name else ""))
    for key in differing:
        table.add_row(key, *(_fmt(config[key]) if key in config else "(unset)"
                             for config in configs))
    if differing:
        console.print(table)
    else:
        console.print("The runs have the same config.")

    if not metrics:
        console.print("No metrics logged.")
        return
    table = Table(title="Metrics", title_justify="left")
    table.add_column("Metric", style="bold")
    table.add_column("")
    for run in found:
        table.add_column(run.run_id, justify="right")
    for name in metrics:
        for index, stat in enumerate(("last", "min", "max")):
            cells = [_fmt(getattr(s[name], stat)) if name in s else "-" for s in stats]
            table.add_row(name if index == 0 else "", stat, *cells,
                          end_section=stat == "max")
    console.print(table)


# -- report -------------------------------------------------------------------------------


def _selection_options(func: F) -> F:
    """The options that pick runs, shared by ``report`` and ``ui``."""
    func = click.option("--tag", "tags", metavar="TAG", multiple=True,
                        help="Only runs carrying this tag (repeatable: every one).")(func)
    func = click.option("--where", "where", metavar="KEY=VALUE", multiple=True,
                        help="Only runs whose config has KEY=VALUE, keys as `show` prints "
                             "them: algorithm=lora, extra.seed=0 (repeatable: every one).")(func)
    func = click.option("--last", type=click.IntRange(min=1), default=None, metavar="N",
                        help="Only the newest N of the chosen runs.")(func)
    return click.option("--project", default=None, help="Only runs of this project.")(func)


@cli.command(short_help="Write an HTML report comparing runs (one file, works offline).")
@click.argument("run_refs", metavar="[RUN...]", nargs=-1)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("report.html"), show_default=True, help="The file to write.")
@click.option("--title", default=None, help="The report's title.")
@_selection_options
@click.pass_obj
def report(state: _State, run_refs: tuple[str, ...], output: Path, title: str | None,
           project: str | None, last: int | None, where: tuple[str, ...],
           tags: tuple[str, ...]) -> None:
    """Write one self-contained HTML file comparing RUNs (default: every run, narrowed by
    the options): a chart per metric with the runs overlaid (step, wall or relative time;
    smoothing, log scale, zoom), their config with differing keys highlighted, a sortable
    summary (last/min/max, best step), tags, state, duration, artifacts and delivery per
    tracker. It needs no network and no server: attach it to a pull request or an email.
    """
    from ._report import report_html, select_runs

    try:
        chosen = select_runs(state.data_dir, run_refs, project=project, where=where,
                             tags=tags, last=last)
    except (LookupError, ValueError) as exc:
        _fail(str(exc.args[0]) if exc.args else str(exc))
    if not chosen:
        _fail(f"no run in {journal_root(state.data_dir)} matches; `{state.command_prefix()} "
              f"runs` lists them")
    started = time.perf_counter()
    page = report_html(chosen, title=title)
    try:
        output.write_text(page, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write the report to {output}: {exc.strerror or exc}")
    size = len(page.encode("utf-8"))
    click.echo(f"Wrote {output} ({len(chosen)} run{'s' if len(chosen) != 1 else ''}, "
               f"{size / 1e6:.1f} MB, {time.perf_counter() - started:.1f} s): open it in a "
               f"browser; it needs no network.")


# -- ui -----------------------------------------------------------------------------------


@cli.command(short_help="A local, read-only viewer of the runs, updating live.")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="The port to listen on (default 8777; 0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on. Anything but a loopback address makes your "
                   "runs readable from other machines.")
@click.pass_obj
def ui(state: _State, port: int | None, host: str) -> None:
    """Serve a viewer of the runs in the data directory on http://127.0.0.1:8777/: the
    report's charts and tables, for any runs you tick, and runs still training update live
    (the page polls the journal). Read-only. Ctrl-C stops it."""
    from ._ui import DEFAULT_PORT, ViewerServer, is_loopback

    try:
        server = ViewerServer(state.data_dir, host, DEFAULT_PORT if port is None else port)
    except OSError as exc:
        hint = "; --port 0 takes any free port" if port is None else ""
        _fail(f"cannot listen on {host}:{DEFAULT_PORT if port is None else port}: "
              f"{exc.strerror or exc}{hint}")
    try:  # from here on, Ctrl-C (even before serving starts) stops it cleanly
        if not is_loopback(host):
            click.echo(f"warning: listening on {host}: anyone who can reach this machine "
                       f"can read your runs", err=True)
        click.echo(f"trackmux ui: {server.url}  (data: {state.data_dir}; Ctrl-C stops it)")
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# -- artifacts ----------------------------------------------------------------------------


@cli.group(short_help="Download a run's artifacts.")
def artifacts() -> None:
    """A run's artifacts: `trackmux show RUN` lists them with their delivery state."""


@artifacts.command(short_help="Download an artifact and verify it.")
@click.argument("run_ref", metavar="RUN")
@click.argument("name", metavar="NAME")
@click.option("-o", "--output", "output", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="The directory to write into.")
@click.option("--tracker", "tracker_name", default=None,
              help="Download through this tracker (credentials from its environment) instead "
                   "of from the local store.")
@_json_option
@click.pass_obj
def download(state: _State, run_ref: str, name: str, output: Path,
             tracker_name: str | None, as_json: bool) -> None:
    """Write artifact NAME of RUN into the output directory, every file checked against the
    SHA-256 the journal recorded. NAME is the artifact's name (the latest of that name) or
    its id. By default the bytes come from the local store, so this works offline and
    before any tracker holds the artifact."""
    from ._artifacts import ArtifactStore, restore

    run = _load(state, run_ref)
    found = [a for a in list_artifacts(run) if name in (a.name, a.id, a.id.split(":", 1)[1])]
    if not found:
        known = ", ".join(dict.fromkeys(a.name for a in list_artifacts(run))) or "none"
        _fail(f"run {run.run_id} has no artifact {name!r} (its artifacts: {known})")
    artifact = found[-1]
    try:
        if tracker_name is None:
            path = restore(ArtifactStore(state.data_dir), artifact.entry, output)
        else:
            path = _download_through(state, artifact, output, tracker_name)
    except (TrackmuxError, ValueError, ConnectionError, RuntimeError, OSError) as exc:
        _fail(str(exc))
    if as_json:
        _echo_json({**artifact.to_dict(), "path": str(path), "verified": True})
        return
    _console().print(f"{artifact.id}: {len(artifact.files)} file(s), {_size(artifact.size)}, "
                     f"verified → {path}", soft_wrap=True)


def _download_through(state: _State, artifact: ArtifactInfo, output: Path,
                      tracker_name: str) -> Path:
    """Download through a tracker, then check every file against the journal's SHA-256."""
    import hashlib

    import trackmux

    with trackmux.Tracker([tracker_name], data_dir=state.data_dir) as tracker:
        path = tracker.download_artifact(artifact.id, output, tracker=tracker_name)
    root = output.resolve()
    for item in artifact.files:
        written = path if artifact.entry["kind"] == "file" else root / item["path"]
        digest = hashlib.sha256()
        with open(written, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != item["sha256"]:
            raise RuntimeError(f"{item['path']!r} from {tracker_name} differs from the "
                               f"journal's SHA-256")
    return Path(path)


# -- sync ---------------------------------------------------------------------------------


@cli.command(short_help="Deliver what a tracker never acknowledged.")
@click.argument("run_refs", metavar="[RUN...]", nargs=-1)
@click.option("--tracker", "tracker_name", required=True,
              help="The tracker to deliver to (credentials from its environment, e.g. "
                   "WANDB_API_KEY).")
@click.option("--all", "every", is_flag=True,
              help="Without RUN: every run the tracker lacks, not only those meant for it.")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; send nothing.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before sending.")
@click.option("--timeout", type=float, default=None,
              help="Seconds to wait per run before leaving it incomplete.")
@_json_option
@click.pass_obj
def sync(state: _State, run_refs: tuple[str, ...], tracker_name: str, every: bool,
         dry_run: bool, yes: bool, timeout: float | None, as_json: bool) -> None:
    """Send every record of RUN that TRACKER never acknowledged, exactly once: from a
    crashed process, an offline run (WANDB_MODE=offline) or a long outage. Syncing twice
    changes nothing.

    Without RUN: the runs that were meant for TRACKER (their tracker list named it, or
    WANDB_MODE=offline kept them) and that it lacks; --all takes every run it lacks. The
    runs are listed and, unless --yes, confirmed before anything is sent.
    """
    from ._sync import pending_records, pending_runs

    named = bool(run_refs)
    if named:
        run_ids = [_load(state, ref).run_id for ref in run_refs]
    else:
        run_ids = pending_runs(state.data_dir, tracker_name, meant_only=not every)
    plan = [(_load(state, run_id), pending_records(state.data_dir, run_id, tracker_name))
            for run_id in run_ids]
    console = _console()
    if not plan:
        _nothing_to_sync(state, tracker_name, every, as_json)
        return
    if dry_run or not named:
        if as_json and dry_run:
            _echo_json({"tracker": tracker_name, "dry_run": True,
                        "runs": [{**run.to_dict(), "records_to_send": records}
                                 for run, records in plan]})
            return
        _print_plan(console if not as_json else _console_err(), tracker_name, plan, dry_run)
        if dry_run:
            return
        if not yes:
            _confirm(f"Send {len(plan)} run{'s' if len(plan) != 1 else ''} to {tracker_name}?")
    _run_sync(state, console, tracker_name, [run.run_id for run, _ in plan], timeout, as_json)


def _console_err() -> Any:
    from rich.console import Console

    return Console(highlight=False, stderr=True, soft_wrap=True)


def _nothing_to_sync(state: _State, tracker: str, every: bool, as_json: bool) -> None:
    from ._sync import pending_runs

    if as_json:
        _echo_json({"tracker": tracker, "runs": []})
        return
    others = [] if every else pending_runs(state.data_dir, tracker)
    click.echo(f"Nothing to sync: {tracker} holds every run meant for it.")
    if others:
        click.echo(f"{len(others)} other run{'s' if len(others) != 1 else ''} "
                   f"{'were' if len(others) != 1 else 'was'} not meant for {tracker}; "
                   f"send {'them' if len(others) != 1 else 'it'} with: "
                   f"{command('sync', '--tracker', tracker, '--all')}")


def _print_plan(console: Any, tracker: str, plan: list[tuple[RunInfo, int]],
                dry_run: bool) -> None:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
                  title=f"{'Would send' if dry_run else 'To send'} to {tracker}",
                  title_justify="left")
    table.add_column("Run", style="bold", no_wrap=True)
    table.add_column("Name")
    table.add_column("Project")
    table.add_column("Status", no_wrap=True)
    table.add_column("Records to send", justify="right")
    for run, records in plan:
        table.add_row(run.run_id, run.name or "-", run.project or "-", run.status, str(records))
    console.print(table)
    if dry_run:
        console.print("Dry run: nothing was sent.")


def _confirm(question: str) -> None:
    try:
        answer = click.confirm(question, default=False, err=True)
    except click.Abort:  # no answer: end of input
        answer = False
    if not answer:
        _fail("nothing was sent: answer y at the prompt, or pass --yes to send without asking")


def _run_sync(state: _State, console: Any, tracker: str, run_ids: list[str],
              timeout: float | None, as_json: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ._sync import sync as sync_runs

    bar_console = _console_err() if as_json else console
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=bar_console, transient=False, disable=as_json) as bar:
        tasks: dict[str, Any] = {}

        def progress(run_id: str, delivered: int, total: int) -> None:
            if run_id not in tasks:
                tasks[run_id] = bar.add_task(f"{run_id} → {tracker}", total=total)
            bar.update(tasks[run_id], completed=delivered, total=total)

        try:
            report = sync_runs(run_ids, tracker=tracker, data_dir=state.data_dir,
                               timeout=timeout, progress=progress)
        except (ValueError, ConnectionError, LookupError) as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            bar.stop()
            click.echo(
                f"Interrupted. What {tracker} acknowledged is recorded and stays sent; the "
                f"rest waits in the journal: `{state.command_prefix()} sync --tracker "
                f"{tracker}` sends it (nothing is sent twice).", err=True)
            raise SystemExit(130) from None
    if as_json:
        _echo_json({"tracker": tracker, "ok": report.ok,
                    "runs": [attrs.asdict(run) for run in report.runs]})
    else:
        for run in report.runs:
            line = f"{run.run_id}: {run.state}, {run.delivered} records sent"
            line += f" ({run.already} already there, {run.total} in all)"
            if run.artifacts_delivered or run.artifacts_pending:
                line += f", {run.artifacts_delivered} artifact(s) sent"
                if run.artifacts_pending:
                    line += f", {run.artifacts_pending} still missing"
            if run.error:
                line += f" - {run.error}"
            console.print(line, markup=False)
    if not report.ok:
        raise SystemExit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
