"""The lab's routes: the ledger and the outage state."""

from __future__ import annotations

from fastapi import APIRouter

from clinic.api.deps import API_DEPENDENCIES
from clinic.api.problems import ERROR_RESPONSES

router = APIRouter(prefix="/api", tags=["lab"], dependencies=API_DEPENDENCIES,
                   responses=ERROR_RESPONSES)
