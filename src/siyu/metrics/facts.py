"""The facts FAST+ is computed from, for one brand, resolved to One-ID customers.

Each fact table is an Ibis expression over the lake, computed once per run into a temporary table
(`Engine.materialise`), so a 12-period trend reads the raw orders and events once, not 13 times.
Raw rows are filtered (brand, type, time) before they are joined to the identity map, so only the
rows a metric needs pay for the join.

- purchases: paid orders not fully refunded (DESIGN §4) paid since `since`, with the brand-local
  purchase day and the net paid amount (amount − refund, fen)
- memberships, relations: validity intervals [joined_at, left_at), [started_at, ended_at); only
  relations of a type that counts as a connection (`registry.connection_types`)
- visits_between(start, end): `visit` events in a field
- attributed: purchases attributed to another customer's share (last click within the window wins;
  clicks on one's own share never count, so self-purchases are excluded)
- propagations: successful propagations (attributed purchases, and positive reviews of a purchased
  item when the brand counts them), credited to the sharer / reviewer
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property

import ibis
import ibis.expr.types as ir

from siyu.bootstrap import App
from siyu.brands.settings import BrandSettings
from siyu.core.errors import SiyuError
from siyu.engine.adapter import json_text, utc_to_local
from siyu.identity.service import MAP_TABLE
from siyu.ingest import registry
from siyu.ingest.schema import PAID_STATUSES
from siyu.ingest.views import current

NODE = ["source", "source_customer_id"]
POSITIVE_RATING = 4  # of 5: a review at or above this is a positive review (DESIGN §4)
SOCIAL_EVENTS = ("share", "share_click", "review")
_runs = itertools.count()

Where = Callable[[ir.Table], ir.BooleanValue]


def not_fully_refunded(orders: ir.Table) -> ir.BooleanValue:
    """Nothing refunded, or less than was paid: a free order (amount 0, e.g. a gift or a full
    coupon) is still a purchase; an order refunded in full is not."""
    refund = orders.refund_fen.fill_null(0)
    return (refund == 0) | (refund < orders.amount_fen)


class NoCustomersError(SiyuError):
    code = "no_customers"


def utc(value: datetime) -> ir.Value:
    """An aware datetime as a UTC timestamp literal."""
    return ibis.literal(value.astimezone(UTC), type="timestamp('UTC')")


class Facts:
    """Materialised fact tables of one brand (see module docstring). Purchases paid before `since`
    are left out (None: all history); callers pass the earliest instant their periods need."""

    def __init__(self, app: App, brand: BrandSettings, since: datetime | None = None) -> None:
        self.app = app
        self.brand = brand
        self.since = since
        self.tag = f"{next(_runs)}"
        idmap = app.engine.table(MAP_TABLE)
        if idmap is None:
            raise NoCustomersError("no identity map yet: run `siyu import` and `siyu resolve` first (尚未运行 One-ID)")
        idmap = idmap.filter(idmap.brand == brand.code).select(*NODE, "customer_id")
        self._idmap = self._keep("idmap", idmap)
        self.customers = self._keep("customers", self._idmap.select("customer_id").distinct())
        if not self.app.engine.to_arrow(self.customers.count().name("n").as_table())["n"][0].as_py():
            raise NoCustomersError(
                f"brand {brand.code!r} has no resolved customers: import its data and run `siyu resolve` (无客户)"
            )
        self._visits: dict[tuple[datetime, datetime], ir.Table] = {}

    def covers(self, since: datetime | None) -> bool:
        return self.since is None or (since is not None and since >= self.since)

    # -- helpers -------------------------------------------------------------------------------

    def _keep(self, name: str, expr: ir.Table) -> ir.Table:
        return self.app.engine.materialise(expr, f"facts_{self.tag}_{name}")

    def _raw(self, entity: str, where: Where | None = None) -> ir.Table | None:
        table = current(self.app, entity)
        if table is None:
            return None
        table = table.filter(table.brand == self.brand.code)
        return table.filter(where(table)) if where is not None else table

    def _resolved(self, entity: str, where: Where | None = None) -> ir.Table | None:
        """This brand's current rows of `entity` matching `where`, with the One-ID customer id."""
        table = self._raw(entity, where)
        return None if table is None else table.join(self._idmap, NODE)

    @staticmethod
    def _empty(schema: dict[str, str]) -> ir.Table:
        # From Arrow: an empty pandas column is float64, which no engine casts to a timestamp, so a
        # brand without memberships (or relations, orders) failed every FAST+ computation.
        return ibis.memtable(ibis.schema(schema).to_pyarrow().empty_table())

    # -- facts (each computed on first use, then kept) -------------------------------------------

    @cached_property
    def purchases(self) -> ir.Table:
        return self._keep("purchases", self._purchases())

    @cached_property
    def memberships(self) -> ir.Table:
        table = self._resolved("memberships")
        if table is None:
            return self._empty(
                {"customer_id": "string", "joined_at": "timestamp('UTC')", "left_at": "timestamp('UTC')"}
            )
        return self._keep("memberships", table.select("customer_id", "joined_at", "left_at"))

    @cached_property
    def relations(self) -> ir.Table:
        """Relations of the types that count as a connection (built-in or declared so)."""
        types = registry.connection_types(self.app, self.brand.code)
        table = self._resolved("relations", lambda t: t.relation_type.isin(types))
        if table is None:
            return self._empty({"customer_id": "string", "field": "string", "started_at": "timestamp('UTC')",
                                "ended_at": "timestamp('UTC')"})  # fmt: skip
        return self._keep("relations", table.select("customer_id", "field", "started_at", "ended_at"))

    def visits_between(self, start: datetime, end: datetime) -> ir.Table:
        """customer_id, field, occurred_at of `visit` events in [start, end) (kept per range)."""
        key = (start, end)
        if key not in self._visits:
            lo, hi = utc(start), utc(end)
            table = self._resolved(
                "events",
                lambda t: (t.type == "visit") & t.field.notnull() & (t.occurred_at >= lo) & (t.occurred_at < hi),
            )
            if table is None:
                self._visits[key] = self._empty(
                    {"customer_id": "string", "field": "string", "occurred_at": "timestamp('UTC')"}
                )
            else:
                name = f"visits_{len(self._visits)}"
                self._visits[key] = self._keep(name, table.select("customer_id", "field", "occurred_at"))
        return self._visits[key]

    @cached_property
    def _social(self) -> ir.Table | None:
        """Shares, share clicks and reviews with their JSON properties parsed (one scan of events)."""
        events = self._resolved("events", lambda t: t.type.isin(SOCIAL_EVENTS))
        if events is None:
            return None
        props = events.properties
        rating = json_text(props, "rating").try_cast("float64")  # 5 or "5"
        return self._keep(
            "social",
            events.select(
                "customer_id",
                "type",
                "occurred_at",
                share_id=json_text(props, "share_id"),
                order_id=json_text(props, "order_id"),
                rating=rating,
            ),
        )

    @cached_property
    def attributed(self) -> ir.Table:
        return self._keep("attributed", self._attributed())

    @cached_property
    def propagations(self) -> ir.Table:
        return self._keep("propagations", self._propagations())

    # -- how each fact is built ------------------------------------------------------------------

    def _purchases(self) -> ir.Table:
        since = utc(self.since) if self.since is not None else None

        def paid(t: ir.Table) -> ir.BooleanValue:
            ok = t.status.isin(PAID_STATUSES) & t.paid_at.notnull() & not_fully_refunded(t)
            return ok & (t.paid_at >= since) if since is not None else ok

        orders = self._resolved("orders", paid)
        if orders is None:
            return self._empty({"customer_id": "string", "source": "string", "order_id": "string",
                                "paid_at": "timestamp('UTC')", "day": "date", "net_fen": "int64",
                                "share_id": "string"})  # fmt: skip
        return orders.select(
            "customer_id",
            "source",
            "order_id",
            "paid_at",
            day=utc_to_local(orders.paid_at, self.brand.timezone).date(),
            net_fen=(orders.amount_fen - orders.refund_fen.fill_null(0)).cast("int64"),
            share_id=orders.share_id,
        )

    def _shares(self, social: ir.Table) -> ir.Table:
        """share_id -> the customer who shared (the first share event carrying that id)."""
        shares = social.filter(social.type == "share", social.share_id.notnull())
        first = shares.mutate(_n=ibis.row_number().over(group_by="share_id", order_by=["occurred_at", "customer_id"]))
        return first.filter(first._n == 0).select("share_id", sharer=first.customer_id)

    def _attributed(self) -> ir.Table:
        """Purchases attributed to another customer's share: the buyer's last click on someone else's
        share within `attribution_days` before paying wins; an order that the channel itself marked
        with a `share_id` and that has no such click keeps the channel's attribution."""
        p = self.purchases
        columns = ["customer_id", "source", "order_id", "paid_at", "net_fen", "sharer"]
        social = self._social
        if social is None:
            return p.select(*columns[:-1], sharer=p.customer_id).limit(0)
        shares = self._shares(social)
        clicks = social.filter(social.type == "share_click", social.share_id.notnull())
        clicks = clicks.select("share_id", clicker=clicks.customer_id, clicked_at=clicks.occurred_at)
        clicks = clicks.join(shares, "share_id")
        clicks = clicks.filter(clicks.sharer != clicks.clicker)
        window = ibis.interval(days=self.brand.attribution_days)
        touched = p.join(
            clicks,
            [p.customer_id == clicks.clicker, clicks.clicked_at <= p.paid_at, clicks.clicked_at >= p.paid_at - window],
        )
        touched = touched.mutate(
            _n=ibis.row_number().over(
                group_by=["source", "order_id"], order_by=[ibis.desc("clicked_at"), ibis.desc("share_id")]
            )
        )
        by_click = touched.filter(touched._n == 0).select(*columns)
        marked = p.filter(p.share_id.notnull()).join(shares, "share_id")
        marked = marked.filter(marked.sharer != marked.customer_id).anti_join(by_click, ["source", "order_id"])
        return ibis.union(by_click, marked.select(*columns))

    def _propagations(self) -> ir.Table:
        """Successful propagations credited to the customer who made them: `at` is when it happened,
        `value_fen` the net paid amount it brought (0 for a review)."""
        a = self.attributed
        by_share = a.select(customer_id=a.sharer, at=a.paid_at, value_fen=a.net_fen, kind=ibis.literal("share"))
        social = self._social
        if social is None or not self.brand.koc_reviews:
            return by_share
        reviews = social.filter(social.type == "review", social.rating >= POSITIVE_RATING, social.order_id.notnull())
        # "of a purchased item": the reviewed order must be one of the reviewer's own purchases, of
        # any date (a review in P may be of an order from before the facts' `since`).
        orders = self._raw(
            "orders",
            lambda t: t.status.isin(PAID_STATUSES) & t.paid_at.notnull() & not_fully_refunded(t),
        )
        if orders is None:
            return by_share
        reviewed = orders.select(*NODE, "order_id").semi_join(reviews, "order_id").join(self._idmap, NODE)
        reviews = reviews.semi_join(reviewed.select("customer_id", "order_id"), ["customer_id", "order_id"])
        by_review = reviews.select(
            "customer_id", at=reviews.occurred_at, value_fen=ibis.literal(0, "int64"), kind=ibis.literal("review")
        )
        return ibis.union(by_share, by_review)
