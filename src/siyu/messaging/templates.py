"""Message templates (模板): sandboxed Jinja2 over the customer's profile, loyalty, the coupon just
issued and the journey context.

Every string in a channel's `content` is a template; `StrictUndefined` makes a misspelt variable an
error (`template_error`) rather than a message saying "Dear ,". The sandbox refuses attribute access
to Python internals, so a template written by an operator cannot reach the process.

Variables: `customer` (customer_id, name, gender, birthday, city, province, store_code, phone and
email masked), `loyalty` (program, tier, tier_name_zh/en, balance, expiring_points,
expiring_at — the nearest expiry within 30 days), `coupon` (context["coupon"]: code, template,
valid_to), `context` (the whole journey context) and each context key at the top level.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from siyu.bootstrap import App
from siyu.core.errors import SiyuError
from siyu.messaging.address import CustomerFacts, customer_facts
from siyu.messaging.sms_length import sms_length

SMS_OPT_OUT = "拒收请回复R"
_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class TemplateRenderError(SiyuError):
    code = "template_error"
    exit_code = 2


@lru_cache(maxsize=1024)
def _compiled(source: str) -> Template:
    """A journey's few template fields, compiled once per process, not once per message."""
    return _ENV.from_string(source)


def _render(value: Any, variables: dict[str, Any], where: str) -> Any:
    if isinstance(value, str):
        try:
            return _compiled(value).render(variables)
        except TemplateError as error:
            raise TemplateRenderError(f"template field {where!r}: {error} (模板渲染失败)") from error
    if isinstance(value, dict):
        return {k: _render(v, variables, f"{where}.{k}" if where else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, variables, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def variables_for(facts: CustomerFacts, context: dict[str, Any]) -> dict[str, Any]:
    return {
        **context,
        "customer": facts.profile,
        "loyalty": facts.loyalty,
        "coupon": context.get("coupon"),
        "context": context,
    }


def render_content(
    facts: CustomerFacts, channel: str, content: dict[str, Any], context: dict[str, Any], category: str = "marketing"
) -> dict[str, Any]:
    """The rendered content of one message (pure: facts are already read)."""
    rendered: dict[str, Any] = _render(content, variables_for(facts, context), "")
    if channel == "sms":
        text = str(rendered.get("text", ""))
        if category == "marketing" and SMS_OPT_OUT not in text:
            text = f"{text}{SMS_OPT_OUT}" if text else SMS_OPT_OUT
            rendered["opt_out"] = SMS_OPT_OUT
        rendered["text"] = text
        rendered.update(sms_length(text))
    return rendered


def render_for_customer(
    app: App, brand: str, customer_id: str, channel: str, content: dict[str, Any], context: dict[str, Any]
) -> dict[str, Any]:
    """Render `content` for one customer (CONTRACTS.md). SMS adds `length`, `segments` and
    `encoding`; marketing is assumed (opt-out text included) unless context["category"] says
    "transactional"."""
    facts = customer_facts(app, brand, customer_id)
    category = str(context.get("category", "marketing"))
    return render_content(facts, channel, content, context, category)
