"""One router per console page (one navigation entry each); siyu.console.mount includes them all.
Adding a page: a module here with its router, one line in ROUTERS, one line in permissions.NAV."""

from fastapi import APIRouter

from siyu.console.pages import customers, overview, settings

ROUTERS: tuple[APIRouter, ...] = (overview.router, customers.router, settings.router)
