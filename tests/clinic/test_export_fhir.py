"""FHIR R4 export validated and read back by fhir.resources (R4B models): the Bundle per
patient, an Observation per reading or strip (the HL7 ECG example's codes, valueSampledData),
"E" for a strip's missing chunk, and patient_bundle for the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation

from clinic.export.fhir import patient_bundle
from clinic.export.run import export, load
from clinic.export.times import parse_time
from tests.clinic.test_export_store import (
    DEVICE,
    FS,
    GAIN_UV,
    LAYOUT,
    T0,
    Spec,
    counts_of,
    spec_of,
    write_store,
)

MDC = "urn:oid:2.16.840.1.113883.6.24"
STRIP_DEVICE = "hc-strip"
# a strip-mode monitor: strip 7 of 5 chunks lost chunk 2 in the outage; strip 8 arrived whole
STRIPS = ([Spec(1, k, float(k), strip=7, chunk=k, chunks=5) for k in (0, 1, 3, 4)]
          + [Spec(1, 5 + k, 600.0 + k, strip=8, chunk=k, chunks=5) for k in range(5)])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("fhir")
    summary = export(write_store(tmp / "ingest.sqlite"), DEVICE, "fhir", tmp / "b.json",
                     profile={"catalogue": "af", "rhythm": "af", "hr_bpm": 88.0})
    doc: dict[str, Any] = json.loads(Path(summary["files"][0]).read_text())
    return doc


def observations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Observation"]


def test_the_file_is_a_valid_r4_bundle(bundle: dict[str, Any]) -> None:
    model = Bundle.model_validate(bundle)
    assert model.type == "collection"
    back = model.model_dump(mode="json", exclude_none=True)
    kinds = [e["resource"]["resourceType"] for e in back["entry"]]
    assert kinds[:2] == ["Patient", "Device"]
    assert kinds[2:] == ["Observation"] * len(LAYOUT)  # one per placed reading (continuous)
    assert all(e["fullUrl"] == f"urn:uuid:{e['resource']['id']}" for e in back["entry"])


def test_observations_follow_the_hl7_ecg_example(bundle: dict[str, Any]) -> None:
    patient, device = (bundle["entry"][i]["fullUrl"] for i in (0, 1))
    for obs in observations(bundle):
        o = Observation.model_validate(obs).model_dump(mode="json", exclude_none=True)
        assert o["status"] == "final"
        assert o["category"][0]["coding"][0]["code"] == "procedure"
        assert (MDC, "131328") in {(c["system"], c["code"]) for c in o["code"]["coding"]}
        assert o["subject"]["reference"] == patient
        assert o["device"]["reference"] == device
        comp = o["component"][0]
        assert (comp["code"]["coding"][0]["system"], comp["code"]["coding"][0]["code"]) == (MDC, "131328")
        sd = comp["valueSampledData"]
        assert sd["origin"] == {"value": 0, "unit": "mV", "system": "http://unitsofmeasure.org", "code": "mV"}
        assert float(sd["period"]) == pytest.approx(1000 / FS)
        assert float(sd["factor"]) == pytest.approx(GAIN_UV / 1000)
        assert sd["dimensions"] == 1


def test_data_are_the_placed_counts_with_their_times(bundle: dict[str, Any]) -> None:
    for obs, w in zip(observations(bundle), LAYOUT, strict=True):
        assert obs["identifier"][0]["value"] == f"{DEVICE}/{w.boot}/{w.seq}"
        data = obs["component"][0]["valueSampledData"]["data"].split(" ")
        want = counts_of(w.boot, w.seq, spec_of(w.boot, w.seq).n)[w.skip:]
        assert np.all(np.abs(np.array(data, dtype=np.int64) - want) <= 1)  # -32768 is -32767
        start = obs["effectivePeriod"]["start"]
        assert abs(parse_time(start) - (T0 + w.slot / FS)) < 1e-3


def test_lead_off_and_overlap_are_noted(bundle: dict[str, Any]) -> None:
    by_seq = {int(o["identifier"][0]["value"].rsplit("/", 1)[1]): o for o in observations(bundle)}
    assert {s for s, o in by_seq.items() if "interpretation" in o} == {30, 31}
    assert "125 samples overlapping" in by_seq[40]["note"][0]["text"]
    assert 42 not in by_seq  # wholly inside seq 41: dropped


def test_patient_carries_the_profile(bundle: dict[str, Any]) -> None:
    patient = bundle["entry"][0]["resource"]
    assert patient["identifier"][0]["value"] == DEVICE
    assert "catalogue af" in patient["extension"][0]["valueString"]
    assert bundle["entry"][1]["resource"]["patient"]["reference"] == bundle["entry"][0]["fullUrl"]


def test_a_strips_missing_chunk_is_e(tmp_path: Path) -> None:
    db = write_store(tmp_path / "ingest.sqlite", STRIP_DEVICE, STRIPS, others=0)
    doc = patient_bundle(STRIP_DEVICE, load(db, STRIP_DEVICE))
    Bundle.model_validate(doc)
    obs = observations(doc)
    assert len(obs) == 2
    data = obs[0]["component"][0]["valueSampledData"]["data"].split(" ")
    assert len(data) == 5 * FS
    assert data[2 * FS:3 * FS] == ["E"] * FS
    assert "E" not in data[:2 * FS] + data[3 * FS:]
    assert [int(x) for x in data[4 * FS:]] == counts_of(1, 4, FS).tolist()
    assert "chunks 0-1, 3-4 of 5" in obs[0]["note"][0]["text"]
    assert "E" not in obs[1]["component"][0]["valueSampledData"]["data"]


def test_patient_bundle_of_nothing_is_patient_and_device() -> None:
    doc = patient_bundle("hc-none", [])
    assert [e["resource"]["resourceType"] for e in doc["entry"]] == ["Patient", "Device"]
    Bundle.model_validate(doc)


def test_patient_bundle_is_deterministic_and_json(tmp_path: Path) -> None:
    db = write_store(tmp_path / "ingest.sqlite")
    readings = load(db, DEVICE, T0, T0 + 5)
    a, b = patient_bundle(DEVICE, readings), patient_bundle(DEVICE, readings)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert len(observations(a)) == 5
