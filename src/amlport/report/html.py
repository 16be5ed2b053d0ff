"""One self-contained HTML file from a ``Report`` (docs/design/0008-report.md).

Everything the page needs is inside it: the CSS, the vendored Cytoscape.js, the page script
and the data. A Content-Security-Policy allows nothing from the network and only the page's
own scripts (by their SHA-256), so the file works offline and a name that somehow became
markup still could not run or load anything.

Every string from the workspace reaches the page one of two ways, each escaped by
construction:

- **markup**, written here: through ``text()`` only (control characters made visible as in
  the terminal, then ``html.escape`` with quotes);
- **data** for the script: one JSON document inside ``<script type="application/json">``
  with ``<``, ``>`` and ``&`` as ``\\u003c``-escapes (so no ``</script>`` can end it), which
  the script reads with ``JSON.parse`` and puts on the page with ``textContent`` only.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from importlib import resources
from typing import Any

from amlport import __version__
from amlport.plaintext import plain
from amlport.report.data import GraphNode, HistoryRow, Report
from amlport.report.pipelines import BOX_H, BOX_W, Pipeline, layers

CYTOSCAPE_VERSION = "3.35.0"  # package.json pins the same; tests/report checks the copy
LABEL_CHARS = 32  # graph labels are cut here (the side panel shows the whole name)
GRAPH_DX, GRAPH_DY = 190, 72  # between the nodes of a layer, and between layers


def text(value: object) -> str:
    """``value`` as HTML text or attribute value: control characters visible, then escaped."""
    return html.escape(plain(value), quote=True)


def _asset(name: str) -> str:
    return (resources.files("amlport.report") / name).read_text(encoding="utf-8")


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def _clean(value: Any) -> Any:
    """Every string of the page's data with control characters made visible."""
    if isinstance(value, str):
        return plain(value)
    if isinstance(value, dict):
        return {plain(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def script_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element: nothing in it can close or comment it."""
    raw = json.dumps(_clean(data), ensure_ascii=True, sort_keys=True)
    return raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _graph_data(report: Report) -> dict[str, Any]:
    index = {n.id: f"n{i}" for i, n in enumerate(report.nodes)}
    # Placed here, layered top to bottom by the data flow as the designer draws pipelines (a
    # pipeline run's parent_of edges are drawn but do not place: they would put every step
    # beside its parent).
    place = layers(
        [n.id for n in report.nodes],
        [(e["source"], e["target"]) for e in report.edges if e["kind"] != "parent_of"],
    )

    def node(n: GraphNode) -> dict[str, Any]:
        return {
            "i": index[n.id],
            "id": n.id,
            "kind": n.kind,
            "label": n.label,
            "short": _short(plain(n.label)),
            "attrs": n.attrs,
            "files": n.files,
            "files_total": n.files_total,
            "x": place[n.id][1] * GRAPH_DX,
            "y": place[n.id][0] * GRAPH_DY,
        }

    edges = [
        {"s": index[e["source"]], "t": index[e["target"]], "kind": e["kind"], "port": e.get("port")}
        for e in report.edges
    ]
    return {"nodes": [node(n) for n in report.nodes], "edges": edges, "total": report.nodes_total}


def _table(headers: list[str], rows: list[list[str]], *, cls: str = "") -> str:
    if not rows:
        return '<p class="empty">None.</p>'
    head = "".join(f"<th>{text(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{text(c)}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _cards(report: Report) -> str:
    cards = [
        ("lineage nodes", f"{report.nodes_total:,}"),
        ("pipelines", str(len(report.pipelines))),
        ("size", _size(report.total_bytes)),
        ("scan findings", str(len(report.findings))),
    ]
    if report.audit is not None:
        s = report.audit.summary()
        cards.append(("audit failed", f"{s['fail']} of {s['rules']}"))
    if report.history:
        cards.append(("snapshots", str(len(report.history))))
    return "".join(
        f'<div class="card"><div class="num">{text(v)}</div><div>{text(k)}</div></div>'
        for k, v in cards
    )


def _inventory(report: Report) -> str:
    parts = [
        "<h3>Counts</h3>",
        _table(
            ["kind", "count"],
            [[k, f"{n:,}"] for k, n in report.counts] + [["bytes", f"{report.total_bytes:,}"]],
            cls="narrow",
        ),
    ]
    if report.kind == "source":
        parts += [
            "<h3>Models</h3>",
            _table(
                ["location", "format", "run", "portable", "pointer"],
                [
                    [m[k] for k in ("location", "format", "run", "portable", "pointer")]
                    for m in report.models
                ],
            ),
            "<h3>Environments</h3>",
            _table(
                ["id", "kind", "image", "pinned"],
                [[e[k] for k in ("id", "kind", "image", "pinned")] for e in report.environments],
            ),
        ]
    else:
        parts += [
            "<h3>Assets</h3>",
            _table(
                ["kind", "name", "files", "bytes", "portable"],
                [
                    [a[k] for k in ("kind", "name", "files", "bytes", "portable")]
                    for a in report.assets
                ],
            ),
        ]
    if report.kind == "source":  # a snapshot records no scan findings (its warnings follow)
        parts += [
            f"<h3>Scan findings ({len(report.findings)})</h3>",
            _table(
                ["severity", "code", "path", "message"],
                [[f["severity"], f["code"], f["path"], f["message"]] for f in report.findings],
            ),
        ]
    if report.warnings:
        parts.append("<h3>Warnings</h3><ul>")
        parts += [f"<li>{text(w)}</li>" for w in report.warnings]
        parts.append("</ul>")
    return "\n".join(parts)


def _audit(report: Report) -> str:
    if report.audit is None:
        return f'<p class="note">{text(report.audit_note)}</p>'
    from amlport.audit.engine import State, sort_key

    audit = report.audit
    s = audit.summary()
    by_sev = ", ".join(f"{n} {sev}" for sev, n in s["fail_by_severity"].items() if n)
    parts = [
        f'<p class="note">{text(s["rules"])} rules: {text(s["fail"])} failed'
        f"{text(f' ({by_sev})' if by_sev else '')}, {text(s['not_checked'])} not checked, "
        f"{text(s['pass'])} passed. Not checked is never passed: the facts were not "
        "available (data plane and control plane facts come from <code>amlport audit "
        "--arm</code> or <code>--arm-live</code>).</p>"
    ]
    results = sorted(audit.results, key=sort_key)
    failed = [r for r in results if r.state is State.FAIL]
    unchecked = [r for r in results if r.state is State.NOT_CHECKED]
    if not failed:
        parts.append('<p class="empty">No rule failed.</p>')
    for r in failed + unchecked:
        if r is (unchecked[0] if unchecked else None):
            parts.append(f"<details><summary>Not checked ({len(unchecked)})</summary>")
        o = r.outcome
        where = o.path or o.resource or ""
        state = r.state.value.replace("_", " ")
        parts.append(
            f'<div class="finding {text(r.state.value)} sev-{text(r.severity.value)}">'
            f'<div class="fhead"><span class="badge">{text(state)}</span>'
            f'<span class="badge sev">{text(r.severity.value)}</span>'
            f"<b>{text(r.rule.id)}</b> {text(r.rule.title)}</div>"
            f"<div>{text(o.message)}</div>"
            + (f'<div class="where">{text(where)}</div>' if where else "")
            + (
                f"<details><summary>Remediation</summary><pre>{text(r.remediation)}</pre></details>"
                if r.remediation and r.state is State.FAIL
                else ""
            )
            + "</div>"
        )
    if unchecked:
        parts.append("</details>")
    passed = [r for r in results if r.state is State.PASS]
    if passed:
        parts.append(f"<details><summary>Passed ({len(passed)})</summary>")
        parts.append(
            _table(
                ["rule", "title", "message"],
                [[r.rule.id, r.rule.title, r.outcome.message] for r in passed],
            )
        )
        parts.append("</details>")
    parts += [f'<p class="note">warning: {text(w)}</p>' for w in audit.warnings]
    return "\n".join(parts)


def _pipeline_svg(pipe: Pipeline) -> str:
    pos = {b.id: b for b in pipe.boxes}
    out = [
        f'<svg class="pipeline" role="img" width="{pipe.width}" height="{pipe.height}" '
        f'viewBox="0 0 {pipe.width} {pipe.height}" xmlns="http://www.w3.org/2000/svg">'
        "<title>" + text(f"pipeline run {pipe.label}") + "</title>"
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#667"/></marker>'
        "</defs>"
    ]
    for a, b, port in pipe.links:
        s, t = pos[a], pos[b]
        x1, y1 = s.x + BOX_W // 2, s.y + BOX_H
        x2, y2 = t.x + BOX_W // 2, t.y
        my = (y1 + y2) // 2
        out.append(
            f'<path class="link" d="M{x1},{y1} C{x1},{my} {x2},{my} {x2},{y2 - 2}" '
            f'marker-end="url(#arrow)"><title>{text(port)}</title></path>'
        )
    for box in pipe.boxes:
        label = _short(plain(box.label))
        detail = _short(plain(box.detail)) if box.detail and box.detail != box.label else ""
        ty = box.y + (17 if detail else 27)
        out.append(
            f'<g class="box {text(box.kind)}"><title>{text(box.label)}</title>'
            f'<rect x="{box.x}" y="{box.y}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
            f'<text x="{box.x + BOX_W // 2}" y="{ty}">{html.escape(label)}</text>'
            + (
                f'<text class="detail" x="{box.x + BOX_W // 2}" y="{box.y + 34}">'
                f"{html.escape(detail)}</text>"
                if detail
                else ""
            )
            + "</g>"
        )
    out.append("</svg>")
    return "".join(out)


def _pipelines(report: Report) -> str:
    if not report.pipelines:
        return '<p class="empty">No designer pipeline runs.</p>'
    parts = []
    for pipe in report.pipelines:
        steps = sum(1 for b in pipe.boxes if b.kind == "step_run")
        parts.append(
            f'<div class="pipe"><h3>Pipeline run {text(pipe.label)}</h3>'
            f'<p class="note">{steps} steps, {len(pipe.links)} connections; hover a box or '
            "arrow for its full name.</p>"
            f'<div class="scroll">{_pipeline_svg(pipe)}</div></div>'
        )
    return "\n".join(parts)


def _history_chart(rows: list[HistoryRow]) -> str:
    width, height, pad = 720, 160, 28
    top = max((r.size for r in rows), default=0) or 1
    bar = max(4, min(40, (width - 2 * pad) // max(len(rows), 1) - 4))
    out = [
        f'<svg class="chart" role="img" width="{width}" height="{height + 30}" '
        f'viewBox="0 0 {width} {height + 30}" xmlns="http://www.w3.org/2000/svg">'
        "<title>size of each snapshot</title>"
    ]
    for i, r in enumerate(rows):
        h = max(2, int((height - pad) * r.size / top))
        x = pad + i * (bar + 4)
        cls = "bar current" if r.current else "bar"
        out.append(
            f'<rect class="{cls}" x="{x}" y="{height - h}" width="{bar}" height="{h}">'
            f"<title>{text(r.created)} {text(r.id[:12])}: {text(_size(r.size))}</title></rect>"
        )
    out.append(
        f'<text x="{pad}" y="{height + 20}" class="axis">oldest</text>'
        f'<text x="{width - pad}" y="{height + 20}" class="axis end">newest · '
        f"max {text(_size(top))}</text></svg>"
    )
    return "".join(out)


def _history(report: Report) -> str:
    if not report.history:
        if report.history_note:
            return f'<p class="note">{text(report.history_note)}.</p>'
        return (
            '<p class="note">No repository given: <code>amlport report SOURCE --repo REPO</code> '
            "adds the snapshot history of this workspace.</p>"
        )

    def delta(r: HistoryRow) -> str:
        if r.added is None:
            return "-"
        return f"+{r.added} -{r.removed} ~{r.changed}"

    rows = [
        [
            ("▶ " if r.current else "") + r.id[:12],
            r.created,
            f"{r.files:,}",
            _size(r.size),
            str(r.assets),
            delta(r),
            ", ".join(r.tags),
        ]
        for r in reversed(report.history)
    ]
    note = f'<p class="note">{text(report.history_note)}</p>' if report.history_note else ""
    return (
        _history_chart(report.history)
        + note
        + _table(
            ["snapshot", "created (UTC)", "files", "size", "assets", "files +/-/~", "tags"], rows
        )
    )


def _csp(scripts: list[str]) -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in scripts
    )
    return (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )


def render_html(report: Report) -> str:
    """The whole page."""
    vendor = _asset("vendor/cytoscape.min.js")
    page_js = _asset("static/report.js")
    css = _asset("static/report.css")
    licence = _asset("vendor/cytoscape.LICENSE")
    title = " / ".join(x for x in (report.account, report.workspace) if x) or report.location
    what = "snapshot " + (report.snapshot or "")[:16] if report.kind == "snapshot" else "workspace"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{text(_csp([vendor, page_js]))}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="amlport {text(__version__)}">
<title>amlport report: {text(title)}</title>
<style>{css}</style>
</head>
<body>
<header>
<h1>amlport report <span class="what">{text(what)}</span></h1>
<p class="loc"><b>{text(title)}</b> · {text(report.location)} ·
generated {text(report.generated)}</p>
<div class="cards">{_cards(report)}</div>
<nav><a href="#lineage">Lineage</a><a href="#pipelines">Pipelines</a><a href="#audit">Audit</a>
<a href="#inventory">Inventory</a><a href="#history">Snapshot history</a></nav>
</header>
<main>
<section id="lineage"><h2>Lineage</h2>
<div class="toolbar"><input id="graph-search" type="search" placeholder="Search nodes by name or id"
 aria-label="Search nodes"><button id="graph-fit" type="button">Fit</button>
<button id="graph-clear" type="button">Clear selection</button>
<span id="graph-status" role="status">loading the graph…</span></div>
<div class="graph-wrap"><div id="cy" aria-label="lineage graph"></div>
<aside id="panel" aria-live="polite"><p class="note">Click a node to see what it derives from
(upstream), what derives from it (downstream), and its files. Scroll to zoom, drag to pan.</p>
</aside></div>
<details id="node-list-box"><summary>All nodes as a list</summary><ul id="node-list"></ul></details>
</section>
<section id="pipelines"><h2>Designer pipelines</h2>{_pipelines(report)}</section>
<section id="audit"><h2>Audit</h2>{_audit(report)}</section>
<section id="inventory"><h2>Inventory</h2>{_inventory(report)}</section>
<section id="history"><h2>Snapshot history</h2>{_history(report)}</section>
</main>
<footer><p>Made by amlport {text(__version__)}. The graph is drawn by Cytoscape.js
{CYTOSCAPE_VERSION} (MIT licence, included in this file). This page loads nothing from the
network.</p><details><summary>Cytoscape.js licence</summary><pre>{text(licence)}</pre></details>
</footer>
<script type="application/json" id="report-data">{script_json(_graph_data(report))}</script>
<script>{vendor}</script>
<script>{page_js}</script>
</body>
</html>
"""
