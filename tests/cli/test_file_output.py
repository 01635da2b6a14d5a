"""Every command that writes a file a person names (`audience export --out`, `resolve --export`,
`report --out`, `demo --out/--report`) refuses, with one line and before any work, a folder, an empty
path, an unwritable place, an unknown extension and an existing file (unless --force); and it writes
through a temporary file beside the target, so no half-written file or leftover is ever seen."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fixtures.audience_brand import write_brand
from siyu.cli.app import app

runner = CliRunner()
AS_OF = ["--as-of", "2024-06-30"]
PASSWD = "root:x:0:0:root:/root:/bin/bash\n"  # a stand-in for a file that must survive


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("out")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIYU_HOME", str(root / "home"))
        mp.delenv("SIYU_DATABASE_URL", raising=False)
        assert runner.invoke(app, ["import", str(write_brand(root / "au"))]).exit_code == 0
        assert runner.invoke(app, ["resolve"]).exit_code == 0
    return root


@pytest.fixture
def run(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("SIYU_HOME", str(workspace / "home"))
    monkeypatch.delenv("SIYU_DATABASE_URL", raising=False)

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.stderr

    return invoke


def export(run: object, out: str, *more: str) -> tuple[int, str]:
    return run("audience", "export", "--brand", "au", "--rule", "has phone", "--out", out, *AS_OF, *more)  # type: ignore[operator]


def one_line(stderr: str, *words: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith("error (bad_output): "), lines[0]
    for word in words:
        assert word in lines[0], lines[0]


def only(folder: Path) -> list[str]:
    """The folder's entries: no temporary file may be left behind."""
    return sorted(p.name for p in folder.iterdir())


def test_audience_export_refuses_bad_targets_with_one_line(run: object, tmp_path: Path) -> None:
    code, err = export(run, str(tmp_path))
    assert code == 2
    one_line(err, "is a folder")
    one_line(export(run, "")[1], "is a folder")
    one_line(export(run, "/proc/siyu.csv")[1], "cannot write /proc/siyu.csv")
    one_line(export(run, str(tmp_path / "x.xlsx"))[1], "'.xlsx'", "supported: .csv, .parquet")
    one_line(export(run, str(tmp_path / "x"))[1], "no extension", "supported: .csv, .parquet")
    one_line(export(run, str(tmp_path / "x.csv"), "--format", "parquet")[1], "does not match")
    assert only(tmp_path) == []


def test_audience_export_replaces_a_file_only_with_force(run: object, tmp_path: Path) -> None:
    passwd = tmp_path / "passwd.csv"
    passwd.write_text(PASSWD)
    code, err = export(run, str(passwd))
    assert code == 2
    one_line(err, "exists", "--force")
    assert passwd.read_text() == PASSWD
    code, err = export(run, str(passwd), "--force")
    assert code == 0, err
    assert passwd.read_text().startswith('"customer_id","name","phone"') and "139****0001" in passwd.read_text()
    assert only(tmp_path) == ["passwd.csv"]
    code, err = export(run, str(tmp_path / "sub" / "phones.parquet"))  # new folders are made
    assert code == 0, err
    assert (tmp_path / "sub" / "phones.parquet").read_bytes()[:4] == b"PAR1"
    assert only(tmp_path / "sub") == ["phones.parquet"]


def test_a_failed_export_leaves_the_old_file_and_no_leftover(run: object, tmp_path: Path) -> None:
    target = tmp_path / "a.csv"
    target.write_text(PASSWD)
    # An unknown saved audience fails inside the write (after the target was checked and the temporary made).
    code, err = run("audience", "export", "nope", "--brand", "au", "--out", str(target), "--force")  # type: ignore[operator]
    assert code != 0 and "nope" in err, err
    assert target.read_text() == PASSWD
    assert only(tmp_path) == ["a.csv"]


def test_resolve_export_report_and_demo_refuse_the_same(run: object, tmp_path: Path) -> None:
    existing = tmp_path / "map.csv"
    existing.write_text(PASSWD)
    code, err = run("resolve", "--export", str(existing))  # type: ignore[operator]
    assert code == 2
    one_line(err, "exists", "--force")
    assert existing.read_text() == PASSWD
    one_line(run("resolve", "--export", str(tmp_path / "map.xlsx"))[1], "supported: .csv")  # type: ignore[operator]
    code, err = run("resolve", "--export", str(existing), "--force", "--no-loyalty")  # type: ignore[operator]
    assert code == 0, err
    assert existing.read_text().splitlines()[0].replace('"', "").startswith("source,source_customer_id,customer_id")

    report = ["report", "--brand", "au", "--period", "2024-06", "--out"]
    one_line(run(*report, str(tmp_path))[1], "is a folder")  # type: ignore[operator]
    one_line(run(*report, str(existing))[1], "supported: .html, .htm")  # type: ignore[operator]
    page = tmp_path / "r.html"
    page.write_text("<p>keep</p>")
    one_line(run(*report, str(page))[1], "exists", "--force")  # type: ignore[operator]
    assert page.read_text() == "<p>keep</p>"

    one_line(run("demo", "--customers", "100", "--out", str(tmp_path))[1], "not empty", "--force")  # type: ignore[operator]
    one_line(run("demo", "--customers", "100", "--report", str(page))[1], "exists", "--force")  # type: ignore[operator]
    assert only(tmp_path) == ["map.csv", "r.html"]
