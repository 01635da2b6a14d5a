"""Every label the console shows has zh-CN and English text, and every message id a template or a
page uses exists in the catalogue (a missing one would raise at render time)."""

from __future__ import annotations

import re
from pathlib import Path

from siyu.console.i18n import MESSAGES
from siyu.console.permissions import NAV, ROLES

CONSOLE = Path(__file__).resolve().parents[2] / "src" / "siyu" / "console"
USED = re.compile(r"""(?<![\w.])t\(\s*['"]([a-z_]+\.[a-z_]+)['"]""")


def test_every_message_has_both_languages() -> None:
    for key, (zh, en) in MESSAGES.items():
        assert zh.strip() and en.strip(), key
        assert re.search(r"[\u4e00-\u9fff]", zh) or key in ("app.lang_switch",), f"{key}: no Chinese in {zh!r}"


def test_every_used_message_id_exists() -> None:
    sources = [*CONSOLE.glob("templates/*.html"), *CONSOLE.glob("*.py"), *CONSOLE.glob("pages/*.py")]
    used = {m for f in sources for m in USED.findall(f.read_text(encoding="utf-8"))}
    used |= {label for _, _, label in NAV} | {f"role.{r}" for r in ROLES}
    used |= {f"rule.{k}" for k in ("attribute", "tag", "membership", "layer", "spent", "did", "reachable",
                                   "lifecycle", "rfm_group")}  # fmt: skip
    assert len(used) > 50
    assert sorted(used - MESSAGES.keys()) == []
