"""The API's endpoints over a state dir built with the real stores (tests/clinic/test_api_support.py):
patients, outage line, readings and gaps, FHIR negotiation, PNG, events, ledger, outage;
read-only methods; missing patients; a state dir with no store."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from clinic.api.png import PNG_SIGNATURE
from lab.stack.statedir import StateDir
from tests.clinic.test_api_support import (
    DEV1,
    DEV2,
    GAIN_UV,
    NOW,
    RATE,
    T0,
    TestClient,
    client_for,
    make_state,
)


@pytest.fixture
def sd(tmp_path: Path) -> StateDir:
    return make_state(tmp_path / "state")


@pytest.fixture
def client(sd: StateDir) -> TestClient:
    return client_for(sd)


def test_patients_say_what_has_not_arrived(client: TestClient) -> None:
    r = client.get("/api/patients")
    assert r.status_code == 200
    doc = r.json()
    assert doc["as_of"]["unix"] == NOW
    by_id = {p["id"]: p for p in doc["patients"]}
    assert sorted(by_id) == [DEV1, DEV2]
    one = by_id[DEV1]
    assert one["readings_stored"] == 5 and one["readings_generated"] == 10
    assert one["completeness"] == 0.5
    assert one["last_reading"] == {"unix": T0 + 5, "iso": "2026-11-30T12:00:05.000Z"}
    nr = one["not_received"]  # nothing of the stack runs: the reading sent and not stored is lost
    assert nr["stack_running"] is False
    assert (nr["count"], nr["buffered_on_device"], nr["sent_not_stored"], nr["lost"]) == (4, 4, 0, 1)
    assert nr["oldest_buffered"]["unix"] == T0 + 6
    assert nr["sentence"] == ("4 readings captured but not yet received, the oldest 2 h 59 min ago "
                              "(4 buffered on the device); 1 reading sent but never stored: lost")
    assert one["profile"]["hr_bpm"] == 70.0 and one["profile"]["cohort"] == "elderly"
    two = by_id[DEV2]
    assert two["completeness"] == 1.0
    assert two["not_received"]["count"] == 0
    assert two["not_received"]["sentence"] == "all 3 captured readings received"


def test_while_the_stack_runs_what_was_sent_may_still_arrive(sd: StateDir) -> None:
    stand_in = sd.component("broker")  # a live process under the broker's pidfile
    stand_in.start(["sleep", "120"])
    try:
        nr = client_for(sd).get(f"/api/patients/{DEV1}").json()["not_received"]
    finally:
        stand_in.stop(deadline_s=10)
    assert nr["stack_running"] is True
    assert (nr["count"], nr["sent_not_stored"], nr["lost"]) == (5, 1, 0)
    assert nr["sentence"].startswith("5 readings captured but not yet received, the oldest")
    assert "1 sent but not stored yet: in flight, queued at the broker, or lost" in nr["sentence"]


def test_one_patient_and_a_missing_one(client: TestClient) -> None:
    doc = client.get(f"/api/patients/{DEV1}").json()
    assert doc["id"] == DEV1
    assert doc["missing_ranges"] == [[3, 3], [6, 9]]
    assert doc["profile_entry"]["seed"] == 42
    r = client.get("/api/patients/hc-9999")
    assert r.status_code == 404
    assert r.json()["status"] == 404 and "hc-9999" in r.json()["detail"]
    assert client.get("/api/patients/hc-9999/readings").status_code == 404
    assert client.get("/api/patients/hc-9999/events").status_code == 404


def test_readings_with_samples_and_gaps(client: TestClient) -> None:
    r = client.get(f"/api/patients/{DEV1}/readings", params={"from": str(T0), "to": "2026-11-30T12:01:00Z"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    assert [x["seq"] for x in doc["readings"]] == [0, 1, 2, 4, 5]
    assert doc["count"] == 5 and doc["truncated"] is False
    first = doc["readings"][0]
    assert first["sample_rate_hz"] == RATE and first["gain_uv"] == GAIN_UV
    assert len(first["counts"]) == RATE and first["millivolts"] is None
    assert first["png"] == f"/api/patients/{DEV1}/readings/1/0.png"
    [gap] = doc["gaps"]
    assert (gap["after_seq"], gap["before_seq"], gap["missing_readings"]) == (2, 4, 1)
    assert gap["seconds"] == pytest.approx(1.0)
    mv = client.get(f"/api/patients/{DEV1}/readings", params={"from": str(T0), "samples": "mv", "limit": "2"})
    page = mv.json()
    assert page["count"] == 2 and page["truncated"] is True
    assert page["readings"][0]["counts"] is None
    peak = max(abs(v) for v in page["readings"][0]["millivolts"])
    assert peak == pytest.approx(400 * GAIN_UV / 1000, rel=0.01)


def test_readings_default_to_the_latest_minutes(client: TestClient) -> None:
    doc = client.get(f"/api/patients/{DEV1}/readings").json()
    assert [x["seq"] for x in doc["readings"]] == [0, 1, 2, 4, 5]
    assert doc["start"]["unix"] == pytest.approx(T0 + 5 - 300, abs=0.01)
    empty = client.get(f"/api/patients/{DEV1}/readings", params={"from": str(T0 + 100)}).json()
    assert empty["readings"] == [] and empty["gaps"] == []


@pytest.mark.parametrize(("params", "name"), [
    ({"from": "yesterday"}, "from"), ({"to": "not a time"}, "to"),
    ({"from": str(T0 + 10), "to": str(T0)}, "to"), ({"limit": "0"}, "limit"),
    ({"limit": "many"}, "limit"), ({"samples": "volts"}, "samples"), ({"from": "1e300"}, "from"),
    ({"form": str(T0)}, "form"),
])
def test_bad_parameters_are_400_naming_them(client: TestClient, params: dict[str, str], name: str) -> None:
    r = client.get(f"/api/patients/{DEV1}/readings", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["parameter"] == name and name in r.json()["detail"]


def test_unknown_parameter_on_every_endpoint(client: TestClient) -> None:
    for path in ("/api/patients", f"/api/patients/{DEV1}", f"/api/patients/{DEV1}/events",
                 f"/api/patients/{DEV1}/readings/1/0.png", "/api/ledger", "/api/outage"):
        r = client.get(path, params={"verbose": "1"})
        assert r.status_code == 400, path
        assert r.json() == {"detail": r.json()["detail"], "status": 400, "parameter": "verbose"}
        assert "unknown query parameter 'verbose'" in r.json()["detail"]


def test_fhir_when_the_client_asks(client: TestClient) -> None:
    r = client.get(f"/api/patients/{DEV1}/readings", params={"from": str(T0)},
                   headers={"Accept": "application/fhir+json"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/fhir+json")
    bundle = Bundle.model_validate(r.json())
    kinds = [e.resource.get_resource_type() for e in bundle.entry or [] if e.resource is not None]
    assert kinds.count("Observation") == 5 and "Patient" in kinds and "Device" in kinds
    preferred = client.get(f"/api/patients/{DEV1}/readings",
                           headers={"Accept": "application/json;q=0.5, application/fhir+json"})
    assert preferred.json()["resourceType"] == "Bundle"
    assert "readings" in client.get(f"/api/patients/{DEV1}/readings", headers={"Accept": "*/*"}).json()
    refused = client.get(f"/api/patients/{DEV1}/readings", headers={"Accept": "text/csv"})
    assert refused.status_code == 406 and "text/csv" in refused.json()["detail"]


def test_a_reading_on_ecg_paper(client: TestClient) -> None:
    import matplotlib.image as mpimg

    r = client.get(f"/api/patients/{DEV1}/readings/1/4.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content.startswith(PNG_SIGNATURE)
    img = mpimg.imread(io.BytesIO(r.content), format="png")
    height, width = img.shape[:2]
    assert 400 < width < 3000 and 150 < height < width
    for missing in ("1/3.png", "1/6.png", "2/4.png"):  # lost; buffered, not received; another boot
        gone = client.get(f"/api/patients/{DEV1}/readings/{missing}")
        assert gone.status_code == 404, missing
    assert client.get(f"/api/patients/{DEV1}/readings/1/x.png").json()["parameter"] == "seq"


def test_events(client: TestClient) -> None:
    doc = client.get(f"/api/patients/{DEV1}/events").json()
    assert doc["analysis"] is True
    [ev] = doc["events"]
    assert ev["kind"] == "af" and ev["onset"]["unix"] == T0 + 1 and ev["delay_s"] == 5.0
    assert client.get(f"/api/patients/{DEV2}/events").json()["events"] == []


def test_ledger_and_outage(client: TestClient) -> None:
    led = client.get("/api/ledger").json()
    assert led["available"] is True
    assert led["report"]["totals"]["generated"] == 13 and led["report"]["totals"]["stored"] == 8
    assert led["report"]["devices"][DEV1]["lost_ranges"] == [[3, 3]]
    out = client.get("/api/outage").json()
    assert out["stack"] is True
    assert out["backlog"] == {"generated": 13, "stored": 8, "buffered_on_devices": 4,
                              "queued_at_broker": None, "sent_not_stored": 1}
    assert "ingest exited: never started (no pidfile)" in out["impaired"]


def test_read_only_and_head(client: TestClient) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = client.request(method, "/api/patients")
        assert r.status_code == 405, method
        assert r.json()["status"] == 405
    head = client.head("/api/patients")
    assert head.status_code == 200 and head.content == b""


def test_a_state_dir_without_stores_gives_empty_answers(tmp_path: Path) -> None:
    bare = StateDir(tmp_path / "bare")
    bare.root.mkdir()
    client = client_for(bare)
    assert client.get("/api/patients").json()["patients"] == []
    led = client.get("/api/ledger").json()
    assert led["available"] is False and "outboxes" in led["reason"]
    out = client.get("/api/outage").json()
    assert out["stack"] is False and out["backlog"]["generated"] == 0
    assert client.get(f"/api/patients/{DEV1}").status_code == 404


def test_openapi_and_docs_are_served(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    paths = set(doc["paths"])
    assert {"/api/patients", "/api/patients/{device_id}", "/api/patients/{device_id}/readings",
            "/api/patients/{device_id}/readings/{boot}/{seq}.png", "/api/patients/{device_id}/events",
            "/api/ledger", "/api/outage"} <= paths
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert client.get("/docs").status_code == 200


def test_a_damaged_store_is_503_in_one_line_and_a_missing_one_empty(sd: StateDir) -> None:
    client = client_for(sd)
    sd.ingest_db.unlink()
    assert client.get(f"/api/patients/{DEV1}/readings").json()["readings"] == []
    assert client.get(f"/api/patients/{DEV1}/readings/1/0.png").status_code == 404
    assert client.get("/api/ledger").json()["available"] is False
    sd.ingest_db.write_bytes(b"not a database" * 100)
    for path in ("/api/patients", f"/api/patients/{DEV1}/readings", "/api/outage"):
        r = client.get(path)
        assert r.status_code == 503, path
        assert "ingest.sqlite" in r.json()["detail"] and "\n" not in r.json()["detail"]
