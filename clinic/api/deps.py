"""FastAPI dependencies every route of `ecgpipe serve` shares (the live page's too).

- `get_state_dir(request) -> StateDir`: the state dir the app was made for (`create_app`).
- `get_now(request) -> float`: now, on the app's clock (ages such as "the oldest 3 h ago").
- `require_user(request) -> str`: the user whose token the request's `Authorization: Bearer
  <token>` header carries (clinic/api/tokens.py); 401 with a JSON `detail` and a
  `WWW-Authenticate: Bearer` header when the header is missing, not Bearer, or no user's token.
  Declared through FastAPI's `HTTPBearer`, so the OpenAPI document names the scheme.
- `reject_unknown_params(request)`: 400 naming the first query parameter the matched route
  does not declare (FastAPI would ignore it; a misspelt `form=` must not silently read all).

Use them as `Depends(...)` on a router: `APIRouter(dependencies=API_DEPENDENCIES)`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from clinic.api.problems import ParamError
from clinic.api.tokens import TokenBook
from lab.stack.statedir import StateDir

_bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                     description="a user's token: the one line of DIR/secrets/api/<user>.token")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def get_state_dir(request: Request) -> StateDir:
    sd = request.app.state.state_dir
    if not isinstance(sd, StateDir):  # create_app sets it; anything else is a bug
        raise TypeError("the app has no state dir: make it with clinic.api.app.create_app")
    return sd


def get_now(request: Request) -> float:
    """The app's clock's now (`create_app(..., clock=)`; the system clock by default)."""
    return float(request.app.state.clock.now())


def _token_book(request: Request) -> TokenBook:
    book = request.app.state.tokens
    if not isinstance(book, TokenBook):
        raise TypeError("the app has no token book: make it with clinic.api.app.create_app")
    return book


def require_user(request: Request,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """The user the bearer token names; HTTPException 401 otherwise."""
    if credentials is None:
        raise HTTPException(401, "missing token: send the header `Authorization: Bearer <token>` "
                                 "(the token is in DIR/secrets/api/<user>.token)", headers=_CHALLENGE)
    user = _token_book(request).user_of(credentials.credentials)
    if user is None:
        raise HTTPException(401, "the bearer token is not any user's token", headers=_CHALLENGE)
    request.state.user = user
    return user


def _declared_query(dependant: Any) -> set[str]:
    names = {str(f.alias) for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared_query(sub)
    return names


def reject_unknown_params(request: Request) -> None:
    """HTTPException 400 naming the first query parameter the route does not declare."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = _declared_query(route.dependant)
    for name in request.query_params:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise ParamError(name, f"unknown query parameter {name!r} (this endpoint takes: {known})")


API_DEPENDENCIES = [Depends(require_user), Depends(reject_unknown_params)]
