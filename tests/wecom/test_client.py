"""The WeCom API client: the token is cached, and fetched again once when WeCom says it expired."""

from __future__ import annotations

import pytest

from fixtures import wecom_wire as wire
from siyu.fakes.wecom import FakeWeCom
from siyu.wecom.client import WeComApiError, WeComClient


def test_token_cached_and_refreshed_once_on_42001(fake: FakeWeCom, fake_served: tuple[FakeWeCom, str]) -> None:
    client = WeComClient(fake_served[1], wire.CORP_ID, wire.SECRET)
    fake.add_contact("wmT", "zhangsan", name="T")
    for _ in range(3):
        assert client.get_external_contact("wmT")["external_contact"]["name"] == "T"
    assert fake.token_calls == 1
    fake.expire_tokens()  # WeCom now answers 42001 to the cached token
    assert client.get_external_contact("wmT")["external_contact"]["name"] == "T"
    assert fake.token_calls == 2
    with pytest.raises(WeComApiError) as failed:  # other errors are raised with WeCom's errcode
        client.get_external_contact("wmUNKNOWN")
    assert failed.value.errcode == 84061 and fake.token_calls == 2
    with pytest.raises(WeComApiError) as wrong:
        WeComClient(fake_served[1], wire.CORP_ID, "wrong-secret").access_token()
    assert wrong.value.errcode == 40001
