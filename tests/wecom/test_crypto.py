"""The callback crypto against known answers and the documented algorithm."""

from __future__ import annotations

import pytest

from fixtures import wecom_wire as wire
from siyu.wecom import xmlmsg
from siyu.wecom.crypto import CallbackCryptoError, WeComCrypto, signature

# Known-answer vectors from wechatpy's tests (tests/test_crypto.py, WeChatCrypto for WeCom): token,
# EncodingAESKey and corp id, with ciphertexts and signatures WeCom's reference SDK produced.
KAT_TOKEN, KAT_KEY, KAT_CORP = "123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a"
KAT_REPLY = b"""<xml>
<MsgType><![CDATA[text]]></MsgType>
<Content><![CDATA[test]]></Content>
<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>
<ToUserName><![CDATA[messense]]></ToUserName>
<AgentID>1</AgentID>
<CreateTime>1411525903</CreateTime>
</xml>"""
KAT_REPLY_CIPHERTEXT = (
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtOb"
    "vesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8"
    "NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O"
    "5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
)
KAT_INBOUND = (
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymz"
    "xh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIi"
    "OAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvc"
    "cTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0="
)
KAT_ECHOSTR = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="


def test_known_answer_encrypt_and_signature() -> None:
    crypto = WeComCrypto(KAT_TOKEN, KAT_KEY, KAT_CORP)
    ciphertext = crypto.encrypt(KAT_REPLY, random16=lambda: b"1234567890123456")
    assert ciphertext == KAT_REPLY_CIPHERTEXT
    assert signature(KAT_TOKEN, "1411525903", "461056294", ciphertext) == "407518b7649e86ef23978113f92d27afa9296533"


def test_known_answer_decrypt_inbound() -> None:
    crypto = WeComCrypto(KAT_TOKEN, KAT_KEY, KAT_CORP)
    plain = crypto.verify_and_decrypt(
        "74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525903", "461056294", KAT_INBOUND
    )
    fields = xmlmsg.message(plain)
    assert (fields["Content"], fields["FromUserName"]) == ("test", "messense")


def test_known_answer_echostr_signature() -> None:
    crypto = WeComCrypto(KAT_TOKEN, KAT_KEY, KAT_CORP)
    crypto.verify("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374425", KAT_ECHOSTR)
    with pytest.raises(CallbackCryptoError, match="signature"):  # one digit of the nonce changed
        crypto.verify("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374424", KAT_ECHOSTR)


def test_documented_payload_decrypts_and_padding_is_32_byte_blocks() -> None:
    crypto = WeComCrypto(wire.TOKEN, wire.AES_KEY, wire.CORP_ID)
    for size in (0, 1, 11, 12, 43, 44, 300):  # 16 + 4 + n + 14 (corp id) around the 32-byte boundaries
        message = b"x" * size
        encrypted = wire.documented_encrypt(wire.AES_KEY, wire.CORP_ID, message)
        assert crypto.decrypt(encrypted) == message
        assert len(crypto.encrypt(message)) == len(encrypted)  # same padding as the documented scheme


def test_other_corp_and_tampering_are_refused() -> None:
    crypto = WeComCrypto(wire.TOKEN, wire.AES_KEY, wire.CORP_ID)
    with pytest.raises(CallbackCryptoError, match="corp"):
        crypto.decrypt(wire.documented_encrypt(wire.AES_KEY, "wwsomeoneelse", b"<xml/>"))
    with pytest.raises(CallbackCryptoError):
        crypto.decrypt("not base64!")
    with pytest.raises(CallbackCryptoError, match="43"):
        WeComCrypto(wire.TOKEN, wire.AES_KEY[:-1], wire.CORP_ID)


def test_doctype_is_refused() -> None:
    with pytest.raises(CallbackCryptoError, match="DOCTYPE"):
        xmlmsg.message(b'<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Event>&a;</Event></xml>')
