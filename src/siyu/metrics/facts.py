"""The facts FAST+ is computed from, for one brand, resolved to One-ID customers.

Each fact table is an Ibis expression over the lake, computed once per run into a temporary table
(`Engine.materialise`), so a 12-period trend reads the raw orders and events once, not 13 times.

- purchases: paid orders not fully refunded (DESIGN §4), with the brand-local purchase day and the
  net paid amount (amount − refund, fen)
- memberships, relations: validity intervals [joined_at, left_at), [started_at, ended_at)
- visits: `visit` events in a field
- attributed: purchases attributed to another customer's share (last click within the window wins;
  clicks on one's own share never count, so self-purchases are excluded)
- propagations: successful propagations (attributed purchases, and positive reviews of a purchased
  item when the brand counts them), credited to the sharer / reviewer
"""

from __future__ import annotations

import itertools
from functools import cached_property

import ibis
import ibis.expr.types as ir

from siyu.bootstrap import App
from siyu.brands.settings import BrandSettings
from siyu.core.errors import SiyuError
from siyu.engine.adapter import utc_to_local
from siyu.identity.service import MAP_TABLE
from siyu.ingest.schema import PAID_STATUSES
from siyu.lake.views import current

NODE = ["source", "source_customer_id"]
POSITIVE_RATING = 4  # of 5: a review at or above this is a positive review (DESIGN §4)
_runs = itertools.count()


class NoCustomersError(SiyuError):
    code = "no_customers"


class Facts:
    """Materialised fact tables of one brand (see module docstring)."""

    def __init__(self, app: App, brand: BrandSettings) -> None:
        self.app = app
        self.brand = brand
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

    # -- helpers -------------------------------------------------------------------------------

    def _keep(self, name: str, expr: ir.Table) -> ir.Table:
        return self.app.engine.materialise(expr, f"facts_{self.tag}_{name}")

    def _resolved(self, entity: str) -> ir.Table | None:
        """Current rows of `entity` for this brand, with the One-ID customer id of their source customer."""
        table = current(self.app, entity)
        if table is None:
            return None
        table = table.filter(table.brand == self.brand.code)
        return table.join(self._idmap, NODE)

    # -- facts (each computed on first use, then kept) -------------------------------------------

    @cached_property
    def _events(self) -> ir.Table | None:
        return self._resolved("events")

    @cached_property
    def purchases(self) -> ir.Table:
        return self._keep("purchases", self._purchases())

    @cached_property
    def memberships(self) -> ir.Table:
        return self._keep("memberships", self._memberships())

    @cached_property
    def relations(self) -> ir.Table:
        return self._keep("relations", self._relations())

    @cached_property
    def visits(self) -> ir.Table:
        return self._keep("visits", self._visits(self._events))

    @cached_property
    def attributed(self) -> ir.Table:
        return self._keep("attributed", self._attributed(self._events))

    @cached_property
    def propagations(self) -> ir.Table:
        return self._keep("propagations", self._propagations(self._events))

    def _purchases(self) -> ir.Table:
        orders = self._resolved("orders")
        if orders is None:
            return ibis.memtable(
                {"customer_id": [], "source": [], "order_id": [], "paid_at": [], "day": [], "net_fen": [],
                 "share_id": []},
                schema={"customer_id": "string", "source": "string", "order_id": "string",
                        "paid_at": "timestamp('UTC')", "day": "date", "net_fen": "int64", "share_id": "string"},
            )  # fmt: skip
        refund = orders.refund_fen.fill_null(0)
        paid = orders.filter(orders.status.isin(PAID_STATUSES), orders.paid_at.notnull(), refund < orders.amount_fen)
        return paid.select(
            "customer_id",
            "source",
            "order_id",
            "paid_at",
            day=utc_to_local(paid.paid_at, self.brand.timezone).date(),
            net_fen=(paid.amount_fen - refund).cast("int64"),
            share_id=paid.share_id,
        )

    def _memberships(self) -> ir.Table:
        table = self._resolved("memberships")
        if table is None:
            return ibis.memtable(
                {"customer_id": [], "joined_at": [], "left_at": []},
                schema={"customer_id": "string", "joined_at": "timestamp('UTC')", "left_at": "timestamp('UTC')"},
            )
        return table.select("customer_id", "joined_at", "left_at")

    def _relations(self) -> ir.Table:
        table = self._resolved("relations")
        if table is None:
            return ibis.memtable(
                {"customer_id": [], "field": [], "started_at": [], "ended_at": []},
                schema={"customer_id": "string", "field": "string", "started_at": "timestamp('UTC')",
                        "ended_at": "timestamp('UTC')"},
            )  # fmt: skip
        return table.select("customer_id", "field", "started_at", "ended_at")

    def _visits(self, events: ir.Table | None) -> ir.Table:
        if events is None:
            return ibis.memtable(
                {"customer_id": [], "field": [], "occurred_at": []},
                schema={"customer_id": "string", "field": "string", "occurred_at": "timestamp('UTC')"},
            )
        visits = events.filter(events.type == "visit", events.field.notnull())
        return visits.select("customer_id", "field", "occurred_at")

    def _shares(self, events: ir.Table) -> ir.Table:
        """share_id -> the customer who shared (the first share event carrying that id)."""
        shares = events.filter(events.type == "share")
        shares = shares.select(
            share_id=shares.properties.cast("json")["share_id"].str, sharer=shares.customer_id, at=shares.occurred_at
        )
        shares = shares.filter(shares.share_id.notnull())
        first = shares.mutate(_n=ibis.row_number().over(group_by="share_id", order_by=["at", "sharer"]))
        return first.filter(first._n == 0).select("share_id", "sharer")

    def _attributed(self, events: ir.Table | None) -> ir.Table:
        """Purchases attributed to another customer's share: the buyer's last click on someone else's
        share within `attribution_days` before paying wins; an order that the channel itself marked
        with a `share_id` and that has no such click keeps the channel's attribution."""
        p = self.purchases
        empty = p.select("customer_id", "source", "order_id", "paid_at", "net_fen", sharer=p.customer_id).limit(0)
        if events is None:
            return empty
        shares = self._shares(events)
        clicks = events.filter(events.type == "share_click")
        clicks = clicks.select(
            clicker=clicks.customer_id,
            share_id=clicks.properties.cast("json")["share_id"].str,
            clicked_at=clicks.occurred_at,
        )
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
        by_click = touched.filter(touched._n == 0).select(
            "customer_id", "source", "order_id", "paid_at", "net_fen", "sharer"
        )
        marked = p.filter(p.share_id.notnull()).join(shares, "share_id")
        marked = marked.filter(marked.sharer != marked.customer_id)
        marked = marked.anti_join(by_click, ["source", "order_id"])
        return ibis.union(by_click, marked.select("customer_id", "source", "order_id", "paid_at", "net_fen", "sharer"))

    def _propagations(self, events: ir.Table | None) -> ir.Table:
        """Successful propagations credited to the customer who made them: `at` is when it happened,
        `value_fen` the net paid amount it brought (0 for a review)."""
        a = self.attributed
        by_share = a.select(customer_id=a.sharer, at=a.paid_at, value_fen=a.net_fen, kind=ibis.literal("share"))
        if events is None or not self.brand.koc_reviews:
            return by_share
        reviews = events.filter(events.type == "review")
        props = reviews.properties.cast("json")
        rating = props["rating"].float.fill_null(props["rating"].str.try_cast("float64"))
        reviews = reviews.select("customer_id", at=reviews.occurred_at, order_id=props["order_id"].str, rating=rating)
        reviews = reviews.filter(reviews.rating >= POSITIVE_RATING)
        # "of a purchased item": the reviewed order must be one of the reviewer's purchases.
        bought = self.purchases.select("customer_id", "order_id").distinct()
        reviews = reviews.semi_join(bought, ["customer_id", "order_id"])
        by_review = reviews.select("customer_id", "at", value_fen=ibis.literal(0, "int64"), kind=ibis.literal("review"))
        return ibis.union(by_share, by_review)
