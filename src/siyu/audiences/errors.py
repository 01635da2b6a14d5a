"""Errors of tags and audiences: stable codes, bilingual messages, and for rules the path of the
offending node (e.g. `all[2].any[0].op`) so a person can find it in a long rule."""

from __future__ import annotations

from siyu.core.errors import SiyuError


class RuleError(SiyuError):
    """An invalid audience or tag rule. `path` points at the node, `$` being the whole rule."""

    code = "invalid_rule"
    exit_code = 2

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or '$'}: {message}")
        self.path = path or "$"
        self.detail = message


class TagError(SiyuError):
    code = "invalid_tag"
    exit_code = 2


class AudienceError(SiyuError):
    code = "invalid_audience"
    exit_code = 2


class MissingDataError(SiyuError):
    """A rule needs derived data that was never computed (layers, RFM, lifecycle, CLV, a rule tag)."""

    code = "missing_data"
    exit_code = 2


class PiiNotAllowedError(SiyuError):
    code = "pii_not_allowed"
    exit_code = 4


def rule_error(path: str, en: str, zh: str) -> RuleError:
    """A RuleError at `path` whose message says what to fix in English, then in Chinese."""
    return RuleError(path, f"{en} ({zh})")


def short_value(value: object) -> str:
    """A value for a message: never a whole page of it."""
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 200 else "a huge number"
    return text if len(text) <= 60 else text[:57] + "..."
