"""`siyu metrics …`: FAST+ (fast, trend, clv-matrix) and RFM; `siyu brand …`: brand settings."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from siyu.cli.common import cli_actor, console, get_app, print_json, user_errors
from siyu.core.dates import parse_date
from siyu.core.money import format_fen
from siyu.metrics.labels import LAYER_NAMES, LAYERS, METRIC_NAMES, PRIVATE_LAYERS, bilingual
from siyu.metrics.periods import DEFAULT_WINDOW_DAYS

metrics_app = typer.Typer(help="FAST+ metrics (Capital, Conversion, Connection, CLV), CLV matrix and RFM (指标).")
brand_app = typer.Typer(help="Brands and their settings (品牌设置).")

BrandOpt = Annotated[str, typer.Option("--brand", help="Brand code, e.g. demo")]
GrainOpt = Annotated[str, typer.Option("--grain", help="Period grain: month | week | quarter | year")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (keys are a stable contract)")]
WindowOpt = Annotated[
    int, typer.Option("--window-days", help="CLV window in days ending at the period end (0 = lifetime)", min=0)
]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _money(value: int | None) -> str:
    return "—" if value is None else format_fen(value)


def _change(cur: float | int | None, prev: float | int | None, percent_points: bool = False) -> str:
    if cur is None or prev is None:
        return "—"
    if percent_points:
        diff = (cur - prev) * 100
        return f"{'▲' if diff > 0 else '▼' if diff < 0 else '='} {diff:+.1f} pp"
    if prev == 0:
        return "new 新增" if cur else "="
    diff = (cur - prev) / prev * 100
    return f"{'▲' if diff > 0 else '▼' if diff < 0 else '='} {diff:+.1f}%"


@metrics_app.command("fast")
def fast_command(
    brand: BrandOpt,
    period: Annotated[str, typer.Option("--period", help="Period label: 2024-06 (month), 2024-W23, 2024-Q2, 2024")],
    grain: GrainOpt = "month",
    window_days: WindowOpt = DEFAULT_WINDOW_DAYS,
    as_json: JsonOpt = False,
) -> None:
    """FAST+ for one period: Capital by layer and field, Conversion with the layer transitions,
    Connection per field, CLV by layer (FAST+ 私域健康度).

    Layers are taken at the end of the period in the brand's time zone: read from the lake (table
    `layers`) when `siyu metrics materialise` stored them from today's data, else computed in memory.
    Nothing is written. The terminal report compares with the previous period.

    Example: siyu metrics fast --brand demo --period 2024-06 --json
    """
    from siyu.metrics.fast import FastMetrics

    with user_errors():
        m = FastMetrics(get_app(), brand, grain, window_days)
        p = m.period(period)
        if not as_json:
            m.prepare(p.previous(), p)  # the terminal report compares with the previous period
        result = m.fast(p)
        if as_json:
            print_json(result)
            return
        previous = m.fast(p.previous())
    _print_fast(result, previous)


def _print_fast(cur: dict[str, Any], prev: dict[str, Any]) -> None:
    console.print(
        f"[bold]FAST+ {cur['brand']} {cur['period']}[/] ({cur['grain']}, {cur['timezone']}) "
        f"vs 上期 previous {prev['period']}"
    )
    kpi = Table(title="FAST+ 私域健康度 health")
    for col in ("metric 指标", cur["period"], prev["period"], "change 变化"):
        kpi.add_column(col, justify="right" if col != "metric 指标" else "left")
    rows: list[tuple[str, Any, Any, Any, bool]] = [
        ("capital", cur["capital"], prev["capital"], lambda v: f"{v:,}", False),
        ("conversion", cur["conversion"]["rate"], prev["conversion"]["rate"], _pct, True),
        ("connection", cur["connection_overall"]["rate"], prev["connection_overall"]["rate"], _pct, True),
        ("clv", cur["clv"]["average_fen"], prev["clv"]["average_fen"], _money, False),
    ]
    for key, now, before, show, points in rows:
        kpi.add_row(bilingual(METRIC_NAMES[key]), show(now), show(before), _change(now, before, points))
    console.print(kpi)

    layers = Table(title="layers 关系分层 (end of period 期末)")
    for col in ("layer 层级", "customers 人数", "previous 上期", "change 变化", "CLV avg 平均价值"):
        layers.add_column(col, justify="left" if col.startswith("layer") else "right")
    for name in reversed(PRIVATE_LAYERS):
        now, before = cur["layers"][name], prev["layers"][name]
        clv_avg = _money(cur["clv"]["by_layer"][name])
        layers.add_row(bilingual(LAYER_NAMES[name]), f"{now:,}", f"{before:,}", _change(now, before), clv_avg)
    console.print(layers)

    conv = cur["conversion"]
    console.print(
        f"Conversion 加深: {conv['deepened']:,} of {conv['base']:,} deepened 加深 ({_pct(conv['rate'])}); "
        f"new entrants 新进入 {conv['new_entrants']:,} (into a member layer 直接入会 {conv['new_member_entrants']:,})"
    )
    matrix = Table(title="transitions 层级迁移 (rows: previous 上期, columns: now 本期)")
    matrix.add_column("from \\ to")
    for name in LAYERS:
        matrix.add_column(name, justify="right")
    cells = {(t["from"], t["to"]): t["customers"] for t in conv["transitions"]}
    for src in LAYERS:
        matrix.add_row(src, *(f"{cells[(src, dst)]:,}" if (src, dst) in cells else "" for dst in LAYERS))
    console.print(matrix)

    fields = Table(title="fields 场域: Capital and Connection 场域引力")
    for col in ("field 场域", "capital 关系数", "visitors 访客", "holders 有关系访客", "rate 引力", "previous 上期"):
        fields.add_column(col, justify="left" if col.startswith("field") else "right")
    names = cur.get("field_names", {})
    for code in sorted(set(cur["capital_by_field"]) | set(cur["connection"])):
        c = cur["connection"].get(code, {"visitors": 0, "holders": 0, "rate": None})
        p = prev["connection"].get(code, {"rate": None})
        label = f"{code} {names[code][0]}" if code in names and names[code][0] != code else code
        capital = cur["capital_by_field"].get(code, 0)
        fields.add_row(
            label, f"{capital:,}", f"{c['visitors']:,}", f"{c['holders']:,}", _pct(c["rate"]), _pct(p["rate"])
        )
    console.print(fields)
    clv = cur["clv"]
    window = f"{clv['window_days']} days" if clv["window_days"] else "lifetime 全生命周期"
    console.print(
        f"CLV 角色关系价值 ({window}): average 平均 {_money(clv['average_fen'])} = "
        f"transaction 交易 {_money(clv['transaction_fen'])} + propagation 传播 {_money(clv['propagation_fen'])} "
        f"over 覆盖 {clv['customers']:,} customers"
    )


@metrics_app.command("trend")
def trend_command(
    brand: BrandOpt,
    first: Annotated[str, typer.Option("--from", help="First period, e.g. 2024-01")],
    last: Annotated[str, typer.Option("--to", help="Last period, e.g. 2024-12")],
    grain: GrainOpt = "month",
    window_days: WindowOpt = DEFAULT_WINDOW_DAYS,
    as_json: JsonOpt = False,
) -> None:
    """The four FAST+ metrics for every period from --from to --to (趋势).

    JSON: {"brand", "grain", "timezone", "from", "to", "periods": [<metrics fast JSON>, …]}.

    Example: siyu metrics trend --brand demo --from 2024-01 --to 2024-12 --json
    """
    from siyu.metrics.fast import FastMetrics

    with user_errors():
        m = FastMetrics(get_app(), brand, grain, window_days)
        result = m.trend(m.period(first), m.period(last))
    if as_json:
        print_json(result)
        return
    table = Table(title=f"FAST+ trend 趋势 — {brand} ({grain})")
    for col in ("period 周期", "Capital 关系数", "Conversion 加深效率", "Connection 场域引力", "CLV 平均价值", "KOC"):
        table.add_column(col, justify="right")
    for p in result["periods"]:
        table.add_row(
            p["period"],
            f"{p['capital']:,}",
            _pct(p["conversion"]["rate"]),
            _pct(p["connection_overall"]["rate"]),
            _money(p["clv"]["average_fen"]),
            f"{p['layers']['koc']:,}",
        )
    console.print(table)


@metrics_app.command("clv-matrix")
def clv_matrix_command(
    brand: BrandOpt,
    period: Annotated[str, typer.Option("--period", help="Period label, e.g. 2024-06")],
    grain: GrainOpt = "month",
    window_days: WindowOpt = DEFAULT_WINDOW_DAYS,
    as_json: JsonOpt = False,
) -> None:
    """CLV matrix 分层CLV: private-domain customers by layer × purchase-value tier × propagation-value
    tier, with counts and average CLV (tiers: tertiles / median of the positive values).

    Example: siyu metrics clv-matrix --brand demo --period 2024-06 --json
    """
    from siyu.metrics.clv_matrix import clv_matrix
    from siyu.metrics.fast import FastMetrics

    with user_errors():
        m = FastMetrics(get_app(), brand, grain, window_days)
        result = clv_matrix(m, m.period(period))
    if as_json:
        print_json(result)
        return
    t = result["thresholds"]
    low, mid = (_money(v) for v in t["purchase_fen"])
    console.print(
        f"purchase tiers 购买价值档: low ≤ {low} < mid ≤ {mid} < high; "
        f"propagation tiers 传播价值档: low ≤ {_money(t['propagation_fen'][0])} < high"
    )
    table = Table(title=f"CLV matrix 分层CLV — {brand} {result['period']}")
    for col in ("layer 层级", "purchase 购买", "propagation 传播", "customers 人数", "avg CLV 平均价值"):
        table.add_column(col, justify="right" if col.startswith(("customers", "avg")) else "left")
    for c in result["cells"]:
        table.add_row(bilingual(LAYER_NAMES[c["layer"]]), c["purchase_tier"], c["propagation_tier"],
                      f"{c['customers']:,}", _money(c["average_clv_fen"]))  # fmt: skip
    console.print(table)


@metrics_app.command("rfm")
def rfm_command(
    brand: BrandOpt,
    as_of: Annotated[str, typer.Option("--as-of", help="Last day of the window (brand-local date), YYYY-MM-DD")],
    window_days: Annotated[int, typer.Option("--window-days", help="Window length in days", min=1)] = 365,
    as_json: JsonOpt = False,
) -> None:
    """RFM: quintile scores per customer and the 8 classic groups (重要价值客户 … 一般挽留客户) with
    counts and value. Reads what `siyu metrics materialise --as-of` stored (table `rfm`) when it is
    fresh, else computes in memory; nothing is written.

    Example: siyu metrics rfm --brand demo --as-of 2024-06-30 --json
    """
    from siyu.metrics.rfm import rfm

    with user_errors():
        result = rfm(get_app(), brand, parse_date(as_of, "--as-of"), window_days)
    if as_json:
        print_json(result)
        return
    console.print(
        f"RFM {brand} as of 截至 {result['as_of']} ({window_days} days): {result['customers']:,} buyers 购买客户"
    )
    table = Table(title="RFM groups 客户分群")
    for col in ("group 分群", "R", "F", "M", "customers 人数", "value 金额", "avg 人均"):
        table.add_column(col, justify="left" if col.startswith("group") else "right")
    for g in result["groups"]:
        arrows = ["↑" if g[k] else "↓" for k in ("r_high", "f_high", "m_high")]
        table.add_row(f"{g['name_zh']} {g['name_en']}", *arrows, f"{g['customers']:,}", _money(g["monetary_fen"]),
                      _money(g["average_monetary_fen"]))  # fmt: skip
    console.print(table)


@metrics_app.command("materialise")
def materialise_command(
    brand: BrandOpt,
    first: Annotated[
        str | None, typer.Option("--from", help="Store the layers of this period, e.g. 2024-01 (关系分层)")
    ] = None,
    last: Annotated[str | None, typer.Option("--to", help="… through this period (default: --from)")] = None,
    grain: GrainOpt = "month",
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Store the RFM as of this brand-local day, YYYY-MM-DD (RFM)")
    ] = None,
    window_days: Annotated[int, typer.Option("--window-days", help="RFM window length in days", min=1)] = 365,
    force: Annotated[bool, typer.Option("--force", help="Recompute even when the stored result is fresh")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compute and store relationship layers and/or RFM in the lake (tables `layers`, `rfm`), recording
    each run and the data it saw (物化: 计算并保存关系分层与RFM).

    Audiences (`layer`, `layer_change`, `rfm` conditions) and the customer 360 read what this stores;
    `siyu metrics fast|trend|rfm`, reports and the API read it when it is fresh (same data and brand
    settings) and otherwise compute in memory without writing. A fresh result is skipped unless
    --force. `siyu worker` runs it on a schedule (--materialise-every).

    Example: siyu metrics materialise --brand demo --from 2024-01 --to 2024-06 --as-of 2024-06-30
    """
    from siyu.metrics.fast import BadOptionError
    from siyu.metrics.materialise import Outcome, materialise_layers, materialise_rfm

    with user_errors():
        if first is None and as_of is None:
            raise BadOptionError("give --from (layers) and/or --as-of (RFM) (请指定要物化的周期或日期)")
        if last is not None and first is None:
            raise BadOptionError("--to needs --from (缺少起始周期)")
        app = get_app()
        runs: list[Outcome] = []
        if first is not None:
            runs += materialise_layers(app, brand, first, last or first, grain, force=force)
        if as_of is not None:
            runs.append(materialise_rfm(app, brand, parse_date(as_of, "--as-of"), window_days, force=force))
    if as_json:
        print_json({"brand": brand, "runs": [r.as_json() for r in runs]})
        return
    table = Table(title=f"materialised 物化 — {brand}")
    for col in ("what 内容", "key 周期/日期", "rows 行数", "lake version 版本", "status 状态"):
        table.add_column(col, justify="right" if col.startswith(("rows", "lake")) else "left")
    for r in runs:
        k = r.run.key
        what = f"{k.period} ({k.grain})" if k.kind == "layers" else f"{k.as_of} ({k.window_days} days)"
        status = "stored 已保存" if r.stored else "fresh, skipped 已是最新"
        table.add_row(k.kind, what, f"{r.run.rows:,}", str(r.run.lake_version), status)
    console.print(table)


@brand_app.command("list")
def brand_list(as_json: JsonOpt = False) -> None:
    """List brands with their time zone and FAST+ settings."""
    from siyu.brands.settings import list_brands

    with user_errors():
        brands = [b.as_json() for b in list_brands(get_app())]
    if as_json:
        print_json(brands)
        return
    table = Table(title="brands 品牌")
    for col in ("brand 品牌", "timezone 时区", "review KOC 评价计入KOC", "attribution days 归因天数"):
        table.add_column(col)
    for b in brands:
        table.add_row(
            str(b["brand"]), str(b["timezone"]), "on" if b["koc_reviews"] else "off", str(b["attribution_days"])
        )
    console.print(table)


@brand_app.command("set")
def brand_set(
    brand: Annotated[str, typer.Argument(help="Brand code")],
    timezone: Annotated[str | None, typer.Option(help="IANA time zone periods are cut in, e.g. Asia/Shanghai")] = None,
    koc_reviews: Annotated[
        bool | None,
        typer.Option("--koc-reviews/--no-koc-reviews", help="Count positive reviews (rating ≥ 4) as propagation"),
    ] = None,
    attribution_days: Annotated[
        int | None, typer.Option(help="Share attribution window in days from the click (1–90)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a brand's settings (品牌设置).

    Example: siyu brand set demo --no-koc-reviews --attribution-days 3
    """
    from siyu.brands.settings import do_update_brand

    with user_errors(), get_app().store.begin(cli_actor()) as uow:
        settings = do_update_brand(
            uow, brand, timezone=timezone, koc_reviews=koc_reviews, attribution_days=attribution_days
        )
    if as_json:
        print_json(settings.as_json())
        return
    console.print(settings.as_json())
