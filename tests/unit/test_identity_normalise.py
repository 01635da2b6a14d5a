"""Identifier normalisation: phone variants, masked phones, e-mails; Python and Ibis agree."""

from __future__ import annotations

import ibis
import pyarrow as pa
import pytest

from siyu.identity.normalise import (
    identifier_value_expr,
    load_blocklist,
    mask_value,
    normalise_identifier,
    normalise_phone,
    with_identifier_value,
)

SAME_PHONE = [
    "13812345678",
    "+86 138 1234 5678",
    "+8613812345678",
    "0086-138-1234-5678",
    "0086 13812345678",
    "86 13812345678",
    "86-13812345678",
    "(+86)13812345678",
    "138-1234-5678",
    "138 1234 5678",
    " 13812345678 ",
    "１３８１２３４５６７８",  # full-width digits
]


@pytest.mark.parametrize("raw", SAME_PHONE)
def test_phone_variants_normalise_to_one_value(raw: str) -> None:
    assert normalise_phone(raw) == ("phone", "+8613812345678")


@pytest.mark.parametrize("raw", ["138****5678", "138 **** 5678"])
def test_masked_phone_is_its_own_weak_type(raw: str) -> None:
    assert normalise_phone(raw) == ("phone_masked", "138****5678")


@pytest.mark.parametrize("raw", ["", "abc", "12345", "1381234567", "23812345678", "138123456789", "phone"])
def test_garbage_is_not_a_phone(raw: str) -> None:
    assert normalise_phone(raw) is None


def test_foreign_numbers_keep_their_country_code() -> None:
    assert normalise_phone("+1 415-555-0100") == ("phone", "+14155550100")
    assert normalise_phone("+852 9123 4567") == ("phone", "+85291234567")


def test_email_is_trimmed_and_lower_cased() -> None:
    assert normalise_identifier("email", "  Alice@Example.COM ") == ("email", "alice@example.com")
    assert normalise_identifier("unionid", " oU123 ") == ("unionid", "oU123")
    assert normalise_identifier("unionid", "   ") is None


def test_ibis_and_python_agree() -> None:
    raws = [*SAME_PHONE, "138****5678", "abc", "+1 415-555-0100", "23812345678", "0086-138-1234-5678"]
    # Foreign numbers next to the +86 / 0086 prefixes they must not be taken for, and short ones.
    raws += ["+852 9123 4567", "+8612345", "+0086 138 1234 5678", "+00852 1234 5678", "+0087 1234 5678", "+1234567"]
    table = ibis.memtable({"id_type": ["phone"] * len(raws) + ["email"], "raw": [*raws, " A@B.cn "]})
    out = ibis.duckdb.connect().to_pyarrow(table.mutate(v=identifier_value_expr(table.id_type, table.raw)))
    got = out["v"].to_pylist()
    expected = []
    for raw in raws:
        norm = normalise_phone(raw)
        expected.append(norm[1] if norm and norm[0] == "phone" else None)
    assert got == [*expected, "a@b.cn"]


def test_blocklist_ships_placeholders_normalised() -> None:
    blocked = load_blocklist()
    assert ("phone", "+8613800000000") in blocked
    assert ("email", "test@test.com") in blocked
    assert ("*", "null") in blocked


def test_masking_hides_the_middle() -> None:
    assert mask_value("phone", "+8613812345678") == "138****5678"
    assert mask_value("email", "alice@example.com") == "a***@example.com"
    assert "12345" not in mask_value("member_no", "M123456789")


def test_the_staged_identifier_value_equals_the_one_expression() -> None:
    """`with_identifier_value` (what extraction uses: each stage computed once) gives what
    `identifier_value_expr` gives, for every kind of value."""
    raws = ["138 1234 5678", "+86 138-1234-5678", "008613812345678", "８６１３８１２３４５６７８", "+44 20 7946 0958",
            "12345", "", "  ", "abc", "A@B.com ", "＋8613812345678", "861381234567"]  # fmt: skip
    types = ["phone", "email", "unionid"]
    rows = [(t, r) for t in types for r in raws]
    table = ibis.memtable(pa.table({"id_type": [t for t, _ in rows], "raw": [r for _, r in rows]}))
    con = ibis.duckdb.connect()
    one = con.to_pyarrow(table.mutate(v=identifier_value_expr(table.id_type, table.raw)))["v"].to_pylist()
    staged = con.to_pyarrow(with_identifier_value(table, "id_type", "raw", "v"))["v"].to_pylist()
    assert staged == one
