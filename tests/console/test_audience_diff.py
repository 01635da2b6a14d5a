"""Audience diff and snapshots on the audience page: a live audience against its own snapshot
overlaps fully; against another audience the numbers are the CLI's (`diff_audiences`)."""

from __future__ import annotations

import re

import httpx

from console.conftest import Workspace, csrf_of
from siyu.audiences.snapshots import diff_audiences


def _cell(html: str, name: str) -> int:
    found = re.search(rf'data-diff="{name}">([\d,]+)<', html)
    assert found is not None, html[-2000:]
    return int(found.group(1).replace(",", ""))


def test_a_snapshot_and_its_live_audience_overlap_and_another_matches_the_service(
    workspace: Workspace, clients: dict[str, httpx.Client]
) -> None:
    analyst = clients["analyst"]
    for code, rule in (
        ("diff_members", '{"membership": "member"}'),
        ("diff_buyers", '{"spent": 1, "op": ">=", "last_days": 3650}'),
    ):
        made = analyst.post(
            "/console/audiences?brand=demo", data={"code": code, "rule": rule, "csrf": csrf_of(analyst)}
        )
        assert made.status_code == 303, made.text[:300]
    assert (
        analyst.post("/console/audiences/diff_members/snapshot?brand=demo", data={"csrf": csrf_of(analyst)}).status_code
        == 303
    )
    page = analyst.get("/console/audiences/diff_members?brand=demo")
    snap = re.search(r"<option>(diff_members@\d+)</option>", page.text)
    assert snap is not None and "diff_buyers" in page.text  # snapshots and other audiences to compare
    same = analyst.get(f"/console/audiences/diff_members/diff?brand=demo&a=diff_members&b={snap.group(1)}")
    assert same.status_code == 200
    assert _cell(same.text, "only_a") == _cell(same.text, "only_b") == 0 and _cell(same.text, "both") > 0
    other = analyst.get("/console/audiences/diff_members/diff?brand=demo&a=diff_members&b=diff_buyers&lang=en")
    expected = diff_audiences(workspace.app, "demo", "diff_members", "diff_buyers")
    assert [_cell(other.text, k) for k in ("both", "only_a", "only_b")] == [
        expected["both"], expected["only_a"], expected["only_b"]
    ]  # fmt: skip
    assert "Only in A" in other.text
    bad = analyst.get("/console/audiences/diff_members/diff?brand=demo&a=diff_members&b=x;drop")
    assert bad.status_code == 422
