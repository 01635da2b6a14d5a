"""Store assignment by location (就近分配门店): a customer with a known location gets the nearest
open store within the brand's `store_radius_km`. Distances are great-circle (haversine), computed
in the engine; a latitude band of ±radius narrows the customer × store join before it.

A customer's location is the latest event (any type, e.g. `location` or `visit`) whose properties
carry numeric `lat` and `lng`.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from siyu.bootstrap import App
from siyu.guides.claims import NODE, idmap
from siyu.guides.rules import GuideRules
from siyu.ingest.views import current

EARTH_KM = 6371.0088
KM_PER_DEGREE_LAT = 111.2


def haversine_km(
    lat1: ir.FloatingValue, lng1: ir.FloatingValue, lat2: ir.FloatingValue, lng2: ir.FloatingValue
) -> ir.FloatingValue:
    dlat, dlng = (lat2 - lat1).radians(), (lng2 - lng1).radians()
    a = (dlat / 2).sin() ** 2 + lat1.radians().cos() * lat2.radians().cos() * (dlng / 2).sin() ** 2
    return 2 * EARTH_KM * a.sqrt().asin()


def customer_locations(app: App, brand: str) -> ir.Table | None:
    """customer_id, lat, lng: the latest located event of each customer."""
    events, ids = current(app, "events"), idmap(app, brand)
    if events is None or ids is None:
        return None
    e = events.filter((events.brand == brand) & events.properties.notnull())
    props = e.properties.cast("json")
    e = e.mutate(lat=props["lat"].float, lng=props["lng"].float)
    e = e.filter(e.lat.notnull() & e.lng.notnull() & (e.lat.abs() <= 90) & (e.lng.abs() <= 180)).join(ids, NODE)
    e = e.mutate(_r=ibis.row_number().over(group_by="customer_id", order_by=ibis.desc(e.occurred_at)))
    return e.filter(e._r == 0).select("customer_id", "lat", "lng")


def open_stores(app: App, brand: str) -> ir.Table | None:
    stores = current(app, "stores")
    if stores is None:
        return None
    now = ibis.now().cast("timestamp('UTC')")
    s = stores.filter(
        (stores.brand == brand)
        & stores.lat.notnull()
        & stores.lng.notnull()
        & (stores.opened_at.isnull() | (stores.opened_at <= now))
        & (stores.closed_at.isnull() | (stores.closed_at > now))
    )
    return s.select("store_code", s_lat=s.lat, s_lng=s.lng)


def nearest_stores(app: App, brand: str, rules: GuideRules) -> ir.Table | None:
    """customer_id, store_code, distance_km of the nearest open store within the radius."""
    located, stores = customer_locations(app, brand), open_stores(app, brand)
    if located is None or stores is None:
        return None
    band = rules.store_radius_km / KM_PER_DEGREE_LAT
    near = located.join(stores, (located.lat >= stores.s_lat - band) & (located.lat <= stores.s_lat + band))
    near = near.mutate(distance_km=haversine_km(near.lat, near.lng, near.s_lat, near.s_lng))
    near = near.filter(near.distance_km <= rules.store_radius_km)
    near = near.mutate(_r=ibis.row_number().over(group_by="customer_id", order_by=[near.distance_km, near.store_code]))
    return near.filter(near._r == 0).select("customer_id", "store_code", "distance_km")
