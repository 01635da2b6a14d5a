"""One router per console page (one navigation entry each); siyu.console.mount includes them all.
Adding a page: a module here with its router, one line in ROUTERS, one line in permissions.NAV
(and its permission in permissions.PERMISSIONS), its template and labels (docs/console.md)."""

from fastapi import APIRouter

from siyu.console.pages import (
    audiences,
    customers,
    guides,
    imports,
    journeys,
    loyalty,
    loyalty_coupons,
    overview,
    reference,
    settings,
)

ROUTERS: tuple[APIRouter, ...] = (
    overview.router,
    customers.router,
    audiences.router,
    loyalty.router,
    loyalty_coupons.router,
    journeys.router,
    guides.router,
    imports.router,
    settings.router,
    reference.router,
)
