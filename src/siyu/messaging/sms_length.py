"""SMS length and segments (短信计费条数), as carriers count them.

GSM-7 text: 160 characters in one message, 153 per part when concatenated (the user-data header
takes 7). Anything else (Chinese) is UCS-2: 70 characters, 67 per part. Chinese carriers bill by
these parts; the signature 【签名】 that the gateway prepends counts too (`signature` argument).
"""

from __future__ import annotations

import math

_GSM = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXT = set("^{}\\[~]|€")  # two septets each


def sms_length(text: str, signature: str = "") -> dict[str, object]:
    full = f"【{signature}】{text}" if signature else text
    if all(c in _GSM or c in _GSM_EXT for c in full):
        length = sum(2 if c in _GSM_EXT else 1 for c in full)
        single, part, encoding = 160, 153, "gsm7"
    else:
        length = len(full)
        single, part, encoding = 70, 67, "ucs2"
    segments = 1 if length <= single else math.ceil(length / part)
    return {"length": length, "segments": segments if length else 0, "encoding": encoding}
