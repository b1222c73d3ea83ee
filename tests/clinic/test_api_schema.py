"""schemathesis against the API's own OpenAPI document, in-process (ASGI): every operation with
generated parameters and the token, no server error, and every response conforms to the
document (status codes, content types, bodies, and the other default checks: unsupported
methods are 405, requests without the token are refused). Bounded examples per operation.
The live page's snapshot route is one of them; its page and static files are not in the
document (they are not API)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from clinic.api.app import create_app
from ecgcore.clock import ManualClock
from lab.stack.statedir import StateDir
from tests.clinic.test_api_support import NOW, make_state, token_of

# schemathesis.pytest.from_fixture (a lazy schema) does not run under this pytest (it sets a
# node attribute pytest 9 no longer has), so the schema is loaded at import from an app over a
# state dir that the module's fixture fills before the first example and removes afterwards
_ROOT = Path(tempfile.mkdtemp(prefix="ecgpipe-api-schema-"))
_SD = StateDir(_ROOT / "state")
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_SD, clock=ManualClock(NOW)))
_TOKEN: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _state() -> Iterator[None]:
    make_state(_SD.root)
    _TOKEN[:] = [token_of(_SD)]
    try:
        yield
    finally:
        shutil.rmtree(_ROOT, ignore_errors=True)


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {_TOKEN[0]}"}


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case[Any]) -> None:
    # positive_data_acceptance is left out: `from`/`to` are strings whose validity (a real calendar
    # date, `to` after `from`) no JSON schema can state, so a pattern-valid "2026-13-45" is a 400
    response = case.call_and_validate(headers=_auth(), excluded_checks=[positive_data_acceptance])
    assert response.status_code < 500  # call_and_validate checks it too; said here for the reader

