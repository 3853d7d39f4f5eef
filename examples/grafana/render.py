#!/usr/bin/env python3
"""Render tonic-blueprint-dashboard.json to a PNG, without Grafana.

This is a small stand-in for a Grafana screenshot. Grafana itself is not used: the script
reads the dashboard JSON, runs each panel's own PromQL queries against a Prometheus server's
HTTP API, and draws the panels with matplotlib where the dashboard's gridPos puts them
(24 columns wide), in a dark, Grafana-like style.

Dashboard variables are replaced as Grafana would with "All" selected: $service and $method
become ".*", and $__rate_interval becomes a fixed window (--rate-interval, 30s by default).
Stat panels show the current value (instant query) over a sparkline; timeseries panels plot
every series over the last --minutes, labelled with the target's legendFormat. Series that
stay at zero over the whole window are left out of the legend and noted in the panel.

Needs matplotlib (pip install matplotlib); the standard library does the HTTP.

    python3 render.py --prometheus http://127.0.0.1:9091 \
        --dashboard tonic-blueprint-dashboard.json --minutes 5 --out dashboard.png
"""
import argparse
import json
import math
import re
import time
import urllib.parse
import urllib.request
from datetime import datetime

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

BG, PANEL, BORDER = "#111217", "#181b1f", "#2c3235"
TEXT, MUTED, GRID = "#d8d9da", "#8e8e8e", "#2a2d31"
PALETTE = ["#73bf69", "#f2cc0c", "#5794f2", "#ff780a", "#f2495c", "#b877d9",
           "#8ab8ff", "#ff9830", "#96d98d", "#ca95e5", "#fade2a", "#ffa6b0"]
ROW_PX = 42.0  # height of one Grafana grid row at 1800 px width (Grafana uses 30 px + margin)


def fmt(value, unit, short=False):
    """Format a number the way Grafana does for the units this dashboard uses."""
    if value is None or math.isnan(value) or math.isinf(value):
        return "-"
    if unit == "percentunit":
        return f"{value * 100:.{0 if short else 1}f}%"
    if unit == "s":
        if value == 0:
            return "0 s" if not short else "0"
        if abs(value) < 1e-3:
            return f"{value * 1e6:.0f} µs"
        if abs(value) < 1:
            return f"{value * 1e3:.{0 if short or abs(value) >= 0.1 else 1}f} ms"
        return f"{value:.2f} s"
    if abs(value) >= 1000:
        text = f"{value / 1000:.3g}K"
    else:
        text = f"{value:.3g}" if short else f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{text} req/s" if unit == "reqps" and not short else text


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def _get(self, path, **params):
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=30) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise RuntimeError(body.get("error", "query failed"))
        return body["data"]["result"]

    def instant(self, expr, at):
        return self._get("/api/v1/query", query=expr, time=at)

    def range(self, expr, start, end, step):
        return self._get("/api/v1/query_range", query=expr, start=start, end=end, step=step)


def expand(expr, rate_interval):
    """Substitute the dashboard variables the way Grafana does with 'All' selected."""
    expr = expr.replace("$__rate_interval", rate_interval)
    return re.sub(r"\$\{?(service|method)\}?", ".*", expr)


def legend(fmt_str, labels):
    if not fmt_str:
        return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt_str)


def to_float(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def no_data(ax, note="No data"):
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, note, ha="center", va="center", color=MUTED, fontsize=12,
            transform=ax.transAxes)


class Box:
    """A panel card at pixel position (x, y from the top-left) that places axes inside it."""

    def __init__(self, fig, x, y, width, height, title):
        self.fig, self.x, self.y, self.width, self.height = fig, x, y, width, height
        self.ax, self.plot_h = None, height
        card = self._axes(0, 0, 0, 0)
        card.set_xticks([])
        card.set_yticks([])
        for spine in card.spines.values():
            spine.set_color(BORDER)
        card.text(10 / width, 1 - 15 / height, title, color=TEXT, fontsize=10.5,
                  fontweight="bold", va="center", transform=card.transAxes)

    def _axes(self, left, right, top, bottom):
        fw, fh = self.fig.get_size_inches() * self.fig.dpi
        ax = self.fig.add_axes([(self.x + left) / fw, 1 - (self.y + self.height - bottom) / fh,
                                (self.width - left - right) / fw,
                                (self.height - top - bottom) / fh])
        ax.set_facecolor(PANEL)
        return ax

    def __call__(self, left=1, right=1, top=30, bottom=1):
        """The panel's plotting area, inset by the given margins in pixels."""
        self.ax = self._axes(left, right, top, bottom)
        self.plot_h = self.height - top - bottom
        for spine in self.ax.spines.values():
            spine.set_visible(False)
        return self.ax


def draw_stat(box, panel, prom, args, now):
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    ax = box()
    ax.set_xticks([])
    ax.set_yticks([])
    target = panel["targets"][0]
    expr = expand(target["expr"], args.rate_interval)
    values = [to_float(s["value"][1]) for s in prom.instant(expr, now)]
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return no_data(ax)
    # Sparkline of the same query underneath, like Grafana's graphMode "area".
    series = prom.range(expr, now - args.minutes * 60, now, args.step)
    if series:
        pts = [(float(t), to_float(v)) for t, v in series[0]["values"]]
        xs = [t for t, v in pts if not math.isnan(v)]
        ys = [v for t, v in pts if not math.isnan(v)]
        if ys:
            spark = ax.inset_axes([0, 0, 1, 0.35])
            spark.axis("off")
            spark.fill_between(xs, ys, color=PALETTE[0], alpha=0.18, linewidth=0)
            spark.plot(xs, ys, color=PALETTE[0], linewidth=1.2, alpha=0.8)
            spark.set_xlim(xs[0], xs[-1])
            spark.set_ylim(0, max(ys) * 1.15 or 1)
    ax.text(0.5, 0.58, fmt(values[0], unit), ha="center", va="center", color=PALETTE[0],
            fontsize=30, fontweight="bold", transform=ax.transAxes)


def draw_timeseries(box, panel, prom, args, now):
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    start = now - args.minutes * 60
    series, hidden = [], 0
    for target in panel.get("targets", []):
        expr = expand(target["expr"], args.rate_interval)
        for s in prom.range(expr, start, now, args.step):
            xs = [datetime.fromtimestamp(float(t)) for t, _ in s["values"]]
            ys = [to_float(v) for _, v in s["values"]]
            if all(math.isnan(v) or v == 0 for v in ys):
                hidden += 1  # e.g. pre-initialised codes that never happened
            else:
                series.append((legend(target.get("legendFormat", ""), s["metric"]), xs, ys))
    # Legend below the graph, as Grafana's default "list" legend; reserve room for its rows.
    ncol = max(1, int(box.width / 190))
    legend_rows = math.ceil(len(series) / ncol)
    ax = box(left=52, right=14, top=30, bottom=26 + 15 * legend_rows)
    if not series:
        return no_data(ax, "No data" + (f"  ({hidden} series, all zero)" if hidden else ""))
    for i, (label, xs, ys) in enumerate(series):
        ax.plot(xs, ys, linewidth=1.4, color=PALETTE[i % len(PALETTE)], label=label)
    ax.set_xlim(datetime.fromtimestamp(start), datetime.fromtimestamp(now))
    ax.set_ylim(bottom=0)
    ax.grid(True, color=GRID, linewidth=0.6)
    ax.tick_params(colors=MUTED, labelsize=8, length=0)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v, unit, short=True)))
    ax.legend(loc="upper left", bbox_to_anchor=(0, -20 / box.plot_h), ncol=ncol,
              fontsize=8, frameon=False, labelcolor=TEXT, handlelength=1.2, borderaxespad=0,
              columnspacing=1.5, labelspacing=0.25)
    if hidden:
        ax.text(1.0, 1.03, f"{hidden} all-zero series hidden", ha="right", va="bottom",
                color=MUTED, fontsize=7, transform=ax.transAxes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--dashboard", default="tonic-blueprint-dashboard.json")
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--step", type=float, default=5, help="query_range step, seconds")
    parser.add_argument("--rate-interval", default="30s", help="value for $__rate_interval")
    parser.add_argument("--out", default="dashboard.png")
    parser.add_argument("--width", type=int, default=1800, help="image width, pixels")
    args = parser.parse_args()

    with open(args.dashboard) as f:
        dash = json.load(f)
    panels = [p for p in dash["panels"] if "gridPos" in p]
    prom, now = Prometheus(args.prometheus), time.time()

    header, pad = 60.0, 8.0  # pixels
    col = args.width / 24.0
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    height = header + rows * ROW_PX * args.width / 1800.0 + pad
    dpi = 100
    fig = plt.figure(figsize=(args.width / dpi, height / dpi), dpi=dpi, facecolor=BG)
    fig.text(pad / args.width, 1 - 22 / height, dash.get("title", "Dashboard"), color=TEXT,
             fontsize=15, fontweight="bold", va="center")
    sub = (f"last {args.minutes:g} min  ·  service=All  method=All  ·  {args.prometheus}  ·  "
           f"rendered {datetime.fromtimestamp(now):%Y-%m-%d %H:%M:%S} (matplotlib, not Grafana)")
    fig.text(pad / args.width, 1 - 44 / height, sub, color=MUTED, fontsize=9, va="center")
    row_px = (height - header - pad) / rows

    for panel in panels:
        g = panel["gridPos"]
        box = Box(fig, g["x"] * col + pad / 2, header + g["y"] * row_px + pad / 2,
                  g["w"] * col - pad, g["h"] * row_px - pad, panel.get("title", ""))
        try:
            if panel["type"] == "stat":
                draw_stat(box, panel, prom, args, now)
            elif panel["type"] == "timeseries":
                draw_timeseries(box, panel, prom, args, now)
            else:
                no_data(box(), f"panel type {panel['type']!r} not rendered")
        except Exception as exc:  # keep drawing the other panels
            no_data(box.ax or box(), f"query error: {exc}"[:90])
    fig.savefig(args.out, dpi=dpi, facecolor=BG)
    print(f"wrote {args.out} ({args.width}x{int(height)} px, {len(panels)} panels)")


if __name__ == "__main__":
    main()
