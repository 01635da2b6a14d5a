"""Logging set-up of siyu's servers.

HTTP client libraries log every request's full URL at INFO, and the URLs siyu calls carry secrets
and personal data: WeCom's `gettoken?corpid=…&corpsecret=…`, `…?access_token=…`, webhook query
strings. So they log at WARNING and above only, whatever level the server runs at; siyu's own
loggers never log a query string (siyu.api.telemetry).
"""

from __future__ import annotations

import logging

QUIET = ("httpx", "httpcore")  # clients whose INFO lines are full URLs


def configure(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_clients()


def quiet_clients() -> None:
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
