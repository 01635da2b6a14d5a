"""Per-customer purchase history summarised for BG/NBD and Gamma-Gamma (Ibis, on the lake).

As in Fader, Hardie & Lee (2005): one transaction per customer-day (brand-local days; same-day
orders are summed), x = repeat transactions (days − 1), t_x = time from the first to the last
purchase, T = time from the first purchase to the calibration end, in the chosen unit (weeks =
days / 7). The Gamma-Gamma spend is the mean value of the repeat transactions (the first one is
left out, as in the paper's CDNOW analysis), in yuan.
"""

from __future__ import annotations

from datetime import date

import ibis
import ibis.expr.types as ir

from siyu.metrics.facts import Facts

UNITS = {"week": 7.0, "day": 1.0}


def customer_days(facts: Facts) -> ir.Table:
    """customer_id, day, spend_fen: one row per customer and brand-local purchase day."""
    p = facts.purchases
    return p.group_by(["customer_id", "day"]).agg(spend_fen=p.net_fen.sum())


def summary(facts: Facts, calibration_end: date, unit: str) -> ir.Table:
    """customer_id, x, t_x, T, mean_spend (yuan, null when x = 0), first_day, for every customer
    with a purchase on or before `calibration_end`."""
    days = customer_days(facts)
    cal = days.filter(days.day <= ibis.literal(calibration_end))
    ordered = cal.mutate(_n=ibis.row_number().over(group_by="customer_id", order_by="day"))
    per = ordered.group_by("customer_id").agg(
        first_day=ordered.day.min(),
        last_day=ordered.day.max(),
        n=ordered.count(),
        repeat_fen=ordered.spend_fen.sum(where=ordered._n > 0),
    )
    scale = UNITS[unit]
    x = (per.n - 1).cast("int64")
    return per.select(
        "customer_id",
        "first_day",
        x=x,
        t_x=per.last_day.delta(per.first_day, unit="day").cast("float64") / scale,
        T=ibis.literal(calibration_end).delta(per.first_day, unit="day").cast("float64") / scale,
        mean_spend=ibis.ifelse(x > 0, per.repeat_fen.cast("float64") / x / 100.0, ibis.null("float64")),
    )


def holdout(facts: Facts, calibration_end: date) -> ir.Table:
    """customer_id, holdout_x: purchase days after the calibration end (the holdout period)."""
    days = customer_days(facts)
    after = days.filter(days.day > ibis.literal(calibration_end))
    return after.group_by("customer_id").agg(holdout_x=after.count())
