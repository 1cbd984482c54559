/* trackmux viewer: the page of `trackmux report` (data inlined) and `trackmux ui` (data
 * from the local server, polled for live runs). Charts are uPlot, one per metric, with the
 * runs overlaid. Every text that comes from a run is set through textContent, never HTML. */
(function () {
  "use strict";

  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const POLL_MS = 1500;
  const X_LABELS = { step: "step", relative: "time since start", wall: "wall time" };

  const state = {
    mode: document.body.dataset.mode || "report",
    title: document.title,
    runs: [],
    differing: [],
    colors: new Map(),
    xmode: "step",
    smoothing: 0,
    log: false,
    onlyDiff: true,
    sort: { key: "metric", dir: 1 },
    charts: new Map(),
    available: [],
    selected: [],
  };

  // -- small helpers ----------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child == null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fmtNum(v) {
    if (v == null) return "–";
    if (typeof v === "string") return v; // "NaN", "Infinity", "-Infinity"
    if (typeof v === "boolean") return String(v);
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-4 || a >= 1e7)) return v.toExponential(5).replace(/\.?0+e/, "e");
    return String(Number(v.toPrecision(6)));
  }

  function fmtValue(v) {
    if (v == null) return "–";
    if (typeof v === "number" || typeof v === "string") return fmtNum(v);
    return JSON.stringify(v);
  }

  function fmtDuration(s) {
    if (s == null) return "–";
    if (s < 60) return s.toFixed(1) + " s";
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
    return h ? `${h} h ${String(m).padStart(2, "0")} min` : `${m} min ${String(sec).padStart(2, "0")} s`;
  }

  function fmtDate(epoch) {
    const d = new Date(epoch * 1000);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
  }

  function runLabel(run) {
    return run.name ? `${run.name} (${run.id})` : run.id;
  }

  function colorOf(run) {
    if (!state.colors.has(run.id)) {
      state.colors.set(run.id, PALETTE[state.colors.size % PALETTE.length]);
    }
    return state.colors.get(run.id);
  }

  async function decode(text) {
    // base64 and gzip decoded natively (a data: URL, then DecompressionStream): a JavaScript
    // loop over the characters of a report of several MB takes seconds
    const response = await fetch("data:application/octet-stream;base64," + text.trim());
    const stream = response.body.pipeThrough(new DecompressionStream("gzip"));
    return JSON.parse(await new Response(stream).text());
  }

  // -- curves -----------------------------------------------------------------------------

  /** TensorBoard's smoothing: an exponential moving average, debiased at the start. */
  function smooth(values, weight) {
    if (!weight) return values;
    const out = new Array(values.length);
    let last = 0, n = 0;
    for (let i = 0; i < values.length; i++) {
      last = last * weight + (1 - weight) * values[i];
      n++;
      out[i] = last / (1 - Math.pow(weight, n));
    }
    return out;
  }

  function curve(run, name) {
    const m = run.metrics[name];
    let xs = state.xmode === "step" ? m.step
      : state.xmode === "relative" ? m.t : m.t.map((t) => t + run.created);
    let ys = smooth(m.v, state.smoothing);
    let sorted = true;
    for (let i = 1; i < xs.length; i++) if (xs[i] < xs[i - 1]) { sorted = false; break; }
    if (!sorted) { // steps that went back: draw in x order
      const order = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b] || a - b);
      xs = order.map((i) => xs[i]);
      ys = order.map((i) => ys[i]);
    }
    if (state.log) ys = ys.map((v) => (v > 0 ? v : null));
    return [xs, ys];
  }

  function metricNames() {
    const names = [];
    for (const run of state.runs) {
      for (const name of Object.keys(run.metrics)) if (!names.includes(name)) names.push(name);
    }
    return names;
  }

  function chartData(name) {
    const runs = state.runs.filter((r) => r.metrics[name] && r.metrics[name].step.length);
    const tables = runs.map((r) => curve(r, name));
    if (!tables.length) return { runs, data: [[]] };
    return { runs, data: tables.length === 1 ? tables[0] : uPlot.join(tables) };
  }

  function xValueFormat() {
    if (state.xmode === "wall") return (u, v) => (v == null ? "–" : new Date(v * 1000).toLocaleString());
    if (state.xmode === "relative") return (u, v) => (v == null ? "–" : fmtDuration(v));
    return (u, v) => (v == null ? "–" : String(v));
  }

  function chartOptions(name, runs, width) {
    return {
      width, height: 240,
      scales: { x: { time: state.xmode === "wall" }, y: { distr: state.log ? 3 : 1 } },
      series: [
        { label: X_LABELS[state.xmode], value: xValueFormat() },
        ...runs.map((run) => ({
          label: runLabel(run), stroke: colorOf(run), width: 1.5, spanGaps: true,
          value: (u, v) => fmtNum(v),
        })),
      ],
      axes: [{ label: X_LABELS[state.xmode], labelSize: 18, size: 40 },
        { size: 64, values: (u, splits) => splits.map(fmtNum) }],
      cursor: { sync: { key: "trackmux" }, drag: { x: true, y: false } },
      legend: { live: true },
    };
  }

  function chartWidth(box) {
    return Math.max(280, Math.floor(box.clientWidth || 600) - 4);
  }

  function drawCharts() {
    for (const chart of state.charts.values()) chart.u.destroy();
    state.charts.clear();
    const grid = document.getElementById("charts");
    grid.replaceChildren();
    const names = metricNames();
    if (!names.length) grid.append(el("p", { class: "empty" }, "No metrics logged."));
    const boxes = names.map((name) => {
      const holder = el("div", { class: "plot" });
      const box = el("section", { class: "chart", dataset: { metric: name } },
        el("h3", {}, name), holder);
      grid.append(box);
      return [name, box, holder];
    });
    if (!boxes.length) return;
    const width = chartWidth(boxes[0][1]); // one layout for all: the grid's cells are equal
    for (const [name, box, holder] of boxes) {
      const { runs, data } = chartData(name);
      if (!runs.length) {
        holder.append(el("p", { class: "empty" }, "No finite values."));
        continue;
      }
      const u = new uPlot(chartOptions(name, runs, width), data, holder);
      state.charts.set(name, { u, runs: runs.map((r) => r.id), box });
    }
  }

  /** New data for the existing charts (a live run grew); rebuild when the shape changed. */
  function refreshCharts() {
    const names = metricNames();
    const same = names.length === state.charts.size && names.every((name) => {
      const chart = state.charts.get(name);
      const { runs } = chartData(name);
      return chart && chart.runs.join() === runs.map((r) => r.id).join();
    });
    if (!same) return drawCharts();
    for (const [name, chart] of state.charts) {
      const { data } = chartData(name);
      const u = chart.u, xs = u.data[0];
      const zoomed = xs.length && (u.scales.x.min > xs[0] || u.scales.x.max < xs[xs.length - 1]);
      u.setData(data, !zoomed);
    }
  }

  window.addEventListener("resize", () => {
    for (const chart of state.charts.values()) {
      chart.u.setSize({ width: chartWidth(chart.box), height: 240 });
    }
  });

  // -- tables -----------------------------------------------------------------------------

  function deliveryCell(run) {
    if (!run.trackers.length) return "–";
    return el("span", {}, run.trackers.map((t) => el("span", {
      class: "tracker " + (t.acknowledged >= t.total ? "done" : "behind"),
      title: `${t.name}: ${t.acknowledged} of ${t.total} records acknowledged` +
        (t.job_id ? `, job ${t.job_id}` : "") + (t.finished ? ", told the final state" : ""),
    }, `${t.name} ${t.acknowledged}/${t.total}${t.finished ? " ✓" : ""}`)));
  }

  function fmtBytes(n) {
    if (n == null) return "";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }

  function artifactsCell(run) {
    if (!run.artifacts || !run.artifacts.length) return "–";
    return el("ul", { class: "artifacts" }, run.artifacts.map((a) => el("li", {
      title: `${a.files} file${a.files === 1 ? "" : "s"}` + (a.digest ? `, digest ${a.digest}` : "") +
        `; held by ${a.delivered.length ? a.delivered.join(", ") : "no tracker yet"}`,
    }, `${a.name}${a.type ? ` (${a.type})` : ""}, ${fmtBytes(a.size)}`,
    a.delivered.length ? ` → ${a.delivered.join(", ")}` : " (not delivered)")));
  }

  function runsTable() {
    const head = ["", "Run", "Name", "Project", "State", "Created", "Duration", "Records",
      "Tags", "Delivery", "Artifacts"];
    return el("table", { class: "runs" },
      el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))),
      el("tbody", {}, state.runs.map((run) => el("tr", { dataset: { run: run.id } },
        el("td", {}, el("span", { class: "swatch", style: `background:${colorOf(run)}` })),
        el("td", { class: "mono" }, run.id),
        el("td", {}, run.name || "–"),
        el("td", {}, run.project || "–"),
        el("td", {}, el("span", { class: "state " + run.status }, run.status)),
        el("td", {}, fmtDate(run.created)),
        el("td", {}, fmtDuration(run.duration)),
        el("td", { class: "num" }, String(run.records)),
        el("td", {}, run.tags.length ? run.tags.map((t) => el("span", { class: "tag" }, t)) : "–"),
        el("td", {}, deliveryCell(run)),
        el("td", {}, artifactsCell(run))))));
  }

  function summaryRows() {
    const rows = [];
    for (const name of metricNames()) {
      for (const run of state.runs) {
        const m = run.metrics[name];
        if (!m) continue;
        rows.push({
          metric: name, run, count: m.count, last: m.last, min: m.min, max: m.max,
          best: m.higher_is_better ? m.max : m.min, best_step: m.best_step,
          direction: m.higher_is_better ? "max" : "min",
        });
      }
    }
    return rows;
  }

  function sortValue(row, key) {
    if (key === "metric") return row.metric + "\u0000" + runLabel(row.run);
    if (key === "run") return runLabel(row.run);
    const v = row[key];
    if (typeof v === "number") return v;
    if (v === "Infinity") return Infinity;
    if (v === "-Infinity") return -Infinity;
    return null; // NaN and missing sort last
  }

  function summaryTable() {
    const columns = [["metric", "Metric"], ["run", "Run"], ["count", "Count"], ["last", "Last"],
      ["min", "Min"], ["max", "Max"], ["best", "Best"], ["best_step", "Best step"]];
    const rows = summaryRows();
    const { key, dir } = state.sort;
    rows.sort((a, b) => {
      const x = sortValue(a, key), y = sortValue(b, key);
      if (x === y) return 0;
      if (x == null) return 1;
      if (y == null) return -1;
      return (x < y ? -1 : 1) * dir;
    });
    const header = columns.map(([k, label]) => el("th", {
      class: "sortable" + (k === key ? (dir > 0 ? " asc" : " desc") : ""),
      dataset: { key: k },
      onclick: () => {
        state.sort = { key: k, dir: state.sort.key === k ? -state.sort.dir : 1 };
        document.getElementById("summary").replaceChildren(summaryTable());
      },
    }, label));
    return el("table", { class: "summary" },
      el("thead", {}, el("tr", {}, header)),
      el("tbody", {}, rows.map((row) => el("tr", { dataset: { metric: row.metric, run: row.run.id } },
        el("td", {}, row.metric),
        el("td", {}, el("span", { class: "swatch", style: `background:${colorOf(row.run)}` }), " ", runLabel(row.run)),
        el("td", { class: "num" }, String(row.count)),
        el("td", { class: "num" }, fmtNum(row.last)),
        el("td", { class: "num" }, fmtNum(row.min)),
        el("td", { class: "num" }, fmtNum(row.max)),
        el("td", { class: "num", title: `best is the ${row.direction}` }, fmtNum(row.best)),
        el("td", { class: "num" }, row.best_step == null ? "–" : String(row.best_step))))));
  }

  function configTable() {
    const keys = [];
    for (const run of state.runs) for (const k of Object.keys(run.config)) if (!keys.includes(k)) keys.push(k);
    const differing = new Set(state.differing);
    const shown = state.onlyDiff && state.runs.length > 1 ? keys.filter((k) => differing.has(k)) : keys;
    if (!shown.length) return el("p", { class: "empty" }, state.runs.length > 1 ? "The runs have the same config." : "No config.");
    return el("table", { class: "config" },
      el("thead", {}, el("tr", {}, el("th", {}, "Key"), state.runs.map((r) => el("th", {},
        el("span", { class: "swatch", style: `background:${colorOf(r)}` }), " ", runLabel(r))))),
      el("tbody", {}, shown.map((k) => el("tr", { class: differing.has(k) && state.runs.length > 1 ? "differs" : "", dataset: { key: k } },
        el("th", {}, k),
        state.runs.map((r) => el("td", {}, k in r.config ? fmtValue(r.config[k]) : "(unset)"))))));
  }

  // -- the page ---------------------------------------------------------------------------

  function controls() {
    const select = el("select", {
      id: "xmode", onchange: (e) => { state.xmode = e.target.value; drawCharts(); },
    }, Object.entries(X_LABELS).map(([k, label]) => el("option", { value: k, selected: k === state.xmode }, label)));
    const value = el("output", { id: "smoothing-value" }, state.smoothing.toFixed(2));
    const slider = el("input", {
      id: "smoothing", type: "range", min: "0", max: "0.99", step: "0.01", value: String(state.smoothing),
      oninput: (e) => { state.smoothing = Number(e.target.value); value.textContent = state.smoothing.toFixed(2); refreshCharts(); },
    });
    const log = el("input", {
      id: "log", type: "checkbox", checked: state.log,
      onchange: (e) => { state.log = e.target.checked; drawCharts(); },
    });
    return el("div", { class: "controls" },
      el("label", {}, "x axis ", select),
      el("label", {}, "smoothing ", slider, " ", value),
      el("label", {}, log, " log scale"),
      el("span", { class: "hint" }, "drag on a chart to zoom, double-click to reset"));
  }

  function renderAll() {
    const app = document.getElementById("app");
    const onlyDiff = el("input", {
      type: "checkbox", checked: state.onlyDiff,
      onchange: (e) => { state.onlyDiff = e.target.checked; document.getElementById("config").replaceChildren(configTable()); },
    });
    const generated = state.generated ? ` · generated ${fmtDate(state.generated)}` : "";
    app.replaceChildren(
      el("header", {}, el("h1", {}, state.title),
        el("p", { class: "sub" }, `${state.runs.length} run${state.runs.length === 1 ? "" : "s"}${generated}`,
          state.version ? ` · trackmux ${state.version}` : "", state.mode === "live" ? " · live" : "")),
      ...(state.mode === "live" ? [el("section", { id: "picker" }, pickerTable())] : []),
      el("section", {}, el("h2", {}, "Runs"), el("div", { id: "runs" }, runsTable())),
      el("section", {}, el("h2", {}, "Charts"), controls(), el("div", { id: "charts", class: "charts" })),
      el("section", {}, el("h2", {}, "Summary"), el("div", { id: "summary" }, summaryTable())),
      el("section", {}, el("h2", {}, "Config ", el("label", { class: "small" }, onlyDiff, " differing keys only")),
        el("div", { id: "config" }, configTable())));
    drawCharts();
  }

  function refreshTables() {
    document.getElementById("runs").replaceChildren(runsTable());
    document.getElementById("summary").replaceChildren(summaryTable());
    document.getElementById("config").replaceChildren(configTable());
  }

  // -- live (trackmux ui) -----------------------------------------------------------------

  async function getJSON(url) {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.json();
  }

  function pickerTable() {
    return el("details", { open: true }, el("summary", {}, `Runs in ${state.dataDir || "the data directory"} (${state.available.length})`),
      el("table", { class: "picker" },
        el("thead", {}, el("tr", {}, ["", "Run", "Name", "Project", "State", "Created", "Records"].map((h) => el("th", {}, h)))),
        el("tbody", {}, state.available.slice().reverse().map((run) => el("tr", {},
          el("td", {}, el("input", {
            type: "checkbox", checked: state.selected.includes(run.id), dataset: { run: run.id },
            onchange: (e) => {
              state.selected = e.target.checked ? [...state.selected, run.id] : state.selected.filter((id) => id !== run.id);
              location.hash = "runs=" + state.selected.join(",");
              loadSelected(true);
            },
          })),
          el("td", { class: "mono" }, run.id), el("td", {}, run.name || "–"), el("td", {}, run.project || "–"),
          el("td", {}, el("span", { class: "state " + run.status }, run.status)),
          el("td", {}, fmtDate(run.created)), el("td", { class: "num" }, String(run.records)))))));
  }

  let lastSignature = "";

  async function loadSelected(force) {
    const listing = await getJSON("/api/runs");
    state.available = listing.runs;
    state.dataDir = listing.data_dir;
    const known = new Set(listing.runs.map((r) => r.id));
    state.selected = state.selected.filter((id) => known.has(id));
    const signature = JSON.stringify(listing.runs.filter((r) => state.selected.includes(r.id)).map((r) => [r.id, r.records, r.status, r.trackers]))
      + "|" + state.selected.join(",") + "|" + listing.runs.length;
    if (!force && signature === lastSignature) return;
    const reshaped = force || signature.split("|")[1] !== lastSignature.split("|")[1];
    lastSignature = signature;
    const data = state.selected.length
      ? await getJSON("/api/report?runs=" + encodeURIComponent(state.selected.join(",")))
      : { runs: [], differing: [] };
    state.runs = data.runs;
    state.differing = data.differing;
    if (reshaped || !document.getElementById("charts")) {
      renderAll();
    } else {
      document.getElementById("picker").replaceChildren(pickerTable());
      refreshTables();
      refreshCharts();
    }
  }

  async function startLive() {
    const listing = await getJSON("/api/runs");
    const fromHash = (location.hash.match(/runs=([^&]*)/) || [])[1];
    state.selected = fromHash ? decodeURIComponent(fromHash).split(",").filter(Boolean)
      : listing.runs.slice(-3).map((r) => r.id);
    await loadSelected(true);
    const tick = async () => {
      try {
        await loadSelected(false);
        document.body.classList.remove("offline");
      } catch (err) {
        document.body.classList.add("offline");
      }
      setTimeout(tick, POLL_MS);
    };
    setTimeout(tick, POLL_MS);
  }

  async function startReport() {
    const data = await decode(document.getElementById("trackmux-data").textContent);
    state.title = data.title;
    state.generated = data.generated;
    state.version = data.version;
    state.runs = data.runs;
    state.differing = data.differing;
    renderAll();
  }

  window.trackmux = { state, charts: state.charts, fmtNum };
  const started = state.mode === "live" ? startLive() : startReport();
  started.then(() => {
    document.body.dataset.renderMs = String(Math.round(performance.now())); // since navigation
    document.body.dataset.ready = "true";
  }, (err) => {
    document.getElementById("app").replaceChildren(el("p", { class: "error" }, "Could not load the runs: " + err.message));
    document.body.dataset.ready = "error";
    console.error(err);
  });
})();
