"""Canonical import through the service: quarantine reasons, idempotency, updates, encodings."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.core.errors import UnreadableFileError
from siyu.ingest import registry
from siyu.ingest.importer import import_path, quarantine
from siyu.ingest.schema import RELATION_TYPES
from siyu.ingest.views import latest
from siyu.privacy.lake_columns import open_rows

ORDERS_HEADER = "brand,source,order_id,source_customer_id,status,paid_at,amount_fen,refund_fen\n"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def counts(report, entity: str = "orders") -> dict[str, int]:
    return report.as_json()[entity]


def test_every_quarantine_reason_is_reported_with_line_and_field(app: App, tmp_path: Path) -> None:
    f = write(
        tmp_path / "orders.csv",
        ORDERS_HEADER
        + "demo,pos,o1,c1,completed,2024-06-01 10:00:00,1000,0\n"  # 2 good
        + "demo,pos,,c1,completed,2024-06-01 10:00:00,1000,0\n"  # 3 missing key
        + "demo,pos,o3,c1,completed,2024-13-45 10:00,1000,0\n"  # 4 unparsable timestamp
        + "demo,pos,o4,c1,completed,2024-06-01,12.50,0\n"  # 5 decimal money
        + "demo,pos,o5,c1,completed,2024-06-01,-100,0\n"  # 6 negative money
        + "demo,pos,o6,c1,completed,2024-06-01,abc,0\n"  # 7 not a number
        + "demo,pos,o7,c1,completed,2024-06-01,100,101\n"  # 8 refund > amount
        + "demo,pos,o8,c1,teleported,2024-06-01,100,0\n"  # 9 unknown status
        + "demo,pos,o9,,completed,2024-06-01,100,0\n"  # 10 missing required value
        + "demo,pos,o10,c1,paid,,100,0\n"  # 11 paid without paid_at
        + "demo,pos,o11,c1,paid,2024-06-01,100,0\n"  # 12 duplicate key, superseded
        + "demo,pos,o11,c1,paid,2024-06-01,200,0\n",  # 13 wins
    )
    report = import_path(app, f)
    assert counts(report) == {"accepted": 2, "updated": 0, "unchanged": 0, "quarantined": 10}
    rows = {r["line"]: (r["field"], r["reason"]) for r in quarantine(app)}
    assert rows[3] == ("order_id", "missing key")
    assert rows[4][0] == "paid_at" and rows[4][1].startswith("unparsable timestamp")
    assert rows[5][0] == "amount_fen" and "integer number of fen" in rows[5][1]
    assert rows[6] == ("amount_fen", "negative money: -100")
    assert rows[7][0] == "amount_fen" and "not an integer" in rows[7][1]
    assert rows[8] == ("refund_fen", "refund greater than amount")
    assert rows[9][0] == "status" and "unknown status 'teleported'" in rows[9][1]
    assert rows[10] == ("source_customer_id", "missing required value")
    assert rows[11] == ("paid_at", "paid order without paid_at")
    assert rows[12] == ("order_id", "duplicate key in file; superseded by line 13")
    assert set(rows) == set(range(3, 13))
    # The raw row is kept for correction.
    assert next(r for r in quarantine(app) if r["line"] == 9)["raw"]["status"] == "teleported"
    kept = app.engine.to_arrow(latest(app.engine, "orders").order_by("order_id"))
    assert kept["order_id"].to_pylist() == ["o1", "o11"]
    assert kept["amount_fen"].to_pylist() == [1000, 200]


def test_reimport_is_a_no_op_and_corrected_row_updates(app: App, tmp_path: Path) -> None:
    body = "demo,pos,o1,c1,completed,2024-06-01 10:00:00,1000,0\ndemo,pos,o2,c1,completed,2024-06-02 10:00:00,500,0\n"
    f = write(tmp_path / "orders.csv", ORDERS_HEADER + body)
    assert counts(import_path(app, f)) == {"accepted": 2, "updated": 0, "unchanged": 0, "quarantined": 0}
    version = app.lake.version("orders")
    assert counts(import_path(app, f)) == {"accepted": 0, "updated": 0, "unchanged": 2, "quarantined": 0}
    assert app.lake.version("orders") == version  # nothing written

    # Same instant written with an explicit offset is the same content.
    same = write(
        tmp_path / "b" / "orders.csv",
        ORDERS_HEADER + body.replace("2024-06-01 10:00:00", "2024-06-01T02:00:00Z"),
    )
    assert counts(import_path(app, same))["unchanged"] == 2

    corrected = write(
        tmp_path / "c" / "orders.csv",
        ORDERS_HEADER
        + body.replace(",1000,0", ",1000,300").replace("completed,2024-06-01", "partially_refunded,2024-06-01")
        + "demo,pos,o3,c2,completed,2024-06-03 10:00:00,800,0\n",
    )
    assert counts(import_path(app, corrected)) == {
        "accepted": 1,
        "updated": 1,
        "unchanged": 1,
        "quarantined": 0,
    }
    current = app.engine.to_arrow(latest(app.engine, "orders").order_by("order_id")).to_pydict()
    assert current["order_id"] == ["o1", "o2", "o3"]
    assert current["refund_fen"] == [300, 0, 0]
    assert current["status"][0] == "partially_refunded"
    # The earlier version is still in the raw table (append-only).
    assert app.engine.table("orders").count().execute() == 4


def test_naive_timestamps_mean_brand_time_zone(app: App, tmp_path: Path) -> None:
    f = write(
        tmp_path / "orders.csv",
        ORDERS_HEADER
        + "demo,pos,o1,c1,completed,2024-06-01 08:00:00,1,0\ndemo,pos,o2,c1,completed,2024-06-01T08:00:00+00:00,1,0\n",
    )
    import_path(app, f)
    paid = app.engine.to_arrow(latest(app.engine, "orders").order_by("order_id"))["paid_at"].to_pylist()
    assert [p.isoformat() for p in paid] == ["2024-06-01T00:00:00+00:00", "2024-06-01T08:00:00+00:00"]


def test_gbk_file_is_detected(app: App, tmp_path: Path) -> None:
    text = "brand,source,source_customer_id,name,city,phone\ndemo,pos,p1,张三,上海,13812345678\n"
    f = write(tmp_path / "customers.csv", text, encoding="gbk")
    report = import_path(app, f)
    assert report.files[0].encoding == "gb18030"
    rows = app.engine.to_arrow(latest(app.engine, "customers")).to_pylist()
    row = open_rows(app.settings.pii_keyring, "customers", rows)[0]  # the lake keeps the name sealed
    assert (row["name"], row["city"]) == ("张三", "上海")


def test_utf8_bom_and_brand_option(app: App, tmp_path: Path) -> None:
    f = write(tmp_path / "customers.csv", "\ufeffsource,source_customer_id,name\npos,p1,李四\n")
    with pytest.raises(UnreadableFileError, match="brand"):
        import_path(app, f)
    report = import_path(app, f, brand="acme")
    assert report.files[0].encoding == "utf-8-sig"
    rows = app.engine.to_arrow(latest(app.engine, "customers")).to_pylist()
    row = open_rows(app.settings.pii_keyring, "customers", rows)[0]
    assert (row["brand"], row["name"]) == ("acme", "李四")


def test_garbage_file_exits_with_message_and_writes_nothing(app: App, tmp_path: Path) -> None:
    binary = tmp_path / "g1" / "orders.csv"
    binary.parent.mkdir()
    binary.write_bytes(b"PK\x03\x04\x00\x00binary\x00\xff\xfe")
    with pytest.raises(UnreadableFileError, match="binary"):
        import_path(app, binary)
    ragged = write(tmp_path / "g2" / "orders.csv", ORDERS_HEADER + "demo,pos,o1\n")
    with pytest.raises(UnreadableFileError, match="cannot read as CSV"):
        import_path(app, ragged)
    wrong = write(tmp_path / "g5" / "orders.csv", "hello,world\n1,2\n")
    with pytest.raises(UnreadableFileError, match="missing column"):
        import_path(app, wrong)
    event = (
        '{"brand":"d","source":"s","event_id":"e","type":"visit","source_customer_id":"c","occurred_at":"2024-01-01"}'
    )
    bad_json = write(tmp_path / "g3" / "events.jsonl", event + "\nnot json at all\n")
    with pytest.raises(UnreadableFileError, match="line 2"):
        import_path(app, bad_json)
    bad_parquet = write(tmp_path / "g4" / "orders.parquet", "not parquet")
    with pytest.raises(UnreadableFileError):
        import_path(app, bad_parquet)
    assert not app.lake.exists("orders") and not app.lake.exists("events")
    assert quarantine(app) == []


def test_folder_is_checked_before_anything_is_written(app: App, tmp_path: Path) -> None:
    write(tmp_path / "d" / "customers.csv", "brand,source,source_customer_id\ndemo,pos,p1\n")
    (tmp_path / "d" / "orders.csv").write_bytes(b"\x00\x01binary")
    with pytest.raises(UnreadableFileError):
        import_path(app, tmp_path / "d")
    assert not app.lake.exists("customers")


def test_jsonl_and_parquet_and_unknown_field_warning(app: App, tmp_path: Path) -> None:
    d = tmp_path / "d"
    write(d / "fields.csv", "brand,code,name_zh,name_en,platform\ndemo,wecom,企业微信,WeCom,wechat\n")
    write(
        d / "events.jsonl",
        '{"brand":"demo","source":"mp","event_id":"e1","field":"wecom","type":"visit","source_customer_id":"c1",'
        '"occurred_at":"2024-06-01T10:00:00+08:00","properties":{"page":"home","n":1}}\n'
        '{"brand":"demo","source":"mp","event_id":"e2","field":"douyin_live","type":"visit","source_customer_id":"c1",'
        '"occurred_at":"2024-06-01T10:00:00+08:00"}\n'
        '{"brand":"demo","source":"mp","event_id":"e3","field":"wecom","type":"Bad Type","source_customer_id":"c1",'
        '"occurred_at":"2024-06-01T10:00:00+08:00"}\n'
        '{"brand":"demo","source":"mp","event_id":"e4","field":"wecom","type":"visit","source_customer_id":"c1",'
        '"occurred_at":"2024-06-01T10:00:00+08:00","properties":"[1,2]"}\n',
    )
    pq.write_table(
        pa.table(
            {
                "brand": ["demo"],
                "source": ["crm"],
                "member_no": ["M1"],
                "source_customer_id": ["c1"],
                "joined_at": pa.array([1_718_668_800], pa.timestamp("s", tz="UTC")),  # 2024-06-18
            }
        ),
        d / "memberships.parquet",
    )
    report = import_path(app, d)
    data = report.as_json()
    assert data["fields"]["accepted"] == 1
    assert data["events"] == {"accepted": 2, "updated": 0, "unchanged": 0, "quarantined": 2}
    assert data["memberships"]["accepted"] == 1
    assert data["total"]["accepted"] == 4
    assert any("douyin_live" in w for w in report.warnings)
    assert [(r["line"], r["field"]) for r in quarantine(app)] == [(3, "type"), (4, "properties")]
    props = app.engine.to_arrow(latest(app.engine, "events").filter(lambda t: t.event_id == "e1"))["properties"]
    assert props.to_pylist() == ['{"n": 1, "page": "home"}']
    joined = app.engine.to_arrow(latest(app.engine, "memberships"))["joined_at"].to_pylist()[0]
    assert joined.year == 2024
    # Second import: the field is now known, no warning; everything unchanged.
    again = import_path(app, d)
    assert again.warnings == [] and again.as_json()["total"]["accepted"] == 0


def test_relation_customer_and_brand_reasons(app: App, tmp_path: Path) -> None:
    d = tmp_path / "r"
    write(
        d / "relations.csv",
        "brand,source,field,relation_type,source_customer_id,started_at,ended_at\n"
        "acme,wecom,wecom,wecom_friend,w1,2024-06-01 10:00:00,2024-07-01 10:00:00\n"  # 2 good
        "acme,wecom,wecom,like,w1,2024-06-01 10:00:00,\n"  # 3 unknown relation type
        "acme,wecom,wecom,group_member,w1,2024-06-01 10:00:00,2024-05-01 10:00:00\n"  # 4 ended before start
        "other,wecom,wecom,group_member,w2,2024-06-01 10:00:00,\n",  # 5 brand differs from --brand
    )
    write(
        d / "customers.csv",
        "source,source_customer_id,birthday,gender\npos,p1,1990/01/01,female\npos,p2,1990-01-01,robot\n",
    )
    write(
        d / "memberships.csv", "source,member_no,source_customer_id,joined_at,points_balance\ncrm,M1,c1,2024-01-01,-5\n"
    )
    report = import_path(app, d, brand="acme")
    assert report.as_json()["relations"] == {"accepted": 1, "updated": 0, "unchanged": 0, "quarantined": 3}
    rows = {(Path(r["file"]).name, r["line"]): (r["field"], r["reason"]) for r in quarantine(app)}
    assert (
        rows[("relations.csv", 3)][0] == "relation_type"
        and "unknown relation_type 'like'" in rows[("relations.csv", 3)][1]
    )
    assert rows[("relations.csv", 4)] == ("ended_at", "relation ended before it started")
    assert rows[("relations.csv", 5)] == ("brand", "brand differs from --brand acme: other")
    assert rows[("customers.csv", 2)] == ("birthday", "unparsable date (YYYY-MM-DD): 1990/01/01")
    assert rows[("customers.csv", 3)][0] == "gender"
    assert rows[("memberships.csv", 2)] == ("points_balance", "negative value: -5")


def test_timestamps_out_of_bounds_are_quarantined(app: App, tmp_path: Path) -> None:
    f = write(
        tmp_path / "events.csv",
        "brand,source,event_id,type,source_customer_id,occurred_at\n"
        "acme,app,e1,visit,u1,2024-06-01 10:00:00\n"  # 2 good
        "acme,app,e2,visit,u1,99999-01-01T00:00:00\n"  # 3 was accepted: year 99999
        "acme,app,e3,visit,u1,0000-01-01T00:00:00\n"  # 4 was accepted: year 0
        "acme,app,e4,visit,u1,1989-12-31T23:59:59Z\n"  # 5 before 1990
        "acme,app,e5,visit,u1,2999-01-01T00:00:00Z\n",  # 6 more than a day ahead
    )
    assert counts(import_path(app, f), "events") == {"accepted": 1, "updated": 0, "unchanged": 0, "quarantined": 4}
    rows = [(r["line"], r["field"], r["reason"]) for r in quarantine(app)]
    assert [(line, field) for line, field, _ in rows] == [(3, "occurred_at"), (4, "occurred_at"), (5, "occurred_at"),
                                                          (6, "occurred_at")]  # fmt: skip
    assert rows[0][2] == "timestamp out of range (1990-01-01 … now + 1 day(s)) (时间超出范围): 99999-01-01T00:00:00"


def test_timestamp_bounds_come_from_settings(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", ingest_earliest="2024-06-01", ingest_max_future="P0D")
    app = bootstrap(settings)
    f = write(
        tmp_path / "events.csv",
        "brand,source,event_id,type,source_customer_id,occurred_at\n"
        "acme,app,e1,visit,u1,2024-06-01T00:00:00Z\nacme,app,e2,visit,u1,2024-05-31T23:59:59Z\n",
    )
    assert counts(import_path(app, f), "events")["quarantined"] == 1
    assert "2024-06-01 … now + 0 day(s)" in quarantine(app)[0]["reason"]


def test_relation_types_are_declared_in_relation_types_csv(app: App, tmp_path: Path) -> None:
    d = tmp_path / "rt"
    write(
        d / "relation_types.csv",
        "brand,code,name_zh,name_en,field,connection\n"
        "acme,douyin_fan_group,抖音粉丝群,Douyin fan group,douyin,true\n"
        "acme,follow,关注,Follow,,false\n"
        "acme,Fan Club,,,,\n",  # 4 not snake_case
    )
    write(
        d / "relations.csv",
        "brand,source,field,relation_type,source_customer_id,started_at\n"
        "acme,douyin,douyin,douyin_fan_group,d1,2024-06-01 10:00:00\n"  # 2 declared: was quarantined
        "acme,douyin,douyin,follow,d1,2024-06-01 10:00:00\n"  # 3 declared (not a connection)
        "other,douyin,douyin,follow,d2,2024-06-01 10:00:00\n"  # 4 declared for acme only
        "acme,wecom,wecom,wecom_friend,w1,2024-06-01 10:00:00\n",  # 5 built-in, pre-declared
    )
    report = import_path(app, d).as_json()
    assert report["relation_types"] == {"accepted": 2, "updated": 0, "unchanged": 0, "quarantined": 1}
    assert report["relations"] == {"accepted": 3, "updated": 0, "unchanged": 0, "quarantined": 1}
    rows = {(Path(r["file"]).name, r["line"]): (r["field"], r["reason"]) for r in quarantine(app)}
    assert rows[("relation_types.csv", 4)] == ("code", "code must be snake_case (e.g. douyin_fan_group): Fan Club")
    field, reason = rows[("relations.csv", 4)]
    assert field == "relation_type" and reason.startswith("unknown relation_type 'follow' of brand other: declare it")
    assert "relation_types.csv (columns brand, code, name_zh, name_en, field, connection)" in reason
    assert registry.connection_types(app, "acme") == sorted([*RELATION_TYPES, "douyin_fan_group"])
    assert import_path(app, d).as_json()["relation_types"]["unchanged"] == 2
