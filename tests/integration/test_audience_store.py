"""Saved audiences on SQLite and PostgreSQL, on the hand-made brand `au`
(tests/fixtures/audience_brand.py): create, count, snapshot, compare, scheduled refresh, the
export log. Expected sizes are from the fixture's table (as of 2024-06-30)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from fixtures.audience_brand import AS_OF, write_brand
from fixtures.audience_ops import create_audience, delete_audience, export_audience, snapshot_audience
from siyu.audiences.errors import AudienceError, RuleError
from siyu.audiences.models import AudienceExport
from siyu.audiences.service import count_audience, get_audience, list_audiences
from siyu.audiences.snapshots import diff_audiences, list_snapshots, members, refresh_due
from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.core.clock import utc_now
from siyu.core.errors import NotFoundError
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path


@pytest.fixture
def au(app: App, tmp_path: Path) -> App:
    import_path(app, write_brand(tmp_path / "au"))
    run_resolve(app)
    return app


def test_create_count_snapshot_diff_refresh(au: App, tmp_path: Path) -> None:
    phones = create_audience(au, "au", "phones", "has phone", name="有手机号 With phone", actor=Actor.user("op1"))
    assert phones["rule"] == {"identifier": "phone"} and phones["created_by"] == "user:op1"
    create_audience(au, "au", "quiet", '{"not": {"bought": true, "last_days": 60}}', refresh_minutes=60)
    assert [a["code"] for a in list_audiences(au, "au")] == ["phones", "quiet"]
    with pytest.raises(AudienceError):
        create_audience(au, "au", "phones", "member")
    create_audience(au, "au", "phones", "has phone or has email", replace=True)
    assert get_audience(au, "au", "phones")["rule"] == {"any": [{"identifier": "phone"}, {"identifier": "email"}]}
    with pytest.raises(RuleError) as info:
        create_audience(au, "au", "bad", {"all": [{"membership": "member"}, {"did": "visit", "min_times": -1}]})
    assert info.value.path == "all[1].min_times"

    assert count_audience(au, "au", "phones", as_of=AS_OF)["customers"] == 5  # A B C D E
    quiet = count_audience(au, "au", "quiet", as_of=AS_OF)
    assert quiet == quiet | {"customers": 5, "as_of": "2024-06-30", "audience": "quiet"}  # C D E F G

    snap = snapshot_audience(au, "au", "quiet", actor=Actor.user("op1"), as_of=AS_OF)
    assert snap["customers"] == 5 and snap["trigger"] == "manual"
    assert au.engine.to_arrow(members(au, "au", "quiet")).num_rows == 5
    diff = diff_audiences(au, "au", "phones", f"quiet@{snap['snapshot_id']}", as_of=AS_OF)
    assert (diff["a"]["customers"], diff["b"]["customers"], diff["both"]) == (5, 5, 3)  # C D E
    assert (diff["only_a"], diff["only_b"], diff["union"], diff["jaccard"]) == (2, 2, 7, round(3 / 7, 6))
    with pytest.raises(NotFoundError):
        members(au, "au", "phones")  # never snapshotted

    # scheduled refresh: `quiet` (60 min) was just snapshotted, so it is due only an hour later
    assert refresh_due(au) == []
    later = refresh_due(au, now=utc_now() + timedelta(minutes=61))
    assert [(r["audience"], r["trigger"]) for r in later] == [("quiet", "schedule")]
    assert [s["trigger"] for s in list_snapshots(au, "au", "quiet")] == ["schedule", "manual"]
    assert get_audience(au, "au", "quiet")["last_count"] is not None

    export_audience(au, "au", tmp_path / "p.csv", "phones", actor=Actor.user("op1"), as_of=AS_OF)
    with au.store.unit_of_work() as session:
        logged = session.scalars(select(AudienceExport)).all()
        assert [(e.audience_code, e.actor, e.rows, e.unmasked) for e in logged] == [("phones", "user:op1", 5, False)]

    delete_audience(au, "au", "phones")
    with pytest.raises(NotFoundError):
        get_audience(au, "au", "phones")


def test_empty_brand_audience(au: App) -> None:
    create_audience(au, "au", "nobody", "attribute.city = 火星 or (member and not member)")
    assert count_audience(au, "au", "nobody", as_of=AS_OF)["customers"] == 0
    snap = snapshot_audience(au, "au", "nobody", as_of=AS_OF)
    assert snap["customers"] == 0
    diff = diff_audiences(au, "au", "nobody", "nobody", as_of=AS_OF)
    assert (diff["union"], diff["jaccard"]) == (0, None)
