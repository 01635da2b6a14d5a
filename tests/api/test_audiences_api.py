"""Audiences and tags over HTTP on the hand-made brand `au` (tests/fixtures/audience_brand.py):
the expected counts are the ones computed by hand for the service tests."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.conftest import KeyMaker, bearer, running
from fixtures.audience_brand import write_brand
from fixtures.audience_ops import define_tag
from siyu.audit.trail import AuditFilter, entries
from siyu.bootstrap import App
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path

AS_OF = {"as_of": "2024-06-30"}


@pytest.fixture
def au_url(app: App, tmp_path: Path) -> Iterator[str]:
    import_path(app, write_brand(tmp_path / "au"))
    run_resolve(app)
    with running(app) as url:
        yield url


def test_audiences_and_tags(app: App, au_url: str, make_key: KeyMaker) -> None:
    define_tag(app, "au", "interest", kind="manual", values=["serum", "cream"], name_zh="兴趣", name_en="Interest")
    admin, read, pii = make_key("au", "admin"), make_key("au", "read"), make_key("au", "read,pii")
    with httpx.Client(base_url=au_url, timeout=120) as c:
        body = {"code": "phones", "rule": "has phone", "name": "有手机号 With phone"}
        assert c.post("/api/v1/audiences", json=body, headers=bearer(read)).status_code == 403  # read cannot create
        created = c.post("/api/v1/audiences", json=body, headers=bearer(admin))
        assert created.status_code == 200, created.text
        assert created.json()["rule"] == {"identifier": "phone"}
        quiet = {"code": "quiet", "rule": {"not": {"bought": True, "last_days": 60}}}
        assert c.post("/api/v1/audiences", json=quiet, headers=bearer(admin)).status_code == 200

        assert [a["code"] for a in c.get("/api/v1/audiences", headers=bearer(read)).json()] == ["phones", "quiet"]
        count = c.get("/api/v1/audiences/phones/count", params=AS_OF, headers=bearer(read)).json()
        assert count["customers"] == 5  # A B C D E
        adhoc = c.post("/api/v1/audiences/count", params=AS_OF, json={"rule": "has phone"}, headers=bearer(read))
        assert adhoc.json()["customers"] == 5
        diff = c.get("/api/v1/audiences/diff", params={"a": "phones", "b": "quiet", **AS_OF}, headers=bearer(read))
        assert (diff.json()["both"], diff.json()["union"]) == (3, 7)  # C D E; A B C D E F G

        bad = c.post("/api/v1/audiences/count", json={"rule": {"all": [{"did": "visit", "min_times": -1}]}},
                     headers=bearer(read))  # fmt: skip
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_rule"
        assert "all[0].min_times" in bad.json()["detail"]

        preview = c.get("/api/v1/audiences/phones/preview", params=AS_OF, headers=bearer(read)).json()
        assert all("****" in (s["phone"] or "****") for s in preview["sample"])  # masked
        masked = c.get("/api/v1/audiences/phones/export", params=AS_OF, headers=bearer(read))
        rows = list(csv.DictReader(io.StringIO(masked.text)))
        assert len(rows) == 5 and all("****" in r["phone"] for r in rows)
        refused = c.get("/api/v1/audiences/phones/export", params={"unmasked": "true", **AS_OF}, headers=bearer(read))
        assert refused.status_code == 403 and refused.json()["code"] == "pii_not_allowed"
        aimless = c.get("/api/v1/audiences/phones/export", params={"unmasked": "true", **AS_OF}, headers=bearer(pii))
        assert aimless.status_code == 422 and aimless.json()["code"] == "purpose_required"  # no purpose, no PII
        asked = {"unmasked": "true", "purpose": "sample delivery", "columns": "customer_id,phone", **AS_OF}
        full = c.get("/api/v1/audiences/phones/export", params=asked, headers=bearer(pii))
        assert "13900000001" in full.text and full.text.splitlines()[0] == '"customer_id","phone"'
        few = c.get("/api/v1/audiences/phones/preview", params={"columns": "city,tier", **AS_OF}, headers=bearer(read))
        assert all(set(s) == {"city", "tier"} for s in few.json()["sample"])
        odd = c.get("/api/v1/audiences/phones/preview", params={"columns": "city,idcard"}, headers=bearer(read))
        assert odd.status_code == 422 and "idcard" in odd.json()["detail"]
        reach = c.get("/api/v1/audiences/phones/reach", params=AS_OF, headers=bearer(read)).json()
        assert reach["customers"] == 5 and "sms" in reach["channels"]

        cid = c.get("/api/v1/customers", params={"phone": "13900000001"}, headers=bearer(read)).json()["customers"][0]
        path = f"/api/v1/customers/{cid}/tags/interest"
        assert c.put(path, json={"value": "serum"}, headers=bearer(read)).status_code == 403
        tag = c.put(path, json={"value": "serum", "reason": "asked in WeCom"}, headers=bearer(admin))
        assert tag.status_code == 200, tag.text
        bad = c.put(path, json={"value": "caviar"}, headers=bearer(admin))
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_tag"
        mine = c.get(f"/api/v1/customers/{cid}/tags", headers=bearer(read)).json()
        assert [(t["tag"], t["value"], t["set_by"]) for t in mine if t["tag"] == "interest"] == [
            ("interest", "serum", mine[0]["set_by"])
        ] and mine[0]["set_by"].startswith("api-key:")
        view = c.get(f"/api/v1/customers/{cid}", headers=bearer(read)).json()
        assert {"tags", "lights"} <= set(view) and view["lights"]["sms"]["on"] is True

    # audited as the key: two creations, two exports (the refused unmasked one is not an export), one tag
    with app.store.unit_of_work() as session:
        audiences = entries(session, AuditFilter(subject="audience"))
        tags = entries(session, AuditFilter(subject="customer_tag"))
    assert [(r["action"], r["subject_id"]) for r in reversed(audiences)] == [
        ("audience.create", "au/phones"),
        ("audience.create", "au/quiet"),
        ("audience.export", "au/phones"),
        ("audience.export", "au/phones"),
    ]
    assert [r["after"]["unmasked"] for r in reversed(audiences[:2])] == [False, True]
    assert audiences[0]["after"]["purpose"] == "sample delivery"
    assert audiences[0]["after"]["columns"] == ["customer_id", "phone"]
    key_id = mine[0]["set_by"].removeprefix("api-key:")
    assert [(r["actor"], r["action"], r["subject_id"], r["after"]) for r in tags] == [
        (f"api_key:{key_id}", "tag.set", f"au/{cid}/interest", {"value": "serum", "reason": "asked in WeCom"})
    ]
    assert all(r["actor"].startswith("api_key:") for r in audiences)
