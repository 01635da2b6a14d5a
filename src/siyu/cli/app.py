"""The `siyu` command. Each command group lives in its own module."""

from __future__ import annotations

from typing import Annotated

import typer

from siyu.cli import (
    audience,
    audit,
    clv,
    consent,
    customer,
    demo,
    engine,
    events,
    guides,
    identity,
    importing,
    inbox,
    journey,
    keys,
    lake,
    loyalty,
    messages,
    metrics,
    report,
    retention,
    serve,
    subject,
    tags,
    users,
    wecom,
)
from siyu.cli.common import state

app = typer.Typer(
    name="siyu",
    help=(
        "siyu 私域 — private-domain omnichannel customer operations: import channel exports, "
        "resolve One-ID (全域唯一身份), and measure FAST+.\n\n"
        "Workspace: $SIYU_HOME (default ./.siyu). Store: $SIYU_DATABASE_URL (default SQLite in the workspace)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors")] = False,
) -> None:
    state["debug"] = debug


app.command("import")(importing.import_command)
app.add_typer(importing.quarantine_app, name="quarantine")
app.command("resolve")(identity.resolve_command)
app.add_typer(customer.customer_app, name="customer")
app.command("demo")(demo.demo_command)
app.add_typer(metrics.metrics_app, name="metrics")
app.command("report")(report.report_command)
app.add_typer(metrics.brand_app, name="brand")
app.add_typer(clv.clv_app, name="clv")
app.command("lifecycle")(clv.lifecycle_command)
app.command("serve")(serve.serve_command)
app.command("worker")(serve.worker_command)
app.add_typer(inbox.inbox_app, name="inbox")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(tags.tags_app, name="tags")
app.add_typer(audience.audience_app, name="audience")
app.add_typer(loyalty.loyalty_app, name="loyalty")
app.add_typer(audit.audit_app, name="audit")
app.add_typer(events.events_app, name="events")
app.add_typer(journey.journey_app, name="journey")
app.add_typer(messages.messages_app, name="messages")
app.add_typer(consent.consent_app, name="consent")
app.add_typer(guides.guides_app, name="guides")
app.add_typer(wecom.wecom_app, name="wecom")
app.add_typer(wecom.qrcodes_app, name="qrcodes")
# customer inheritance (客户继承) calls WeCom, so it lives with the WeCom commands, under `siyu guides`
guides.guides_app.command("transfer")(wecom.transfer_command)
guides.guides_app.command("transfer-status")(wecom.transfer_status_command)
app.add_typer(users.users_app, name="users")
app.add_typer(engine.engine_app, name="engine")
app.add_typer(subject.subject_app, name="subject")
app.add_typer(retention.retention_app, name="retention")
app.add_typer(lake.lake_app, name="lake")


def main() -> None:
    app()
