"""A server at INFO does not log the HTTP clients' request lines: they are full URLs, and the URLs
siyu calls carry secrets (WeCom `gettoken?corpsecret=…`)."""

from __future__ import annotations

import logging

import httpx
import pytest

from siyu.core.logs import configure


def test_client_request_urls_are_not_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    for name in ("httpx", "httpcore"):  # as in a fresh server process (the test run's log guard sets them too)
        logging.getLogger(name).setLevel(logging.NOTSET)
    configure("info")
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"errcode": 0}))
    with caplog.at_level(logging.INFO), httpx.Client(transport=transport) as client:
        client.get("https://qyapi.weixin.qq.com/cgi-bin/gettoken", params={"corpid": "ww1", "corpsecret": "S3CRET"})
    assert logging.getLogger("siyu").isEnabledFor(logging.INFO)
    assert "S3CRET" not in caplog.text
