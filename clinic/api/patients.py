"""The patients' routes: the list, one patient, their readings (JSON or FHIR), one reading as
PNG, their clinical events. A patient is a device; an id the state dir does not know is 404.

    GET /api/patients                                          PatientList
    GET /api/patients/{id}                                     PatientDetail
    GET /api/patients/{id}/readings?from=&to=&limit=&samples=  ReadingsPage, or a FHIR Bundle
    GET /api/patients/{id}/readings/{boot}/{seq}.png           image/png
    GET /api/patients/{id}/events                              EventList
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query
from fastapi.responses import JSONResponse, Response

from clinic.api import readings as rd
from clinic.api.census import Census, as_of, known_device
from clinic.api.deps import API_DEPENDENCIES, get_now, get_state_dir
from clinic.api.models import EventList, EventOut, PatientDetail, PatientList, ReadingsPage, instant
from clinic.api.png import reading_png
from clinic.api.problems import ERROR_RESPONSES, NOT_FOUND, ErrorBody
from clinic.errors import NoDataError
from clinic.export.fhir import patient_bundle
from devices.profiles_file import read_profiles
from ingest import store_view
from lab.report.alerts import inspect_alerts
from lab.stack.statedir import StateDir

router = APIRouter(prefix="/api", tags=["patients"], dependencies=API_DEPENDENCIES,
                   responses=ERROR_RESPONSES)

StateDep = Annotated[StateDir, Depends(get_state_dir)]
NowDep = Annotated[float, Depends(get_now)]
DeviceId = Annotated[str, Path(description="the patient's device id, e.g. hc-0001", min_length=1,
                               max_length=64, examples=["hc-0001"])]
MAX_KEY = 2**62  # boot and seq: larger is no reading (and no SQLite integer)
# what `from` and `to` look like (the document's hint; the parser says what is wrong with a value)
TIME_SCHEMA: dict[str, Any] = {
    "pattern": r"^\s*(\d{1,11}(\.\d*)?|\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?"
               r"([Zz]|[+-]\d{2}:?\d{2})?)\s*$",
    "examples": ["2026-11-30T12:00:00Z", "1796040000"]}


def _require_patient(sd: StateDir, device_id: str) -> None:
    if not known_device(sd, device_id):
        raise NoDataError(f"no patient {device_id!r} in this state dir (GET /api/patients lists them)")


@router.get("/patients", summary="every patient: last reading, completeness, what has not arrived")
def list_patients(sd: StateDep, now: NowDep) -> PatientList:
    census = Census(sd)
    return PatientList(as_of=as_of(now), patients=[census.summary(d, now) for d in census.ids()])


@router.get("/patients/{device_id}", responses=NOT_FOUND, summary="one patient")
def get_patient(device_id: DeviceId, sd: StateDep, now: NowDep) -> PatientDetail:
    _require_patient(sd, device_id)
    census = Census(sd)
    summary = census.summary(device_id, now)
    led = census.ledger.get(device_id)
    generated = {device_id: led.generated} if led is not None else None
    stats = store_view.device_stats(sd.ingest_db, generated=generated).get(device_id, {})
    return PatientDetail(**summary.model_dump(), as_of=as_of(now),
                         missing_ranges=stats.get("missing_ranges", []),
                         profile_entry=census.profiles.get(device_id))


_READINGS_RESPONSES: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    200: {"description": "the readings: JSON, or a FHIR R4 Bundle with `Accept: application/fhir+json`",
          "content": {rd.FHIR_JSON: {"schema": {"type": "object",
                                                "description": "a FHIR R4 Bundle (type collection)"}}}},
    406: {"model": ErrorBody, "description": "the Accept header allows neither JSON nor FHIR JSON"},
}


@router.get("/patients/{device_id}/readings", responses=_READINGS_RESPONSES, response_model=ReadingsPage,
            summary="the patient's readings over a capture-time range")
def get_readings(
        device_id: DeviceId, sd: StateDep,
        start: Annotated[str | None, Query(alias="from", description="Unix seconds or ISO 8601 "
                                           "(default: 5 min before `to`, or before the newest)",
                                           json_schema_extra=TIME_SCHEMA)] = None,
        end: Annotated[str | None, Query(alias="to", description="Unix seconds or ISO 8601, "
                                         "exclusive (default: open)", json_schema_extra=TIME_SCHEMA)] = None,
        limit: Annotated[int, Query(ge=1, le=3600, description="at most this many readings")] = 300,
        samples: Annotated[rd.Samples, Query(description="counts (int16), mv, or none")] = "counts",
        accept: Annotated[str | None, Header()] = None) -> Response | ReadingsPage:
    fmt = rd.negotiate(accept)
    if fmt is None:
        raise HTTPException(406, f"Accept {accept!r} allows neither application/json nor {rd.FHIR_JSON}")
    _require_patient(sd, device_id)
    lo, hi = rd.resolve_range(sd, device_id, rd.parse_param("from", start), rd.parse_param("to", end))
    got, truncated = rd.fetch(sd, device_id, lo, hi, limit)
    if fmt == "fhir":
        profile = (read_profiles(sd.devices_json.parent) or {}).get(device_id)
        return JSONResponse(patient_bundle(device_id, got, profile=profile), media_type=rd.FHIR_JSON)
    return rd.page(device_id, lo, hi, got, truncated, samples)


@router.get("/patients/{device_id}/readings/{boot}/{seq}.png", response_class=Response,
            responses={**NOT_FOUND, 200: {"content": {"image/png": {}},
                                          "description": "the reading on ECG paper (25 mm/s, 10 mm/mV)"}},
            summary="one stored reading on ECG paper")
def get_reading_png(device_id: DeviceId, sd: StateDep, now: NowDep,
                    boot: Annotated[int, Path(ge=0, le=MAX_KEY, examples=[1],
                                              description="the device's boot epoch")],
                    seq: Annotated[int, Path(ge=0, le=MAX_KEY, examples=[0],
                                             description="the reading's sequence number")]) -> Response:
    return Response(reading_png(sd, device_id, boot, seq, now), media_type="image/png")


@router.get("/patients/{device_id}/events", responses=NOT_FOUND, summary="the patient's clinical events")
def get_events(device_id: DeviceId, sd: StateDep, now: NowDep) -> EventList:
    _require_patient(sd, device_id)
    doc = inspect_alerts(sd, device_id, now)
    out = []
    for e in doc["events"]:
        onset, raised = instant(e["onset"]), instant(e["raised_at"])
        if onset is not None and raised is not None:
            out.append(EventOut(kind=e["kind"], onset=onset, end=instant(e["end"]), raised_at=raised,
                                delay_s=e["delay_s"], ongoing=e["ongoing"], evidence=e["evidence"]))
    return EventList(patient=device_id, analysis=bool(doc["exists"]), events=out)
