"""The lab's routes: the ledger and the outage state, as the lab's own commands compute them.

    GET /api/ledger   LedgerDoc: `ecgpipe report --json` (lab.report.summary.build_report) under
                      "report"; "available" false and the reason when the state dir lacks the
                      outboxes or the store (the report's sources of truth)
    GET /api/outage   OutageDoc: `ecgpipe status --json` (lab.report.status) under "status"
                      (None without a stack), one line per component not running and per
                      faulted link ("impaired"), each tier's backlog (the ledger's totals and
                      the broker's queue from the $SYS watcher), the last faults recorded in
                      history/nemesis.jsonl
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from clinic.api.census import Census, as_of
from clinic.api.deps import API_DEPENDENCIES, get_now, get_state_dir
from clinic.api.models import Backlog, LedgerDoc, OutageDoc
from clinic.api.problems import ERROR_RESPONSES
from ecgcore.files import read_jsonl
from lab.errors import StateDirError
from lab.history.brokerstats import queued_now
from lab.report.status import status
from lab.report.summary import build_report
from lab.stack.statedir import StateDir

router = APIRouter(prefix="/api", tags=["lab"], dependencies=API_DEPENDENCIES,
                   responses=ERROR_RESPONSES)

StateDep = Annotated[StateDir, Depends(get_state_dir)]
NowDep = Annotated[float, Depends(get_now)]
RECENT_FAULTS = 20


@router.get("/ledger", summary="the ledger: `ecgpipe report --json`")
def get_ledger(sd: StateDep) -> LedgerDoc:
    try:
        report = build_report(sd)
    except StateDirError as exc:  # no outboxes or no store: no ledger to give
        return LedgerDoc(available=False, reason=str(exc), report=None)
    return LedgerDoc(available=True, reason=None, report=report)


def impaired(doc: dict[str, Any]) -> list[str]:
    """One line per component not running (with why) and per link with a fault."""
    lines = []
    for name in doc.get("components", []):
        c = doc.get(name)
        if not isinstance(c, dict):
            continue
        fault = c.get("fault")
        if isinstance(fault, dict):
            lines.append(f"{name}: {fault.get('describe') or fault.get('fault') or 'a fault'}")
        if c.get("state") != "running":
            reason = c.get("reason")
            lines.append(f"{name} {c.get('state')}" + (f": {reason}" if reason else ""))
    return lines


@router.get("/outage", summary="the outage now: what is down, each tier's backlog, the faults")
def get_outage(sd: StateDep, now: NowDep) -> OutageDoc:
    try:
        doc: dict[str, Any] | None = status(sd)
    except StateDirError:  # no stack here (a copied or scenario state dir without stack.json)
        doc = None
    totals = Census(sd).ledger_totals()
    backlog = Backlog(generated=totals["generated"], stored=totals["stored"],
                      buffered_on_devices=totals["buffered"], queued_at_broker=queued_now(sd.root),
                      sent_not_stored=totals["lost"])
    faults = read_jsonl(sd.nemesis_history)[-RECENT_FAULTS:]
    return OutageDoc(as_of=as_of(now), stack=doc is not None,
                     impaired=impaired(doc) if doc is not None else [], backlog=backlog,
                     status=doc, faults=faults)
