"""FHIR R4: a device's readings as Observations, and a Bundle per patient (fhir.resources.R4B).

One Observation per recording: a reading of a continuous monitor (chunks = 1), or a strip of a
strip-mode monitor (its stored chunks, same boot and strip id, in one Observation). Its shape
follows HL7's ECG example (Observation-example-sampled-data, "ekg"):

- status final, category procedure, code MDC 131328 MDC_ECG_ELEC_POTL (urn:oid:2.16.840.1.113883.6.24)
  and LOINC 11524-6 "EKG study";
- one component, code MDC 131328 (the monitor's one lead), valueSampledData: origin 0 mV (UCUM),
  period in ms (1000/fs), factor = the gain in mV per count, lowerLimit/upperLimit (int16's
  range in mV), dimensions 1, data = the counts separated by spaces, "E" for each sample missing
  (chunks of a strip the store does not hold: the outage's);
- subject: the Patient, device: the Device (references to their fullUrls in the Bundle);
  effectivePeriod: first sample to just after the last; identifier: device/boot/seq;
- a lead-off reading (wire FLAG_LEAD_OFF) gets interpretation "lead-off" text and a note; a
  recording cut by the overlap rule (segments.py) holds only its placed samples, and says so.

The Bundle (type collection) holds the Patient, the Device and the Observations, each entry with
a fullUrl urn:uuid:<id>; ids are uuid5 of the device id and reading key, so an export made twice
is the same. `patient_bundle` builds and validates a whole Bundle (for the API); `entries`
yields the same entries one at a time for a streaming file writer.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

from clinic.export.outpath import atomic, out_file
from clinic.export.segments import INVALID, Placed, Timeline, build_timeline, grid_block
from clinic.export.times import utc_iso
from ingest.store_range import StoredReading

MDC = "urn:oid:2.16.840.1.113883.6.24"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ID_SYSTEM = "urn:ecgpipe:device"  # identifiers: the ecgpipe device id (and reading key)
PROFILE_EXT = "urn:ecgpipe:simulated-patient-profile"
_NS = uuid.UUID("5b1d6c0e-6c5e-4b8f-9a55-ec9b1e000014")

ECG_CODE = {"coding": [{"system": MDC, "code": "131328", "display": "MDC_ECG_ELEC_POTL"},
                       {"system": LOINC, "code": "11524-6", "display": "EKG study"}],
            "text": "ECG waveform"}
LEAD_CODE = {"coding": [{"system": MDC, "code": "131328", "display": "MDC_ECG_ELEC_POTL"}],
             "text": "ECG lead (single-lead monitor)"}


def resource_id(kind: str, *key: object) -> str:
    """The deterministic id of a resource (a uuid5): the same device and key give the same id."""
    return str(uuid.uuid5(_NS, "/".join([kind, *map(str, key)])))


def patient_bundle(device_id: str, readings: Sequence[StoredReading], *,
                   profile: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A validated FHIR R4 Bundle (type collection, JSON-able dict) with the device's Patient,
    its Device and one Observation per recording of `readings` (none when there are none)."""
    doc = bundle_shell(device_id)
    doc["entry"] = list(entries(device_id, readings, profile=profile))
    return Bundle.model_validate(doc).model_dump(mode="json", exclude_none=True)


def bundle_shell(device_id: str) -> dict[str, Any]:
    """The Bundle without its entries."""
    return {"resourceType": "Bundle", "id": resource_id("Bundle", device_id), "type": "collection"}


def entries(device_id: str, readings: Sequence[StoredReading], *,
            profile: Mapping[str, Any] | None = None, validate: bool = False,
            timeline: Timeline | None = None) -> Iterator[dict[str, Any]]:
    """The Bundle's entries: Patient, Device, then the Observations in capture order. With
    `validate`, each resource is checked by its fhir.resources model as it is made."""
    tl = timeline if timeline is not None else (build_timeline(device_id, readings) if readings else None)
    rate = tl.fs if tl is not None else None
    yield _entry(patient(device_id, profile), validate)
    yield _entry(device(device_id, rate), validate)
    if tl is not None:
        for group in recordings(tl):
            yield _entry(observation(tl, group), validate)


def _entry(resource: dict[str, Any], validate: bool) -> dict[str, Any]:
    if validate:
        kind = resource["resourceType"]
        if kind == "Patient":
            Patient.model_validate(resource)
        elif kind == "Device":
            Device.model_validate(resource)
        else:
            Observation.model_validate(resource)
    return {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource}


def ref(kind: str, device_id: str) -> dict[str, str]:
    return {"reference": f"urn:uuid:{resource_id(kind, device_id)}", "type": kind}


def patient(device_id: str, profile: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The simulated patient behind a device (fleet/profiles.json's entry, when given, kept as
    an extension: catalogue, rhythm, heart rate)."""
    doc: dict[str, Any] = {
        "resourceType": "Patient", "id": resource_id("Patient", device_id), "active": True,
        "identifier": [{"system": f"{ID_SYSTEM}-patient", "value": device_id}],
        "name": [{"text": f"simulated patient of {device_id}"}]}
    if profile:
        words = [f"{k} {profile[k]}" for k in ("catalogue", "rhythm", "hr_bpm", "recording")
                 if profile.get(k) is not None]
        if words:
            doc["extension"] = [{"url": PROFILE_EXT, "valueString": ", ".join(words)}]
    return doc


def device(device_id: str, sample_rate_hz: int | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resourceType": "Device", "id": resource_id("Device", device_id), "status": "active",
        "identifier": [{"system": ID_SYSTEM, "value": device_id}],
        "deviceName": [{"name": f"HeartCheck-style ECG monitor {device_id}", "type": "user-friendly-name"}],
        "type": {"text": "single-lead ECG monitor"},
        "patient": ref("Patient", device_id)}
    if sample_rate_hz:
        doc["note"] = [{"text": f"single lead, {sample_rate_hz} Hz"}]
    return doc


def recordings(tl: Timeline) -> Iterator[tuple[Placed, ...]]:
    """The timeline's placed readings grouped into recordings: a strip's chunks together (same
    boot and strip, chunks > 1, consecutive), every other reading alone."""
    group: list[Placed] = []
    for p in tl.placed:
        r = p.reading
        if group and r.chunks > 1 and _strip(group[-1]) == (r.boot_epoch, r.strip_id, r.chunks):
            group.append(p)
            continue
        if group:
            yield tuple(group)
        group = [p]
    if group:
        yield tuple(group)


def _strip(p: Placed) -> tuple[int, int, int] | None:
    r = p.reading
    return (r.boot_epoch, r.strip_id, r.chunks) if r.chunks > 1 else None


def observation(tl: Timeline, group: Sequence[Placed]) -> dict[str, Any]:
    """One recording's Observation (module docstring)."""
    first, last = group[0], group[-1]
    r0 = first.reading
    factor = tl.gain_uv / 1000.0
    block, _ = grid_block(tl, first.index, last.end)
    tokens = np.where(block == INVALID, "E", block.astype(str))
    key = (tl.device_id, r0.boot_epoch, r0.seq)
    doc: dict[str, Any] = {
        "resourceType": "Observation", "id": resource_id("Observation", *key), "status": "final",
        "identifier": [{"system": f"{ID_SYSTEM}-reading", "value": "/".join(map(str, key))}],
        "category": [{"coding": [{"system": CATEGORY, "code": "procedure", "display": "Procedure"}]}],
        "code": ECG_CODE, "subject": ref("Patient", tl.device_id), "device": ref("Device", tl.device_id),
        "effectivePeriod": {"start": utc_iso(tl.time_of(first.index)), "end": utc_iso(tl.time_of(last.end))},
        "component": [{"code": LEAD_CODE, "valueSampledData": {
            "origin": {"value": 0, "unit": "mV", "system": UCUM, "code": "mV"},
            "period": 1000.0 / tl.fs, "factor": factor,
            "lowerLimit": INVALID * factor, "upperLimit": 32767 * factor,
            "dimensions": 1, "data": " ".join(tokens.tolist())}}]}
    notes = _notes(group)
    if notes:
        doc["note"] = [{"text": n} for n in notes]
    if any(p.lead_off for p in group):
        doc["interpretation"] = [{"text": "lead-off: an electrode was off for part of this recording"}]
    return doc


def _notes(group: Sequence[Placed]) -> list[str]:
    notes = []
    r0 = group[0].reading
    if r0.chunks > 1:
        have = sorted({p.reading.chunk for p in group})
        notes.append(f"strip {r0.strip_id} (boot {r0.boot_epoch}): chunks {_ranges(have)} of "
                     f"{r0.chunks} stored; samples of missing chunks between them are E")
    cut = sum(p.skip for p in group)
    if cut:
        notes.append(f"{cut} samples overlapping earlier readings left out (the first placed wins)")
    if any(p.lead_off for p in group):
        notes.append("lead-off: an electrode was off for part of this recording")
    return notes


def _ranges(values: Sequence[int]) -> str:
    parts: list[str] = []
    start = prev = values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)


def write_fhir(tl: Timeline, path: Path | str, *,
               profile: Mapping[str, Any] | None = None) -> list[Path]:
    """The Bundle as one JSON file, written entry by entry (each resource validated by its
    fhir.resources model as it is made, the Bundle's own fields once): a long export never
    holds the whole document."""
    out = out_file(path, (".json",))
    shell = bundle_shell(tl.device_id)
    Bundle.model_validate(shell)
    head = json.dumps(shell)[:-1]  # without its closing brace
    with atomic(out) as tmp, tmp.open("w", encoding="utf-8") as f:
        f.write(head + ', "entry": [\n')
        for i, entry in enumerate(entries(tl.device_id, (), profile=profile, validate=True, timeline=tl)):
            f.write((",\n" if i else "") + json.dumps(entry, separators=(",", ":")))
        f.write("\n]}\n")
    return [out]
