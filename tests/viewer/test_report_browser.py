"""The report in a real headless Chromium: every chart drew, no console error, the values
under the mouse are the logged ones, the controls change what is drawn, and nothing a run
holds can run as script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trackmux
from _browser import Page
from _viewer_support import invoke, make_run

pytestmark = [pytest.mark.usefixtures("isolated_env"), pytest.mark.slow]

#: The viewer's first two run colours (#1f77b4, #ff7f0e).
COLORS = [(31, 119, 180), (255, 127, 14)]

#: Per chart and per run colour, how many pixels of the canvas have (nearly) that colour.
COUNT_PIXELS = """
(() => {
  const colors = COLORS;
  const out = {};
  for (const [name, chart] of window.trackmux.charts) {
    const canvas = chart.u.root.querySelector("canvas");
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const counts = colors.map(() => 0);
    for (let i = 0; i < data.length; i += 4) {
      colors.forEach(([r, g, b], k) => {
        if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 60
            && data[i + 3] > 200) counts[k]++;
      });
    }
    out[name] = counts;
  }
  return out;
})()
""".replace("COLORS", json.dumps(COLORS))


def hover(page: Page, metric: str, x: float) -> list[str]:
    """Move the mouse over ``metric``'s chart at x value ``x``; the legend's values then
    (the x value first, then one per run)."""
    position = page.evaluate(f"""(() => {{
        const chart = window.trackmux.charts.get({json.dumps(metric)});
        chart.box.scrollIntoView({{block: "center"}});
        const u = chart.u, rect = u.over.getBoundingClientRect();
        const left = Math.min(Math.max(u.valToPos({x}, "x"), 0.5), rect.width - 0.5);
        return [rect.left + left, rect.top + rect.height / 2];  // the edges are inside
    }})()""")
    page.mouse_move(*position)
    legend = f"""[...window.trackmux.charts.get({json.dumps(metric)}).u.root
        .querySelectorAll(".u-legend .u-series .u-value")].map(e => e.textContent)"""
    page.wait_for(f"{legend}[0] !== '\\u2013'", timeout=10)  # the legend follows on the next frame
    return page.evaluate(legend)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_a_report_of_two_demo_runs_draws_every_chart(
        data_dir: Path, tmp_path: Path, page: Page, screenshots: Path) -> None:
    for project, steps in (("alpha", "150"), ("beta", "110")):  # (same seed: other lengths)
        assert invoke(data_dir, "demo", "--steps", steps, "--project", project).exit_code == 0
    out = tmp_path / "report.html"
    result = invoke(data_dir, "report", "-o", str(out))
    assert result.exit_code == 0, result.output

    page.open(out.as_uri())
    shot = page.screenshot(screenshots / "report-two-demo-runs.png")
    print(f"screenshot: {shot}")
    assert page.errors() == []
    pixels = page.evaluate(COUNT_PIXELS)
    assert sorted(pixels) == ["eval/loss", "lr", "train/accuracy", "train/loss"]
    for name, (first, second) in pixels.items():
        assert first > 30 and second > 30, f"{name}: a run's line is missing: {pixels}"
    texts = page.evaluate("document.body.innerText")
    assert "alpha" in texts and "beta" in texts
    assert "null 150/150" in texts and "null 110/110" in texts
    assert texts.count("demo-model (model)") == 2 and "→ null" in texts
    assert page.evaluate("[...document.querySelectorAll('table.config tr.differs th')]"
                         ".map(e => e.textContent)") == ["project_name", "extra.steps"]


def test_the_legend_shows_the_logged_values_under_the_mouse(
        data_dir: Path, tmp_path: Path, page: Page) -> None:
    first = [{"loss": round(1 / (s + 1), 5), "acc": round(s / 100, 3)} for s in range(100)]
    second = [{"loss": round(2 / (s + 1) + 0.5, 5)} for s in range(100)]
    runs = [make_run(data_dir, first, name="one"), make_run(data_dir, second, name="two")]
    out = trackmux.report(runs, tmp_path / "r.html", data_dir=data_dir)
    page.open(out.as_uri())
    for step in (3, 42, 99):
        x, one, two = hover(page, "loss", step)
        assert (int(x), float(one), float(two)) == (step, first[step]["loss"],
                                                    second[step]["loss"])
    x, acc = hover(page, "acc", 57)
    assert (int(x), float(acc)) == (57, first[57]["acc"])
    assert page.errors() == []


def test_controls_smooth_rescale_and_sort(data_dir: Path, tmp_path: Path, page: Page,
                                          screenshots: Path) -> None:
    values = [float(v) for v in (5, 1, 4, 2, 3, 9, 1, 1, 2, 7)]
    runs = [make_run(data_dir, [{"loss": v} for v in values], name="a"),
            make_run(data_dir, [{"loss": v / 2} for v in values], name="b")]
    page.open(trackmux.report(runs, tmp_path / "r.html", data_dir=data_dir).as_uri())

    page.evaluate("""(() => { const s = document.getElementById("smoothing");
        s.value = "0.6"; s.dispatchEvent(new Event("input")); })()""")
    last, debias = 0.0, 0.0
    for n, value in enumerate(values, 1):  # TensorBoard's debiased EMA
        last = last * 0.6 + 0.4 * value
        debias = last / (1 - 0.6 ** n)
    _, a, b = hover(page, "loss", 9)
    assert float(a) == pytest.approx(debias, rel=1e-5)
    assert float(b) == pytest.approx(debias / 2, rel=1e-5)

    page.evaluate("document.getElementById('log').click()")
    assert page.evaluate("window.trackmux.charts.get('loss').u.scales.y.distr") == 3
    page.evaluate("""(() => { const s = document.getElementById("xmode");
        s.value = "relative"; s.dispatchEvent(new Event("change")); })()""")
    assert page.evaluate("window.trackmux.charts.get('loss').u.series[0].label") \
        == "time since start"
    assert max(page.evaluate(COUNT_PIXELS)["loss"]) > 5  # (logged within milliseconds)

    page.evaluate("document.querySelector('table.summary th[data-key=last]').click()")
    order = page.evaluate("""[...document.querySelectorAll('table.summary tbody tr')]
        .map(r => r.dataset.run)""")
    assert order == [runs[1], runs[0]]  # last 3.5 before 7
    page.screenshot(screenshots / "report-controls.png")
    assert page.errors() == []


def test_nothing_a_run_holds_runs_as_script(data_dir: Path, tmp_path: Path,
                                            page: Page) -> None:
    markup = '<img src=x onerror="window.pwned=1"></script><script>window.pwned=2</script>'
    run = make_run(data_dir, [{"loss": 1.0, markup[:200]: 2.0}], name=markup,
                   project_name="p", extra={"note": markup})
    page.open(trackmux.report([run], tmp_path / "r.html", data_dir=data_dir,
                              title=markup).as_uri())
    assert page.evaluate("window.pwned === undefined")
    assert page.evaluate("document.querySelectorAll('#app img').length") == 0
    assert markup in page.evaluate("document.body.innerText")
    assert page.errors() == []
