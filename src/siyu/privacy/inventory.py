"""Where a person can be (个人信息清单): every store table and lake table that holds a person, how
its rows are tied to them, and the tables that do not hold one, each with the reason.

The export and the erasure both walk this list; `tests/integration/test_subject_rights.py` checks it
against the SQLAlchemy metadata and the lake, so a new table must be placed here before it ships.

A row is tied to a person by a key, never by looking for their phone in the text:

| link | the person's values |
| --- | --- |
| `customer` | their customer ids (One-ID) |
| `account` | their loyalty accounts (reached through `loyalty_account_links`) |
| `txn` | their points transactions (`points_txns.id`) |
| `enrolment` | their journey enrolments (`journey_enrolments.id`) |
| `external_userid` | their WeCom external user ids (identifiers of that type) |
| `audit_subject` | their customer ids and loyalty account ids, as an audit row's subject |
| `record_json` | a JSON row naming one of their source records (brand, source, source_customer_id) |
| `callback_xml` | a stored WeCom callback naming one of their external user ids (`ExternalUserID`, `MemChangeList`) |
| `node` | lake rows of their source records (brand, source, source_customer_id) |
| `order` | lake order lines of their orders (brand, source, order_id) |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Link = Literal[
    "customer",
    "account",
    "txn",
    "enrolment",
    "external_userid",
    "audit_subject",
    "record_json",
    "callback_xml",
    "node",
    "order",
]
# What erasure does with the person's rows: delete them, or keep the row and replace what
# identifies them with a pseudonym (financial records, computed metrics: PIPL lets a brand keep
# records it must keep by law, and aggregates already computed must not change).
Fate = Literal["delete", "pseudonymise", "keep"]


@dataclass(frozen=True)
class Holding:
    table: str
    column: str
    link: Link
    fate: Fate
    name_zh: str
    name_en: str


STORE: tuple[Holding, ...] = (
    Holding("loyalty_account_links", "customer_id", "customer", "delete", "会员账户关联", "Loyalty account links"),
    Holding("loyalty_accounts", "id", "account", "pseudonymise", "会员账户", "Loyalty accounts"),
    Holding("points_txns", "account_id", "account", "keep", "积分流水", "Points ledger"),
    Holding("points_lots", "account_id", "account", "keep", "积分批次", "Points lots"),
    Holding("points_lot_moves", "txn_id", "txn", "keep", "积分批次变动", "Points lot moves"),
    Holding("coupons", "account_id", "account", "keep", "优惠券", "Coupons"),
    Holding("loyalty_order_postings", "account_id", "account", "keep", "订单积分入账", "Order postings"),
    Holding("loyalty_tier_history", "account_id", "account", "keep", "等级变更", "Tier history"),
    Holding("mall_redemptions", "account_id", "account", "keep", "积分商城兑换", "Mall redemptions"),
    # Proof of consent and withdrawal (PIPL art. 14–15): kept, pseudonymised (siyu.privacy.erasure)
    Holding("consent_records", "customer_id", "customer", "pseudonymise", "同意记录", "Consent records"),
    Holding("miniprogram_subscriptions", "customer_id", "customer", "delete", "小程序订阅", "Mini-program subs"),
    Holding("outbound_messages", "customer_id", "customer", "delete", "触达消息", "Messages"),
    Holding("tag_assignments", "customer_id", "customer", "delete", "标签", "Tags"),
    Holding("tag_history", "customer_id", "customer", "delete", "标签历史", "Tag history"),
    Holding("journey_enrolments", "customer_id", "customer", "delete", "旅程参与", "Journey enrolments"),
    Holding("journey_enrolment_steps", "enrolment_id", "enrolment", "delete", "旅程步骤", "Journey steps"),
    Holding("guide_bindings", "customer_id", "customer", "delete", "导购绑定", "Guide bindings"),
    Holding("guide_customer_stores", "customer_id", "customer", "delete", "归属门店", "Home stores"),
    Holding("guide_manual_bindings", "customer_id", "customer", "delete", "手工绑定", "Manual bindings"),
    Holding("guide_tasks", "customer_id", "customer", "delete", "导购任务", "Guide tasks"),
    Holding("wecom_relations", "external_userid", "external_userid", "delete", "企微关系", "WeCom relations"),
    Holding("wecom_transfers", "external_userid", "external_userid", "delete", "企微继承", "WeCom transfers"),
    Holding("wecom_welcome_sends", "external_userid", "external_userid", "delete", "欢迎语发送", "Welcome sends"),
    Holding("quarantine_rows", "raw", "record_json", "delete", "隔离行", "Quarantined rows"),
    Holding("inbox", "payload", "record_json", "delete", "接收箱", "Ingest inbox"),
    # the decrypted XML of WeCom's callbacks, processed or not: the person's external user id,
    # and whatever else WeCom put in (the state of a channel code, a welcome code…)
    Holding("wecom_callbacks", "body", "callback_xml", "delete", "企微回调", "WeCom callbacks"),
    # Records of processing (PIPL art. 54): kept; PII in before/after is masked when written.
    Holding("audit_log", "subject_id", "audit_subject", "keep", "审计记录", "Audit trail"),
)

LAKE: tuple[Holding, ...] = (
    Holding("customers", "source_customer_id", "node", "delete", "客户资料", "Customer records"),
    Holding("identities", "source_customer_id", "node", "delete", "身份标识", "Identifiers"),
    Holding("memberships", "source_customer_id", "node", "delete", "会员身份", "Memberships"),
    Holding("relations", "source_customer_id", "node", "delete", "关系", "Relations"),
    Holding("events", "source_customer_id", "node", "delete", "行为事件", "Events"),
    Holding("orders", "source_customer_id", "node", "pseudonymise", "订单", "Orders"),
    Holding("order_items", "order_id", "order", "keep", "订单明细", "Order lines"),
    Holding("messages", "external_userid", "external_userid", "delete", "会话存档", "Chat archive"),
    Holding("identity_map", "customer_id", "customer", "delete", "身份映射", "Identity map"),
    Holding("identity_merges", "survivor_id", "customer", "delete", "合并记录", "Identity merges"),
    # incremental One-ID's index of each record's identifiers (normalised values)
    Holding("identity_index", "source_customer_id", "node", "delete", "身份索引", "Identifier index"),
    Holding("tag_values", "customer_id", "customer", "delete", "计算标签", "Computed tags"),
    Holding("audience_members", "customer_id", "customer", "delete", "人群快照成员", "Audience members"),
    Holding("guide_binding_history", "customer_id", "customer", "delete", "绑定历史", "Binding history"),
    Holding("guide_bindings_current", "customer_id", "customer", "delete", "当前绑定", "Current bindings"),
    Holding("guide_customer_stores", "customer_id", "customer", "delete", "归属门店", "Home stores"),
    # Computed metrics per customer: kept under a pseudonym, so results already computed hold.
    Holding("layers", "customer_id", "customer", "pseudonymise", "分层结果", "Layers"),
    Holding("rfm", "customer_id", "customer", "pseudonymise", "RFM 结果", "RFM"),
    Holding("clv_predictions", "customer_id", "customer", "pseudonymise", "CLV 预测", "CLV predictions"),
    Holding("lifecycle", "customer_id", "customer", "pseudonymise", "生命周期", "Lifecycle"),
)

# Tables that hold no person, and why. A table missing from both lists fails the inventory test.
STORE_EXCLUDED: dict[str, str] = {
    "rate_buckets": "API rate-limit buckets, one per API key",
    "brands": "brand settings",
    "fields": "field (场域) declarations",
    "relation_types": "relation type declarations",
    "consent_purposes": "purpose declarations",
    "tag_groups": "tag group declarations",
    "tag_definitions": "tag definitions and counts",
    "audiences": "audience rules and counts",
    "audience_snapshots": "snapshot counts; the members are in the lake (audience_members)",
    "audience_exports": "who exported which audience, with a row count; the file is outside siyu",
    "journeys": "journey definitions",
    "journey_versions": "journey definitions",
    "loyalty_programs": "program definitions",
    "loyalty_program_versions": "program definitions",
    "loyalty_program_brands": "program definitions",
    "coupon_templates": "coupon definitions and counts",
    "mall_rewards": "reward definitions",
    "message_policies": "channel policies",
    "guide_rules": "binding rules",
    "guide_staff": "staff (导购), not customers",
    "wecom_configs": "the brand's WeCom credentials",
    "wecom_qrcodes": "staff QR codes",
    "wecom_welcomes": "welcome message templates",
    "console_users": "operators, not customers",
    "console_sessions": "operator sessions",
    "api_keys": "integration credentials",
    "identity_runs": "One-ID run counts",
    "import_jobs": "import counts per file",
    "materialisations": "metric run records (aggregates)",
    "event_consumers": "handler positions",
    "outbox_events": "domain events carry customer ids only (no identifiers)",
    "erasure_tombstones": "keyed hashes of erased identifiers, no clear value",
    "retention_policies": "retention settings",
}
# Free-text columns (Text, JSON, String of 200 characters or more) of the excluded tables, each with
# why no person's data is in it. A new such column fails the inventory test until it is placed
# here, or its table becomes a holding.
FREE_TEXT_EXEMPT: dict[str, str] = {
    "api_keys.scopes": "scope names",
    "api_keys.name": "the integration's name",
    "audience_exports.actor": "the operator or key who exported",
    "audience_exports.path": "where the file went",
    "audience_snapshots.rule_json": "the audience rule (conditions, not people)",
    "audience_snapshots.actor": "the operator or key",
    "audiences.name": "the audience's name",
    "audiences.description": "the audience's description",
    "audiences.rule_json": "the audience rule (conditions, not people)",
    "audiences.created_by": "the operator or key",
    "brands.name": "brand name",
    "consent_purposes.name_zh": "purpose name",
    "consent_purposes.name_en": "purpose name",
    "console_users.email": "an operator's e-mail (staff, not a customer)",
    "console_users.password_hash": "an operator's argon2 hash",
    "coupon_templates.spec": "coupon definition",
    "fields.name_zh": "field name",
    "fields.name_en": "field name",
    "guide_rules.text": "binding rule text",
    "guide_staff.name": "staff name (not a customer)",
    "import_jobs.path": "the imported file's path",
    "import_jobs.message": "import warnings naming files, columns and fields (never row values)",
    "journey_versions.spec": "journey definition",
    "journey_versions.source": "journey definition",
    "journey_versions.applied_by": "the operator",
    "loyalty_program_versions.source": "program definition",
    "loyalty_programs.spec": "program definition",
    "mall_rewards.name_zh": "reward name",
    "mall_rewards.name_en": "reward name",
    "materialisations.inputs": "the lake versions a metric run read",
    "message_policies.policy": "channel policy",
    "outbox_events.payload": "domain events carry customer ids only (no identifiers)",
    "relation_types.name_zh": "relation type name",
    "relation_types.name_en": "relation type name",
    "tag_definitions.name_zh": "tag name",
    "tag_definitions.name_en": "tag name",
    "tag_definitions.values_json": "the tag's allowed values",
    "tag_definitions.rule_json": "the tag rule (conditions, not people)",
    "tag_definitions.description": "the tag's description",
    "tag_groups.name_zh": "tag group name",
    "tag_groups.name_en": "tag group name",
    "wecom_configs.token_sealed": "the brand's WeCom credential, sealed",
    "wecom_configs.aes_key_sealed": "the brand's WeCom credential, sealed",
    "wecom_configs.secret_sealed": "the brand's WeCom credential, sealed",
    "wecom_qrcodes.staff_ids": "staff user ids of a channel code",
    "wecom_qrcodes.qr_code": "the channel code's URL",
    "wecom_qrcodes.png": "the channel code's image URL",
    "wecom_welcomes.content": "welcome message template",
}
LAKE_EXCLUDED: dict[str, str] = {
    "stores": "stores (门店), reference data",
    "staff": "staff (导购), not customers",
    "clv_fits": "model parameters per brand (aggregates)",
    "identity_imports": "the import ids One-ID has resolved (no person)",
}


def holding(tables: tuple[Holding, ...], name: str) -> Holding:
    return next(h for h in tables if h.table == name)
