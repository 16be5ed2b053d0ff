"""Designer pipelines as diagrams: the steps of each pipeline run and the data between them.

Taken from the lineage graph (so a snapshot's recorded lineage draws the same diagram as the
live workspace): a ``pipeline_run``'s ``parent_of`` children are its steps; step A feeds step
B when B ``consumed`` an output A ``produced``; data consumed from outside the pipeline is an
input box. The layout is a small layered (Sugiyama-style) one: a box's layer is its longest
path from an input, boxes in a layer are ordered by the mean position of what feeds them.
Designer pipelines have tens of steps, so this is exact enough and needs no layout engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amlport.lineage.graph import LineageGraph

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 200, 44, 28, 46, 12
MAX_STEPS = 300  # a pipeline run with more steps is drawn without its layout (listed only)


@dataclass
class Box:
    id: str
    kind: str  # step_run, data, output
    label: str
    detail: str = ""
    layer: int = 0
    x: int = 0
    y: int = 0


@dataclass
class Pipeline:
    id: str
    label: str
    boxes: list[Box] = field(default_factory=list)
    links: list[tuple[str, str, str]] = field(default_factory=list)  # (from, to, port)
    width: int = 0
    height: int = 0


def pipelines_of(lg: LineageGraph) -> list[Pipeline]:
    return [_pipeline(lg, pid) for pid in lg.nodes_of("pipeline_run")]


def _pipeline(lg: LineageGraph, pid: str) -> Pipeline:
    g = lg.g
    data = g.nodes[pid]
    pipe = Pipeline(id=pid, label=str(data.get("label") or pid))
    steps = sorted(v for _, v, k in g.out_edges(pid, data="kind") if k == "parent_of" and v in g)[
        :MAX_STEPS
    ]
    step_set = set(steps)
    boxes: dict[str, Box] = {}
    for s in steps:
        d = g.nodes[s]
        module = str(d.get("module") or "")
        boxes[s] = Box(s, "step_run", str(d.get("label") or s), module.rsplit(".", 1)[-1])
    links: set[tuple[str, str, str]] = set()
    for s in steps:
        for src, _, d in g.in_edges(s, data=True):
            if d.get("kind") != "consumed":
                continue
            producers = [p for p, _, k in g.in_edges(src, data="kind") if k == "produced"]
            inside = [p for p in producers if p in step_set]
            port = str(g.nodes[src].get("label") or d.get("port") or "")
            if inside:
                links.update((p, s, port) for p in inside)
            else:  # data from outside the pipeline: an input box
                if src not in boxes:
                    sd = g.nodes[src]
                    boxes[src] = Box(src, str(sd.get("kind", "data")), str(sd.get("label") or src))
                links.add((src, s, str(d.get("port") or "")))
    pipe.boxes = sorted(boxes.values(), key=lambda b: b.id)
    pipe.links = sorted(links)
    _layout(pipe)
    return pipe


def layers(ids: list[str], links: list[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    """Each node's (layer, position in its layer) for a layered drawing of ``links``.

    A node's layer is its longest path from a node without predecessors (iterative, so a
    chain of thousands is fine; a cycle is cut where Kahn's order stops), then a node without
    predecessors moves down next to the first node it feeds. In each layer nodes are ordered
    by the mean position of their predecessors (one barycenter pass).
    """
    known = set(ids)
    preds: dict[str, list[str]] = {n: [] for n in ids}
    succs: dict[str, list[str]] = {n: [] for n in ids}
    for a, b in links:
        if a in known and b in known and a != b:
            preds[b].append(a)
            succs[a].append(b)
    waiting = {n: len(preds[n]) for n in ids}
    ready = sorted(n for n in ids if waiting[n] == 0)
    layer: dict[str, int] = {}
    order: list[str] = []
    while ready:
        node = ready.pop()
        order.append(node)
        layer[node] = 1 + max((layer[p] for p in preds[node] if p in layer), default=-1)
        for nxt in succs[node]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.append(nxt)
    for node in sorted(n for n in ids if n not in layer):  # on a cycle
        layer[node] = 1 + max((layer[p] for p in preds[node] if p in layer), default=-1)
        order.append(node)
    for node in ids:
        if not preds[node] and succs[node]:
            layer[node] = max(layer[node], min(layer[s] for s in succs[node]) - 1)
    rows: dict[int, list[str]] = {}
    for node in sorted(ids):
        rows.setdefault(layer[node], []).append(node)
    place: dict[str, tuple[int, int]] = {}
    for n in sorted(rows):
        row = rows[n]

        def mean(node: str) -> float:
            ps = [place[p][1] for p in preds[node] if p in place]
            return sum(ps) / len(ps) if ps else float("inf")

        row.sort(key=mean)  # stable: nodes fed by nothing placed keep their name order
        for i, node in enumerate(row):
            place[node] = (n, i)
    return place


def _layout(pipe: Pipeline) -> None:
    place = layers([b.id for b in pipe.boxes], [(a, b) for a, b, _ in pipe.links])
    rows: dict[int, list[Box]] = {}
    for box in pipe.boxes:
        box.layer = place[box.id][0]
        rows.setdefault(box.layer, []).append(box)
    widest = max((len(r) for r in rows.values()), default=0)
    count = max(rows, default=-1) + 1
    pipe.width = MARGIN * 2 + widest * BOX_W + max(widest - 1, 0) * GAP_X
    pipe.height = MARGIN * 2 + count * BOX_H + max(count - 1, 0) * GAP_Y
    for n, row in rows.items():
        row.sort(key=lambda b: place[b.id][1])
        row_width = len(row) * BOX_W + (len(row) - 1) * GAP_X
        left = (pipe.width - row_width) // 2
        for i, box in enumerate(row):
            box.x = left + i * (BOX_W + GAP_X)
            box.y = MARGIN + n * (BOX_H + GAP_Y)
