"""营销旅程 Journeys: the list (status, version, category, enrolment counts), each journey drawn as
a graph of its steps with the live count at every step, pause / resume (audited by the service),
and the report with the goal's holdout uplift — through siyu.journeys' services."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import HTMLResponse

from siyu.console.web import ConsoleDeniedError, Ctx, page
from siyu.core.actor import Actor
from siyu.core.errors import NotFoundError, SiyuError
from siyu.journeys.apply import do_set_status, find_journey, list_journeys, load_version, show_journey
from siyu.journeys.graph import END, step_graph
from siyu.journeys.listing import enrolment_counts
from siyu.journeys.report import journey_report

router = APIRouter(include_in_schema=False)
View = Annotated[Ctx, Depends(page("journeys.view"))]
Edit = Annotated[Ctx, Depends(page("journeys.edit"))]
Code = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
ZERO = {"entered": 0, "waiting": 0, "completed": 0}


@router.get("/console/journeys")
def journeys(ctx: View) -> HTMLResponse:
    if ctx.brand is None:
        raise ConsoleDeniedError(404, "error.no_brand")
    with ctx.app.store.unit_of_work() as session:
        rows = [j for j in list_journeys(session) if j["brand"] == ctx.brand]
        counts = enrolment_counts(session, ctx.brand)
    empty = dict.fromkeys(("enrolled", "active", "completed", "exited"), 0)
    return ctx.render("journeys.html", journeys=[{**j, **counts.get(str(j["code"]), empty)} for j in rows])


def _journey(ctx: Ctx, code: str) -> dict[str, Any]:
    """The journey's report, versions and step graph; 404 for another brand's (or no) journey."""
    with ctx.app.store.unit_of_work() as session:
        try:
            row = find_journey(session, code)
        except NotFoundError:
            raise ConsoleDeniedError(404, "error.not_found") from None
        if row.brand != ctx.brand:  # ctx.brand is one of the user's own (siyu.console.web.page)
            raise ConsoleDeniedError(404, "error.not_found")
        report = journey_report(session, code)
        shown = show_journey(session, code)
        spec = load_version(session, code, row.version)
    graph = step_graph(spec)
    for node in graph["nodes"]:
        node.update(report["steps"].get(node["id"], ZERO) if node["id"] != END else {})
        node["label"] = ctx.t("journeys.end") if node["id"] == END else node["id"]
        node["kind_label"] = ctx.t(f"journeys.kind_{node['kind']}")
    if END in {n["id"] for n in graph["nodes"]}:
        end = next(n for n in graph["nodes"] if n["id"] == END)
        end.update(entered=report["completed"], waiting=0, completed=report["completed"])
    for node in graph["nodes"]:
        node["counts"] = ctx.t("journeys.node_counts", entered=f"{node['entered']:,}", waiting=f"{node['waiting']:,}")
    return {"report": report, "shown": shown, "spec": spec, "graph": graph, "graph_json": json.dumps(graph)}


@router.get("/console/journeys/{code}")
def journey(ctx: View, code: Code) -> HTMLResponse:
    return ctx.render("journey.html", **_journey(ctx, code))


@router.get("/console/journeys/{code}/steps")
def journey_steps(ctx: View, code: Code) -> HTMLResponse:
    """The live counts per step (the page polls this fragment and redraws the graph)."""
    return ctx.render("journey_steps.html", **_journey(ctx, code))


def _set_status(ctx: Ctx, code: str, status: str) -> HTMLResponse:
    _journey(ctx, code)  # the brand check before anything changes
    try:
        with ctx.app.store.begin(Actor.user(ctx.user.email)) as uow:
            result = do_set_status(uow, code, status)
    except SiyuError as error:
        ctx.flash.append(("error", ctx.t("error.generic", message=error.message)))
        return ctx.render("journey.html", status=409, **_journey(ctx, code))
    ctx.flash.append(
        (
            "ok",
            ctx.t(
                "journeys.status_set",
                previous=ctx.t(f"journeys.status_{result['previous']}"),
                status=ctx.t(f"journeys.status_{status}"),
            ),
        )
    )
    return ctx.render("journey.html", **_journey(ctx, code))


@router.post("/console/journeys/{code}/pause")
def pause(ctx: Edit, code: Code) -> HTMLResponse:
    return _set_status(ctx, code, "paused")


@router.post("/console/journeys/{code}/resume")
def resume(ctx: Edit, code: Code) -> HTMLResponse:
    return _set_status(ctx, code, "active")
