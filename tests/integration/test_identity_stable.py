"""Customer ids stay stable across re-runs and later imports; merges are recorded with their cause."""

from __future__ import annotations

from pathlib import Path

from siyu.bootstrap import App
from siyu.identity.service import MAP_TABLE, MERGES_TABLE, run_resolve
from siyu.ingest.importer import import_path


def test_ids_stay_stable_and_merges_are_recorded(sqlite_app: App, tmp_path: Path) -> None:
    first = tmp_path / "a"
    first.mkdir()
    (first / "customers.csv").write_text(
        "brand,source,source_customer_id,phone,unionid\n"
        "demo,tmall,t1,13811112222,\n"
        "demo,wecom,w1,,U9\n"
        "demo,pos,p1,13933334444,\n"
    )
    import_path(sqlite_app, first)
    run_resolve(sqlite_app)
    before = {r["source_customer_id"]: r["customer_id"] for r in _map(sqlite_app)}
    assert len(set(before.values())) == 3

    again = run_resolve(sqlite_app)
    assert {r["source_customer_id"]: r["customer_id"] for r in _map(sqlite_app)} == before
    assert again.merged == 0

    second = tmp_path / "b"
    second.mkdir()
    # A mini-program record carries both t1's phone and w1's unionid: t1 and w1 are one person.
    (second / "customers.csv").write_text(
        "brand,source,source_customer_id,phone,unionid\ndemo,mini_program,m1,+86 138-1111-2222,U9\n"
    )
    import_path(sqlite_app, second)
    outcome = run_resolve(sqlite_app)
    after = {r["source_customer_id"]: r["customer_id"] for r in _map(sqlite_app)}
    assert outcome.merged == 1
    assert after["t1"] == after["w1"] == after["m1"]
    assert after["t1"] in (before["t1"], before["w1"])
    assert after["p1"] == before["p1"]
    merges = sqlite_app.engine.to_arrow(sqlite_app.engine.table(MERGES_TABLE)).to_pylist()
    assert len(merges) == 1
    merged_id = ({before["t1"], before["w1"]} - {after["t1"]}).pop()
    assert merges[0]["merged_id"] == merged_id and merges[0]["survivor_id"] == after["t1"]
    assert merges[0]["id_type"] in ("phone", "unionid")


def _map(app: App) -> list[dict[str, str]]:
    return app.engine.to_arrow(app.engine.table(MAP_TABLE)).to_pylist()
