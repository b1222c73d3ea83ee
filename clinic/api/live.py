"""The live page of a running stack (served by `ecgpipe serve`): its routes.

    GET /live                     the page (plain HTML; no data in it, so no token needed)
    GET /live/static/<file>       its script and style (live.js, live.css), from clinic/api/static
    GET /api/live/state?device=   one snapshot for the page (clinic/api/live_state.py), as every
                                  /api route: `Authorization: Bearer <token>`

The token never travels in a URL the server sees: the user opens `/live#token=<token>` (a
fragment stays in the browser) or pastes it into the page; the script keeps it in
sessionStorage, removes it from the address bar, and sends it as a Bearer header on each poll.
The page is served with a Content-Security-Policy that allows only its own script and style.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, Response

from clinic.api.deps import API_DEPENDENCIES, get_state_dir
from clinic.api.live_state import source_for
from clinic.api.problems import ERROR_RESPONSES, NOT_FOUND, ParamError
from lab.stack.statedir import StateDir

STATIC = Path(__file__).with_name("static")
ASSETS = {"live.js": "text/javascript; charset=utf-8", "live.css": "text/css; charset=utf-8"}
_DEVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter()
api = APIRouter(prefix="/api/live", tags=["lab"], dependencies=API_DEPENDENCIES,
                responses=ERROR_RESPONSES)


@router.get("/live", include_in_schema=False)
def page() -> Response:
    return FileResponse(STATIC / "live.html", media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


@router.get("/live/static/{name}", include_in_schema=False)
def asset(name: str) -> Response:
    media = ASSETS.get(name)
    if media is None:
        raise ParamError("name", f"no such file of the live page: {name!r} (there are: "
                                 f"{', '.join(sorted(ASSETS))})", status=404)
    return FileResponse(STATIC / name, media_type=media, headers=_PAGE_HEADERS)


@api.get("/state", responses=NOT_FOUND, summary="The live page's snapshot of the stack")
def live_state(sd: Annotated[StateDir, Depends(get_state_dir)],
               device: Annotated[str | None, Query(description="the device whose ECG to include "
                                                               "(default: the first)")] = None,
               ) -> dict[str, Any]:
    """Stack state and outages, devices online, the ledger (`ecgpipe report --json`'s totals),
    each tier's level over time, fault windows, the ingest rate and the chosen device's last
    seconds of ECG in mV. Poll it about once a second (`refresh_s`)."""
    source = source_for(sd)
    if device is not None and (not _DEVICE.fullmatch(device) or not source.knows(device)):
        raise ParamError("device", f"no device {device!r} in this state dir", status=404)
    return source.snapshot(device)


router.include_router(api)
