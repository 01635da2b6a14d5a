"""Names a person reads, in both product languages: channels (亮灯), conditions, tag kinds."""

from __future__ import annotations

# Reachability channels (触达渠道), in display order.
CHANNELS: dict[str, tuple[str, str]] = {
    "sms": ("短信", "SMS"),
    "email": ("邮件", "E-mail"),
    "wecom": ("企业微信", "WeCom"),
    "official_account": ("公众号", "Official account"),
    "mini_program_subscription": ("小程序订阅消息", "Mini-program subscription message"),
    "douyin": ("抖音", "Douyin"),
    "tmall": ("天猫", "Tmall"),
    "offline_store": ("线下门店", "Offline store"),
}

KINDS: dict[str, tuple[str, str]] = {
    "attribute": ("属性", "attribute"),
    "tag": ("标签", "tag"),
    "identifier": ("身份标识", "identifier"),
    "membership": ("会员", "membership"),
    "relation": ("关系", "relation"),
    "layer": ("关系层级", "layer"),
    "layer_change": ("层级变化", "layer change"),
    "rfm_group": ("RFM分组", "RFM group"),
    "rfm": ("RFM得分", "RFM score"),
    "lifecycle": ("生命周期", "lifecycle stage"),
    "clv": ("CLV", "CLV"),
    "did": ("行为", "behaviour"),
    "bought": ("购买", "purchase"),
    "spent": ("消费金额", "spend"),
    "reachable": ("可触达", "reachable"),
    "consent": ("授权", "consent"),
}

TAG_KINDS: dict[str, tuple[str, str]] = {
    "rule": ("规则标签", "rule tag"),
    "manual": ("手工标签", "manual tag"),
    "imported": ("导入标签", "imported tag"),
}

LAYER_CHANGES: dict[str, tuple[str, str]] = {
    "deepened": ("关系加深", "deepened"),
    "declined": ("关系变浅", "declined"),
    "unchanged": ("未变化", "unchanged"),
    "entered": ("新进入私域", "entered the private domain"),
    "left": ("流出私域", "left the private domain"),
}


def label(pair: tuple[str, str]) -> str:
    return f"{pair[0]} {pair[1]}"
