"""Program files: validation errors name the file, the line and the field to fix; applying a file
versions the program (created / unchanged / updated) and refuses edited content under the same
version. Line numbers below are of the PROGRAM text in tests/fixtures/loyalty_brand.py (line 1 is
its comment)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from fixtures.loyalty_brand import PROGRAM
from siyu.bootstrap import App
from siyu.loyalty.models import LoyaltyProgramVersion, ProgramBrand
from siyu.loyalty.program import ProgramError, parse_program
from siyu.loyalty.programs import do_apply_program, load_program

AT = dt.datetime(2026, 4, 15, tzinfo=dt.UTC)


def errors(text: str) -> str:
    with pytest.raises(ProgramError) as caught:
        parse_program(text, "lg.yaml")
    return str(caught.value)


def test_the_fixture_program_parses() -> None:
    program = parse_program(PROGRAM, "lg.yaml")
    assert [t.code for t in program.tiers.levels] == ["regular", "silver", "gold"]
    assert program.tier_named("金卡") is program.tier("gold")
    assert program.tier_for(2_999).code == "silver" and program.tier_for(3_000).code == "gold"
    spring = program.points.earn_rules[1]
    assert (str(spring.start), str(spring.end), spring.bonus) == ("2026-03-08", "2026-03-08", 88)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # silver's threshold above gold's: reported at `levels:` first item (line 19)
        (
            "threshold: 1000",
            "threshold: 5000",
            "lg.yaml:19: tiers.levels: Value error, levels must be listed from the lowest threshold up",
        ),
        # gold (line 21–22) names a coupon the file does not define: line 22, where `coupons:` is
        (
            "coupons: [gold_gift]",
            "coupons: [gold_gift, nope]",
            "lg.yaml:22: tiers.levels.2.coupons: Value error, tier gold names unknown coupon nope",
        ),
        # percent_off without percent: the coupon on line 33
        (
            "kind: percent_off, percent: 10,",
            "kind: percent_off,",
            "lg.yaml:33: coupons.0: Value error, percent_off needs percent",
        ),
        ("timezone: Asia/Shanghai", "timezone: Asia/Beijing", "lg.yaml:9: timezone: Value error, unknown timezone"),
        # a negative multiplier in the first earn rule (line 30)
        (
            "multiplier: 2}",
            "multiplier: -2}",
            "lg.yaml:30: points.earn_rules.0.multiplier: Input should be greater than or equal to 0",
        ),
        # a misspelt key (line 27) is refused, not ignored
        ("  birthday_multiplier: 2", "  birthday_multiplier: 2\n  birthdy: 3", "lg.yaml:27: points.birthdy: Extra"),
        ("level: group", "level: brand", "a brand program has exactly one brand"),
        ("per_yuan: 1\n  birth", "per_yuan: [1\n  birth", "lg.yaml:26: not valid YAML"),
    ],
)
def test_errors_name_file_line_and_field(old: str, new: str, expected: str) -> None:
    assert old in PROGRAM
    message = errors(PROGRAM.replace(old, new, 1))
    assert expected in message, message


def test_not_a_mapping() -> None:
    assert (
        errors("- just\n- a list\n")
        == "lg.yaml: a program file is a YAML mapping (program:, level:, brands:, tiers: …)"
    )


def test_apply_versions(app: App, tmp_path: Path) -> None:
    path = tmp_path / "lg.yaml"
    path.write_text(PROGRAM, encoding="utf-8")
    assert do_apply_program(app.store, path, actor="t", at=AT).status == "created"
    assert do_apply_program(app.store, path, actor="t", at=AT).status == "unchanged"
    # a comment is not content: the validated definition is the same
    path.write_text(PROGRAM.replace("# lg_club", "# LG club"), encoding="utf-8")
    assert do_apply_program(app.store, path, actor="t", at=AT).status == "unchanged"
    # an edit under the same version is refused and changes nothing
    path.write_text(PROGRAM.replace("bonus: 88", "bonus: 99"), encoding="utf-8")
    with pytest.raises(ProgramError, match=r"version 1 of program 'lg_club' is already applied .* raise `version:`"):
        do_apply_program(app.store, path, actor="t", at=AT)
    with app.store.unit_of_work() as s:
        assert load_program(s, "lg_club").points.earn_rules[1].bonus == 88
    # raised version: applied; the brands and the version history follow
    path.write_text(
        PROGRAM.replace("version: 1", "version: 2").replace("bonus: 88", "bonus: 99").replace("[la, lb]", "[la]"),
        encoding="utf-8",
    )
    applied = do_apply_program(app.store, path, actor="t", at=AT)
    assert (applied.program, applied.version, applied.status) == ("lg_club", 2, "updated")
    # going back to version 1 content is refused as well (not higher than the current 2)
    path.write_text(PROGRAM, encoding="utf-8")
    with pytest.raises(ProgramError, match="current 2"):
        do_apply_program(app.store, path, actor="t", at=AT)
    with app.store.unit_of_work() as s:
        assert load_program(s, "lg_club").points.earn_rules[1].bonus == 99
        assert list(s.scalars(select(ProgramBrand.brand).where(ProgramBrand.program == "lg_club"))) == ["la"]
        versions = s.scalars(select(LoyaltyProgramVersion.version).order_by(LoyaltyProgramVersion.version))
        assert list(versions) == [1, 2]
