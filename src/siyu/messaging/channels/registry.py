"""Importing this module registers every adapter siyu ships (the WeCom one lives in siyu.wecom)."""

from __future__ import annotations

import contextlib

from siyu.messaging.channels import email, sms, webhook, wechat  # noqa: F401  (registration)

with contextlib.suppress(ImportError):  # the WeCom helper's adapter, when present
    import siyu.wecom.channel  # noqa: F401
