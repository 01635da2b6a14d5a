"""The shipped journeys (src/siyu/journeys/examples) fit the demo: each applies to the demo brand as
written, and every coupon or points step names the demo program and, for coupons, a template the
demo program has (birthday_gift and winback were missing, so those steps could only be skipped)."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.demo.loyalty import PROGRAM, program_file
from siyu.ingest.registry import ensure_brands
from siyu.journeys.apply import do_apply_journey, read_journey_file
from siyu.loyalty.programs import do_apply_program, load_program

AT = dt.datetime(2026, 11, 1, 2, tzinfo=dt.UTC)


def test_every_shipped_journey_applies_to_the_demo_brand_and_program(sqlite_app: App) -> None:
    with sqlite_app.store.write_unit() as session:  # the brands, as the demo's import registers them
        ensure_brands(session, ["demo", "demo_b"], "Asia/Shanghai")
    do_apply_program(sqlite_app.store, program_file(), actor="test", at=AT)
    with sqlite_app.store.unit_of_work() as session:
        templates = {c.code for c in load_program(session, PROGRAM).coupons}
    files = sorted(Path(str(p)) for p in (resources.files("siyu.journeys") / "examples").iterdir()
                   if p.name.endswith(".yaml"))  # fmt: skip
    assert [f.stem for f in files] == [
        "birthday", "koc_nurture", "onboarding", "review_request", "tier_upgrade", "win_back"
    ]  # fmt: skip
    issued = set()
    for path in files:
        journey, _ = read_journey_file(path)
        assert journey.brand == "demo", path
        for step in journey.steps:
            if step.coupon is not None:
                assert step.coupon.program == PROGRAM, (path.name, step.id)
                assert step.coupon.template in templates, (path.name, step.id, step.coupon.template)
                issued.add(step.coupon.template)
            if step.points is not None:
                assert step.points.program == PROGRAM, (path.name, step.id)
        applied = do_apply_journey(sqlite_app, path, actor=Actor.system("test"), at=AT)
        assert (applied.journey, applied.status) == (journey.code, "created")
    assert issued == {"welcome20", "birthday_gift", "winback"}
