"""The patients' routes: patients, readings, one reading as PNG, clinical events."""

from __future__ import annotations

from fastapi import APIRouter

from clinic.api.deps import API_DEPENDENCIES
from clinic.api.problems import ERROR_RESPONSES

router = APIRouter(prefix="/api", tags=["patients"], dependencies=API_DEPENDENCIES,
                   responses=ERROR_RESPONSES)
