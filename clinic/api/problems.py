"""Every error the API answers is one JSON object: `{"detail": "<one line>", "status": N}`, and
`"parameter": "<name>"` when one parameter is to blame.

FastAPI's own errors are turned into that shape here: its 422 validation errors become 400
naming the parameter (a time that is not a time, a seq that is not a number); a clinic
`NoDataError` is 404, a `BadRequestError` 400; a state dir the lab cannot read (a damaged
store, `lab.errors.LabError`, or a store package's error) 503 with the lab's one line.
Nothing answers a traceback.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from clinic.errors import BadRequestError, ClinicError, NoDataError
from lab.errors import LabError
from lab.report.sources import DATA_ERRORS


class ErrorBody(BaseModel):
    """An error: what went wrong in one line, the HTTP status, the parameter to blame."""

    detail: str
    status: int
    parameter: str | None = None


class ParamError(HTTPException):
    """400 (or `status`) naming the query or path parameter with the bad value."""

    def __init__(self, parameter: str, detail: str, status: int = 400) -> None:
        super().__init__(status, detail)
        self.parameter = parameter


def error_response(status: int, detail: str, parameter: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorBody(detail=detail.replace("\n", " "), status=status, parameter=parameter)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


# the responses every route of the API may give besides its 200 (for the OpenAPI document)
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "a bad or unknown parameter"},
    401: {"model": ErrorBody, "description": "no token, or not a user's"},
    406: {"model": ErrorBody, "description": "no representation the Accept header allows"},
    503: {"model": ErrorBody, "description": "the state dir cannot be read (a damaged store)"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no such patient or reading"}}


def _validation_one_line(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = list(exc.errors())
    if not errors:
        return "bad request", None
    first = errors[0]
    loc = [str(x) for x in first.get("loc", ())]
    where, name = (loc[0], loc[-1]) if len(loc) >= 2 else ("request", None)
    got = first.get("input")
    shown = f" (got {got!r})" if isinstance(got, str | int | float) else ""
    return f"{where} parameter {name!r}: {first.get('msg', 'invalid')}{shown}", name


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "parameter", None),
                              dict(exc.headers) if exc.headers else None)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, name = _validation_one_line(exc)
        return error_response(400, detail, name)

    @app.exception_handler(ClinicError)
    async def clinic_error(_request: Request, exc: ClinicError) -> JSONResponse:
        status = 404 if isinstance(exc, NoDataError) else 400 if isinstance(exc, BadRequestError) else 503
        return error_response(status, str(exc))

    async def unreadable(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(503, f"the state dir cannot be read: {exc}")

    kinds: tuple[type[Exception], ...] = (LabError, *DATA_ERRORS)
    for kind in kinds:
        app.add_exception_handler(kind, unreadable)
