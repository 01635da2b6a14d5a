"""HTML fragments of the report: escaping, bilingual labels, tables, stat strips and change badges.

Every piece of text that comes from data goes through `esc` (brand and field names come from config).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from siyu.metrics.labels import LAYER_NAMES
from siyu.report.diagnosis import DASH, as_float, as_int, relative_change, signed_pct, signed_pp

NO_DATA = ("无数据", "no data")


def esc(value: Any) -> str:
    """HTML-escape anything shown on the page (brand names and field names come from config)."""
    return html.escape(str(value), quote=True)


def bi(pair: Sequence[str]) -> str:
    """Escaped "中文 English" heading with the English part muted."""
    zh, en = pair[0], pair[1]
    return f'{esc(zh)} <span class="en">{esc(en)}</span>' if zh != en else esc(zh)


def chart_label(pair: Sequence[str], sep: str = " ") -> str:
    """Chart label "中文 English"; escaped because plotly reads labels as a subset of HTML."""
    zh, en = str(pair[0]), str(pair[1])
    return esc(zh) if zh == en else f"{esc(zh)}{sep}{esc(en)}"


def layer_label(layer: str, sep: str = "<br>") -> str:
    return chart_label(LAYER_NAMES.get(layer, (layer, layer)), sep)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def yuan(fen: Any) -> float | None:
    """Bar heights in yuan (display only; the text on the bar is the exact ¥ string)."""
    n = as_int(fen)
    return None if n is None else n / 100


def no_data(message: tuple[str, str] = NO_DATA) -> str:
    return f'<p class="nodata">{esc(message[0])} {esc(message[1])}</p>'


def delta_badge(current: Any, previous: Any, has_previous: bool, kind: str = "relative") -> str:
    """▲/▼ change against the previous period: relative % for counts and money, percentage points for
    rates (a relative change of a rate reads wrong: 10% → 12% is +2 pp, not +20%)."""
    if not has_previous:
        return '<span class="delta none">— 无上期 no previous period</span>'
    if kind == "pp":
        c, p = as_float(current), as_float(previous)
        if c is None or p is None:
            return f'<span class="delta none">{DASH}</span>'
        text, diff = f"{signed_pp(c, p)} pp 百分点", c - p
    else:
        change = relative_change(current, previous)
        if change is None:
            return f'<span class="delta none">{DASH}</span>'
        text, diff = signed_pct(change), change
    if abs(diff) < 0.0005:  # shows as ±0.0: flat, not a misleading ▲/▼
        return f'<span class="delta flat">■ {esc(text.lstrip("+−"))}</span>'
    arrow, cls = ("▲", "up") if diff > 0 else ("▼", "down")
    return f'<span class="delta {cls}">{arrow} {esc(text)}</span>'


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table whose cells are already-escaped HTML."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def stat_strip(items: Sequence[tuple[tuple[str, str], str]]) -> str:
    return (
        '<div class="stats">'
        + "".join(f'<div class="stat">{bi(label)}<b>{esc(value)}</b></div>' for label, value in items)
        + "</div>"
    )


def window_text(days: Any) -> str:
    n = as_int(days)
    if n is None:
        return DASH
    return "全生命周期 lifetime" if n == 0 else f"近 {n:,} 天 last {n:,} days"
