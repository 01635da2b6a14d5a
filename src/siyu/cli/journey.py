"""`siyu journey …`: apply journey files, list and inspect them, pause/resume/archive, enrol a
customer by hand, preview a step's message, run what is due, and report (营销旅程)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from siyu.cli.common import cli_actor, console, get_app, print_json, user_errors

journey_app = typer.Typer(help="Journeys 营销旅程: apply YAML, run due steps, report. See docs/journeys.md.")

CodeArg = Annotated[str, typer.Argument(help="Journey code")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]
NowOpt = Annotated[str | None, typer.Option("--now", help="Act as of this ISO time (tests, demos: move time forward)")]


def _time(text: str | None, what: str = "--now") -> dt.datetime:
    from siyu.journeys.errors import JourneyError

    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as e:
        raise JourneyError(f"{what} {text!r}: give an ISO time, e.g. 2026-06-18T10:00:00+08:00") from e
    if value.tzinfo is None:
        raise JourneyError(f"{what} {text!r}: give the offset too, e.g. +08:00 (需带时区)")
    return value.astimezone(dt.UTC)


def _day(text: str) -> dt.datetime:
    """A day (its start in China Standard Time) or a full ISO time."""
    return _time(text if "T" in text else f"{text}T00:00:00+08:00", "--backfill-from")


@journey_app.command("apply")
def apply_command(
    file: Annotated[Path, typer.Argument(help="Journey YAML file")],
    backfill_from: Annotated[
        str | None, typer.Option("--backfill-from", help="Also enrol for occurrences since DATE (else only new data)")
    ] = None,
    now: NowOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate and apply a journey file. The same file again changes nothing; a changed file
    needs a higher `version:`; customers already in finish on their version.

    Example: siyu journey apply journeys/onboarding.yaml"""
    from siyu.journeys import apply as journeys

    with user_errors():
        app = get_app()
        since = _day(backfill_from) if backfill_from else None
        applied = journeys.do_apply_journey(app, file, actor=cli_actor(), at=_time(now), backfill_from=since)
        result = {"journey": applied.journey, "version": applied.version, "status": applied.status}
        if as_json:
            print_json(result)
        else:
            console.print(f"journey {applied.journey} v{applied.version}: {applied.status}", highlight=False)


@journey_app.command("list")
def list_command(as_json: JsonOpt = False) -> None:
    """The applied journeys."""
    from siyu.journeys import apply as journeys

    with user_errors():
        app = get_app()
        with app.store.unit_of_work() as session:
            rows = journeys.list_journeys(session)
        if as_json:
            print_json(rows)
            return
        table = Table("code", "brand", "version", "status", "category", "trigger", "name")
        for r in rows:
            table.add_row(
                *(str(r[k]) for k in ("code", "brand", "version", "status", "category", "trigger", "name_zh"))
            )
        console.print(table)


@journey_app.command("show")
def show_command(code: CodeArg) -> None:
    """A journey's current definition and its versions (JSON)."""
    from siyu.journeys import apply as journeys

    with user_errors():
        app = get_app()
        with app.store.unit_of_work() as session:
            print_json(journeys.show_journey(session, code))


def _status(code: str, status: str) -> None:
    from siyu.journeys import apply as journeys

    with user_errors():
        app = get_app()
        with app.store.begin(cli_actor()) as uow:
            result = journeys.do_set_status(uow, code, status)
        console.print(f"journey {code}: {result['previous']} → {status}", highlight=False)


@journey_app.command("pause")
def pause_command(code: CodeArg) -> None:
    """Stop enrolling and running steps (customers stay where they are)."""
    _status(code, "paused")


@journey_app.command("resume")
def resume_command(code: CodeArg) -> None:
    """Run a paused journey again (steps that fell due meanwhile run now)."""
    _status(code, "active")


@journey_app.command("archive")
def archive_command(code: CodeArg) -> None:
    """Stop a journey for good (its report stays)."""
    _status(code, "archived")


@journey_app.command("enrol")
def enrol_command(
    code: CodeArg,
    customer: Annotated[str, typer.Option("--customer", help="Customer id, phone or member no")],
    now: NowOpt = None,
) -> None:
    """Enrol one customer by hand (re-entry rules apply; twice is once)."""
    from siyu.journeys.manual import enrol_customer

    with user_errors():
        print_json(enrol_customer(get_app(), code, customer, _time(now)))


@journey_app.command("preview")
def preview_command(
    code: CodeArg,
    customer: Annotated[str, typer.Option("--customer", help="Customer id, phone or member no")],
    step: Annotated[str, typer.Option("--step", help="A send step's id")],
    context_json: Annotated[
        str | None, typer.Option("--context", help="Journey context as JSON over the enrolment's own")
    ] = None,
) -> None:
    """Render a send step's template for one customer (nothing is sent). The template sees the
    context of the customer's latest enrolment in the journey (trigger properties, the coupon
    issued…), with --context on top — what a real send of that step would see."""
    from siyu.journeys import apply as journeys
    from siyu.journeys.errors import JourneyError
    from siyu.journeys.listing import enrolment_context
    from siyu.journeys.manual import resolve_customer
    from siyu.messaging.templates import render_for_customer

    with user_errors():
        app = get_app()
        with app.store.unit_of_work() as session:
            row = journeys.find_journey(session, code)
            spec = journeys.load_version(session, code, row.version)
        ids = {s.id for s in spec.steps}
        if step not in ids:
            raise JourneyError(f"journey {code!r} has no step {step!r}; steps: {', '.join(sorted(ids))}")
        send = spec.step(step).send
        if send is None:
            raise JourneyError(f"step {step!r} is a {spec.step(step).kind} step; preview a send step")
        customer_id = resolve_customer(app, spec.brand, customer)
        content: dict[str, Any] = spec.templates[send.template][send.channel]
        context = enrolment_context(app, code, customer_id)
        if context_json:
            try:
                extra = json.loads(context_json)
            except ValueError as e:
                raise JourneyError(f"--context is not JSON: {e}") from e
            if not isinstance(extra, dict):
                raise JourneyError('--context must be a JSON object, e.g. {"order_id": "O1"}')
            context.update(extra)
        print_json(render_for_customer(app, spec.brand, customer_id, send.channel, content, context))


@journey_app.command("run")
def run_command(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit")] = False,
    now: NowOpt = None,
    batch: Annotated[int, typer.Option("--batch", min=1, max=5000, help="Enrolments per transaction")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """Run what is due: enrol from triggers, notice awaited events, move due steps on, track goals.
    Without --once, repeats every few seconds until Ctrl-C.

    Example: siyu journey run --once --now 2026-06-18T10:00:00+08:00"""
    from siyu.journeys.runner import run_due, run_loop

    with user_errors():
        app = get_app()
        if once or now is not None:
            stats = run_due(app, _time(now), batch=batch)
            if as_json:
                print_json(stats.as_json())
            else:
                console.print(json.dumps(stats.as_json()), highlight=False)
            return
        run_loop(app)


@journey_app.command("report")
def report_command(code: CodeArg, as_json: JsonOpt = False) -> None:
    """Enrolments, steps, messages by channel, goal and holdout uplift (95 % CI, Newcombe)."""
    from siyu.journeys.report import journey_report

    with user_errors():
        app = get_app()
        with app.store.unit_of_work() as session:
            report = journey_report(session, code)
        if as_json:
            print_json(report)
            return
        console.print(
            f"{code} v{report['version']} ({report['status']}): enrolled {report['enrolled']}, active "
            f"{report['active']}, completed {report['completed']}, exited {report['exited']}",
            highlight=False,
        )
        table = Table("step", "entered", "waiting", "completed")
        for step_id, c in report["steps"].items():
            table.add_row(step_id, str(c["entered"]), str(c["waiting"]), str(c["completed"]))
        console.print(table)
        goal = report["goal"]
        console.print(
            f"goal: converted {goal['converted']} (rate {goal['rate']}), holdout {goal['holdout_converted']}/"
            f"{goal['holdout_size']} (rate {goal['holdout_rate']}), uplift {goal['uplift']} 95% CI {goal['ci95']}",
            highlight=False,
        )
