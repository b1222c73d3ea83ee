"""The application `ecgpipe serve` runs: `create_app(state_dir) -> FastAPI`.

    from clinic.api.app import create_app
    app = create_app(StateDir(Path(".ecgpipe")))   # then uvicorn, or fastapi.testclient.TestClient

The app reads only the state dir (like `report` and `inspect`), so it serves a running stack,
one after `ecgpipe down`, and a scenario run's `OUT/<variant>/state` alike. It is read-only:
GET (and HEAD, answered as GET without its body) only; any other method is 405. Every `/api`
route needs a user's bearer token (clinic/api/deps.py, clinic/api/tokens.py) and refuses
query parameters it does not declare. Errors are one JSON line (clinic/api/problems.py).

The OpenAPI document is `/openapi.json`, its pages `/docs`. Routers: `clinic.api.patients`
(patients, readings, PNG, events), `clinic.api.lab_routes` (ledger, outage), and
`clinic.api.live.router` (the live page, another module's).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clinic.api import lab_routes, live, patients
from clinic.api.problems import install_error_handlers
from clinic.api.tokens import TokenBook, token_dir
from ecgcore.clock import Clock, SystemClock
from lab.stack.statedir import StateDir

DESCRIPTION = """Read-only access for clinicians to what an ecgpipe state dir holds: the patients
(devices) with their last reading and data completeness, and what an outage is keeping from
them ("42 readings captured but not yet received"); a patient's readings over a time range (JSON,
or FHIR R4 with `Accept: application/fhir+json`); one reading as ECG paper (PNG); clinical
events; the lab's ledger and outage state. Send `Authorization: Bearer <token>`: the token is
the one line of DIR/secrets/api/<user>.token."""


class HeadAsGet:
    """HEAD is answered as GET without its body (so it is allowed wherever GET is, and stays
    out of the OpenAPI document)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def no_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, no_body)


def create_app(state_dir: StateDir, *, clock: Clock | None = None,
               title: str = "ecgpipe clinic API") -> FastAPI:
    """The API over `state_dir`; its users are those with a token file under it. `clock` gives
    "now" for ages ("the oldest 3 h ago"; default the system clock, as `inspect` uses)."""
    app = FastAPI(title=title, description=DESCRIPTION, version="1",
                  openapi_tags=[{"name": "patients", "description": "patients and their ECG"},
                                {"name": "lab", "description": "the ledger and the outage"}])
    app.state.state_dir = state_dir
    app.state.clock = clock or SystemClock()
    app.state.tokens = TokenBook(token_dir(state_dir.root))
    install_error_handlers(app)
    app.include_router(patients.router)
    app.include_router(lab_routes.router)
    app.include_router(live.router)
    app.add_middleware(HeadAsGet)
    return app
