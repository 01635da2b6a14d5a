"""The journey graph the console draws: an edge for every way a step can go, the end node only when
some step runs off the end, columns by the fewest steps from the first, rows within a column."""

from __future__ import annotations

from siyu.journeys.definition import parse_journey
from siyu.journeys.graph import END, step_graph

FILE = """\
brand: b
code: j
version: 1
name: {zh: 测试, en: Test}
category: marketing
trigger: {event: {type: share}}
templates: {hi: {sms: {template_code: X}}}
steps:
  - {id: hi, send: {channel: sms, template: hi}}
  - id: ab
    split: {paths: [{percent: 50, next: wait}, {percent: 50, next: reply}]}
  - {id: wait, wait: {days: 1}, next: hi}
  - id: reply
    wait_for: {event: reply, timeout: {days: 2}, on_event: thanks, on_timeout: bye}
  - {id: thanks, tag: {add: vip}}
  - {id: bye, exit: }
  - {id: orphan, tag: {add: x}}
"""


def test_edges_columns_and_the_end() -> None:
    graph = step_graph(parse_journey(FILE))
    edges = {(e["source"], e["target"], e["label"]) for e in graph["edges"]}
    assert edges == {
        ("hi", "ab", ""), ("ab", "wait", "50%"), ("ab", "reply", "50%"), ("wait", "hi", ""),
        ("reply", "thanks", "on_event"), ("reply", "bye", "on_timeout"), ("thanks", "bye", ""),
        ("orphan", END, ""),
    }  # fmt: skip
    place = {n["id"]: (n["column"], n["row"]) for n in graph["nodes"]}
    # the loop back from `wait` does not push `hi` right; `orphan` (unreachable) and the end go last
    assert place == {"hi": (0, 0), "ab": (1, 0), "wait": (2, 0), "reply": (2, 1), "thanks": (3, 0), "bye": (3, 1),
                     "orphan": (4, 0), END: (4, 1)}  # fmt: skip
    assert {n["id"]: n["kind"] for n in graph["nodes"]}[END] == "end"


def test_no_end_node_when_every_path_exits() -> None:
    text = FILE.replace("  - {id: orphan, tag: {add: x}}\n", "")
    assert END not in {n["id"] for n in step_graph(parse_journey(text))["nodes"]}
