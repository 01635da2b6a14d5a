"""Read API: customer lookup and 360, FAST+ metrics, trend and RFM — the same JSON as the CLI.

A key reads only its own brand. Identifiers are masked unless the key has the `pii` scope.
"""

from __future__ import annotations

from typing import Annotated, Any

import ibis
import pyarrow as pa
from fastapi import APIRouter, Query

from siyu.api.deps import ComputeDep, CustomerScope, ReadKey
from siyu.api.errors import ApiError
from siyu.api.gzip import GzipRoute
from siyu.api.scope import visible
from siyu.core.dates import parse_date
from siyu.core.errors import NotFoundError
from siyu.customers.profile import customer_profile
from siyu.customers.view import customer_view, find_customer_ids
from siyu.metrics.fast import DEFAULT_WINDOW_DAYS, FastMetrics
from siyu.metrics.rfm import rfm

router = APIRouter(tags=["read 查询"], route_class=GzipRoute, dependencies=[CustomerScope])

Grain = Annotated[str, Query(pattern="^(month|week|quarter|year)$", description="month | week | quarter | year")]
Window = Annotated[int, Query(ge=0, le=36500, description="CLV window in days (0 = lifetime)")]


@router.get("/api/v1/customers", summary="Find customers 查找客户")
def lookup(
    key: ReadKey,
    app: ComputeDep,
    customer_id: Annotated[str | None, Query(max_length=200)] = None,
    phone: Annotated[str | None, Query(max_length=64)] = None,
    member_no: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, list[str]]:
    """Customer ids of the key's brand matching one of `customer_id`, `phone` (any format) or `member_no`."""
    given = [v for v in (customer_id, phone, member_no) if v and v.strip()]
    if len(given) != 1:
        raise ApiError(
            422,
            "invalid_request",
            "give exactly one of customer_id, phone, member_no (请提供且仅提供一个查询条件)",
            errors=[{"field": "customer_id|phone|member_no", "reason": "exactly one is required"}],
        )
    found = find_customer_ids(app, given[0], key.brand)
    return {"customers": visible(app, key, found)}


@router.get("/api/v1/customers/{customer_id}", summary="Customer 360 客户全景")
def customer(customer_id: str, key: ReadKey, app: ComputeDep) -> dict[str, Any]:
    """Identifiers, sources, memberships, order summary, layer history, recent orders and events,
    and RFM, lifecycle and predicted CLV where they have been computed."""
    if customer_id not in find_customer_ids(app, customer_id, key.brand):
        raise NotFoundError(f"no customer {customer_id!r} in brand {key.brand} (未找到客户)")
    view = customer_view(app, customer_id, key.brand, mask=not key.allows("pii"))
    records = ibis.memtable(pa.Table.from_pylist([{"brand": view["brand"], **s} for s in view["sources"]]))
    try:
        view.update(customer_profile(app, view["brand"], customer_id, records))
    finally:
        app.engine.release(records)
    return view


@router.get("/api/v1/metrics/fast", summary="FAST+ for one period 单期指标")
def fast(
    key: ReadKey,
    app: ComputeDep,
    period: Annotated[str, Query(max_length=16, description="2024-06, 2024-W23, 2024-Q2 or 2024")],
    grain: Grain = "month",
    window_days: Window = DEFAULT_WINDOW_DAYS,
) -> dict[str, Any]:
    """The JSON of `siyu metrics fast --json`."""
    m = FastMetrics(app, key.brand, grain, window_days)
    return m.fast(m.period(period))


@router.get("/api/v1/metrics/trend", summary="FAST+ trend 趋势")
def trend(
    key: ReadKey,
    app: ComputeDep,
    first: Annotated[str, Query(alias="from", max_length=16, description="First period, e.g. 2024-01")],
    last: Annotated[str, Query(alias="to", max_length=16, description="Last period, e.g. 2024-12")],
    grain: Grain = "month",
    window_days: Window = DEFAULT_WINDOW_DAYS,
) -> dict[str, Any]:
    """The JSON of `siyu metrics trend --json`."""
    m = FastMetrics(app, key.brand, grain, window_days)
    return m.trend(m.period(first), m.period(last))


@router.get("/api/v1/metrics/rfm", summary="RFM 客户价值分群")
def rfm_route(
    key: ReadKey,
    app: ComputeDep,
    as_of: Annotated[str, Query(max_length=10, description="Last day of the window, YYYY-MM-DD")],
    window_days: Annotated[int, Query(ge=1, le=36500)] = 365,
) -> dict[str, Any]:
    """The JSON of `siyu metrics rfm --json`."""
    return rfm(app, key.brand, parse_date(as_of, "as_of"), window_days)
