"""A journey's steps as a graph to draw (the console): one node per step plus the end, an edge per
way a step can go (its paths, else `next` / the step below / the end), and a layered layout —
column = the fewest steps from the first one, row = the order within that column — so the drawing
reads left to right like the file, with no layout engine in the browser."""

from __future__ import annotations

from collections import deque
from typing import Any

from siyu.journeys.definition import Journey, Step

END = "__end__"


def _edges(spec: Journey, step: Step) -> list[tuple[str, str]]:
    """(target, label) of each way out of `step`; the label is the file's own word for the path."""
    if step.exit is not None:
        return []
    if step.wait_for:
        return [(step.wait_for.on_event, "on_event"), (step.wait_for.on_timeout, "on_timeout")]
    if step.branch:
        return [(step.branch.then, "then"), (step.branch.otherwise, "else")]
    if step.split:
        return [(p.next, f"{p.percent}%") for p in step.split.paths]
    return [(spec.after(step.id) or END, "")]


def step_graph(spec: Journey) -> dict[str, Any]:
    """{"nodes": [{id, kind, column, row}], "edges": [{source, target, label}]}; the end node
    (id `__end__`, kind `end`) is there when some step finishes the journey."""
    edges = [
        {"source": s.id, "target": target, "label": label} for s in spec.steps for target, label in _edges(spec, s)
    ]
    ids = [s.id for s in spec.steps] + ([END] if any(e["target"] == END for e in edges) else [])
    column = {spec.steps[0].id: 0}
    queue = deque([spec.steps[0].id])
    while queue:  # breadth first: a loop back to an earlier step does not push it right
        here = queue.popleft()
        for e in edges:
            if e["source"] == here and e["target"] not in column:
                column[e["target"]] = column[here] + 1
                queue.append(e["target"])
    unreached = max(column.values(), default=0) + 1
    rows: dict[int, int] = {}
    nodes = []
    for node in ids:
        col = column.get(node, unreached)
        rows[col] = rows.get(col, -1) + 1
        kind = "end" if node == END else spec.step(node).kind
        nodes.append({"id": node, "kind": kind, "column": col, "row": rows[col]})
    return {"nodes": nodes, "edges": edges}
