"""Loyalty errors: a stable code (the API's problem `code`) and what to do about it."""

from __future__ import annotations

from siyu.core.errors import SiyuError


class LoyaltyError(SiyuError):
    code = "loyalty_error"
    exit_code = 2


class UnknownProgramError(LoyaltyError):
    code = "unknown_program"
    exit_code = 3


class NotMemberError(LoyaltyError):
    code = "not_a_member"
    exit_code = 3


class UnknownCustomerError(LoyaltyError):
    """An id named for enrolment that is not a One-ID customer of the brand."""

    code = "unknown_customer"
    exit_code = 3


class UnknownRewardError(LoyaltyError):
    code = "unknown_reward"
    exit_code = 3


class InsufficientPointsError(LoyaltyError):
    code = "insufficient_points"


class IdempotencyConflictError(LoyaltyError):
    """The idempotency key was used before for a different request."""

    code = "idempotency_conflict"


class ReversalError(LoyaltyError):
    code = "reversal_not_allowed"


class CouponError(LoyaltyError):
    code = "coupon_not_usable"


class StockError(LoyaltyError):
    code = "out_of_stock"


class LimitError(LoyaltyError):
    code = "limit_reached"
