#!/usr/bin/env python3
"""Render the fleet dashboard's panels from its JSON, with data from a real Prometheus, as one HTML page.

Grafana is not packaged in Debian, so the screenshots under docs/screenshots/ are made this way: every panel of
firmware-config/grafana/dashboards/alnrisk-fleet.json is laid out on Grafana's 24-column grid (gridPos), each of
its targets' PromQL is sent to Prometheus' HTTP API as written (the dashboard variables $site and $device set to
match everything, $__rate_interval to 1m), and the answer is drawn: a stat as its number, a table as rows of
labels, a time series as lines (SVG) with the legendFormat of its target and the unit of its fieldConfig. Nothing
is drawn that Prometheus did not answer; a panel whose queries return no series says "No data", as Grafana does.

    render_panels.py DASHBOARD.json http://127.0.0.1:9090 OUT.html [--minutes 15]

screenshot_dashboard.sh runs it against a Prometheus that scrapes `alnrisk demo --stay`, and screenshots the page
with headless Chromium.
"""

import html
import json
import re
import sys
import time
import urllib.parse
import urllib.request

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]
GRID_W, ROW_H = 60, 30  # px per grid column and per grid row


def substitute(expr):
    return (expr.replace('"$site"', '".*"').replace('"$device"', '".*"')
            .replace("$__rate_interval", "1m"))


def query(prom, path, params):
    url = prom + path + "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{url}: {body}")
    return body["data"]["result"]


def legend(fmt, metric):
    if not fmt:
        return ", ".join(f"{k}={v}" for k, v in sorted(metric.items()) if k != "__name__") or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt).strip()


def fmt_value(v, unit):
    if v != v:  # NaN
        return "NaN"
    if unit == "bytes":
        for u in ["B", "KiB", "MiB", "GiB"]:
            if abs(v) < 1024 or u == "GiB":
                return f"{v:.0f} {u}" if u == "B" else f"{v:.1f} {u}"
            v /= 1024
    if unit == "s":
        return f"{v * 1000:.0f} ms" if abs(v) < 1 else f"{v:.2f} s"
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.3g}"


def svg_series(series, w, h, unit, start, end):
    """Lines for [(label, [(t, v)])] in a w×h box, with a y axis and a time axis."""
    pts = [v for _, vals in series for _, v in vals if v == v]
    lo, hi = (min(pts), max(pts)) if pts else (0.0, 1.0)
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    left, bottom, top, right = 64, 20, 6, 8
    pw, ph = w - left - right, h - bottom - top

    def x(t):
        return left + pw * (t - start) / (end - start)

    def y(v):
        return top + ph * (1 - (v - lo) / (hi - lo))

    out = [f'<svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">']
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#333" stroke-width="1"/>')
        out.append(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" fill="#bbb" font-size="11" text-anchor="end">'
                   f'{html.escape(fmt_value(v, unit))}</text>')
    for k in range(4):
        t = start + (end - start) * k / 3
        out.append(f'<text x="{x(t):.1f}" y="{h - 4}" fill="#bbb" font-size="11" text-anchor="middle">'
                   f'{time.strftime("%H:%M", time.gmtime(t))}</text>')
    for i, (_, vals) in enumerate(series):
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in vals if v == v)
        if path:
            out.append(f'<polyline fill="none" stroke="{COLOURS[i % len(COLOURS)]}" stroke-width="2" points="{path}"/>')
    out.append("</svg>")
    return "".join(out)


def render_panel(p, prom, start, end, step):
    kind, unit = p["type"], p.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    targets = p.get("targets", [])
    w, h = p["gridPos"]["w"] * GRID_W, p["gridPos"]["h"] * ROW_H
    body = ""
    if kind == "stat":
        values = []
        for t in targets:
            for r in query(prom, "/api/v1/query", {"query": substitute(t["expr"]), "time": end}):
                values.append((legend(t.get("legendFormat"), r["metric"]), float(r["value"][1])))
        body = "".join(f'<div class="stat"><span class="big">{html.escape(fmt_value(v, unit))}</span>'
                       f'<span class="lbl">{html.escape(l)}</span></div>' for l, v in values)
    elif kind == "table":
        rows = []
        for t in targets:
            rows += query(prom, "/api/v1/query", {"query": substitute(t["expr"]), "time": end})
        if rows:
            keys = sorted({k for r in rows for k in r["metric"] if k != "__name__"})
            body = "<table><tr>" + "".join(f"<th>{html.escape(k)}</th>" for k in keys) + "<th>value</th></tr>"
            for r in rows:
                body += "<tr>" + "".join(f"<td>{html.escape(r['metric'].get(k, ''))}</td>" for k in keys)
                body += f"<td>{html.escape(r['value'][1])}</td></tr>"
            body += "</table>"
    elif kind == "timeseries":
        series = []
        for t in targets:
            res = query(prom, "/api/v1/query_range",
                        {"query": substitute(t["expr"]), "start": start, "end": end, "step": step})
            for r in res:
                series.append((legend(t.get("legendFormat"), r["metric"]),
                               [(float(a), float(b)) for a, b in r["values"]]))
        if series:
            body = svg_series(series, w - 16, h - 70, unit, start, end)
            body += '<div class="legend">' + " ".join(
                f'<span><i style="background:{COLOURS[i % len(COLOURS)]}"></i>{html.escape(l)} '
                f'<b>{html.escape(fmt_value(vals[-1][1], unit) if vals else "")}</b></span>'
                for i, (l, vals) in enumerate(series)) + "</div>"
    if kind != "row" and not body:
        body = '<div class="nodata">No data</div>'
    style = (f'left:{p["gridPos"]["x"] * GRID_W}px;top:{p["gridPos"]["y"] * ROW_H}px;'
             f'width:{w - 8}px;height:{h - 8}px')
    cls = "row" if kind == "row" else "panel"
    return f'<div class="{cls}" style="{style}"><h3>{html.escape(p["title"])}</h3>{body}</div>'


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    dash = json.load(open(sys.argv[1]))
    prom, out = sys.argv[2].rstrip("/"), sys.argv[3]
    minutes = float(sys.argv[sys.argv.index("--minutes") + 1]) if "--minutes" in sys.argv else 15.0
    end = time.time()
    start = end - 60 * minutes
    step = max(5, int(60 * minutes / 120))
    panels = [render_panel(p, prom, start, end, step) for p in dash["panels"]]
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dash["panels"]) * ROW_H
    page = f"""<!doctype html><meta charset="utf-8"><title>{html.escape(dash['title'])}</title>
<style>
body {{ background:#111217; color:#ccccdc; font:13px sans-serif; margin:12px; }}
h1 {{ font-size:18px; margin:0 0 4px; }} .sub {{ color:#8e8e8e; margin-bottom:10px; }}
#grid {{ position:relative; width:{24 * GRID_W}px; height:{height}px; }}
.panel {{ position:absolute; background:#181b1f; border:1px solid #2c3235; border-radius:3px; padding:4px 8px;
  box-sizing:border-box; overflow:hidden; }}
.row {{ position:absolute; border-bottom:1px solid #2c3235; }} .row h3 {{ font-size:15px; }}
h3 {{ font-size:13px; margin:2px 0 6px; font-weight:600; }}
.stat {{ display:inline-flex; flex-direction:column; margin-right:18px; }} .big {{ font-size:34px; color:#73bf69; }}
.lbl {{ color:#8e8e8e; }} .nodata {{ color:#8e8e8e; text-align:center; margin-top:30px; }}
table {{ border-collapse:collapse; width:100%; }} th, td {{ text-align:left; padding:2px 6px; border-bottom:1px solid #2c3235; }}
.legend span {{ margin-right:12px; white-space:nowrap; }} .legend i {{ display:inline-block; width:10px; height:3px;
  margin-right:4px; vertical-align:middle; }}
</style>
<h1>{html.escape(dash['title'])}</h1>
<div class="sub">Rendered from firmware-config/grafana/dashboards/alnrisk-fleet.json by render_panels.py: each panel's
PromQL answered by Prometheus {html.escape(prom)} over the last {minutes:.0f} min (site = device = all).</div>
<div id="grid">{''.join(panels)}</div>
"""
    open(out, "w").write(page)


if __name__ == "__main__":
    main()
