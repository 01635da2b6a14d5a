"""Binding and attribution rules of a brand (导购绑定与业绩归属规则): the YAML its CRM team writes.

Pure domain: `parse_rules(text, path)` returns `GuideRules` or raises `RulesError` naming the file,
line and field to fix. docs/guides.md shows a full file and explains every option.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from siyu.core.errors import SiyuError
from siyu.core.yaml_files import parse_definition

Code = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]
Days = Annotated[int, Field(ge=0, le=3650)]
BindingMode = Literal["first_friend", "first_friend_per_store", "every_friend"]
SalesCredit = Literal["none", "bound_guide", "order_guide"]


class RulesError(SiyuError):
    code = "invalid_guide_rules"
    exit_code = 2


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Locks(_Strict):
    """Days a binding is protected from a takeover by another guide's purchase (保护期)."""

    add: Days = 0  # after a WeCom add (or a scan of the guide's channel code)
    share_visit: Days = 0  # after a page visit through the bound guide's share
    purchase: Days = 0  # after a purchase credited to the guide (order guide_code)


class Binding(_Strict):
    mode: BindingMode = "first_friend"
    locks: Locks = Locks()
    purchase_binds: bool = True  # a store purchase with guide_code binds (or takes over when unlocked)
    release_on_delete: bool = True  # the customer deleting the guide ends the binding


class CommissionTier(_Strict):
    from_fen: Annotated[int, Field(ge=0)]  # the guide's attributed fen in the period, from which
    rate_bp: Annotated[int, Field(ge=0, le=10_000)]  # basis points of the attributed amount


class Commission(_Strict):
    category: str = "*"  # order_items.category, or * for every category
    tiers: tuple[CommissionTier, ...]

    @model_validator(mode="after")
    def _ascending(self) -> Commission:
        froms = [t.from_fen for t in self.tiers]
        if not froms or froms[0] != 0 or froms != sorted(set(froms)):
            raise ValueError("tiers must start at from_fen 0 and ascend strictly")
        return self


class SopRule(_Strict):
    """A task for the bound guide N days after the customer added them (e.g. day 1, 3, 7)."""

    code: Code
    after_add_days: tuple[Annotated[int, Field(ge=0, le=365)], ...]
    title: str
    template: str | None = None  # the message the guide is to send


class GuideRules(_Strict):
    brand: Code
    version: Annotated[int, Field(ge=1)]
    binding: Binding = Binding()
    sales_credit: SalesCredit = "order_guide"
    online_sources: tuple[str, ...] = ("tmall", "jd", "miniprogram", "douyin")
    commission: tuple[Commission, ...] = ()
    sop: tuple[SopRule, ...] = ()
    sensitive_words: tuple[str, ...] = ()
    store_radius_km: Annotated[float, Field(gt=0, le=1000)] = 10.0

    def lock_days(self, source: str) -> int:
        """The lock a claim of `source` starts (manual and transfer bindings start none)."""
        locks = self.binding.locks
        return {"wecom_add": locks.add, "scan": locks.add, "purchase": locks.purchase}.get(source, 0)


def parse_rules(text: str, path: str = "<rules>") -> GuideRules:
    return parse_definition(
        text,
        path,
        GuideRules,
        RulesError,
        what="invalid guide rules 导购规则有误",
        shape="a guide rules file is a YAML mapping (brand:, version:, binding: …)",
    )
