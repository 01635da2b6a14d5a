"""Composing a message: rendered content plus the channel's address (the payload an adapter gets).

Used by `do_enqueue` when the caller hands it the app (render now), and by the dispatcher for rows
queued without one (render at send time). Marketing e-mail gets its unsubscribe link here.
"""

from __future__ import annotations

from typing import Any

from siyu.bootstrap import App
from siyu.messaging.address import CustomerFacts, customer_facts
from siyu.messaging.templates import render_content
from siyu.messaging.unsubscribe import Unsubscribe, unsubscribe_url

# where each channel's address lives in the payload, and which customer identifier fills it
ADDRESS = {
    "email": ("to", "email"),
    "sms": ("phone", "phone"),
    "oa": ("openid", "openid"),
    "miniprogram": ("openid", "openid"),
    "wecom": ("external_userid", "external_userid"),
    "webhook": ("url", None),
}


class NoAddressError(Exception):
    """The customer has no address on this channel: the message is suppressed (`no_address`)."""


def compose(
    app: App,
    *,
    message_id: int,
    brand: str,
    customer_id: str | None,
    channel: str,
    category: str,
    content: dict[str, Any],
    context: dict[str, Any],
    webhook_url: str | None = None,
    facts: CustomerFacts | None = None,
) -> dict[str, Any]:
    """The payload of one message; `facts` when the caller read them for a batch (customer_facts_many)."""
    if facts is None:
        facts = customer_facts(app, brand, customer_id) if customer_id else CustomerFacts({}, None, {})
    ctx = dict(context)
    link = None
    if channel == "email" and category == "marketing" and customer_id:
        link = unsubscribe_url(
            app.settings.channels.public_url,
            app.settings.pii_key,
            Unsubscribe(brand, customer_id, "marketing_email", message_id),
        )
        ctx["unsubscribe_url"] = link
    payload = render_content(facts, channel, content, ctx, category)
    if link:
        payload["unsubscribe_url"] = link
        if link not in str(payload.get("text", "")):
            payload["text"] = f"{payload.get('text', '')}\n\n退订 Unsubscribe: {link}"
        if payload.get("html") and link not in str(payload["html"]):
            payload["html"] = f'{payload["html"]}<p><a href="{link}">退订 Unsubscribe</a></p>'
    key, id_type = ADDRESS.get(channel, ("to", None))
    if not payload.get(key):
        value = facts.addresses.get(id_type) if id_type else webhook_url
        if not value:
            raise NoAddressError(f"no_address:{channel}")
        payload[key] = value
    return payload
