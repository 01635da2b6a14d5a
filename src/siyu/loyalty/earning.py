"""How many points an order earns (订单积分): the one rule, pure and in exact integer arithmetic.

    base   = ⌊amount_fen × per_yuan × m / 100⌋       m: the order's earn-rule multiplier
    points = ⌊base × tier multiplier × birthday multiplier⌋ + bonus

Every rate is an exact fraction (`siyu.core.money.parse_rate`), so each product is computed
exactly and rounded once, down (floor: a member never gets a fraction of a point, and 1.1 × 3 is
3.3 → 3 whatever order the factors come in). Two floors, not one: the base is what the order
itself earns (shown on the posting: "base 200 × 2.4"); the member's multipliers then apply to
that whole number. `m` comes from `siyu.loyalty.earn` as an exact ratio of integers: the
amount-weighted mean of the order lines' multipliers. The sync posts exactly these points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from siyu.core.money import rate_text


@dataclass(frozen=True)
class Earning:
    base: int  # ⌊amount_fen × per_yuan × m / 100⌋
    multiplier: Fraction  # tier × birthday
    bonus: int
    points: int  # ⌊base × multiplier⌋ + bonus

    def reason(self) -> str:
        """The ledger line's reason: `order 订单 base 200 × 2.4 + bonus 88`."""
        bonus = f" + bonus {self.bonus}" if self.bonus else ""
        return f"order 订单 base {self.base} × {rate_text(self.multiplier)}{bonus}"


def order_earning(
    amount_fen: int,
    *,
    per_yuan: Fraction,
    rule_multiplier: Fraction = Fraction(1),
    tier_multiplier: Fraction = Fraction(1),
    birthday_multiplier: Fraction = Fraction(1),
    bonus: int = 0,
) -> Earning:
    """The points an order of `amount_fen` earns (see the module docstring for the rule)."""
    base = math.floor(amount_fen * per_yuan * rule_multiplier / 100)
    multiplier = tier_multiplier * birthday_multiplier
    return Earning(base=base, multiplier=multiplier, bonus=bonus, points=math.floor(base * multiplier) + bonus)
