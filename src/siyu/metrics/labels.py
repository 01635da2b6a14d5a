"""Names of the FAST+ layers, metrics and RFM groups, in both product languages (zh-CN / en).

One place for every label a person reads, so the terminal report, the HTML report and the API agree.
"""

from __future__ import annotations

# Relationship layers, shallowest first; the index is the layer's rank (DESIGN §4).
LAYERS: tuple[str, ...] = ("none", "basic", "member_no_purchase", "purchased", "repurchase", "koc")
RANK = {name: rank for rank, name in enumerate(LAYERS)}
PRIVATE_LAYERS = LAYERS[1:]  # rank ≥ 1: the layers that make up Capital

LAYER_NAMES: dict[str, tuple[str, str]] = {
    "none": ("公域用户", "Public-domain"),
    "basic": ("基础私域用户", "Basic private-domain"),
    "member_no_purchase": ("未购会员", "Member, no purchase"),
    "purchased": ("已购会员", "Purchased member"),
    "repurchase": ("复购会员", "Repurchase member"),
    "koc": ("品牌KOC", "Brand KOC"),
}

METRIC_NAMES: dict[str, tuple[str, str]] = {
    "capital": ("可持续运营私域关系数", "Capital"),
    "conversion": ("角色关系加深效率", "Conversion"),
    "connection": ("场域引力", "Connection"),
    "clv": ("角色关系价值", "CLV"),
}

# The 8 classic RFM groups by whether the R, F and M scores are above the average score.
# key: (r_high, f_high, m_high)
RFM_GROUPS: dict[tuple[bool, bool, bool], tuple[str, str, str]] = {
    (True, True, True): ("important_value", "重要价值客户", "Important value"),
    (True, False, True): ("important_development", "重要发展客户", "Important development"),
    (False, True, True): ("important_retention", "重要保持客户", "Important retention"),
    (False, False, True): ("important_winback", "重要挽留客户", "Important win-back"),
    (True, True, False): ("general_value", "一般价值客户", "General value"),
    (True, False, False): ("general_development", "一般发展客户", "General development"),
    (False, True, False): ("general_retention", "一般保持客户", "General retention"),
    (False, False, False): ("general_winback", "一般挽留客户", "General win-back"),
}


def bilingual(pair: tuple[str, str]) -> str:
    return f"{pair[0]} {pair[1]}"
