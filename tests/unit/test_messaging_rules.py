"""Pure messaging rules with hand-worked values: quiet hours across midnight, SMS segments, the Aliyun
signature (the documented example), unsubscribe tokens."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from siyu.messaging.channels.aliyun import sign, string_to_sign
from siyu.messaging.channels.webhook import signature
from siyu.messaging.policy import BrandPolicy, InvalidPolicyError, quiet_until
from siyu.messaging.sms_length import sms_length
from siyu.messaging.unsubscribe import BadUnsubscribeTokenError, Unsubscribe, make_token, read_token

SH = ZoneInfo("Asia/Shanghai")


def at(day: int, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hh, mm, tzinfo=SH)


@pytest.mark.parametrize(
    ("local", "until"),
    [
        (at(3, 20, 59), None),  # before the window
        (at(3, 21, 0), at(4, 8, 0)),  # its first minute: to 08:00 the next morning
        (at(3, 23, 30), at(4, 8, 0)),
        (at(4, 0, 0), at(4, 8, 0)),  # after midnight: the same morning
        (at(4, 7, 59), at(4, 8, 0)),
        (at(4, 8, 0), None),  # the end is not quiet
        (at(4, 12, 0), None),
    ],
)
def test_quiet_hours_across_midnight_in_shanghai(local: dt.datetime, until: dt.datetime | None) -> None:
    got = quiet_until(local.astimezone(dt.UTC), SH, "21:00", "08:00")
    assert got == (until.astimezone(dt.UTC) if until else None)


def test_quiet_hours_within_a_day_and_none() -> None:
    assert quiet_until(at(3, 12, 30), SH, "12:00", "14:00") == at(3, 14).astimezone(dt.UTC)
    assert quiet_until(at(3, 14, 0), SH, "12:00", "14:00") is None
    assert quiet_until(at(3, 23, 0), SH, None, None) is None
    # 13:30 UTC is 21:30 in Shanghai: quiet there, not in London (13:30)
    utc = dt.datetime(2026, 12, 3, 13, 30, tzinfo=dt.UTC)
    assert quiet_until(utc, SH, "21:00", "08:00") == at(4, 8).astimezone(dt.UTC)
    assert quiet_until(utc, ZoneInfo("Europe/London"), "21:00", "08:00") is None


def test_policy_validation_says_what_to_fix() -> None:
    with pytest.raises(InvalidPolicyError, match="HH:MM"):
        BrandPolicy.from_dict({"quiet_start": "9pm", "quiet_end": "08:00"})
    with pytest.raises(InvalidPolicyError, match="both"):
        BrandPolicy.from_dict({"quiet_start": "21:00", "quiet_end": None})
    with pytest.raises(InvalidPolicyError, match="unknown policy keys"):
        BrandPolicy.from_dict({"cap": 2})
    p = BrandPolicy.from_dict({"caps": [{"count": 1, "days": 1, "channel": "sms"}]})
    assert p.caps[0].channel == "sms" and p.quiet_start == "21:00"


def test_sms_segments_chinese_and_gsm() -> None:
    assert sms_length("a" * 160) == {"length": 160, "segments": 1, "encoding": "gsm7"}
    assert sms_length("a" * 161)["segments"] == 2  # 153 per part
    assert sms_length("a" * 307)["segments"] == 3  # 2 × 153 = 306
    assert sms_length("€" * 80) == {"length": 160, "segments": 1, "encoding": "gsm7"}  # two septets each
    assert sms_length("会" * 70) == {"length": 70, "segments": 1, "encoding": "ucs2"}
    assert sms_length("会" * 71)["segments"] == 2  # 67 per part
    assert sms_length("会" * 134)["segments"] == 2 and sms_length("会" * 135)["segments"] == 3
    # one Chinese character makes the whole message UCS-2; the signature counts
    assert sms_length("a" * 69 + "会") == {"length": 70, "segments": 1, "encoding": "ucs2"}
    assert sms_length("会" * 66, signature="思域") == {"length": 70, "segments": 1, "encoding": "ucs2"}


def test_aliyun_signature_matches_the_documented_example() -> None:
    params = {
        "AccessKeyId": "testid",
        "Action": "DescribeRegions",
        "Format": "XML",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        "SignatureVersion": "1.0",
        "Timestamp": "2016-02-23T12:46:24Z",
        "Version": "2014-05-26",
    }
    assert string_to_sign("GET", params).startswith("GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions")
    assert "Timestamp%3D2016-02-23T12%253A46%253A24Z" in string_to_sign("GET", params)
    assert sign("GET", params, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_webhook_signature_is_hmac_sha256_of_the_body() -> None:
    # echo -n '{"a":1}' | openssl dgst -sha256 -hmac s
    assert signature("s", b'{"a":1}') == "sha256=" + __import__("hmac").new(b"s", b'{"a":1}', "sha256").hexdigest()


def test_unsubscribe_token_round_trip_and_tamper() -> None:
    u = Unsubscribe("demo", "c_42", "marketing_email", 7)
    token = make_token("k", u)
    assert read_token("k", token) == u
    assert "@" not in token and "marketing" not in token  # nothing readable off the URL (ids only, no PII)
    with pytest.raises(BadUnsubscribeTokenError):
        read_token("other-key", token)
    sig = token.partition(".")[2]
    forged = make_token("k", Unsubscribe("demo", "c_43", "marketing_email", 7)).partition(".")[0]
    with pytest.raises(BadUnsubscribeTokenError):
        read_token("k", f"{forged}.{sig}")
