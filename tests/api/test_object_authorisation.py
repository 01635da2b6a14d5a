"""OWASP API Top 10 over real HTTP: object-level authorisation (API1) and mass assignment (API3).

Every route with an object id in its path or body is found by walking the OpenAPI document, so a
new route is covered without editing this file. Asked with a key of ANOTHER brand (every scope)
for the objects of brand `au`, each answers 404 — not 403 (that would confirm the object exists),
not 200. Every JSON body the API defines refuses fields a caller may not set."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.api.conftest import bearer, new_key, running

from siyu.bootstrap import App

# Routes left out, each for a reason: no object of a brand in the path or body.
EXCLUDED = {
    "/api/v1/ingest/{entity}": "a record type, not an object; rows are checked against the key (test_ingest_rows)",
    "/u/{token}": "a signed one-click unsubscribe capability, not an API-key route (test_messaging_customers)",
}
GUIDE = "/api/v1/guides/me/"  # guide-bound keys only: another brand's key is refused before any id is read
BODY_IDS = {"customer_id", "customer", "customer_ids"}  # ids of existing objects in a body
# JSON bodies that take extra fields on purpose.
OPEN_BODIES = {"Batch", "Identify", "Track", "Page", "Screen", "Group", "Alias"}  # Segment spec: traits are open


def _ids(app: App) -> dict[str, str]:
    idmap = app.engine.to_arrow(app.engine.table("identity_map")).to_pylist()  # type: ignore[arg-type]
    a = next(r["customer_id"] for r in idmap if r["brand"] == "au" and r["source_customer_id"] == "a1")
    return {"customer_id": a, "customer": a, "code": "band", "tag": "band"}


def _value(name: str, schema: dict[str, Any], ids: dict[str, str]) -> Any:
    kind = schema.get("type") or next((s.get("type") for s in schema.get("anyOf", []) if s.get("type")), "string")
    if kind == "integer":
        return 1
    if kind == "array":
        return [ids.get(name.removesuffix("s"), "x1")]
    return ids.get(name, "x1")


def _body(doc: dict[str, Any], op: dict[str, Any], ids: dict[str, str]) -> dict[str, Any] | None:
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None or "$ref" not in content["schema"]:
        return None
    schema = doc["components"]["schemas"][content["schema"]["$ref"].rsplit("/", 1)[-1]]
    props = schema.get("properties", {})
    return {k: _value(k, props[k], ids) for k in schema.get("required", [])}


@pytest.fixture(scope="module")
def served(au_app: App) -> Any:
    with running(au_app) as url:
        yield url


def test_another_brands_objects_are_not_found(au_app: App, served: str) -> None:
    ids = _ids(au_app)
    other = new_key(au_app, "zz", "admin,read,loyalty,ingest,pii")  # every scope, of another brand
    mine = new_key(au_app, "au", "admin,read,loyalty,pii")
    with httpx.Client(base_url=served, timeout=60) as c:
        doc = c.get("/openapi.json").json()
        checked, leaks = [], []
        for path, ops in doc["paths"].items():
            if path in EXCLUDED:
                continue
            for method, op in ops.items():
                params = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
                body = _body(doc, op, ids)
                if path.startswith(GUIDE) or (not params and not (body and BODY_IDS & body.keys())):
                    continue  # no object id: nothing to authorise per object
                url = path.format(**{p: ids.get(p, "1") for p in params})
                got = c.request(method.upper(), url, json=body, headers=bearer(other))
                checked.append(f"{method.upper()} {path}")
                if got.status_code != 404:
                    leaks.append((method.upper(), path, got.status_code, got.json().get("code")))
        assert not leaks, leaks
        assert len(checked) >= 20  # the walk found the routes (a broken walk would pass vacuously)
        # …and the objects are real: the owning brand sees them.
        customer = ids["customer_id"]
        assert c.get(f"/api/v1/customers/{customer}", headers=bearer(mine)).status_code == 200
        assert c.get(f"/api/v1/customers/{customer}/tags", headers=bearer(mine)).status_code == 200


def test_request_bodies_refuse_fields_a_caller_may_not_set(au_app: App, served: str) -> None:
    with httpx.Client(base_url=served, timeout=60) as c:
        doc = c.get("/openapi.json").json()
        bodies = {
            op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
            for ops in doc["paths"].values()
            for op in ops.values()
            if "$ref" in op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        }
        schemas = doc["components"]["schemas"]
        open_ = sorted(n for n in bodies - OPEN_BODIES if schemas[n].get("additionalProperties") is not False)
        assert not open_, f"request bodies that accept unknown fields: {open_}"
        assert len(bodies - OPEN_BODIES) >= 10
        customer = _ids(au_app)["customer_id"]
        admin = new_key(au_app, "au", "admin,read")
        sneaky = {"value": "high", "brand": "zz", "id": 7, "created_at": "2020-01-01T00:00:00Z"}
        got = c.put(f"/api/v1/customers/{customer}/tags/band", json=sneaky, headers=bearer(admin))
        assert got.status_code == 422 and {"brand", "id", "created_at"} <= {e["field"] for e in got.json()["errors"]}, (
            got.text
        )
