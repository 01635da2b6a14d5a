"""Migration 0005 creates exactly the tables, columns and indexes of siyu.loyalty.models, on SQLite
and PostgreSQL (alembic's autogenerate comparison finds no difference for those tables)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from siyu.bootstrap import App
from siyu.loyalty import models

TABLES = {
    obj.__tablename__
    for obj in vars(models).values()
    if isinstance(obj, type) and issubclass(obj, models.Base) and obj.__module__ == models.__name__
}


def _table_of(diff: object) -> str | None:
    """The table an autogenerate difference is about."""
    item = diff[0] if isinstance(diff, list) else diff
    assert isinstance(item, tuple)
    kind = str(item[0])
    if kind in ("add_table", "remove_table"):
        return str(item[1].name)
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint"):
        return str(item[1].table.name)
    if kind in ("add_fk", "remove_fk"):
        return str(item[1].parent.name)
    if kind.endswith("_column") or kind.startswith("modify_"):
        return str(item[2])
    return None


def test_migration_matches_models(app: App) -> None:
    assert {
        "loyalty_programs",
        "loyalty_program_versions",
        "loyalty_program_brands",
        "loyalty_accounts",
        "loyalty_account_links",
        "points_txns",
        "points_lots",
        "points_lot_moves",
        "loyalty_tier_history",
        "coupon_templates",
        "coupons",
        "mall_rewards",
        "mall_redemptions",
    } <= TABLES
    with app.store.engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), models.Base.metadata)
    mine = [d for d in diffs if _table_of(d) in TABLES]
    assert mine == []
    unknown = [d for d in diffs if _table_of(d) is None]
    assert unknown == []
