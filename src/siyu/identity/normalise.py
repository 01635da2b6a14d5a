"""Identifier normalisation (Python and vectorised Ibis), placeholder blocklist and masking.

Phones: mainland mobiles in any common format become E.164 `+86…`; a value with `*` is a masked
phone (`phone_masked`, weak), never a phone. Other values are trimmed; e-mails are lower-cased.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import ibis
import ibis.expr.types as ir

BLOCKLIST = Path(__file__).with_name("blocklist.txt")
_CN_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
_SEPARATORS = re.compile(r"[\s\-().\u00a0]")
CASE_INSENSITIVE = ("email",)


def _fullwidth_to_ascii(raw: str) -> str:
    return unicodedata.normalize("NFKC", raw)


def normalise_phone(raw: str) -> tuple[str, str] | None:
    """(id_type, value): ('phone', '+8613812345678'), ('phone_masked', '138****5678') or None."""
    text = _fullwidth_to_ascii(raw).strip()
    if not text:
        return None
    if "*" in text:
        return ("phone_masked", _SEPARATORS.sub("", text))
    compact = _SEPARATORS.sub("", text)
    plus = compact.startswith("+")
    digits = compact.lstrip("+")
    if not digits.isdigit():
        return None
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    elif plus and not digits.startswith("86"):
        return ("phone", "+" + digits) if 8 <= len(digits) <= 15 else None
    if _CN_MOBILE.match(digits):
        return ("phone", "+86" + digits)
    return None


def normalise_identifier(id_type: str, raw: str) -> tuple[str, str] | None:
    """Normalise any identifier; None when there is nothing usable."""
    if id_type == "phone":
        return normalise_phone(raw)
    value = _fullwidth_to_ascii(raw).strip()
    if not value:
        return None
    if id_type in CASE_INSENSITIVE:
        value = value.lower()
    return (id_type, value)


# A mainland mobile after an optional country code (+86, 0086, 86; +0086 86 too, as the engines
# always took it), and a foreign number: '+', 8–15 digits, not starting 86 or 0086 (RE2 has no
# lookahead, hence the spelled-out alternatives). One pattern each, so the value is referenced
# twice: Ibis inlines every reference, and the stepwise version repeated it dozens of times (the
# extraction of every identifier was ~260 KB of SQL, seconds to compile for one customer's view).
_CN_PHONE = r"^(?:\+(?:0086|86|008686)|(?:0086)?(?:86)?)(1[3-9][0-9]{9})$"
_FOREIGN_PHONE = (
    r"^(\+(?:[1-79][0-9]{7,14}|8[0-57-9][0-9]{6,13}|0[1-9][0-9]{6,13}|00[0-79][0-9]{5,12}|008[0-57-9][0-9]{4,11}))$"
)


def phone_expr(col: ir.StringValue) -> ir.StringValue:
    """Vectorised `normalise_phone` for real phones: '+86…' / '+<digits>' or NULL (masked -> NULL)."""
    compact = _compact(col)
    mobile = ("+86" + compact.re_extract(_CN_PHONE, 1)).nullif("+86")
    return ibis.coalesce(mobile, compact.re_extract(_FOREIGN_PHONE, 1).nullif(""))


def identifier_value_expr(id_type: ir.StringValue, value: ir.StringValue) -> ir.StringValue:
    """Vectorised `normalise_identifier` value (phones that are masked give NULL here)."""
    trimmed = value.strip()
    out = ibis.cases(
        (id_type == "phone", phone_expr(value)),
        (id_type.isin(CASE_INSENSITIVE), trimmed.lower()),
        else_=trimmed,
    )
    return out.nullif("")


def with_identifier_value(table: ir.Table, id_type: str, raw: str, out: str) -> ir.Table:
    """`table` plus column `out` = `identifier_value_expr(table[id_type], table[raw])`."""
    return table.mutate(**{out: identifier_value_expr(table[id_type], table[raw])})


def _compact(col: ir.StringValue) -> ir.StringValue:
    """Trimmed, separators removed; NFKC for full-width digits mapped explicitly (engines have no NFKC)."""
    compact = col.strip().re_replace("[\\s\\-().\u00a0]", "")
    for i in range(10):
        compact = compact.replace(chr(0xFF10 + i), str(i))
    return compact.replace("\uff0b", "+")


def load_blocklist(path: Path | None = None) -> set[tuple[str, str]]:
    """Placeholder values: lines `type:value` (or a bare value, meaning type `*`); `#` comments."""
    entries: set[tuple[str, str]] = set()
    for line in (path or BLOCKLIST).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        id_type, _, value = line.rpartition(":") if ":" in line and not line.startswith("+") else ("*", "", line)
        id_type = id_type or "*"
        norm = normalise_identifier(id_type, value) if id_type != "*" else ("*", value.strip().lower())
        if norm is not None:
            entries.add((id_type, norm[1]) if id_type != "*" else norm)
    return entries


def mask_value(id_type: str, value: str | None) -> str:
    """Mask PII for display: +8613812345678 -> 138****5678, alice@x.com -> a***@x.com."""
    if value is None:
        return ""
    if id_type == "phone" or (value.lstrip("+").isdigit() and len(value.lstrip("+")) >= 7):
        digits = value.removeprefix("+86") if value.startswith("+86") else value
        return digits[:3] + "****" + digits[-4:]
    if id_type == "email" and "@" in value:
        local, domain = value.split("@", 1)
        return local[:1] + "***@" + domain
    if len(value) <= 4:
        return value[:1] + "***"
    return value[:3] + "***" + value[-2:]
