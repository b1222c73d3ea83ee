"""The live page of a running stack (served by `ecgpipe serve`): its routes."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
