"""数据导入 Imports: upload a canonical file (named for its entity), see the result, review and
download the quarantined rows with their reasons, correct and upload again — siyu.ingest.importer.
Uploads are kept per brand under $SIYU_HOME/uploads/<brand>/<file>, so re-importing a corrected
file replaces its quarantine (the importer keeps the latest import of each path)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, UploadFile
from fastapi.responses import HTMLResponse, Response

from siyu.api.deps import ComputeDep
from siyu.console.web import ConsoleDeniedError, Ctx, page
from siyu.core.errors import SiyuError
from siyu.ingest.importer import import_path, quarantine

router = APIRouter(include_in_schema=False)
View = Annotated[Ctx, Depends(page("imports.view"))]
Edit = Annotated[Ctx, Depends(page("imports.edit"))]
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
UPLOADS = "uploads"


def _folder(ctx: Ctx) -> Path:
    if ctx.brand is None:
        raise ConsoleDeniedError(404, "error.no_brand")
    return ctx.app.settings.home / UPLOADS / ctx.brand


def _rows(ctx: Ctx) -> list[dict[str, Any]]:
    """Quarantined rows of this brand's uploads (latest import of each file)."""
    folder = str(_folder(ctx))
    rows = quarantine(ctx.app, limit=5000)
    return [r for r in rows if str(r["file"]).startswith(folder) or Path(str(r["file"])).parent == Path(folder)]


@router.get("/console/imports")
def imports(ctx: View) -> HTMLResponse:
    return ctx.render("imports.html", rows=_rows(ctx), result=None)


@router.post("/console/imports")
async def upload(ctx: Edit, file: UploadFile) -> HTMLResponse:
    folder = _folder(ctx)
    name = Path(file.filename or "").name
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if not name or len(data) > MAX_UPLOAD_BYTES:
        ctx.flash.append(("error", ctx.t("error.generic", message="a named file of at most 50 MiB")))
        return ctx.render("imports.html", rows=_rows(ctx), result=None, status=400)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    from starlette.concurrency import run_in_threadpool

    try:
        report = await run_in_threadpool(import_path, ctx.app, path, ctx.brand)
    except SiyuError as error:
        ctx.flash.append(("error", ctx.t("error.generic", message=error.message)))
        return ctx.render("imports.html", rows=_rows(ctx), result=None, status=400)
    return ctx.render("imports.html", rows=_rows(ctx), result=report.by_entity())


@router.get("/console/imports/quarantine.csv")
def download(ctx: View, _app: ComputeDep) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["entity", "file", "line", "field", "reason", "raw"])
    for r in _rows(ctx):
        writer.writerow([r["entity"], Path(str(r["file"])).name, r["line"], r["field"], r["reason"],
                         json.dumps(r["raw"], ensure_ascii=False)])  # fmt: skip
    return Response(
        "\ufeff" + out.getvalue(),  # a BOM, so Excel opens the Chinese text as UTF-8
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="quarantine.csv"'},
    )
