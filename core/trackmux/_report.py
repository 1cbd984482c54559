"""``trackmux report``: one self-contained HTML file comparing runs, that opens with no network.

The page is built from the journal only (:mod:`trackmux._runs`, :mod:`trackmux._series`): per
run its config, tags, state, duration, artifacts, delivery per tracker and, per metric, the
statistics and a min/max-downsampled curve. The data is JSON, gzip-compressed and base64'd
into the page; the charting library (uPlot, MIT, shipped in ``trackmux/web``) and the viewer's
own script and style are inlined beside it. ``trackmux ui`` serves the same page and script
with the data fetched from the local server instead (:mod:`trackmux._ui`).
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from ._config import load_settings
from ._runs import (
    RunInfo,
    config_values,
    differing_keys,
    journal_root,
    json_safe,
    list_artifacts,
    list_runs,
    load_run,
    run_series,
)
from ._series import DEFAULT_BUCKETS, SeriesBuilder, higher_is_better

__all__ = ["WEB_ASSETS", "page_html", "report", "report_html", "report_payload",
           "run_payload", "select_runs", "web_asset"]

#: The files of ``trackmux/web`` a page may load (the ui serves exactly these).
WEB_ASSETS = {
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "uPlot.LICENSE": "text/plain; charset=utf-8",
    "viewer.js": "text/javascript; charset=utf-8",
    "viewer.css": "text/css; charset=utf-8",
}


def web_asset(name: str) -> str:
    """The text of one of :data:`WEB_ASSETS` (``KeyError`` for any other name)."""
    if name not in WEB_ASSETS:
        raise KeyError(name)
    return resources.files("trackmux").joinpath("web", name).read_text(encoding="utf-8")


# -- choosing runs ------------------------------------------------------------------------


def _parse_where(items: Iterable[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--where must be KEY=VALUE (a config key such as "
                             f"algorithm=lora or extra.seed=0), got {item!r}")
        pairs.append((key.strip(), value.strip()))
    return pairs


def _config_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value
    return json.dumps(json_safe(value), ensure_ascii=False)


def _matches(run: RunInfo, project: str | None, where: list[tuple[str, str]],
             tags: Sequence[str]) -> bool:
    if project is not None and run.project != project:
        return False
    config = config_values(run.config)
    for key, value in where:
        if key not in config or _config_text(config[key]) != value:
            return False
    run_tags = {str(t) for t in run.config.get("tags") or ()}
    return all(tag in run_tags for tag in tags)


def select_runs(data_dir: Path, refs: Sequence[str] = (), *, project: str | None = None,
                where: Iterable[str] = (), tags: Sequence[str] = (),
                last: int | None = None) -> list[RunInfo]:
    """The runs a report shows, oldest first.

    ``refs`` (run ids or unambiguous prefixes) pick runs; without them, every run of the
    journal. Then only runs of ``project``, whose config has every ``where`` ``KEY=VALUE``
    (keys as ``trackmux show`` prints them: ``algorithm``, ``extra.seed``) and every tag
    of ``tags`` are kept, and of those the newest ``last``.

    :raises LookupError: a ref names no run (or several).
    :raises ValueError: a malformed ``where`` item or ``last`` below 1.
    """
    conditions = _parse_where(where)
    if last is not None and last < 1:
        raise ValueError(f"last must be at least 1, got {last!r}")
    if refs:
        found: list[RunInfo] = []
        for ref in refs:
            run = load_run(data_dir, ref)
            if all(run.run_id != other.run_id for other in found):
                found.append(run)
    else:
        found, _ = list_runs(data_dir)
    chosen = [run for run in found if _matches(run, project, conditions, tags)]
    return chosen[-last:] if last is not None else chosen


# -- the data -----------------------------------------------------------------------------


def _artifacts(run: RunInfo) -> list[dict[str, Any]]:
    """The run's artifacts from the journal: name, type, size, file count, digest and which
    trackers hold each (local paths are left out: a report travels)."""
    return [json_safe({
        "name": a.name, "type": a.type, "size": a.size, "files": len(a.files),
        "digest": a.digest,
        "delivered": [name for name, mark in a.delivery.items()
                      if mark.get("state") == "delivered"],
    }) for a in list_artifacts(run)]


def _chart_value(value: float) -> float:
    """A value as charts draw it: 7 significant digits (the legend shows 6; the summary's
    last/min/max stay exact), which halves the size of a report of noisy floats."""
    return value if isinstance(value, int) else float(f"{value:.7g}")


def run_payload(run: RunInfo, builder: SeriesBuilder | None = None,
                buckets: int = DEFAULT_BUCKETS) -> dict[str, Any]:
    """What the viewer needs of one run: its facts, config and every metric's statistics and
    downsampled curve (steps, seconds since the run was created, values).

    ``builder``: the run's records already read (``trackmux ui`` keeps one per run and
    feeds it what a live run appends); by default they are read now.
    """
    if builder is None:
        builder = run_series(run, buckets)
    created = run.created
    metrics: dict[str, Any] = {}
    for name, s in builder.series().items():
        metrics[name] = {
            **json_safe({"count": s.count, "last": s.last, "last_step": s.last_step,
                         "min": s.min, "min_step": s.min_step, "max": s.max,
                         "max_step": s.max_step}),
            "higher_is_better": higher_is_better(name), "best_step": s.best_step,
            # kept points are finite: no json_safe pass over them
            "step": [p[0] for p in s.points],
            "t": [round(p[1] - created, 3) for p in s.points],
            "v": [_chart_value(p[2]) for p in s.points],
        }
    end = builder.last_timestamp
    return {
        "id": run.run_id,
        "name": run.name,
        "project": run.project,
        "status": run.status,
        "created": created,
        "duration": None if end is None else round(max(0.0, end - created), 3),
        "records": max(run.record_count, builder.record_count),
        "host": run.host,
        "tags": [str(t) for t in run.config.get("tags") or ()],
        "config": json_safe(config_values(run.config)),
        "trackers": [t.to_dict() for t in run.trackers],
        "artifacts": _artifacts(run),
        "metrics": metrics,
    }


def report_payload(runs: Sequence[RunInfo], *, title: str,
                   payloads: Sequence[dict[str, Any]] | None = None,
                   buckets: int = DEFAULT_BUCKETS) -> dict[str, Any]:
    """The whole page's data: every run's payload (given, or read now) and the config keys
    that differ."""
    from . import __version__

    return {
        "title": title,
        "generated": time.time(),
        "version": __version__,
        "differing": differing_keys([config_values(run.config) for run in runs]),
        "runs": list(payloads) if payloads is not None else [run_payload(run, None, buckets)
                                                             for run in runs],
    }


def _encode(payload: Mapping[str, Any]) -> str:
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return base64.b64encode(gzip.compress(text.encode("utf-8"), 6, mtime=0)).decode("ascii")


def page_html(*, title: str, data: str | None, inline: bool) -> str:
    """The viewer page: with ``data`` (base64 gzip JSON) and every asset inlined for a
    report, or, for ``trackmux ui``, linking ``/static/...`` and fetching ``/api/...``."""
    if inline:
        styles = "".join(f"<style>{web_asset(n)}</style>" for n in ("uPlot.min.css",
                                                                    "viewer.css"))
        scripts = "".join(f"<script>{_script_safe(web_asset(n))}</script>"
                          for n in ("uPlot.iife.min.js", "viewer.js"))
    else:
        styles = "".join(f'<link rel="stylesheet" href="/static/{n}">'
                         for n in ("uPlot.min.css", "viewer.css"))
        scripts = "".join(f'<script src="/static/{n}"></script>'
                          for n in ("uPlot.iife.min.js", "viewer.js"))
    from . import __version__

    payload = ("" if data is None else
               f'<script id="trackmux-data" type="application/x-trackmux+gzip;base64">'
               f"{data}</script>")
    mode = "report" if inline else "live"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="trackmux {html.escape(__version__)}">'
        '<link rel="icon" href="data:,">'
        f"<title>{html.escape(title)}</title>{styles}</head>"
        f'<body data-mode="{mode}"><div id="app"><p class="loading">Loading…</p></div>'
        f"{payload}{scripts}"
        "<!-- uPlot (c) Leon Sorokin, MIT License: see uPlot.LICENSE in trackmux/web -->"
        "</body></html>\n"
    )


def _script_safe(source: str) -> str:
    # An inlined script ends at the first "</script"; the shipped files hold none, but make
    # sure a future version cannot break the page.
    return source.replace("</script", "<\\/script")


def report_html(runs: Sequence[RunInfo], *, title: str | None = None,
                buckets: int = DEFAULT_BUCKETS) -> str:
    """The report of ``runs`` as one self-contained HTML page."""
    if not runs:
        raise ValueError("a report needs at least one run")
    if title is None:
        title = (f"trackmux report: {runs[0].name or runs[0].run_id}" if len(runs) == 1
                 else f"trackmux report: {len(runs)} runs")
    payload = report_payload(runs, title=title, buckets=buckets)
    return page_html(title=title, data=_encode(payload), inline=True)


def report(runs: Sequence[str] = (), output: str | Path = "report.html", *,
           project: str | None = None, where: Iterable[str] = (), tags: Sequence[str] = (),
           last: int | None = None, title: str | None = None,
           data_dir: str | Path | None = None) -> Path:
    """Write a self-contained HTML report comparing runs and return its path.

    :param runs: run ids or unambiguous prefixes; none: every run of the journal, narrowed
        by the other arguments (see :func:`select_runs`).
    :param output: the file to write (its directory must exist).
    :param project: only runs of this project.
    :param where: ``KEY=VALUE`` config conditions, e.g. ``["algorithm=lora"]``.
    :param tags: only runs carrying every one of these tags.
    :param last: only the newest ``last`` of the chosen runs.
    :param title: the page's title.
    :param data_dir: the data directory (default: as the trackers find it).
    :raises LookupError: a run that does not exist, or no run matching.
    """
    directory = load_settings(data_dir=Path(data_dir) if data_dir else None).data_dir
    chosen = select_runs(directory, runs, project=project, where=where, tags=tags, last=last)
    if not chosen:
        raise LookupError(f"no run in the journal at {journal_root(directory)} matches")
    page = report_html(chosen, title=title)
    path = Path(output)
    path.write_text(page, encoding="utf-8")
    return path
