"""Every label the console shows has zh-CN and English text, and every message id a template or a
page uses exists in the catalogue (a missing one would raise at render time)."""

from __future__ import annotations

import re
from pathlib import Path

from siyu.console.i18n import MESSAGES
from siyu.console.pages.guides import KINDS
from siyu.console.permissions import NAV, ROLES
from siyu.guides.bindings import SOURCES
from siyu.guides.tasks import STATUSES
from siyu.journeys.definition import STEP_KINDS

CONSOLE = Path(__file__).resolve().parents[2] / "src" / "siyu" / "console"
USED = re.compile(r"""(?<![\w.])t\(\s*['"]([a-z_]+\.[a-z_]+)['"]""")


def test_every_message_has_both_languages() -> None:
    for key, (zh, en) in MESSAGES.items():
        assert zh.strip() and en.strip(), key
        assert re.search(r"[\u4e00-\u9fff]", zh) or key in ("app.lang_switch",), f"{key}: no Chinese in {zh!r}"


def dynamic_message_ids() -> set[str]:
    """Ids the templates build from a value (`t('journeys.status_' ~ j.status)`): every value the
    services can answer needs its label."""
    ids = {f"journeys.status_{s}" for s in ("active", "paused", "archived")}
    ids |= {f"journeys.kind_{k}" for k in (*STEP_KINDS, "end")}
    ids |= {f"journeys.category_{c}" for c in ("marketing", "transactional")}
    ids |= {f"journeys.trigger_{k}" for k in ("event", "audience", "date", "broadcast")}
    ids |= {f"tasks.status_{s}" for s in STATUSES} | {f"tasks.kind_{k}" for k in KINDS}
    return ids | {f"workbench.source_{s}" for s in SOURCES}


def test_the_journey_model_has_no_value_without_a_label() -> None:
    from typing import get_args

    from siyu.journeys.definition import Journey, Trigger

    categories = get_args(Journey.model_fields["category"].annotation)
    triggers = [name for name in Trigger.model_fields]
    assert {f"journeys.category_{c}" for c in categories} | {f"journeys.trigger_{k}" for k in triggers} <= set(MESSAGES)


def test_every_used_message_id_exists() -> None:
    sources = [*CONSOLE.glob("templates/*.html"), *CONSOLE.glob("*.py"), *CONSOLE.glob("pages/*.py")]
    used = {m for f in sources for m in USED.findall(f.read_text(encoding="utf-8"))}
    used |= {label for _, _, label in NAV} | {f"role.{r}" for r in ROLES}
    used |= {f"rule.{k}" for k in ("attribute", "tag", "membership", "layer", "spent", "did", "reachable",
                                   "lifecycle", "rfm_group")}  # fmt: skip
    # `t('journeys.status_' ~ value)`: a prefix; the values it takes are listed in dynamic_message_ids
    prefixes = {m for m in used if m.endswith("_")}
    dynamic = dynamic_message_ids()
    assert [p for p in prefixes if not any(d.startswith(p) for d in dynamic)] == []
    used = (used - prefixes) | dynamic
    assert len(used) > 50
    assert sorted(used - MESSAGES.keys()) == []
