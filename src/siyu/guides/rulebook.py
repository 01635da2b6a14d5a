"""Applied guide rules (versioned data): `siyu guides rules apply FILE` and the rules in force."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.guides.models import GuideRulesVersion
from siyu.guides.rules import GuideRules, RulesError, parse_rules
from siyu.store.uow import UnitOfWork


def do_apply_rules(uow: UnitOfWork, text: str, path: str) -> tuple[GuideRules, bool]:
    """(rules, applied). The file's `version` must be new for its brand; re-applying the version in
    force with the same text is a no-op, with other text an error (versions are immutable)."""
    rules = parse_rules(text, path)
    s = uow.session
    existing = s.get(GuideRulesVersion, (rules.brand, rules.version))
    if existing is not None:
        if existing.text == text:
            return rules, False
        raise RulesError(
            f"{path}: version {rules.version} of brand {rules.brand} was applied with other content; "
            "raise `version` to change the rules (规则版本不可修改)"
        )
    newest = s.scalar(
        select(GuideRulesVersion.version)
        .where(GuideRulesVersion.brand == rules.brand)
        .order_by(GuideRulesVersion.version.desc())
        .limit(1)
    )
    if newest is not None and rules.version < newest:
        raise RulesError(f"{path}: version {rules.version} is older than version {newest} in force (版本号须递增)")
    s.add(GuideRulesVersion(brand=rules.brand, version=rules.version, text=text, applied_at=uow.now))
    uow.audit(
        "guides.rules.apply",
        "guide_rules",
        f"{rules.brand}:{rules.version}",
        brand=rules.brand,
        after={"version": rules.version, "mode": rules.binding.mode, "sales_credit": rules.sales_credit},
    )
    return rules, True


def rules_in_force(session: Session, brand: str) -> GuideRules:
    """The newest applied rules of `brand`, or the defaults (docs/guides.md) when none were applied."""
    row = session.scalar(
        select(GuideRulesVersion)
        .where(GuideRulesVersion.brand == brand)
        .order_by(GuideRulesVersion.version.desc())
        .limit(1)
    )
    if row is None:
        return GuideRules.model_construct(brand=brand, version=1)  # defaults; brand codes are not re-checked
    return parse_rules(row.text, f"guide_rules:{brand}:{row.version}")
