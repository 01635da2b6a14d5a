"""Plain-language diagnosis of one FAST+ period, in zh-CN and English.

A health report is read by operators, not analysts: next to the charts it says in a few sentences
what moved and the most likely reason (the transition, layer or field that changed most). The rules
are deliberately simple and deterministic so the same numbers always give the same words, and every
division is guarded so a brand-new brand (all zeros, no previous period) still gets a diagnosis.

The number formatters live here too so the HTML report and the sentences show numbers identically.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from siyu.core.money import format_fen
from siyu.metrics.labels import LAYER_NAMES, METRIC_NAMES, PRIVATE_LAYERS, RANK

DASH = "—"
# A field with fewer visitors than this says little about its pull; it is not called the weakest.
MIN_VISITORS = 30


# ----------------------------------------------------------------------------------------------
# Formatting (shared with the report sections)
# ----------------------------------------------------------------------------------------------


def as_int(value: Any) -> int | None:
    """An integer from JSON-ish input (None, bool and junk become None) so rules never crash on gaps."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value:  # not NaN
        return round(value)
    return None


def as_float(value: Any) -> float | None:
    """A float from JSON-ish input (None, bool, NaN and junk become None)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return None if f != f else f


def format_count(value: Any) -> str:
    """Whole numbers with thousands separators (1,234); "—" when unknown."""
    n = as_int(value)
    return DASH if n is None else f"{n:,}"


def format_rate(value: Any, digits: int = 1) -> str:
    """A ratio as a percentage (0.123 → 12.3%); "—" when unknown (e.g. no previous period)."""
    f = as_float(value)
    return DASH if f is None else f"{f * 100:.{digits}f}%"


def format_money(value: Any) -> str:
    """Integer fen as ¥ with two decimals (money is never a float in siyu); "—" when unknown."""
    n = as_int(value)
    return DASH if n is None else format_fen(n)


def relative_change(current: Any, previous: Any) -> float | None:
    """(current − previous) / previous, or None when either is unknown or previous is 0."""
    c, p = as_float(current), as_float(previous)
    if c is None or p is None or p == 0:
        return None
    return (c - p) / abs(p)


def signed_pct(change: float) -> str:
    """+8.2% / −3.0% with a real minus sign, for changes."""
    return f"{'+' if change >= 0 else '−'}{abs(change) * 100:.1f}%"


def signed_pp(current: float, previous: float) -> str:
    """Difference of two rates in percentage points: +2.5 / −2.5."""
    d = (current - previous) * 100
    return f"{'+' if d >= 0 else '−'}{abs(d):.1f}"


def signed_count(n: int) -> str:
    return f"{'+' if n >= 0 else '−'}{abs(n):,}"


def layer_zh(layer: str) -> str:
    return LAYER_NAMES.get(layer, (layer, layer))[0]


def layer_en(layer: str) -> str:
    return LAYER_NAMES.get(layer, (layer, layer))[1]


def field_label(fast: Mapping[str, Any], field: str) -> tuple[str, str]:
    """(zh, en) display names of a field; the code stands in for a missing name."""
    names = (fast.get("field_names") or {}).get(field) or []
    zh = names[0] if len(names) > 0 and names[0] else field
    en = names[1] if len(names) > 1 and names[1] else zh if zh != field else field
    return str(zh), str(en)


# ----------------------------------------------------------------------------------------------
# Rules
# ----------------------------------------------------------------------------------------------


def _sentence(zh: str, en: str) -> dict[str, str]:
    return {"zh": zh, "en": en}


def _transitions(fast: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for t in (fast.get("conversion") or {}).get("transitions") or []:
        key = (str(t.get("from")), str(t.get("to")))
        out[key] = out.get(key, 0) + (as_int(t.get("customers")) or 0)
    return out


def _deepening(key: tuple[str, str]) -> bool:
    """A move from a private-domain layer to a deeper one: the numerator of Conversion."""
    src, dst = key
    return src in RANK and dst in RANK and RANK[src] >= 1 and RANK[dst] > RANK[src]


def _conversion(fast: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[dict[str, str]]:
    conv = fast.get("conversion") or {}
    rate = as_float(conv.get("rate"))
    name_zh, name_en = METRIC_NAMES["conversion"]
    deepened, base = format_count(conv.get("deepened") or 0), format_count(conv.get("base") or 0)
    if rate is None:
        return [
            _sentence(
                f"{name_zh}：上期末没有私域客户，无法计算。",
                f"{name_en}: cannot be computed, no private-domain customers at the end of the previous period.",
            )
        ]
    prev_rate = as_float(((previous or {}).get("conversion") or {}).get("rate"))
    if previous is None or prev_rate is None:
        return [
            _sentence(
                f"{name_zh}为 {format_rate(rate)}（{base} 位客户中 {deepened} 位加深了关系）。",
                f"{name_en} is {format_rate(rate)} ({deepened} of {base} customers deepened their relationship).",
            )
        ]
    cur_t, prev_t = _transitions(fast), _transitions(previous)
    keys = sorted(set(cur_t) | set(prev_t), key=lambda k: (RANK.get(k[0], 99), RANK.get(k[1], 99), k))
    diffs = {k: cur_t.get(k, 0) - prev_t.get(k, 0) for k in keys}
    pp = signed_pp(rate, prev_rate)
    if rate == prev_rate:
        return [
            _sentence(
                f"{name_zh}持平，为 {format_rate(rate)}。",
                f"{name_en} was flat at {format_rate(rate)}.",
            )
        ]
    fell = rate < prev_rate
    verb_zh, verb_en = ("降至", "fell") if fell else ("升至", "rose")
    head_zh = f"{name_zh}由 {format_rate(prev_rate)} {verb_zh} {format_rate(rate)}（{pp} 个百分点）"
    head_en = f"{name_en} {verb_en} from {format_rate(prev_rate)} to {format_rate(rate)} ({pp} pp)"
    # Explain with the deepening move that changed most in the direction of the rate; else any move.
    candidates = [k for k in keys if _deepening(k) and (diffs[k] < 0 if fell else diffs[k] > 0)]
    if not candidates:
        candidates = [k for k in keys if diffs[k] != 0]
    if not candidates:
        return [_sentence(head_zh + "。", head_en + ".")]
    key = max(candidates, key=lambda k: abs(diffs[k]))  # max keeps the first (shallowest) on ties
    src, dst = key
    before, after = prev_t.get(key, 0), cur_t.get(key, 0)
    more_zh, more_en = ("减少", "fewer") if diffs[key] < 0 else ("增加", "more")
    return [
        _sentence(
            f"{head_zh}：从{layer_zh(src)}进入{layer_zh(dst)}的客户{more_zh}（{before:,} → {after:,}）。",
            f"{head_en}: {more_en} customers moved from {layer_en(src)} to {layer_en(dst)} ({before:,} → {after:,}).",
        )
    ]


def _capital(fast: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[dict[str, str]]:
    name_zh, name_en = METRIC_NAMES["capital"]
    capital = as_int(fast.get("capital")) or 0
    if previous is None:
        return [_sentence(f"{name_zh}为 {capital:,}。", f"{name_en} is {capital:,}.")]
    prev_capital = as_int(previous.get("capital")) or 0
    change = relative_change(capital, prev_capital)
    layers, prev_layers = fast.get("layers") or {}, previous.get("layers") or {}
    diffs = {k: (as_int(layers.get(k)) or 0) - (as_int(prev_layers.get(k)) or 0) for k in PRIVATE_LAYERS}
    layer = max(PRIVATE_LAYERS, key=lambda k: abs(diffs[k]))
    if capital == prev_capital:
        head_zh, head_en = f"{name_zh}持平，为 {capital:,}", f"{name_en} was flat at {capital:,}"
    else:
        grew = capital > prev_capital
        pct = f"（{signed_pct(change)}）" if change is not None else ""
        pct_en = f" ({signed_pct(change)})" if change is not None else ""
        head_zh = f"{name_zh}由 {prev_capital:,} {'增至' if grew else '降至'} {capital:,}{pct}"
        head_en = f"{name_en} {'grew' if grew else 'declined'} from {prev_capital:,} to {capital:,}{pct_en}"
    if diffs[layer] == 0:
        return [_sentence(head_zh + "。", head_en + ".")]
    before, after = as_int(prev_layers.get(layer)) or 0, as_int(layers.get(layer)) or 0
    return [
        _sentence(
            f"{head_zh}；变化最大的是{layer_zh(layer)}（{signed_count(diffs[layer])}：{before:,} → {after:,}）。",
            f"{head_en}; the largest change was {layer_en(layer)} "
            f"({signed_count(diffs[layer])}: {before:,} → {after:,}).",
        )
    ]


def _connection(fast: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[dict[str, str]]:
    name_zh, name_en = METRIC_NAMES["connection"]
    fields = fast.get("connection") or {}
    rated = []
    for code in sorted(fields):
        row = fields[code] or {}
        visitors, holders = as_int(row.get("visitors")) or 0, as_int(row.get("holders")) or 0
        if visitors >= MIN_VISITORS:
            rated.append((holders / visitors, code, visitors))
    if not fields:
        return [_sentence(f"{name_zh}：本期没有场域访问数据。", f"{name_en}: no field visits this period.")]
    if not rated:
        return [
            _sentence(
                f"{name_zh}：没有场域的访客达到 {MIN_VISITORS} 人，暂不判断强弱。",
                f"{name_en}: no field had {MIN_VISITORS} or more visitors, too few to compare.",
            )
        ]
    weakest = min(rated)  # lowest rate; ties broken by field code for determinism
    zh, en = field_label(fast, weakest[1])
    text_zh = f"{name_zh}最弱的场域是{zh}：{weakest[2]:,} 位访客中 {format_rate(weakest[0])} 建立了私域关系"
    text_en = (
        f"Weakest field by {name_en}: {en}, {format_rate(weakest[0])} of {weakest[2]:,} visitors hold a relationship"
    )
    prev_row = ((previous or {}).get("connection") or {}).get(weakest[1]) or {}
    prev_rate = as_float(prev_row.get("rate"))
    if previous is not None and prev_rate is not None:
        text_zh += f"（上期 {format_rate(prev_rate)}）"
        text_en += f" (previous {format_rate(prev_rate)})"
    if len(rated) > 1:
        best = min(rated, key=lambda r: (-r[0], r[1]))  # highest rate, ties by code
        bzh, ben = field_label(fast, best[1])
        text_zh += f"；最强的是{bzh}（{format_rate(best[0])}）"
        text_en += f"; strongest: {ben} ({format_rate(best[0])})"
    return [_sentence(text_zh + "。", text_en + ".")]


def _clv(fast: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[dict[str, str]]:
    name_zh, name_en = METRIC_NAMES["clv"]
    clv = fast.get("clv") or {}
    avg = as_int(clv.get("average_fen"))
    if avg is None:
        return [_sentence(f"{name_zh}：本期没有私域客户，无法计算。", f"{name_en}: no private-domain customers.")]
    tx, pv = as_int(clv.get("transaction_fen")) or 0, as_int(clv.get("propagation_fen")) or 0
    share = pv / (tx + pv) if tx + pv > 0 else None
    share_zh = f"，其中传播价值占 {format_rate(share)}" if share is not None else ""
    share_en = f"; propagation value is {format_rate(share)} of it" if share is not None else ""
    prev_avg = as_int(((previous or {}).get("clv") or {}).get("average_fen"))
    if previous is None or prev_avg is None:
        return [
            _sentence(
                f"平均{name_zh}为 {format_money(avg)}{share_zh}。",
                f"Average {name_en} is {format_money(avg)}{share_en}.",
            )
        ]
    change = relative_change(avg, prev_avg)
    if avg == prev_avg:
        head_zh, head_en = (
            f"平均{name_zh}持平，为 {format_money(avg)}",
            f"Average {name_en} was flat at {format_money(avg)}",
        )
    else:
        up = avg > prev_avg
        pct_zh = f"（{signed_pct(change)}）" if change is not None else ""
        pct_en = f" ({signed_pct(change)})" if change is not None else ""
        head_zh = f"平均{name_zh}由 {format_money(prev_avg)} {'升至' if up else '降至'} {format_money(avg)}{pct_zh}"
        head_en = f"Average {name_en} {'rose' if up else 'fell'} from {format_money(prev_avg)} to {format_money(avg)}"
        head_en += pct_en
    return [_sentence(f"{head_zh}{share_zh}。", f"{head_en}{share_en}.")]


def _koc(fast: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[dict[str, str]]:
    zh, en = LAYER_NAMES["koc"]
    koc = as_int((fast.get("layers") or {}).get("koc")) or 0
    capital = as_int(fast.get("capital")) or 0
    share = f"{format_rate(koc / capital)}" if capital > 0 else DASH
    if koc == 0:
        return [
            _sentence(
                f"本期没有{zh}：可以从复购会员中培养愿意分享推荐的客户。",
                f"No {en} yet: repurchase members who recommend the brand are the candidates to grow.",
            )
        ]
    text_zh = f"{zh}共 {koc:,} 位，占私域关系的 {share}"
    text_en = f"{en}: {koc:,} customers, {share} of Capital"
    if previous is not None:
        prev_koc = as_int((previous.get("layers") or {}).get("koc")) or 0
        text_zh += f"（上期 {prev_koc:,}，{signed_count(koc - prev_koc)}）"
        text_en += f" (previous {prev_koc:,}, {signed_count(koc - prev_koc)})"
    return [_sentence(text_zh + "。", text_en + ".")]


def diagnose(fast: dict[str, Any], previous: dict[str, Any] | None) -> list[dict[str, str]]:
    """Short rule-based diagnosis of `fast` against `previous` (None: the first period), each
    sentence as {"zh": ..., "en": ...}. Order: Capital, Conversion, Connection, CLV, KOC."""
    out: list[dict[str, str]] = []
    if previous is None:
        out.append(
            _sentence(
                "首个周期，无环比：以下只列出本期水平。",
                "First period, no comparison: levels only.",
            )
        )
    for rule in (_capital, _conversion, _connection, _clv, _koc):
        out.extend(rule(fast, previous))
    return out
