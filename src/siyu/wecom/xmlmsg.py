"""Callback XML (回调消息体) ↔ dicts. WeCom's XML is flat (`<xml><Event>…</Event>…</xml>`) except
`MemChangeList` (group members that joined or left), which becomes a list of ids."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from xml.sax.saxutils import escape

from siyu.wecom.crypto import CallbackCryptoError


def _parse(body: bytes) -> ET.Element:
    # No DTDs at all: WeCom never sends one, and refusing them rules out entity expansion.
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise CallbackCryptoError("XML with a DOCTYPE is not a WeCom callback (拒绝 DOCTYPE)")
    try:
        return ET.fromstring(body)  # noqa: S314 - DTD-free (checked above) and size-limited by the route
    except ET.ParseError as exc:
        raise CallbackCryptoError(f"unparsable XML: {exc} (XML 格式错误)") from exc


def envelope(body: bytes) -> dict[str, str]:
    """The outer request body: `ToUserName`, `Encrypt`, `AgentID`."""
    return {child.tag: (child.text or "") for child in _parse(body)}


def message(body: bytes) -> dict[str, Any]:
    """A decrypted callback: tag → text; `MemChangeList` → list of member ids."""
    out: dict[str, Any] = {}
    for child in _parse(body):
        if child.tag == "MemChangeList":
            out[child.tag] = [(item.text or "").strip() for item in child if (item.text or "").strip()]
        else:
            out[child.tag] = (child.text or "").strip()
    return out


def render(fields: dict[str, Any]) -> bytes:
    """Build callback XML (the fake and tests send these); text in CDATA, numbers bare."""
    parts = ["<xml>"]
    for tag, value in fields.items():
        if isinstance(value, list):
            items = "".join(f"<Item><![CDATA[{escape(str(v))}]]></Item>" for v in value)
            parts.append(f"<{tag}>{items}</{tag}>")
        elif isinstance(value, int):
            parts.append(f"<{tag}>{value}</{tag}>")
        else:
            parts.append(f"<{tag}><![CDATA[{value}]]></{tag}>")
    parts.append("</xml>")
    return "".join(parts).encode()


def encrypted_envelope(to_user: str, ciphertext: str, agent_id: str = "") -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{to_user}]]></ToUserName><Encrypt><![CDATA[{ciphertext}]]></Encrypt>"
        f"<AgentID><![CDATA[{agent_id}]]></AgentID></xml>"
    ).encode()
