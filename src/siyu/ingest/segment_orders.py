"""Segment `Order Completed` / `Order Refunded` → `orders` and `order_items`, money in yuan → fen.

Money is exact: an amount that is not a whole number of fen is passed on as written, for the
importer to quarantine, never rounded. An order is accepted or quarantined whole with its items.
Refunds are summed from the refund events themselves (this batch's and the lake's), never added to
a stored total, so mapping a batch again yields the same rows.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from siyu.ingest.schema import ENTITIES
from siyu.ingest.segment_text import Existing, as_text, get, output
from siyu.ingest.validate import REJECTED, first_problem

ORDER_COMPLETED = "order_completed"
ORDER_REFUNDED = "order_refunded"
MAX_FEN = 10**15  # as the importer: fen and counts have at most 15 digits
FEN_DECIMAL = "decimal(38, 6)"  # fen computed exactly, before the check that they are whole


# -- money and counts -----------------------------------------------------------------------------


def _decimal(text: ir.StringValue) -> ir.DecimalValue:
    return text.try_cast("decimal(38, 6)")


def _fen_text(fen: ir.DecimalValue) -> ir.StringValue:
    """A fen amount as canonical text: the integer when exact and in range, else the decimal as
    written (e.g. `0.1` for 0.001 yuan), which the importer quarantines: money is never rounded."""
    ok = (fen == fen.round(0)) & (fen.abs() < MAX_FEN)
    # CASE is evaluated lazily: the int64 cast never sees an out-of-range value.
    written = fen.cast("string").re_replace(r"[.]?0+$", "")  # 1000.500000 → 1000.5
    return ibis.ifelse(ok, fen.cast("int64").cast("string"), written)


def _fen_or_raw(text: ir.StringValue) -> ir.StringValue:
    """Fen from a yuan amount, exact to the fen; a value that is not a number is passed on as is."""
    amount = _decimal(text)
    small = amount.abs() < MAX_FEN  # yuan × 100 must not overflow the decimal either
    return ibis.ifelse(amount.notnull() & small, _fen_text(amount * 100), text)


def _count_or_raw(text: ir.StringValue) -> ir.StringValue:
    """A whole count as text ("3", also from 3.0); anything else passed on for the importer to reject."""
    number = _decimal(text)
    whole = number.notnull() & (number == number.round(0)) & (number.abs() < MAX_FEN)
    return ibis.ifelse(whole, number.cast("int64").cast("string"), text)


# -- orders and their items -----------------------------------------------------------------------


def order_id_of(props: ir.JSONValue) -> ir.StringValue:
    return get(props, "order_id", "orderId")


def _completed(p: ir.Table) -> ir.Table:
    """The last `Order Completed` message of each order in the batch."""
    done = p.filter((p.kind == "track") & (p.event_name == ORDER_COMPLETED)).rename(order_id="o_order_id")
    rank = ibis.row_number().over(group_by=["brand", "source", "order_id"], order_by=ibis.desc("inbox_id"))
    done = done.mutate(_rank=rank)
    return done.filter(done._rank == 0).drop("_rank")


def _refund_amounts(t: ir.Table) -> ir.Table:
    """brand, source, order_id, event_id, refund (int fen; NULL = the whole order) of refund events
    (`t`: brand, source, event_id, `props` JSON).

    The refunded amount is `total`, else `revenue`, else Σ price × quantity of the listed products
    (priced ones), else the whole order."""
    event = ["brand", "source", "event_id"]
    items = t.mutate(_product=t.props["products"].array).unnest("_product")
    price = _decimal(get(items._product, "price"))
    qty = ibis.coalesce(_decimal(get(items._product, "quantity")), ibis.literal(1).cast("decimal(38, 6)"))
    large = (price.abs() >= MAX_FEN) | (qty.abs() >= MAX_FEN)
    per_event = items.group_by(event).aggregate(_products=ibis.ifelse(large, MAX_FEN, price * qty).sum())
    t = t.left_join(per_event.view(), event)
    amount = ibis.coalesce(_decimal(get(t.props, "total")), _decimal(get(t.props, "revenue")), t._products)
    # Exact fen, never rounded (a sub-fen refund makes the order's refund_fen a decimal the importer
    # quarantines); an absurd amount is capped where it is still rejected, not overflowed.
    fen = ibis.ifelse(amount.abs() >= MAX_FEN, ibis.literal(MAX_FEN).cast(FEN_DECIMAL), amount * 100)
    out = t.select(*event, order_id=order_id_of(t.props), refund=fen.cast(FEN_DECIMAL))
    return out.view()


def _refunds(p: ir.Table, existing: Existing) -> ir.Table:
    """Every known refund event (this batch's and the lake's) of the orders this batch touches."""
    batch = p.filter((p.kind == "track") & (p.event_name == ORDER_REFUNDED))
    refunds = _refund_amounts(batch.select("brand", "source", event_id=batch.message_id, props=batch.properties))
    old = existing("events")
    if old is None:
        return refunds
    old = old.filter(old.type == ORDER_REFUNDED).anti_join(refunds.view(), ["brand", "source", "event_id"])
    earlier = _refund_amounts(old.select("brand", "source", "event_id", props=old.properties.cast("json")))
    return refunds.union(earlier, distinct=False)


def orders(p: ir.Table, existing: Existing) -> ir.Table:
    """`Order Completed` → a paid order; `Order Refunded` → its refund total and status.

    An order refunded here but completed in an earlier batch is re-emitted from the lake's row; a
    refund for an order not seen yet emits nothing (its event waits in `events` and is applied when
    the order arrives)."""
    key = list(ENTITIES["orders"].key)
    done = _completed(p)
    completed = output(
        done,
        "orders",
        {
            "brand": done.brand,
            "source": done.source,
            "order_id": done.order_id,
            "source_customer_id": done.customer,
            "store_code": done.o_store_code,
            "guide_code": done.o_guide_code,
            "status": ibis.literal("paid"),
            "paid_at": done.occurred_at,
            "amount_fen": _fen_or_raw(ibis.coalesce(done.o_total, done.o_revenue)),
            "discount_fen": _fen_or_raw(done.o_discount),
            "coupon_code": done.o_coupon,
            "points_used": _count_or_raw(done.o_points_used),
            "share_id": done.o_share_id,
        },
        done.inbox_id,
    )
    rejected = _rejected_orders(_item_lines(p))
    completed = completed.left_join(rejected, key).drop(*[f"{k}_right" for k in key])
    refunds = _refunds(p, existing)
    refunded_here = p.filter((p.kind == "track") & (p.event_name == ORDER_REFUNDED))
    refunded_here = refunded_here.select("brand", "source", "inbox_id", order_id=refunded_here.o_order_id)
    touched = refunded_here.group_by(key).aggregate(_line=refunded_here.inbox_id.max())
    old = existing("orders")
    base = completed
    if old is not None:
        old_text = old.select(**as_text(old, "orders"))
        reopened = old_text.join(touched.anti_join(completed.view(), key).view(), key)
        reopened = reopened.mutate(**{REJECTED: ibis.null(str)})
        base = completed.union(reopened.select(*completed.columns), distinct=False)
        previous = old_text.select(*key, _old_refund=old_text.refund_fen).semi_join(base.view(), key)
        base = base.left_join(previous.view(), key).drop(*[f"{k}_right" for k in key])
    else:
        base = base.mutate(_old_refund=ibis.null(str))
    totals = refunds.semi_join(base.view(), key)
    totals = totals.group_by(key).aggregate(_full=totals.refund.isnull().any(), _partial=totals.refund.sum())
    out = base.left_join(totals.view(), key).drop(*[f"{k}_right" for k in key])
    amount = out.amount_fen.try_cast("int64").cast(FEN_DECIMAL)
    refund = ibis.coalesce(
        ibis.ifelse(out._full, amount, out._partial), out._old_refund.try_cast("int64").cast(FEN_DECIMAL)
    )
    status = ibis.cases(
        (refund.isnull() | (refund == 0), out.status),
        (refund >= amount, "refunded"),
        else_="partially_refunded",
    )
    values = {c: out[c] for c in ENTITIES["orders"].column_names} | {
        "refund_fen": ibis.coalesce(_fen_text(refund), out.refund_fen),
        "status": status,
    }
    return output(out, "orders", values, out._line, out[REJECTED])


def _item_lines(p: ir.Table) -> ir.Table:
    """The `products` of each order's last `Order Completed`, one line each (line_no from 1), as
    canonical text plus `_line`."""
    done = _completed(p)
    items = done.mutate(_product=done.properties["products"].array).unnest("_product", offset="_offset")
    product = items._product
    price = _decimal(get(product, "price"))
    qty_text = ibis.coalesce(get(product, "quantity"), ibis.literal("1"))
    qty = _decimal(qty_text)
    computable = (price.abs() < MAX_FEN) & (qty.abs() < MAX_FEN)  # no decimal overflow
    values = {
        "brand": items.brand,
        "source": items.source,
        "order_id": items.order_id,
        "line_no": (items._offset + 1).cast("string"),
        "sku": get(product, "sku"),
        "spu": get(product, "product_id", "productId"),
        "category": get(product, "category"),
        "qty": _count_or_raw(qty_text),
        "price_fen": _fen_or_raw(get(product, "price")),
        "amount_fen": ibis.ifelse(computable, _fen_text(price * qty * 100), ibis.null(str)),
    }
    return output(items, "order_items", values, items.inbox_id)


def _rejected_orders(lines: ir.Table) -> ir.Table:
    """brand, source, order_id, `_rejected` of orders with an item line the importer would reject:
    "item line N rejected: <field>: <reason>" for the first such line. An order is accepted or
    quarantined whole: a paid order missing some of its lines would overstate nothing visibly but
    be wrong everywhere its items are used (categories, RFM by product)."""
    field, reason = first_problem(lines, ENTITIES["order_items"], ibis.literal("UTC"))
    line_no = lines.line_no.try_cast("int64")
    why = "item line " + lines.line_no + " rejected (商品行无效): " + field + ": " + reason
    bad = lines.mutate(_why=why, _n=line_no).filter(reason.notnull())
    return bad.group_by(list(ENTITIES["orders"].key)).aggregate(_rejected=bad._why.first(order_by=bad._n))


def order_items(p: ir.Table) -> ir.Table:
    """Item lines (see `_item_lines`); every line of a rejected order is rejected with it."""
    lines = _item_lines(p)
    key = list(ENTITIES["orders"].key)
    marked = lines.left_join(_rejected_orders(lines), key).drop(*[f"{k}_right" for k in key])
    rejected = ibis.ifelse(marked._rejected.isnull(), ibis.null(str), "order rejected: " + marked._rejected)
    return output(marked, "order_items", {c: marked[c] for c in ENTITIES["order_items"].column_names},
                   marked._line, rejected)  # fmt: skip
