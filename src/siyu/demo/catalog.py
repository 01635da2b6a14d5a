"""Fixed vocabularies of the demo brand: sources, fields, products, places, names."""

from __future__ import annotations

import numpy as np

SOURCES = ("tmall", "jd", "douyin", "mini_program", "wecom", "official_account", "pos", "crm")
PREFIX = ("tm", "jd", "dy", "mp", "wc", "oa", "pos", "crm")
SOURCE_WEIGHTS = np.array([0.25, 0.09, 0.11, 0.15, 0.10, 0.08, 0.10, 0.12])
TM, JD, DY, MP, WC, OA, POS, CRM = range(8)
PURCHASE_SOURCES = (TM, JD, DY, MP, POS)
WECHAT_FAMILY = (MP, WC, OA)

FIELDS = (  # code, name_zh, name_en, platform
    ("tmall_store", "天猫旗舰店", "Tmall flagship store", "tmall"),
    ("tmall_group_chat", "天猫粉丝群", "Tmall fan group chat", "tmall"),
    ("tmall_live", "天猫直播间", "Tmall live room", "tmall"),
    ("exclusive_cs", "专属客服", "Exclusive customer service", "tmall"),
    ("mini_program", "小程序", "WeChat mini-program", "wechat"),
    ("wecom", "企业微信", "WeCom", "wecom"),
    ("official_account", "公众号", "WeChat official account", "wechat"),
    ("douyin_store", "抖音小店", "Douyin store", "douyin"),
    ("offline_store", "线下门店", "Offline stores", "offline"),
    ("subscription", "订阅", "Subscription messages", "wechat"),
)
UNDECLARED_FIELD = "douyin_live"  # used in events, deliberately missing from fields.csv

# (source, field, relation_type, probability a record holds it)
RELATIONS = (
    (TM, "tmall_store", "follow_store", 0.60),
    (TM, "tmall_group_chat", "group_member", 0.12),
    (TM, "tmall_live", "follow_live", 0.20),
    (TM, "exclusive_cs", "exclusive_cs", 0.05),
    (DY, "douyin_store", "fan", 0.50),
    (MP, "mini_program", "subscription", 0.30),
    (MP, "subscription", "subscription", 0.10),
    (WC, "wecom", "wecom_friend", 0.95),
    (WC, "wecom", "group_member", 0.30),
    (OA, "official_account", "official_account_follow", 0.90),
    (POS, "offline_store", "exclusive_cs", 0.40),
    (CRM, "subscription", "subscription", 0.15),
)
STAFF_RELATIONS = ("wecom_friend", "exclusive_cs")

# Where a source's customers visit: (source, [(field, probability)])
VISIT_FIELDS = {
    TM: (("tmall_store", 0.75), ("tmall_live", 0.15), ("tmall_group_chat", 0.05), ("exclusive_cs", 0.05)),
    DY: (("douyin_store", 0.85), (UNDECLARED_FIELD, 0.15)),
    MP: (("mini_program", 1.0),),
    WC: (("wecom", 1.0),),
    OA: (("official_account", 1.0),),
    POS: (("offline_store", 1.0),),
}
SHARE_FIELDS = {TM: "tmall_store", DY: "douyin_store", MP: "mini_program"}
CONTENT_TYPES = ("product", "live", "short_video", "mini_program_page", "poster")

PLACEHOLDER_PHONES = ("13800000000", "13888888888", "12345678901")
JUNK_EMAIL = "test@test.com"

CATEGORIES = ("面霜", "精华", "洁面", "面膜", "防晒", "爽肤水", "眼霜")
TIERS = ("普通会员", "银卡", "金卡", "黑金")
TIER_WEIGHTS = np.array([0.55, 0.25, 0.15, 0.05])
STORES = 50
GUIDES = 200

SURNAMES = np.array(list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾"))
GIVEN = np.array(list("伟芳娜秀敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华玉萍红娥玲芬燕彬晨"))
PLACES = (
    ("上海", "上海"), ("北京", "北京"), ("广东", "广州"), ("广东", "深圳"), ("浙江", "杭州"),
    ("江苏", "南京"), ("江苏", "苏州"), ("四川", "成都"), ("湖北", "武汉"), ("陕西", "西安"),
)  # fmt: skip


def fields_table(brand: str) -> dict[str, list[str]]:
    return {
        "brand": [brand] * len(FIELDS),
        "code": [f[0] for f in FIELDS],
        "name_zh": [f[1] for f in FIELDS],
        "name_en": [f[2] for f in FIELDS],
        "platform": [f[3] for f in FIELDS],
    }
