"""The synthetic brand: deterministic, valid canonical data, realistic identifier overlaps."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow.csv as pacsv
import pytest

from siyu.demo.generate import generate
from siyu.identity.normalise import normalise_identifier
from siyu.ingest.schema import ENTITIES, IDENTIFIER_TYPES

PLACEHOLDERS = {"+8613800000000", "+8613888888888"}


def _read(path: Path) -> list[dict]:
    text = {c: "string" for c in ("phone", "member_no", "id_value")}
    options = pacsv.ConvertOptions(strings_can_be_null=True, column_types=text)
    return pacsv.read_csv(path, convert_options=options).to_pylist()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate(out, customers=2_000, seed=5)
    return out


def _digest(folder: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.glob("*.csv")))).hexdigest()


def test_deterministic_per_seed(demo: Path, tmp_path: Path) -> None:
    generate(tmp_path / "same", customers=2_000, seed=5)
    generate(tmp_path / "other", customers=2_000, seed=6)
    assert _digest(tmp_path / "same") == _digest(demo)
    assert _digest(tmp_path / "other") != _digest(demo)


def test_headers_follow_the_canonical_schema(demo: Path) -> None:
    for entity in ENTITIES.values():
        if entity.name == "relation_types":
            continue  # the demo brand uses only the built-in relation types: nothing to declare
        rows = _read(demo / f"{entity.name}.csv")
        assert rows, entity.name
        assert set(rows[0]) <= set(entity.column_names), entity.name
        for column in entity.columns:
            if column.required:
                assert all(row[column.name] not in (None, "") for row in rows), (entity.name, column.name)


def test_money_is_consistent(demo: Path) -> None:
    orders = _read(demo / "orders.csv")
    items = _read(demo / "order_items.csv")
    assert all(isinstance(o["amount_fen"], int) and 0 <= o["refund_fen"] <= o["amount_fen"] for o in orders)
    by_order: dict[str, int] = {}
    for item in items:
        by_order[item["order_id"]] = by_order.get(item["order_id"], 0) + item["amount_fen"]
    assert all(by_order[o["order_id"]] == o["amount_fen"] for o in orders)
    statuses = {o["status"] for o in orders}
    assert {"completed", "refunded", "partially_refunded", "created"} <= statuses
    assert any(o["share_id"] for o in orders)


def test_strong_identifiers_belong_to_one_person_except_placeholders(demo: Path) -> None:
    person = {(t["source"], t["source_customer_id"]): t["person_id"] for t in _read(demo / "truth.csv")}
    customers = _read(demo / "customers.csv")
    assert len(person) == len(customers)  # truth covers every record exactly once
    owners: dict[tuple[str, str], set[str]] = {}
    for row in customers:
        for id_type, strength in IDENTIFIER_TYPES.items():
            if strength == "strong" and row.get(id_type):
                norm = normalise_identifier(id_type, str(row[id_type]))
                if norm:
                    owners.setdefault(norm, set()).add(person[(row["source"], row["source_customer_id"])])
    shared = {k for k, v in owners.items() if len(v) > 1}
    assert {v for _, v in shared} <= PLACEHOLDERS | {"test@test.com"}
    assert {v for _, v in shared} & PLACEHOLDERS, "placeholder phones must sit on unrelated people"
    # The WeChat family shares a unionid across sources.
    unionid_sources = {}
    for row in customers:
        if row["unionid"]:
            unionid_sources.setdefault(row["unionid"], set()).add(row["source"])
    assert any(len(s) >= 2 for s in unionid_sources.values())
    phones = [row["phone"] for row in customers if row["phone"]]
    assert any(p.startswith("+86 ") for p in phones) and any(p.startswith("0086-") for p in phones)
    assert any(row["phone_masked"] for row in customers)


def test_undeclared_field_is_used_in_events(demo: Path) -> None:
    declared = {f["code"] for f in _read(demo / "fields.csv")}
    used = {e["field"] for e in _read(demo / "events.csv") if e["field"]}
    assert "douyin_live" in used - declared
    types = {e["type"] for e in _read(demo / "events.csv")}
    assert {"visit", "share", "share_click", "review"} <= types


def test_guides_data_hangs_together(demo: Path) -> None:
    stores = {s["store_code"] for s in _read(demo / "stores.csv")}
    staff = _read(demo / "staff.csv")
    assert {s["store_code"] for s in staff} <= stores
    guides = {s["staff_id"] for s in staff if s["role"] == "guide"}
    assert {s["role"] for s in staff} == {"guide", "manager"} and {s["status"] for s in staff} == {"active", "left"}
    # the guides named by orders and WeCom relations are the imported staff
    assert {o["guide_code"] for o in _read(demo / "orders.csv") if o["guide_code"]} <= guides
    assert {r["staff_code"] for r in _read(demo / "relations.csv") if r["staff_code"]} <= guides
    externals = {c["external_userid"] for c in _read(demo / "customers.csv") if c["external_userid"]}
    messages = _read(demo / "messages.csv")
    assert {m["external_userid"] for m in messages} <= externals
    assert {m["staff_id"] for m in messages} <= guides
    assert {m["direction"] for m in messages} == {"in", "out"}
    assert any("返现" in (m["text"] or "") for m in messages)  # a sensitive word for the demo rules
