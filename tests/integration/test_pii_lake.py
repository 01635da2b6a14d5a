"""PII sealed in the lake's raw tables (siyu.privacy.lake_columns): no clear phone, e-mail or name in
any Parquet file after an import, One-ID on keyed hashes gives the very same customers as on clear
values, look-ups by phone hash the query, and a wrong key is a clear error."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.customers.view import customer_view
from siyu.demo.generate import generate
from siyu.identity.normalise import normalise_identifier
from siyu.identity.service import MAP_TABLE, ResolveOutcome, run_resolve
from siyu.ingest.importer import import_path
from siyu.privacy.crypto import PiiUnreadableError
from siyu.privacy.lake_rotation import rotate_lake


@dataclass
class Lakes:
    data: Path
    clear: App
    sealed: App
    clear_outcome: ResolveOutcome
    sealed_outcome: ResolveOutcome


def _app(home: Path, encryption: bool) -> App:
    home.mkdir()
    return bootstrap(Settings(home=home, database_url=f"sqlite:///{home / 'siyu.db'}", pii_encryption=encryption))


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lakes]:
    """The same demo files imported and resolved twice: sealed (the default) and clear (encryption off)."""
    root = tmp_path_factory.mktemp("pii_lake")
    data = root / "demo"
    generate(data, customers=1_000, seed=3)
    clear, sealed = _app(root / "clear", False), _app(root / "sealed", True)
    import_path(clear, data)
    import_path(sealed, data)
    yield Lakes(data, clear, sealed, run_resolve(clear), run_resolve(sealed))
    for app in (clear, sealed):
        app.store.engine.dispose()


def _clear_values(data: Path) -> set[str]:
    """Every phone, e-mail and name of the demo files, as given and as One-ID normalises them."""
    text = pacsv.ConvertOptions(strings_can_be_null=True, column_types={c: pa.string() for c in ("phone", "email")})
    customers = pacsv.read_csv(data / "customers.csv", convert_options=text).to_pylist()
    identities = pacsv.read_csv(data / "identities.csv", convert_options=text).to_pylist()
    pairs = [(c, r[c]) for r in customers for c in ("phone", "email", "name")]
    pairs += [(r["id_type"], r["id_value"]) for r in identities if r["id_type"] in ("phone", "email")]
    out: set[str] = set()
    for kind, value in pairs:
        if not value or "*" in value:  # masked platform phones (138****5678) are not the person's number
            continue
        out.add(value.strip())
        norm = normalise_identifier(kind, value) if kind != "name" else None
        if norm is not None:
            out |= {norm[1], norm[1].removeprefix("+86")}
    return out


def _cells(path: Path) -> set[str]:
    table = pq.read_table(path)
    return {v for c in table.columns if pa.types.is_string(c.type) for v in c.to_pylist() if v is not None}


def test_no_clear_phone_email_or_name_in_any_lake_parquet_file(lakes: Lakes) -> None:
    # (the demo's staff, declared with their names, share the small pool of customer names)
    staff = set(pacsv.read_csv(lakes.data / "staff.csv")["name"].to_pylist())
    secrets = _clear_values(lakes.data) - staff
    assert len(secrets) > 1_000  # the scan looks for something real
    files = list(lakes.sealed.lake.root.rglob("*.parquet"))
    assert {p.relative_to(lakes.sealed.lake.root).parts[0] for p in files} >= {
        "customers",
        "identities",
        "identity_index",
    }
    for path in files:  # every file of every table and version, read past Delta
        found = _cells(path) & secrets
        assert not found, (path, sorted(found)[:3])
        raw = path.read_bytes()
        assert not [s for s in secrets if len(s) >= 8 and s.encode() in raw], path
    # the clear lake (encryption off) holds them: the scan would see them
    clear = set().union(*(_cells(p) for p in (lakes.clear.lake.root / "customers").rglob("*.parquet")))
    assert len(clear & secrets) > 500


def test_one_id_on_hashes_gives_the_same_customers(lakes: Lakes) -> None:
    def mapping(app: App) -> pa.Table:
        table = app.engine.to_arrow(app.engine.table(MAP_TABLE))
        return table.select(["brand", "source", "source_customer_id", "customer_id"]).sort_by(
            [("source", "ascending"), ("source_customer_id", "ascending")]
        )

    assert mapping(lakes.sealed).equals(mapping(lakes.clear))  # precision and recall unchanged, exactly
    a, b = lakes.clear_outcome, lakes.sealed_outcome
    assert (a.source_customers, a.customers, a.merged) == (b.source_customers, b.customers, b.merged)
    assert a.customers < a.source_customers  # records were linked

    # junk limits and the placeholder blocklist work on hashes: the same values are left out
    def junk(o: ResolveOutcome) -> list[tuple[str, str, int]]:
        return sorted((j["id_type"], j["reason"], j["source_customers"]) for j in o.junk_identifiers)

    assert junk(a) == junk(b) and any(r == "blocklist" for _, r, _ in junk(b))


def _a_phone(data: Path) -> str:
    text = pacsv.ConvertOptions(strings_can_be_null=True, column_types={"phone": pa.string()})
    for row in pacsv.read_csv(data / "customers.csv", convert_options=text).to_pylist():
        norm = normalise_identifier("phone", row["phone"] or "")
        if norm is not None and norm[0] == "phone" and norm[1].startswith("+861"):
            return norm[1].removeprefix("+86")
    raise AssertionError("the demo has phones")


def test_look_up_by_phone_hashes_the_query(lakes: Lakes) -> None:
    phone = _a_phone(lakes.data)
    spaced = f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}"  # any format: normalised, then hashed
    seen = customer_view(lakes.sealed, spaced, lights=False)
    assert seen["customer_id"] == customer_view(lakes.clear, phone, lights=False)["customer_id"]
    phones = [i["value"] for i in seen["identifiers"] if i["type"] == "phone"]
    assert f"{phone[:3]}****{phone[-4:]}" in phones  # masked from the mask column
    clear = customer_view(lakes.sealed, seen["customer_id"], mask=False, lights=False)
    assert "+86" + phone in [i["value"] for i in clear["identifiers"] if i["type"] == "phone"]  # opened


def test_a_wrong_key_is_a_clear_error(lakes: Lakes) -> None:
    phone = _a_phone(lakes.data)
    customer_id = customer_view(lakes.sealed, phone, lights=False)["customer_id"]
    s = lakes.sealed.settings
    wrong = bootstrap(Settings(home=s.home, database_url=s.database_url, pii_key="not-the-key-that-sealed-it"))
    try:
        with pytest.raises(PiiUnreadableError) as caught:
            customer_view(wrong, customer_id, mask=False, lights=False)
        assert caught.value.code == "pii_unreadable" and "SIYU_PII_KEY" in str(caught.value)
    finally:
        wrong.store.engine.dispose()


def test_a_lake_from_before_encryption_stays_clear_until_rotate_pii_seals_it(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "customers.csv", tmp_path / "b" / "customers.csv"
    first.write_text("brand,source,source_customer_id,phone,name\nacme,pos,c1,13812345678,张三\n")
    second.write_text("brand,source,source_customer_id,phone,name\nacme,shop,s1,+86 138 1234 5678,张三\n")
    home = tmp_path / "home"
    import_path(_app(home, False), first)  # a lake written before lake encryption
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'siyu.db'}")
    app = bootstrap(settings)
    report = import_path(app, second)
    assert "rotate-pii" in " ".join(report.warnings)  # landed clear: hashes and clear never mix
    assert rotate_lake(app) == {"customers": 2, "identities": 0}
    assert rotate_lake(app) == {"customers": 0, "identities": 0}
    lake = app.engine.to_arrow(app.engine.table("customers")).to_pylist()
    assert [r["phone"] for r in lake] == [None, None] and len({r["phone_hash"] for r in lake}) == 1
    assert run_resolve(app).customers == 1  # the two records link on the phone's hash
